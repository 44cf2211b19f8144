"""Backbones F(x, c_noise, cond) over normalised mels; they know nothing of noise scalings.

    net = build_net(cfg.net, n_mels, cond_sizes)
    net(x [B, n_mels, frames] float, c_noise [B] float = ln(sigma)/4, cond [B, K] long or None)
        -> [B, n_mels, frames]

``cond[:, k] == cond_sizes[k]`` is the null class of factor k; cond=None means all null;
unconditional nets have cond_sizes == () and take cond=None. Nets start with F == 0.
"""

from __future__ import annotations

from torch import nn

from ..config import NetConfig
from .unet1d import UNet1D
from .unet2d import UNet2D

__all__ = ["UNet1D", "UNet2D", "build_net"]

_ARCHS = {"unet1d": UNet1D, "unet2d": UNet2D}


def build_net(cfg: NetConfig, n_mels: int, cond_sizes: tuple[int, ...] = ()) -> nn.Module:
    """Build the backbone named by ``cfg.arch`` for ``n_mels`` bins and one class factor per
    entry of ``cond_sizes`` (number of classes, the null class excluded)."""
    if cfg.arch not in _ARCHS:
        raise ValueError(f"net.arch: {cfg.arch!r} is not one of {', '.join(map(repr, _ARCHS))}")
    if n_mels < 1 or any(n < 1 for n in cond_sizes):
        raise ValueError(f"need n_mels >= 1 and class counts >= 1, got {n_mels}, {tuple(cond_sizes)}")
    return _ARCHS[cfg.arch](cfg, n_mels, tuple(cond_sizes))
