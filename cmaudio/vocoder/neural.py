"""A Fourier-head neural vocoder in the style of Vocos (Siuzdak 2023, "Vocos: Closing the gap
between time-domain and Fourier-based neural vocoders").

The network never runs at the sample rate: a ConvNeXt backbone (Liu et al. 2022) works at the
mel frame rate (62.5 frames/s at 16 kHz) and a linear head predicts, per frame, the STFT log
magnitude and a phase for every one of the n_fft // 2 + 1 bins; an inverse STFT with the mel's own
n_fft, hop, window and centring turns them into samples. That is what makes it many times faster
than real time on a CPU, and it keeps frame k of the output STFT centred on the same sample
(k * hop) as frame k of ``cmaudio.audio.mel_spectrogram``.

    raw log-mel [B, n_mels, frames]
      -> Conv1d(k=7) -> LayerNorm -> num_layers x ConvNeXt -> LayerNorm  [B, frames, dim]
      -> Linear(dim, n_fft + 2) -> log|S|, phase p                        2 x [B, n_fft/2+1, frames]
      -> S = exp(log|S|) (cos p + i sin p) -> istft                       wav [B, (frames-1) * hop]

Registered as architecture "NeuralVocoder" (base.py), the default of vocoder files: its file
config is VocoderConfig as JSON (MelConfig included); fileformat.py writes and reads the files,
``read_vocoder_metadata`` reads a NeuralVocoder file's VocoderConfig without building it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from ..audio import MelConfig, mel_basis, num_samples
from ..config import ConfigError, from_dict, to_dict
from ..errors import CheckpointError
from .base import DEFAULT_ARCHITECTURE, Vocoder, register_vocoder
from .fileformat import first_line, read_vocoder_header
from .fourier import istft, stft

__all__ = [
    "VocoderConfig",
    "VocoderNetConfig",
    "ConvNeXtBlock",
    "NeuralVocoder",
    "read_vocoder_metadata",
]


@dataclass(frozen=True)
class VocoderNetConfig:
    """Backbone and head sizes (the [net] table of a vocoder recipe)."""

    dim: int = 128  # backbone width
    intermediate_dim: int = 384  # ConvNeXt inverted-bottleneck width (3x, as Vocos)
    num_layers: int = 8
    kernel_size: int = 7  # depthwise conv over frames
    # Upper bound of the predicted log magnitude. Vocos clips exp(.) at 1e2; with torch.stft's
    # unnormalised Hann window a full-scale sine peaks near n_fft / 4 = 256, so we bound the log
    # instead, above anything audio in [-1, 1] produces, only to stop early overflow.
    max_log_mag: float = 7.0
    # "direct": Vocos' phase head, phase = p. "integrated": phase = p + cumsum over frames of
    # (the bin's centre-frequency advance per hop + a predicted deviation d), a phase-vocoder
    # prior. The backbone is shift-equivariant: frames of a steady tone, whose mel frames are
    # (nearly) identical, get (nearly) the same output, and with "direct" the same phase, which
    # is right only for partials at multiples of sample_rate / hop (62.5 Hz at 16 kHz). Without
    # the magnitude prior below, a steady 470 Hz sine came out at 437.5 Hz. An integrated advance
    # lets a steady partial sit anywhere.
    phase: Literal["direct", "integrated"] = "integrated"
    # Predict the log magnitude as a correction to the mel filterbank's pseudo-inverse applied to
    # the mel (FreeV: Lv et al. 2024), the magnitude Griffin-Lim starts from: the head then only
    # learns what the mel does not say, and training converges much sooner.
    magnitude_prior: bool = True
    # Mel-consistency refinement after the inverse STFT, this many passes (0: none). A pass
    # analyses the output with the mel's own STFT, then mel_refine_updates times scales each bin by
    # the filterbank-weighted mean of the per-band gains exp(input log-mel - current log-mel) (each
    # within +-mel_refine_cap nats), and inverts once, keeping the phase: one STFT/iSTFT pair per
    # pass, a Griffin-Lim iteration's cost, where Griffin-Lim needs tens. The network supplies a
    # nearly consistent phase; the refinement pulls the band energies back onto the mel it was
    # asked to render (noise-like drums and cymbals are where a small network's magnitudes drift
    # most). A second update within a pass corrects what the first left where bands overlap.
    mel_refine: int = 0
    mel_refine_updates: int = 1
    mel_refine_cap: float = 3.0
    # Momentum a of the refinement passes (0: none). Each pass after the first starts from
    # t_n = c_n + a (c_n - c_{n-1}), c_n the STFT of the previous pass's output: the extrapolation
    # of fast Griffin-Lim (Perraudin, Balazs and Sondergaard 2013, a = 0.99 there), applied to this
    # mel-consistency projection. Measured on held-out real speech with one vocoder file
    # (docs/results.md): 16 plain passes reach PESQ-wb 3.09, 32 reach 3.28, 16 with a = 0.99 3.32.
    mel_refine_momentum: float = 0.0

    def __post_init__(self) -> None:
        for key in ("dim", "intermediate_dim", "num_layers"):
            if getattr(self, key) < 1:
                raise ConfigError(f"net.{key}: must be >= 1")
        if self.mel_refine < 0 or self.mel_refine_updates < 1 or self.mel_refine_cap <= 0:
            raise ConfigError("net.mel_refine: must be >= 0 (mel_refine_updates >= 1, mel_refine_cap > 0)")
        if not 0.0 <= self.mel_refine_momentum < 2.0:
            raise ConfigError(f"net.mel_refine_momentum: must be in [0, 2), got {self.mel_refine_momentum}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError("net.kernel_size: must be odd and >= 1 (keeps frames aligned)")


@dataclass(frozen=True)
class VocoderConfig:
    """Everything needed to rebuild a NeuralVocoder; stored as JSON in its file."""

    mel: MelConfig = field(default_factory=MelConfig)
    net: VocoderNetConfig = field(default_factory=VocoderNetConfig)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block over time (Liu et al. 2022; 1-D as in Vocos): depthwise conv, LayerNorm,
    pointwise MLP with GELU, layer scale, residual. x [B, dim, frames] -> [B, dim, frames]."""

    def __init__(self, dim: int, intermediate_dim: int, kernel_size: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        # Layer scale 1 / num_layers (Vocos): every block starts close to the identity.
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).transpose(1, 2)  # [B, frames, dim]
        h = self.pwconv2(self.act(self.pwconv1(self.norm(h))))
        return x + (self.gamma * h).transpose(1, 2)


@register_vocoder
class NeuralVocoder(Vocoder):
    """forward(raw log-mel [B, n_mels, frames] or [n_mels, frames]) -> wav [B, (frames - 1) * hop]
    (float32), the length convention of GriffinLim and ``cmaudio.audio.num_samples``."""

    architecture = DEFAULT_ARCHITECTURE

    def __init__(self, config: VocoderConfig = VocoderConfig(), name: str = "neural"):
        super().__init__()
        self.config = config
        self.mel_config = config.mel
        self.name = name
        self.step = 0  # training step of the loaded weights (load_vocoder sets it)
        c, m = config.net, config.mel
        self.embed = nn.Conv1d(m.n_mels, c.dim, c.kernel_size, padding=c.kernel_size // 2)
        self.norm = nn.LayerNorm(c.dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(c.dim, c.intermediate_dim, c.kernel_size, 1.0 / c.num_layers)
            for _ in range(c.num_layers)
        )
        self.final_norm = nn.LayerNorm(c.dim, eps=1e-6)
        n_bins = m.n_fft // 2 + 1
        # Per bin: log magnitude and phase p (Vocos), plus the phase advance d when integrated.
        self.head = nn.Linear(c.dim, (2 if c.phase == "direct" else 3) * n_bins)
        # Phase advance per hop of each bin's centre frequency, 2 pi b hop / n_fft: the STFT of a
        # steady sinusoid at that frequency turns by exactly this much from frame to frame.
        advance = 2 * math.pi * torch.arange(n_bins, dtype=torch.float64) * m.hop_length / m.n_fft
        self.register_buffer(
            "advance", torch.remainder(advance, 2 * math.pi).float()[:, None], persistent=False
        )
        self.register_buffer("window", torch.hann_window(m.win_length), persistent=False)
        fb, _ = mel_basis(m, "cpu")  # [n_mels, n_bins]
        if c.magnitude_prior:
            self.register_buffer("inv_fb", torch.linalg.pinv(fb), persistent=False)
        if c.mel_refine:
            # Band gains -> bin gains: a bin's gain is the mean of its bands' gains weighted by
            # the filterbank; bins no band covers (weight 0) keep gain 1.
            weight = fb.sum(0)
            self.register_buffer("fb", fb, persistent=False)
            self.register_buffer("fb_t_norm", (fb / weight.clamp_min(1e-12)).T.contiguous(), persistent=False)
            self.register_buffer("uncovered", (weight <= 1e-12).float()[:, None], persistent=False)
        self.apply(_init_weights)

    @classmethod
    def from_file_config(cls, config: dict) -> NeuralVocoder:
        """Rebuild from a file's config (VocoderConfig as a dict); ConfigError when invalid."""
        return cls(from_dict(VocoderConfig, config))

    def file_config(self) -> dict:
        return to_dict(self.config)

    @classmethod
    def file_mel_config(cls, config: dict) -> MelConfig:
        return from_dict(VocoderConfig, config).mel

    def magnitude_phase(self, logmel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw log-mel [B, n_mels, frames] -> (STFT magnitude, phase), each [B, n_fft // 2 + 1,
        frames]: the network's whole work (the ONNX graph, onnx_graph.py, shares it)."""
        x = self.embed(logmel)
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        x = self.head(self.final_norm(x.transpose(1, 2))).transpose(1, 2)  # [B, k * bins, frames]
        if self.config.net.phase == "direct":
            log_mag, p = x.float().chunk(2, dim=1)
        else:
            log_mag, p, d = x.float().chunk(3, dim=1)
            # Wrapping each advance to [0, 2 pi) keeps the running sum small enough for float32
            # over long clips; cos and sin do not see the difference.
            step = torch.remainder(self.advance.to(d.device) + d, 2 * math.pi)
            p = p + torch.cumsum(step, dim=-1)
        if self.config.net.magnitude_prior:
            # Negative least-squares magnitudes are floored like the mel itself (log_clamp); the
            # cap keeps exp finite (no inf - inf in the product) for a wildly out-of-range mel.
            prior = _bins_apply(self.inv_fb.to(logmel.device), logmel.float().clamp(max=30.0).exp())
            log_mag = log_mag + prior.clamp_min(self.mel_config.log_clamp).log()
        return torch.exp(log_mag.clamp(max=self.config.net.max_log_mag)), p

    def spectrum(self, logmel: torch.Tensor) -> torch.Tensor:
        """Raw log-mel [B, n_mels, frames] -> complex STFT [B, n_fft // 2 + 1, frames]."""
        mag, p = self.magnitude_phase(logmel)
        # Vocos: an unbounded p used through (cos p, sin p) is periodic, so the head never has
        # to learn the wrap-around a direct phase regression would. (torch.polar, the same
        # number, took twice as long on the CPU.)
        return torch.complex(mag * torch.cos(p), mag * torch.sin(p))

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        squeeze = logmel.dim() == 2
        logmel = logmel.unsqueeze(0) if squeeze else logmel
        if logmel.dim() != 3 or logmel.shape[1] != self.mel_config.n_mels:
            raise ValueError(
                f"vocoder {self.name!r} expects raw log-mel [B, {self.mel_config.n_mels}, frames], "
                f"got {tuple(logmel.shape)}"
            )
        m = self.mel_config
        frames = logmel.shape[-1]
        length = num_samples(frames, m)
        if length == 0:  # one frame renders no samples (num_samples convention); istft refuses it
            wav = logmel.new_zeros(logmel.shape[0], 0, dtype=torch.float32)
        else:
            spec = self.spectrum(logmel.float())
            # center=True and the mel's own n_fft / hop / window: output frame k is centred on
            # sample k * hop, exactly where mel_spectrogram centred input frame k.
            wav = istft(spec, m, self.window.to(spec.device), length)
            net = self.config.net
            if net.mel_refine:
                wav = self.refine(wav, logmel.float(), net.mel_refine, net.mel_refine_momentum)
        return wav.squeeze(0) if squeeze else wav

    def refine(self, wav: torch.Tensor, logmel: torch.Tensor, passes: int = 1, momentum: float = 0.0) -> torch.Tensor:
        """``passes`` mel-consistency passes (see VocoderNetConfig.mel_refine and
        mel_refine_momentum): wav [B, T] -> [B, T]. One STFT and one inverse STFT a pass."""
        m, updates = self.mel_config, self.config.net.mel_refine_updates
        window = self.window.to(wav.device)
        length = wav.shape[-1]
        spec = previous = stft(wav, m, window)
        for n in range(passes):
            for _ in range(updates):
                gain = self.bin_gains(_magnitude(spec), logmel)
                # Two real products: a complex-by-real product took 5x as long (6.2 against 1.2 ms).
                spec = torch.complex(spec.real * gain, spec.imag * gain)
            wav = istft(spec, m, window, length)
            if n + 1 < passes:
                spec = stft(wav, m, window)
                if momentum:  # c_n + a (c_n - c_{n-1}) as one real lerp (complex lerp: 4.6x slower)
                    moved = torch.lerp(torch.view_as_real(previous), torch.view_as_real(spec), 1.0 + momentum)
                    spec, previous = torch.view_as_complex(moved), spec
        return wav

    def bin_gains(self, magnitude: torch.Tensor, logmel: torch.Tensor) -> torch.Tensor:
        """One refinement update's gain per bin [B, n_bins, frames] for an STFT magnitude of the
        same shape: the filterbank-weighted mean of the band gains exp(logmel - its log-mel)."""
        m, net = self.mel_config, self.config.net
        current = torch.log(torch.clamp(_bins_apply(self.fb, magnitude), min=m.log_clamp))
        band_gain = (logmel - current).clamp(-net.mel_refine_cap, net.mel_refine_cap).exp()  # [B, n_mels, frames]
        return _bins_apply(self.fb_t_norm, band_gain) + self.uncovered


def _magnitude(spec: torch.Tensor) -> torch.Tensor:
    # |z| as sqrt(re^2 + im^2): half the time of complex abs (whose hypot guards an overflow no
    # STFT of audio comes near), 1.5 against 3.2 ms for batch 16 x 1 s on one thread. The floor
    # (1e-12 in magnitude, far under the mel's log_clamp) keeps the gradient finite at a zero bin.
    return (spec.real.square() + spec.imag.square()).clamp_min(1e-24).sqrt()


def _bins_apply(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """matrix [P, Q] applied to every frame of x [B, Q, T] -> [B, P, T] as one matrix product
    (a third faster here than the batched product broadcasting would run)."""
    return torch.einsum("pq,bqt->bpt", matrix, x)


def _init_weights(module: nn.Module) -> None:
    # Vocos' initialisation: truncated normal (std 0.02) weights, zero biases.
    if isinstance(module, (nn.Conv1d, nn.Linear)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def read_vocoder_metadata(path: str | os.PathLike) -> tuple[dict[str, str], VocoderConfig]:
    """A NeuralVocoder file's (metadata, VocoderConfig), without weights and without building the
    network. Every refusal, a file of another architecture included, is a one-line
    CheckpointError naming the file."""
    header = read_vocoder_header(path)
    if header.architecture != NeuralVocoder.architecture:
        raise CheckpointError(f"{header.path}: holds a {header.architecture!r} vocoder, not a NeuralVocoder")
    try:
        return header.metadata, from_dict(VocoderConfig, header.config)
    except ConfigError as exc:
        raise CheckpointError(f"{header.path}: bad vocoder config in metadata ({first_line(exc)})") from None
