"""Building blocks shared by the 1D and 2D U-Nets, and the U-Net body they both use.

Every block works on feature maps ``[B, C, *spatial]`` with ``len(spatial) == dims``: dims 1 is
``[B, C, frames]`` (mel bins as channels, nets/unet1d.py), dims 2 is ``[B, C, mels, frames]`` (the
mel as an image, nets/unet2d.py). The design follows the ADM / EDM U-Nets (Dhariwal & Nichol 2021;
Karras et al. 2022, NVlabs/edm ``networks.py``): a noise + class embedding drives every residual
block through an adaptive scale and shift.

A backbone computes F of D(x, sigma) = c_skip x + c_out F(c_in x, c_noise, cond): it sees only the
already scaled input and c_noise; the noise scalings live in precond.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import NetConfig

__all__ = [
    "NOISE_SCALE",
    "Downsample",
    "Embedding",
    "PositionalEmbedding",
    "ResBlock",
    "SelfAttention",
    "UNet",
    "Upsample",
    "conv_nd",
    "group_count",
    "pad_to_multiple",
    "zero_init",
]

# c_noise = ln(sigma)/4 spans about -1.6 .. 1.1; stretching it by 250 before the positional
# embedding spreads the sinusoids' phases over the range (as DDPM-style timestep inputs do).
NOISE_SCALE = 250.0
# Sum of a residual branch and its skip, rescaled to keep the variance of the stream constant.
SKIP_SCALE = math.sqrt(0.5)


def group_count(channels: int) -> int:
    """GroupNorm groups: min(32, channels // 4) as EDM, lowered until it divides ``channels``."""
    groups = max(1, min(32, channels // 4))
    while channels % groups:
        groups -= 1
    return groups


def pad_to_multiple(size, factor: int):
    """How much to add to ``size`` (an int, or a symbolic size while compiled or exported) to reach
    a multiple of ``factor``. Floor division of non-negative sizes only: torch.compile's dynamic
    shapes (a length change after the first call) failed on the modulo of a symbolic size in torch
    2.14 ("TensorReferenceAnalysis has no attribute python_mod"), and the ONNX graph's integer Div
    truncates, which equals floor only for non-negative operands."""
    return (size + factor - 1) // factor * factor - size


def conv_nd(dims: int, in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Module:
    """Conv1d or Conv2d with 'same' padding for odd kernels (halving the size when stride is 2)."""
    conv = {1: nn.Conv1d, 2: nn.Conv2d}[dims]
    return conv(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2)


def zero_init(module: nn.Module) -> nn.Module:
    """Zero a layer's weights so the residual branch (or the whole net) starts as the identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class PositionalEmbedding(nn.Module):
    """Transformer sinusoidal embedding of a scalar per example, as EDM's PositionalEmbedding:
    [B] -> [B, num_channels] = [cos(x f_0), ..., cos(x f_n), sin(x f_0), ..., sin(x f_n)] with
    f_i = max_positions^(-i/n)."""

    def __init__(self, num_channels: int, max_positions: int = 10000):
        super().__init__()
        half = num_channels // 2
        freqs = (1 / max_positions) ** (torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.outer(x.float(), self.freqs)
        return torch.cat([x.cos(), x.sin()], dim=1)


class Embedding(nn.Module):
    """Noise and class embedding: (c_noise [B], cond [B, K] long or None) -> emb [B, emb_channels].

    The noise level goes through a positional embedding and a 2-layer SiLU MLP; each conditioning
    factor k adds a learned vector from its own table of ``cond_sizes[k] + 1`` rows, the last row
    being the null class (used for cond=None and for classifier-free label dropout).
    """

    def __init__(self, channels: int, emb_channels: int, cond_sizes: tuple[int, ...] = ()):
        super().__init__()
        self.cond_sizes = tuple(cond_sizes)
        self.pos = PositionalEmbedding(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, emb_channels), nn.SiLU(), nn.Linear(emb_channels, emb_channels))
        self.classes = nn.ModuleList(nn.Embedding(n + 1, emb_channels) for n in self.cond_sizes)
        self.register_buffer("null", torch.tensor(self.cond_sizes, dtype=torch.long), persistent=False)

    def forward(self, c_noise: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.mlp(self.pos(c_noise.float() * NOISE_SCALE).to(self.mlp[0].weight.dtype))
        if self.classes:
            if cond is None:
                cond = self.null.expand(emb.shape[0], -1)
            elif cond.shape != (emb.shape[0], len(self.classes)):
                raise ValueError(
                    f"cond must be [B, {len(self.classes)}] = [{emb.shape[0]}, {len(self.classes)}]"
                    f" class indices, got {list(cond.shape)}"
                )
            for k, table in enumerate(self.classes):
                emb = emb + table(cond[:, k])
        elif cond is not None and cond.numel():
            raise ValueError("this network is unconditional (cond_sizes == ()): pass cond=None")
        # One SiLU here instead of one per block: every block's affine layer reads silu(emb).
        return F.silu(emb)


class SelfAttention(nn.Module):
    """Multi-head self-attention over all positions of [B, C, *spatial] (flattened), residual:
    (x + proj(attn(norm(x)))) / sqrt(2). The output projection starts at zero (EDM, ADM)."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"net.attn_heads ({heads}) must divide the channel count {channels}")
        self.heads = heads
        self.norm = nn.GroupNorm(group_count(channels), channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = zero_init(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C = x.shape[:2]
        qkv = self.qkv(self.norm(x).flatten(2))  # [B, 3C, N]
        # [B, 3C, N] -> three [B, heads, N, C / heads]
        q, k, v = qkv.reshape(B, 3, self.heads, C // self.heads, -1).transpose(3, 4).unbind(1)
        h = F.scaled_dot_product_attention(q, k, v)
        h = self.proj(h.transpose(2, 3).reshape(B, C, -1))
        return (x + h.reshape(x.shape)) * SKIP_SCALE


class ResBlock(nn.Module):
    """Residual block with adaptive scale/shift from the embedding (EDM UNetBlock, adaptive_scale):

        h = conv0(silu(norm0(x)));  h = silu(norm1(h) * (1 + scale(emb)) + shift(emb))
        out = (conv1(dropout(h)) + skip(x)) / sqrt(2),  then optional self-attention

    x [B, in_channels, *spatial], emb [B, emb_channels] -> [B, out_channels, *spatial].
    conv1 starts at zero, so each block starts as its (1x1 or identity) skip path.
    """

    def __init__(
        self,
        dims: int,
        in_channels: int,
        out_channels: int,
        emb_channels: int,
        dropout: float = 0.0,
        attention: bool = False,
        heads: int = 1,
    ):
        super().__init__()
        self.norm0 = nn.GroupNorm(group_count(in_channels), in_channels)
        self.conv0 = conv_nd(dims, in_channels, out_channels, 3)
        self.affine = nn.Linear(emb_channels, 2 * out_channels)
        self.norm1 = nn.GroupNorm(group_count(out_channels), out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv1 = zero_init(conv_nd(dims, out_channels, out_channels, 3))
        self.skip = conv_nd(dims, in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        self.attn = SelfAttention(out_channels, heads) if attention else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv0(F.silu(self.norm0(x)))
        # [B, 2C] -> scale, shift [B, C, 1, ...] broadcasting over the spatial axes
        scale, shift = self.affine(emb).reshape(h.shape[0], -1, *([1] * (h.dim() - 2))).chunk(2, 1)
        h = F.silu(torch.addcmul(shift, self.norm1(h), scale + 1))
        h = self.conv1(self.dropout(h))
        x = (h + self.skip(x)) * SKIP_SCALE
        return self.attn(x) if self.attn is not None else x


class Downsample(nn.Module):
    """Strided 3-tap convolution: [B, C, *spatial] -> [B, C, *spatial / 2] (even sizes)."""

    def __init__(self, dims: int, channels: int):
        super().__init__()
        self.conv = conv_nd(dims, channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3-tap convolution (no checkerboard artefacts of transposed
    convolutions): [B, C, *spatial] -> [B, C, *spatial * 2]."""

    def __init__(self, dims: int, channels: int):
        super().__init__()
        self.conv = conv_nd(dims, channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """The U-Net body shared by UNet1D and UNet2D (ADM layout).

    Encoder: per level ``cfg.num_blocks`` ResBlocks at ``cfg.channels * mult`` channels, then a
    Downsample except after the last level. Middle: ResBlock + attention, ResBlock. Decoder: the
    mirror, ``cfg.num_blocks + 1`` ResBlocks per level, each concatenating one encoder activation.
    Self-attention (``cfg.attention``) sits in the lowest-resolution level and the middle. The
    output convolution starts at zero, so F == 0 at init and a preconditioned model starts as
    D = c_skip x.

    forward(x [B, in_channels, *spatial], c_noise [B], cond [B, K] or None)
        -> [B, out_channels, *spatial]; every spatial size must be a multiple of ``self.factor``
        (the subclasses pad and crop).
    """

    def __init__(
        self,
        dims: int,
        in_channels: int,
        out_channels: int,
        cfg: NetConfig,
        cond_sizes: tuple[int, ...],
    ):
        super().__init__()
        self.cfg = cfg
        self.cond_sizes = tuple(cond_sizes)
        self.factor = 2 ** (len(cfg.channel_mult) - 1)
        self.emb_channels = emb_channels = cfg.emb_channels or 4 * cfg.channels
        self.embed = Embedding(cfg.channels, emb_channels, self.cond_sizes)

        def block(cin: int, cout: int, attention: bool) -> ResBlock:
            return ResBlock(dims, cin, cout, emb_channels, cfg.dropout, attention, cfg.attn_heads)

        last = len(cfg.channel_mult) - 1
        self.conv_in = conv_nd(dims, in_channels, cfg.channels, 3)
        self.enc = nn.ModuleList()
        skips = [cfg.channels]  # channel counts of the activations the decoder will concatenate
        c = cfg.channels
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_blocks):
                self.enc.append(block(c, cfg.channels * mult, cfg.attention and level == last))
                c = cfg.channels * mult
                skips.append(c)
            if level != last:
                self.enc.append(Downsample(dims, c))
                skips.append(c)
        self.mid = nn.ModuleList([block(c, c, cfg.attention), block(c, c, False)])
        self.dec = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for _ in range(cfg.num_blocks + 1):
                self.dec.append(block(c + skips.pop(), cfg.channels * mult, cfg.attention and level == last))
                c = cfg.channels * mult
            if level != 0:
                self.dec.append(Upsample(dims, c))
        self.norm_out = nn.GroupNorm(group_count(c), c)
        self.conv_out = zero_init(conv_nd(dims, c, out_channels, 3))

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.body(x, self.embedding(x, c_noise, cond))

    def embedding(self, x: torch.Tensor, c_noise: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        # Accept a scalar or [1] c_noise for a batch that shares one noise level.
        return self.embed(c_noise.reshape(-1).expand(x.shape[0]), cond)

    def body(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """The U-Net proper, given the embedding (Embedding's output)."""
        x = self.conv_in(x)
        skips = [x]
        for layer in self.enc:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
            skips.append(x)
        for layer in self.mid:
            x = layer(x, emb)
        for layer in self.dec:
            if isinstance(layer, ResBlock):
                x = layer(torch.cat([x, skips.pop()], dim=1), emb)
            else:
                x = layer(x)
        return self.conv_out(F.silu(self.norm_out(x)))
