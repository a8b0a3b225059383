"""SFT speed: steps/s of the project's trainer (loss on the action tokens only) against TRL's
``SFTTrainer`` (the baseline), on the same examples, model init and batches, in the same run.

    .venv/bin/python bench/bench_sft.py [--traces runs/demo/traces/traces.jsonl] [--steps 60]
        [--rounds 2] [--out out/bench]

Settings are the demo's (``configs/agent/small.yaml``, persona token, the page rendering of
``SFTSettings`` cut to 400 characters, ``max_length=384``, 16 examples per step);
``--agent large`` trains the ~8x model of ``bench/goal_scaling.py``
(``configs/agent/large.yaml``) instead. Without ``--traces`` the traces command replays a
generated log (no data needed). The arms alternate over ``--rounds`` so that
machine load hits both alike; the ratio is what to compare across machines. Each arm starts
from the same init and sees the same batches, so the last training losses must agree (they
are printed). Writes ``bench_sft.json`` and ``bench_sft.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]


def _episodes(traces: str, out: Path) -> tuple[list, str]:
    """The traces to train on: ``traces``, else the traces command on a generated log."""
    from agents.traces import read_episodes
    from simpersona_env.cli import run_command

    if traces:
        return read_episodes(traces), traces
    gen = out / "generated-traces"
    run_command("agents.commands_traces:traces", "traces",
                ["events=synthetic", f"out_dir={gen}", "synthetic_buyers=400", "seed=0",
                 "progress=false"])
    return read_episodes(gen / "traces.jsonl"), "generated archetype traffic (no data), replayed"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", default="", help="a traces.jsonl (default: replay a generated log)")
    ap.add_argument("--steps", type=int, default=60, help="optimizer steps per arm and round")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--agent", default="small", choices=("small", "large"),
                    help="the built-in model: small (the persona agent's, 0.66M parameters) or "
                    "large (the ~8x no-persona baseline of bench/goal_scaling.py)")
    ap.add_argument("--out", default="out/bench")
    args = ap.parse_args()

    import torch
    from omegaconf import OmegaConf
    from plots import steps_per_second  # bench/plots.py, beside this script
    from trl import SFTConfig, SFTTrainer

    from agents.model import AgentModelConfig, build_agent
    from agents.sft import SFTSettings, alias_items, build_examples, tokenize_examples
    from agents.sft_trainer import CompletionSFTTrainer

    out = Path(args.out)
    episodes, source = _episodes(args.traces, out)
    k = max(max((e.persona for e in episodes), default=0) + 1, 1)
    # the demo's settings (agents/demo.py): SFTSettings' rendering with 400-character pages
    st = SFTSettings(max_obs_chars=400, max_length=384)
    examples = build_examples(alias_items(episodes, 0), persona="token", n_history=st.n_history,
                              max_obs_chars=st.max_obs_chars, drop_chrome=st.drop_chrome,
                              typed_goals=st.typed_goals)
    torch.manual_seed(0)
    sizes = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "agent" / f"{args.agent}.yaml"))
    tok, init = build_agent(AgentModelConfig(**sizes), k,
                            corpus=[e.prompt + e.completion for e in examples])
    ds = tokenize_examples(tok, examples, st.max_length)
    lengths = [len(ids) for ids in ds["input_ids"]]
    labelled = [sum(m) for m in ds["completion_mask"]]
    arms = {"TRL SFTTrainer (baseline)": SFTTrainer, "CompletionSFTTrainer": CompletionSFTTrainer}
    seconds = {name: 0.0 for name in arms}
    last_loss: dict[str, float] = {}
    for r in range(args.rounds):
        for name, cls in arms.items():
            cfg = SFTConfig(output_dir=str(Path(args.out) / "sft-trainer"), max_steps=args.steps,
                            learning_rate=3e-3, per_device_train_batch_size=args.batch_size,
                            logging_steps=args.steps, save_strategy="no", seed=r, data_seed=r,
                            max_length=st.max_length, completion_only_loss=True, packing=False,
                            bf16=False, report_to="none", dataloader_num_workers=0,
                            disable_tqdm=False)
            trainer = cls(model=copy.deepcopy(init), args=cfg, train_dataset=ds, processing_class=tok)
            t0 = time.perf_counter()
            trainer.train()
            seconds[name] += time.perf_counter() - t0
            last_loss[name] = [h["loss"] for h in trainer.state.log_history if "loss" in h][-1]
            print(f"round {r}: {name}: {seconds[name] / (r + 1) / args.steps:.3f} s/step, "
                  f"loss at step {args.steps} {last_loss[name]:.5f}", flush=True)
    per_step = {name: s / (args.rounds * args.steps) for name, s in seconds.items()}
    base, ours = per_step["TRL SFTTrainer (baseline)"], per_step["CompletionSFTTrainer"]
    result = {
        "data": source, "agent": args.agent,
        "parameters": sum(p.numel() for p in init.parameters()), "examples": len(ds),
        "mean_tokens": sum(lengths) / len(lengths),
        "mean_labelled_tokens": sum(labelled) / len(labelled), "batch_size": args.batch_size,
        "steps_per_arm": args.steps * args.rounds, "threads": torch.get_num_threads(),
        "s_per_step": per_step, "steps_per_s": {n: 1 / s for n, s in per_step.items()},
        "speedup": base / ours, "last_loss": last_loss,
        "note": "same init and batches in both arms; a ratio, measured in one run",
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_sft.json").write_text(json.dumps(result, indent=2))
    steps_per_second(per_step, f"SFT, {args.batch_size} examples/step, {result['mean_tokens']:.0f} "
                     f"tokens and {result['mean_labelled_tokens']:.1f} labelled per example: "
                     f"{result['speedup']:.2f}x", out / "bench_sft.png")
    print(json.dumps({k: result[k] for k in ("s_per_step", "speedup", "last_loss")}, indent=2))
    print(f"wrote {out / 'bench_sft.json'} and {out / 'bench_sft.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
