"""What every generation and edit returns: the clips, their mels and per-clip metadata."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["GenerationOutput"]


@dataclass
class GenerationOutput:
    waveforms: torch.Tensor  # [B, T] float32
    mels: torch.Tensor  # [B, n_mels, frames], normalised (model space)
    sample_rate: int
    metadata: list[dict] = field(default_factory=list)  # per sample: seed, label, sigmas, model, vocoder
    seconds: float = 0.0  # wall time of the call

    @property
    def audio_seconds(self) -> float:
        return self.waveforms.shape[0] * self.waveforms.shape[-1] / self.sample_rate

    @property
    def x_realtime(self) -> float:
        return self.audio_seconds / max(self.seconds, 1e-9)
