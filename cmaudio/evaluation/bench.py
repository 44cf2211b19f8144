"""Generation throughput, side by side in one process (python -m cmaudio.bench).

For each batch size: end to end (network + vocoder) as "cm-1", "cm-2", "cm-4" (consistency
sampler) and "heun-18" (EDM Heun, 18 steps = 35 calls, on the same network); the network alone
as the same names with "-net"; each vocoder alone as "vocoder-<name>". Each entry is a warm-up
run then the median of repeated runs (CUDA timings synchronise). Results are x-real-time (seconds
of audio per second of wall time) and ratios against heun-18 measured in the same process.

Sampling goes through Pipeline's public batch API (condition, noise, sample_mels, autocast,
vocode, generate); Heun runs on the pipeline's network with cmaudio.sampling.sample_heun.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from ..audio import denormalise
from ..errors import EvaluationError
from ..pipeline import Pipeline
from ..sampling import sample_heun
from ..schedules import karras_sigmas
from ..vocoder import load_vocoder

__all__ = ["CM_STEPS", "HEUN_STEPS", "bench_model", "benchmark", "format_table", "time_call"]

CM_STEPS = (1, 2, 4)
HEUN_STEPS = 18  # 18 levels = 35 network calls
HEUN_CALLS = 2 * HEUN_STEPS - 1


def time_call(fn: Callable[[], object], device: torch.device, repeats: int, min_seconds: float) -> float:
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


@dataclass
class Bench:
    """One benchmark run: how to time entries, and the result of each entry timed so far."""

    pipe: Pipeline
    repeats: int = 5
    min_seconds: float = 1.0
    progress: bool = True
    results: list[dict] = field(default_factory=list)

    def measure(
        self,
        name: str,
        calls: int,
        vocoder: str | None,
        batch: int,
        fn: Callable[[], object],
        repeats: int | None = None,
    ) -> None:
        """Time ``fn`` (one batch of ``batch`` clips) and record it as entry ``name``."""
        seconds = time_call(fn, self.pipe.device, repeats or self.repeats, self.min_seconds)
        clip_seconds = self.pipe.clip_seconds
        self.results.append(
            {
                "name": name,
                "calls": calls,
                "vocoder": vocoder,
                "batch_size": batch,
                "x_realtime": batch * clip_seconds / seconds,
                "seconds_per_clip": seconds / batch,
            }
        )
        if self.progress:
            print(f"  {name:<22} batch {batch:<4} {batch * clip_seconds / seconds:9.1f}x real time", file=sys.stderr)

    def network(self, batch: int, labels: list, heun: Callable[[], torch.Tensor]) -> torch.Tensor | None:
        """The "-net" entries; returns the 2-step mels (the vocoders' input), None for a teacher."""
        pipe, frames = self.pipe, self.pipe.config.frames
        cond = pipe.condition(labels)
        seeds = list(range(batch))
        mels = None
        if pipe.is_consistency:
            for k in CM_STEPS:
                sig = pipe.sigmas_for(k)
                self.measure(f"cm-{k}-net", k, None, batch, lambda sig=sig: pipe.sample_mels(seeds, cond, sig, frames))
                if k == 2:
                    mels = pipe.sample_mels(seeds, cond, sig, frames)
        self.measure(f"heun-{HEUN_STEPS}-net", HEUN_CALLS, None, batch, heun, max(1, self.repeats // 2))
        return mels

    def vocoders(self, batch: int, names: Sequence[str], mels: torch.Tensor | None) -> None:
        """One "vocoder-<name>" entry per vocoder, on the 2-step mels (or the mean log-mel)."""
        pipe, mcfg = self.pipe, self.pipe.config
        for name in names:
            voc = pipe.vocoder if name == pipe.vocoder.name else load_vocoder(name, mcfg.mel, pipe.device)
            logmel = mcfg.stats.mean + torch.zeros(batch, mcfg.mel.n_mels, mcfg.frames, device=pipe.device)
            if mels is not None:
                logmel = denormalise(mels, mcfg.stats).to(pipe.device)

            def vocode(voc=voc, logmel=logmel):
                with torch.inference_mode():
                    return voc(logmel)

            self.measure(f"vocoder-{name}", 0, name, batch, vocode)

    def end_to_end(self, batch: int, labels: list, heun: Callable[[], torch.Tensor]) -> None:
        """The entries from noise to waveform, the vocoder included."""
        pipe = self.pipe
        if pipe.is_consistency:
            for k in CM_STEPS:
                self.measure(
                    f"cm-{k}",
                    k,
                    pipe.vocoder.name,
                    batch,
                    lambda k=k: pipe.generate(labels=labels, steps=k, seed=0, batch_size=batch),
                )
        self.measure(
            f"heun-{HEUN_STEPS}",
            HEUN_CALLS,
            pipe.vocoder.name,
            batch,
            lambda: pipe.vocode(heun()),
            max(1, self.repeats // 2),
        )

    def batch(self, batch: int, vocoders: Sequence[str]) -> None:
        """Every entry at one batch size, in the order of the report."""
        pipe = self.pipe
        p = pipe.config.precond
        heun_sigmas = karras_sigmas(HEUN_STEPS, p.sigma_min, p.sigma_max).tolist()
        labels = [pipe.labels[i % len(pipe.labels)] if pipe.labels else None for i in range(batch)]
        cond = pipe.condition(labels)
        z = pipe.noise(list(range(batch)), 1, pipe.config.frames)[0]

        def heun() -> torch.Tensor:
            with torch.inference_mode(), pipe.autocast():
                return sample_heun(pipe.model, z, heun_sigmas, cond)

        mels = self.network(batch, labels, heun)
        self.vocoders(batch, vocoders, mels)
        self.end_to_end(batch, labels, heun)

    def ratio(self, a: str, b: str, batch: int) -> float | None:
        """x-real-time of entry ``a`` over entry ``b`` at ``batch``; None when either is missing."""
        ra = next((r for r in self.results if r["name"] == a and r["batch_size"] == batch), None)
        rb = next((r for r in self.results if r["name"] == b and r["batch_size"] == batch), None)
        return ra["x_realtime"] / rb["x_realtime"] if ra and rb else None

    def ratios(self, batch_sizes: Sequence[int], voc_names: Sequence[str]) -> dict[str, float]:
        """Each CM entry against heun-18 (end to end and network alone), and the pipeline's
        vocoder against Griffin-Lim, per batch size."""
        heun = f"heun-{HEUN_STEPS}"
        out = {}
        for batch in batch_sizes:
            for k in CM_STEPS:
                for suffix in ("", "-net"):
                    r = self.ratio(f"cm-{k}{suffix}", f"{heun}{suffix}", batch)
                    if r is not None:
                        out[f"cm-{k}{suffix} / {heun}{suffix} @ batch {batch}"] = r
            if len(voc_names) > 1:
                r = self.ratio(f"vocoder-{voc_names[0]}", "vocoder-griffinlim", batch)
                if r is not None and voc_names[0] != "griffinlim":
                    out[f"vocoder-{voc_names[0]} / vocoder-griffinlim @ batch {batch}"] = r
        return out


def benchmark(
    pipe: Pipeline,
    batch_sizes: Sequence[int] = (16,),
    repeats: int = 5,
    min_seconds: float = 1.0,
    vocoders: Sequence[str] = ("griffinlim",),
    progress: bool = True,
) -> dict:
    """Run every entry for every batch size; returns the JSON-able report (see module doc)."""
    run = Bench(pipe, repeats, min_seconds, progress)
    voc_names = list(dict.fromkeys([pipe.vocoder.name, *vocoders]))
    for batch in batch_sizes:
        run.batch(batch, voc_names)
    device = pipe.device
    return {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "model": pipe.name,
        "clip_seconds": pipe.clip_seconds,
        "results": run.results,
        "ratios": run.ratios(batch_sizes, voc_names),
    }


def bench_model(
    model: str,
    batch_sizes: Sequence[int] = (16,),
    repeats: int = 5,
    device: str = "auto",
    vocoder: str | None = None,
    backends: Sequence[str] = ("eager",),
    progress: bool = True,
) -> dict:
    """Load ``model`` (bundled name or file) with ``vocoder`` on ``device`` once per backend
    (cmaudio.backends: eager, compiled, onnx) and ``benchmark`` each, side by side in this one
    process. Every row carries its ``backend``; ``first_clip_seconds`` per backend is the time
    from loading to the first generated clip (export or compilation included); ``ratios`` gain
    each backend's cm-2 end-to-end speed over eager's. A model that cannot be loaded as asked is a
    CheckpointError, VocoderError or EvaluationError (a bad device, backend or vocoder name)."""
    report: dict = {}
    first: dict[str, float] = {}
    for backend in backends:
        t0 = time.perf_counter()
        try:
            pipe = Pipeline.from_pretrained(model, device=device, vocoder=vocoder, backend=backend)
        except ValueError as exc:
            if type(exc) is ValueError:  # Pipeline's argument errors are plain ValueErrors
                raise EvaluationError(str(exc)) from None
            raise
        pipe.generate(n=1, steps=2, seed=0)
        first[backend] = time.perf_counter() - t0
        if progress:
            print(
                f"benchmarking {pipe.name} on {pipe.device}, backend {backend} "
                f"(first clip after {first[backend]:.1f} s) ...",
                file=sys.stderr,
            )
        part = benchmark(pipe, batch_sizes, repeats=repeats, progress=progress)
        for r in part["results"]:
            r["backend"] = backend
        if not report:
            report = part
        else:
            report["results"] += part["results"]
            report["ratios"].update({f"{k} ({backend})": v for k, v in part["ratios"].items()})
    report["first_clip_seconds"] = first
    report["backends"] = list(backends)
    report["ratios"].update(backend_ratios(report["results"], batch_sizes, backends))
    return report


def backend_ratios(results: list[dict], batch_sizes: Sequence[int], backends: Sequence[str]) -> dict[str, float]:
    """cm-2 end to end of each backend over eager's, per batch size (same run)."""
    out = {}
    speed = {(r["backend"], r["batch_size"]): r["x_realtime"] for r in results if r["name"] == "cm-2"}
    for b in batch_sizes:
        for backend in backends:
            if backend != "eager" and (backend, b) in speed and ("eager", b) in speed:
                out[f"cm-2 {backend} / eager, batch {b}"] = speed[backend, b] / speed["eager", b]
    return out


def format_table(report: dict) -> str:
    """The report as a fixed-width table, then the ratios."""
    lines = [
        f"device {report['device']}, {report['threads']} threads, model {report['model']}, "
        f"clip {report['clip_seconds']:.2f} s",
        "",
        f"{'name':<24}{'backend':>9}{'calls':>6}{'batch':>7}{'x real time':>14}{'ms / clip':>12}",
    ]
    for r in report["results"]:
        lines.append(
            f"{r['name']:<24}{r.get('backend', 'eager'):>9}{r['calls']:>6}{r['batch_size']:>7}"
            f"{r['x_realtime']:>14.1f}{1000 * r['seconds_per_clip']:>12.2f}"
        )
    if report["ratios"]:
        lines.append("")
        lines += [f"{k}: {v:.1f}x" for k, v in report["ratios"].items()]
    return "\n".join(lines)
