"""One script for a GPU machine: CUDA/bf16 correctness against the CPU, then the benchmark on GPU.

    python benchmarks/gpu_check.py [--model digits] [--out docs/gpu_check.json]

1. Correctness: the same seeds through the bundled model on CPU (fp32) and on CUDA (bf16
   autocast, as Pipeline runs there): the mels must agree to bf16 precision (relative error of the
   batch below --tolerance) and the waveforms must be finite; the network alone in fp32 on CUDA
   must match the CPU to 1e-4.
2. Speed: python -m cmaudio.bench on CUDA at batch sizes 1, 16, 64 and 256, backends eager and
   compiled (cmaudio.backends) side by side in the same process.

Writes one JSON report (and prints a table); copy the numbers into docs/results.md. Exits 0 when
every check passes, 1 when one fails, 2 when no CUDA device is present.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch


def correctness(model: str, n: int, tolerance: float) -> dict:
    from cmaudio.pipeline import Pipeline

    cpu = Pipeline.from_pretrained(model, device="cpu")
    gpu = Pipeline.from_pretrained(model, device="cuda")
    labels = [cpu.labels[i % len(cpu.labels)] for i in range(n)] if cpu.labels else None
    ref = cpu.generate(labels=labels, n=n, steps=2, seed=0)
    out = gpu.generate(labels=labels, n=n, steps=2, seed=0)
    rel = float((out.mels - ref.mels).norm() / ref.mels.norm())
    # The network alone in fp32 on both devices: the only differences are kernel rounding.
    x = torch.randn(n, cpu.config.mel.n_mels, cpu.config.frames, generator=torch.Generator().manual_seed(1))
    sigma = torch.full((n,), 2.0)
    cond = cpu.condition(labels) if labels else None
    # TF32 off for this comparison: cuDNN convolutions use TF32 by default on Ampere and later
    # (10-bit mantissa, ~1e-3 error), which is not what "fp32 on both devices" means.
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.inference_mode():
            a = cpu.model(x, sigma, cond)
            b = gpu.model(x.cuda(), sigma.cuda(), cond.cuda() if cond is not None else None).cpu()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    fp32_err = float((a - b).abs().max())
    return {
        "clips": n,
        "bf16_mel_relative_error": rel,
        "fp32_net_max_abs_error": fp32_err,
        "waveforms_finite": bool(torch.isfinite(out.waveforms).all()),
        "passed": rel < tolerance and fp32_err < 1e-4 and bool(torch.isfinite(out.waveforms).all()),
    }


def speed(model: str, sizes: list[int], backends: list[str]) -> dict:
    """python -m cmaudio.bench's report on CUDA: every backend side by side in this one process."""
    from cmaudio.evaluation.bench import bench_model

    t0 = time.perf_counter()
    rep = bench_model(model, sizes, repeats=10, device="cuda", backends=backends, progress=False)
    rep["seconds"] = time.perf_counter() - t0
    return rep


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="digits")
    p.add_argument("--n", type=int, default=32, help="clips for the correctness check")
    p.add_argument("--tolerance", type=float, default=0.05, help="bf16 relative mel error allowed")
    p.add_argument("--batch-size", default="1,16,64,256")
    p.add_argument("--backend", default="eager,compiled", help="cmaudio.backends names, side by side")
    p.add_argument("--out", default="docs/gpu_check.json")
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; run this on a GPU machine", file=sys.stderr)
        return 2
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "model": a.model}
    report["correctness"] = correctness(a.model, a.n, a.tolerance)
    print(json.dumps(report["correctness"], indent=2))
    report["speed"] = speed(a.model, [int(x) for x in a.batch_size.split(",")], a.backend.split(","))
    from cmaudio.evaluation.bench import format_table

    print(format_table(report["speed"]))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\ngpu_check: {'passed' if report['correctness']['passed'] else 'FAILED'}; report {a.out}", file=sys.stderr)
    return 0 if report["correctness"]["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
