"""python -m cmaudio.bench: generation throughput, side by side in one process.

For each batch size: end to end (network + vocoder) as "cm-1", "cm-2", "cm-4" (consistency
sampler) and "heun-18" (EDM Heun, 18 steps = 35 calls, on the same network); the network alone
as the same names with "-net"; each vocoder alone as "vocoder-<name>". Each entry is a warm-up
run then the median of repeated runs (CUDA timings synchronise). Results are x-real-time (seconds
of audio per second of wall time) and ratios against heun-18 measured in the same process.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from .cli import Parser, UsageError, main_wrapper

__all__ = ["benchmark", "main"]

EXAMPLES = """examples:
  python -m cmaudio.bench                                   # the bundled default model on CPU
  python -m cmaudio.bench --model runs/tones-student/model.safetensors --batch-size 1,16 --json bench.json
  python -m cmaudio.bench --device cuda --compile
"""


def _time(fn: Callable[[], object], device: torch.device, repeats: int, min_seconds: float) -> float:
    """Median wall seconds of ``fn`` after one warm-up call; at least ``repeats`` runs and at
    least ``min_seconds`` in all, so fast entries are not dominated by timer noise."""

    def once() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    once()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - start < min_seconds and len(times) < 100):
        times.append(once())
    return statistics.median(times)


def benchmark(pipe, batch_sizes: Sequence[int] = (16,), repeats: int = 5, min_seconds: float = 1.0,
              vocoders: Sequence[str] = ("griffinlim",), progress: bool = True) -> dict:
    """Run every entry for every batch size; returns the JSON-able report (see module doc)."""
    from .sampling import sample_heun
    from .schedules import karras_sigmas
    from .vocoder import load_vocoder

    device = pipe.device
    mcfg = pipe.config
    clip_seconds = pipe.clip_seconds
    p = mcfg.precond
    heun_sigmas = karras_sigmas(18, p.sigma_min, p.sigma_max).tolist()
    voc_names = list(dict.fromkeys([pipe.vocoder.name, *vocoders]))
    results = []

    def add(name, calls, vocoder, batch, seconds):
        results.append({
            "name": name, "calls": calls, "vocoder": vocoder, "batch_size": batch,
            "x_realtime": batch * clip_seconds / seconds, "seconds_per_clip": seconds / batch,
        })
        if progress:
            print(f"  {name:<22} batch {batch:<4} {batch * clip_seconds / seconds:9.1f}x real time", file=sys.stderr)

    def one_batch(batch: int) -> None:
        labels = [pipe.labels[i % len(pipe.labels)] if pipe.labels else None for i in range(batch)]
        cond = pipe.condition(labels)
        seeds = list(range(batch))
        z = pipe.noise(seeds, 1, mcfg.frames)[0]
        mels = {}
        if pipe.is_consistency:
            for k in (1, 2, 4):
                sig = pipe.sigmas_for(k)
                sec = _time(lambda sig=sig: pipe.sample_mels(seeds, cond, sig, mcfg.frames), device, repeats, min_seconds)
                add(f"cm-{k}-net", k, None, batch, sec)
                mels[k] = pipe.sample_mels(seeds, cond, sig, mcfg.frames)

        def heun():
            with torch.inference_mode(), pipe.autocast():
                return sample_heun(pipe.model, z, heun_sigmas, cond)

        add("heun-18-net", 35, None, batch, _time(heun, device, max(1, repeats // 2), min_seconds))
        for name in voc_names:
            voc = pipe.vocoder if name == pipe.vocoder.name else load_vocoder(name, mcfg.mel, device)
            logmel = pipe.config.stats.mean + torch.zeros(batch, mcfg.mel.n_mels, mcfg.frames, device=device)
            if mels:
                from .audio import denormalise

                logmel = denormalise(mels[2], mcfg.stats).to(device)

            def vocode(voc=voc, logmel=logmel):
                with torch.inference_mode():
                    return voc(logmel)

            add(f"vocoder-{name}", 0, name, batch, _time(vocode, device, repeats, min_seconds))
        if pipe.is_consistency:
            for k in (1, 2, 4):
                sec = _time(lambda k=k: pipe.generate(labels=labels, steps=k, seed=0, batch_size=batch), device,
                            repeats, min_seconds)
                add(f"cm-{k}", k, pipe.vocoder.name, batch, sec)

        def heun_e2e():
            return pipe.vocode(heun())

        add("heun-18", 35, pipe.vocoder.name, batch, _time(heun_e2e, device, max(1, repeats // 2), min_seconds))

    for batch in batch_sizes:
        one_batch(batch)

    def ratio(a: str, b: str, batch: int) -> float | None:
        ra = next((r for r in results if r["name"] == a and r["batch_size"] == batch), None)
        rb = next((r for r in results if r["name"] == b and r["batch_size"] == batch), None)
        return ra["x_realtime"] / rb["x_realtime"] if ra and rb else None

    ratios = {}
    for batch in batch_sizes:
        for k in (1, 2, 4):
            for suffix in ("", "-net"):
                r = ratio(f"cm-{k}{suffix}", f"heun-18{suffix}", batch)
                if r is not None:
                    ratios[f"cm-{k}{suffix} / heun-18{suffix} @ batch {batch}"] = r
        if len(voc_names) > 1:
            r = ratio(f"vocoder-{voc_names[0]}", "vocoder-griffinlim", batch)
            if r is not None and voc_names[0] != "griffinlim":
                ratios[f"vocoder-{voc_names[0]} / vocoder-griffinlim @ batch {batch}"] = r
    return {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "model": pipe.name,
        "clip_seconds": clip_seconds,
        "results": results,
        "ratios": ratios,
    }


def format_table(report: dict) -> str:
    lines = [f"device {report['device']}, {report['threads']} threads, model {report['model']}, "
             f"clip {report['clip_seconds']:.2f} s", "",
             f"{'name':<24}{'calls':>6}{'batch':>7}{'x real time':>14}{'ms / clip':>12}"]
    for r in report["results"]:
        lines.append(f"{r['name']:<24}{r['calls']:>6}{r['batch_size']:>7}{r['x_realtime']:>14.1f}"
                     f"{1000 * r['seconds_per_clip']:>12.2f}")
    if report["ratios"]:
        lines.append("")
        lines += [f"{k}: {v:.1f}x" for k, v in report["ratios"].items()]
    return "\n".join(lines)


def _body(argv: Sequence[str] | None) -> int:
    p = Parser("cmaudio.bench", "Generation throughput of consistency sampling vs Heun, and of each vocoder.",
               EXAMPLES)
    p.add_argument("--model", default=None, help="bundled name or .safetensors path (default: the bundled default)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch-size", default="16", help="comma-separated batch sizes, e.g. 1,16,64")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per entry (median reported)")
    p.add_argument("--vocoder", default=None, help="vocoder for the end-to-end entries (default: best match)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (GPU)")
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
        torch.set_num_threads(a.threads)
    from .pipeline import DEFAULT_MODEL, Pipeline

    try:
        pipe = Pipeline.from_pretrained(a.model or DEFAULT_MODEL, device=a.device, vocoder=a.vocoder)
    except ValueError as exc:
        if type(exc) is ValueError:
            raise UsageError(str(exc)) from None
        raise
    if a.compile:
        pipe.model = torch.compile(pipe.model)
    print(f"benchmarking {pipe.name} on {pipe.device} ...", file=sys.stderr)
    t0 = time.perf_counter()
    report = benchmark(pipe, sizes, repeats=a.repeats)
    print(format_table(report))
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"bench: {len(report['results'])} entries in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return main_wrapper("cmaudio.bench", _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
