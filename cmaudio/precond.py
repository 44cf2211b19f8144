"""Noise-level preconditioning: D(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma)).

Two parametrisations of the same backbone F (docs/architecture.md, section 3):

- EDM (Karras et al. 2022, Table 1), for the diffusion teacher:
      c_skip = sd^2 / (s^2 + sd^2),  c_out = s sd / sqrt(s^2 + sd^2)
- consistency (Song et al. 2023, Appendix C), for students; the boundary condition
  f(x, sigma_min) = x holds exactly because c_skip(sigma_min) = 1 and c_out(sigma_min) = 0:
      c_skip = sd^2 / ((s - smin)^2 + sd^2),  c_out = sd (s - smin) / sqrt(s^2 + sd^2)

Both share c_in = 1 / sqrt(s^2 + sd^2) and c_noise = ln(s) / 4.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .config import ModelConfig, PrecondConfig

__all__ = ["edm_scalings", "consistency_scalings", "Denoiser"]


def edm_scalings(sigma: torch.Tensor, sigma_data: float):
    """EDM coefficients (c_skip, c_out, c_in, c_noise) for sigma [B] (Karras et al. 2022, Table 1)."""
    s2 = sigma**2 + sigma_data**2
    c_skip = sigma_data**2 / s2
    c_out = sigma * sigma_data / s2.sqrt()
    c_in = 1 / s2.sqrt()
    c_noise = sigma.log() / 4
    return c_skip, c_out, c_in, c_noise


def consistency_scalings(sigma: torch.Tensor, sigma_data: float, sigma_min: float):
    """Consistency-model coefficients (Song et al. 2023, Appendix C): exact f(x, sigma_min) = x."""
    s2 = sigma**2 + sigma_data**2
    c_skip = sigma_data**2 / ((sigma - sigma_min) ** 2 + sigma_data**2)
    c_out = sigma_data * (sigma - sigma_min) / s2.sqrt()
    c_in = 1 / s2.sqrt()
    c_noise = sigma.log() / 4
    return c_skip, c_out, c_in, c_noise


class Denoiser(nn.Module):
    """A preconditioned network built from its ModelConfig alone.

    forward(x [B, n_mels, frames], sigma [B] or scalar, cond [B, K] long or None) -> [B, n_mels, frames]
    For an EDM model this is the denoiser D(x, sigma); for a consistency model it is f(x, sigma).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        from .nets import build_net

        self.config = config
        self.net = build_net(config.net, config.mel.n_mels, config.cond_sizes)

    @property
    def precond(self) -> PrecondConfig:
        return self.config.precond

    def scalings(self, sigma: torch.Tensor):
        p = self.precond
        if p.kind == "edm":
            return edm_scalings(sigma, p.sigma_data)
        return consistency_scalings(sigma, p.sigma_data, p.sigma_min)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, cond: torch.Tensor | None = None) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1)
        sigma = sigma.expand(x.shape[0]) if sigma.numel() == 1 else sigma
        c_skip, c_out, c_in, c_noise = (c.reshape(-1, *([1] * (x.dim() - 1))) for c in self.scalings(sigma))
        F = self.net((c_in * x).to(x.dtype), c_noise.flatten(), cond)
        # The skip path stays in x's precision; under bf16 autocast only F is low precision.
        return c_skip * x + c_out * F.to(torch.float32 if x.dtype == torch.float32 else x.dtype)

    def null_cond(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """The all-null condition [B, K] (index == number of classes for every factor)."""
        sizes = torch.tensor(self.config.cond_sizes, dtype=torch.long, device=device)
        return sizes.expand(batch, -1).clone()

    def with_precond(self, kind: str) -> Denoiser:
        """A new Denoiser with the same weights and another parametrisation (EDM teacher ->
        consistency student, as CD and ECT initialise from the teacher)."""
        cfg = dataclasses.replace(self.config, precond=dataclasses.replace(self.precond, kind=kind))
        new = Denoiser(cfg)
        new.load_state_dict(self.state_dict())
        return new.to(next(self.parameters()).device)
