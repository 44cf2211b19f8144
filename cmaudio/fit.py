"""python -m cmaudio.fit DATA --out RUN: a folder of your own recordings to a fast model.

Thin wrapper over cmaudio.fitting.fit (what it does, stage by stage, is documented there).
"""

from __future__ import annotations

from collections.abc import Sequence

from .cli import Parser, main_wrapper

EXAMPLES = """examples:
  python -m cmaudio.fit my_sounds/ --out runs/mine                    # labels from sub-folders, if any
  python -m cmaudio.fit recordings/ --out runs/digits --labels filename   # 7_jackson_32.wav -> "7"
  python -m cmaudio.fit takes/ --out runs/takes --labels filename --label-pattern '^(\\w+)-take'
  python -m cmaudio.fit field/ --out runs/field --labels none --minutes 60 --seconds 2
  python -m cmaudio.fit my_digits/ --out runs/mine --labels filename --from digits --minutes 15
  python -m cmaudio.fit my_sounds/ --out runs/mine --dry-run          # the labels, clips and step plan only
Running the same command again continues where it stopped.
"""


def _body(argv: Sequence[str] | None) -> int:
    from .fitting import FitOptions, fit
    from .fitting.plan import DEFAULT_MINUTES

    p = Parser("cmaudio.fit", "Train a fast consistency model on a folder of your own recordings.", EXAMPLES)
    p.add_argument("data", help="folder of audio files (any rate, channels and format soundfile reads)")
    p.add_argument("--out", required=True, help="run folder; RUN/model.safetensors is the result")
    p.add_argument(
        "--labels",
        default="auto",
        choices=["auto", "folders", "filename", "manifest", "none"],
        help="where labels come from (default: auto)",
    )
    p.add_argument("--manifest", default="", help="manifest file in DATA (path, label) for --labels manifest")
    p.add_argument("--label-pattern", default="", help="with --labels filename: a regex whose first group is the label")
    p.add_argument(
        "--minutes",
        type=float,
        default=DEFAULT_MINUTES,
        help=f"time budget for the whole run, evaluation included (default: {DEFAULT_MINUTES:g})",
    )
    p.add_argument(
        "--from",
        dest="source",
        default="",
        metavar="NAME|PATH",
        help="start from a bundled model or model file: no teacher, its network, mel front end and "
        "vocoder kept, new labels added",
    )
    p.add_argument("--seconds", type=float, default=None, help="clip length (default: chosen from the data)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--dry-run", action="store_true", help="print the labels, clips and step plan; train nothing")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    options = FitOptions(
        data=a.data,
        out=a.out,
        labels=a.labels,
        manifest=a.manifest,
        label_pattern=a.label_pattern,
        minutes=a.minutes,
        seconds=a.seconds,
        seed=a.seed,
        device=a.device,
        source=a.source,
    )
    fit(options, dry_run=a.dry_run, progress=not a.no_progress)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return main_wrapper("cmaudio.fit", _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
