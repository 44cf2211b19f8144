"""UNet2D: the mel as a one-channel image [B, 1, n_mels, frames], 2-D convolutions.

Both axes halve at each level; self-attention at the lowest resolution spans all
(mels / factor) x (frames / factor) positions. Translation equivariance along the mel axis suits
pitched material (harmonics move together); it costs about n_mels times the compute of UNet1D
at equal width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import NetConfig
from .layers import UNet, pad_to_multiple

__all__ = ["UNet2D"]


class UNet2D(UNet):
    """forward(x [B, n_mels, frames], c_noise [B], cond [B, K] long or None) -> [B, n_mels, frames].

    Any n_mels and frames >= 1: both axes are zero-padded (bottom/right) to multiples of
    ``self.factor`` (2 ** (levels - 1)) and the output cropped back.
    """

    def __init__(self, cfg: NetConfig, n_mels: int, cond_sizes: tuple[int, ...] = ()):
        super().__init__(2, 1, 1, cfg, cond_sizes)
        self.n_mels = n_mels

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        mels, frames = x.shape[-2:]
        f = self.factor
        x = F.pad(x.unsqueeze(1), (0, pad_to_multiple(frames, f), 0, pad_to_multiple(mels, f)))
        return super().forward(x, c_noise, cond)[:, 0, :mels, :frames]
