"""python -m cmaudio.train CONFIG.toml [--set key=value ...] [--out RUN_DIR] [--resume] [--dry-run]

Thin wrapper over cmaudio.training.run. The same command under
``torchrun --nproc_per_node=N`` trains with DDP (gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .cli import Parser, UsageError, main_wrapper

EXAMPLES = """examples:
  python recipes/tones/prepare.py --out data/tones
  python -m cmaudio.train recipes/tones/teacher.toml --out runs/tones-teacher
  python -m cmaudio.train recipes/tones/student.toml --out runs/tones-student \\
      --set teacher=runs/tones-teacher/model.safetensors
  python -m cmaudio.train recipes/tones/teacher.toml --out runs/tones-teacher --resume
  torchrun --nproc_per_node=2 -m cmaudio.train recipes/tones/teacher.toml --out runs/tones-ddp
  python -m cmaudio.train recipes/tones/teacher.toml --set run.steps=10 --dry-run
"""


def _body(argv: Sequence[str] | None) -> int:
    from .config import load_config, to_dict

    p = Parser("cmaudio.train", "Train a teacher (EDM) or a consistency model (CD, iCT, ECT).", EXAMPLES)
    p.add_argument("config", help="recipe TOML file")
    p.add_run_arguments()
    args = p.parse_args(argv)

    if _task(args.config) == "classifier":
        # Recipe classifiers (used by evaluate) train through the same command.
        from .training.classifier import main_train

        if args.resume:
            raise UsageError("--resume: a classifier run always starts from scratch")
        return main_train(args.config, args.overrides, args.out, args.dry_run, progress=not args.no_progress)
    cfg = load_config(args.config, args.overrides)
    run_dir = Path(args.out or os.path.join("runs", cfg.name))
    if args.dry_run:
        print(json.dumps(to_dict(cfg), indent=2))
        print(f"dry run: would train {cfg.objective.kind} for {cfg.run.steps} steps into {run_dir}", file=sys.stderr)
        return 0
    from .training import run

    run(cfg, run_dir, resume=args.resume, progress=not args.no_progress)
    return 0


def _task(path: str) -> str:
    """The recipe's top-level ``task`` key ("generator" when absent); unreadable files are left
    for load_config to report."""
    import tomllib

    try:
        return str(tomllib.loads(Path(path).read_text()).get("task", "generator"))
    except (OSError, tomllib.TOMLDecodeError):
        return "generator"


def main(argv: Sequence[str] | None = None) -> int:
    return main_wrapper("cmaudio.train", _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
