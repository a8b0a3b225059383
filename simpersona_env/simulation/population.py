"""Which buyer comes when: per-buyer persona, env seed and arrival time, from ``(seed, i)``.

Buyer ``i`` of a simulation is fully determined by the run's seed and ``i``: its env seed (the
visitor id and any drawn goal), its persona (drawn from the merchant's population by
:class:`~simpersona_env.env.wrappers.SamplePersona` with that env seed), its policy seed, its
arrival time and the think time between its actions. So the local runner with any number of
workers, the Ray runner, and a resumed run all produce the same episodes.

Example:
    >>> plan = BuyerPlan.of(seed=0, index=3)
    >>> plan == BuyerPlan.of(0, 3), plan.env_seed == BuyerPlan.of(0, 4).env_seed
    (True, False)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import gymnasium as gym
import numpy as np

from simpersona_env.env.wrappers import SamplePersona
from simpersona_env.errors import ConfigError, DataError

__all__ = ["BuyerPlan", "PopulationPersona", "population_probs"]

#: the simulated clock starts here unless the run says otherwise
DEFAULT_START = datetime(2026, 1, 1, 8, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class BuyerPlan:
    """What is fixed about buyer ``index`` before it acts (all from ``(seed, index)``)."""

    index: int
    env_seed: int
    policy_seed: int
    arrival_s: float  # seconds after the run's start time
    think_seed: int  # seeds the think times between actions
    visits_seed: int = 0  # seeds the number of sessions and the gaps between them

    @classmethod
    def of(cls, seed: int, index: int, window_s: float = 6 * 3600.0) -> BuyerPlan:
        # SeedSequence mixes (seed, index) into independent streams; never seed + index,
        # which would make run 0's buyer 1 run 1's buyer 0. Its words are prefix-stable:
        # the fifth, added later, leaves the first four (and older runs' buyers) as they were.
        ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)])
        a, b, c, d, e = ss.generate_state(5, dtype=np.uint32).tolist()
        return cls(index=int(index), env_seed=int(a), policy_seed=int(b),
                   arrival_s=float(c) / 2**32 * window_s, think_seed=int(d), visits_seed=int(e))

    def visits(self, sessions: Sequence[float], gap_median_s: float = 86400.0,
               sigma: float = 1.0, min_gap_s: float = 1860.0) -> tuple[int, list[float]]:
        """How many sessions this buyer has, and the seconds between the end of one and the
        start of the next (log-normal around ``gap_median_s``, at least ``min_gap_s``: just
        past the bundled shop's 30-minute session timeout, so it starts a new session).

        Args:
            sessions: the probabilities of 1, 2, ... sessions (the buyer's type's).

        Example:
            >>> BuyerPlan.of(0, 1).visits([1.0])
            (1, [])
            >>> n, gaps = BuyerPlan.of(0, 1).visits([0.0, 0.0, 1.0]); n, len(gaps)
            (3, 2)
        """
        p = np.asarray(sessions, float)
        rng = np.random.default_rng(self.visits_seed)
        n = 1 + int(rng.choice(p.size, p=p / p.sum()))
        mu = float(np.log(max(gap_median_s, 1e-3)))
        return n, [max(float(rng.lognormal(mu, sigma)), min_gap_s) for _ in range(n - 1)]

    def think_times(self, median_s: float = 20.0, sigma: float = 1.0) -> ThinkTimes:
        """The seconds between this buyer's requests (log-normal around ``median_s``)."""
        return ThinkTimes(self.think_seed, median_s, sigma)

    def start(self, start: datetime = DEFAULT_START) -> datetime:
        return start + timedelta(seconds=self.arrival_s)


class ThinkTimes:
    """An endless, seeded stream of think times (seconds)."""

    def __init__(self, seed: int, median_s: float, sigma: float):
        self._rng = np.random.default_rng(seed)
        self.mu, self.sigma = float(np.log(max(median_s, 1e-3))), float(sigma)

    def __next__(self) -> float:
        return float(self._rng.lognormal(self.mu, self.sigma))

    def __iter__(self) -> ThinkTimes:
        return self


def population_probs(population: Any, merchant: str | None = None, k: int | None = None
                     ) -> list[float]:
    """A merchant's type shares from a population given in any usual form.

    Args:
        population: a :class:`~simpersona_env.personas.population.Population`; a dict of them
            (or a ``populations.json`` path / document) keyed by merchant, with ``merchant``
            naming one (falling back to ``__all__``); a list of counts or shares.
        merchant: which merchant of a keyed population.
        k: the number of types expected (checked when given).

    Raises:
        DataError: the merchant is not in the populations, or the population is empty.
        ConfigError: a population of another size than ``k``.

    Example:
        >>> population_probs([2, 1, 1])
        [0.5, 0.25, 0.25]
    """
    import json
    from pathlib import Path

    from simpersona_env.personas.population import ALL_MERCHANTS, Population

    pop = population
    if isinstance(pop, (str, Path)):
        p = Path(pop)
        if not p.is_file():
            raise DataError(f"population={pop}: no such file; write one with `simpersona "
                            "personas assign` (populations.json)")
        pop = json.loads(p.read_text())
    if isinstance(pop, Mapping) and "populations" in pop:
        pop = pop["populations"]
    if isinstance(pop, Mapping):
        key = merchant if merchant in pop else ALL_MERCHANTS if ALL_MERCHANTS in pop else None
        if key is None:
            raise DataError(f"merchant {merchant!r} has no population (populations for "
                            f"{sorted(pop)[:8]}); simulate one of those or assign its buyers")
        pop = pop[key]
    if isinstance(pop, Mapping):
        pop = Population.from_dict(dict(pop))
    weights = np.asarray(pop.counts if isinstance(pop, Population) else pop, dtype=float)
    if weights.ndim != 1 or weights.size == 0 or (weights < 0).any() or weights.sum() <= 0:
        raise DataError(f"a population needs non-negative weights with a positive sum, got "
                        f"{weights.tolist()[:10]}")
    if k is not None and weights.size != k:
        raise ConfigError(f"the population has {weights.size} types but k={k}")
    return (weights / weights.sum()).tolist()


class PopulationPersona(SamplePersona):
    """:class:`SamplePersona` that also puts the drawn ``persona`` and the ``merchant_id`` in
    ``info`` at reset, so every record of the episode names its buyer type.

    Example:
        >>> import gymnasium as gym, simpersona_env
        >>> env = PopulationPersona(gym.make("simpersona/Storefront-v0", num_personas=2),
        ...                         [0.0, 1.0], merchant_id="builtin")
        >>> env.reset(seed=0)[1]["persona"]
        1
    """

    def __init__(self, env: gym.Env, probs: Sequence[float], merchant_id: str = ""):
        super().__init__(env, probs)
        self.merchant_id = merchant_id

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = super().reset(seed=seed, options=options)
        return obs, {**info, "persona": int(obs["persona"]), "merchant_id": self.merchant_id}
