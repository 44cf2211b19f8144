"""Shared fixtures: synthetic tones and wav files written with soundfile (no data downloads)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def tone() -> Callable[..., np.ndarray]:
    """tone(freq, seconds=1.0, sr=16000, amp=0.5) -> float32 [round(seconds * sr)] sine."""

    def make(freq: float, seconds: float = 1.0, sr: int = 16000, amp: float = 0.5) -> np.ndarray:
        t = np.arange(round(seconds * sr)) / sr
        return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)

    return make


@pytest.fixture
def write_wav() -> Callable[..., Path]:
    """write_wav(path, data [T] or [T, C], sr=16000, subtype=None) -> path; makes parent folders.

    The format follows the suffix (.wav, .flac, .aiff, ...); subtype as soundfile names it
    ("PCM_16", "PCM_24", "PCM_U8", "FLOAT", ...), or soundfile's default for the format.
    """
    import soundfile as sf

    def write(
        path: str | Path, data: np.ndarray, sr: int = 16000, subtype: str | None = None
    ) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), data, sr, subtype=subtype)
        return path

    return write
