"""Training objectives: callables returning a per-example loss [B] in float32.

Every objective has the signature ``loss(model, x, cond=None, *, step=0, target=None) -> [B]``:
``model`` is the preconditioned network being trained (precond.Denoiser), ``x`` a batch of clean
normalised mels [B, n_mels, frames], ``step`` the optimiser step (curricula), and ``target`` the
network that evaluates the stop-gradient target: for consistency distillation an EMA of the
student, for iCT and ECT the student itself (the default when None; the training loop passes the
module without its DDP wrapper). ``target_decay(step)``
tells the training loop which EMA rate to keep that target at, or None when no target is needed.
The objectives know nothing of samplers' step lists or of the training loop.
"""

from __future__ import annotations

import contextlib
import math

import torch

from .config import ObjectiveConfig
from .sampling import heun_step
from .schedules import ect_gap, ict_num_levels, karras_sigmas, lognormal_level_probs

__all__ = [
    "pseudo_huber",
    "consistency_pair",
    "EDMLoss",
    "ConsistencyDistillationLoss",
    "GuidedDenoiser",
    "ConsistencyTrainingLoss",
    "EasyConsistencyTuningLoss",
    "build_objective",
    "OBJECTIVES",
]


def pseudo_huber(a: torch.Tensor, b: torch.Tensor, c: float) -> torch.Tensor:
    """d(a, b) = sqrt(||a - b||^2 + c^2) - c over each whole example (iCT, section 3.3): [B].
    The norm form matters: applied per element with the same c it degenerates to scaled MSE."""
    sq = (a.float() - b.float()).flatten(1).pow(2).sum(1)
    return (sq + c * c).sqrt() - c


def _l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.float() - b.float()).flatten(1).pow(2).mean(1)


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (x.dim() - 1)))


@contextlib.contextmanager
def _shared_dropout(seed: int, device: torch.device):
    """Run a forward pass under a fixed RNG seed, restoring the global RNG afterwards, so two
    passes (student and target) draw identical dropout masks (iCT, section 3.1)."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def _mode_of(module, training: bool):
    """Run ``module`` in the given train/eval mode, then restore its own."""
    was = getattr(module, "training", training)
    if isinstance(module, torch.nn.Module):
        module.train(training)
    try:
        yield
    finally:
        if isinstance(module, torch.nn.Module):
            module.train(was)


def consistency_pair(model, target, x_hi, s_hi, x_lo, s_lo, cond):
    """Student f(x_hi, s_hi) with gradients and the stop-gradient target f(x_lo, s_lo), both
    under the same dropout masks (iCT, section 3.1) and in the student's mode: a CD target is an
    EMA copy kept in eval mode between steps, and evaluated so it would drop no units while the
    student drops some, a different function than the one being made self-consistent."""
    seed = int(torch.randint(0, 2**62, ()).item())
    with _shared_dropout(seed, x_hi.device):
        pred = model(x_hi, s_hi, cond)
    with torch.no_grad(), _shared_dropout(seed, x_hi.device), _mode_of(target, getattr(model, "training", False)):
        tgt = target(x_lo, s_lo, cond)
    return pred, tgt.detach()


class EDMLoss:
    """EDM denoising loss (Karras et al. 2022, eq. 8 / Table 1): ln sigma ~ N(P_mean, P_std^2),
    weight (sigma^2 + sd^2) / (sigma sd)^2, target the clean x."""

    def __init__(self, P_mean: float = -1.2, P_std: float = 1.2, sigma_data: float = 0.5):
        self.P_mean, self.P_std, self.sigma_data = P_mean, P_std, sigma_data

    def target_decay(self, step: int) -> float | None:
        return None

    def __call__(self, model, x, cond=None, *, step: int = 0, target=None) -> torch.Tensor:
        sigma = (torch.randn(x.shape[0], device=x.device) * self.P_std + self.P_mean).exp()
        weight = (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2
        denoised = model(x + _bcast(sigma, x) * torch.randn_like(x), sigma, cond)
        return weight * _l2(denoised, x)


class _ConsistencyBase:
    def __init__(self, distance: str, huber_c: float, sigma_min: float, sigma_max: float):
        if distance not in ("l2", "pseudo_huber"):
            raise ValueError(f"unknown distance {distance!r}")
        self.distance, self.huber_c = distance, huber_c
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def dist(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.distance == "l2":
            return _l2(a, b)
        return pseudo_huber(a, b, self.huber_c * math.sqrt(a[0].numel()))

    @staticmethod
    def _pair(model, target_fn, x_hi, s_hi, x_lo, s_lo, cond):
        return consistency_pair(model, target_fn, x_hi, s_hi, x_lo, s_lo, cond)


class GuidedDenoiser:
    """Classifier-free guidance (Ho & Salimans 2022) of a class-conditional denoiser:
    D_w(x, sigma, c) = D(x, sigma, null) + w (D(x, sigma, c) - D(x, sigma, null)), both halves in
    one batched call. Distilling the guided teacher's ODE puts the guidance into the student
    (guided distillation: Meng et al. 2023; LCM, Luo et al. 2023), so sampling stays at one call
    per step. Rows whose condition is already null get D itself."""

    def __init__(self, denoiser, scale: float):
        if not denoiser.config.cond_sizes:
            raise ValueError("guidance needs a class-conditional teacher (trained with net.label_dropout > 0)")
        self.denoiser, self.scale = denoiser, float(scale)

    def __call__(self, x: torch.Tensor, sigma, cond: torch.Tensor | None = None) -> torch.Tensor:
        if cond is None:
            return self.denoiser(x, sigma, None)
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1).expand(x.shape[0])
        null = self.denoiser.null_cond(x.shape[0], x.device)
        both = self.denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]), torch.cat([cond, null]))
        d_cond, d_null = both.chunk(2)
        return d_null + self.scale * (d_cond - d_null)


class ConsistencyDistillationLoss(_ConsistencyBase):
    """Consistency distillation (Song et al. 2023, Algorithm 2): adjacent levels s_hi > s_lo of an
    N-level Karras grid; one Heun step of the frozen teacher's PF-ODE gives x_lo from x_hi; loss
    d(f_theta(x_hi, s_hi), f_target(x_lo, s_lo)) with the target an EMA (mu) of the student."""

    def __init__(
        self,
        teacher,
        N: int = 50,
        mu: float = 0.95,
        rho: float = 7.0,
        distance: str = "pseudo_huber",
        huber_c: float = 0.00054,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
    ):
        super().__init__(distance, huber_c, sigma_min, sigma_max)
        self.teacher = teacher
        self.mu = mu
        self.grid = karras_sigmas(N, sigma_min, sigma_max, rho).float()

    def target_decay(self, step: int) -> float | None:
        return self.mu

    def __call__(self, model, x, cond=None, *, step: int = 0, target=None) -> torch.Tensor:
        target = model if target is None else target
        grid = self.grid.to(x.device)
        n = torch.randint(0, len(grid) - 1, (x.shape[0],), device=x.device)
        s_hi, s_lo = grid[n], grid[n + 1]
        x_hi = x + _bcast(s_hi, x) * torch.randn_like(x)
        with torch.no_grad():
            x_lo = heun_step(self.teacher, x_hi, s_hi, s_lo, cond)
        pred, tgt = self._pair(model, target, x_hi, s_hi, x_lo, s_lo, cond)
        return self.dist(pred, tgt)


class ConsistencyTrainingLoss(_ConsistencyBase):
    """Improved consistency training, iCT (Song & Dhariwal 2023): no teacher; target is the
    stop-gradient student (mu = 0); N(k) levels by the curriculum (eq. 5), pairs drawn by the
    discretised lognormal (eq. 6), weight 1 / (s_hi - s_lo), pseudo-Huber on the whole sample,
    the same z for both noise levels."""

    def __init__(
        self,
        total_steps: int,
        s0: int = 10,
        s1: int = 1280,
        P_mean: float = -1.1,
        P_std: float = 2.0,
        rho: float = 7.0,
        distance: str = "pseudo_huber",
        huber_c: float = 0.00054,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
    ):
        super().__init__(distance, huber_c, sigma_min, sigma_max)
        self.total_steps, self.s0, self.s1 = total_steps, s0, s1
        self.P_mean, self.P_std, self.rho = P_mean, P_std, rho

    def target_decay(self, step: int) -> float | None:
        return None

    def levels(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ascending grid of N(step) levels and the probability of each adjacent pair."""
        N = ict_num_levels(step, self.total_steps, self.s0, self.s1)
        grid = karras_sigmas(N, self.sigma_min, self.sigma_max, self.rho).flip(0)
        return grid, lognormal_level_probs(grid, self.P_mean, self.P_std)

    def __call__(self, model, x, cond=None, *, step: int = 0, target=None) -> torch.Tensor:
        grid, probs = self.levels(step)
        i = torch.multinomial(probs.float(), x.shape[0], replacement=True).to(x.device)
        grid = grid.float().to(x.device)
        s_lo, s_hi = grid[i], grid[i + 1]
        z = torch.randn_like(x)
        pred, tgt = self._pair(
            model, target or model, x + _bcast(s_hi, x) * z, s_hi, x + _bcast(s_lo, x) * z, s_lo, cond
        )
        return self.dist(pred, tgt) / (s_hi - s_lo)


class EasyConsistencyTuningLoss(_ConsistencyBase):
    """Easy consistency tuning, ECT (Geng et al. 2024): start from the EDM teacher's weights (or
    a consistency model's, to tune it on new data); t ~ lognormal(P_mean, P_std), r =
    ect_gap_r(t, stage) with the stage advancing every ``stage_steps`` steps from ``start_stage``;
    shared noise for x_t and x_r; target = stop-gradient f(x_r, r) from the same network, or the
    clean x where r = 0 (plain denoising); loss = d / (t - r)."""

    def __init__(
        self,
        q: float = 2.0,
        stage_steps: int = 1000,
        start_stage: int = 0,
        P_mean: float = -1.1,
        P_std: float = 2.0,
        distance: str = "pseudo_huber",
        huber_c: float = 0.00054,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
    ):
        super().__init__(distance, huber_c, sigma_min, sigma_max)
        self.q, self.stage_steps, self.P_mean, self.P_std = q, stage_steps, P_mean, P_std
        self.start_stage = start_stage

    def target_decay(self, step: int) -> float | None:
        return None

    def __call__(self, model, x, cond=None, *, step: int = 0, target=None) -> torch.Tensor:
        t = (torch.randn(x.shape[0], device=x.device) * self.P_std + self.P_mean).exp()
        t = t.clamp(self.sigma_min * 1.001, self.sigma_max)
        gap = ect_gap(t, self.start_stage + step // self.stage_steps, self.q)
        r = (t - gap).clamp_min(0.0)
        z = torch.randn_like(x)
        # Where r falls below sigma_min the target is the data itself: f(x, 0) = x.
        r_eval = r.clamp_min(self.sigma_min)
        pred, tgt = self._pair(model, target or model, x + _bcast(t, x) * z, t, x + _bcast(r_eval, x) * z, r_eval, cond)
        tgt = torch.where(_bcast(r <= self.sigma_min, x), x, tgt)
        # Divide by the gap itself (never 0, schedules.ect_gap), not by t - r (0 in float32 once
        # the gap is below t's last bit). Where r <= sigma_min the target is x at time 0: gap t.
        return self.dist(pred, tgt) / torch.where(r <= self.sigma_min, t, gap)


def _edm(cfg: ObjectiveConfig, common: dict, sigma_data: float, total_steps: int, teacher):
    return EDMLoss(cfg.edm.P_mean, cfg.edm.P_std, sigma_data)


def _cd(cfg: ObjectiveConfig, common: dict, sigma_data: float, total_steps: int, teacher):
    if teacher is None:
        raise ValueError("consistency distillation needs a teacher model (set teacher = PATH)")
    c = cfg.cd
    if c.guidance != 1.0:
        teacher = GuidedDenoiser(teacher, c.guidance)
    return ConsistencyDistillationLoss(teacher, c.N, c.mu, c.rho, **common)


def _ict(cfg: ObjectiveConfig, common: dict, sigma_data: float, total_steps: int, teacher):
    c = cfg.ict
    return ConsistencyTrainingLoss(total_steps, c.s0, c.s1, c.P_mean, c.P_std, c.rho, **common)


def _ect(cfg: ObjectiveConfig, common: dict, sigma_data: float, total_steps: int, teacher):
    c = cfg.ect
    return EasyConsistencyTuningLoss(c.q, c.stage_steps, c.start_stage, c.P_mean, c.P_std, **common)


# objective.kind -> builder(config, shared consistency settings, sigma_data, curriculum length,
# teacher). A new objective is its loss class, its [objective.<kind>] section and one line here.
OBJECTIVES = {"edm": _edm, "cd": _cd, "ict": _ict, "ect": _ect}


def build_objective(
    cfg: ObjectiveConfig, *, sigma_data: float, sigma_min: float, sigma_max: float, total_steps: int, teacher=None
):
    """The loss object for ``cfg.kind``; CD needs the frozen ``teacher`` (an EDM Denoiser)."""
    if cfg.kind not in OBJECTIVES:
        raise ValueError(f"unknown objective {cfg.kind!r}: one of {', '.join(OBJECTIVES)}")
    common = dict(distance=cfg.distance, huber_c=cfg.huber_c, sigma_min=sigma_min, sigma_max=sigma_max)
    return OBJECTIVES[cfg.kind](cfg, common, sigma_data, total_steps, teacher)
