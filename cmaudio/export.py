"""python -m cmaudio.export MODEL OUT [--dtype float16] [--sigmas K=a,b,...]: re-save a model file,
e.g. in half precision for bundling (cmaudio/assets holds files of at most 10 MB), optionally with
recommended sigma lists set by hand (evaluate --search-sigmas finds them automatically)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .cli import Parser, main_wrapper

EXAMPLES = """examples:
  python -m cmaudio.export runs/digits-student/model.safetensors cmaudio/assets/digits.safetensors --dtype float16
  python -m cmaudio.export model-tuned.safetensors digits.safetensors --sigmas 2=80,2.0 --sigmas 1=80
"""


def _body(argv: Sequence[str] | None) -> int:
    import json

    import torch

    from .checkpoint import load_model, save_model
    from .cli import UsageError
    from .evaluation.search import with_sigmas

    p = Parser("cmaudio.export", "Re-save a model file (weights, config, recommended sigmas).", EXAMPLES)
    p.add_argument("model", help="source .safetensors model file")
    p.add_argument("out", help="destination .safetensors file")
    p.add_argument("--dtype", default="float16", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--sigmas", action="append", default=[], metavar="K=a,b,...",
                   help="recommended sigmas for K steps, e.g. 2=80,2.0 (repeatable; replaces the file's list)")
    a = p.parse_args(argv)
    mf = load_model(a.model)
    config = mf.config
    for item in a.sigmas:
        key, _, values = item.partition("=")
        try:
            config = with_sigmas(config, {key.strip(): [float(v) for v in values.split(",")]})
        except ValueError as exc:
            raise UsageError(f"--sigmas {item}: {exc}") from None
    keep = {k: v for k, v in mf.metadata.items() if k in ("name", "objective", "sigma_search")}
    if a.sigmas:
        keep["sigmas_set_by_hand"] = json.dumps(a.sigmas)
    path = save_model(a.out, mf.model, config, mf.step, extra=keep, dtype=getattr(torch, a.dtype))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {a.dtype}, step {mf.step})", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return main_wrapper("cmaudio.export", _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
