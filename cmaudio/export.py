"""python -m cmaudio.export MODEL OUT [--dtype float16]: re-save a model file, e.g. in half
precision for bundling (cmaudio/assets holds files of at most 10 MB)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .cli import Parser, main_wrapper

EXAMPLES = """examples:
  python -m cmaudio.export runs/digits-student/model.safetensors cmaudio/assets/digits.safetensors --dtype float16
"""


def _body(argv: Sequence[str] | None) -> int:
    import torch

    from .checkpoint import load_model, save_model

    p = Parser("cmaudio.export", "Re-save a model file (weights, config, recommended sigmas).", EXAMPLES)
    p.add_argument("model", help="source .safetensors model file")
    p.add_argument("out", help="destination .safetensors file")
    p.add_argument("--dtype", default="float16", choices=["float32", "float16", "bfloat16"])
    a = p.parse_args(argv)
    mf = load_model(a.model)
    keep = {k: v for k, v in mf.metadata.items() if k in ("name", "objective")}
    path = save_model(a.out, mf.model, mf.config, mf.step, extra=keep, dtype=getattr(torch, a.dtype))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {a.dtype}, step {mf.step})", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return main_wrapper("cmaudio.export", _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
