"""python -m cmaudio.bench: generation throughput, side by side in one process.

The command line of cmaudio.evaluation.bench (what is measured is described there): for each
batch size, "cm-1", "cm-2", "cm-4" and "heun-18" end to end and with "-net" the network alone,
and each vocoder alone as "vocoder-<name>"; x-real-time and ratios against heun-18.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .cli import Parser, UsageError, main_wrapper
from .errors import EvaluationError

__all__ = ["main"]

EXAMPLES = """examples:
  python -m cmaudio.bench                                   # the bundled default model on CPU
  python -m cmaudio.bench --model runs/tones-student/model.safetensors --batch-size 1,16 --json bench.json
  python -m cmaudio.bench --device cuda --compile
  python -m cmaudio.bench --backend eager,onnx --batch-size 1,16     # onnxruntime against eager torch
"""


def _body(argv: Sequence[str] | None) -> int:
    p = Parser("cmaudio.bench", "Generation throughput of consistency sampling vs Heun, and of each vocoder.", EXAMPLES)
    p.add_argument("--model", default=None, help="bundled name or .safetensors path (default: the bundled default)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch-size", default="16", help="comma-separated batch sizes, e.g. 1,16,64")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per entry (median reported)")
    p.add_argument("--vocoder", default=None, help="vocoder for the end-to-end entries (default: best match)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--backend",
        default="eager",
        help="comma list of eager, compiled, onnx: benchmarked side by side (default: eager)",
    )
    p.add_argument("--compile", action="store_true", help="alias of --backend eager,compiled")
    p.add_argument("--json", default=None, help="also write the report as JSON here")
    a = p.parse_args(argv)
    try:
        sizes = [int(x) for x in a.batch_size.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--batch-size: expected integers separated by commas, got {a.batch_size!r}") from None
    if not sizes or min(sizes) < 1:
        raise UsageError("--batch-size: need at least one size >= 1")
    if a.repeats < 1:
        raise UsageError("--repeats must be >= 1")
    if a.threads is not None:
        if a.threads < 1:
            raise UsageError("--threads must be >= 1")
        import torch

        torch.set_num_threads(a.threads)
    backends = [b.strip() for b in a.backend.split(",") if b.strip()]
    if a.compile and "compiled" not in backends:
        backends.append("compiled")
    from .backends import BACKENDS

    unknown = [b for b in backends if b not in BACKENDS]
    if not backends or unknown:
        raise UsageError(f"--backend: one or more of {', '.join(BACKENDS)}, got {a.backend!r}")
    from .evaluation.bench import bench_model, format_table
    from .pipeline import DEFAULT_MODEL

    t0 = time.perf_counter()
    try:
        report = bench_model(
            a.model or DEFAULT_MODEL, sizes, repeats=a.repeats, device=a.device, vocoder=a.vocoder, backends=backends
        )
    except EvaluationError as exc:
        raise UsageError(str(exc)) from None
    print(format_table(report))
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"bench: {len(report['results'])} entries in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return main_wrapper("cmaudio.bench", _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
