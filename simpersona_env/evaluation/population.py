"""Population evaluation on held-out merchants: simulate each merchant's buyer types with each
policy and compare the simulated funnel with the real one.

The protocol (issue 6, the paper's evaluation):

1. The buyer-type model (VQ-VAE) and the agent are trained on *training merchants* only;
   :func:`heldout_protocol` never looks at them.
2. For each held-out merchant its buyers are split in two disjoint halves by a stable hash
   (:func:`simpersona_env.buyers.split.buyer_split`): the ``train`` half is assigned types by
   the VQ-VAE and gives the merchant's **population**; the ``heldout`` half gives the **real**
   funnel rates.
3. Each policy plays ``n_buyers`` buyers drawn from the population on the merchant's own
   storefront (its catalog from its log); the shop's event log is projected on the real
   log's event types and measured by the same code as the real log
   (:mod:`simpersona_env.evaluation.measure`).
4. Figures: conversion-rate and funnel alignment, their correlation across merchants, with
   bootstrap intervals (:mod:`simpersona_env.evaluation.alignment`); per-type funnels; type
   fidelity (the simulated log re-encoded by the VQ-VAE); an A/B test of two themes.

Example:
    >>> result = evaluate_population("runs/ingest/rees46", typer,  # doctest: +SKIP
    ...     {"rule_based": {"_target_": "agents.policies.rule_based.RuleBasedBuyer",
    ...                     "profiles": "auto"}}, out_dir="runs/evaluate")
    >>> write_report(result, "runs/evaluate")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simpersona_env.errors import ConfigError, DataError

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "HeldoutMerchant",
    "ab_test",
    "evaluate_population",
    "heldout_protocol",
    "paired_contrasts",
    "pick_heldout_merchants",
    "plan_reach",
    "session_gap_median",
    "session_shares",
    "type_fidelity",
    "type_profiles",
]


def _log(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False).print(f"[bold magenta]evaluate[/] {msg}")


# ------------------------------------------------------------------------- held-out protocol

@dataclasses.dataclass
class HeldoutMerchant:
    """One held-out merchant: its population (from one half of its buyers) and its real
    funnel (the other half)."""

    merchant_id: str
    counts: list[int]  # buyers of each type in the population half
    population_buyers: list[str]
    real_buyers: list[str]
    real_funnel: Any  # polars frame: buyer_funnel rows of the real half
    population_funnel: Any = None  # polars frame: buyer_funnel rows of the population half
    #: per type, the shares of the population half's buyers with 1, 2, ... sessions (the last
    #: share: that many or more); a type with no buyer here gets the merchant's pooled shares
    sessions: list[list[float]] = dataclasses.field(default_factory=list)
    pooled_sessions: list[float] = dataclasses.field(default_factory=list)

    @property
    def shares(self) -> list[float]:
        n = sum(self.counts)
        return [c / n for c in self.counts] if n else [0.0] * len(self.counts)


def pick_heldout_merchants(merchants: Sequence[str], *, fraction: float = 0.5, seed: int = 0,
                           explicit: Sequence[str] | None = None) -> list[str]:
    """The held-out merchants: ``explicit`` when given, else by the stable merchant split.

    Raises:
        DataError: an explicit merchant that is not in the log, or no merchant held out.
    """
    import polars as pl

    from simpersona_env.buyers.split import HELDOUT, merchant_split

    if explicit:
        missing = sorted(set(explicit) - set(merchants))
        if missing:
            raise DataError(f"held-out merchant(s) {missing} are not in the log; its merchants "
                            f"are {sorted(merchants)[:12]}")
        return list(explicit)
    ms = sorted(merchants)
    split = merchant_split(pl.Series(ms, dtype=pl.String), heldout_fraction=fraction, seed=seed)
    out = [m for m, s in zip(ms, split.to_list()) if s == HELDOUT]
    if not out:
        raise DataError(f"merchant_heldout_fraction={fraction} holds out none of {len(ms)} "
                        "merchants; raise it or name them with merchants=[...]")
    return out


def session_shares(n_sessions: np.ndarray, types: np.ndarray | None, k: int,
                   max_sessions: int) -> tuple[list[list[float]], list[float]]:
    """(per type, pooled) shares of buyers with 1, 2, ..., ``max_sessions`` (or more)
    sessions; a type without buyers gets the pooled shares.

    Example:
        >>> session_shares(np.array([1, 1, 2, 7]), np.array([0, 0, 1, 1]), 3, 3)
        ([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.25, 0.25]], [0.5, 0.25, 0.25])
    """
    n = np.clip(np.asarray(n_sessions, np.int64), 1, max_sessions) - 1

    def shares(part: np.ndarray) -> list[float]:
        return (np.bincount(part, minlength=max_sessions) / part.size).tolist()

    pooled = shares(n) if n.size else [1.0] + [0.0] * (max_sessions - 1)
    if types is None:
        return [], pooled
    t = np.asarray(types, np.int64)
    return [shares(n[t == j]) if (t == j).any() else pooled for j in range(k)], pooled


def session_gap_median(events: pl.DataFrame, buyers: Mapping[str, Sequence[str]]
                       ) -> float | None:
    """The median seconds between the start of a buyer's session and the start of its next,
    over the ``buyers`` (merchant -> buyer ids) with 2+ sessions; None when none has."""
    import polars as pl

    keys = pl.DataFrame({"merchant_id": [m for m, bs in buyers.items() for _ in bs],
                         "buyer_id": [b for bs in buyers.values() for b in bs]},
                        schema={"merchant_id": pl.String, "buyer_id": pl.String})
    starts = (events.lazy().select("merchant_id", "buyer_id", "session_id", "ts")
              .join(keys.lazy(), on=["merchant_id", "buyer_id"], how="semi")
              .group_by("merchant_id", "buyer_id", "session_id").agg(pl.col("ts").min())
              .sort("merchant_id", "buyer_id", "ts")
              .with_columns((pl.col("ts").diff().over("merchant_id", "buyer_id")
                             .dt.total_seconds()).alias("gap"))
              .drop_nulls("gap").collect())
    return float(starts["gap"].median()) if starts.height else None


def heldout_protocol(funnel: pl.DataFrame, buyers: pl.DataFrame, typer: Any,
                     merchants: Sequence[str], *, heldout_fraction: float = 0.5, seed: int = 0,
                     min_buyers: int = 10, log: bool = True, max_sessions: int = 5
                     ) -> dict[str, HeldoutMerchant]:
    """Split each held-out merchant's buyers into the population half and the real half.

    Args:
        funnel: the real log's :func:`~simpersona_env.evaluation.measure.funnel_table`.
        buyers: the real buyer representations (``build_buyers`` / ``read_buyers``).
        typer: the trained VQ-VAE (``PersonaModel``) with ``assign`` and ``k``; ``None``
            leaves the population's type counts empty (the halves alone).
        merchants: the held-out merchants.
        heldout_fraction, seed: the buyer split (the ingest's defaults: 0.5, 0).
        min_buyers: a merchant with fewer buyers in either half is skipped (noted unless
            ``log`` is false).
        max_sessions: the session-count shares (:func:`session_shares`) stop there.

    Returns:
        merchant -> :class:`HeldoutMerchant`; the two halves never share a buyer.
    """
    import polars as pl

    from simpersona_env.buyers.split import HELDOUT, TRAIN, buyer_split

    out: dict[str, HeldoutMerchant] = {}
    for m in merchants:
        b = buyers.filter(pl.col("merchant_id") == m)
        f = funnel.filter(pl.col("merchant_id") == m)
        b = b.with_columns(buyer_split(b["merchant_id"], b["buyer_id"],
                                       heldout_fraction=heldout_fraction, seed=seed))
        f = f.with_columns(buyer_split(f["merchant_id"], f["buyer_id"],
                                       heldout_fraction=heldout_fraction, seed=seed)
                           .alias("_half"))
        pop = b.filter(pl.col("split") == TRAIN)
        real = f.filter(pl.col("_half") == HELDOUT).drop("_half")
        pop_funnel = f.filter(pl.col("_half") == TRAIN).drop("_half")
        if pop.height < min_buyers or real.height < min_buyers:
            if log:
                _log(f"merchant {m}: {pop.height} population / {real.height} real buyers, "
                     f"fewer than min_buyers={min_buyers}: skipped")
            continue
        types = None if typer is None else np.asarray(typer.assign(pop), np.int64)
        counts = [] if types is None else np.bincount(types, minlength=typer.k).tolist()
        per_type, pooled = session_shares(pop["n_sessions"].to_numpy(), types,
                                          0 if typer is None else int(typer.k),
                                          max(1, int(max_sessions)))
        pop_ids, real_ids = pop["buyer_id"].to_list(), real["buyer_id"].to_list()
        if set(pop_ids) & set(real_ids):  # the split is a partition; guard it anyway
            raise DataError(f"merchant {m}: the population and real halves share buyers")
        out[m] = HeldoutMerchant(m, counts, pop_ids, real_ids, real, pop_funnel, per_type,
                                 pooled)
    if not out:
        raise DataError(f"no held-out merchant has {min_buyers}+ buyers in both halves; lower "
                        "min_buyers or hold out larger merchants")
    return out


def _depth_rate(mean_views: float) -> float:
    """lambda with E[D | D >= 1] = mean_views for D ~ Poisson(lambda) (bisection)."""
    if mean_views <= 1.0 + 1e-9:
        return 1e-6
    lo, hi = 1e-6, max(2.0 * mean_views, 1.0)
    for _ in range(60):
        mid = (lo + hi) / 2
        if mid / -np.expm1(-mid) < mean_views:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _cart_rate(lam: float, target: float) -> float:
    """q with P(at least one cart | D >= 1) = target when each view carts with prob. q."""
    if target <= 0:
        return 0.0

    def reach(q: float) -> float:  # 1 - E[(1-q)^D | D >= 1], D ~ Poisson(lam)
        return 1.0 - (np.exp(-lam * q) - np.exp(-lam)) / -np.expm1(-lam)

    lo, hi = 0.0, 1.0
    if reach(hi) <= target:
        return 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if reach(mid) < target else (lo, mid)
    return (lo + hi) / 2


def _alignments(real: Mapping[str, np.ndarray], sim: Mapping[str, np.ndarray],
                stages: Sequence[str], bootstrap: int, seed: int) -> tuple[Any, dict[str, Any]]:
    """Conversion alignment and the funnel alignments of one simulated side."""
    from simpersona_env.evaluation.alignment import funnel_alignment, rate_alignment

    if "purchase" not in stages:
        raise DataError("the real log records no purchases: conversion cannot be measured")
    j = list(stages).index("purchase")
    conversion = rate_alignment({m: r[:, j] for m, r in real.items()},
                                {m: r[:, j] for m, r in sim.items()}, n_boot=bootstrap, seed=seed)
    return conversion, funnel_alignment(real, sim, stages, n_boot=bootstrap, seed=seed)


def _per_session(target: float, sessions: Sequence[float]) -> float:
    """q with E_n[1 - (1 - q)^n] = target, n ~ ``sessions`` (shares of 1, 2, ... sessions):
    the per-session chance that gives a per-buyer rate of ``target``."""
    p = np.asarray(sessions, float)
    n = np.arange(1, p.size + 1)
    if target <= 0:
        return 0.0
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if float(p @ (1 - (1 - mid) ** n)) < target else (lo, mid)
    return (lo + hi) / 2


def type_profiles(buyers: pl.DataFrame, types: np.ndarray, k: int, path: str | Path, *,
                  min_visible: float = 0.9, max_sessions: int = 1) -> Path:
    """Write the rule-based typed buyer's profile of each type (JSON, the input of
    ``agents.policies.rule_based.load_profiles``), fitted to the type's observed funnel.

    Per type, from its (training) buyers: the browse depth is set so that the buyers who view
    at least one product view as many as the type's buyers do; the per-view cart probability
    so that the share reaching the cart (or buying: real logs have purchases without a cart
    event) matches; the cart-to-purchase probability so that conversion matches. Bounce is 0
    because a buyer who views no product is not in a product-event log: depth 0 already
    plays that part. Types with no buyer get the overall profile, so every type has one.

    The depth is at least the one that shows ``min_visible`` of the type's buyers a product:
    a type whose buyers mostly vanish before their first product view (depth 0) would be
    under-represented in the measured log, which would change the population's mix. So
    one-product types browse a little deeper than their real buyers (conversion per type
    still matches; the views count does not).

    With ``max_sessions`` > 1 the buyers are simulated with as many sessions as their type's
    (up to that many): the cart and purchase chances are then per session, solved so that the
    share of buyers who cart or buy *in any of their sessions* matches.
    """
    import polars as pl

    df = buyers.with_columns(pl.Series("_type", np.asarray(types, np.int64)))

    def profile(part: pl.DataFrame) -> dict[str, float]:
        sessions = max(float(part["n_sessions"].mean()), 1.0)
        views = max(float(part["n_product_views"].mean()) / sessions, 1.0)
        conv = float((part["converted"] > 0).mean())
        carted = float(part["has_cart"].cast(pl.Float64).mean()) if "has_cart" in part.columns \
            else conv
        if max_sessions > 1:  # per-buyer shares -> per-session chances
            shares = session_shares(part["n_sessions"].to_numpy(), None, 0, max_sessions)[1]
            carted, conv = _per_session(max(carted, conv), shares), _per_session(conv, shares)
        reach_cart = min(max(carted, conv), 0.999)
        lam = max(_depth_rate(views), -float(np.log1p(-min_visible)))
        return {"views_per_session": float(lam), "view_to_cart": float(_cart_rate(lam, reach_cart)),
                "cart_to_purchase": float(min(conv / reach_cart, 1.0)) if reach_cart > 0 else 0.0,
                "search_share": float(min(max(part["search_share"].mean(), 0.0), 1.0)),
                "bounce": 0.0}

    overall = profile(df)
    doc = {str(t): (profile(part) if (part := df.filter(pl.col("_type") == t)).height else overall)
           for t in range(k)}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc, indent=2) + "\n")
    return p


# ---------------------------------------------------------------------------- type fidelity

def type_fidelity(sim_events: pl.DataFrame, records: Sequence[Mapping[str, Any]], typer: Any,
                  ) -> dict[str, Any]:
    """Re-encode the simulated buyers with the VQ-VAE: the share that gets its sampled type.

    The simulated log is turned into buyer representations by the same
    :func:`~simpersona_env.buyers.build_buyers` as the real one, then assigned in one pass.

    Returns:
        ``{"n", "accuracy", "chance", "confusion" (K x K, rows = sampled type), "per_type"}``;
        ``chance`` is the agreement two independent draws from the sampled and the assigned
        type distributions would have.
    """
    import polars as pl

    from simpersona_env.buyers import build_buyers

    k = int(typer.k)
    sampled = {(r["merchant_id"], r["visitor_id"]): int(r["persona"]) for r in records
               if int(r.get("persona", -1)) >= 0}
    if sim_events.height == 0 or not sampled:
        return {"n": 0, "accuracy": None, "chance": None, "confusion": [[0] * k] * k,
                "per_type": {}}
    buyers = build_buyers(sim_events)
    keep = [(m, b) in sampled for m, b in zip(buyers["merchant_id"], buyers["buyer_id"])]
    buyers = buyers.filter(pl.Series(keep))
    if buyers.height == 0:
        return {"n": 0, "accuracy": None, "chance": None, "confusion": [[0] * k] * k,
                "per_type": {}}
    assigned = np.asarray(typer.assign(buyers), np.int64)
    truth = np.array([sampled[(m, b)] for m, b in zip(buyers["merchant_id"], buyers["buyer_id"])])
    conf = np.zeros((k, k), np.int64)
    np.add.at(conf, (truth, assigned), 1)
    n = int(conf.sum())
    p_true, p_assigned = conf.sum(1) / n, conf.sum(0) / n
    per_type = {str(t): {"n": int(conf[t].sum()), "recall": float(conf[t, t] / conf[t].sum())}
                for t in range(k) if conf[t].sum()}
    return {"n": n, "accuracy": float(np.trace(conf) / n),
            "chance": float((p_true * p_assigned).sum()), "confusion": conf.tolist(),
            "per_type": per_type}


def _sessions_per_buyer(records: Sequence[Mapping[str, Any]], merchant: str) -> float | None:
    n = [len(r.get("sessions") or [None]) for r in records if r["merchant_id"] == merchant]
    return float(np.mean(n)) if n else None


# ---------------------------------------------------------------------- paired comparison

def plan_reach(funnel: pl.DataFrame, records: Sequence[Mapping[str, Any]],
               stages: Sequence[str]) -> dict[str, np.ndarray]:
    """merchant -> float array (simulated buyers, stages) indexed by the buyer's index in the
    simulation (its :class:`~simpersona_env.simulation.population.BuyerPlan`), a NaN row for a
    buyer the (projected) log does not see: the input of
    :func:`~simpersona_env.evaluation.alignment.paired_alignment_difference`."""
    index = {(str(r["merchant_id"]), str(r["visitor_id"])): int(r["index"]) for r in records
             if r.get("visitor_id")}
    size: dict[str, int] = {}
    for r in records:
        m = str(r["merchant_id"])
        size[m] = max(size.get(m, 0), int(r["index"]) + 1)
    out = {m: np.full((n, len(stages)), np.nan) for m, n in size.items()}
    cols = [f"reached_{s}" for s in stages]
    for row in funnel.select("merchant_id", "buyer_id", *cols).iter_rows():
        i = index.get((str(row[0]), str(row[1])))
        if i is not None:
            out[str(row[0])][i] = np.asarray(row[2:], float)
    return out


def paired_contrasts(real: Mapping[str, np.ndarray], by_plan: Mapping[str, Mapping[str, Any]],
                     stages: Sequence[str], pairs: Sequence[tuple[str, str]], *,
                     bootstrap: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """Each pair's alignment difference over the same simulated buyers (a - b), conversion
    and funnel, with paired bootstrap intervals.

    Every policy plays buyer ``i`` of a merchant with the same persona draw, visitor, arrival
    and goal (``(seed, i)``), so the two simulations are paired buyer by buyer; the real
    buyers they are scored against are the same too. Where one run holds more buyers of a
    merchant than the other (a run resumed with a larger ``n_buyers``), only the buyers both
    played are compared.
    """
    from simpersona_env.evaluation.alignment import paired_alignment_difference

    j = list(stages).index("purchase") if "purchase" in stages else None
    out = []
    for a, b in pairs:
        pa, pb = by_plan.get(a, {}), by_plan.get(b, {})
        sa, sb = {}, {}
        for m in set(pa) & set(pb):
            # only the buyers both runs played (a run resumed with more buyers holds more)
            n = min(pa[m].shape[0], pb[m].shape[0])
            sa[m], sb[m] = pa[m][:n], pb[m][:n]
        entry: dict[str, Any] = {"a": a, "b": b, "meaning": f"{a} - {b}", "merchants": [],
                                 "conversion": None, "funnel": None, "stages": {}}
        try:
            diff = paired_alignment_difference(real, sa, sb, stages, n_boot=bootstrap,
                                               seed=seed)
        except DataError as exc:
            _log(f"[yellow]paired {a} - {b}: {exc}")
            entry["skipped"] = str(exc)
            out.append(entry)
            continue
        entry.update(merchants=diff["merchants"], funnel=diff["funnel"],
                     conversion=diff[stages[j]] if j is not None else None,
                     stages={s: diff[s] for s in stages},
                     buyers={m: int(sa[m].shape[0]) for m in diff["merchants"]})
        out.append(entry)
    return out


# ------------------------------------------------------------------------------------ A/B

def ab_test(spec: Any, out_dir: str | Path, *, themes: Sequence[str] = ("classic", "grid"),
            runner: str = "local", workers: int = 0, resume: bool = False,
            progress: bool = True, bootstrap: int = 1000, seed: int = 0,
            level: float = 0.95) -> dict[str, Any]:
    """The same population (the same buyers, seed for seed) on two themes of a store.

    Each arm is a full simulation with the theme forced; conversion is measured per buyer on
    the shop's own log (the merchant sees every visitor). Because buyer ``i`` is the same in
    both arms, the difference is paired: its interval comes from resampling buyer indices.

    Returns:
        ``{"themes", "arms": {theme: {"conversion": {value, lo, hi, n}, "dir"}},
        "difference": {value, lo, hi, level} (second minus first), "paired": True}``.
    """
    from simpersona_env.evaluation.measure import share_estimate
    from simpersona_env.simulation import simulate

    if len(themes) != 2:
        raise ConfigError(f"an A/B test compares two themes, got {list(themes)}")
    conv: dict[str, np.ndarray] = {}
    arms: dict[str, Any] = {}
    for theme in themes:
        arm_spec = dataclasses.replace(spec, store={**spec.store, "theme": theme})
        d = Path(out_dir) / f"theme={theme}"
        res = simulate(arm_spec, d, runner=runner, workers=workers, resume=resume,
                       overwrite=not resume, progress=progress)
        recs = res.records()
        conv[theme] = np.array([bool((r.get("funnel") or {}).get("purchase")) for r in recs])
        arms[theme] = {"conversion": share_estimate(conv[theme], bootstrap=bootstrap, seed=seed),
                       "dir": str(d), "episodes": len(recs)}
    a, b = conv[themes[0]].astype(float), conv[themes[1]].astype(float)
    n = min(a.size, b.size)
    diff = b[:n] - a[:n]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(bootstrap, n)) if n else np.zeros((0, 0), int)
    boot = diff[idx].mean(1) if n else np.zeros(0)
    lo, hi = (np.quantile(boot, [(1 - level) / 2, 1 - (1 - level) / 2]) if n
              else (np.nan, np.nan))
    return {"themes": list(themes), "arms": arms, "paired": True, "n": int(n),
            "difference": {"value": float(diff.mean()) if n else None, "lo": float(lo),
                           "hi": float(hi), "level": level,
                           "meaning": f"conversion({themes[1]}) - conversion({themes[0]})"}}


# ------------------------------------------------------------------------------- the whole

def _policy_spec(spec: Any, profiles: Mapping[str, Path]) -> tuple[Any, bool, bool]:
    """(policy spec for the runner, whether it sees the persona, whether it is the one
    "average buyer" of every population)."""
    if isinstance(spec, str) or hasattr(spec, "act"):
        return spec, True, False
    d = dict(spec)
    personas = bool(d.pop("_personas", True))
    average = bool(d.pop("_average", False))
    if d.get("profiles") == "auto":
        key = "average" if average else "types"
        if key not in profiles:
            raise ConfigError("profiles=auto needs the type profiles of the training buyers")
        d["profiles"] = str(profiles[key])
    return d, personas, average


def evaluate_population(events: str | Path, typer: Any, policies: Mapping[str, Any], *,
                        out_dir: str | Path, buyers: pl.DataFrame | None = None,
                        merchants: Sequence[str] | None = None,
                        merchant_heldout_fraction: float = 0.5, heldout_fraction: float = 0.5,
                        split_seed: int = 0, buyer_split_seed: int | None = None,
                        n_buyers: int = 200, seed: int = 0,
                        min_buyers: int = 10, runner: str = "local", workers: int = 0,
                        batch_size: int = 1, backend: str = "http", max_steps: int = 50,
                        bootstrap: int = 1000, ab: bool = True, ab_policy: str | None = None,
                        ab_merchant: str | None = None, resume: bool = False,
                        progress: bool = True, profiles_buyers: pl.DataFrame | None = None,
                        contrasts: Sequence[Sequence[str]] | None = None,
                        sessions: str = "population", max_sessions: int = 5,
                        ) -> dict[str, Any]:
    """Run the held-out population evaluation for each policy and return every figure.

    Args:
        events: the real canonical log (an ingest output folder, or a Parquet file/folder);
            the merchants' storefronts are built from it.
        typer: the VQ-VAE (``PersonaModel``), trained on training merchants only.
        policies: name -> policy spec (``{"_target_": ..., **kwargs}``; ``profiles: auto``
            fills the rule-based buyer's type profiles from the training merchants' buyers;
            ``_personas: false`` hides the persona from the policy: the no-persona baseline;
            ``_average: true`` plays one "average buyer" for everyone, with ``profiles: auto``
            the profile fitted to all training buyers together).
        out_dir: simulations go to ``<out_dir>/sim/<policy>/<merchant>``.
        buyers: the real buyer table (default: built from ``events``).
        merchants: held-out merchants (default: by ``merchant_heldout_fraction``).
        heldout_fraction, split_seed: the merchant split and the buyer halves of each
            held-out merchant; ``buyer_split_seed`` (default ``split_seed``) re-draws the
            halves alone, with the same held-out merchants (robustness across splits).
        n_buyers: simulated buyers per merchant and policy; seed: the simulation seed.
        runner, workers, batch_size, backend, max_steps: how the simulations run.
        bootstrap: resamples for every interval.
        ab: also run the A/B test of two themes (``ab_policy`` on ``ab_merchant``; default
            the first policy and the held-out merchant with most buyers).
        resume: continue interrupted simulations in ``out_dir``.
        profiles_buyers: training buyers for ``profiles: auto`` (default: the training
            merchants' ``train`` half of ``buyers``).
        contrasts: pairs ``(a, b)`` of policy names whose alignment difference (a - b) is
            measured paired, over the same simulated buyers (:func:`paired_contrasts`);
            default: the first policy against each other one.
        sessions: ``population``: each simulated buyer has as many sessions as its type's
            buyers in the merchant's population half (drawn from their shares, up to
            ``max_sessions``), the same visitor returning after a gap drawn around the
            population half's median; a policy that does not see the type draws from the
            merchant's pooled shares. ``one``: one session per buyer.

    Returns:
        A JSON-ready dict (see docs/evaluation.md): ``protocol``, ``merchants``,
        ``policies`` (alignment, per-merchant and per-type statistics, type fidelity),
        ``reference`` (the split's ceiling: the real population half in the simulation's
        place), ``paired`` (the contrasts), ``ab``.
    """
    import polars as pl

    from simpersona_env.buyers import build_buyers
    from simpersona_env.buyers.split import TRAIN, assign_splits
    from simpersona_env.buyers.stats import merchant_stats
    from simpersona_env.evaluation.alignment import contrast_pairs, expected_rate_alignment
    from simpersona_env.evaluation.measure import (
        funnel_table,
        observed_event_types,
        project,
        reach_by_merchant,
        stages_observed,
        stats_by_type,
    )
    from simpersona_env.simulation import SimulationSpec, events_of, simulate
    from storefront_mock.catalog import read_event_frame

    if not policies:
        raise ConfigError("no policies to evaluate; give at least one (policies={name: spec})")
    pairs = contrast_pairs(policies, contrasts)
    if sessions not in ("population", "one"):
        raise ConfigError(f"sessions={sessions!r}: use 'population' (as many sessions as the "
                          "type's real buyers) or 'one'")
    out = Path(out_dir)
    real_events = read_event_frame(events)
    all_merchants = sorted(real_events["merchant_id"].unique().to_list())
    held = pick_heldout_merchants(all_merchants, fraction=merchant_heldout_fraction,
                                  seed=split_seed, explicit=merchants)
    train_merchants = [m for m in all_merchants if m not in held]
    if buyers is None:
        buyers = build_buyers(real_events, heldout_fraction=heldout_fraction, seed=split_seed)
    real_funnel = funnel_table(real_events)
    bseed = split_seed if buyer_split_seed is None else buyer_split_seed
    protocol = heldout_protocol(real_funnel, buyers, typer, held,
                                heldout_fraction=heldout_fraction, seed=bseed,
                                min_buyers=min_buyers, max_sessions=max_sessions)
    held = list(protocol)
    if ab and ab_policy and ab_policy not in policies:  # before any simulation, not after
        raise ConfigError(f"ab_policy={ab_policy!r} is not one of the policies {list(policies)}")
    if ab and ab_merchant and ab_merchant not in held:
        raise ConfigError(f"ab_merchant={ab_merchant!r} is not a held-out merchant of this run "
                          f"({held}); name one of those")
    gap_s = None
    if sessions == "population":
        gap_s = session_gap_median(real_events, {m: protocol[m].population_buyers
                                                 for m in held})
    observed = observed_event_types(real_events)
    stages = stages_observed(observed)
    _log(f"held-out merchants: {', '.join(held)} ({len(train_merchants)} training merchants); "
         f"real log records {observed} -> stages {stages}")

    profiles: dict[str, Path] = {}
    if any(isinstance(s, Mapping) and s.get("profiles") == "auto" for s in policies.values()):
        tb = profiles_buyers
        if tb is None:
            tb = assign_splits(buyers.filter(pl.col("merchant_id").is_in(train_merchants)
                                             if train_merchants else pl.lit(True)),
                               heldout_fraction=heldout_fraction, seed=split_seed)
            tb = tb.filter(pl.col("split") == TRAIN)
        per_buyer = max_sessions if sessions == "population" else 1
        profiles["types"] = type_profiles(tb, typer.assign(tb), typer.k,
                                          out / "type_profiles.json", max_sessions=per_buyer)
        # the no-persona baseline: one profile fitted to all training buyers together
        profiles["average"] = type_profiles(tb, np.zeros(tb.height, np.int64), 1,
                                            out / "average_profile.json",
                                            max_sessions=per_buyer)
        _log(f"rule-based type profiles from {tb.height} training buyers: {profiles['types']}")

    real_reach = reach_by_merchant(None, stages, funnel=pl.concat(
        [protocol[m].real_funnel for m in held]))
    real_stats = merchant_stats(pl.concat([protocol[m].real_funnel for m in held]),
                                bootstrap=bootstrap, seed=split_seed)["merchants"]
    # real buyers of the real half by type (for the per-type funnel)
    real_half = buyers.filter(pl.struct("merchant_id", "buyer_id").is_in(
        pl.DataFrame({"merchant_id": [m for m in held for _ in protocol[m].real_buyers],
                      "buyer_id": [b for m in held for b in protocol[m].real_buyers]})
        .to_struct("k").implode()))
    real_types = real_half.select("merchant_id", "buyer_id").with_columns(
        pl.Series("type", np.asarray(typer.assign(real_half), np.int64)))
    result: dict[str, Any] = {
        "protocol": {"heldout_merchants": held, "training_merchants": train_merchants,
                     "buyer_split": {"heldout_fraction": heldout_fraction, "seed": bseed,
                                     "population_half": "train", "real_half": "heldout"},
                     "observed_event_types": observed, "stages": stages,
                     "n_buyers_per_merchant": n_buyers, "seed": seed, "bootstrap": bootstrap,
                     "sessions": {"mode": sessions, "max_sessions": max_sessions,
                                  "gap_median_s": gap_s},
                     "k": int(typer.k), "events": str(events)},
        "merchants": {m: {"population": protocol[m].shares,
                          "population_sessions_per_buyer": float(
                              np.dot(protocol[m].pooled_sessions,
                                     np.arange(1, len(protocol[m].pooled_sessions) + 1))),
                          "population_buyers": len(protocol[m].population_buyers),
                          "real_buyers": len(protocol[m].real_buyers),
                          "real": real_stats.get(m)} for m in held},
        "real_by_type": stats_by_type(pl.concat([protocol[m].real_funnel for m in held]),
                                      real_types, bootstrap=bootstrap),
        "policies": {},
    }
    # the split's own ceiling: the population half's real buyers in the simulation's place
    pop_reach = reach_by_merchant(None, stages, funnel=pl.concat(
        [protocol[m].population_funnel for m in held]))
    ref_conv, ref_funnel = _alignments(real_reach, pop_reach, stages, bootstrap, seed)
    per = ref_conv.per_merchant
    exact = expected_rate_alignment([per[m]["sim"] for m in per], [per[m]["real"] for m in per],
                                    n_buyers, draws=bootstrap, seed=seed)
    result["reference"] = {"exact_rates": {
        "meaning": f"{n_buyers} simulated buyers per merchant converting with exactly the "
                   "population half's real rate, against the real half: what sampling "
                   "n_buyers costs a perfect simulator",
        "n_buyers": n_buyers, "conversion_alignment": exact.as_dict()}, "real_halves": {
        "meaning": "the population half's real buyers scored against the real half: what a "
                   "simulator that reproduced the population exactly would score on this split",
        "conversion": ref_conv.as_dict(),
        "funnel": {s: v.as_dict() for s, v in ref_funnel.items()},
        "buyers": {m: int(pop_reach[m].shape[0]) for m in held if m in pop_reach}}}
    c = ref_conv.alignment
    _log(f"reference, real population half vs real half: conversion alignment {c.value:.3f} "
         f"[{c.lo:.3f}, {c.hi:.3f}] (the split's ceiling); a simulator with exactly those "
         f"rates expects {exact.value:.3f} at {n_buyers} buyers per merchant")
    specs: dict[tuple[str, str], SimulationSpec] = {}
    by_plan: dict[str, dict[str, np.ndarray]] = {}
    for name, raw in policies.items():
        pspec, personas, average = _policy_spec(raw, profiles)
        records_all: list[dict[str, Any]] = []
        for m in held:
            spec = SimulationSpec(
                store={"name": "events", "events": str(events), "merchants": [m]}, store_id=m,
                population=[1.0] if average else protocol[m].shares, policy=pspec,
                policy_name=name,
                n_buyers=n_buyers, seed=seed, batch_size=batch_size,
                backend={"name": backend}, max_steps=max_steps, personas=personas,
                sessions=([] if sessions == "one" else [protocol[m].pooled_sessions]
                          if average or not personas else protocol[m].sessions),
                **({"session_gap_median_s": gap_s} if gap_s else {}))
            specs[(name, m)] = spec
            res = simulate(spec, out / "sim" / name / m, runner=runner, workers=workers,
                           resume=resume, overwrite=not resume, progress=progress)
            records_all += res.records()
            _log(f"{name} @ {m}: {res.summary['episodes']} buyers, conversion on the shop "
                 f"{res.summary['conversion_rate']:.3f} ({res.summary['seconds']:.1f}s)")
        sim_events = project(events_of(records_all), observed)
        sim_funnel = funnel_table(sim_events)
        sim_reach = reach_by_merchant(None, stages, funnel=sim_funnel)
        missing = [m for m in held if m not in sim_reach]
        if missing:
            _log(f"[yellow]{name}: no simulated buyer of {missing} left an event the real log "
                 "records; those merchants are left out of its alignment")
        conversion, funnel = _alignments(real_reach, sim_reach, stages, bootstrap, seed)
        by_plan[name] = plan_reach(sim_funnel, records_all, stages)
        sim_stats = merchant_stats(sim_funnel, bootstrap=bootstrap, seed=seed)["merchants"]
        sampled = {} if average else {
            (r["merchant_id"], r["visitor_id"]): int(r["persona"]) for r in records_all
            if int(r.get("persona", -1)) >= 0}
        entry: dict[str, Any] = {
            "spec": pspec if isinstance(pspec, (str, dict)) else repr(pspec),
            "sees_persona": personas and not average, "average_buyer": average,
            "conversion": conversion.as_dict(),
            "funnel": {s: v.as_dict() for s, v in funnel.items()},
            "merchants": {m: {"sim": sim_stats.get(m), "episodes": sum(
                1 for r in records_all if r["merchant_id"] == m),
                "sessions_per_buyer": _sessions_per_buyer(records_all, m),
                "observable_buyers": int(sim_reach[m].shape[0]) if m in sim_reach else 0,
                "dir": str(out / "sim" / name / m)} for m in held},
            "by_type": stats_by_type(sim_funnel, sampled, bootstrap=bootstrap) if sampled else {},
            "fidelity": (type_fidelity(sim_events, records_all, typer)
                         if personas and not average else None),
        }
        result["policies"][name] = entry
        c = conversion.alignment
        _log(f"[bold]{name}[/]: conversion alignment {c.value:.3f} [{c.lo:.3f}, {c.hi:.3f}]"
             + (f", type fidelity {entry['fidelity']['accuracy']:.3f}"
                if entry["fidelity"] and entry["fidelity"]["accuracy"] is not None else ""))
    result["paired"] = paired_contrasts(real_reach, by_plan, stages, pairs,
                                        bootstrap=bootstrap, seed=seed)
    for c in result["paired"]:
        d = c["conversion"]
        if d is None:
            continue
        _log(f"paired, the same simulated buyers: {c['meaning']} = {d['value']:+.3f} "
             f"[{d['lo']:+.3f}, {d['hi']:+.3f}] conversion alignment, "
             f"{c['funnel']['value']:+.3f} funnel alignment")
    if ab:
        name = ab_policy or next(iter(policies))
        # default: the held-out merchant with most buyers (the tightest interval)
        m = ab_merchant or max(held, key=lambda h: len(protocol[h].population_buyers))
        base = specs[(name, m)]  # the merchant's population, as the policy simulated it
        result["ab"] = {"policy": name, "merchant": m,
                        **ab_test(base, out / "ab" / name / m, runner=runner, workers=workers,
                                  resume=resume, progress=progress, bootstrap=bootstrap,
                                  seed=seed)}
        d = result["ab"]["difference"]
        _log(f"A/B on {m} ({name}): {d['meaning']} = {d['value']:+.3f} "
             f"[{d['lo']:+.3f}, {d['hi']:+.3f}]")
    return result
