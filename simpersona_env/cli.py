"""The ``simpersona`` console script: ``simpersona <command> [key=value ...]``.

Each command is a function ``run(cfg: DictConfig) -> int | None`` in some module, named here
as a string so that nothing heavy is imported until the command runs. Importing the module
registers its structured configs; the root config is ``configs/<root>.yaml``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "main", "run_command"]

#: words on the command line -> ("module:function", root config name)
COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("shop",): ("simpersona_env.commands.shop:run", "shop"),
    ("play",): ("simpersona_env.commands.play:run", "play"),
    ("bench", "env"): ("simpersona_env.commands.bench_env:run", "bench_env"),
    ("ingest",): ("simpersona_env.commands.ingest:run", "ingest"),
    ("personas", "train"): ("simpersona_env.commands.personas:train", "personas_train"),
    ("personas", "assign"): ("simpersona_env.commands.personas:assign", "personas_assign"),
    ("personas", "report"): ("simpersona_env.commands.personas:report", "personas_report"),
    # agents/ is referenced by name only: the library never imports it (ARCHITECTURE.md).
    ("agent", "train"): ("agents.commands:train", "agent_train"),
    ("traces",): ("agents.commands_traces:traces", "traces"),
    ("episode",): ("simpersona_env.commands.episode:run", "episode"),
    # the main job end to end; it drives the agents, so it lives there
    ("demo",): ("agents.demo:run", "demo"),
    ("simulate",): ("simpersona_env.commands.simulate:run", "simulate"),
    ("evaluate",): ("simpersona_env.commands.evaluate:run", "evaluate"),
    ("evaluate", "goal"): ("simpersona_env.commands.evaluate:goal", "evaluate_goal"),
}


def run_command(target: str, root: str, overrides: Sequence[str] = ()) -> None:
    """Run one command in this process, composed exactly as the CLI composes it.

    For jobs made of commands (``simpersona demo``, the benchmarks). A command may set torch's
    thread count for itself (the type assignment runs best on one thread); the caller's is
    restored afterwards, so a later stage does not inherit it (the demo's SFT once ran at half
    speed that way).

    Raises:
        RuntimeError: the command returned a non-zero exit code.
    """
    import torch

    from simpersona_env.config import compose

    module, func = target.split(":")
    fn = getattr(importlib.import_module(module), func)
    threads = torch.get_num_threads()
    try:
        code = fn(compose(root, list(overrides)))
    finally:
        torch.set_num_threads(threads)
    if code:
        raise RuntimeError(f"{root} exited with {code}")


def _usage() -> str:
    lines = ["usage: simpersona <command> [key=value ...]   (hydra overrides)", "", "commands:"]
    for words, (target, _) in COMMANDS.items():
        module, func = target.split(":")
        doc = ""
        try:
            doc = (getattr(importlib.import_module(module), func).__doc__ or "").strip()
        except ImportError:
            pass
        lines.append(f"  {' '.join(words):<18} {doc.splitlines()[0] if doc else ''}")
    lines += ["", "`simpersona <command> --help` shows its settings."]
    return "\n".join(lines)


def _split(argv: Sequence[str]) -> tuple[tuple[str, ...], list[str]]:
    for n in (2, 1):
        words = tuple(argv[:n])
        if words in COMMANDS:
            return words, list(argv[n:])
    return (), list(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    from simpersona_env.errors import SimPersonaError, did_you_mean

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    words, rest = _split(argv)
    if not words:
        known = [" ".join(w) for w in COMMANDS]
        guess = " ".join(a for a in argv[:2] if "=" not in a)
        print(f"simpersona: unknown command {guess!r}{did_you_mean(guess, known)}\n", file=sys.stderr)
        print(_usage(), file=sys.stderr)
        return 2
    target, root = COMMANDS[words]
    module, func = target.split(":")
    fn = getattr(importlib.import_module(module), func)
    from simpersona_env.config import compose

    try:
        if "--help" in rest or "-h" in rest:
            from simpersona_env.config import describe

            print((fn.__doc__ or "").strip(), "\n")
            print(f"settings (override as key=value; configs/{root}.yaml):")
            print("\n".join("  " + line for line in
                            describe(compose(root, [a for a in rest if a not in {"--help", "-h"}]))))
            return 0
        cfg = compose(root, rest)
        code = fn(cfg)
    except SimPersonaError as exc:
        print(f"simpersona {' '.join(words)}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
