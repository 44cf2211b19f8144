"""Vocoder speed side by side: each vocoder's wall time on one batch of log-mels, as x real time and
as a ratio to Griffin-Lim with 32 iterations, in one process (issue 15's bar: the bundled neural
vocoder at least 5x Griffin-Lim-32 at batch 16).

The vocoders run in alternating rounds (each round times every one of them), so drift in the
machine's speed, which on a shared VM reaches +-10% over minutes, falls on all of them alike;
medians over rounds. ``--passes`` adds variants of the first neural vocoder with that many
mel-consistency passes (``K`` or ``K:UPDATES:MOMENTUM``), rebuilt in memory, no file written.

    python benchmarks/vocoder_speed.py --vocoders vocoder-16k,vocoder-16k-hq --passes 3:1:0.8,4:1:0.99
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cmaudio.audio import mel_spectrogram, num_samples
from cmaudio.errors import CheckpointError, ConfigError
from cmaudio.vocoder import VocoderError, load_vocoder, resolve_vocoder_path
from cmaudio.vocoder.export import refined_vocoder
from cmaudio.vocoder.griffinlim import GriffinLim
from cmaudio.vocoder.neural import NeuralVocoder


def with_passes(name: str, spec: str) -> NeuralVocoder:
    """Neural vocoder ``name`` (bundled name or file) rebuilt with its refinement set from
    "K[:UPDATES[:MOMENTUM]]", in memory, as ``--export`` rebuilds it."""
    k, updates, momentum = [*spec.split(":"), "1", "0"][:3]
    shown = f"{name} ({k} passes x {updates}, momentum {float(momentum):g})"
    try:
        voc, _ = refined_vocoder(
            resolve_vocoder_path(name),
            mel_refine=int(k),
            mel_refine_updates=int(updates),
            mel_refine_momentum=float(momentum),
            name=shown,
        )
    except (CheckpointError, ConfigError, VocoderError, ValueError) as exc:
        raise SystemExit(f"vocoder_speed: --passes {spec} of {name}: {exc}") from None
    return voc.eval()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vocoders", default="vocoder-16k", help="comma-separated bundled names or files")
    p.add_argument("--passes", default="", help="comma-separated K[:UPDATES[:MOMENTUM]] variants of the first")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    names = [v for v in a.vocoders.split(",") if v]
    try:
        vocoders = [load_vocoder(v).eval() for v in names]
    except VocoderError as exc:
        raise SystemExit(f"vocoder_speed: {exc}") from None
    vocoders += [with_passes(names[0], s) for s in a.passes.split(",") if s]
    mel_config = vocoders[0].mel_config
    baseline = GriffinLim(mel_config, n_iter=32)
    baseline.name = "griffinlim-32"
    # Band-limited noise is enough for timing: no vocoder's work depends on what the mel holds.
    gen = torch.Generator().manual_seed(a.seed)
    wav = 0.1 * torch.randn(a.batch_size, round(a.seconds * mel_config.sample_rate), generator=gen)
    mel = mel_spectrogram(wav, mel_config)
    audio_s = a.batch_size * num_samples(mel.shape[-1], mel_config) / mel_config.sample_rate
    runs = [baseline, *vocoders]
    times: dict[str, list[float]] = {v.name: [] for v in runs}
    with torch.no_grad():
        for v in runs:
            v(mel)  # warm-up: first-call allocations
        for _ in range(a.rounds):
            for v in runs:
                start = time.perf_counter()
                v(mel)
                times[v.name].append(time.perf_counter() - start)
    gl = statistics.median(times[baseline.name])
    print(f"| vocoder | ms per batch of {a.batch_size} x {a.seconds:g} s | x real time | x Griffin-Lim-32 |")
    print("|---|---|---|---|")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"| {name} | {m * 1e3:.1f} | {audio_s / m:.1f} | {gl / m:.2f} |")
    print(f"{a.rounds} rounds, medians, {a.threads} torch thread(s), batch {a.batch_size}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
