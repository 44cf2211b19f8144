"""Noise-level schedules: pure functions of their arguments, no state.

Karras grid (Karras et al. 2022, eq. 5), discretised lognormal level sampling and the iCT
curriculum (Song & Dhariwal 2023, eqs. 5-6), the CT target EMA (Song et al. 2023, eq. 9 / Table 3)
and the ECT gap schedule (Geng et al. 2024, section 3).
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "karras_sigmas",
    "lognormal_level_probs",
    "ict_num_levels",
    "ct_target_ema",
    "ect_gap",
    "ect_gap_r",
    "ECT_MAX_STAGE",
]

# ECT's gap shrinks by q per stage; past this stage it stays put. At q = 2 the gap is then
# t 2^-61, still a normal float32 number at every t of the lognormal (a finite loss weight), where
# the uncapped r = t (1 - q^-(stage+1) ...) rounds to t itself from stage 24 at t = 80.
ECT_MAX_STAGE = 60


def karras_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """n noise levels, DEScending from sigma_max to sigma_min (float64):
    sigma_i = (sigma_max^(1/rho) + i/(n-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho."""
    if n < 2:
        raise ValueError(f"karras_sigmas needs n >= 2, got {n}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def lognormal_level_probs(sigmas_ascending: torch.Tensor, P_mean: float = -1.1, P_std: float = 2.0) -> torch.Tensor:
    """Probability of each adjacent pair (sigma_i, sigma_{i+1}) of an ascending grid of N levels,
    [N - 1], proportional to the lognormal mass between them (iCT, eq. 6):
    p(i) ∝ erf((ln sigma_{i+1} - P_mean) / (sqrt(2) P_std)) - erf((ln sigma_i - P_mean) / (sqrt(2) P_std))."""
    z = (sigmas_ascending.double().log() - P_mean) / (math.sqrt(2) * P_std)
    mass = torch.erf(z[1:]) - torch.erf(z[:-1])
    return mass / mass.sum()


def ict_num_levels(step: int, total_steps: int, s0: int = 10, s1: int = 1280) -> int:
    """iCT curriculum (Song & Dhariwal 2023, eq. 5): N(k) = min(s0 2^floor(k/K'), s1) + 1 with
    K' = floor(K / (log2 floor(s1/s0) + 1)): the number of grid levels doubles K' steps at a time."""
    k_prime = math.floor(total_steps / (math.log2(math.floor(s1 / s0)) + 1))
    doublings = step // max(k_prime, 1)
    # min() before the power would overflow for very long runs; cap the exponent instead.
    return min(s0 * 2 ** min(doublings, 62), s1) + 1


def ct_target_ema(num_levels: int, s0: int = 2, mu0: float = 0.95) -> float:
    """Target EMA of the original CT (Song et al. 2023, Table 3): mu(k) = exp(s0 ln(mu0) / N(k)).
    (CD uses a constant mu; iCT uses mu = 0, the stop-gradient student.)"""
    return math.exp(s0 * math.log(mu0) / num_levels)


def ect_gap(t: torch.Tensor, stage: int, q: float = 2.0, k: float = 8.0, b: float = 1.0) -> torch.Tensor:
    """ECT's gap t - r (Geng et al. 2024, section 3): t q^-(stage+1) (1 + k sigmoid(-b t)), at most
    t (r = 0 is plain denoising). Computed directly rather than as t - r: in float32 the
    difference of two nearly equal numbers is exactly 0 once the gap is below t's last bit, and
    the loss divides by it. The stage is capped at ECT_MAX_STAGE."""
    n = 1 + k * torch.sigmoid(-b * t)
    return torch.minimum(t * (q ** -(min(stage, ECT_MAX_STAGE) + 1)) * n, t)


def ect_gap_r(t: torch.Tensor, stage: int, q: float = 2.0, k: float = 8.0, b: float = 1.0) -> torch.Tensor:
    """ECT's second time r = t - ect_gap(t, stage): r = t (1 - q^-(stage+1) (1 + k sigmoid(-b t))),
    clamped at 0, where r = 0 makes the pair a plain denoising target. The gap shrinks by q every
    stage, moving from diffusion pre-training towards the consistency condition."""
    return (t - ect_gap(t, stage, q, k, b)).clamp_min(0.0)
