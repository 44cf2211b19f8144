"""Samplers: pure functions of (denoiser, noise, sigmas, cond).

A denoiser is any callable ``denoiser(x [B, ...], sigma [B], cond) -> [B, ...]``: the EDM
denoiser D for ``sample_heun``, the consistency function f for ``sample_consistency``.
Randomness is passed in as tensors (initial noise and re-noise draws), so the caller decides how
samples are seeded and a sampler never touches a global random state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

__all__ = ["SAMPLERS", "Sampler", "sample_consistency", "sample_heun", "heun_step", "check_sigmas"]

DenoiserFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def check_sigmas(sigmas: Sequence[float], sigma_min: float, sigma_max: float) -> list[float]:
    """Validate a consistency sampler's sigma list: non-empty, strictly decreasing, each in
    (sigma_min, sigma_max]. Returns it as floats; raises ValueError with a one-line reason."""
    sigmas = [float(s) for s in sigmas]
    if not sigmas:
        raise ValueError("the sigma list is empty")
    for s in sigmas:
        if not (sigma_min < s <= sigma_max):
            raise ValueError(f"sigma {s:g} is outside ({sigma_min:g}, {sigma_max:g}]")
    if any(b >= a for a, b in zip(sigmas, sigmas[1:])):
        raise ValueError(f"sigmas must be strictly decreasing, got {', '.join(f'{s:g}' for s in sigmas)}")
    return sigmas


def _batch_sigma(s: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(s, dtype=torch.float32, device=x.device).reshape(-1).expand(x.shape[0])


@torch.no_grad()
def sample_consistency(
    f: DenoiserFn,
    noise: torch.Tensor,
    sigmas: Sequence[float],
    cond: torch.Tensor | None = None,
    *,
    sigma_min: float = 0.002,
    renoise: torch.Tensor | None = None,
    init: torch.Tensor | None = None,
    known: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Multistep consistency sampling (Song et al. 2023, Algorithm 1); k sigmas = k calls of f.

        x = f(init + sigmas[0] z_0, sigmas[0])            (init = 0 for generation)
        for tau in sigmas[1:]:  x = f(x + sqrt(tau^2 - sigma_min^2) z_j, tau)

    noise: z_0 [B, ...], unit Gaussian.  renoise: [len(sigmas) - 1, B, ...] unit Gaussian draws
    (drawn from the global generator when None).  init: a clean mel to start from (variation,
    SDEdit-style).  known/mask: editing; after every call x = known * mask + x * (1 - mask), so
    the known region (mask 1) comes back untouched (inpainting, continuation).
    No clamping: mels are not images.
    """
    sigmas = [float(s) for s in sigmas]
    if renoise is not None and renoise.shape[0] < len(sigmas) - 1:
        raise ValueError(f"renoise holds {renoise.shape[0]} draws, {len(sigmas) - 1} needed")
    x = noise * sigmas[0] if init is None else init + noise * sigmas[0]

    def put_back(x: torch.Tensor) -> torch.Tensor:
        return x if mask is None else known * mask + x * (1 - mask)

    x = put_back(f(x, _batch_sigma(sigmas[0], x), cond))
    for j, tau in enumerate(sigmas[1:]):
        z = renoise[j] if renoise is not None else torch.randn_like(x)
        x = x + (tau**2 - sigma_min**2) ** 0.5 * z
        x = put_back(f(x, _batch_sigma(tau, x), cond))
    return x


def heun_step(
    D: DenoiserFn, x: torch.Tensor, sigma_hi: torch.Tensor, sigma_lo: torch.Tensor, cond: torch.Tensor | None = None
) -> torch.Tensor:
    """One Heun step of the probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma from
    sigma_hi to sigma_lo (Karras et al. 2022, Algorithm 1); a plain Euler step when sigma_lo == 0.
    sigma_hi, sigma_lo: [B]. Used by the teacher sampler and by consistency distillation."""
    shape = (-1, *([1] * (x.dim() - 1)))
    s_hi, s_lo = sigma_hi.reshape(shape), sigma_lo.reshape(shape)
    d_hi = (x - D(x, sigma_hi, cond)) / s_hi
    x_euler = x + (s_lo - s_hi) * d_hi
    if bool((sigma_lo == 0).all()):
        return x_euler
    d_lo = (x_euler - D(x_euler, sigma_lo.clamp_min(1e-12), cond)) / s_lo.clamp_min(1e-12)
    # Per-sample: keep the Euler step where sigma_lo is 0 (the last step of the sampler).
    return torch.where(s_lo > 0, x + (s_lo - s_hi) * (d_hi + d_lo) / 2, x_euler)


@torch.no_grad()
def sample_heun(
    D: DenoiserFn, noise: torch.Tensor, sigmas: Sequence[float], cond: torch.Tensor | None = None
) -> torch.Tensor:
    """Deterministic EDM sampler: Heun steps along ``sigmas`` (descending) and then to 0.
    N sigmas cost 2N - 1 calls (the last step, to sigma = 0, is Euler)."""
    sigmas = [float(s) for s in sigmas] + [0.0]
    x = noise * sigmas[0]
    for s_hi, s_lo in zip(sigmas[:-1], sigmas[1:]):
        x = heun_step(D, x, _batch_sigma(s_hi, x), _batch_sigma(s_lo, x), cond)
    return x


@dataclass(frozen=True)
class Sampler:
    """How one kind of model is sampled (the key of SAMPLERS is its precond.kind): ``run`` maps
    (denoiser, noise [draws(k), B, ...], k sigmas, cond) to samples; ``calls(k)`` network calls
    and ``draws(k)`` unit-Gaussian draws per sample; ``edits``: whether it can keep known frames
    (init, known, mask) as inpainting, continuation and variation need."""

    run: Callable[..., torch.Tensor]
    calls: Callable[[int], int]
    draws: Callable[[int], int]
    edits: bool

    def __call__(
        self,
        denoiser: DenoiserFn,
        noise: torch.Tensor,
        sigmas: Sequence[float],
        cond=None,
        *,
        sigma_min: float = 0.002,
        init=None,
        known=None,
        mask=None,
    ) -> torch.Tensor:
        if not self.edits and (init is not None or mask is not None):
            raise ValueError("editing needs a consistency model; this is an EDM teacher")
        return self.run(denoiser, noise, sigmas, cond, sigma_min=sigma_min, init=init, known=known, mask=mask)


def _consistency(f, noise, sigmas, cond, *, sigma_min, init, known, mask):
    return sample_consistency(
        f, noise[0], sigmas, cond, sigma_min=sigma_min, renoise=noise[1:], init=init, known=known, mask=mask
    )


def _heun(D, noise, sigmas, cond, *, sigma_min, init, known, mask):
    return sample_heun(D, noise[0], sigmas, cond)


# precond.kind -> its sampler: a new sampler is its function and one line here.
SAMPLERS = {
    "consistency": Sampler(_consistency, calls=lambda k: k, draws=lambda k: k, edits=True),
    "edm": Sampler(_heun, calls=lambda k: 2 * k - 1, draws=lambda k: 1, edits=False),
}
