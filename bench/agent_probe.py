"""What does an agent do on a product page, by buyer type? A probe of its action probabilities.

For each agent checkpoint and each buyer type asked for, the probe opens a merchant's
storefront (the bundled shop built from a canonical event log, as the evaluation's
simulation does), clicks each of the first ``--pages`` products of the home page, and reads
the policy's probabilities on the product page (the same scores it samples from, prior
correction included): P(add to cart) and P(stop). With ``--traces`` it also scores the
training traces' product pages with the type swapped, which tells whether the token or the
page carries the decision.

The agents' purchase decision is the quantity conversion alignment depends on, and it is
tiny and rare: on the REES46 sample the buying type adds to cart on 0.25 of its product
pages, every other type on ~0.01. docs/agents.md reports this probe for the demo's agents.

Run::

    .venv/bin/python bench/agent_probe.py --agents runs/demo/agent runs/exp/agent \\
        --events runs/demo/ingest/events --merchant electronics --types 11 3 14
    .venv/bin/python bench/agent_probe.py --agents runs/demo/agent --events runs/demo/ingest/events \\
        --merchant electronics --traces runs/demo/traces/traces.jsonl --buying-type 11

Writes ``<out>/agent_probe.json`` (default ``runs/bench/agent_probe``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ADD, STOP = "click[add-to-cart]", "stop"


def probe_shop(policy: Any, env: Any, types: Sequence[int], pages: int) -> dict[str, Any]:
    """P(add to cart) and P(stop) on the first ``pages`` product pages, one click from home."""
    home, _ = env.reset(seed=0)
    products = [a for a in policy.action_probabilities(home, [], types[0])
                if a.startswith("click[product-")][:pages]
    rows = []
    for click in products:
        env.reset(seed=0)
        page, *_ = env.step(click)
        probs = {k: policy.action_probabilities(page, [click], k) for k in types}
        rows.append({"page": page["url"], **{
            f"type_{k}": {"add_to_cart": p.get(ADD, 0.0), "stop": p.get(STOP, 0.0)}
            for k, p in probs.items()}})
    mean = {f"type_{k}": {a: float(np.mean([r[f"type_{k}"][a] for r in rows]))
                          for a in ("add_to_cart", "stop")} for k in types}
    return {"pages": rows, "mean": mean}


def probe_traces(policy: Any, traces: Path, buying_type: int, other: int,
                 limit: int) -> dict[str, Any]:
    """Mean P(add to cart) on the traces' product pages, by (buying type?, added?), with
    each page's own type and with the type swapped (buying type <-> ``other``)."""
    from agents.traces import read_episodes

    groups: dict[str, list[tuple[float, float]]] = {}
    n = 0
    for ep in read_episodes(traces):
        history: list[str] = []
        for step in ep.steps:
            obs = step.observation
            if "/products/" in str(obs.get("url", "")) and "[add-to-cart]" in obs["text"] \
                    and ep.persona >= 0 and n < limit:
                k = int(ep.persona)
                swapped = other if k == buying_type else buying_type
                key = (f"{'buying' if k == buying_type else 'other'}_type, "
                       f"{'added' if step.action == ADD else 'did not add'}")
                groups.setdefault(key, []).append(
                    (policy.action_probabilities(obs, history, k).get(ADD, 0.0),
                     policy.action_probabilities(obs, history, swapped).get(ADD, 0.0)))
                n += 1
            history.append(step.action)
    return {key: {"n": len(v), "p_add": float(np.mean([a for a, _ in v])),
                  "p_add_type_swapped": float(np.mean([b for _, b in v]))}
            for key, v in sorted(groups.items())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", nargs="+", required=True, help="agent checkpoint folders")
    ap.add_argument("--events", required=True, help="canonical event log (ingest's events/)")
    ap.add_argument("--merchant", required=True, help="the merchant whose shop is probed")
    ap.add_argument("--types", nargs="+", type=int, default=[11, 3, 14])
    ap.add_argument("--pages", type=int, default=8)
    ap.add_argument("--traces", default=None, help="also probe these traces' product pages")
    ap.add_argument("--buying-type", type=int, default=11)
    ap.add_argument("--swap-to", type=int, default=0, help="the type the buying type's pages "
                    "are swapped to")
    ap.add_argument("--trace-pages", type=int, default=100000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/bench/agent_probe")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from agents.policies.llm import LLMPolicy
    from simpersona_env.env.settings import make_env

    torch.set_num_threads(args.threads)
    env = make_env({"store": {"name": "events", "events": args.events,
                              "merchants": [args.merchant]}, "store_id": args.merchant,
                    "backend": {"name": "http"}, "task": {"name": "browse"}, "max_steps": 30})
    result: dict[str, Any] = {"merchant": args.merchant, "events": args.events, "agents": {}}
    try:
        for ck in args.agents:
            policy = LLMPolicy(ck, device="cpu")
            entry = {"shop": probe_shop(policy, env, args.types, args.pages)}
            if args.traces:
                entry["traces"] = probe_traces(policy, Path(args.traces), args.buying_type,
                                               args.swap_to, args.trace_pages)
            result["agents"][ck] = entry
            line = ", ".join(f"{t}: add {v['add_to_cart']:.4f} stop {v['stop']:.3f}"
                             for t, v in entry["shop"]["mean"].items())
            print(f"{ck} @ {args.merchant}: {line}")
            for key, v in entry.get("traces", {}).items():
                print(f"  traces, {key} (n={v['n']}): P(add) {v['p_add']:.4f}, type swapped "
                      f"{v['p_add_type_swapped']:.4f}")
    finally:
        env.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "agent_probe.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / 'agent_probe.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
