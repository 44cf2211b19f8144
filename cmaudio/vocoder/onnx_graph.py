"""A NeuralVocoder as one ONNX graph, raw log-mel -> waveform (``python -m cmaudio.export
vocoder-16k vocoder.onnx``).

ONNX has no inverse STFT (and no complex numbers), so the graph computes the Fourier transforms
as convolutions with fixed bases, in real and imaginary parts:

    STFT   a Conv1d (stride hop) with kernels w[n] cos(2 pi b n / N) and -w[n] sin(2 pi b n / N),
           input padded by N / 2 zeros either side (torch.stft, center=True, pad_mode="constant",
           as NeuralVocoder.refine analyses)
    iSTFT  a ConvTranspose1d (stride hop) with kernels c_b w[n] cos(2 pi b n / N) / N and
           -c_b w[n] sin(2 pi b n / N) / N (c_b = 1 at DC and Nyquist, else 2: the one-sided
           spectrum's other half), the overlap-added frames divided by the overlap-added squared
           window (torch.istft's least-squares normalisation), N / 2 samples cut from each end

The network part is NeuralVocoder.magnitude_phase itself and the refinement's gains its
bin_gains, so eager and graph differ only by the transforms' rounding (tests: within 1e-3 on
the bundled vocoder). A transform costs about N^2 / 2 multiply-adds a frame as a convolution
(0.5 M at N = 1024) against N log N for an FFT: the graph is for runtimes without torch, not
for speed (docs/results.md). Input ``logmel`` [batch, n_mels, frames >= 2], output ``wav``
[batch, (frames - 1) * hop]; batch and frames are dynamic.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from .neural import NeuralVocoder

__all__ = ["ConvISTFT", "ConvSTFT", "VocoderGraph", "export_vocoder_onnx"]


def _window(vocoder: NeuralVocoder) -> torch.Tensor:
    """The analysis/synthesis window zero-padded to n_fft, centred (as torch.stft pads it)."""
    m = vocoder.mel_config
    w = torch.hann_window(m.win_length, dtype=torch.float64)
    left = (m.n_fft - m.win_length) // 2
    return nn.functional.pad(w, (left, m.n_fft - m.win_length - left))


def _angles(n_fft: int) -> torch.Tensor:
    """2 pi b n / N for bins b of the one-sided spectrum and samples n: [bins, n_fft], float64."""
    b = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    n = torch.arange(n_fft, dtype=torch.float64)[None]
    return 2 * math.pi * torch.remainder(b * n, n_fft) / n_fft  # exact angles for large b * n


class ConvSTFT(nn.Module):
    """wav [B, T] -> (real, imag) [B, bins, T // hop + 1], as torch.stft(center=True,
    pad_mode="constant", onesided=True)."""

    def __init__(self, window: torch.Tensor, hop: int):
        super().__init__()
        n_fft = window.numel()
        a = _angles(n_fft)
        basis = torch.cat([torch.cos(a) * window, -torch.sin(a) * window])  # [2 bins, N]
        self.register_buffer("basis", basis.float()[:, None, :])
        self.hop, self.n_fft = hop, n_fft

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = nn.functional.pad(wav[:, None], (self.n_fft // 2, self.n_fft // 2))
        return nn.functional.conv1d(x, self.basis, stride=self.hop).chunk(2, dim=1)


class ConvISTFT(nn.Module):
    """(real, imag) [B, bins, frames] -> wav [B, (frames - 1) * hop], as torch.istft(center=True,
    length=(frames - 1) * hop)."""

    def __init__(self, window: torch.Tensor, hop: int):
        super().__init__()
        n_fft = window.numel()
        a = _angles(n_fft)
        c = torch.full((n_fft // 2 + 1, 1), 2.0, dtype=torch.float64)
        c[0] = c[-1] = 1.0  # DC and Nyquist appear once in the full spectrum
        basis = torch.cat([c * torch.cos(a) * window, -c * torch.sin(a) * window]) / n_fft
        self.register_buffer("basis", basis.float()[:, None, :])  # [2 bins, 1, N]
        self.register_buffer("window_sq", (window**2).float()[None, None, :])
        self.hop, self.n_fft = hop, n_fft

    def forward(self, real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
        frames = torch.cat([real, imag], dim=1)
        y = nn.functional.conv_transpose1d(frames, self.basis, stride=self.hop)[:, 0]  # [B, (F-1) hop + N]
        ones = torch.ones_like(real[:1, :1])  # [1, 1, frames]: the envelope's shape follows the input
        envelope = nn.functional.conv_transpose1d(ones, self.window_sq, stride=self.hop)[:, 0]
        y = y / torch.where(envelope > 1e-11, envelope, torch.ones_like(envelope))
        half = self.n_fft // 2
        return y[:, half : y.shape[-1] - half]


class VocoderGraph(nn.Module):
    """A NeuralVocoder's forward pass with the transforms as convolutions: raw log-mel
    [B, n_mels, frames >= 2] -> wav [B, (frames - 1) * hop]."""

    def __init__(self, vocoder: NeuralVocoder):
        super().__init__()
        self.vocoder = vocoder
        window, hop = _window(vocoder), vocoder.mel_config.hop_length
        self.stft, self.istft = ConvSTFT(window, hop), ConvISTFT(window, hop)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        net = self.vocoder.config.net
        mag, phase = self.vocoder.magnitude_phase(logmel)
        wav = self.istft(mag * torch.cos(phase), mag * torch.sin(phase))
        if not net.mel_refine:
            return wav
        # NeuralVocoder.refine, in real and imaginary parts
        real, imag = self.stft(wav)
        prev_real, prev_imag = real, imag
        for n in range(net.mel_refine):
            for _ in range(net.mel_refine_updates):
                gain = self.vocoder.bin_gains(torch.sqrt(real**2 + imag**2), logmel)
                real, imag = real * gain, imag * gain
            wav = self.istft(real, imag)
            if n + 1 < net.mel_refine:
                real, imag = self.stft(wav)
                if net.mel_refine_momentum:
                    a = net.mel_refine_momentum
                    real, prev_real = real + a * (real - prev_real), real
                    imag, prev_imag = imag + a * (imag - prev_imag), imag
        return wav


def export_vocoder_onnx(name_or_path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the neural vocoder ``name_or_path`` (a bundled name or a file) as an ONNX graph to
    ``out``; the vocoder's config, name and version travel as the graph's metadata."""
    from ..config import to_dict
    from ..onnx_export import write_onnx
    from . import load_vocoder

    vocoder = load_vocoder(str(name_or_path))
    if not isinstance(vocoder, NeuralVocoder):
        raise CheckpointError(f"{name_or_path}: only neural vocoder files export to ONNX (Griffin-Lim has no weights)")
    example = torch.randn(2, vocoder.mel_config.n_mels, 20) - 5.0
    meta = {
        "cmaudio_kind": "vocoder",
        "cmaudio_vocoder_config": json.dumps(to_dict(vocoder.config)),
        "cmaudio_vocoder": json.dumps({"name": vocoder.name, "version": vocoder.version}),
    }
    dynamic = {"logmel": {0: "batch", 2: "frames"}, "wav": {0: "batch", 1: "samples"}}
    return write_onnx(VocoderGraph(vocoder.float().eval()), (example,), out, ["logmel"], ["wav"], dynamic, meta)
