"""The random policy: uniform over the actions valid on the page, seeded.

Free-text slots (``search[<text>]``, ``type[id][<text>]``) are filled with a word drawn from
the page's own text, so a random search stays on the shop's vocabulary.

Example:
    >>> policy = RandomPolicy(seed=0)
    >>> policy.reset(persona=-1, goal="")
    >>> policy.act({"text": '[nav-cart] link "Cart"', "url": "/s/a/"}) in {
    ...     "click[nav-cart]", "back", "stop"} or True
    True
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

from agents.policies.base import candidate_actions, fill, is_template

__all__ = ["RandomPolicy"]

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]{2,}")


class RandomPolicy:
    """Uniform over the page's valid actions.

    Args:
        seed: seeds the draws; the stream is not reseeded at ``reset``, so successive
            episodes differ but a whole run repeats exactly.
        allow_stop: when False, ``stop`` is never drawn (for exploring deeper pages).
    """

    def __init__(self, seed: int = 0, allow_stop: bool = True):
        self.rng = random.Random(seed)
        self.allow_stop = allow_stop

    def reset(self, persona: int, goal: str) -> None:
        self.goal = goal
        self.steps = 0

    def act(self, observation: Mapping[str, Any]) -> str:
        # no page to go back to before the episode's first action
        skip = {"stop"} if not self.allow_stop else set()
        if not getattr(self, "steps", 0):
            skip.add("back")
        self.steps = getattr(self, "steps", 0) + 1
        actions = [a for a in candidate_actions(observation) if a not in skip]
        action = self.rng.choice(actions)
        if is_template(action):
            words = _WORD.findall(str(observation.get("text", ""))) or ["shop"]
            action = fill(action, self.rng.choice(words))
        return action
