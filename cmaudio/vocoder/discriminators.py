"""Discriminators and adversarial losses for training the neural vocoder (neural.py).

- ``MultiPeriodDiscriminator`` (MPD, HiFi-GAN: Kong et al. 2020, section 2.2): for each period p
  the waveform is folded into a [T / p, p] image and 2-D convolutions with (k, 1) kernels look at
  every p-th sample, so periodic structure at many pitches is judged.
- ``MultiResolutionDiscriminator`` (MRD, UnivNet: Jang et al. 2021, section 2.2; used by Vocos):
  2-D convolutions over linear STFT magnitudes at several resolutions, which judge the spectral
  fine structure (over-smoothed harmonics, phase artefacts show up as smeared bins).
- Losses: hinge (Vocos) or least squares (LSGAN, HiFi-GAN) for the adversarial terms, and feature
  matching (Larsen et al. 2016; HiFi-GAN eq. 4): L1 between the discriminators' intermediate
  activations on real and generated audio.

Widths are parameters: HiFi-GAN's MPD (32..1024 channels, ~41M parameters) is far too slow for a
CPU; the defaults here keep a GAN step around a second on two cores.

Every discriminator maps wav [B, T] to (scores, feature_maps): a list with one score tensor per
sub-discriminator, and for each a list of its intermediate activations.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

__all__ = [
    "PeriodDiscriminator",
    "MultiPeriodDiscriminator",
    "ResolutionDiscriminator",
    "MultiResolutionDiscriminator",
    "Discriminators",
    "discriminator_loss",
    "generator_loss",
    "feature_matching_loss",
]

Scores = list[torch.Tensor]
FeatureMaps = list[list[torch.Tensor]]
LRELU_SLOPE = 0.1  # HiFi-GAN


def _conv_stack(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Leaky-ReLU conv layers then the 1-channel output conv -> (score [B, N], every layer's map)."""
    fmap = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU_SLOPE)
        fmap.append(x)
    x = post(x)
    fmap.append(x)
    return x.flatten(1), fmap


class PeriodDiscriminator(nn.Module):
    """One MPD branch (HiFi-GAN): wav [B, T] -> score [B, frames * p], feature maps."""

    def __init__(self, period: int, channels: Sequence[int], kernel_size: int = 5, stride: int = 3):
        super().__init__()
        self.period = period
        pad = (kernel_size - 1) // 2
        convs, prev = [], 1
        for ch in channels:
            convs.append(weight_norm(nn.Conv2d(prev, ch, (kernel_size, 1), (stride, 1), (pad, 0))))
            prev = ch
        convs.append(weight_norm(nn.Conv2d(prev, prev, (kernel_size, 1), 1, (pad, 0))))
        self.convs = nn.ModuleList(convs)
        self.post = weight_norm(nn.Conv2d(prev, 1, (3, 1), 1, (1, 0)))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, t = wav.shape
        if t % self.period:  # reflect-pad to a whole number of periods (HiFi-GAN)
            n_pad = self.period - t % self.period
            mode = "reflect" if n_pad < t else "constant"
            wav = F.pad(wav.unsqueeze(1), (0, n_pad), mode=mode).squeeze(1)
            t = t + n_pad
        return _conv_stack(self.convs, self.post, wav.view(b, 1, t // self.period, self.period))


class _Ensemble(nn.Module):
    """Sub-discriminators (self.discriminators) run on the same wav -> (scores, feature maps)."""

    def forward(self, wav: torch.Tensor) -> tuple[Scores, FeatureMaps]:
        outs = [d(wav) for d in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]


class MultiPeriodDiscriminator(_Ensemble):
    """MPD with the prime periods of HiFi-GAN (2, 3, 5, 7, 11), so the folds barely overlap."""

    def __init__(
        self, periods: Sequence[int] = (2, 3, 5, 7, 11), channels: Sequence[int] = (16, 32, 64, 128)
    ):
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, channels) for p in periods)


class ResolutionDiscriminator(nn.Module):
    """One MRD branch (UnivNet): |STFT| at one (n_fft, hop, win) as an image [B, 1, frames, bins],
    2-D convolutions striding over frequency -> score [B, frames * bins'], feature maps."""

    def __init__(self, resolution: tuple[int, int, int], channels: int = 32):
        super().__init__()
        self.n_fft, self.hop, self.win = resolution
        self.register_buffer("window", torch.hann_window(self.win), persistent=False)
        c = channels
        self.convs = nn.ModuleList(
            [
                weight_norm(nn.Conv2d(1, c, (3, 9), padding=(1, 4))),
                weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(c, c, (3, 3), padding=(1, 1))),
            ]
        )
        self.post = weight_norm(nn.Conv2d(c, 1, (3, 3), padding=(1, 1)))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        spec = torch.stft(
            wav.float(),
            self.n_fft,
            self.hop,
            self.win,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        # sqrt(|S|^2 + eps): a finite gradient at silent bins (abs has none worth having there).
        x = torch.sqrt(spec.real.square() + spec.imag.square() + 1e-9)
        return _conv_stack(self.convs, self.post, x.transpose(1, 2).unsqueeze(1))  # [B, 1, frames, bins]


class MultiResolutionDiscriminator(_Ensemble):
    """MRD over (n_fft, hop, win) resolutions; Vocos' choice is n_fft in (2048, 1024, 512) with
    hop n_fft / 4 and win n_fft."""

    def __init__(
        self,
        resolutions: Sequence[tuple[int, int, int]] = (
            (2048, 512, 2048),
            (1024, 256, 1024),
            (512, 128, 512),
        ),
        channels: int = 16,
    ):
        super().__init__()
        self.discriminators = nn.ModuleList(
            ResolutionDiscriminator(tuple(r), channels) for r in resolutions
        )


class Discriminators(nn.Module):
    """MPD and MRD together: wav [B, T] -> (scores, feature maps) of every sub-discriminator."""

    def __init__(
        self,
        periods: Sequence[int] = (2, 3, 5, 7, 11),
        mpd_channels: Sequence[int] = (16, 32, 64, 128),
        resolutions: Sequence[tuple[int, int, int]] = (
            (2048, 512, 2048),
            (1024, 256, 1024),
            (512, 128, 512),
        ),
        mrd_channels: int = 16,
    ):
        super().__init__()
        self.mpd = MultiPeriodDiscriminator(periods, mpd_channels)
        self.mrd = MultiResolutionDiscriminator(resolutions, mrd_channels)

    def forward(self, wav: torch.Tensor) -> tuple[Scores, FeatureMaps]:
        s1, f1 = self.mpd(wav)
        s2, f2 = self.mrd(wav)
        return s1 + s2, f1 + f2


def discriminator_loss(real: Scores, fake: Scores, kind: str = "hinge") -> torch.Tensor:
    """Discriminator objective, averaged over sub-discriminators (scalar).

    hinge (Vocos): relu(1 - D(x)) + relu(1 + D(G(s)));
    lsgan (HiFi-GAN eq. 1): (D(x) - 1)^2 + D(G(s))^2."""
    terms = []
    for r, f in zip(real, fake, strict=True):
        if kind == "hinge":
            terms.append(F.relu(1 - r).mean() + F.relu(1 + f).mean())
        elif kind == "lsgan":
            terms.append((r - 1).square().mean() + f.square().mean())
        else:
            raise ValueError(f"unknown adversarial loss {kind!r}: use hinge or lsgan")
    return torch.stack(terms).mean()


def generator_loss(fake: Scores, kind: str = "hinge") -> torch.Tensor:
    """Generator's adversarial objective, averaged over sub-discriminators (scalar).

    hinge (Vocos): relu(1 - D(G(s))); lsgan (HiFi-GAN eq. 2): (D(G(s)) - 1)^2."""
    terms = []
    for f in fake:
        if kind == "hinge":
            terms.append(F.relu(1 - f).mean())
        elif kind == "lsgan":
            terms.append((f - 1).square().mean())
        else:
            raise ValueError(f"unknown adversarial loss {kind!r}: use hinge or lsgan")
    return torch.stack(terms).mean()


def feature_matching_loss(real: FeatureMaps, fake: FeatureMaps) -> torch.Tensor:
    """Feature matching (HiFi-GAN eq. 4): sum over layers of mean |D_l(x) - D_l(G(s))|, averaged
    over sub-discriminators as Vocos does (scalar). Real activations are targets (detached)."""
    per_disc = [
        torch.stack([(r.detach() - f).abs().mean() for r, f in zip(rs, fs, strict=True)]).sum()
        for rs, fs in zip(real, fake, strict=True)
    ]
    return torch.stack(per_disc).mean()
