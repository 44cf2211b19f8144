"""Samplers with closed-form denoisers."""

from __future__ import annotations

import math

import pytest
import torch

from cmaudio.sampling import check_sigmas, heun_step, sample_consistency, sample_heun

SD = 0.5  # data std of the Gaussian toy


def gaussian_D(x, sigma, cond=None):
    """Ideal denoiser of N(0, SD^2) data: E[x0 | x] = x SD^2 / (SD^2 + sigma^2)."""
    s = sigma.reshape(-1, *([1] * (x.dim() - 1)))
    return x * SD**2 / (SD**2 + s**2)


def exact_ode(x, s_from, s_to):
    """PF-ODE of Gaussian data: x(s) = x(s0) sqrt((SD^2 + s^2) / (SD^2 + s0^2))."""
    return x * math.sqrt((SD**2 + s_to**2) / (SD**2 + s_from**2))


class Counting:
    def __init__(self, fn):
        self.fn, self.calls, self.inputs = fn, 0, []

    def __call__(self, x, sigma, cond=None):
        self.calls += 1
        self.inputs.append((x.clone(), sigma.clone()))
        return self.fn(x, sigma, cond)


def test_one_step_returns_the_point():
    point = torch.randn(1, 4, 6)

    def f(x, sigma, cond=None):  # consistency function of data concentrated on one point
        return point.expand_as(x)

    out = sample_consistency(f, torch.randn(3, 4, 6), [80.0])
    assert torch.equal(out, point.expand(3, 4, 6))


@pytest.mark.parametrize("k", [1, 2, 3, 4, 8])
def test_k_sigmas_cost_k_calls(k):
    f = Counting(lambda x, s, c: x * 0.5)
    sigmas = torch.logspace(math.log10(80), -1, k).tolist()
    sample_consistency(f, torch.randn(2, 3, 5), sigmas)
    assert f.calls == k


def test_renoise_level_is_exact():
    f = Counting(lambda x, s, c: torch.zeros_like(x))  # f = 0, so the next input is pure re-noise
    z0, renoise = torch.randn(2, 3, 5), torch.randn(2, 2, 3, 5)
    sample_consistency(f, z0, [80.0, 1.5, 0.3], sigma_min=0.002, renoise=renoise)
    assert torch.equal(f.inputs[0][0], 80.0 * z0)
    assert torch.allclose(f.inputs[1][0], math.sqrt(1.5**2 - 0.002**2) * renoise[0], rtol=0, atol=1e-6)
    assert torch.allclose(f.inputs[2][0], math.sqrt(0.3**2 - 0.002**2) * renoise[1], rtol=0, atol=1e-6)
    assert [float(s[0]) for _, s in f.inputs] == pytest.approx([80.0, 1.5, 0.3])


def test_heun_step_matches_exact_ode_on_gaussian_toy():
    x = torch.randn(4, 8, 8, dtype=torch.float64) * 3
    from cmaudio.schedules import karras_sigmas

    grid = karras_sigmas(50)

    def err(s_hi, s_lo):
        got = heun_step(
            gaussian_D, x, torch.full((4,), s_hi, dtype=torch.float64), torch.full((4,), s_lo, dtype=torch.float64)
        )
        return float(((got - exact_ode(x, s_hi, s_lo)) / exact_ode(x, s_hi, s_lo)).abs().max())

    for n in (0, 10, 30, 48):  # each adjacent pair of the CD grid (N = 50)
        s_hi, s_lo = grid[n].item(), grid[n + 1].item()
        assert err(s_hi, s_lo) < 1e-3, n
        # Second order: the local error is O(h^3), so halving the step (in log sigma) cuts it ~8x.
        mid = math.sqrt(s_hi * s_lo)
        assert err(s_hi, mid) < err(s_hi, s_lo) / 5 or err(s_hi, s_lo) < 1e-9


def test_heun_sampler_matches_analytic_solution_and_call_count():
    from cmaudio.schedules import karras_sigmas

    D = Counting(gaussian_D)
    z = torch.randn(3, 4, 4, dtype=torch.float64)
    out = sample_heun(D, z, karras_sigmas(18).tolist())
    assert D.calls == 2 * 18 - 1
    want = exact_ode(z * 80.0, 80.0, 0.0)
    errors = [
        float(((sample_heun(gaussian_D, z, karras_sigmas(n).tolist()) - want) / want).abs().max())
        for n in (35, 70, 140)
    ]
    # Global error O(h^2): doubling the steps quarters it; 140 steps land within 0.1 %.
    assert errors[0] / errors[1] > 3.5 and errors[1] / errors[2] > 3.5 and errors[2] < 1e-3
    assert float(((out - want) / want).abs().max()) < 0.1


def test_masked_sampling_keeps_known_region():
    known = torch.randn(2, 3, 10)
    mask = torch.zeros(1, 1, 10)
    mask[..., :4] = 1
    out = sample_consistency(
        lambda x, s, c: x * 0.1,
        torch.randn(2, 3, 10),
        [80.0, 0.8],
        known=known,
        mask=mask,
        renoise=torch.randn(1, 2, 3, 10),
    )
    assert torch.equal(out[..., :4], known[..., :4]) and not torch.equal(out[..., 4:], known[..., 4:])


def test_init_starts_from_the_noised_clip():
    f = Counting(lambda x, s, c: x)
    init, z = torch.randn(1, 2, 3), torch.randn(1, 2, 3)
    sample_consistency(f, z, [0.5], init=init)
    assert torch.allclose(f.inputs[0][0], init + 0.5 * z)


@pytest.mark.parametrize(
    "sigmas, msg",
    [
        ([], "empty"),
        ([0.8, 80.0], "decreasing"),
        ([100.0], "outside"),
        ([80.0, 0.002], "outside"),
        ([80.0, 0.8, 0.8], "decreasing"),
    ],
)
def test_bad_sigma_lists(sigmas, msg):
    with pytest.raises(ValueError, match=msg):
        check_sigmas(sigmas, 0.002, 80.0)
