"""What each buyer type is: per-type statistics, a one-line description, and a Markdown + PNG
report (type sizes and funnel rates, the per-merchant mix over types, codebook usage).

Descriptions are derived from a type's statistics *relative to the whole population*
(e.g. conversion three times the overall rate is "often buys"), so they read the same on a
shop that converts at 1 % and one that converts at 10 %.

Example:
    >>> stats = type_stats(buyers, types, k=16, events=events)  # doctest: +SKIP
    >>> write_report(buyers, types, 16, "runs/personas/report", events=events)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simpersona_env.personas.quality import perplexity

if TYPE_CHECKING:
    import polars as pl

__all__ = ["type_stats", "overall_stats", "describe_type", "top_categories", "write_report"]

_STAT_COLUMNS = {  # report column -> (buyer-table column, aggregation)
    "conversion_rate": ("has_purchase", "mean"),
    "cart_rate": ("has_cart", "mean"),
    "bounce_rate": ("bounced", "mean"),
    "sessions": ("n_sessions", "mean"),
    "events_per_session": ("events_per_session", "mean"),
    "session_length_s": ("session_duration_s", "mean"),
    "product_views": ("n_product_views", "mean"),
    "search_share": ("search_share", "mean"),
    "category_diversity": ("category_diversity", "mean"),
}


def _stats(df: pl.DataFrame) -> dict[str, float]:
    import polars as pl

    out = {name: float(df[col].cast(pl.Float64).mean() or 0.0)
           for name, (col, _) in _STAT_COLUMNS.items()}
    known = df.filter(pl.col("price_level") > 0)["price_level"]
    # price level 0 means "no known price": leave those buyers out of the mean.
    out["price_level"] = float(known.mean()) if known.len() else float("nan")
    return out


def overall_stats(buyers: pl.DataFrame) -> dict[str, float]:
    """The statistics of :func:`type_stats` over all buyers (the reference for descriptions)."""
    return _stats(buyers)


def top_categories(events: pl.DataFrame | pl.LazyFrame, buyers: pl.DataFrame, types: np.ndarray,
                   n: int = 3) -> dict[int, list[tuple[str, float]]]:
    """Per type, its ``n`` most viewed top-level categories with their share of its events.

    Args:
        events: canonical events (only ``merchant_id``, ``buyer_id``, ``category`` are read).
        buyers, types: the buyer table and its types, row-aligned.
    """
    import polars as pl

    key = buyers.select("merchant_id", "buyer_id").with_columns(
        pl.Series("type", np.asarray(types, np.int64)))
    lf = events.lazy() if isinstance(events, pl.DataFrame) else events
    counts = (lf.select("merchant_id", "buyer_id", "category")
              .filter(pl.col("category").is_not_null())
              .with_columns(pl.col("category").str.split(".").list.first().alias("top"))
              .join(key.lazy(), on=["merchant_id", "buyer_id"], how="inner")
              .group_by("type", "top").agg(pl.len().alias("n"))
              .with_columns((pl.col("n") / pl.col("n").sum().over("type")).alias("share"))
              .sort(["type", "n", "top"], descending=[False, True, False])
              .collect())
    out: dict[int, list[tuple[str, float]]] = {}
    for t, top, share in counts.select("type", "top", "share").iter_rows():
        if len(out.setdefault(int(t), [])) < n:
            out[int(t)].append((str(top), float(share)))
    return out


def describe_type(s: dict[str, float], ref: dict[str, float]) -> str:
    """One line such as ``"deep browser, high price, rarely buys"``.

    Args:
        s: the type's statistics (a row of :func:`type_stats`).
        ref: the same statistics over the whole population (:func:`overall_stats`).
    """
    def ratio(name: str) -> float:
        return s[name] / ref[name] if ref[name] > 0 else (math.inf if s[name] > 0 else 1.0)

    if s["bounce_rate"] >= 0.7:
        kind = "bouncer"
    elif ratio("events_per_session") >= 2.0 and ratio("product_views") >= 2.0:
        kind = "deep browser"
    elif s["search_share"] >= 0.1 and ratio("search_share") >= 1.8:
        kind = "searcher"
    elif ratio("sessions") >= 1.8:
        kind = "returning visitor"
    elif s["conversion_rate"] >= 0.5 and s["events_per_session"] <= 1.2 * ref["events_per_session"]:
        kind = "decisive buyer"
    else:
        kind = "window shopper" if ratio("cart_rate") < 1.0 else "browser"
    parts = [kind]
    if not math.isnan(s["price_level"]) and not math.isnan(ref["price_level"]):
        d = s["price_level"] - ref["price_level"]
        if d >= 0.5:
            parts.append("high price")
        elif d <= -0.5:
            parts.append("low price")
    elif math.isnan(s["price_level"]):
        parts.append("no price seen")
    conv = s["conversion_rate"]
    if conv == 0:
        parts.append("never buys")
    elif conv >= 0.5 or ratio("conversion_rate") >= 3.0:
        parts.append("usually buys" if conv >= 0.5 else "often buys")
    elif ratio("conversion_rate") >= 1.5:
        parts.append("buys more than most")
    elif ratio("conversion_rate") <= 0.5:
        parts.append("rarely buys")
    else:
        parts.append("buys at the average rate")
    if s["cart_rate"] >= 0.2 and ratio("cart_rate") >= 2.0 and conv < s["cart_rate"] / 3:
        parts.append("abandons carts")
    return ", ".join(parts)


def type_stats(buyers: pl.DataFrame, types: np.ndarray, k: int,
               events: pl.DataFrame | pl.LazyFrame | None = None, n_categories: int = 3
               ) -> pl.DataFrame:
    """One row per type 0..K-1: size, share, funnel rates, behaviour, price, top categories,
    description (empty types included with size 0).
    """
    import polars as pl

    types = np.asarray(types, np.int64)
    ref = overall_stats(buyers)
    cats = top_categories(events, buyers, types, n_categories) if events is not None else {}
    rows = []
    df = buyers.with_columns(pl.Series("_type", types))
    for t in range(k):
        part = df.filter(pl.col("_type") == t)
        row: dict[str, Any] = {"type": t, "size": part.height,
                               "share": part.height / max(buyers.height, 1)}
        if part.height:
            s = _stats(part)
            row.update(s)
            row["description"] = describe_type(s, ref)
        else:
            row.update({name: float("nan") for name in [*_STAT_COLUMNS, "price_level"]})
            row["description"] = "unused"
        row["top_categories"] = ", ".join(f"{c} {100 * sh:.0f}%" for c, sh in cats.get(t, []))
        rows.append(row)
    return pl.DataFrame(rows)


def _fmt(v: Any, pct: bool = False) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{100 * v:.1f}%" if pct else f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def write_report(buyers: pl.DataFrame, types: np.ndarray, k: int, out_dir: str | Path,
                 events: pl.DataFrame | pl.LazyFrame | None = None, title: str = "Buyer types",
                 source: str = "") -> Path:
    """Write ``report.md`` with ``types.png``, ``merchant_mix.png``, ``codebook_usage.png`` and
    ``type_stats.json`` into ``out_dir``; returns the Markdown path.

    Without ``events`` the top-categories column says so instead of guessing.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    types = np.asarray(types, np.int64)
    stats = type_stats(buyers, types, k, events)
    ref = overall_stats(buyers)
    (out / "type_stats.json").write_text(
        json.dumps({"overall": ref, "types": stats.to_dicts()}, indent=2, default=float) + "\n")

    # Per type: size and funnel rates.
    order = stats.sort("size", descending=True)
    labels = [f"T{t}" for t in order["type"]]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].bar(labels, order["share"].to_numpy() * 100, color="tab:blue")
    axes[0].set(title="share of buyers (%)")
    axes[1].bar(labels, np.nan_to_num(order["conversion_rate"].to_numpy()) * 100, color="tab:green")
    axes[1].axhline(ref["conversion_rate"] * 100, color="k", ls=":", lw=1)
    axes[1].set(title="conversion rate (%) (dotted: overall)")
    axes[2].bar(labels, np.nan_to_num(order["cart_rate"].to_numpy()) * 100, color="tab:orange")
    axes[2].axhline(ref["cart_rate"] * 100, color="k", ls=":", lw=1)
    axes[2].set(title="cart rate (%) (dotted: overall)")
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=90, labelsize=8)
    fig.tight_layout()
    fig.savefig(out / "types.png", dpi=110)
    plt.close(fig)

    # Per merchant: mix over types (rows sum to 1).
    merchants = sorted(buyers["merchant_id"].unique().to_list())
    m = buyers["merchant_id"].to_numpy()
    mix = np.stack([np.bincount(types[m == mm], minlength=k) / max((m == mm).sum(), 1)
                    for mm in merchants]) if merchants else np.zeros((0, k))
    shown = merchants[:40]  # a readable heatmap; the JSON of `assign` has them all
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * k + 3), max(2.5, 0.35 * len(shown) + 1.5)))
    im = ax.imshow(mix[: len(shown)], aspect="auto", cmap="viridis", vmin=0)
    ax.set_xticks(range(k), [f"T{t}" for t in range(k)], fontsize=8)
    ax.set_yticks(range(len(shown)), [s[:28] for s in shown], fontsize=8)
    ax.set(title="merchant mix over buyer types (share of the merchant's buyers)")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(out / "merchant_mix.png", dpi=110)
    plt.close(fig)

    # Codebook usage.
    usage = np.bincount(types, minlength=k)
    fig, ax = plt.subplots(figsize=(max(5, 0.4 * k + 2), 3))
    ax.bar([f"T{t}" for t in range(k)], usage, color="tab:purple")
    ax.set(title=f"codebook usage (perplexity {perplexity(types, k):.1f} of {k})",
           ylabel="buyers")
    ax.tick_params(axis="x", labelrotation=90, labelsize=8)
    fig.tight_layout()
    fig.savefig(out / "codebook_usage.png", dpi=110)
    plt.close(fig)

    lines = [f"# {title}", ""]
    if source:
        lines += [f"Data: {source}", ""]
    lines += [f"{buyers.height} buyers at {len(merchants)} merchants, K = {k} types "
              f"({int((usage > 0).sum())} used, perplexity {perplexity(types, k):.1f}). "
              f"Overall conversion {100 * ref['conversion_rate']:.1f}%, cart rate "
              f"{100 * ref['cart_rate']:.1f}%.", "",
              "| type | description | buyers | share | conversion | cart | bounce | events/session "
              "| session length (s) | price level (1-5) | top categories |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in order.iter_rows(named=True):
        cats = r["top_categories"] or ("(no events given)" if events is None else "–")
        lines.append(f"| T{r['type']} | {r['description']} | {r['size']} | "
                     f"{_fmt(r['share'], True)} | {_fmt(r['conversion_rate'], True)} | "
                     f"{_fmt(r['cart_rate'], True)} | {_fmt(r['bounce_rate'], True)} | "
                     f"{_fmt(r['events_per_session'])} | {_fmt(r['session_length_s'])} | "
                     f"{_fmt(r['price_level'])} | {cats} |")
    lines += ["", "![types](types.png)", "", "## Merchant mix", "",
              "![merchant mix](merchant_mix.png)", ""]
    if len(merchants) > len(shown):
        lines += [f"(first {len(shown)} of {len(merchants)} merchants shown)", ""]
    lines += ["| merchant | buyers | " + " | ".join(f"T{t}" for t in range(k)) + " |",
              "|---|---|" + "---|" * k]
    for mm, row in zip(merchants, mix):
        lines.append(f"| {mm} | {(m == mm).sum()} | "
                     + " | ".join(f"{100 * v:.0f}%" for v in row) + " |")
    lines += ["", "## Codebook usage", "", "![codebook usage](codebook_usage.png)", "",
              "Descriptions compare each type with the whole population: the kind of visit "
              "(bouncer, deep browser, searcher, ...), the price level of viewed products "
              "(±0.5 quintile), and conversion relative to the overall rate.", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
