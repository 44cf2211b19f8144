"""UNet1D: the mel as a 1-D signal, mel bins as channels, convolutions over time only.

x [B, n_mels, frames] -> Conv1d stack (layers.UNet, dims 1) -> [B, n_mels, frames]. Time halves at
each level; frequency is mixed fully by every convolution, which makes this the cheap backbone:
compute grows with frames only, not with frames x mels.

With ``cfg.freq_channels`` > 0 a small 2-D head (FreqHead) refines the output over (mel, time)
from the input and the U-Net's output: local along the mel axis, with weights shared by all bands.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import NetConfig
from .layers import ResBlock, UNet, conv_nd, group_count, pad_to_multiple, zero_init

__all__ = ["FreqHead", "UNet1D"]


class FreqHead(nn.Module):
    """f + refine(x, f) over the mel as an image: [B, n_mels, frames] x 2 -> [B, n_mels, frames].

    Why: the 1D U-Net reads the mel bands as channels, so telling a band's own noise from its
    signal is an n_mels x n_mels map learned anew for every band; trained on real speech (FSDD)
    it left noise in at sigma 0.2 to 1 (its output on noised recordings 3x as rough as the
    recordings) and the teacher's ODE ended on speckle. Here 3 x 3 convolutions over (mel, time)
    see each band's neighbourhood with weights shared by all bands. The output convolution starts
    at zero, so the head starts as the identity on f.
    """

    def __init__(self, channels: int, emb_channels: int):
        super().__init__()
        self.conv_in = conv_nd(2, 2, channels, 3)
        self.block = ResBlock(2, channels, channels, emb_channels)
        self.norm = nn.GroupNorm(group_count(channels), channels)
        self.conv_out = zero_init(conv_nd(2, channels, 1, 3))

    def forward(self, x: torch.Tensor, f: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.block(self.conv_in(torch.stack([x, f], 1)), emb)
        return f + self.conv_out(F.silu(self.norm(h)))[:, 0]


class UNet1D(UNet):
    """forward(x [B, n_mels, frames], c_noise [B], cond [B, K] long or None) -> [B, n_mels, frames].

    Any frames >= 1: time is zero-padded on the right to a multiple of ``self.factor``
    (2 ** (levels - 1)) and the output cropped back.
    """

    def __init__(self, cfg: NetConfig, n_mels: int, cond_sizes: tuple[int, ...] = ()):
        super().__init__(1, n_mels, n_mels, cfg, cond_sizes)
        self.n_mels = n_mels
        self.head = FreqHead(cfg.freq_channels, self.emb_channels) if cfg.freq_channels else None

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        frames = x.shape[-1]
        x = F.pad(x, (0, pad_to_multiple(frames, self.factor)))
        emb = self.embedding(x, c_noise, cond)
        f = self.body(x, emb)
        if self.head is not None:
            f = self.head(x, f, emb)
        return f[..., :frames]
