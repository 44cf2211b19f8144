"""Training a recipe classifier (cmaudio.evaluation.classifier): ``python -m cmaudio.train
recipes/<name>/classifier.toml`` (the TOML's top-level ``task = "classifier"`` sends it to
``main_train``): the training split with augmentation (gain, time shift, SpecAugment masks, added
noise), AdamW with a cosine schedule, the weights of the best validation epoch kept, accuracy on
the train, valid and test splits. Run directory: ``classifier.safetensors``, ``config.json``,
``log.jsonl``, ``report.json``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from ..audio import MelConfig
from ..config import DataConfig, check_field, load_config, to_dict
from ..data import AudioFolder
from ..errors import DatasetError, TrainingError
from ..evaluation.classifier import (
    ClassifierConfig,
    ClassifierNetConfig,
    MelClassifier,
    file_sha256,
    save_classifier,
)
from .harness import NonFiniteGuard, Progress, RunFolder, resolve_device, summary_line

__all__ = [
    "AugmentConfig",
    "ClassifierRunConfig",
    "ClassifierTrainConfig",
    "augment",
    "train_classifier",
    "main_train",
]

log = logging.getLogger("cmaudio")


# ----------------------------------------------------------------------------------------------
# Configs


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation in the raw log-mel domain (gain comes from ``data.gain_db``)."""

    shift_seconds: float = 0.1  # random circular time shift of up to +- this
    time_masks: int = 2  # SpecAugment (Park et al. 2019): masks per clip, each up to the width below
    time_mask_frames: int = 8
    freq_masks: int = 2
    freq_mask_bins: int = 8
    noise_prob: float = 0.5  # share of clips that get noise mixed in
    noise_snr_db: tuple[float, float] = (10.0, 40.0)  # its signal-to-noise range

    def __post_init__(self) -> None:
        check_field(self.shift_seconds >= 0, "augment.shift_seconds", "must be >= 0")
        check_field(min(self.time_masks, self.time_mask_frames) >= 0, "augment.time_masks", "must be >= 0")
        check_field(min(self.freq_masks, self.freq_mask_bins) >= 0, "augment.freq_masks", "must be >= 0")
        check_field(0.0 <= self.noise_prob <= 1.0, "augment.noise_prob", "must be in [0, 1]")
        check_field(self.noise_snr_db[0] <= self.noise_snr_db[1], "augment.noise_snr_db", "need low <= high")


@dataclass(frozen=True)
class ClassifierRunConfig:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05  # linear warm-up over this share of the steps, then cosine decay
    label_smoothing: float = 0.0  # 0 keeps predictions sharp, as the inception score expects
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    log_every: int = 20
    eval_batch_size: int = 256
    # Keep the epoch with the best validation accuracy; false keeps the last epoch, for a
    # validation split too small to rank epochs (one held-out drum kit: 27 clips).
    select_on_valid: bool = True

    def __post_init__(self) -> None:
        check_field(self.epochs >= 1, "run.epochs", "must be >= 1")
        check_field(self.batch_size >= 1, "run.batch_size", "must be >= 1")
        check_field(self.lr > 0, "run.lr", "must be positive")
        check_field(self.weight_decay >= 0, "run.weight_decay", "must be >= 0")
        check_field(0.0 <= self.warmup_fraction < 1.0, "run.warmup_fraction", "must be in [0, 1)")
        check_field(0.0 <= self.label_smoothing < 1.0, "run.label_smoothing", "must be in [0, 1)")
        check_field(self.log_every >= 1, "run.log_every", "must be >= 1")
        check_field(self.eval_batch_size >= 1, "run.eval_batch_size", "must be >= 1")


@dataclass(frozen=True)
class ClassifierTrainConfig:
    """A classifier recipe (recipes/<name>/classifier.toml); saved resolved as RUN/config.json."""

    task: Literal["classifier"] = "classifier"
    name: str = "classifier"
    mel: MelConfig = field(default_factory=MelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    net: ClassifierNetConfig = field(default_factory=ClassifierNetConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    run: ClassifierRunConfig = field(default_factory=ClassifierRunConfig)

    def __post_init__(self) -> None:
        check_field(len(self.data.label_fields) == 1, "data.label_fields", "a classifier predicts exactly one field")
        check_field(self.mel.n_mels >= 2 ** len(self.net.channels), "net.channels", "too many blocks for n_mels")


# ----------------------------------------------------------------------------------------------
# Training


def augment(x: torch.Tensor, cfg: AugmentConfig, mel: MelConfig, gain_db: float, g: torch.Generator) -> torch.Tensor:
    """Augment raw log-mels [B, n_mels, frames] (a new tensor). Randomness from ``g`` (CPU)."""
    B, M, T = x.shape
    dev = x.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=g).to(dev)

    floor = mel.log_floor
    if gain_db > 0:
        # mel_spectrogram takes the log of magnitudes: a gain of g dB adds g ln(10) / 20.
        x = (x + (rand(B, 1, 1) * 2 - 1) * gain_db * math.log(10) / 20).clamp_min(floor)
    shift = int(round(cfg.shift_seconds * mel.frames_per_second))
    if shift > 0:
        offsets = (rand(B) * (2 * shift + 1)).long() - shift
        idx = (torch.arange(T, device=dev)[None, :] - offsets[:, None]) % T
        x = x.gather(2, idx[:, None, :].expand(B, M, T))
    if cfg.noise_prob > 0:
        # Noise is mixed in the magnitude domain at a random SNR relative to the clip's mean level;
        # per-bin Rayleigh-like magnitudes (|N(0, 1)|) mimic the mel of white noise.
        lo, hi = cfg.noise_snr_db
        snr = lo + rand(B, 1, 1) * (hi - lo)
        level = x.exp().mean((1, 2), keepdim=True) * 10 ** (-snr / 20)
        noise = torch.randn((B, M, T), generator=g).abs().to(dev) * level
        mixed = torch.log((x.exp() + noise).clamp_min(mel.log_clamp))
        x = torch.where(rand(B, 1, 1) < cfg.noise_prob, mixed, x)
    fill = x.mean((1, 2), keepdim=True)  # SpecAugment masks with the mean value (Park et al. 2019)
    for count, width, axis, size in (
        (cfg.time_masks, cfg.time_mask_frames, 2, T),
        (cfg.freq_masks, cfg.freq_mask_bins, 1, M),
    ):
        w_max = min(width, size // 2)
        if count == 0 or w_max < 1:
            continue
        pos = torch.arange(size, device=dev)
        for _ in range(count):
            w = (rand(B) * (w_max + 1)).long()
            start = (rand(B) * (size - w + 1).float()).long()
            m = (pos[None] >= start[:, None]) & (pos[None] < (start + w)[:, None])  # [B, size]
            m = m[:, None, :] if axis == 2 else m[:, :, None]
            x = torch.where(m, fill, x)
    return x


def _accuracy(model: MelClassifier, mels: torch.Tensor, labels: torch.Tensor, batch_size: int) -> float:
    probs, _ = model.predict(mels, batch_size)
    return float((probs.argmax(-1) == labels.cpu()).double().mean())


def _lr(cfg: ClassifierRunConfig, step: int, total: int) -> float:
    warm = int(cfg.warmup_fraction * total)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * t))


def _load_splits(cfg: ClassifierTrainConfig, progress: bool) -> dict[str, AudioFolder]:
    """The train split, and the valid and test splits where the data set has them (with the
    training set's classes)."""
    train = AudioFolder.from_config(cfg.data, cfg.mel, split="train", progress=progress)
    classes = train.classes[0]
    if len(classes) < 2:
        raise TrainingError(f"{cfg.data.root}: the training split has {len(classes)} class; a classifier needs two")
    splits = {"train": train}
    for split in ("valid", "test"):
        try:
            splits[split] = AudioFolder.from_config(
                cfg.data, cfg.mel, split=split, classes=train.classes, progress=progress
            )
        except DatasetError as exc:
            log.warning("no %s split (%s): its accuracy is not measured", split, exc)
    return splits


def _epoch(
    model: MelClassifier,
    opt,
    cfg: ClassifierTrainConfig,
    train: AudioFolder,
    g: torch.Generator,
    device: torch.device,
    epoch: int,
    step: int,
    total: int,
    bar: Progress,
    folder: RunFolder,
) -> tuple[int, dict]:
    """One pass over the training split; returns (steps so far, the epoch's log record)."""
    model.train()
    mels, labels = train.mels, train.labels[:, 0]
    order = torch.randperm(len(mels), generator=g)
    seen, correct, loss_sum = 0, 0, 0.0
    for i in range(0, len(order), cfg.run.batch_size):
        idx = order[i : i + cfg.run.batch_size]
        for group in opt.param_groups:
            group["lr"] = _lr(cfg.run, step, total)
        x = augment(mels[idx].to(device), cfg.augment, cfg.mel, cfg.data.gain_db, g)
        y = labels[idx].to(device)
        logits, _ = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.run.label_smoothing)
        if not torch.isfinite(loss):
            # A few minutes of training: no checkpoint to go back to, so the first one stops it.
            NonFiniteGuard(1).bad(step, folder.path / "classifier.safetensors", "Lower run.lr.")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        seen += len(idx)
        correct += int((logits.argmax(-1) == y).sum())
        loss_sum += float(loss.detach()) * len(idx)
        bar.update(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.2f}")
        if step % cfg.run.log_every == 0:
            lr = opt.param_groups[0]["lr"]
            folder.log({"step": step, "epoch": epoch, "loss": float(loss.detach()), "lr": lr})
    return step, {
        "step": step,
        "epoch": epoch,
        "train_loss": loss_sum / max(seen, 1),
        "train_accuracy_augmented": correct / max(seen, 1),
    }


def _fit(
    model: MelClassifier,
    cfg: ClassifierTrainConfig,
    splits: dict[str, AudioFolder],
    folder: RunFolder,
    device: torch.device,
    progress: bool,
) -> tuple[int, int]:
    """Every epoch, logged to the run folder's log.jsonl; ``model`` ends holding the kept epoch's weights, in
    eval mode. Returns (kept epoch, optimiser steps)."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.run.lr, weight_decay=cfg.run.weight_decay)
    g = torch.Generator().manual_seed(cfg.run.seed + 1)
    total = math.ceil(len(splits["train"].mels) / cfg.run.batch_size) * cfg.run.epochs
    bar = Progress(cfg.name, total, 0, progress)
    best = (-1.0, 0, None)  # (valid accuracy, epoch, weights)
    step = 0
    try:
        for epoch in range(1, cfg.run.epochs + 1):
            step, rec = _epoch(model, opt, cfg, splits["train"], g, device, epoch, step, total, bar, folder)
            if "valid" in splits:
                v = splits["valid"]
                rec["valid_accuracy"] = _accuracy(model, v.mels, v.labels[:, 0], cfg.run.eval_batch_size)
            folder.log(rec)
            # Without a valid split, or without selection on it: the last epoch.
            score = rec["valid_accuracy"] if cfg.run.select_on_valid and "valid" in splits else float(epoch)
            if score >= best[0]:  # ties go to the later, longer-trained epoch
                best = (score, epoch, copy.deepcopy(model.state_dict()))
    finally:
        bar.close()
    model.load_state_dict(best[2])
    model.eval()
    return best[1], step


def train_classifier(cfg: ClassifierTrainConfig, run_dir: str | os.PathLike, progress: bool = True) -> dict:
    """Train ``cfg`` into ``run_dir``; returns the report (also RUN/report.json)."""
    run_dir = Path(run_dir)
    out_path = run_dir / "classifier.safetensors"
    if out_path.exists():
        raise TrainingError(f"{run_dir} already holds a classifier: choose another --out")
    t0 = time.perf_counter()
    device = resolve_device(cfg.run.device)
    splits = _load_splits(cfg, progress)
    train = splits["train"]
    field_name, classes = cfg.data.label_fields[0], train.classes[0]
    ccfg = ClassifierConfig(
        mel=cfg.mel, stats=train.stats(), net=cfg.net, cond_field=field_name, classes=classes, frames=train.frames
    )
    torch.manual_seed(cfg.run.seed)
    model = MelClassifier(ccfg).to(device)
    folder = RunFolder(run_dir, resume=False)  # a classifier has no state.pt: it never resumes
    folder.open(cfg, step=0)
    best_epoch, steps = _fit(model, cfg, splits, folder, device, progress)
    acc = {
        f"{name}_accuracy": _accuracy(model, ds.mels, ds.labels[:, 0], cfg.run.eval_batch_size)
        for name, ds in splits.items()
    }
    seconds = time.perf_counter() - t0
    save_classifier(
        out_path, model, extra={"name": cfg.name, "epoch": str(best_epoch), **{k: f"{v:.6f}" for k, v in acc.items()}}
    )
    report = {
        "name": cfg.name,
        "classifier": str(out_path),
        "sha256": file_sha256(out_path),
        "cond_field": field_name,
        "classes": list(classes),
        "clips": {name: len(ds) for name, ds in splits.items()},
        "epochs": cfg.run.epochs,
        "best_epoch": best_epoch,
        "steps": steps,
        "seconds": seconds,
        "device": str(device),
        "seed": cfg.run.seed,
        **acc,
    }
    (run_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    shown = ", ".join(f"{k.split('_')[0]} {v:.1%}" for k, v in acc.items())
    summary_line(
        f"classifier {cfg.name}: accuracy {shown}; best epoch {best_epoch}/{cfg.run.epochs}, "
        f"{seconds:.0f} s -> {out_path}"
    )
    return report


def main_train(
    config_path: str | os.PathLike,
    overrides,
    out: str | os.PathLike | None,
    dry_run: bool,
    *,
    progress: bool = True,
) -> int:
    """python -m cmaudio.train CONFIG.toml for a TOML with ``task = "classifier"``: load the recipe
    strictly, then train it (or, with ``dry_run``, print the resolved config). Returns 0; user
    errors are raised as one-line ConfigError / DatasetError / TrainingError."""
    cfg = load_config(config_path, list(overrides or ()), cls=ClassifierTrainConfig)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise TrainingError("a classifier trains in one process: run python -m cmaudio.train without torchrun")
    run_dir = Path(out) if out else Path("runs") / cfg.name
    if dry_run:
        print(json.dumps(to_dict(cfg), indent=2))
        print(
            f"dry run: would train classifier {cfg.name!r} for {cfg.run.epochs} epochs into {run_dir}", file=sys.stderr
        )
        return 0
    train_classifier(cfg, run_dir, progress=progress)
    return 0
