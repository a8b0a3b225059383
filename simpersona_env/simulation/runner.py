"""Run a merchant's buyer population on its storefront: local worker processes or Ray actors.

Each worker (a local process, or a Ray actor) owns one bundled-shop app (with a simulated
clock), its envs and one policy. Work is handed out in fixed batches of consecutive buyer
indices; a policy with ``act_batch`` drives the batch's envs in lockstep with one batched
call per step, any other policy runs the batch's buyers one after the other. Because each
buyer's persona, env seed, policy seed and think times derive from ``(seed, index)``
(:class:`~simpersona_env.simulation.population.BuyerPlan`) and batches are fixed, the
episodes do not depend on the runner or the number of workers.

Finished episodes come back to the driver, which writes each as it arrives
(:class:`~simpersona_env.simulation.episodes.EpisodeWriter`); a resumed run re-runs only the
batches with missing episodes and writes only those.

Example:
    >>> spec = SimulationSpec(population=[0.5, 0.5], n_buyers=4,
    ...                       policy={"_target_": "agents.policies.random.RandomPolicy"})
    >>> res = simulate(spec, "runs/sim-doc", workers=0, progress=False, overwrite=True)  # doctest: +SKIP
    >>> res.summary["episodes"]  # doctest: +SKIP
    4
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import random
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from simpersona_env.errors import ConfigError, SimPersonaError, UnknownNameError
from simpersona_env.simulation.episodes import (
    EPISODES_FILE,
    EVENTS_FILE,
    EpisodeWriter,
    read_episode_records,
    write_event_log,
)
from simpersona_env.simulation.population import DEFAULT_START, BuyerPlan

__all__ = [
    "RUNNERS",
    "SimulationError",
    "SimulationResult",
    "SimulationSpec",
    "SimulationWorker",
    "make_policy",
    "simulate",
    "summarize",
]

RUNNERS = ("local", "ray")
SPEC_FILE = "simulation.json"

#: short names for policies that live in this library (the others are "module:Class")
_BUILTIN_POLICIES = {"oracle": "simpersona_env.env.oracle:ShopOracle"}


class SimulationError(SimPersonaError, RuntimeError):
    """A worker failed or died; the message carries its traceback. Finished episodes are kept."""


@dataclasses.dataclass
class SimulationSpec:
    """Everything a worker needs to rebuild the run (JSON-able, so it travels to processes).

    Attributes:
        store: the bundled store settings (fields of ``simpersona_env.commands.shop.StoreConfig``;
            ``name=events`` with ``events=<log>`` gives one store per merchant of a log).
        store_id: the merchant's store (default: the first store).
        population: the merchant's type shares (length K; K = the env's ``num_personas``).
        policy: ``{"_target_": "module:Class" or "module.Class", **kwargs}`` or ``"oracle"``.
        policy_name: the name the records carry.
        n_buyers: how many buyers (episodes).
        seed: the run's seed; buyer i is fixed by (seed, i).
        batch_size: buyers per batch (envs in lockstep for a policy with ``act_batch``).
        backend: ``http`` or ``playwright`` (+ ``browser_path``, timeouts).
        task: ``browse`` or ``goal``.
        max_steps: step limit of an episode (truncation).
        record_observations: keep each step's full observation (large) or only url and error.
        start: ISO time of the simulated clock's start; ``window_s``: arrivals spread over it;
        think_median_s: median seconds between a buyer's actions (log-normal).
        personas: show the sampled type to the policy; False runs every buyer as persona -1
            (the no-persona baseline; an empty ``population`` does the same).
        sessions: how many sessions a buyer has: ``[]`` one each; else the probabilities of
            1, 2, ... sessions, one list per type (K lists) or one list for every buyer. A
            buyer's next session is the same visitor (its cookie, hence its cart) returning
            after a gap, with the policy reset; the buyer's record holds all its sessions.
        session_gap_median_s: median seconds between a buyer's sessions (log-normal, at
            least 31 minutes, so the shop's 30-minute session timeout separates them).
    """

    store: dict[str, Any] = dataclasses.field(default_factory=lambda: {"name": "builtin"})
    store_id: str = ""
    population: list[float] = dataclasses.field(default_factory=lambda: [1.0])
    policy: Any = dataclasses.field(
        default_factory=lambda: {"_target_": "agents.policies.random.RandomPolicy"})
    policy_name: str = ""
    n_buyers: int = 10
    seed: int = 0
    batch_size: int = 1
    backend: dict[str, Any] = dataclasses.field(default_factory=lambda: {"name": "http"})
    task: str = "browse"
    max_steps: int = 50
    record_observations: bool = False
    start: str = DEFAULT_START.isoformat()
    window_s: float = 6 * 3600.0
    think_median_s: float = 20.0
    personas: bool = True
    sessions: list[list[float]] = dataclasses.field(default_factory=list)
    session_gap_median_s: float = 86400.0

    def __post_init__(self) -> None:
        if self.n_buyers < 0:
            raise ConfigError(f"n_buyers={self.n_buyers} must be >= 0")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} must be >= 1")
        if self.max_steps < 1:
            raise ConfigError(f"max_steps={self.max_steps} must be >= 1")
        if not self.policy_name:
            self.policy_name = _policy_label(self.policy)
        if self.sessions:
            k = max(1, len(self.population))
            if len(self.sessions) not in (1, k):
                raise ConfigError(f"sessions has {len(self.sessions)} distributions; give one per "
                                  f"type ({k}) or one for every buyer")
            for d in self.sessions:
                if (not d or any(not isinstance(x, (int, float)) or x < 0 for x in d)
                        or sum(d) <= 0):
                    raise ConfigError(f"sessions: {d!r} is not a distribution over 1, 2, ... "
                                      "sessions (non-negative, positive sum)")
            if self.task != "browse" and any(len(d) > 1 for d in self.sessions):
                raise ConfigError(f"sessions: a task={self.task} buyer has one session (a goal "
                                  "is one visit); set sessions=[] or task=browse")
        if self.session_gap_median_s <= 0:
            raise ConfigError(f"session_gap_median_s={self.session_gap_median_s} must be > 0")

    def session_probs(self, persona: int) -> list[float]:
        """The distribution of a buyer's number of sessions: its type's; the population's
        mixture for a buyer whose type is hidden (persona -1); one session without
        ``sessions``."""
        if not self.sessions:
            return [1.0]
        if len(self.sessions) == 1:
            return list(self.sessions[0])
        if 0 <= persona < len(self.sessions):
            return list(self.sessions[persona])
        width = max(len(d) for d in self.sessions)
        mix = [0.0] * width
        for w, d in zip(self.population, self.sessions):
            for j, x in enumerate(d):
                mix[j] += float(w) * float(x) / sum(d)
        return mix

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if hasattr(self.policy, "act"):  # an object passed in: named by its class
            d["policy"] = f"<{type(self.policy).__module__}.{type(self.policy).__qualname__}>"
        return json.loads(json.dumps(d, default=str))

    def batches(self) -> list[list[int]]:
        """The fixed batches of buyer indices."""
        return [list(range(s, min(s + self.batch_size, self.n_buyers)))
                for s in range(0, self.n_buyers, self.batch_size)]


def _policy_label(policy: Any) -> str:
    if hasattr(policy, "act"):
        return type(policy).__name__
    target = policy if isinstance(policy, str) else dict(policy).get("_target_", "policy")
    return str(target).replace(":", ".").rsplit(".", 1)[-1]


def _import_target(target: str) -> Any:
    target = _BUILTIN_POLICIES.get(target, target)
    module, _, name = target.partition(":") if ":" in target else target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise UnknownNameError("policy", target, [*_BUILTIN_POLICIES, "module:Class"]) from exc


def make_policy(policy: Any) -> Any:
    """A policy from its spec: ``"oracle"``, ``"module:Class"``, or a dict with ``_target_``
    (hydra style) and keyword arguments. An object with ``act`` is returned as is.

    Raises:
        UnknownNameError: a target that cannot be imported.

    Example:
        >>> make_policy("oracle").__class__.__name__
        'ShopOracle'
    """
    if hasattr(policy, "act"):
        return policy
    if isinstance(policy, str):
        return _import_target(policy)()
    kwargs = dict(policy)
    target = kwargs.pop("_target_", None)
    if not target:
        raise ConfigError(f"a policy spec needs _target_ (module:Class), got {sorted(kwargs)}")
    kwargs = {k: v for k, v in kwargs.items() if not str(k).startswith("_")}
    return _import_target(str(target))(**kwargs)


def _reseed(policy: Any, seed: int) -> None:
    """Put the policy's random stream at ``seed``, whatever ran before on this worker."""
    if callable(getattr(policy, "seed", None)):
        policy.seed(seed)
        return
    rng = getattr(policy, "rng", None)
    if isinstance(rng, random.Random):
        rng.seed(seed)
    elif rng is not None and hasattr(rng, "bit_generator"):
        policy.rng = type(rng)(type(rng.bit_generator)(seed))
    gen = getattr(policy, "generator", None)
    if gen is not None and callable(getattr(gen, "manual_seed", None)):
        gen.manual_seed(int(seed))


def _is_batch(policy: Any) -> bool:
    return callable(getattr(policy, "act_batch", None)) and callable(
        getattr(policy, "reset_batch", None))


def _wants_goal_spec(policy: Any) -> bool:
    from simpersona_env.env.oracle import ShopOracle

    return isinstance(policy, ShopOracle) or bool(getattr(policy, "wants_goal_spec", False))


class _Clock:
    """The shop's clock: the driver sets ``now`` before each request of a buyer."""

    def __init__(self) -> None:
        self.now: datetime = DEFAULT_START

    def __call__(self) -> datetime:
        return self.now


@dataclasses.dataclass
class _Live:
    plan: BuyerPlan
    env: Any
    obs: Any
    info: dict[str, Any]
    think: Any
    now: datetime
    t0: float
    steps: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    reward: float = 0.0
    done: bool = False


@dataclasses.dataclass
class _Visits:
    """A buyer's sessions so far: how many it has, the gaps between them, their records."""

    n: int
    gaps: list[float]
    think: Any
    records: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    end: datetime | None = None

    @property
    def complete(self) -> bool:
        return len(self.records) >= self.n


class SimulationWorker:
    """One shop app (simulated clock), its envs and one policy; runs batches of buyers.

    Example:
        >>> w = SimulationWorker(SimulationSpec(population=[1.0], n_buyers=1, policy="oracle"))
        >>> [r["funnel"]["purchase"] for r in w.run_batch([0])]
        [True]
    """

    def __init__(self, spec: SimulationSpec | Mapping[str, Any]):
        from simpersona_env.commands.shop import StoreConfig, build_stores
        from storefront_mock import EventLog, create_app

        self.spec = spec if isinstance(spec, SimulationSpec) else SimulationSpec(**spec)
        store = {k: v for k, v in self.spec.store.items() if k in
                 {f.name for f in dataclasses.fields(StoreConfig)}}
        self.clock = _Clock()
        stores = build_stores(StoreConfig(**store))
        self.app = create_app(stores, EventLog(), clock=self.clock)
        self.shop = self.app.state.shop
        self.store_id = self.spec.store_id or stores[0].store_id
        if self.store_id not in self.shop.stores:
            raise UnknownNameError("store id", self.store_id, self.shop.stores)
        self.policy = make_policy(self.spec.policy)
        self.envs: list[Any] = []
        self.start = datetime.fromisoformat(self.spec.start)

    def _env(self, i: int) -> Any:
        import gymnasium as gym

        from simpersona_env.env.storefront_env import StorefrontEnv
        from simpersona_env.env.wrappers import RecordFunnel, RecordGoalSuccess
        from simpersona_env.simulation.population import PopulationPersona

        while len(self.envs) <= i:
            b = self.spec.backend
            base = StorefrontEnv(app=self.app, store_id=self.store_id, backend=b.get("name", "http"),
                                 task=self.spec.task,
                                 num_personas=max(1, len(self.spec.population)),
                                 browser_path=b.get("browser_path") or "",
                                 action_timeout_s=float(b.get("action_timeout_s", 5.0)),
                                 navigation_timeout_s=float(b.get("navigation_timeout_s", 30.0)))
            env = RecordGoalSuccess(RecordFunnel(gym.wrappers.TimeLimit(base, self.spec.max_steps)))
            if self.spec.population:
                env = PopulationPersona(env, self.spec.population, self.store_id)
            self.envs.append(env)
        return self.envs[i]

    def close(self) -> None:
        for env in self.envs:
            env.close()
        self.envs = []

    # -- one batch ---------------------------------------------------------------------------
    def run_batch(self, indices: Sequence[int]) -> Iterator[dict[str, Any]]:
        """Run the buyers ``indices``; yields each buyer's record (all its sessions) as its
        last session ends."""
        plans = [BuyerPlan.of(self.spec.seed, i, self.spec.window_s) for i in indices]
        if _is_batch(self.policy) and len(plans) > 1:
            yield from self._buyers(plans)
        else:
            for plan in plans:
                yield from self._buyers([plan])

    def _buyers(self, plans: list[BuyerPlan]) -> Iterator[dict[str, Any]]:
        """The buyers' sessions in rounds: session r of every buyer that has one, in
        lockstep; a buyer's record comes out when its last session ends."""
        self.shop.event_log.clear()  # every env of the batch resets below, so none is mid-log
        lives = [self._begin(j, p) for j, p in enumerate(plans)]
        visits: dict[int, _Visits] = {}
        for lv in lives:
            n, gaps = lv.plan.visits(self.spec.session_probs(lv.info["persona"]),
                                     self.spec.session_gap_median_s)
            visits[lv.plan.index] = _Visits(n, gaps, lv.think)
        first: dict[int, _Live] = {lv.plan.index: lv for lv in lives}
        session = 0
        while lives:
            for lv, info, terminated, truncated in self._lockstep(lives, session):
                v = visits[lv.plan.index]
                v.records.append(self._record(lv, info, terminated, truncated))
                v.end = lv.now
                if v.complete:
                    yield _merge_sessions(v.records)
            back = [first[lv.plan.index] for lv in lives if not visits[lv.plan.index].complete]
            self.shop.event_log.clear()  # every session of the round has ended and been read
            lives = [self._return(j, lv, visits[lv.plan.index]) for j, lv in enumerate(back)]
            session += 1

    def _begin(self, slot: int, plan: BuyerPlan) -> _Live:
        env = self._env(slot)
        now = plan.start(self.start)
        self.clock.now = now
        hide = not (self.spec.personas and self.spec.population)
        # persona -1 given explicitly: SamplePersona does not draw, the policy sees no type
        obs, info = env.reset(seed=plan.env_seed, options={"persona": -1} if hide else None)
        info = {**info, "persona": int(info.get("persona", -1))}
        return _Live(plan, env, obs, info, plan.think_times(self.spec.think_median_s), now,
                     time.perf_counter())

    def _return(self, slot: int, first: _Live, v: _Visits) -> _Live:
        """The buyer of ``first`` back for its next session: same visitor, same type."""
        env = self._env(slot)
        r = len(v.records)
        assert v.end is not None
        now = v.end + _seconds(v.gaps[r - 1])
        self.clock.now = now
        seed = int(np.random.SeedSequence([first.plan.env_seed, r]).generate_state(1)[0])
        obs, info = env.reset(seed=seed, options={"persona": first.info["persona"],
                                                  "visitor": first.info["visitor_id"]})
        info = {**info, "persona": int(info.get("persona", -1))}
        return _Live(first.plan, env, obs, info, v.think, now, time.perf_counter())

    def _goal_for(self, live: _Live) -> Any:
        if _wants_goal_spec(self.policy):
            return live.info.get("goal_spec") or str(live.obs.get("goal") or "")
        return str(live.obs.get("goal") or "")

    def _lockstep(self, lives: list[_Live], session: int = 0
                  ) -> Iterator[tuple[_Live, dict[str, Any], bool, bool]]:
        """Run the begun sessions ``lives`` (round ``session`` of their buyers) to their ends;
        yields each as it ends."""
        batch = _is_batch(self.policy) and len(lives) > 1
        seed = lives[0].plan.policy_seed
        if session:  # a later round: its own stream, from its first buyer and the round
            seed = int(np.random.SeedSequence([seed, session]).generate_state(1)[0])
        _reseed(self.policy, seed)
        if batch:
            self.policy.reset_batch([lv.info["persona"] for lv in lives],
                                    [self._goal_for(lv) for lv in lives])
        else:
            self.policy.reset(lives[0].info["persona"], self._goal_for(lives[0]))
        while not all(lv.done for lv in lives):
            if batch:
                # finished slots still get their last observation: the slots stay aligned
                actions = list(self.policy.act_batch([lv.obs for lv in lives]))
            else:
                actions = [self.policy.act(lives[0].obs)]
            for lv, action in zip(lives, actions):
                if lv.done:
                    continue
                lv.steps.append({"observation": self._obs_record(lv.obs), "action": str(action)})
                lv.now = lv.now + _seconds(next(lv.think))
                self.clock.now = lv.now
                lv.obs, reward, terminated, truncated, info = lv.env.step(str(action))
                lv.reward += float(reward)
                if terminated or truncated:
                    lv.done = True
                    yield lv, info, bool(terminated), bool(truncated)

    def _obs_record(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        if self.spec.record_observations:
            return {k: (v.item() if hasattr(v, "item") else v) for k, v in obs.items()}
        return {"url": obs["url"], "last_action_error": obs["last_action_error"]}

    def _record(self, lv: _Live, info: dict[str, Any], terminated: bool, truncated: bool
                ) -> dict[str, Any]:
        visitor = lv.info.get("visitor_id")
        events = self.shop.event_log.rows(buyer_id=visitor) if visitor else []
        return {
            "index": lv.plan.index, "seed": lv.plan.env_seed, "merchant_id": self.store_id,
            "persona": int(lv.info["persona"]), "visitor_id": visitor,
            "goal": str(lv.obs.get("goal") or ""), "goal_spec": lv.info.get("goal_spec"),
            "policy": self.spec.policy_name, "theme": self._theme(visitor),
            "steps": lv.steps, "funnel": info.get("funnel"), "goal_result": info.get("goal"),
            "reward": lv.reward, "terminated": terminated, "truncated": truncated,
            "seconds": round(time.perf_counter() - lv.t0, 4), "events": events,
        }

    def _theme(self, visitor: str | None) -> str:
        store = self.shop.stores[self.store_id]
        return store.theme_for(visitor) if visitor else store.theme


def _seconds(s: float):
    from datetime import timedelta

    return timedelta(seconds=float(s))


def _merge_sessions(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One buyer's record from its sessions' records (in order): the first's identity, all
    steps (each tagged with its ``session``) and events, the furthest funnel stage, summed
    reward; ``sessions`` says what each session did."""
    from storefront_mock.canonical import FUNNEL_STAGES

    order = ("visit", *FUNNEL_STAGES)
    for r, rec in enumerate(records):
        for step in rec["steps"]:
            step["session"] = r
    first, last = records[0], records[-1]
    funnels = [rec.get("funnel") or {} for rec in records]
    stage = max((f.get("stage", "visit") for f in funnels),
                key=lambda st: order.index(st) if st in order else 0)
    funnel = {"stage": stage, "cart_adds": sum(int(f.get("cart_adds", 0)) for f in funnels),
              "cart_value": max(float(f.get("cart_value", 0.0)) for f in funnels),
              "purchase": any(bool(f.get("purchase")) for f in funnels),
              "purchased": [p for f in funnels for p in f.get("purchased", [])],
              "steps": sum(int(f.get("steps", 0)) for f in funnels)}
    return {**first, "steps": [s for rec in records for s in rec["steps"]], "funnel": funnel,
            "goal_result": last.get("goal_result"),
            "reward": sum(float(rec["reward"]) for rec in records),
            "terminated": last["terminated"], "truncated": last["truncated"],
            "seconds": round(sum(float(rec["seconds"]) for rec in records), 4),
            "events": [e for rec in records for e in rec["events"]],
            "sessions": [{"steps": len(rec["steps"]), "stage": (rec.get("funnel") or {})
                          .get("stage", "visit"), "purchase": bool((rec.get("funnel") or {})
                                                                   .get("purchase")),
                          "terminated": rec["terminated"], "truncated": rec["truncated"]}
                         for rec in records]}


# ---------------------------------------------------------------------------------- runners

def _local_worker(spec: dict[str, Any], tasks: Any, results: Any) -> None:
    """A worker process: pull batches until a ``None``; send each episode as it ends."""
    try:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        worker = SimulationWorker(spec)
        while True:
            batch = tasks.get()
            if batch is None:
                break
            for record in worker.run_batch(batch):
                results.put(("episode", record))
        worker.close()
        results.put(("done", None))
    except BaseException as exc:  # noqa: BLE001 - carried to the driver with its traceback
        results.put(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


def _run_local(spec: SimulationSpec, batches: list[list[int]], workers: int) -> Iterator[dict]:
    if workers <= 0:  # in this process: no start-up cost, one policy (e.g. on the GPU)
        worker = SimulationWorker(spec)
        try:
            for batch in batches:
                yield from worker.run_batch(batch)
        finally:
            worker.close()
        return
    import multiprocessing as mp
    import queue as queue_mod

    # spawn, not fork: a policy may hold torch threads or a browser, which fork breaks
    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    for b in batches:
        tasks.put(b)
    n = max(1, min(workers, len(batches)))
    for _ in range(n):
        tasks.put(None)
    procs = [ctx.Process(target=_local_worker, args=(spec.to_dict(), tasks, results), daemon=True)
             for _ in range(n)]
    for p in procs:
        p.start()
    finished = 0
    try:
        while finished < n:
            try:
                kind, payload = results.get(timeout=1.0)
            except queue_mod.Empty:
                dead = [p for p in procs if not p.is_alive() and p.exitcode not in (0, None)]
                if dead:
                    raise SimulationError(f"a simulation worker died (exit code "
                                          f"{dead[0].exitcode}); finished episodes are kept: "
                                          "rerun with resume=true") from None
                continue
            if kind == "episode":
                yield payload
            elif kind == "done":
                finished += 1
            else:
                raise SimulationError(f"a simulation worker failed; finished episodes are kept "
                                      f"(rerun with resume=true once fixed):\n{payload}")
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join(timeout=5)


class _RayActorBody:
    """The body of a Ray actor: one :class:`SimulationWorker`."""

    def __init__(self, spec: dict[str, Any]):
        self.worker = SimulationWorker(spec)

    def run(self, batch: list[int]) -> list[dict[str, Any]]:
        return list(self.worker.run_batch(batch))


def _run_ray(spec: SimulationSpec, batches: list[list[int]], workers: int,
             num_cpus: int | None, address: str | None) -> Iterator[dict]:
    try:
        import ray
        from ray.util import ActorPool
    except ImportError as exc:  # pragma: no cover - ray is an optional extra
        raise ConfigError("runner=ray needs Ray: pip install 'ray[default]'") from exc
    started = False
    if not ray.is_initialized():
        root = str(Path(__file__).resolve().parents[2])
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "ignore_reinit_error": True,
                                  "runtime_env": {"env_vars": {"PYTHONPATH": os.pathsep.join(
                                      [root, os.environ.get("PYTHONPATH", "")])}}}
        if address:
            kwargs["address"] = address
        else:
            kwargs["num_cpus"] = num_cpus or os.cpu_count() or 2
        ray.init(**kwargs)
        started = True
    try:
        if not batches:
            return
        n = max(1, min(workers or 1, len(batches)))
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        actor_cls = ray.remote(num_cpus=min(1.0, cpus / n))(_RayActorBody)
        actors = [actor_cls.remote(spec.to_dict()) for _ in range(n)]
        pool = ActorPool(actors)
        try:
            for records in pool.map_unordered(lambda a, b: a.run.remote(b), batches):
                yield from records
        except ray.exceptions.RayError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, SimPersonaError):
                raise cause from None
            raise SimulationError(f"a Ray simulation actor failed; finished episodes are kept "
                                  f"(rerun with resume=true once fixed): {exc}") from None
        finally:
            for a in actors:
                ray.kill(a)
    finally:
        if started:
            ray.shutdown()


# ----------------------------------------------------------------------------------- driver

@dataclasses.dataclass
class SimulationResult:
    """Where a simulation wrote its outputs, and its summary."""

    out_dir: Path
    summary: dict[str, Any]

    @property
    def episodes_path(self) -> Path:
        return self.out_dir / EPISODES_FILE

    @property
    def events_path(self) -> Path:
        return self.out_dir / EVENTS_FILE

    def records(self) -> list[dict[str, Any]]:
        return read_episode_records(self.episodes_path)


def summarize(records: Sequence[Mapping[str, Any]], k: int | None = None) -> dict[str, Any]:
    """Episode-level figures of a simulation: funnel reached, conversion, persona counts."""
    from storefront_mock.canonical import FUNNEL_STAGES

    n = len(records)
    order = ("visit", *FUNNEL_STAGES)
    reach = {s: 0 for s in order}
    counts: dict[int, int] = {}
    for r in records:
        stage = (r.get("funnel") or {}).get("stage", "visit")
        for s in order[: order.index(stage) + 1 if stage in order else 1]:
            reach[s] += 1
        counts[int(r["persona"])] = counts.get(int(r["persona"]), 0) + 1
    steps = [len(r.get("steps", [])) for r in records]
    return {
        "episodes": n,
        "conversion_rate": reach["purchase"] / n if n else None,
        "stage_reached_share": {s: (v / n if n else None) for s, v in reach.items()},
        "mean_steps": sum(steps) / n if n else None,
        "mean_reward": sum(float(r.get("reward", 0.0)) for r in records) / n if n else None,
        "truncated": sum(bool(r.get("truncated")) for r in records),
        "persona_counts": ([counts.get(i, 0) for i in range(k)] if k
                           else {str(i): c for i, c in sorted(counts.items())}),
        "events": sum(len(r.get("events", [])) for r in records),
        "sessions": sum(len(r.get("sessions") or [None]) for r in records),
    }


def simulate(spec: SimulationSpec, out_dir: str | Path, *, runner: str = "local",
             workers: int = 0, resume: bool = False, overwrite: bool = False,
             progress: bool = True, num_cpus: int | None = None, address: str | None = None,
             ) -> SimulationResult:
    """Run ``spec.n_buyers`` buyers and write ``episodes.jsonl`` (as they end),
    ``events.parquet`` (the shop's canonical log) and ``simulation.json`` (spec + summary).

    Args:
        spec: the run.
        out_dir: output folder.
        runner: ``local`` (``workers`` processes; 0 = in this process) or ``ray`` (``workers``
            actors; a local Ray instance with ``num_cpus`` unless ``address`` names a cluster).
        workers: worker processes or actors.
        resume: continue the run in ``out_dir`` (same spec): only missing episodes are run.
        overwrite: discard what ``out_dir`` holds.
        progress: show a progress bar.

    Returns:
        A :class:`SimulationResult`.

    Raises:
        ConfigError: an unknown runner; ``out_dir`` holds another run (resume) or a run
            (neither resume nor overwrite).
        SimulationError: a worker failed (finished episodes stay in the file).
    """
    from tqdm.auto import tqdm

    if runner not in RUNNERS:
        raise UnknownNameError("runner", runner, RUNNERS)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec_doc = spec.to_dict()
    spec_path = out / SPEC_FILE
    if resume and spec_path.exists():
        old = json.loads(spec_path.read_text()).get("spec")
        # more (or fewer) buyers is fine: buyer i does not depend on how many there are;
        # a setting added since the run was written counts as its default there
        defaults = SimulationSpec(policy="oracle").to_dict()
        changed = sorted(k for k in spec_doc if k != "n_buyers" and old is not None
                         and old.get(k, defaults.get(k)) != spec_doc[k])
        if changed:
            raise ConfigError(f"{out} holds a run with other settings ({', '.join(changed)}); "
                              "resume it with the same settings, or pass overwrite=true or "
                              "another out_dir")
    if not hasattr(spec.policy, "act"):  # a bad target fails here, typed, not in a worker
        target = spec.policy if isinstance(spec.policy, str) else dict(spec.policy).get("_target_")
        if not target:
            raise ConfigError(f"a policy spec needs _target_ (module:Class), got {spec.policy!r}")
        _import_target(str(target))
    writer = EpisodeWriter(out / EPISODES_FILE, resume=resume, overwrite=overwrite)
    spec_path.write_text(json.dumps({"spec": spec_doc, "status": "running"}, indent=2) + "\n")
    todo = [b for b in spec.batches() if any(i not in writer.done for i in b)]
    t0 = time.perf_counter()
    bar = tqdm(total=spec.n_buyers, initial=len(writer.done), desc=f"simulate {spec.policy_name}",
               unit="buyer", disable=not progress, leave=False)
    new = 0
    try:
        stream = (_run_local(spec, todo, workers) if runner == "local"
                  else _run_ray(spec, todo, workers, num_cpus, address))
        for record in stream:
            if record["index"] in writer.done:  # a re-run batch's episode written before
                continue
            writer.write(record)
            new += 1
            bar.update(1)
    finally:
        bar.close()
        writer.close()
    seconds = time.perf_counter() - t0
    records = read_episode_records(out / EPISODES_FILE)
    write_event_log(records, out / EVENTS_FILE)
    summary = {**summarize(records, len(spec.population)), "new_episodes": new,
               "resumed": bool(resume and len(records) > new), "runner": runner,
               "workers": workers, "seconds": round(seconds, 3),
               "episodes_per_s": round(new / seconds, 3) if seconds > 0 else None}
    spec_path.write_text(json.dumps({"spec": spec_doc, "status": "complete", "summary": summary},
                                    indent=2) + "\n")
    return SimulationResult(out, summary)
