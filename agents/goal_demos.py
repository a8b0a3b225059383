"""Scripted demonstrations of the env's ``goal`` task, as agent-training traces.

Real sessions hold very few goal-directed episodes (only the hindsight goals of sessions that
bought), so an agent trained on them alone never learns to follow an instruction. These
helpers add scripted demonstrations of the env's ``goal`` task over bundled catalogs, on task
seeds that the goal benchmark (:mod:`simpersona_env.evaluation.goal`) never uses. They are
episodes like any other (:class:`agents.traces.Episode`, persona -1), written with the replay's
traces by ``simpersona traces goal_demos.n=N``.

Example:
    >>> eps, report = goal_demonstrations(["builtin"], 4, seed=0)  # doctest: +SKIP
    >>> report["kept"]["builtin"]  # doctest: +SKIP
    4
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agents.traces import OBSERVATION_KEYS, Episode, Step, _plain
from simpersona_env.env.oracle import ShopOracle
from simpersona_env.env.tasks import goal_reward
from simpersona_env.errors import DataError

__all__ = [
    "GOAL_DEMO_QUERIES",
    "GOAL_DEMO_STREAM",
    "GoalDemonstrator",
    "benchmark_task_seeds",
    "check_goal_demo_settings",
    "goal_demo_seed",
    "goal_demonstrations",
    "instruction_query",
]

#: Mixed into every demonstration seed, so the demonstrations' stream of task seeds is not the
#: goal benchmark's (which draws task j from ``BuyerPlan.of(seed, j)``) for any seed.
GOAL_DEMO_STREAM = 0x60A1_DE30

#: How a demonstration finds the product: ``instruction`` searches words of the instruction,
#: ``type`` only its product type (a shorter copy; fewer first results meet the goal),
#: ``title`` the product's title (the scripted oracle as it is; the title is not in the
#: instruction, so an agent cannot copy it).
GOAL_DEMO_QUERIES = ("instruction", "type", "title")


def benchmark_task_seeds(n_tasks: int, seeds: Iterable[int] = (0,)) -> set[int]:
    """The env seeds of the goal benchmark's first ``n_tasks`` tasks for each benchmark seed.

    Task ``j`` of ``goal_benchmark(seed=s)`` resets its env with ``BuyerPlan.of(s, j).env_seed``
    on every catalog.

    Example:
        >>> from simpersona_env.simulation.population import BuyerPlan
        >>> BuyerPlan.of(0, 3).env_seed in benchmark_task_seeds(5)
        True
    """
    from simpersona_env.simulation.population import BuyerPlan

    return {BuyerPlan.of(int(s), j).env_seed for s in seeds for j in range(int(n_tasks))}


def goal_demo_seed(seed: int, catalog: str, index: int) -> int:
    """The env seed of demonstration ``index`` of ``catalog`` (a stream apart from the
    benchmark's: ``(GOAL_DEMO_STREAM, seed, catalog)`` mixed by a SeedSequence).

    Example:
        >>> goal_demo_seed(0, "builtin", 0) == goal_demo_seed(0, "builtin", 0)
        True
    """
    import numpy as np

    from agents.profile import stable_hash

    ss = np.random.SeedSequence([GOAL_DEMO_STREAM, int(seed) & 0xFFFFFFFF,
                                 stable_hash("goal-demo", catalog) & 0xFFFFFFFF, int(index)])
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def instruction_query(instruction: str, max_words: int = 10) -> str:
    """The search words a buyer would take from a goal instruction: the instruction without
    "Buy a" and the price limit, cut to ``max_words`` words (the agent can copy them).

    Example:
        >>> instruction_query("Buy a dress with length: Maxi, color: Black, price lower than 40.00.")
        'dress with length: Maxi, color: Black'
    """
    text = re.sub(r"^\s*Buy an?\s+", "", instruction.strip())
    text = re.sub(r",?\s*price lower than [\d.,]+\.?\s*$", "", text).rstrip(". ")
    return " ".join(text.split()[:max_words])


class GoalDemonstrator(ShopOracle):
    """A scripted buyer for goal demonstrations: the task's oracle, made copyable.

    With ``query="instruction"`` it searches words of the instruction
    (:func:`instruction_query`; ``query="type"``: the instruction's product type) and clicks
    the first listed product that meets the goal (the catalog tells it which do; pages on
    with ``page-next``); it gives up (``stop``) when none is listed. With ``query="title"`` it finds the product as
    :class:`~simpersona_env.env.oracle.ShopOracle` does. Either way it picks the goal's
    options, carts the product, checks out and fills the form from the buyer profile
    :func:`agents.profile.checkout_details` (as the replay does), so demonstrations and
    replayed traces fill the form alike.

    Args:
        catalog: the store's catalog (``env.unwrapped.catalog``).
        buyer_id: keys the checkout profile.
        query: ``instruction`` or ``title``.
        max_words: longest search (words) for ``query="instruction"``.
        max_pages: result pages looked through before giving up.

    Example:
        >>> demo = GoalDemonstrator(env.unwrapped.catalog, "demo-0")  # doctest: +SKIP
        >>> demo.reset(-1, info["goal_spec"]); demo.act(obs)  # doctest: +SKIP
        'search[smartphone with camera: 108 MP, screen: 6.7 inch, storage: 128 GB]'
    """

    def __init__(self, catalog: Any, buyer_id: str, *, query: str = "instruction",
                 max_words: int = 10, max_pages: int = 5):
        from agents.profile import checkout_details

        if query not in GOAL_DEMO_QUERIES:
            from simpersona_env.errors import ConfigError

            raise ConfigError(f"goal demo query={query!r}: choose one of {GOAL_DEMO_QUERIES}")
        self.catalog, self.query, self.max_words = catalog, query, max_words
        fields, country = checkout_details(buyer_id)
        super().__init__(max_pages=max_pages, checkout=fields, country=country)

    def _meets(self, product_id: str) -> bool:
        p = self.catalog.by_id.get(product_id)
        if p is None or self.goal is None:
            return False
        opts = {k: v for k, v in self.goal.options.items() if v in p.options.get(k, [])}
        return goal_reward(self.goal, p, opts) >= 1.0 - 1e-9

    def _find(self, els: Mapping[str, tuple[str, str]]) -> str:
        if self.query == "title" or self.added or self.goal is None:
            return super()._find(els)
        if not self.searched:
            self.searched = True
            text = (self.goal.product_type.lower() if self.query == "type"
                    and self.goal.product_type else
                    instruction_query(self.goal.instruction, self.max_words))
            return f"search[{text}]"
        listed = [k[len("product-"):] for k in els if k.startswith("product-")]
        chosen = next((pid for pid in listed if self._meets(pid)), None)
        if chosen is not None:
            # the product page logic (ShopOracle.act) follows goal.product_id: point it here
            self.goal = dataclasses.replace(self.goal, product_id=chosen)
            return f"click[product-{chosen}]"
        if "page-next" in els and self.pages_seen < self.max_pages:
            self.pages_seen += 1
            return "click[page-next]"
        return "stop"  # no listed product meets the goal: the demonstration is dropped


def check_goal_demo_settings(catalogs: Sequence[str], n_per_catalog: int, *,
                             query: str = "instruction", max_steps: int = 30,
                             max_tries: int = 4) -> None:
    """Fail early (before any replay runs) on settings :func:`goal_demonstrations` rejects.

    Raises:
        ConfigError: a bad size or query, or no catalogs.
        UnknownNameError: a catalog that is not a bundled store preset (with "did you mean").
    """
    from simpersona_env.errors import ConfigError, UnknownNameError
    from storefront_mock.stores import STORE_PRESETS

    if n_per_catalog < 0 or max_tries < 1 or max_steps < 1:
        raise ConfigError(f"goal demos: n={n_per_catalog} must be >= 0, max_tries={max_tries} "
                          f"and max_steps={max_steps} >= 1")
    if query not in GOAL_DEMO_QUERIES:
        raise ConfigError(f"goal demos: query={query!r}; choose one of {GOAL_DEMO_QUERIES}")
    if not catalogs:
        raise ConfigError("goal demos: no catalogs; e.g. goal_demos.catalogs=[builtin]")
    for cat in catalogs:
        if cat not in STORE_PRESETS:
            raise UnknownNameError("catalog", cat, sorted(STORE_PRESETS))


def goal_demonstrations(catalogs: Sequence[str], n_per_catalog: int, *, seed: int = 0,
                        query: str = "instruction", max_words: int = 10, max_steps: int = 30,
                        max_tries: int = 4, benchmark_seeds: Sequence[int] = (0,),
                        benchmark_tasks: int = 1000, exclude_benchmark_goals: bool = True,
                        data_dir: str | None = None, progress: bool = True
                        ) -> tuple[list[Episode], dict[str, Any]]:
    """Successful scripted episodes of the ``goal`` task, to add to SFT traces.

    For each catalog, demonstrations ``i = 0, 1, ...`` reset the benchmark's own env (the
    bundled store built as ``goal_benchmark`` builds it, ``task="goal"``, a ``max_steps``
    limit) with :func:`goal_demo_seed`, skipping any seed among
    :func:`benchmark_task_seeds` (``benchmark_tasks`` tasks of each ``benchmark_seeds``) and,
    with ``exclude_benchmark_goals``, any task whose instruction one of those benchmark tasks
    also has; :class:`GoalDemonstrator` plays it and only episodes with goal success (reward
    1) are kept, up to ``n_per_catalog`` of ``n_per_catalog * max_tries`` tries. Episodes carry
    persona -1 and the instruction as goal (every observation shows it, as in the benchmark).

    Returns:
        (episodes, report): the report has, per catalog, ``added``, ``tried``, ``failed``
        (demonstrator did not reach reward 1), ``skipped_benchmark_seed``,
        ``skipped_benchmark_goal``, ``mean_steps``, ``env_seeds`` (of the added episodes, in
        order); plus the settings. A data-backed catalog
        whose data is missing is listed under ``skipped`` (not an error) unless none is left.

    Raises:
        ConfigError: bad sizes or query.
        DataError: none of the catalogs can be built.

    Example:
        >>> eps, report = goal_demonstrations(["builtin"], 2, progress=False)  # doctest: +SKIP
        >>> report["catalogs"]["builtin"]["added"], eps[0].persona  # doctest: +SKIP
        (2, -1)
    """
    import gymnasium as gym
    from gymnasium.utils.seeding import np_random
    from tqdm import tqdm

    from simpersona_env.commands.shop import StoreConfig, build_stores
    from simpersona_env.env.storefront_env import StorefrontEnv
    from simpersona_env.env.tasks import GoalTask
    from simpersona_env.env.wrappers import RecordGoalSuccess
    from simpersona_env.simulation.population import BuyerPlan
    from storefront_mock import EventLog, create_app

    check_goal_demo_settings(catalogs, n_per_catalog, query=query, max_steps=max_steps,
                             max_tries=max_tries)
    bench_seeds = benchmark_task_seeds(benchmark_tasks, benchmark_seeds)
    report: dict[str, Any] = {
        "n_per_catalog": n_per_catalog, "seed": seed, "query": query, "max_steps": max_steps,
        "benchmark_seeds": [int(s) for s in benchmark_seeds],
        "benchmark_tasks_excluded": benchmark_tasks,
        "exclude_benchmark_goals": exclude_benchmark_goals, "catalogs": {}, "skipped": {},
        "added": 0}
    episodes: list[Episode] = []
    for cat in catalogs:
        try:
            stores = build_stores(StoreConfig(name=cat, data_dir=data_dir))
        except DataError as exc:  # a data-backed preset without its data: skip, say why
            report["skipped"][cat] = str(exc)
            continue
        app = create_app(stores, EventLog())
        store_id = stores[0].store_id
        base = StorefrontEnv(app=app, store_id=store_id, backend="http", task="goal")
        env = RecordGoalSuccess(gym.wrappers.TimeLimit(base, max_steps))
        catalog = base.catalog
        bench_goals: set[str] = set()
        if exclude_benchmark_goals:
            # the benchmark's instructions on this catalog, drawn as its env draws them
            bench_goals = {GoalTask().setup(np_random(BuyerPlan.of(int(s), j).env_seed)[0],
                                            catalog, None).instruction
                           for s in benchmark_seeds for j in range(benchmark_tasks)}
        stats = {"added": 0, "tried": 0, "failed": 0, "skipped_benchmark_seed": 0,
                 "skipped_benchmark_goal": 0, "steps": 0, "store_id": store_id,
                 "env_seeds": []}
        bar = tqdm(total=n_per_catalog, desc=f"goal demos {cat}", unit="demo",
                   disable=not progress)
        i = 0
        while stats["added"] < n_per_catalog and stats["tried"] < n_per_catalog * max_tries:
            env_seed = goal_demo_seed(seed, cat, i)
            i += 1
            if env_seed in bench_seeds:
                stats["skipped_benchmark_seed"] += 1
                continue
            obs, info = env.reset(seed=env_seed, options={"persona": -1})
            if str(obs["goal"]) in bench_goals:
                stats["skipped_benchmark_goal"] += 1
                continue
            stats["tried"] += 1
            demo = GoalDemonstrator(catalog, f"goal-demo-{cat}-{env_seed}", query=query,
                                    max_words=max_words)
            demo.reset(-1, info["goal_spec"])
            steps: list[Step] = []
            done = False
            while not done:
                action = demo.act(obs)
                steps.append(Step({k: _plain(obs[k]) for k in OBSERVATION_KEYS if k in obs},
                                  action))
                obs, _, terminated, truncated, info = env.step(action)
                done = bool(terminated or truncated)
            if not info.get("goal", {}).get("success"):
                stats["failed"] += 1
                continue
            episodes.append(Episode(persona=-1, merchant_id=store_id,
                                    goal=str(steps[0].observation.get("goal", "")),
                                    steps=steps))
            stats["added"] += 1
            stats["steps"] += len(steps)
            stats["env_seeds"].append(env_seed)
            bar.update(1)
        bar.close()
        env.close()
        stats["mean_steps"] = round(stats["steps"] / max(stats["added"], 1), 2)
        report["catalogs"][cat] = stats
        report["added"] += stats["added"]
    if not report["catalogs"]:
        raise DataError(f"goal demos: none of the catalogs {list(catalogs)} could be built: "
                        f"{report['skipped']}")
    return episodes, report
