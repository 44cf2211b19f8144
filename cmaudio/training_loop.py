"""The training loop: ``run(config, run_dir)`` trains any objective (EDM, CD, iCT, ECT).

It owns what every objective shares: data order (DistributedSampler semantics, resumable),
optimiser, warm-up, gradient accumulation and clipping, the evaluation EMA, the CD target EMA,
bf16 autocast on CUDA, DDP under torchrun (gloo on CPU, NCCL on GPU), a non-finite-loss guard,
logging, periodic samples and atomic checkpoints. It knows nothing of noise levels: the objective
draws them.

Run directory (docs/architecture.md, section 4):
    config.json  log.jsonl  samples/  model.safetensors  model-<step>.safetensors  state.pt
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from .audio import MelStats, normalise
from .checkpoint import CheckpointError, load_model, load_state, save_model, save_state
from .config import ConfigError, ModelConfig, TrainConfig, from_dict, to_dict
from .errors import TrainingError
from .objectives import build_objective
from .precond import Denoiser

__all__ = [
    "check_resumable",
    "ema_update",
    "truncate_log",
    "run",
    "TrainingError",
    "RunResult",
    "default_sigmas",
    "drop_labels",
    "resolve_device",
]

log = logging.getLogger("cmaudio")

# Fields that may change between a run and its resumption without changing the optimisation.
_RESUMABLE_CHANGES = {"steps", "log_every", "sample_every", "save_every", "snapshot_every"}


@dataclass
class RunResult:
    steps: int
    seconds: float
    examples_per_s: float
    bad_steps: int
    model_path: str


def default_sigmas(sigma_max: float) -> dict[str, list[float]]:
    """Starting intermediate sigmas per step count before a search tunes them (image CMs landed
    near 0.8 for two steps; evaluate --search-sigmas replaces these)."""
    return {"1": [sigma_max], "2": [sigma_max, 0.8], "4": [sigma_max, 2.0, 0.8, 0.3]}


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise TrainingError("device 'cuda' requested but CUDA is not available")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


class _Dist:
    """Rank, world size and the few collectives the loop needs; a no-op in one process."""

    def __init__(self, device_name: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = resolve_device(device_name, local)
        if self.world > 1 and not dist.is_initialized():
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.main = self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any rank (keeps skip decisions in lockstep)."""
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t)
        return bool(t.item() > 0)

    def mean(self, value: float) -> float:
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item()) / self.world

    def gather(self, obj):
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def close(self, clean: bool) -> None:
        if self.world > 1 and dist.is_initialized():
            # Free whatever still refers to the group (a DDP reducer left in a reference cycle,
            # if any) while the group exists. A rank once aborted at exit ("terminate called
            # without an active exception") in a CI run on a loaded CPU; that was not reproduced
            # in six later runs, so this is a defensive guess, not a verified fix.
            gc.collect()
            if clean:  # tearing down gloo while a peer is still in a collective aborts that peer
                dist.barrier()
            dist.destroy_process_group()


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach(), 1 - decay)


def _eval_ema_decay(cfg: TrainConfig, step: int) -> float:
    """EDM's EMA: a half-life in examples, capped at a fraction of the examples seen so far
    (Karras et al. 2022, Appendix F.3), so early EMAs are not dominated by the initial weights."""
    nimg = (step + 1) * cfg.run.batch_size
    half = cfg.optim.ema_halflife_kimg * 1000
    if cfg.optim.ema_warmup_ratio > 0:
        half = min(half, nimg * cfg.optim.ema_warmup_ratio)
    return 0.5 ** (cfg.run.batch_size / max(half, 1e-8))


def _lr(cfg: TrainConfig, step: int) -> float:
    warm = cfg.optim.warmup_steps
    return cfg.optim.lr * min(1.0, (step + 1) / warm) if warm > 0 else cfg.optim.lr


def _make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    o = cfg.optim
    cls = {"adamw": torch.optim.AdamW, "radam": torch.optim.RAdam}[o.name]
    kwargs = dict(lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay)
    if o.name == "radam":
        kwargs["decoupled_weight_decay"] = True
    return cls(params, **kwargs)


def _load_data(cfg: TrainConfig, d: _Dist, classes):
    from .data import AudioFolder

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


class _Batches:
    """Resumable data order: a seeded permutation per epoch, sharded by rank like
    DistributedSampler (padding by wrap-around so every rank sees the same number of batches)."""

    def __init__(self, n: int, per_rank: int, seed: int, rank: int, world: int):
        if n < 1:
            raise TrainingError("the training set is empty")
        self.n, self.per_rank, self.seed, self.rank, self.world = n, per_rank, seed, rank, world
        self.epoch, self.pos = 0, 0
        self._cached, self._cached_epoch = torch.empty(0, dtype=torch.long), -1

    def _order(self) -> torch.Tensor:
        """This rank's indices for the current epoch, computed once per epoch (not per step)."""
        if self._cached_epoch != self.epoch:
            sampler = torch.utils.data.DistributedSampler(
                range(self.n), num_replicas=self.world, rank=self.rank, shuffle=True, seed=self.seed, drop_last=False
            )
            sampler.set_epoch(self.epoch)
            self._cached, self._cached_epoch = torch.tensor(list(iter(sampler)), dtype=torch.long), self.epoch
        return self._cached

    def next(self) -> torch.Tensor:
        out = []
        while len(out) < self.per_rank:
            order = self._order()
            take = order[self.pos : self.pos + self.per_rank - len(out)]
            out.extend(take.tolist())
            self.pos += len(take)
            if self.pos >= len(order):
                self.epoch, self.pos = self.epoch + 1, 0
        return torch.tensor(out, dtype=torch.long)


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


def _model_config(cfg: TrainConfig, ds, teacher_cfg: ModelConfig | None) -> ModelConfig:
    if teacher_cfg is not None:
        # A student keeps the teacher's front end, statistics, classes and architecture (it starts
        # from the teacher's weights); only the parametrisation and dropout are its own.
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


def _load_teacher(cfg: TrainConfig, device: torch.device):
    if cfg.objective.kind not in ("cd", "ect"):
        return None
    if not cfg.teacher:
        raise TrainingError(f"objective {cfg.objective.kind!r} needs a teacher model: set teacher = PATH")
    try:
        mf = load_model(cfg.teacher, device=device)
    except CheckpointError as exc:
        raise TrainingError(str(exc)) from None
    if mf.config.precond.kind != "edm":
        raise TrainingError(f"{cfg.teacher}: the teacher must be an EDM model (precond.kind = 'edm')")
    if mf.config.mel != cfg.mel:
        raise TrainingError(f"{cfg.teacher}: the teacher's mel config differs from this run's [mel]")
    for p in mf.model.parameters():
        p.requires_grad_(False)
    return mf


def check_resumable(saved: dict, cfg, path: Path, resumable: set[str] = _RESUMABLE_CHANGES) -> None:
    """Refuse to resume a run under a config that changes the optimisation: every section of the
    resolved config must equal the saved one, except the ``[run]`` fields named in ``resumable``
    (length, logging and saving frequencies)."""
    now = to_dict(cfg)
    for section in now:
        a, b = saved.get(section), now[section]
        if section == "run":
            a = {k: v for k, v in (a or {}).items() if k not in resumable}
            b = {k: v for k, v in b.items() if k not in resumable}
        if a != b:
            raise TrainingError(
                f"{path}: cannot resume with a different [{section}] config than the run was started with"
            )


def run(cfg: TrainConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True) -> RunResult:
    """Train ``cfg`` into ``run_dir``; with ``resume`` continue exactly from ``run_dir/state.pt``."""
    run_dir = Path(run_dir)
    d = _Dist(cfg.run.device)
    try:
        result = _run(cfg, run_dir, d, resume, progress)
    except BaseException:
        d.close(clean=False)
        raise
    d.close(clean=True)
    return result


def _run(cfg: TrainConfig, run_dir: Path, d: _Dist, resume: bool, progress: bool) -> RunResult:
    state_path = run_dir / "state.pt"
    if not resume and state_path.exists():
        raise TrainingError(f"{run_dir} already holds a run: pass --resume to continue it, or choose another --out")
    if cfg.run.batch_size % (d.world * cfg.run.grad_accum):
        raise TrainingError(
            f"run.batch_size ({cfg.run.batch_size}) must be divisible by processes x grad_accum "
            f"({d.world} x {cfg.run.grad_accum})"
        )
    if d.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "samples").mkdir(exist_ok=True)
    device = d.device

    teacher = _load_teacher(cfg, device)
    ds = _load_data(cfg, d, teacher.config.classes if teacher else None)
    mcfg = _model_config(cfg, ds, teacher.config if teacher else None)
    if teacher is not None and (tuple(ds.cond_fields) != mcfg.cond_fields):
        raise TrainingError(
            f"{cfg.teacher}: the teacher is conditioned on {mcfg.cond_fields}, data on {ds.cond_fields}"
        )
    stats: MelStats = mcfg.stats
    mels = normalise(ds.mels, stats).to(device)
    labels = ds.labels.to(device)
    gain_scale = stats.sigma_data / stats.std * math.log(10) / 20  # dB -> normalised log-mel units

    # Identical initial weights on every rank: same seed before building (DDP also broadcasts).
    torch.manual_seed(cfg.run.seed)
    model = Denoiser(mcfg).to(device)
    if teacher is not None:
        model.load_state_dict(teacher.model.state_dict())
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    objective = build_objective(
        cfg.objective,
        sigma_data=cfg.precond.sigma_data,
        sigma_min=cfg.precond.sigma_min,
        sigma_max=cfg.precond.sigma_max,
        total_steps=cfg.run.steps,
        teacher=teacher.model if teacher else None,
    )
    target = copy.deepcopy(model).eval().requires_grad_(False) if objective.target_decay(0) is not None else None
    opt = _make_optimizer(cfg, model.parameters())
    per_rank = cfg.run.batch_size // d.world
    batches = _Batches(len(mels), per_rank, cfg.run.seed, d.rank, d.world)
    step, bad_in_row, bad_total = 0, 0, 0
    elapsed_before = 0.0  # training seconds of the earlier segments of a resumed run

    if resume and state_path.exists():
        try:
            st = load_state(state_path)
        except CheckpointError as exc:
            raise TrainingError(str(exc)) from None
        check_resumable(st["config"], cfg, state_path)
        model.load_state_dict(st["model"])
        ema.load_state_dict(st["ema"])
        if target is not None:
            target.load_state_dict(st["target"])
        opt.load_state_dict(st["optimizer"])
        step, bad_total = int(st["step"]), int(st["bad_total"])
        elapsed_before = float(st.get("elapsed", 0.0))
        batches.epoch, batches.pos = int(st["epoch"]), int(st["pos"][d.rank])
        if len(st["rng"]) != d.world:
            raise TrainingError(f"{state_path}: saved with {len(st['rng'])} processes, resumed with {d.world}")
        _set_rng_state(st["rng"][d.rank])
        if d.main:
            truncate_log(run_dir / "log.jsonl", step)
            for tmp in run_dir.glob(".*.tmp"):  # torn writes of a killed run; the renamed files are whole
                tmp.unlink(missing_ok=True)
            log.info("resuming %s at step %d", run_dir, step)
    else:
        # Different noise per rank, reproducible from the recorded seed.
        torch.manual_seed(cfg.run.seed + 1 + d.rank)
        random.seed(cfg.run.seed + 1 + d.rank)
        if d.main:
            (run_dir / "log.jsonl").unlink(missing_ok=True)

    if d.main:
        (run_dir / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")

    ddp = model
    if d.world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else _null()

    def save(final: bool = False) -> None:
        rng_all = d.gather(_rng_state())
        pos_all = d.gather(batches.pos)
        digests = d.gather(_weights_digest(model))  # proves DDP ranks hold identical weights
        if not d.main:
            return
        save_model(
            run_dir / "model.safetensors", ema, mcfg, step, extra={"name": cfg.name, "objective": cfg.objective.kind}
        )
        if cfg.run.snapshot_every and (step % cfg.run.snapshot_every == 0 or final):
            save_model(run_dir / f"model-{step:07d}.safetensors", ema, mcfg, step)
        save_state(
            state_path,
            {
                "format": "cmaudio-state",
                "config": to_dict(cfg),
                "model_config": to_dict(mcfg),
                "step": step,
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "target": target.state_dict() if target is not None else {},
                "optimizer": opt.state_dict(),
                "epoch": batches.epoch,
                "pos": pos_all,
                "rng": rng_all,
                "bad_total": bad_total,
                "elapsed": elapsed_before + time.perf_counter() - t_start,
                "rank_digests": digests,
            },
        )

    bar = None
    if d.main and progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.run.steps, initial=step, desc=cfg.name, unit="step", dynamic_ncols=True, file=sys.stderr)
    t_start, start_step = time.perf_counter(), step
    window: list[float] = []
    t_window = time.perf_counter()
    micro = per_rank // cfg.run.grad_accum
    model.train()

    while step < cfg.run.steps:
        for g in opt.param_groups:
            g["lr"] = _lr(cfg, step)
        idx = batches.next()
        opt.zero_grad(set_to_none=True)
        loss_sum, finite = 0.0, True
        for a in range(cfg.run.grad_accum):
            sl = idx[a * micro : (a + 1) * micro].to(device)
            x, cond = mels[sl], labels[sl]
            if cfg.data.gain_db > 0:
                x = x + (torch.rand(x.shape[0], 1, 1, device=device) * 2 - 1) * cfg.data.gain_db * gain_scale
            if cfg.net.label_dropout > 0 or cfg.net.factor_dropout > 0:
                null = model.null_cond(cond.shape[0], device)
                cond = drop_labels(cond, null, cfg.net.label_dropout, cfg.net.factor_dropout)
            sync = a == cfg.run.grad_accum - 1 or d.world == 1
            ctx = ddp.no_sync() if (not sync and d.world > 1) else _null()
            with ctx:
                with autocast:
                    per_example = objective(
                        ddp,
                        x,
                        cond if cond.shape[1] > 0 else None,
                        step=step,
                        target=target if target is not None else model,
                    )
                loss = per_example.float().mean() / cfg.run.grad_accum
                finite = finite and bool(torch.isfinite(loss))
                loss.backward()
            loss_sum += float(loss.detach())
        grad_norm = torch.nn.utils.clip_grad_norm_(
            model.parameters(), cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
        )
        finite = finite and bool(torch.isfinite(grad_norm))
        if d.any(not finite):
            # Skip the update everywhere; never let a NaN reach the weights or a saved file.
            bad_in_row, bad_total = bad_in_row + 1, bad_total + 1
            opt.zero_grad(set_to_none=True)
            if bad_in_row >= cfg.run.max_bad_steps:
                if bar:
                    bar.close()
                raise TrainingError(
                    f"loss or gradients were non-finite for {bad_in_row} steps in a row at step {step}; "
                    f"stopped (last good checkpoint: {run_dir / 'model.safetensors'}). "
                    "Lower optim.lr or check the data."
                )
            continue
        bad_in_row = 0
        opt.step()
        if not bool(torch.stack([p.isfinite().all() for p in model.parameters()]).all()):
            raise TrainingError(
                f"weights became non-finite at step {step}; nothing was saved after step "
                f"{step - step % cfg.run.save_every}. Lower optim.lr."
            )
        ema_update(ema, model, _eval_ema_decay(cfg, step))
        if target is not None:
            ema_update(target, model, objective.target_decay(step))
        step += 1
        window.append(d.mean(loss_sum))
        if bar:
            bar.update(1)
            bar.set_postfix(loss=f"{window[-1]:.4g}")
        if step % cfg.run.log_every == 0 or step == cfg.run.steps:
            now = time.perf_counter()
            rec = {
                "step": step,
                "loss": sum(window) / len(window),
                "grad_norm": float(grad_norm),
                "lr": opt.param_groups[0]["lr"],
                "examples_per_s": len(window) * cfg.run.batch_size / (now - t_window),
                "bad_steps": bad_total,
                "elapsed_s": round(elapsed_before + now - t_start, 2),
                **_curriculum(cfg, step),
            }
            window, t_window = [], now
            if d.main:
                with open(run_dir / "log.jsonl", "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
        snap = cfg.run.snapshot_every and step % cfg.run.snapshot_every == 0
        if step % cfg.run.save_every == 0 or step == cfg.run.steps or snap:
            save(final=step == cfg.run.steps)
        if d.main and cfg.run.sample_every and (step % cfg.run.sample_every == 0 or step == cfg.run.steps):
            _write_samples(ema, mcfg, run_dir / "samples", step, cfg.run.sample_steps, device)
    if bar:
        bar.close()
    seconds = time.perf_counter() - t_start
    done = step - start_step
    eps = done * cfg.run.batch_size / max(seconds, 1e-9)
    result = RunResult(step, seconds, eps, bad_total, str(run_dir / "model.safetensors"))
    if d.main:
        print(
            f"trained {done} steps ({cfg.objective.kind}) in {seconds:.1f} s, {eps:.0f} examples/s on "
            f"{d.world} x {device.type}; {bad_total} skipped steps; model: {result.model_path}",
            file=sys.stderr,
        )
    return result


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _curriculum(cfg: TrainConfig, step: int) -> dict:
    from .schedules import ict_num_levels

    if cfg.objective.kind == "ict":
        return {"N": ict_num_levels(step, cfg.run.steps, cfg.objective.s0, cfg.objective.s1)}
    if cfg.objective.kind == "ect":
        return {"stage": step // cfg.objective.ect_stage_steps}
    if cfg.objective.kind == "cd":
        return {"N": cfg.objective.N}
    return {}


def _weights_digest(model: torch.nn.Module) -> str:
    import hashlib

    h = hashlib.sha256()
    for v in model.state_dict().values():
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def truncate_log(path: Path, step: int) -> None:
    """Drop log lines past the resumed step (written after the last checkpoint of a killed run)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a torn last line from a killed process
    path.write_text("".join(k + "\n" for k in keep))


@torch.no_grad()
def _write_samples(ema: Denoiser, mcfg: ModelConfig, out: Path, step: int, steps: int, device) -> None:
    """A few clips per class (first factor) from the EMA model, as wav and a spectrogram png."""
    from .audio import denormalise, save_audio
    from .sampling import sample_consistency, sample_heun
    from .schedules import karras_sigmas
    from .vocoder import load_vocoder

    n = min(len(mcfg.classes[0]), 8) if mcfg.classes else 4
    # A private generator: sampling must not advance the training RNG (exact resume).
    gen = torch.Generator().manual_seed(step)
    z = torch.randn(n, mcfg.mel.n_mels, mcfg.frames, generator=gen).to(device)
    renoise = torch.randn(max(steps - 1, 1), *z.shape, generator=gen).to(device)
    cond = None
    if mcfg.classes:
        cond = ema.null_cond(n, device)
        cond[:, 0] = torch.arange(n, device=device)
    p = mcfg.precond
    if p.kind == "edm":
        mel = sample_heun(ema, z, karras_sigmas(18, p.sigma_min, p.sigma_max).tolist(), cond)
    else:
        sig = mcfg.sigmas.get(str(steps)) or default_sigmas(p.sigma_max).get(str(steps), [p.sigma_max])
        mel = sample_consistency(ema, z, sig, cond, sigma_min=p.sigma_min, renoise=renoise)
    logmel = denormalise(mel.float().cpu(), mcfg.stats)
    wav = load_vocoder("griffinlim", mcfg.mel)(logmel)
    names = [mcfg.classes[0][i] if mcfg.classes else str(i) for i in range(n)]
    for name, w in zip(names, wav):
        save_audio(out / f"step{step:07d}_{name}.wav", w * 0.9 / w.abs().max().clamp_min(1e-4), mcfg.mel.sample_rate)
    try:
        from .plots import spectrogram_grid

        spectrogram_grid(logmel, names, out / f"step{step:07d}.png", mcfg.mel)
    except ImportError:
        pass  # matplotlib is an optional extra; the wavs are written regardless


def config_from_run(run_dir: str | Path) -> TrainConfig:
    """The resolved TrainConfig a run was started with (RUN/config.json)."""
    path = Path(run_dir) / "config.json"
    try:
        return from_dict(TrainConfig, json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, ConfigError) as exc:
        raise TrainingError(f"{path}: cannot read the run's config ({exc})") from None
