"""Objective measures of generated audio, shared by tests, evaluate and the recipes.

Pitch: ``dominant_frequency`` (FFT peak, for pure or harmonic tones whose fundamental is the
strongest partial) and ``cents`` (signed distance between two frequencies).
"""

from __future__ import annotations

import torch

__all__ = ["dominant_frequency", "cents", "silence_rate", "clipping_rate"]


def dominant_frequency(wav: torch.Tensor, sample_rate: int, fmin: float = 30.0) -> torch.Tensor:
    """Frequency (Hz) of the largest FFT bin above ``fmin`` of each clip: wav [B, T] -> [B].
    A Hann window and parabolic interpolation of the peak give sub-bin accuracy."""
    wav = wav.reshape(-1, wav.shape[-1]).float()
    T = wav.shape[-1]
    spec = torch.fft.rfft(wav * torch.hann_window(T, periodic=False), n=4 * T).abs()
    freqs = torch.fft.rfftfreq(4 * T, 1 / sample_rate)
    spec[:, freqs < fmin] = 0
    k = spec.argmax(-1).clamp(1, spec.shape[-1] - 2)
    a, b, c = (spec.gather(1, (k + d)[:, None])[:, 0].clamp_min(1e-12).log() for d in (-1, 0, 1))
    offset = 0.5 * (a - c) / (a - 2 * b + c).where((a - 2 * b + c).abs() > 1e-12, torch.ones_like(a))
    return (k + offset.clamp(-0.5, 0.5)) * (sample_rate / (4 * T))


def cents(f: torch.Tensor | float, ref: torch.Tensor | float) -> torch.Tensor:
    """1200 log2(f / ref): 100 cents is a semitone."""
    f, ref = torch.as_tensor(f, dtype=torch.float64), torch.as_tensor(ref, dtype=torch.float64)
    return 1200 * torch.log2(f.clamp_min(1e-9) / ref)


def silence_rate(wav: torch.Tensor, threshold: float = 1e-3) -> float:
    """Fraction of clips [B, T] whose peak is below ``threshold``."""
    return float((wav.abs().amax(-1) < threshold).float().mean())


def clipping_rate(wav: torch.Tensor, threshold: float = 0.999) -> float:
    """Fraction of clips [B, T] with any sample at or beyond ``threshold`` in magnitude."""
    return float((wav.abs().amax(-1) >= threshold).float().mean())


def pitch_hits(
    wav: torch.Tensor, sample_rate: int, target_hz: torch.Tensor, tolerance_cents: float = 100.0
) -> torch.Tensor:
    """Whether each clip's dominant frequency is within ``tolerance_cents`` of its target: [B] bool."""
    return cents(dominant_frequency(wav, sample_rate), target_hz).abs() < tolerance_cents
