"""Schedules against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from cmaudio.schedules import ct_target_ema, ect_gap_r, ict_num_levels, karras_sigmas, lognormal_level_probs


def test_karras_grid_endpoints_and_formula():
    s = karras_sigmas(5, 0.002, 80.0, 7.0)
    assert s[0].item() == pytest.approx(80.0) and s[-1].item() == pytest.approx(0.002)
    lo, hi = 0.002 ** (1 / 7), 80 ** (1 / 7)
    assert s[2].item() == pytest.approx((hi + 0.5 * (lo - hi)) ** 7, rel=1e-12)
    assert bool((s[1:] < s[:-1]).all())


def test_ict_curriculum_matches_hand_values():
    # K = 400000, s0 = 10, s1 = 1280: K' = floor(400000 / (log2(128) + 1)) = 50000.
    K = 400_000
    assert ict_num_levels(0, K) == 11
    assert ict_num_levels(49_999, K) == 11
    assert ict_num_levels(50_000, K) == 21
    assert ict_num_levels(150_000, K) == 81
    assert ict_num_levels(350_000, K) == 1281
    assert ict_num_levels(10**9, K) == 1281
    # A short run: K = 80, s0 = 10, s1 = 40 -> K' = floor(80 / 3) = 26.
    assert [ict_num_levels(k, 80, 10, 40) for k in (0, 25, 26, 52, 79)] == [11, 11, 21, 41, 41]


def test_lognormal_probabilities_match_hand_values():
    grid = torch.tensor([0.002, 0.1, 1.0, 80.0], dtype=torch.float64)
    P_mean, P_std = -1.1, 2.0

    def cdf(s):
        return 0.5 * (1 + math.erf((math.log(s) - P_mean) / (math.sqrt(2) * P_std)))

    mass = [cdf(b) - cdf(a) for a, b in zip(grid.tolist(), grid.tolist()[1:])]
    want = [m / sum(mass) for m in mass]
    got = lognormal_level_probs(grid, P_mean, P_std)
    assert got.tolist() == pytest.approx(want, rel=1e-10)
    assert got.sum().item() == pytest.approx(1.0)


def test_ect_first_stage_small_t_is_plain_denoising():
    t = torch.tensor([0.002, 0.01, 0.1, 0.5])
    assert torch.equal(ect_gap_r(t, stage=0, q=2.0), torch.zeros(4))


def test_ect_gap_shrinks_by_q_per_stage():
    t = torch.tensor([3.0])
    n = 1 + 8 * torch.sigmoid(-t)
    for stage in range(2, 6):
        r = ect_gap_r(t, stage, 2.0)
        assert (t - r).item() == pytest.approx((t * n / 2 ** (stage + 1)).item(), rel=1e-5)
    assert 0 < ect_gap_r(t, 5, 2.0).item() < t.item()


def test_ct_target_ema():
    assert ct_target_ema(1, s0=2, mu0=0.9) == pytest.approx(0.81)
    assert ct_target_ema(4, s0=2, mu0=0.81) == pytest.approx(0.9)
    assert ct_target_ema(10**6) == pytest.approx(1.0, abs=1e-6)


def test_ect_gap_stays_positive_where_t_minus_r_vanishes():
    from cmaudio.schedules import ECT_MAX_STAGE, ect_gap

    t = torch.tensor([80.0, 1.0, 0.01])
    for stage in (23, 24, 30, ECT_MAX_STAGE, 10 * ECT_MAX_STAGE):
        gap = ect_gap(t, stage, 2.0)
        assert (gap > 0).all() and torch.isfinite(1 / gap).all(), stage
    # capped: past the last stage the gap stops shrinking
    assert torch.equal(ect_gap(t, ECT_MAX_STAGE, 2.0), ect_gap(t, ECT_MAX_STAGE + 5, 2.0))
