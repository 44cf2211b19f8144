"""python -m cmaudio.evaluate: quality against network calls, and the search for a model's sigmas.

The command line of cmaudio.evaluation: ``evaluate`` (cmaudio.evaluation.report) scores the
model at each step count, and optionally a teacher at network-call budgets, against the real test
split and writes OUT/report.json, OUT/report.md and OUT/quality_vs_calls.png; with
``--search-sigmas``, ``search`` (cmaudio.evaluation.search) tunes the intermediate sigmas of each
step count on the validation split and writes them into the model file (a new file, ``--out``,
or in place, ``--write``). Option errors of the library (EvaluationError, plain ValueError)
become one-line usage errors, exit status 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .cli import Parser, UsageError, main_wrapper
from .errors import EvaluationError
from .evaluation.clips import PITCH_MODES
from .evaluation.search_metrics import SEARCH_METRICS

__all__ = ["main"]

EXAMPLES = """examples:
  # quality against network calls: the student at 1/2/4 steps, the teacher at 9/18/35 calls
  python -m cmaudio.evaluate --model runs/digits-student/model.safetensors --data data/digits \\
      --teacher runs/digits-teacher/model.safetensors --teacher-steps 9,18,35 \\
      --classifier runs/digits-classifier/classifier.safetensors --n 500 --out eval/digits
  # no classifier: log-mel FD, pitch accuracy (pYIN), silence and clipping only
  python -m cmaudio.evaluate --model runs/tones-student/model.safetensors --data data/tones --out eval/tones
  # search the 2- and 4-step sigmas on the validation split and write a new model file
  python -m cmaudio.evaluate --model runs/digits-student/model.safetensors --data data/digits \\
      --search-sigmas --steps 2,4 --metric logmel_fd --n 128 --out runs/digits-student/model-tuned.safetensors
  # ... or store them in the model file itself
  python -m cmaudio.evaluate --model runs/tones-student/model.safetensors --data data/tones \\
      --search-sigmas --steps 2 --metric pitch --write
"""


def _ints(text: str, flag: str, low: int = 1) -> tuple[int, ...]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"{flag}: expected integers separated by commas, got {text!r}") from None
    if not values or min(values) < low:
        raise UsageError(f"{flag}: need at least one value, each >= {low}, got {text!r}")
    return tuple(values)


def _parser() -> Parser:
    p = Parser("cmaudio.evaluate", "Quality against network calls of a model (and its teacher), or search its "
               "intermediate sigmas.", EXAMPLES)
    p.add_argument("--model", required=True, help="bundled name or .safetensors model path")
    p.add_argument("--data", required=True, help="data set folder with a test split (valid for --search-sigmas)")
    p.add_argument("--n", type=int, default=None, help="clips per setting (default 500; 128 for --search-sigmas)")
    p.add_argument("--steps", default=None, help="consistency steps, e.g. 1,2,4 (default; 2,4 for --search-sigmas)")
    p.add_argument("--teacher", default=None, help="teacher model file, sampled with Heun")
    p.add_argument("--teacher-steps", default=None,
                   help="teacher network-call budgets; c calls run (c + 1) // 2 Heun levels (default 9,18,35)")
    p.add_argument("--classifier", default=None, help="recipe classifier file (cmaudio.evaluation.classifier)")
    p.add_argument("--out", default=None,
                   help="output folder (default ./eval); with --search-sigmas: the new model file")
    p.add_argument("--seed", type=int, default=0, help="first seed; clip i uses seed + i (default 0)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--vocoder", default=None, help="vocoder name or path (default: the best match)")
    p.add_argument("--pitch", default="auto", choices=PITCH_MODES,
                   help="read class names as pitches: auto (default), hz, midi or off")
    p.add_argument("--guidance", type=float, default=1.0,
                   help="classifier-free guidance scale of the model's calls (default 1: none)")
    p.add_argument("--dnsmos", action="store_true", help="DNSMOS for speech (needs the eval extra: speechmos)")
    p.add_argument("--layout", default="auto", choices=["auto", "folders", "manifest", "nsynth", "ljspeech"])
    p.add_argument("--manifest", default="", help="manifest file relative to --data (layout manifest)")
    p.add_argument("--search-sigmas", action="store_true", help="search the intermediate sigmas instead")
    p.add_argument("--metric", default="logmel_fd", choices=tuple(SEARCH_METRICS),
                   help="search metric (default logmel_fd)")
    p.add_argument("--iters", type=int, default=8, help="search: ternary iterations per sigma (default 8)")
    p.add_argument("--sweeps", type=int, default=1, help="search: passes over the sigmas (default 1)")
    p.add_argument("--write", action="store_true", help="search: store the sigmas in --model itself")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def _shared(a) -> dict:
    """The ScoringOptions fields, from the flags."""
    return {"data": a.data, "seed": a.seed, "classifier": a.classifier, "batch_size": a.batch_size,
            "device": a.device, "vocoder": a.vocoder, "pitch": a.pitch, "layout": a.layout, "manifest": a.manifest,
            "progress": not a.quiet}


def _search(a) -> int:
    from .evaluation.search import SearchConfig, search

    if a.teacher is not None:
        raise UsageError("--teacher has no meaning with --search-sigmas")
    if a.iters < 1 or a.sweeps < 1:
        raise UsageError("--iters and --sweeps must be >= 1")
    if a.out is not None and Path(a.out).suffix != ".safetensors":
        raise UsageError(f"--out {a.out}: with --search-sigmas, give the new model file (.safetensors)")
    cfg = SearchConfig(**_shared(a), steps=_ints(a.steps or "2,4", "--steps", 2), metric=a.metric, n=a.n or 128,
                       iters=a.iters, sweeps=a.sweeps, out=a.out, write=a.write)
    search(a.model, cfg)
    return 0


def _evaluate(a) -> int:
    from .evaluation.report import EvalConfig, evaluate, format_markdown

    if a.write:
        raise UsageError("--write belongs to --search-sigmas")
    if a.teacher is None and a.teacher_steps is not None:
        raise UsageError("--teacher-steps needs --teacher")
    out = Path(a.out or "eval")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    cfg = EvalConfig(**_shared(a), n=a.n or 500, steps=_ints(a.steps or "1,2,4", "--steps"), teacher=a.teacher,
                     teacher_calls=_ints(a.teacher_steps or "9,18,35", "--teacher-steps"), out=out, dnsmos=a.dnsmos,
                     guidance=a.guidance)
    report = evaluate(a.model, cfg)
    print(format_markdown(report), end="")
    return 0


def _body(argv: Sequence[str] | None) -> int:
    a = _parser().parse_args(argv)
    if a.batch_size < 1:
        raise UsageError("--batch-size must be >= 1")
    if a.n is not None and a.n < 2:
        raise UsageError(f"--n must be >= 2, got {a.n}")
    if not Path(a.data).is_dir():
        raise UsageError(f"--data {a.data}: no such directory")
    try:
        return _search(a) if a.search_sigmas else _evaluate(a)
    except ValueError as exc:
        # The library's option errors (EvaluationError) and Pipeline's and the samplers' argument
        # errors (plain ValueErrors) are usage errors here; the package's other error classes
        # are reported by main_wrapper.
        if type(exc) in (ValueError, EvaluationError):
            raise UsageError(str(exc)) from None
        raise


def main(argv: Sequence[str] | None = None) -> int:
    return main_wrapper("cmaudio.evaluate", _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
