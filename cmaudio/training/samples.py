"""Periodic samples of an acoustic run: a few clips per class from the EMA model, as wav files
and a spectrogram png in RUN/samples (Griffin-Lim: no vocoder file is needed during training)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..audio import denormalise, save_audio
from ..config import ModelConfig
from ..precond import Denoiser
from ..sampling import SAMPLERS
from ..schedules import karras_sigmas

__all__ = ["default_sigmas", "write_samples"]


def default_sigmas(sigma_max: float) -> dict[str, list[float]]:
    """Starting intermediate sigmas per step count before a search tunes them (image CMs landed
    near 0.8 for two steps; evaluate --search-sigmas replaces these)."""
    return {"1": [sigma_max], "2": [sigma_max, 0.8], "4": [sigma_max, 2.0, 0.8, 0.3]}


@torch.no_grad()
def write_samples(ema: Denoiser, mcfg: ModelConfig, out: Path, step: int, steps: int, device) -> None:
    """A few clips per class (first factor) from the EMA model, as wav and a spectrogram png."""
    from ..vocoder import load_vocoder

    n = min(len(mcfg.classes[0]), 8) if mcfg.classes else 4
    # A private generator: sampling must not advance the training RNG (exact resume).
    gen = torch.Generator().manual_seed(step)
    z = torch.randn(n, mcfg.mel.n_mels, mcfg.frames, generator=gen).to(device)
    renoise = torch.randn(max(steps - 1, 1), *z.shape, generator=gen).to(device)
    cond = None
    if mcfg.classes:
        cond = ema.null_cond(n, device)
        cond[:, 0] = torch.arange(n, device=device)
    p = mcfg.precond
    if p.kind == "edm":
        sig = karras_sigmas(18, p.sigma_min, p.sigma_max).tolist()
    else:
        sig = mcfg.sigmas.get(str(steps)) or default_sigmas(p.sigma_max).get(str(steps), [p.sigma_max])
    mel = SAMPLERS[p.kind](ema, torch.cat([z[None], renoise]), sig, cond, sigma_min=p.sigma_min)
    logmel = denormalise(mel.float().cpu(), mcfg.stats)
    wav = load_vocoder("griffinlim", mcfg.mel)(logmel)
    names = [mcfg.classes[0][i] if mcfg.classes else str(i) for i in range(n)]
    for name, w in zip(names, wav):
        save_audio(out / f"step{step:07d}_{name}.wav", w * 0.9 / w.abs().max().clamp_min(1e-4), mcfg.mel.sample_rate)
    try:
        from ..plots import spectrogram_grid

        spectrogram_grid(logmel, names, out / f"step{step:07d}.png", mcfg.mel)
    except ImportError:
        pass  # matplotlib is an optional extra; the wavs are written regardless
