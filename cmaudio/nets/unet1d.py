"""UNet1D: the mel as a 1-D signal, mel bins as channels, convolutions over time only.

x [B, n_mels, frames] -> Conv1d stack (layers.UNet, dims 1) -> [B, n_mels, frames]. Time halves at
each level; frequency is mixed fully by every convolution, which makes this the cheap backbone:
compute grows with frames only, not with frames x mels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import NetConfig
from .layers import UNet, pad_to_multiple

__all__ = ["UNet1D"]


class UNet1D(UNet):
    """forward(x [B, n_mels, frames], c_noise [B], cond [B, K] long or None) -> [B, n_mels, frames].

    Any frames >= 1: time is zero-padded on the right to a multiple of ``self.factor``
    (2 ** (levels - 1)) and the output cropped back.
    """

    def __init__(self, cfg: NetConfig, n_mels: int, cond_sizes: tuple[int, ...] = ()):
        super().__init__(1, n_mels, n_mels, cfg, cond_sizes)
        self.n_mels = n_mels

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        frames = x.shape[-1]
        x = F.pad(x, (0, pad_to_multiple(frames, self.factor)))
        return super().forward(x, c_noise, cond)[..., :frames]
