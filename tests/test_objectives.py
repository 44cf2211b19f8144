"""Objectives: finite per-example losses, stop-gradient targets, the norm form of pseudo-Huber,
shared dropout masks, and the CD teacher step against the exact ODE of a Gaussian toy."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from cmaudio.audio import MelConfig
from cmaudio.config import ModelConfig, NetConfig, PrecondConfig
from cmaudio.objectives import (
    ConsistencyDistillationLoss,
    ConsistencyTrainingLoss,
    EasyConsistencyTuningLoss,
    EDMLoss,
    GuidedDenoiser,
    build_objective,
    pseudo_huber,
)
from cmaudio.precond import Denoiser

B = 6


def tiny(kind: str, dropout: float = 0.0, seed: int = 0) -> Denoiser:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        mel=MelConfig(n_mels=8),
        net=NetConfig(channels=8, channel_mult=(1, 2), num_blocks=1, attention=False, dropout=dropout),
        precond=PrecondConfig(kind=kind),
        cond_fields=("label",),
        classes=(("a", "b"),),
    )
    m = Denoiser(cfg)
    with torch.no_grad():
        for p in m.parameters():
            if not p.any():
                p.normal_(std=0.2)
    return m


def batch(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, 8, 12, generator=g) * 0.5, torch.randint(0, 2, (B, 1), generator=g)


def losses():
    teacher = tiny("edm", seed=5).requires_grad_(False)
    return {
        "edm": ("edm", EDMLoss()),
        "cd": ("consistency", ConsistencyDistillationLoss(teacher, N=18)),
        "cd_guided": ("consistency", ConsistencyDistillationLoss(GuidedDenoiser(teacher, 3.0), N=18)),
        "ict": ("consistency", ConsistencyTrainingLoss(total_steps=100)),
        "ect": ("consistency", EasyConsistencyTuningLoss(stage_steps=10)),
    }


@pytest.mark.parametrize("name", ["edm", "cd", "cd_guided", "ict", "ect"])
def test_loss_is_finite_per_example_and_trains(name):
    kind, loss_fn = losses()[name]
    model = tiny(kind)
    x, cond = batch()
    target = copy.deepcopy(model).requires_grad_(False) if name == "cd" else None
    torch.manual_seed(0)
    loss = loss_fn(model, x, cond, step=50, target=target)
    assert loss.shape == (B,) and loss.dtype == torch.float32 and bool(torch.isfinite(loss).all())
    loss.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert sum(float(p.grad.abs().sum()) for p in model.parameters()) > 0
    if target is not None:
        assert all(p.grad is None for p in target.parameters())


@pytest.mark.parametrize("name", ["ict", "ect"])
def test_no_gradient_flows_through_the_target_pass(name):
    """The self-target must act as a constant: gradients with the live model as target equal
    gradients with a frozen copy as target."""
    _, loss_fn = losses()[name]
    grads = []
    for frozen in (False, True):
        model = tiny("consistency")
        target = copy.deepcopy(model).requires_grad_(False) if frozen else None
        x, cond = batch()
        torch.manual_seed(3)
        loss_fn(model, x, cond, step=95, target=target).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-7)


def test_pseudo_huber_is_the_whole_sample_norm():
    a, b = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    c = 0.03
    want = ((a - b).flatten(1).pow(2).sum(1) + c * c).sqrt() - c
    assert torch.allclose(pseudo_huber(a, b, c), want)
    per_element = (((a - b) ** 2 + c * c).sqrt() - c).flatten(1).sum(1)
    assert not torch.allclose(pseudo_huber(a, b, c), per_element, rtol=1e-2)
    # Norm form: scaling the difference by k scales the loss by ~k for large differences.
    assert float(pseudo_huber(4 * a, 4 * b, 1e-6).sum() / pseudo_huber(a, b, 1e-6).sum()) == pytest.approx(4, rel=1e-4)


def test_dropout_masks_are_shared_between_student_and_target():
    model = tiny("consistency", dropout=0.5).train()
    x, cond = batch()
    s = torch.full((B,), 1.0)
    pred, tgt = ConsistencyTrainingLoss._pair(model, model, x, s, x, s, cond)
    assert torch.allclose(pred, tgt)
    assert not torch.allclose(model(x, s, cond), model(x, s, cond))  # dropout is active


SD = 0.5


def gaussian_D(x, sigma, cond=None):
    s = sigma.reshape(-1, 1, 1)
    return x * SD**2 / (SD**2 + s**2)


def test_cd_teacher_step_matches_exact_ode_on_gaussian_toy():
    seen = {}

    def student(x, sigma, cond=None):
        seen["hi"] = (x.clone(), sigma.clone())
        return x

    def target(x, sigma, cond=None):
        seen["lo"] = (x.clone(), sigma.clone())
        return x

    loss = ConsistencyDistillationLoss(gaussian_D, N=50, distance="l2")
    torch.manual_seed(0)
    loss(student, torch.randn(64, 4, 4) * SD, None, target=target)
    (x_hi, s_hi), (x_lo, s_lo) = seen["hi"], seen["lo"]
    assert bool((s_hi > s_lo).all())
    grid = loss.grid
    idx = [int((grid - float(s)).abs().argmin()) for s in s_hi]
    assert all(math.isclose(float(grid[i + 1]), float(lo), rel_tol=1e-6) for i, lo in zip(idx, s_lo))
    ratio = ((SD**2 + s_lo.double() ** 2) / (SD**2 + s_hi.double() ** 2)).sqrt().reshape(-1, 1, 1)
    assert torch.allclose(x_lo.double(), x_hi.double() * ratio, rtol=2e-3, atol=1e-5)


def test_ect_first_stage_targets_clean_data_at_small_t():
    seen = {}

    def f(x, sigma, cond=None):
        seen.setdefault("calls", []).append(sigma.clone())
        return torch.zeros_like(x)

    loss = EasyConsistencyTuningLoss(stage_steps=1000, P_mean=-6.0, P_std=0.1)  # t ~ e^-6, r = 0
    x = torch.randn(4, 2, 3)
    torch.manual_seed(0)
    out = loss(f, x, None, step=0)
    # target = x itself, prediction 0: the loss is d(0, x) / t.
    t = seen["calls"][0]
    want = pseudo_huber(torch.zeros_like(x), x, 0.00054 * math.sqrt(6)) / t
    assert torch.allclose(out, want, rtol=1e-5)


def test_guided_denoiser_is_classifier_free_guidance():
    teacher = tiny("edm", seed=5).eval()
    x, cond = batch()
    cond[0] = 2  # the null class: guidance must leave that row alone
    sigma = torch.full((B,), 0.7)
    null = teacher.null_cond(B)
    with torch.no_grad():
        d_c, d_u = teacher(x, sigma, cond), teacher(x, sigma, null)
        for w in (0.0, 1.0, 2.5):
            got = GuidedDenoiser(teacher, w)(x, 0.7, cond)
            assert torch.allclose(got, d_u + w * (d_c - d_u), atol=1e-5)
        guided = GuidedDenoiser(teacher, 2.5)(x, sigma, cond)
        assert torch.allclose(guided[0], d_u[0], atol=1e-5)
        assert not torch.allclose(guided[1:], d_c[1:], atol=1e-3)
        assert torch.equal(GuidedDenoiser(teacher, 2.5)(x, sigma, None), teacher(x, sigma, None))


def test_guidance_is_wired_into_cd_and_needs_classes():
    from cmaudio.config import CDObjectiveConfig, ObjectiveConfig

    teacher = tiny("edm", seed=5)
    kw = dict(sigma_data=0.5, sigma_min=0.002, sigma_max=80.0, total_steps=10, teacher=teacher)
    assert isinstance(
        build_objective(ObjectiveConfig(kind="cd", cd=CDObjectiveConfig(guidance=2.0)), **kw).teacher, GuidedDenoiser
    )
    assert build_objective(ObjectiveConfig(kind="cd"), **kw).teacher is teacher
    plain = copy.deepcopy(teacher)
    plain.config = ModelConfig(mel=teacher.config.mel, net=teacher.config.net, precond=teacher.config.precond)
    with pytest.raises(ValueError, match="class-conditional"):
        GuidedDenoiser(plain, 2.0)


def test_ect_loss_is_finite_at_late_stages_in_float32():
    """Issue 14 (b): at stage 30 and t = 80, r = t (1 - 2^-31) rounds to t in float32; the loss
    divided by t - r = 0. The gap is now computed directly and the stage capped."""
    x, cond = batch()
    model = tiny("consistency")
    # P_std 0 and P_mean ln 80: every t is 80 (the lognormal's far tail, where the gap vanished).
    loss = EasyConsistencyTuningLoss(q=2.0, stage_steps=1, P_mean=math.log(80.0), P_std=0.0)
    for stage in (24, 30, 200):
        value = loss(model, x, cond, step=stage)
        assert torch.isfinite(value).all(), stage


def test_cd_target_runs_in_the_students_mode_with_the_same_dropout_masks():
    """Issue 14 (c): the CD target (an EMA copy kept in eval mode) is evaluated in the student's
    train mode under the same dropout masks: with equal weights and inputs, target == student."""
    from cmaudio.objectives import consistency_pair

    student = tiny("consistency", dropout=0.1).train()
    target = copy.deepcopy(student).eval()
    x, cond = batch()
    sigma = torch.full((B,), 1.5)
    pred, tgt = consistency_pair(student, target, x, sigma, x, sigma, cond)
    assert torch.equal(pred, tgt)
    assert not target.training  # its own mode is restored
    # and dropout really was active: the same student in eval mode gives something else
    with torch.no_grad():
        assert not torch.allclose(student.eval()(x, sigma, cond), pred.detach())


def test_every_objective_kind_builds_from_the_table():
    from cmaudio.config import ObjectiveConfig
    from cmaudio.objectives import OBJECTIVES

    teacher = tiny("edm", seed=5)
    kw = dict(sigma_data=0.5, sigma_min=0.002, sigma_max=80.0, total_steps=10, teacher=teacher)
    built = {kind: type(build_objective(ObjectiveConfig(kind=kind), **kw)) for kind in OBJECTIVES}
    assert built == {
        "edm": EDMLoss,
        "cd": ConsistencyDistillationLoss,
        "ict": ConsistencyTrainingLoss,
        "ect": EasyConsistencyTuningLoss,
    }
