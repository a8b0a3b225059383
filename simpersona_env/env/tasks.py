"""Tasks: what the buyer is asked to do, apart from how the page is driven.

A task sets up an episode's goal, turns what was bought into a reward, and has an oracle that
solves it (used as a scripted policy and as the test that the task is solvable), like
BrowserGym's ``core/task.py``.

* ``browse``: free shopping; reward 1 on a completed purchase.
* ``goal``: an instruction drawn from the catalog (a product type, some attributes and options,
  a price limit); reward by the WebShop formula (Yao et al., 2022)::

      r = type_match * (matched attrs + matched options + price ok) / (attrs + options + 1)

  and success means ``r == 1``.

Example:
    >>> from storefront_mock import make_stores
    >>> import numpy as np
    >>> catalog = make_stores("builtin")[0].catalog
    >>> goal = GoalTask().setup(np.random.default_rng(0), catalog, None)
    >>> product = catalog.by_id[goal.product_id]
    >>> goal_reward(goal, product, {k: v for k, v in goal.options.items()})
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from simpersona_env.errors import ConfigError

__all__ = ["BrowseTask", "Goal", "GoalTask", "TASKS", "Task", "goal_reward"]


@dataclass(frozen=True)
class Goal:
    """An episode's goal. The agent sees only ``instruction``.

    ``product_id`` and ``product_title`` name the catalog product the goal was drawn from
    (privileged: for the oracle and for analysis, never shown to the agent).
    """

    instruction: str
    product_type: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    max_price: float | None = None
    product_id: str | None = None
    product_title: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["attributes"], d["options"] = dict(self.attributes), dict(self.options)
        return d

    @classmethod
    def from_any(cls, goal: Goal | Mapping[str, Any] | str) -> Goal:
        if isinstance(goal, Goal):
            return goal
        if isinstance(goal, str):
            return cls(instruction=goal)
        if isinstance(goal, Mapping):
            known = set(cls.__dataclass_fields__)
            unknown = sorted(set(goal) - known)
            if unknown:
                raise ConfigError(f"goal has unknown key(s) {unknown}; valid keys: {sorted(known)}")
            return cls(**goal)
        raise ConfigError(f"a goal is a Goal, a dict or a string, got {type(goal).__name__}")


def goal_reward(goal: Goal, product: Any, options: Mapping[str, str]) -> float:
    """The WebShop reward of buying ``product`` with ``options`` for ``goal`` (in [0, 1]).

    Type match is 1 when the product type is the goal's (case-insensitive), else 0.
    """
    ptype = (product.product_type or "").casefold()
    if goal.product_type and ptype != goal.product_type.casefold():
        return 0.0
    attrs = {k.casefold(): str(v).casefold() for k, v in product.attributes.items()}
    matched_attrs = sum(attrs.get(k.casefold()) == str(v).casefold()
                        for k, v in goal.attributes.items())
    chosen = {k.casefold(): str(v).casefold() for k, v in options.items()}
    matched_opts = sum(chosen.get(k.casefold()) == str(v).casefold()
                       for k, v in goal.options.items())
    price_ok = goal.max_price is None or (product.price is not None
                                          and product.price <= goal.max_price + 1e-9)
    return (matched_attrs + matched_opts + int(price_ok)) / (
        len(goal.attributes) + len(goal.options) + 1)


class Task:
    """What an episode asks for. Subclasses set ``name`` and ``needs_catalog``."""

    name: ClassVar[str]
    needs_catalog: ClassVar[bool] = False

    def setup(self, rng: np.random.Generator, catalog: Any | None,
              goal: Goal | Mapping[str, Any] | str | None) -> Goal | None:
        """The goal of a new episode (``goal`` from ``reset(options=...)`` when given)."""
        raise NotImplementedError

    def reward(self, goal: Goal | None, bought: Sequence[tuple[Any, Mapping[str, str]]],
               converted: bool) -> float:
        """The reward of the step that completed a purchase (``bought``: (product or None,
        options) per purchased line; products are None on sites without a catalog)."""
        raise NotImplementedError

    def oracle(self) -> Any:
        """A scripted policy that solves the task on the bundled shop."""
        from simpersona_env.env.oracle import ShopOracle

        return ShopOracle()


class BrowseTask(Task):
    """Free shopping: reward 1 when a purchase completes. A string goal is shown as is."""

    name = "browse"

    def setup(self, rng, catalog, goal):  # type: ignore[override]
        return None if goal is None else Goal.from_any(goal)

    def reward(self, goal, bought, converted):  # type: ignore[override]
        return 1.0 if converted else 0.0


class GoalTask(Task):
    """Buy a product matching an instruction drawn from the catalog; WebShop reward.

    Args:
        max_attributes: at most this many attributes in an instruction.
        max_options: at most this many options (only options with a real choice).
        price_slack: the price limit is the product's price times a factor drawn from
            ``[1, 1 + price_slack]``, rounded up to a whole amount.
    """

    name = "goal"
    needs_catalog = True

    def __init__(self, max_attributes: int = 2, max_options: int = 2, price_slack: float = 0.5):
        self.max_attributes, self.max_options = max_attributes, max_options
        self.price_slack = price_slack

    def setup(self, rng, catalog, goal):  # type: ignore[override]
        if goal is not None:
            goal = Goal.from_any(goal)
            if not goal.product_type and not goal.attributes and not goal.options:
                raise ConfigError("the goal task needs a structured goal (product_type, "
                                  "attributes, options, max_price), not only an instruction; "
                                  "pass a dict or leave it out to draw one from the catalog")
            return goal
        if catalog is None:
            raise ConfigError("the goal task draws its goals from a catalog: use a bundled store")
        typed = [p for p in catalog.products if p.product_type]
        # Prefer products with a price (the instruction then carries a price limit); a log
        # without prices (Taobao) still gets goals, never an invented price.
        candidates = [p for p in typed if p.price is not None] or typed
        if not candidates:
            raise ConfigError(f"catalog {catalog.store_id!r} has no product with a type to "
                              "draw a goal from")
        product = candidates[int(rng.integers(len(candidates)))]
        attr_keys = sorted(product.attributes)
        n_attr = min(len(attr_keys), self.max_attributes)
        attrs = {k: product.attributes[k]
                 for k in sorted(rng.choice(attr_keys, size=n_attr, replace=False).tolist())} \
            if n_attr else {}
        choosable = sorted(k for k, v in product.options.items() if len(v) > 1)
        n_opt = min(len(choosable), self.max_options)
        opts = {}
        for k in sorted(rng.choice(choosable, size=n_opt, replace=False).tolist()) if n_opt else []:
            values = product.options[k]
            opts[k] = values[int(rng.integers(len(values)))]
        max_price = (None if product.price is None else
                     float(math.ceil(product.price * (1 + self.price_slack * rng.random()))))
        return Goal(instruction=_instruction(product.product_type, attrs, opts, max_price),
                    product_type=product.product_type, attributes=attrs, options=opts,
                    max_price=max_price, product_id=product.product_id,
                    product_title=product.title)

    def reward(self, goal, bought, converted):  # type: ignore[override]
        if not converted or goal is None:
            return 0.0
        scores = [goal_reward(goal, p, opts) for p, opts in bought if p is not None]
        return max(scores, default=0.0)


def _instruction(ptype: str, attrs: Mapping[str, str], opts: Mapping[str, str],
                 max_price: float | None) -> str:
    parts = [f"{k.lower()}: {v}" for k, v in attrs.items()]
    parts += [f"{k.lower()}: {v}" for k, v in opts.items()]
    with_ = f" with {', '.join(parts)}" if parts else ""
    price = "" if max_price is None else f", price lower than {max_price:.2f}"
    return f"Buy a {ptype.lower()}{with_}{price}."


#: task name -> class
TASKS: dict[str, type[Task]] = {"browse": BrowseTask, "goal": GoalTask}
