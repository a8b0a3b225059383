"""The evaluation report: Markdown + JSON + PNG, every figure with its interval and its data.

:func:`write_report` takes the dict of
:func:`~simpersona_env.evaluation.population.evaluate_population` (and optionally the goal
benchmark's) and writes into ``out_dir``:

* ``report.json``: everything, as computed;
* ``report.md``: the headline figures and one table per plot, with the numbers each plot shows;
* ``conversion.png``: simulated vs real conversion per merchant with intervals, the diagonal;
* ``funnel_by_type.png``: stage reach per buyer type, simulated vs real, with intervals;
* ``type_fidelity.png``: the confusion matrix (sampled type vs re-assigned type);
* ``goal_success.png``: goal-task success per policy and catalog, with intervals;
* ``ab.png``: conversion per theme and their difference, with intervals;
* ``paired.png``: the alignment difference of each pair of policies over the same simulated
  buyers (conversion and funnel), with paired intervals.

Example:
    >>> paths = write_report(result, "runs/evaluate", goal=goal_result)  # doctest: +SKIP
    >>> sorted(p.name for p in paths.values())  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["headline", "write_report"]

PLOTS = ("conversion", "funnel_by_type", "type_fidelity", "goal_success", "ab", "paired")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _v(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _ci(d: Mapping[str, Any] | None) -> tuple[float, float, float]:
    """(value, lo, hi) of an estimate dict in either form ({value, lo, hi} or {value, ci})."""
    if not d:
        return (math.nan, math.nan, math.nan)
    if "ci" in d:
        lo, hi = (d["ci"] or [None, None])
        return _v(d["value"]), _v(lo), _v(hi)
    return _v(d.get("value")), _v(d.get("lo")), _v(d.get("hi"))


def _fmt(d: Mapping[str, Any] | None, pct: bool = False, signed: bool = False) -> str:
    v, lo, hi = _ci(d)
    if math.isnan(v):
        return "–"
    if pct:
        return f"{100 * v:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"
    if signed:
        return f"{v:+.3f} [{lo:+.3f}, {hi:+.3f}]"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def _yerr(vals: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    lo = np.where(np.isnan(lo), vals, lo)
    hi = np.where(np.isnan(hi), vals, hi)
    return np.clip(np.stack([vals - lo, hi - vals]), 0, None)


def headline(result: Mapping[str, Any], goal: Mapping[str, Any] | None = None) -> list[str]:
    """The headline figures as short lines (what a command prints at its end)."""
    lines = []
    for name, p in (result.get("policies") or {}).items():
        line = f"{name}: conversion alignment {_fmt(p['conversion']['alignment'])}"
        if p["conversion"].get("correlation"):
            line += f", correlation {_fmt(p['conversion']['correlation'])}"
        line += f", funnel alignment {_fmt(p['funnel']['funnel']['alignment'])}"
        fid = p.get("fidelity")
        if fid and fid.get("accuracy") is not None:
            line += f", type fidelity {fid['accuracy']:.3f} (chance {fid['chance']:.3f})"
        lines.append(line)
    ref = (result.get("reference") or {}).get("real_halves")
    if ref:
        lines.append(f"reference, the real population half in the simulation's place: "
                     f"conversion alignment {_fmt(ref['conversion']['alignment'])}, funnel "
                     f"alignment {_fmt(ref['funnel']['funnel']['alignment'])} (this split's "
                     "ceiling)")
    exact = (result.get("reference") or {}).get("exact_rates")
    if exact:
        lines.append(f"reference, {exact['n_buyers']} simulated buyers per merchant converting "
                     "at exactly the population half's rates: conversion alignment "
                     f"{_fmt(exact['conversion_alignment'])} (what sampling costs a perfect "
                     "simulator)")
    for c in result.get("paired") or []:
        if c.get("conversion"):
            lines.append(f"paired over the same simulated buyers, {c['meaning']}: conversion "
                         f"alignment {_fmt(c['conversion'], signed=True)} "
                         f"(P(a better) {c['conversion']['p_a_better']:.2f}), funnel alignment "
                         f"{_fmt(c['funnel'], signed=True)}")
    if result.get("ab"):
        d = result["ab"]["difference"]
        lines.append(f"A/B on {result['ab']['merchant']}: {d['meaning']} = {_fmt(d)}")
    for name, per in ((goal or {}).get("policies") or {}).items():
        lines.append(f"goal tasks, {name}: success {_fmt(per['all']['success'])}, mean reward "
                     f"{_fmt(per['all']['reward'])}")
    for c in (goal or {}).get("paired") or []:
        lines.append(f"goal tasks, {c['meaning']} on the same {c['n']} tasks: success "
                     f"{_fmt(c['success'], signed=True)}, mean reward "
                     f"{_fmt(c['reward'], signed=True)}")
    return lines


# ------------------------------------------------------------------------------------ plots

def _plot_conversion(result: Mapping[str, Any], path: Path) -> list[list[Any]]:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 6))
    rows: list[list[Any]] = []
    top = 0.0
    for i, (name, p) in enumerate((result.get("policies") or {}).items()):
        ms = list(p["merchants"])
        real = [_ci((result["merchants"][m].get("real") or {}).get("conversion_rate"))
                for m in ms]
        sim = [_ci((p["merchants"][m].get("sim") or {}).get("conversion_rate")) for m in ms]
        rv, rl, rh = (np.array(x) for x in zip(*real)) if real else ([],) * 3
        sv, sl, sh = (np.array(x) for x in zip(*sim)) if sim else ([],) * 3
        ax.errorbar(rv, sv, xerr=_yerr(rv, rl, rh), yerr=_yerr(sv, sl, sh), fmt="o", capsize=3,
                    label=f"{name} (alignment {_ci(p['conversion']['alignment'])[0]:.2f})",
                    color=f"C{i}")
        for m, (a, b) in zip(ms, zip(rv, sv)):
            if i == 0:
                ax.annotate(m, (a, b), fontsize=7, xytext=(3, 3), textcoords="offset points")
            rows.append([name, m, *real[ms.index(m)], *sim[ms.index(m)]])
        top = max(top, np.nanmax(np.concatenate([rh, sh, [0.01]])))
    ref = (result.get("reference") or {}).get("real_halves")
    if ref:  # the split's ceiling: the population half's real rate in the simulation's place
        per = ref["conversion"]["per_merchant"]
        xs, ys = [per[m]["real"] for m in per], [per[m]["sim"] for m in per]
        ax.scatter(xs, ys, marker="x", color="k", zorder=3,
                   label=f"real population half (ceiling, alignment "
                         f"{ref['conversion']['alignment']['value']:.2f})")
        top = max([top, *xs, *ys])
    lim = max(top, 0.01) * 1.1
    ax.plot([0, lim], [0, lim], "k--", lw=1, label="simulated = real")
    ax.set_xlim(0, lim)
    ax.set_ylim(0, lim)
    ax.set_xlabel("real conversion (held-out half of the merchant's buyers)")
    ax.set_ylabel("simulated conversion")
    ax.set_title("Conversion per held-out merchant (95% bootstrap CIs)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return rows


def _plot_funnel_by_type(result: Mapping[str, Any], path: Path, policy: str | None
                         ) -> list[list[Any]]:
    plt = _plt()
    stages = list(result["protocol"]["stages"])
    p = (result.get("policies") or {}).get(policy or "", {})
    sim, real = p.get("by_type") or {}, result.get("real_by_type") or {}
    types = sorted({*sim, *real}, key=lambda t: int(t))
    if not stages:
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.text(0.5, 0.5, "population evaluation not run", ha="center", va="center")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return []
    fig, axes = plt.subplots(1, len(stages), figsize=(3.2 * len(stages) + 1, 3.8), squeeze=False)
    rows: list[list[Any]] = []
    x = np.arange(len(types))
    for j, stage in enumerate(stages):
        ax = axes[0, j]
        for off, (label, src) in ((-0.2, ("real", real)), (0.2, (f"sim ({policy})", sim))):
            est = [_ci((src.get(t) or {}).get("funnel", {}).get(stage)) for t in types]
            v, lo, hi = (np.array(e) for e in zip(*est)) if est else (np.zeros(0),) * 3
            ax.bar(x + off, np.nan_to_num(v), width=0.4, yerr=_yerr(v, lo, hi), capsize=2,
                   label=label)
            for t, e in zip(types, est):
                rows.append([label, t, stage, *e, (src.get(t) or {}).get("buyers")])
        ax.set_xticks(x, types, fontsize=7)
        ax.set_title(f"reached {stage}", fontsize=9)
        ax.set_xlabel("buyer type")
    axes[0, 0].set_ylabel("share of the type's buyers")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Funnel per buyer type, held-out merchants (95% CIs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return rows


def _plot_fidelity(result: Mapping[str, Any], path: Path, policy: str | None) -> Any:
    plt = _plt()
    p = (result.get("policies") or {}).get(policy or "", {})
    fid = p.get("fidelity") or {}
    conf = np.asarray(fid.get("confusion") or [[0]], float)
    rowsum = conf.sum(1, keepdims=True)
    share = np.divide(conf, rowsum, out=np.zeros_like(conf), where=rowsum > 0)
    fig, ax = plt.subplots(figsize=(6, 5))
    im = ax.imshow(share, cmap="viridis", vmin=0, vmax=1)
    ax.set_xlabel("type re-assigned by the VQ-VAE from the simulated log")
    ax.set_ylabel("sampled type")
    acc = fid.get("accuracy")
    ax.set_title(f"Type fidelity ({policy}): "
                 + (f"{acc:.2f} on the diagonal (chance {fid['chance']:.2f}, n={fid['n']})"
                    if acc is not None else "no typed buyers"), fontsize=9)
    fig.colorbar(im, ax=ax, label="share of the sampled type's buyers")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return conf.astype(int).tolist()


def _plot_goal(goal: Mapping[str, Any] | None, path: Path) -> list[list[Any]]:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    rows: list[list[Any]] = []
    if goal and goal.get("policies"):
        cats = [*goal["catalogs"], "all"]
        names = list(goal["policies"])
        width = 0.8 / len(names)
        x = np.arange(len(cats))
        for i, name in enumerate(names):
            est = [_ci(goal["policies"][name][c]["success"]) for c in cats]
            v, lo, hi = (np.array(e) for e in zip(*est))
            ax.bar(x + (i - (len(names) - 1) / 2) * width, v, width, yerr=_yerr(v, lo, hi),
                   capsize=2, label=name)
            for c, e in zip(cats, est):
                r = _ci(goal["policies"][name][c]["reward"])
                rows.append([name, c, *e, *r])
        ax.set_xticks(x, cats)
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "goal benchmark not run", ha="center", va="center")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate (reward = 1)")
    ax.set_title("Goal tasks: success per policy (95% bootstrap CIs over tasks)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return rows


def _plot_ab(result: Mapping[str, Any], path: Path) -> list[list[Any]]:
    plt = _plt()
    ab = result.get("ab")
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
    rows: list[list[Any]] = []
    if ab:
        themes = ab["themes"]
        est = [_ci(ab["arms"][t]["conversion"]) for t in themes]
        v, lo, hi = (np.array(e) for e in zip(*est))
        axes[0].bar(themes, v, yerr=_yerr(v, lo, hi), capsize=4, color=["C0", "C1"])
        axes[0].set_ylabel("conversion")
        axes[0].set_title(f"{ab['merchant']} ({ab['policy']}, n={ab['n']} per arm)", fontsize=9)
        d = _ci(ab["difference"])
        axes[1].errorbar([0], [d[0]], yerr=_yerr(np.array([d[0]]), np.array([d[1]]),
                                                   np.array([d[2]])), fmt="o", capsize=6)
        axes[1].axhline(0, color="k", lw=0.8)
        axes[1].set_xticks([0], [ab["difference"]["meaning"]], fontsize=7)
        axes[1].set_title("paired difference (95% CI)", fontsize=9)
        rows = [[t, *e] for t, e in zip(themes, est)] + [["difference", *d]]
    else:
        for ax in axes:
            ax.text(0.5, 0.5, "A/B test not run", ha="center", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return rows


def _plot_paired(result: Mapping[str, Any], path: Path) -> list[list[Any]]:
    plt = _plt()
    pairs = [c for c in result.get("paired") or [] if c.get("conversion")]
    fig, ax = plt.subplots(figsize=(7, 1.6 + 0.6 * max(len(pairs), 1)))
    rows: list[list[Any]] = []
    if pairs:
        y = np.arange(len(pairs))
        for off, key, color in ((-0.12, "conversion", "C0"), (0.12, "funnel", "C2")):
            v, lo, hi = (np.array(e) for e in zip(*[_ci(c[key]) for c in pairs]))
            ax.errorbar(v, y + off, xerr=_yerr(v, lo, hi), fmt="o", capsize=4, color=color,
                        label=f"{key} alignment")
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(y, [c["meaning"] for c in pairs], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("alignment difference, a - b (95% paired bootstrap CI)")
        ax.legend(fontsize=7, loc="best")
        for c in pairs:
            rows.append([c["a"], c["b"], *_ci(c["conversion"]),
                         float(c["conversion"]["p_a_better"]), *_ci(c["funnel"])])
    else:
        ax.text(0.5, 0.5, "no paired comparison (one policy)", ha="center", va="center")
        ax.set_axis_off()
    ax.set_title("the same simulated buyers, two policies", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return rows


# ----------------------------------------------------------------------------------- report

def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(x: Any) -> str:
        if isinstance(x, float):
            return "–" if math.isnan(x) else f"{x:.4f}"
        return str(x)

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return out


def write_report(result: Mapping[str, Any] | None, out_dir: str | Path, *,
                 goal: Mapping[str, Any] | None = None, policy: str | None = None,
                 title: str = "SimPersona population evaluation") -> dict[str, Path]:
    """Write ``report.md``, ``report.json`` and the six PNGs into ``out_dir``.

    Args:
        result: :func:`~simpersona_env.evaluation.population.evaluate_population`'s dict (or
            None for a goal-only report).
        goal: :func:`~simpersona_env.evaluation.goal.goal_benchmark`'s dict, if run.
        policy: the policy whose per-type funnel and type fidelity are plotted (default: the
            first policy that sees the persona).

    Returns:
        name -> path of every file written (``md``, ``json`` and one per plot).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = dict(result or {"protocol": {"stages": []}, "merchants": {}, "policies": {}})
    pols = result.get("policies") or {}
    if policy is None:
        policy = next((n for n, p in pols.items() if p.get("fidelity")), next(iter(pols), None))
    paths = {name: out / f"{name}.png" for name in PLOTS}
    conv_rows = _plot_conversion(result, paths["conversion"])
    type_rows = _plot_funnel_by_type(result, paths["funnel_by_type"], policy)
    conf = _plot_fidelity(result, paths["type_fidelity"], policy)
    goal_rows = _plot_goal(goal, paths["goal_success"])
    ab_rows = _plot_ab(result, paths["ab"])
    paired_rows = _plot_paired(result, paths["paired"])
    doc = {"title": title, "population": result, "goal": goal, "plots": {k: v.name for k, v in
                                                                       paths.items()}}
    paths["json"] = out / "report.json"
    paths["json"].write_text(json.dumps(doc, indent=2, default=str) + "\n")

    proto = result.get("protocol", {})
    md = [f"# {title}", ""]
    md += ["## Headline", ""] + [f"- {line}" for line in headline(result, goal)] + [""]
    if proto.get("heldout_merchants"):
        split = proto["buyer_split"]
        training = ", ".join(proto.get("training_merchants") or []) or "–"
        md += ["## Protocol", "",
               (f"- held-out merchants: {', '.join(proto['heldout_merchants'])}; training "
                f"merchants (VQ-VAE, agent, type profiles): {training}"),
               (f"- each held-out merchant's buyers split by a stable hash (fraction "
                f"{split['heldout_fraction']}, seed {split['seed']}): the `train` half gives "
                "the population, the `heldout` half the real rates"),
               (f"- {proto.get('n_buyers_per_merchant')} simulated buyers per merchant and "
                f"policy (seed {proto.get('seed')}); the simulated log is projected on the real "
                f"log's event types {proto.get('observed_event_types')} and measured by the "
                "same code"),
               (f"- intervals: 95% percentile bootstrap, {proto.get('bootstrap')} resamples, "
                "buyers resampled within each merchant on both sides"),
               _sessions_line(proto),
               ("- reference row: the population half's own real buyers scored in the "
                "simulation's place, i.e. what a simulator that reproduced the population "
                "exactly would score against the other half; the ceiling this split's sampling "
                "noise leaves"), ""]
        md += ["## Alignment", ""]
        rows = []
        for name, p in pols.items():
            rows.append([name, _fmt(p["conversion"]["alignment"]),
                         _fmt(p["conversion"].get("correlation")),
                         _fmt(p["funnel"]["funnel"]["alignment"]),
                         _fmt(p["funnel"]["funnel"].get("correlation"))]
                        + [_fmt(p["funnel"][s]["alignment"]) for s in proto["stages"]])
        ref = (result.get("reference") or {}).get("real_halves")
        if ref:
            rows.append(["*reference: real population half*", _fmt(ref["conversion"]["alignment"]),
                         _fmt(ref["conversion"].get("correlation")),
                         _fmt(ref["funnel"]["funnel"]["alignment"]),
                         _fmt(ref["funnel"]["funnel"].get("correlation"))]
                        + [_fmt(ref["funnel"][s]["alignment"]) for s in proto["stages"]])
        md += _table(["policy", "conversion alignment", "conversion correlation",
                      "funnel alignment", "funnel correlation",
                      *[f"{s} alignment" for s in proto["stages"]]], rows) + [""]
        md += ["## Paired comparisons", "", f"![paired]({paths['paired'].name})", "",
               ("Every policy plays buyer i of a merchant with the same persona draw, visitor and "
                "arrival, and is scored against the same real buyers; each bootstrap resample "
                "draws one set of both, so the interval is that of the difference (separate "
                "intervals cannot be subtracted). P(a better): the share of resamples in "
                "which a aligns better."), ""]
        md += (_table(["a", "b", "conversion a - b", "lo", "hi", "P(a better)", "funnel a - b",
                       "lo", "hi"], paired_rows) if paired_rows else ["one policy: none"]) + [""]
        sess_rows = [[name, m, _v((p["merchants"].get(m) or {}).get("sessions_per_buyer")),
                      _v(info.get("population_sessions_per_buyer"))]
                     for name, p in pols.items() for m, info in result["merchants"].items()]
        if any(not math.isnan(r[2]) for r in sess_rows):
            md += ["## Sessions per buyer", "",
                   ("Real rates are per buyer over all its sessions; the simulated buyers come "
                    "back as often as their type's buyers in the population half."), ""]
            md += _table(["policy", "merchant", "simulated", "population half"], sess_rows)
            md += [""]
        md += ["## Conversion per merchant", "", f"![conversion]({paths['conversion'].name})", ""]
        md += _table(["policy", "merchant", "real", "real lo", "real hi", "sim", "sim lo",
                      "sim hi"], conv_rows) + [""]
        md += ["## Funnel per buyer type", "", f"![funnel by type]({paths['funnel_by_type'].name})",
               ""]
        md += _table(["side", "type", "stage", "share", "lo", "hi", "buyers"], type_rows) + [""]
        fid = (pols.get(policy or "") or {}).get("fidelity") or {}
        md += ["## Type fidelity", "", f"![type fidelity]({paths['type_fidelity'].name})", "",
               (f"Policy `{policy}`: {fid.get('n', 0)} simulated buyers re-encoded; "
                f"{_pct(fid.get('accuracy'))} get their sampled type (chance "
                f"{_pct(fid.get('chance'))}). Confusion matrix (rows: sampled type, columns: "
                f"re-assigned) in report.json under population.policies.{policy}.fidelity."), ""]
        if len(conf) <= 16:
            md += _table(["sampled \\ assigned", *map(str, range(len(conf)))],
                         [[str(i), *r] for i, r in enumerate(conf)]) + [""]
    md += ["## A/B test", "", f"![A/B]({paths['ab'].name})", ""]
    md += (_table(["arm", "conversion", "lo", "hi"], ab_rows) if ab_rows else ["not run"]) + [""]
    md += ["## Goal tasks", "", f"![goal success]({paths['goal_success'].name})", ""]
    if goal_rows:
        md += [(f"{goal['n_tasks']} tasks per catalog (seed {goal['seed']}); skipped "
                f"catalogs: {goal.get('skipped') or 'none'}"), ""]
        md += _table(["policy", "catalog", "success", "lo", "hi", "mean reward", "lo", "hi"],
                     goal_rows) + [""]
        if goal.get("paired"):
            md += [("Paired over the same tasks (a - b; the interval resamples tasks, both "
                    "policies' results of a task together):"), ""]
            md += _table(["a", "b", "success a - b", "lo", "hi", "reward a - b", "lo", "hi"],
                         [[c["a"], c["b"], *_ci(c["success"]), *_ci(c["reward"])]
                          for c in goal["paired"]]) + [""]
    else:
        md += ["not run", ""]
    md += ["All figures and the data behind them: `report.json`.", ""]
    paths["md"] = out / "report.md"
    paths["md"].write_text("\n".join(md))
    return paths


def _sessions_line(proto: Mapping[str, Any]) -> str:
    sess = proto.get("sessions") or {}
    if sess.get("mode") != "population":
        return "- one session per simulated buyer"
    gap = sess.get("gap_median_s")
    after = (f"{gap / 60:.0f} min (the population half's median)" if gap else
             "a day (the population half has no returning buyer)")
    after += ", at least 31 min (past the shop's 30-minute session timeout)"
    return (f"- sessions: each simulated buyer comes back as often as a buyer of its type in the "
            f"population half (up to {sess.get('max_sessions')}), the same visitor with its "
            f"cart, after a gap around {after}")


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * float(x):.1f}%"
