"""Griffin-Lim vocoder: mel pseudo-inverse, then phase recovery by Griffin-Lim with momentum
(Perraudin et al. 2013, "fast Griffin-Lim"). No training and no file (so not registered as a file
architecture); the quality floor and the baseline."""

from __future__ import annotations

import torch

from ..audio import MelConfig, mel_basis, num_samples
from .base import Vocoder

__all__ = ["GriffinLim"]


class GriffinLim(Vocoder):
    """forward(logmel [B, n_mels, frames]) -> wav [B, (frames - 1) * hop] (float32). Deterministic:
    its ``version`` (its parameters) says all there is to know about it besides the mel front end."""

    name = "griffinlim"

    def __init__(self, mel_config: MelConfig = MelConfig(), n_iter: int = 32, momentum: float = 0.99):
        super().__init__()
        if n_iter < 1:
            raise ValueError("griffinlim: n_iter must be >= 1")
        if not 0 <= momentum < 1:
            raise ValueError("griffinlim: momentum must be in [0, 1)")
        self.mel_config, self.n_iter, self.momentum = mel_config, n_iter, momentum
        self.version = f"griffinlim@n_iter={n_iter},momentum={momentum:g}"
        fb, _ = mel_basis(mel_config, "cpu")  # [n_mels, n_freqs]
        # Least-squares inverse of the mel filterbank; negative magnitudes are clipped.
        self.register_buffer("inv_fb", torch.linalg.pinv(fb), persistent=False)

    @torch.no_grad()
    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        import torchaudio.functional as AF

        cfg = self.mel_config
        squeeze = logmel.dim() == 2
        logmel = logmel.unsqueeze(0) if squeeze else logmel
        length = num_samples(logmel.shape[-1], cfg)
        if length == 0:  # one frame renders no samples (same convention as every vocoder)
            out = logmel.new_zeros(logmel.shape[0], 0)
            return out.squeeze(0) if squeeze else out
        mag = (self.inv_fb.to(logmel.device) @ logmel.float().exp()).clamp_min(0.0)
        window = torch.hann_window(cfg.win_length, device=logmel.device)
        # Zero initial phase keeps the vocoder deterministic: the same mel gives the same audio.
        wav = AF.griffinlim(
            mag, window, cfg.n_fft, cfg.hop_length, cfg.win_length, power=1.0, n_iter=self.n_iter,
            momentum=self.momentum, length=length, rand_init=False,
        )
        return wav.squeeze(0) if squeeze else wav
