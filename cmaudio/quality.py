"""Quality flags: what a listener would reject in a generated or edited clip, named per clip.

    silent   no audible signal: the peak is below SILENT_PEAK, or the loudest 50 ms is below
             SILENT_DB dBFS
    clipped  a flattened waveform: at least CLIP_SHARE of the samples sit in runs of 3 or more
             at the clip's own peak magnitude (hard clipping survives later scaling to 0.99;
             real held-out clips measured at most 0.0002, clipped drum hits from 0.0003)
    noise    noise where the label is not noise-like: the median spectral flatness of the
             frames that carry sound is above NOISE_FLATNESS (white noise measures 0.55; real
             held-out speech, music and drums, hi-hats and cymbals included, at most 0.44:
             benchmarks/quality_flags.py)
    pitch    for models whose labels are pitches: the median YIN pitch of the sounding frames is
             more than 50 cents from the label's

Scaling a clip down to the peak ceiling is not a flag: it is reported as ``gain_db``.
``flags(wavs, sample_rate, pitch_hz=None)`` returns a list of names per clip, empty when fine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["CLIP_SHARE", "NOISE_FLATNESS", "SILENT_DB", "SILENT_PEAK", "flags", "spectral_flatness"]

SILENT_PEAK = 1e-3
SILENT_DB = -55.0
CLIP_SHARE = 0.00025
NOISE_FLATNESS = 0.5
PITCH_CENTS = 50.0
FLOOR_DB = 80.0  # seam_flux: dynamic range measured below the clip's loudest


def loudest_rms_db(wav: torch.Tensor, sample_rate: int, window_s: float = 0.05) -> torch.Tensor:
    """dBFS of the loudest ``window_s`` stretch of each clip [B, T] -> [B]."""
    n = max(1, int(window_s * sample_rate))
    power = torch.nn.functional.avg_pool1d(wav[:, None].double() ** 2, n, stride=max(1, n // 2), ceil_mode=True)
    return 10 * torch.log10(power.amax(dim=(1, 2)).clamp_min(1e-20))


def clipped_share(wav: torch.Tensor, tol: float = 1e-4) -> torch.Tensor:
    """Share of samples in runs of >= 3 consecutive samples at the clip's peak magnitude: [B]."""
    peak = wav.abs().amax(-1, keepdim=True)
    at = (wav.abs() >= peak - tol * peak.clamp_min(1e-6)) & (peak > 0)
    run = at[:, 2:] & at[:, 1:-1] & at[:, :-2]  # the middle sample of three at the peak
    return run.double().sum(-1) / max(1, wav.shape[-1])


def spectral_flatness(wav: torch.Tensor, n_fft: int = 1024, hop: int = 256) -> torch.Tensor:
    """Median over sounding frames (within 30 dB of the loudest) of the geometric over the
    arithmetic mean of the power spectrum: [B]; 1 for flat white noise, near 0 for a tone."""
    window = torch.hann_window(n_fft, device=wav.device)
    spec = torch.stft(wav.float(), n_fft, hop, window=window, return_complex=True).abs().double() ** 2 + 1e-12
    flat = torch.exp(spec.log().mean(1)) / spec.mean(1)  # [B, frames]
    energy = spec.sum(1)
    loud = energy >= energy.amax(-1, keepdim=True) * 1e-3
    out = []
    for f, keep in zip(flat, loud):
        out.append(f[keep].median() if keep.any() else f.new_tensor(0.0))
    return torch.stack(out)


def pitch_off(wav: torch.Tensor, sample_rate: int, targets_hz: Sequence[float | None]) -> list[bool]:
    """Whether each clip's median YIN pitch (librosa.yin over a fifth either side of the target,
    frames within 30 dB of the loudest) is more than PITCH_CENTS from its target (None: not
    checked). YIN, not pYIN: a few milliseconds a clip where pYIN takes a second or more."""
    import librosa
    import numpy as np

    out = []
    for w, target in zip(wav, targets_hz):
        if target is None:
            out.append(False)
            continue
        x = w.numpy().astype(np.float32)
        fmin, fmax = max(40.0, target / 1.5), min(sample_rate / 2 - 1, target * 1.5)
        f0 = librosa.yin(x, fmin=fmin, fmax=fmax, sr=sample_rate, frame_length=2048, hop_length=256, center=True)
        rms = librosa.feature.rms(y=x, frame_length=2048, hop_length=256, center=True)[0]
        loud = rms >= rms.max() * 10 ** (-30 / 20) if rms.max() > 0 else np.zeros_like(rms, bool)
        if not loud.any():
            out.append(True)
            continue
        out.append(abs(1200 * math.log2(float(np.median(f0[loud])) / target)) > PITCH_CENTS)
    return out


def flags(wav: torch.Tensor, sample_rate: int, pitch_hz: Sequence[float | None] | None = None) -> list[list[str]]:
    """The flags of each clip [B, T] (module docstring); ``pitch_hz``: the target pitch of each
    clip, for pitched models."""
    wav = wav.detach().float().cpu()
    if wav.dim() == 1:
        wav = wav[None]
    silent = (wav.abs().amax(-1) < SILENT_PEAK) | (loudest_rms_db(wav, sample_rate) < SILENT_DB)
    clipped = clipped_share(wav) >= CLIP_SHARE
    noisy = spectral_flatness(wav) > NOISE_FLATNESS
    off = pitch_off(wav, sample_rate, pitch_hz) if pitch_hz is not None else [False] * len(wav)
    out = []
    for i in range(len(wav)):
        names = []
        if silent[i]:
            names.append("silent")
        else:
            if clipped[i]:
                names.append("clipped")
            if noisy[i]:
                names.append("noise")
            if off[i]:
                names.append("pitch")
        out.append(names)
    return out


def frame_measures(x: torch.Tensor, n_fft: int = 512, hop: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(flux [frames - 1] between neighbouring frames, energy [frames] in dB) of a waveform [T]:
    Hann STFT without centring, log magnitudes and energies floored FLOOR_DB below the loudest."""
    spec = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), center=False, return_complex=True).abs()
    floor = float(spec.max()) * 10 ** (-FLOOR_DB / 20) + 1e-12
    logmag = torch.log(spec.clamp_min(floor))  # [bins, frames]
    flux = (logmag[:, 1:] - logmag[:, :-1]).abs().mean(0)  # pair i: frames i and i + 1
    power = spec.pow(2).sum(0)
    energy = 10 * torch.log10(power.clamp_min(float(power.max()) * 10 ** (-FLOOR_DB / 10) + 1e-24))
    return flux, energy


def seam_flux(
    wav: torch.Tensor, seams: Sequence[int], wrap: bool = False, n_fft: int = 512, hop: int = 256
) -> list[dict[str, float]]:
    """How audible the joins of a clip [T] are. Spectral flux: the mean absolute difference of
    the log magnitudes (Hann, ``n_fft``, ``hop``) of neighbouring frames. For each seam (a sample
    index; with ``wrap`` the clip is played in a loop and index T is the wrap point) returns
    {"flux": the mean flux of the frame pairs that straddle it, "p95": the 95th percentile of the
    flux between frames away from every seam, "energy_db": the seam frames' energy over the
    clip's median frame energy, in dB}. Magnitudes and energies are floored FLOOR_DB below the
    clip's loudest (as librosa's top_db): differences between two kinds of near-silence 100 dB
    down are not seams, and a digital zero would otherwise count as an infinite step."""
    x = wav.detach().float().cpu().reshape(-1)
    T = x.numel()
    if wrap:
        x = torch.cat([x, x[:n_fft]])
    flux, energy = frame_measures(x, n_fft, hop)
    starts = torch.arange(len(energy)) * hop

    def straddles(p: int) -> torch.Tensor:  # frames that hold samples on both sides of p
        return (starts < p) & (starts + n_fft > p)

    near = torch.zeros(len(flux), dtype=torch.bool)
    pairs = []
    for p in seams:
        f = straddles(p)
        pair = f[:-1] | f[1:]
        pairs.append(pair)
        near |= pair
    inside = (~near) & (starts[1:] + n_fft <= T)
    p95 = float(flux[inside].quantile(0.95)) if inside.any() else float("nan")
    median = float(energy[starts + n_fft <= T].median())
    out = []
    for p, pair in zip(seams, pairs):
        f = straddles(p)
        out.append({"flux": float(flux[pair].mean()), "p95": p95, "energy_db": float(energy[f].mean()) - median})
    return out
