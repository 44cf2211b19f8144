"""python -m cmaudio.export MODEL OUT [--dtype float16] [--sigmas K=a,b,...]: re-save a model file,
e.g. in half precision for bundling (cmaudio/assets holds files of at most 10 MB), optionally with
recommended sigma lists set by hand (evaluate --search-sigmas finds them automatically).
OUT's suffix chooses the format: .safetensors as above, .onnx for the network as an ONNX graph
(cmaudio.onnx_export), or, for a neural vocoder file, the whole vocoder, mel to waveform
(cmaudio.vocoder.onnx_graph). MODEL is a bundled name or a path."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from .cli import Parser, main_wrapper

EXAMPLES = """examples:
  python -m cmaudio.export runs/digits-student/model.safetensors cmaudio/assets/digits.safetensors --dtype float16
  python -m cmaudio.export model-tuned.safetensors digits.safetensors --sigmas 2=80,2.0 --sigmas 1=80
  python -m cmaudio.export digits digits.onnx          # the network as ONNX (float32, dynamic batch and frames)
  python -m cmaudio.export vocoder-16k vocoder.onnx    # a neural vocoder as ONNX, log-mel -> waveform
"""


def _body(argv: Sequence[str] | None) -> int:
    import json

    import torch

    from .checkpoint import load_model, save_model
    from .cli import UsageError
    from .evaluation.search import with_sigmas

    p = Parser("cmaudio.export", "Re-save a model file (weights, config, recommended sigmas).", EXAMPLES)
    p.add_argument("model", help="bundled model name or source .safetensors model file")
    p.add_argument("out", help="destination: .safetensors (a model file) or .onnx (the network)")
    p.add_argument(
        "--dtype",
        default=None,
        choices=["float32", "float16", "bfloat16"],
        help="weights of a .safetensors output (default: float16)",
    )
    p.add_argument(
        "--sigmas",
        action="append",
        default=[],
        metavar="K=a,b,...",
        help="recommended sigmas for K steps, e.g. 2=80,2.0 (repeatable; replaces the file's list)",
    )
    a = p.parse_args(argv)
    from .pipeline import resolve_model_path

    suffix = Path(a.out).suffix.lower()
    if suffix not in (".safetensors", ".onnx"):
        raise UsageError(f"{a.out}: the output's suffix chooses the format: .safetensors or .onnx")
    if suffix == ".onnx" and (a.sigmas or a.dtype is not None):
        raise UsageError("--dtype and --sigmas apply to .safetensors outputs; ONNX graphs are float32")
    if suffix == ".onnx" and is_vocoder(a.model):
        from .vocoder.onnx_graph import export_vocoder_onnx

        path = export_vocoder_onnx(a.model, a.out)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, ONNX vocoder, float32)", file=sys.stderr)
        return 0
    source = resolve_model_path(a.model)
    if suffix == ".onnx":
        from .onnx_export import export_model_onnx

        path = export_model_onnx(source, a.out)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, ONNX, float32)", file=sys.stderr)
        return 0
    mf = load_model(source)
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
    path = save_model(a.out, mf.model, config, mf.step, extra=keep, dtype=getattr(torch, a.dtype or "float16"))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {a.dtype or 'float16'}, step {mf.step})", file=sys.stderr)
    return 0


def is_vocoder(name_or_path: str) -> bool:
    """Whether a bundled vocoder's name or a vocoder file (by its header) is meant."""
    from .errors import CheckpointError
    from .vocoder import bundled_vocoders
    from .vocoder.fileformat import read_vocoder_header

    if name_or_path in ("griffinlim", *bundled_vocoders()):
        return True
    try:
        read_vocoder_header(name_or_path)
    except CheckpointError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    return main_wrapper("cmaudio.export", _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
