"""Audio I/O and THE mel-spectrogram definition used by every model and vocoder in cmaudio.

Signal path (docs/architecture.md, section 2):
    wav [B, T] float32 in [-1, 1] at 16 kHz
      -> |STFT| (n_fft 1024, hop 256, win 1024, Hann, centred, zero padded)
      -> 80 mel bands, 0-8 kHz, Slaney scale + Slaney norm (as librosa, HiFi-GAN, BigVGAN)
      -> log(clamp(mel, 1e-5))                     "raw log-mel", what vocoders take
      -> (logmel - mean) / std * sigma_data       "normalised mel", what acoustic models see

All audio I/O goes through soundfile (torchaudio's load/save need torchcodec); torchaudio is used
only for transforms.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import AudioError
from .files import default_mode

__all__ = [
    "AudioError",
    "MelConfig",
    "MelStats",
    "load_audio",
    "save_audio",
    "resample",
    "peak_normalise",
    "mel_spectrogram",
    "normalise",
    "denormalise",
    "num_frames",
    "num_samples",
]


@dataclass(frozen=True)
class MelConfig:
    """The mel front end. Models and vocoders record theirs; pairing two that differ is an error."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    log_clamp: float = 1e-5

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ValueError("mel: sample_rate, hop_length and n_mels must be positive")
        if self.win_length > self.n_fft:
            raise ValueError(f"mel.win_length ({self.win_length}) must not exceed n_fft ({self.n_fft})")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(f"mel: need 0 <= f_min < f_max <= sample_rate/2, got {self.f_min}, {self.f_max}")
        if self.log_clamp <= 0:
            raise ValueError("mel.log_clamp must be positive")

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def log_floor(self) -> float:
        """The value of a silent bin in raw log-mel."""
        return math.log(self.log_clamp)


@dataclass(frozen=True)
class MelStats:
    """Training-set statistics of raw log-mel; normalised mels have mean 0 and std sigma_data."""

    mean: float = -5.0
    std: float = 2.0
    sigma_data: float = 0.5

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean) and math.isfinite(self.std) and self.std > 0):
            raise ValueError(f"mel statistics must be finite with std > 0, got {self.mean}, {self.std}")


# ----------------------------------------------------------------------------------------------
# I/O


def load_audio(path: str | os.PathLike, sample_rate: int | None = 16000, mono: bool = True) -> torch.Tensor:
    """Read any file soundfile understands (wav 8/16/24/32-bit, float, flac, ogg, aiff).

    Returns float32 [T] (mono) or [C, T], resampled to ``sample_rate`` unless it is None.
    Raises AudioError (one line, naming the file) for unreadable, empty or non-finite audio.
    """
    import soundfile as sf

    path = Path(path)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AudioError(f"{path}: cannot read audio ({reason})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: file holds no samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    wav = torch.from_numpy(np.ascontiguousarray(data.T))  # [C, T]
    if mono:
        wav = wav.mean(dim=0)
    if sample_rate is not None and sr != sample_rate:
        wav = resample(wav, sr, sample_rate)
    return wav


def save_audio(
    path: str | os.PathLike, wav: torch.Tensor | np.ndarray, sample_rate: int, format: str | None = None
) -> Path:
    """Write [T] or [C, T] audio as 16-bit wav or flac, atomically (temporary name, then rename).

    Samples beyond [-1, 1] are clipped by the 16-bit encoder; callers that care peak-normalise.
    """
    import soundfile as sf

    path = Path(path)
    fmt = (format or path.suffix.lstrip(".") or "wav").lower()
    if fmt not in ("wav", "flac"):
        raise ValueError(f"unsupported audio format {fmt!r}; use wav or flac")
    data = wav.detach().float().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    data = data.T if data.ndim == 2 else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        sf.write(tmp, data, sample_rate, format=fmt.upper(), subtype="PCM_16")
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Band-limited resampling over the last axis (torchaudio's windowed sinc)."""
    if orig_sr == new_sr:
        return wav
    import torchaudio.functional as AF

    return AF.resample(wav, orig_sr, new_sr)


def peak_normalise(wav: torch.Tensor, peak: float = 0.95, eps: float = 1e-8) -> torch.Tensor:
    """Scale each clip (last axis) so its largest magnitude is ``peak``; silent clips stay silent."""
    m = wav.abs().amax(dim=-1, keepdim=True)
    return torch.where(m > eps, wav * (peak / m.clamp_min(eps)), wav)


# ----------------------------------------------------------------------------------------------
# The mel spectrogram


def num_frames(n_samples: int, cfg: MelConfig) -> int:
    """Frames produced by a centred STFT of ``n_samples`` samples (1 s at 16 kHz -> 63)."""
    return n_samples // cfg.hop_length + 1


def num_samples(frames: int, cfg: MelConfig) -> int:
    """Samples a vocoder renders for ``frames`` frames (inverse of num_frames up to one hop)."""
    return (frames - 1) * cfg.hop_length


@functools.lru_cache(maxsize=16)
def mel_basis(cfg: MelConfig, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    import torchaudio.functional as AF

    fb = AF.melscale_fbanks(
        n_freqs=cfg.n_fft // 2 + 1,
        f_min=cfg.f_min,
        f_max=cfg.f_max,
        n_mels=cfg.n_mels,
        sample_rate=cfg.sample_rate,
        norm="slaney",
        mel_scale="slaney",
    )  # [n_freqs, n_mels]
    window = torch.hann_window(cfg.win_length)
    return fb.T.contiguous().to(device), window.to(device)


def mel_spectrogram(wav: torch.Tensor, cfg: MelConfig = MelConfig()) -> torch.Tensor:
    """Raw log-mel of wav [T] or [B, T] -> [n_mels, frames] or [B, n_mels, frames] (float32)."""
    squeeze = wav.dim() == 1
    if squeeze:
        wav = wav.unsqueeze(0)
    wav = wav.float()
    fb, window = mel_basis(cfg, str(wav.device))
    spec = torch.stft(
        wav,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        window=window,
        center=True,
        pad_mode="constant",  # as librosa >= 0.10; works for clips shorter than n_fft / 2
        return_complex=True,
    ).abs()
    mel = torch.log(torch.clamp(fb @ spec, min=cfg.log_clamp))
    return mel.squeeze(0) if squeeze else mel


def normalise(logmel: torch.Tensor, stats: MelStats) -> torch.Tensor:
    """Raw log-mel -> model space: mean 0, std sigma_data over the training set."""
    return (logmel - stats.mean) * (stats.sigma_data / stats.std)


def denormalise(mel: torch.Tensor, stats: MelStats) -> torch.Tensor:
    """Model space -> raw log-mel (inverse of normalise)."""
    return mel * (stats.std / stats.sigma_data) + stats.mean
