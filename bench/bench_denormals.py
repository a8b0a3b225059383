"""SFT step time of a trained agent with subnormal floats flushed to zero, against without
(the baseline), on the same weights and batches, in the same run.

    .venv/bin/python bench/bench_denormals.py --checkpoint runs/bench/goal_type_2500/no_persona_8x \
        --traces runs/bench/goal_type_2500/traces.jsonl [--steps 20] [--rounds 2] [--out out/bench]

Why: a model's training sharpens its attention, and its backward passes then carry gradients
below float32's normal range (~1.2e-38); x86 matrix kernels take a slow path on each such
operand. Agent SFT on CPU flushes them (``simpersona_env.cpu.flush_denormals``). A
fresh model has few, so this bench starts from a *trained* checkpoint: it continues training
it for ``--steps`` steps (the SFT trainer, the checkpoint's own page rendering and length,
a fixed seed, so both arms see the same batches) with subnormals kept, then flushed
(``simpersona_env.cpu.flush_denormals``), alternating over ``--rounds``, and counts the
subnormal values in one batch's gradients (parameters, and the hidden states between blocks).
Each arm runs in a fresh process: the flag is per CPU thread and reaches torch's worker
threads only when they start after it, so one process cannot switch it back and forth.
Writes ``bench_denormals.json`` and ``bench_denormals.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def subnormal_share(model, batch) -> dict[str, float]:
    """Share of subnormal values among one batch's parameter gradients and the gradients
    reaching the hidden states between blocks (flushing off)."""
    import torch

    tiny = torch.finfo(torch.float32).tiny
    grads: list = []

    def keep(_module, _grad_in, grad_out):
        grads.extend(g.detach() for g in grad_out if g is not None)

    hooks = [layer.register_full_backward_hook(keep) for layer in model.model.layers]
    try:
        model.zero_grad(set_to_none=True)
        model(**batch).loss.backward()
    finally:
        for h in hooks:
            h.remove()

    def share(tensors) -> float:
        n = sub = 0
        for t in tensors:
            a = t.abs()
            sub += int(((a > 0) & (a < tiny)).sum())
            n += t.numel()
        return sub / max(n, 1)

    params = [p.grad for p in model.parameters() if p.grad is not None]
    return {"parameter_gradients": share(params), "hidden_state_gradients": share(grads)}


def arm(args: argparse.Namespace) -> dict:
    """One arm in this (fresh) process: continue training the checkpoint ``--steps`` steps."""
    flush = args.arm == "flushed"
    state = "off"
    if flush:
        from simpersona_env.cpu import flush_denormals

        state = flush_denormals()  # first, before torch starts its threads
        if state != "all threads":
            raise SystemExit(f"subnormals could not be flushed on every thread: {state}")
    import torch
    from trl import SFTConfig

    from agents.model import load_agent
    from agents.sft import build_examples, tokenize_examples
    from agents.sft_trainer import CompletionSFTTrainer
    from agents.traces import read_episodes

    if args.threads:
        torch.set_num_threads(args.threads)
    tok, trained, meta = load_agent(args.checkpoint, device="cpu")
    episodes = read_episodes(args.traces)
    examples = build_examples(episodes, persona=meta.persona_mode, n_history=meta.n_history,
                              max_obs_chars=meta.max_obs_chars, drop_chrome=meta.drop_chrome)
    examples = examples[:: max(1, len(examples) // args.examples)][: args.examples]
    ds = tokenize_examples(tok, examples, meta.max_length)
    # one SFT batch: labels on the action tokens only, as the trainer's loss has them
    rows = ds.select(range(min(args.batch_size, len(ds))))
    width = max(len(ids) for ids in rows["input_ids"])

    def padded(key: str, fill: int) -> torch.Tensor:
        return torch.tensor([v + [fill] * (width - len(v)) for v in rows[key]])

    ids, action = padded("input_ids", tok.pad_token_id), padded("completion_mask", 0)
    lengths = torch.tensor([len(v) for v in rows["input_ids"]])
    attention = (torch.arange(width)[None, :] < lengths[:, None]).long()
    batch = {"input_ids": ids, "attention_mask": attention,
             "labels": ids.masked_fill(action == 0, -100)}
    shares = subnormal_share(copy.deepcopy(trained).train(), batch)
    cfg = SFTConfig(output_dir=str(Path(args.out) / "denormals-trainer"), max_steps=args.steps,
                    learning_rate=1e-3, lr_scheduler_type="constant",
                    per_device_train_batch_size=args.batch_size, logging_steps=args.steps,
                    save_strategy="no", seed=0, data_seed=0, max_length=meta.max_length,
                    completion_only_loss=True, packing=False, bf16=False, report_to="none",
                    dataloader_num_workers=0, disable_tqdm=True)
    trainer = CompletionSFTTrainer(model=trained.train(), args=cfg, train_dataset=ds,
                                   processing_class=tok)
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    loss = [h["loss"] for h in trainer.state.log_history if "loss" in h][-1]
    return {"arm": args.arm, "flush": state, "seconds": seconds, "loss": loss,
            "subnormal_share": shares, "examples": len(ds),
            "parameters": sum(p.numel() for p in trained.parameters()),
            "threads": torch.get_num_threads()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="a trained agent folder (agent train)")
    ap.add_argument("--traces", required=True, help="traces.jsonl to continue training on")
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per arm and round")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--examples", type=int, default=4000, help="examples drawn from the traces")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--arm", choices=("kept", "flushed"), help=argparse.SUPPRESS)
    ap.add_argument("--out", default="out/bench")
    args = ap.parse_args()
    if args.arm:  # a child process: one arm, its figures as the last line
        print(json.dumps(arm(args)), flush=True)
        return 0

    names = {"kept": "subnormals kept (baseline)", "flushed": "flushed to zero"}
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name, label in names.items():
            cmd = [sys.executable, __file__, "--arm", name, "--checkpoint", args.checkpoint,
                   "--traces", args.traces, "--steps", str(args.steps),
                   "--batch-size", str(args.batch_size), "--examples", str(args.examples),
                   "--threads", str(args.threads), "--out", args.out]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode:
                sys.stderr.write(done.stderr[-3000:])
                raise SystemExit(f"the {name} arm failed")
            res = json.loads(done.stdout.strip().splitlines()[-1])
            runs[name].append(res)
            print(f"round {r}: {label}: {res['seconds'] / args.steps:.3f} s/step, loss "
                  f"at step {args.steps} {res['loss']:.5f}, subnormal share of gradients "
                  f"{res['subnormal_share']}", flush=True)
    per_step = {names[n]: sum(x["seconds"] for x in rs) / (len(rs) * args.steps)
                for n, rs in runs.items()}
    first = runs["kept"][0]
    result = {
        "checkpoint": args.checkpoint, "traces": args.traces, "examples": first["examples"],
        "parameters": first["parameters"], "batch_size": args.batch_size,
        "steps_per_arm": args.steps * args.rounds, "threads": first["threads"],
        "subnormal_share": {n: rs[0]["subnormal_share"] for n, rs in runs.items()},
        "s_per_step": per_step,
        "speedup": per_step[names["kept"]] / per_step[names["flushed"]],
        "last_loss": {names[n]: rs[-1]["loss"] for n, rs in runs.items()},
        "note": "same weights and batches in both arms, each arm a fresh process; a ratio, "
                "measured in one run",
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_denormals.json").write_text(json.dumps(result, indent=2))
    from plots import steps_per_second  # bench/plots.py, beside this script

    share = result["subnormal_share"]["kept"]["hidden_state_gradients"]
    title = (f"SFT of {Path(args.checkpoint).name} ({first['parameters'] / 1e6:.2f}M): "
             f"{result['speedup']:.2f}x flushed\n({share:.2%} of the gradients between blocks "
             "subnormal)")
    steps_per_second(per_step, title, out / "bench_denormals.png")
    print(json.dumps({k: result[k] for k in ("subnormal_share", "s_per_step", "speedup",
                                             "last_loss")}, indent=2))
    print(f"wrote {out / 'bench_denormals.json'} and {out / 'bench_denormals.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
