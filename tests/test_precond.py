"""Preconditioning (cmaudio.precond): coefficients by hand and the exact boundary condition."""

from __future__ import annotations

import math

import pytest
import torch

from cmaudio.audio import MelConfig
from cmaudio.config import ModelConfig, NetConfig, PrecondConfig
from cmaudio.precond import Denoiser, consistency_scalings, edm_scalings


def hand_edm(s, sd=0.5):
    return (sd**2 / (s**2 + sd**2), s * sd / math.sqrt(s**2 + sd**2), 1 / math.sqrt(s**2 + sd**2), math.log(s) / 4)


def hand_cm(s, sd=0.5, smin=0.002):
    return (
        sd**2 / ((s - smin) ** 2 + sd**2),
        sd * (s - smin) / math.sqrt(s**2 + sd**2),
        1 / math.sqrt(s**2 + sd**2),
        math.log(s) / 4,
    )


@pytest.mark.parametrize("s", [0.002, 0.1, 0.5, 1.0, 7.3, 80.0])
def test_coefficients_match_hand_values(s):
    sig = torch.tensor([s], dtype=torch.float64)
    for got, want in zip(edm_scalings(sig, 0.5), hand_edm(s)):
        assert float(got) == pytest.approx(want, rel=1e-12)
    for got, want in zip(consistency_scalings(sig, 0.5, 0.002), hand_cm(s)):
        assert float(got) == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_hand_values_spot_check():
    # sigma = sigma_data: EDM c_skip = 1/2, c_out = sd/sqrt(2), c_in = 1/(sd sqrt(2)).
    c_skip, c_out, c_in, c_noise = edm_scalings(torch.tensor([0.5]), 0.5)
    assert float(c_skip) == pytest.approx(0.5) and float(c_out) == pytest.approx(0.5 / math.sqrt(2))
    assert float(c_in) == pytest.approx(1 / (0.5 * math.sqrt(2))) and float(c_noise) == pytest.approx(math.log(0.5) / 4)


def make(kind: str) -> Denoiser:
    torch.manual_seed(0)
    cfg = ModelConfig(
        mel=MelConfig(n_mels=16),
        net=NetConfig(channels=8, channel_mult=(1, 2), num_blocks=1, attention=False),
        precond=PrecondConfig(kind=kind),
        cond_fields=("label",),
        classes=(("a", "b"),),
    )
    d = Denoiser(cfg)
    with torch.no_grad():  # non-zero output layers, so F really contributes
        for p in d.parameters():
            if not p.any():
                p.normal_(std=0.5)
    return d


def test_boundary_condition_is_exact():
    f = make("consistency")
    x = torch.randn(3, 16, 11)
    out = f(x, torch.full((3,), 0.002), torch.tensor([[0], [1], [2]]))
    assert torch.equal(out, x)
    assert not torch.equal(f(x, torch.full((3,), 0.01), None), x)


def test_edm_denoiser_is_not_identity_at_sigma_min_but_close():
    D = make("edm")
    x = torch.randn(2, 16, 5)
    with torch.no_grad():
        out = D(x, 0.002)
    assert not torch.equal(out, x) and float((out - x).abs().max()) < 0.05


def test_with_precond_keeps_weights():
    D = make("edm")
    f = D.with_precond("consistency")
    assert f.precond.kind == "consistency"
    assert all(torch.equal(a, b) for a, b in zip(D.state_dict().values(), f.state_dict().values()))
    x = torch.randn(2, 16, 5)
    # Far from sigma_min the two parametrisations nearly agree (c_skip, c_out differ by O(smin)).
    assert torch.allclose(D(x, 40.0), f(x, 40.0), atol=1e-2)
