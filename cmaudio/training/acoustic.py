"""The acoustic trainer: ``run(config, run_dir)`` trains any objective (EDM, CD, iCT, ECT).

It owns what every objective shares: data order (DistributedSampler semantics, resumable),
optimiser, warm-up, gradient accumulation and clipping, the evaluation EMA, the CD target EMA,
bf16 autocast on CUDA, DDP under torchrun (gloo on CPU, NCCL on GPU) and periodic samples; the
run folder, resume, the non-finite guard, progress and logs come from harness.py. It knows
nothing of noise levels: the objective draws them.

Run directory (docs/architecture.md, section 4):
    config.json  log.jsonl  samples/  model.safetensors  model-<step>.safetensors  state.pt
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import math
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from ..audio import normalise
from ..checkpoint import save_model, save_state
from ..config import ModelConfig, TrainConfig, to_dict
from ..errors import TrainingError
from ..objectives import build_objective
from ..precond import Denoiser
from ..schedules import ict_num_levels
from .distributed import Batches, Dist
from .harness import RunFolder, check_resumable, ema_update, get_rng_state, run_steps, set_rng_state
from .samples import default_sigmas, write_samples
from .start import (
    LABEL_TABLE,
    extend_classes,
    extended_state,
    load_init,
    load_teacher,
    match_new_labels,
    remap_labels,
)

__all__ = ["RunResult", "drop_labels", "run"]

# Fields that may change between a run and its resumption without changing the optimisation.
RESUMABLE_CHANGES = ("steps", "log_every", "sample_every", "save_every", "snapshot_every")


@dataclass
class RunResult:
    steps: int
    seconds: float
    examples_per_s: float
    bad_steps: int
    model_path: str


def drop_labels(cond: torch.Tensor, null: torch.Tensor, label_dropout: float, factor_dropout: float) -> torch.Tensor:
    """Classifier-free-guidance label dropout (Ho & Salimans 2022) on cond [B, K]: each row
    becomes all-null (``null`` [B, K]) with probability label_dropout; with K > 1 factors, each
    entry is also nulled alone with probability factor_dropout, so partial labels ("60", any
    family) are trained conditions too. Draws from the global torch generator."""
    if cond.shape[1] == 0:
        return cond
    if label_dropout > 0:
        drop = torch.rand(cond.shape[0], 1, device=cond.device) < label_dropout
        cond = torch.where(drop, null, cond)
    if factor_dropout > 0 and cond.shape[1] > 1:
        cond = torch.where(torch.rand(cond.shape, device=cond.device) < factor_dropout, null, cond)
    return cond


def eval_ema_decay(cfg: TrainConfig, step: int) -> float:
    """EDM's EMA: a half-life in examples, capped at a fraction of the examples seen so far
    (Karras et al. 2022, Appendix F.3), so early EMAs are not dominated by the initial weights."""
    nimg = (step + 1) * cfg.run.batch_size
    half = cfg.optim.ema_halflife_kimg * 1000
    if cfg.optim.ema_warmup_ratio > 0:
        half = min(half, nimg * cfg.optim.ema_warmup_ratio)
    return 0.5 ** (cfg.run.batch_size / max(half, 1e-8))


def learning_rate(cfg: TrainConfig, step: int) -> float:
    warm = cfg.optim.warmup_steps
    return cfg.optim.lr * min(1.0, (step + 1) / warm) if warm > 0 else cfg.optim.lr


OPTIMIZERS = {"adamw": torch.optim.AdamW, "radam": torch.optim.RAdam}


def make_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimiser; with optim.label_lr_scale != 1 the label tables are a second parameter
    group whose lr is that multiple (its ``lr_scale``), for labels learned from scratch."""
    o = cfg.optim
    kwargs = dict(lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay)
    if o.name == "radam":
        kwargs["decoupled_weight_decay"] = True
    params = list(model.parameters())
    if o.label_lr_scale != 1.0:
        named = list(model.named_parameters())
        tables = [p for n, p in named if LABEL_TABLE.search(n)]
        others = [p for n, p in named if not LABEL_TABLE.search(n)]
        params = [{"params": others}, {"params": tables, "lr_scale": o.label_lr_scale}]
    return OPTIMIZERS[o.name](params, **kwargs)


def load_data(cfg: TrainConfig, d: Dist, classes):
    from ..data import AudioFolder

    if not cfg.data.root:
        raise TrainingError("data.root is not set (use --set data.root=DIR)")
    kwargs = dict(
        mel=cfg.mel,
        seconds=cfg.data.seconds,
        split=cfg.data.split,
        layout=cfg.data.layout,
        manifest=cfg.data.manifest,
        label_fields=cfg.data.label_fields,
        classes=classes,
        cache=cfg.data.cache,
    )
    # Rank 0 builds the feature cache first; the others then read it.
    if d.main:
        ds = AudioFolder(cfg.data.root, progress=True, **kwargs)
    d.barrier()
    if not d.main:
        ds = AudioFolder(cfg.data.root, progress=False, **kwargs)
    return ds


def model_config(cfg: TrainConfig, ds, teacher_cfg: ModelConfig | None, classes=None) -> ModelConfig:
    if teacher_cfg is not None:
        # A student keeps the teacher's front end, statistics, classes and architecture (it starts
        # from the teacher's weights); only the parametrisation and dropout are its own. A run
        # from ``init`` likewise, its label tables extended by the data's new labels (``classes``).
        net = dataclasses.replace(
            teacher_cfg.net,
            dropout=cfg.net.dropout,
            label_dropout=cfg.net.label_dropout,
            factor_dropout=cfg.net.factor_dropout,
        )
        return dataclasses.replace(
            teacher_cfg,
            net=net,
            precond=cfg.precond,
            frames=ds.mels.shape[-1],
            classes=teacher_cfg.classes if classes is None else classes,
            sigmas=default_sigmas(cfg.precond.sigma_max),
        )
    return ModelConfig(
        mel=cfg.mel,
        stats=ds.stats(),
        net=cfg.net,
        precond=cfg.precond,
        frames=ds.mels.shape[-1],
        cond_fields=tuple(ds.cond_fields),
        classes=tuple(tuple(c) for c in ds.classes),
        sigmas={} if cfg.precond.kind == "edm" else default_sigmas(cfg.precond.sigma_max),
    )


def curriculum(cfg: TrainConfig, step: int, total_steps: int) -> dict:
    """The objective's schedule position at ``step``, for the log."""
    o = cfg.objective
    if o.kind == "ict":
        return {"N": ict_num_levels(step, total_steps, o.ict.s0, o.ict.s1)}
    if o.kind == "ect":
        return {"stage": o.ect.start_stage + step // o.ect.stage_steps}
    if o.kind == "cd":
        return {"N": o.cd.N}
    return {}


def weights_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for v in model.state_dict().values():
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class AcousticTrainer:
    """The network, its EMA (and CD target), the optimiser, the data order and one step at a time."""

    def __init__(self, cfg: TrainConfig, folder: RunFolder, d: Dist):
        if cfg.run.batch_size % (d.world * cfg.run.grad_accum):
            raise TrainingError(
                f"run.batch_size ({cfg.run.batch_size}) must be divisible by processes x grad_accum "
                f"({d.world} x {cfg.run.grad_accum})"
            )
        self.cfg, self.folder, self.d, self.device = cfg, folder, d, d.device
        self.teacher = load_teacher(cfg, self.device)
        self.init = load_init(cfg, self.device)
        self.build_data()
        self.build_model(folder.saved_state())
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else None

    def build_data(self) -> None:
        cfg, teacher, init = self.cfg, self.teacher, self.init
        if init is not None:  # the data's own labels, then the model's tables extended by them
            ds = load_data(cfg, self.d, None)
            if init.config.cond_fields != tuple(ds.cond_fields):
                raise TrainingError(
                    f"{cfg.init}: conditioned on {init.config.cond_fields}, the data on {ds.cond_fields}"
                )
            classes = extend_classes(init.config.classes, ds.classes)
            self.mcfg = model_config(cfg, ds, init.config, classes)
            labels = remap_labels(ds.labels, ds.classes, classes)
        else:
            ds = load_data(cfg, self.d, teacher.config.classes if teacher else None)
            self.mcfg = model_config(cfg, ds, teacher.config if teacher else None)
            if teacher is not None and tuple(ds.cond_fields) != self.mcfg.cond_fields:
                raise TrainingError(
                    f"{cfg.teacher}: the teacher is conditioned on {self.mcfg.cond_fields}, data on {ds.cond_fields}"
                )
            labels = ds.labels
        stats = self.mcfg.stats
        self.mels = normalise(ds.mels, stats).to(self.device)
        self.labels = labels.to(self.device)
        self.gain_scale = stats.sigma_data / stats.std * math.log(10) / 20  # dB -> normalised log-mel units

    def build_model(self, st: dict | None) -> None:
        cfg, d = self.cfg, self.d
        # Identical initial weights on every rank: same seed before building (DDP also broadcasts).
        torch.manual_seed(cfg.run.seed)
        self.model = Denoiser(self.mcfg).to(self.device)
        start = self.init or self.teacher
        if start is not None:
            self.model.load_state_dict(extended_state(start.model.state_dict(), self.model))
        if self.init is not None and st is None and self.mcfg.classes != self.init.config.classes:
            found = match_new_labels(self.model, self.mels, self.labels, self.init.config.classes, self.mcfg.classes)
            if d.main:
                shown = ", ".join(f"{new} <- {old}" for new, old in found.items())
                print(f"new labels start from the source labels that denoise their clips best: {shown}", flush=True)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        # The iCT curriculum's length is fixed when a run starts and kept in its state: run.steps
        # may change on resume (a longer run), and N(k) computed from the new total would move
        # backwards. States written before this key existed recorded the total as run.steps.
        self.curriculum_steps = int(st.get("curriculum_steps", st["config"]["run"]["steps"])) if st else cfg.run.steps
        p = cfg.precond
        self.objective = build_objective(
            cfg.objective,
            sigma_data=p.sigma_data,
            sigma_min=p.sigma_min,
            sigma_max=p.sigma_max,
            total_steps=self.curriculum_steps,
            teacher=self.teacher.model if self.teacher else None,
        )
        needs_target = self.objective.target_decay(0) is not None
        self.target = copy.deepcopy(self.model).eval().requires_grad_(False) if needs_target else None
        self.opt = make_optimizer(cfg, self.model)
        self.per_rank = cfg.run.batch_size // d.world
        self.batches = Batches(len(self.mels), self.per_rank, cfg.run.seed, d.rank, d.world)
        self.step, self.bad_total, self.elapsed_before = 0, 0, 0.0
        if st is not None:
            self.load(st)
        else:
            # Different noise per rank, reproducible from the recorded seed.
            torch.manual_seed(cfg.run.seed + 1 + d.rank)
            random.seed(cfg.run.seed + 1 + d.rank)
        self.ddp = self.model
        if d.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)

    def load(self, st: dict) -> None:
        check_resumable(st["config"], self.cfg, self.folder.state_path, RESUMABLE_CHANGES)
        self.model.load_state_dict(st["model"])
        self.ema.load_state_dict(st["ema"])
        if self.target is not None:
            self.target.load_state_dict(st["target"])
        self.opt.load_state_dict(st["optimizer"])
        self.step, self.bad_total = int(st["step"]), int(st["bad_total"])
        self.elapsed_before = float(st.get("elapsed", 0.0))
        self.batches.epoch, self.batches.pos = int(st["epoch"]), int(st["pos"][self.d.rank])
        if len(st["rng"]) != self.d.world:
            raise TrainingError(
                f"{self.folder.state_path}: saved with {len(st['rng'])} processes, resumed with {self.d.world}"
            )
        set_rng_state(st["rng"][self.d.rank])

    def postfix(self, rec: dict) -> dict[str, str]:
        return {"loss": f"{rec['loss']:.4g}"}

    def summarise(self, window: list[dict], seconds: float, elapsed: float) -> dict:
        last = window[-1]
        return {
            "loss": sum(r["loss"] for r in window) / len(window),
            "grad_norm": last["grad_norm"],
            "lr": last["lr"],
            "examples_per_s": len(window) * self.cfg.run.batch_size / seconds,
            "bad_steps": self.bad_total,
            "elapsed_s": round(self.elapsed_before + elapsed, 2),
            **curriculum(self.cfg, self.step, self.curriculum_steps),
        }

    def periodic(self, step: int) -> None:
        if self.d.main:
            samples = self.folder.path / "samples"
            write_samples(self.ema, self.mcfg, samples, step, self.cfg.run.sample_steps, self.device)

    def save(self, elapsed: float, snapshot: bool = False, final: bool = False) -> None:
        """model.safetensors (EMA), an optional snapshot and state.pt; collectives on every rank."""
        cfg, d, step = self.cfg, self.d, self.step
        rng_all, pos_all = d.gather(get_rng_state()), d.gather(self.batches.pos)
        digests = d.gather(weights_digest(self.model))  # proves DDP ranks hold identical weights
        if not d.main:
            return
        run_dir = self.folder.path
        extra = {"name": cfg.name, "objective": cfg.objective.kind}
        save_model(run_dir / "model.safetensors", self.ema, self.mcfg, step, extra=extra)
        if snapshot or (cfg.run.snapshot_every and final):
            save_model(run_dir / f"model-{step:07d}.safetensors", self.ema, self.mcfg, step)
        save_state(
            self.folder.state_path,
            {
                "format": "cmaudio-state",
                "config": to_dict(cfg),
                "model_config": to_dict(self.mcfg),
                "step": step,
                "curriculum_steps": self.curriculum_steps,
                "model": self.model.state_dict(),
                "ema": self.ema.state_dict(),
                "target": self.target.state_dict() if self.target is not None else {},
                "optimizer": self.opt.state_dict(),
                "epoch": self.batches.epoch,
                "pos": pos_all,
                "rng": rng_all,
                "bad_total": self.bad_total,
                "elapsed": self.elapsed_before + elapsed,
                "rank_digests": digests,
            },
        )

    def batch(self, sl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Clean mels with random gain and labels with CFG dropout for the indexes ``sl``."""
        cfg, device = self.cfg, self.device
        x, cond = self.mels[sl], self.labels[sl]
        if cfg.data.gain_db > 0:
            x = x + (torch.rand(x.shape[0], 1, 1, device=device) * 2 - 1) * cfg.data.gain_db * self.gain_scale
        if cfg.net.label_dropout > 0 or cfg.net.factor_dropout > 0:
            null = self.model.null_cond(cond.shape[0], device)
            cond = drop_labels(cond, null, cfg.net.label_dropout, cfg.net.factor_dropout)
        return x, cond

    def train_step(self) -> dict | None:
        """One optimiser step over grad_accum micro-batches; None when it was skipped (a non-finite
        loss or gradient on any rank)."""
        cfg, d = self.cfg, self.d
        for g in self.opt.param_groups:
            g["lr"] = learning_rate(cfg, self.step) * g.get("lr_scale", 1.0)
        idx = self.batches.next()
        self.opt.zero_grad(set_to_none=True)
        micro, accum = self.per_rank // cfg.run.grad_accum, cfg.run.grad_accum
        loss_sum, finite = 0.0, True
        for a in range(accum):
            x, cond = self.batch(idx[a * micro : (a + 1) * micro].to(self.device))
            sync = a == accum - 1 or d.world == 1
            with self.ddp.no_sync() if not sync else contextlib.nullcontext():
                with self.autocast or contextlib.nullcontext():
                    target = self.target if self.target is not None else self.model
                    per_example = self.objective(
                        self.ddp, x, cond if cond.shape[1] > 0 else None, step=self.step, target=target
                    )
                loss = per_example.float().mean() / accum
                finite = finite and bool(torch.isfinite(loss))
                loss.backward()
            loss_sum += float(loss.detach())
        clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        if d.any(not (finite and bool(torch.isfinite(grad_norm)))):
            self.opt.zero_grad(set_to_none=True)  # never let a NaN reach the weights or a file
            return None
        self.opt.step()
        if not bool(torch.stack([p.isfinite().all() for p in self.model.parameters()]).all()):
            raise TrainingError(
                f"weights became non-finite at step {self.step}; nothing was saved after step "
                f"{self.step - self.step % cfg.run.save_every}. Lower optim.lr."
            )
        ema_update(self.ema, self.model, eval_ema_decay(cfg, self.step))
        if self.target is not None:
            ema_update(self.target, self.model, self.objective.target_decay(self.step))
        self.step += 1
        return {"loss": d.mean(loss_sum), "grad_norm": float(grad_norm), "lr": self.opt.param_groups[0]["lr"]}


def run(cfg: TrainConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True) -> RunResult:
    """Train ``cfg`` into ``run_dir``; with ``resume`` continue exactly from ``run_dir/state.pt``."""
    d = Dist(cfg.run.device)
    try:
        result = fit(cfg, RunFolder(run_dir, resume, d.main), d, progress)
    except BaseException:
        d.close(clean=False)
        raise
    d.close(clean=True)
    return result


def fit(cfg: TrainConfig, folder: RunFolder, d: Dist, progress: bool) -> RunResult:
    """Build the trainer and run the harness's loop; the summary line at the end."""
    trainer = AcousticTrainer(cfg, folder, d)
    folder.open(cfg, trainer.step)
    trainer.model.train()
    last_good = folder.path / "model.safetensors"
    bar = run_steps(trainer, cfg.run, folder, name=cfg.name, show=d.main and progress, last_good=last_good)
    done, seconds = trainer.step - bar.start_step, bar.seconds
    eps = done * cfg.run.batch_size / max(seconds, 1e-9)
    result = RunResult(trainer.step, seconds, eps, trainer.bad_total, str(last_good))
    if d.main:
        bar.close(
            f"trained {done} steps ({cfg.objective.kind}) in {seconds:.1f} s, {eps:.0f} examples/s on "
            f"{d.world} x {trainer.device.type}; {trainer.bad_total} skipped steps; model: {result.model_path}"
        )
    return result
