"""Recipe classifiers: a small CNN over raw log-mels whose embeddings and predictions score
generated audio (python -m cmaudio.evaluate), as the SC09 protocol scores spoken digits with a
trained digit classifier (Donahue et al. 2019, WaveGAN; Kong et al. 2021, DiffWave).

- ``MelClassifier(config)(logmel [B, n_mels, frames]) -> (logits [B, C], embedding [B, D])``:
  it normalises its input with its own training-set statistics, so it scores real clips and any
  model's denormalised output alike; frequency positions are kept (pitch matters), time is pooled
  globally, so any frame count works.
- A classifier file is one ``.safetensors``: weights plus metadata ``format`` =
  "cmaudio-classifier", ``format_version`` = "1" and the ``ClassifierConfig`` as JSON; loaded
  strictly (``load_classifier``), never executing code.
- Training: ``python -m cmaudio.train recipes/<name>/classifier.toml`` (the TOML's top-level
  ``task = "classifier"`` sends it to ``main_train``): the training split with augmentation
  (gain, time shift, SpecAugment masks, added noise), AdamW with a cosine schedule, the weights
  of the best validation epoch kept, accuracy on the train, valid and test splits. Run directory:
  ``classifier.safetensors``, ``config.json``, ``log.jsonl``, ``report.json``.
"""

from __future__ import annotations

import copy
import hashlib
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
from torch import nn

from .audio import MelConfig, MelStats
from .checkpoint import load_weights, read_header, write_weights
from .config import DataConfig, check_field, to_dict

__all__ = [
    "CLASSIFIER_FORMAT",
    "CLASSIFIER_FORMAT_VERSION",
    "ClassifierNetConfig",
    "ClassifierConfig",
    "AugmentConfig",
    "ClassifierRunConfig",
    "ClassifierTrainConfig",
    "MelClassifier",
    "augment",
    "save_classifier",
    "load_classifier",
    "read_classifier_metadata",
    "file_sha256",
    "train_classifier",
    "main_train",
]

log = logging.getLogger("cmaudio")

CLASSIFIER_FORMAT = "cmaudio-classifier"
CLASSIFIER_FORMAT_VERSION = 1


# ----------------------------------------------------------------------------------------------
# Configs


@dataclass(frozen=True)
class ClassifierNetConfig:
    """A VGG-style 2-D CNN: per entry of ``channels`` one block of two 3x3 convolutions (group
    norm, ReLU) and a 2x2 max-pool; then the time axis is averaged, the (channel, frequency)
    features flattened and projected to the embedding."""

    channels: tuple[int, ...] = (16, 32, 64, 128)
    embed_dim: int = 128
    dropout: float = 0.2

    def __post_init__(self) -> None:
        check_field(len(self.channels) >= 1, "net.channels", "needs at least one block")
        check_field(all(c > 0 for c in self.channels), "net.channels", "entries must be positive")
        check_field(self.embed_dim > 0, "net.embed_dim", "must be positive")
        check_field(0.0 <= self.dropout < 1.0, "net.dropout", "must be in [0, 1)")


@dataclass(frozen=True)
class ClassifierConfig:
    """What a classifier file needs to rebuild and use its network (stored as JSON in the file)."""

    mel: MelConfig = field(default_factory=MelConfig)
    stats: MelStats = field(default_factory=MelStats)
    net: ClassifierNetConfig = field(default_factory=ClassifierNetConfig)
    cond_field: str = "label"  # the label field it predicts (a model's first conditioning field)
    classes: tuple[str, ...] = ()
    frames: int = 63  # training clip length (informational: any length is accepted)

    def __post_init__(self) -> None:
        check_field(len(self.classes) >= 2, "classes", "a classifier needs at least two classes")
        check_field(len(set(self.classes)) == len(self.classes), "classes", "class names must be unique")
        check_field(self.mel.n_mels >= 2 ** len(self.net.channels), "net.channels", "too many blocks for n_mels")


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
# The network


class _Block(nn.Sequential):
    # Group norm (Wu & He 2018), not batch norm: no running statistics, so a classifier trained
    # for a few dozen steps behaves the same in eval mode, and scores never depend on batch size.
    def __init__(self, c_in: int, c_out: int):
        groups = math.gcd(8, c_out)
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.GroupNorm(groups, c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.GroupNorm(groups, c_out),
            nn.ReLU(inplace=True),
        )


class MelClassifier(nn.Module):
    """logmel [B, n_mels, frames] (raw, as audio.mel_spectrogram makes it) -> (logits [B, C],
    embedding [B, D]). The embedding (after the projection's ReLU) is what Frechet distances and
    precision/recall are computed on, like the pool features of an Inception net in FID."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        chans = (1, *config.net.channels)
        self.blocks = nn.ModuleList(_Block(a, b) for a, b in zip(chans, chans[1:]))
        bins = config.mel.n_mels // 2 ** len(config.net.channels)
        self.embed = nn.Linear(chans[-1] * bins, config.net.embed_dim)
        self.dropout = nn.Dropout(config.net.dropout)
        self.head = nn.Linear(config.net.embed_dim, len(config.classes))

    @property
    def classes(self) -> tuple[str, ...]:
        return self.config.classes

    def forward(self, logmel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if logmel.dim() != 3 or logmel.shape[1] != self.config.mel.n_mels:
            raise ValueError(f"expected log-mels [B, {self.config.mel.n_mels}, frames], got {tuple(logmel.shape)}")
        s = self.config.stats
        x = ((logmel.float() - s.mean) / s.std)[:, None]  # [B, 1, n_mels, frames]
        for block in self.blocks:
            x = block(x)
            # Frequency always halves; time only while there is some left (short clips).
            x = F.max_pool2d(x, (2, 2 if x.shape[-1] >= 2 else 1))
        emb = F.relu(self.embed(x.mean(-1).flatten(1)))
        return self.head(self.dropout(emb)), emb

    @torch.inference_mode()
    def predict(self, logmels: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval-mode probabilities [N, C] (float64) and embeddings [N, D] (float32), on the CPU."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        probs, embs = [], []
        for i in range(0, len(logmels), batch_size):
            logits, emb = self(logmels[i : i + batch_size].to(device))
            # float64 softmax: the modified inception score reads the log of tiny probabilities.
            probs.append(logits.double().softmax(-1).cpu())
            embs.append(emb.float().cpu())
        self.train(was_training)
        return torch.cat(probs), torch.cat(embs)


# ----------------------------------------------------------------------------------------------
# Files


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (evaluate records it with every score)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_classifier(
    path: str | os.PathLike, model: MelClassifier, extra: dict[str, str] | None = None
) -> Path:
    """Write weights and config as one safetensors file, atomically; refuses non-finite weights."""
    return write_weights(path, model, CLASSIFIER_FORMAT, CLASSIFIER_FORMAT_VERSION, model.config, extra)


def read_classifier_metadata(path: str | os.PathLike) -> tuple[dict[str, str], ClassifierConfig]:
    """Validate a classifier file's header -> (metadata, ClassifierConfig); one-line errors."""
    return read_header(path, CLASSIFIER_FORMAT, CLASSIFIER_FORMAT_VERSION, ClassifierConfig, "classifier")


def load_classifier(path: str | os.PathLike, device: str | torch.device = "cpu") -> MelClassifier:
    """Rebuild the classifier a file describes and load its weights strictly (eval mode)."""
    _, config = read_classifier_metadata(path)
    model = MelClassifier(config)
    load_weights(path, model)
    return model.to(device).eval()


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


def _device(name: str) -> torch.device:
    from .training_loop import TrainingError

    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise TrainingError("device 'cuda' requested but CUDA is not available")
        return torch.device("cuda")
    return torch.device("cpu")


def train_classifier(cfg: ClassifierTrainConfig, run_dir: str | os.PathLike, progress: bool = True) -> dict:
    """Train ``cfg`` into ``run_dir``; returns the report (also RUN/report.json)."""
    from .data import AudioFolder, DatasetError
    from .training_loop import TrainingError

    run_dir = Path(run_dir)
    out_path = run_dir / "classifier.safetensors"
    if out_path.exists():
        raise TrainingError(f"{run_dir} already holds a classifier: choose another --out")
    t0 = time.perf_counter()
    device = _device(cfg.run.device)
    train = AudioFolder.from_config(cfg.data, cfg.mel, split="train", progress=progress)
    field_name = cfg.data.label_fields[0]
    classes = train.classes[0]
    if len(classes) < 2:
        raise TrainingError(f"{cfg.data.root}: the training split has {len(classes)} class; a classifier needs two")
    splits = {"train": train}
    for split in ("valid", "test"):
        try:
            splits[split] = AudioFolder.from_config(cfg.data, cfg.mel, split=split, classes=train.classes,
                                                    progress=progress)
        except DatasetError as exc:
            log.warning("no %s split (%s): its accuracy is not measured", split, exc)
    stats = train.stats()
    ccfg = ClassifierConfig(
        mel=cfg.mel, stats=stats, net=cfg.net, cond_field=field_name, classes=classes, frames=train.frames
    )
    torch.manual_seed(cfg.run.seed)
    model = MelClassifier(ccfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.run.lr, weight_decay=cfg.run.weight_decay)
    g = torch.Generator().manual_seed(cfg.run.seed + 1)
    mels, labels = train.mels, train.labels[:, 0]
    per_epoch = math.ceil(len(mels) / cfg.run.batch_size)
    total = per_epoch * cfg.run.epochs

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
    bar = None
    if progress:
        from tqdm import tqdm

        # disable=None hides the bar when stderr is not a terminal (logs, CI), as data.py does.
        bar = tqdm(total=total, desc=cfg.name, unit="step", dynamic_ncols=True, file=sys.stderr, disable=None)
    best = (-1.0, 0, None)  # (valid accuracy, epoch, weights)
    step = 0
    try:
        with open(run_dir / "log.jsonl", "w") as log_file:
            for epoch in range(1, cfg.run.epochs + 1):
                model.train()
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
                        raise TrainingError(f"non-finite loss at step {step}; lower run.lr")
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    step += 1
                    seen += len(idx)
                    correct += int((logits.argmax(-1) == y).sum())
                    loss_sum += float(loss.detach()) * len(idx)
                    if bar:
                        bar.update(1)
                        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.2f}")
                    if step % cfg.run.log_every == 0:
                        lr = opt.param_groups[0]["lr"]
                        rec = {"step": step, "epoch": epoch, "loss": float(loss.detach()), "lr": lr}
                        log_file.write(json.dumps(rec) + "\n")
                rec = {"step": step, "epoch": epoch, "train_loss": loss_sum / max(seen, 1),
                       "train_accuracy_augmented": correct / max(seen, 1)}
                if "valid" in splits:
                    v = splits["valid"]
                    rec["valid_accuracy"] = _accuracy(model, v.mels, v.labels[:, 0], cfg.run.eval_batch_size)
                log_file.write(json.dumps(rec) + "\n")
                log_file.flush()
                # Without a valid split, or without selection on it: the last epoch.
                score = rec["valid_accuracy"] if cfg.run.select_on_valid and "valid" in splits else float(epoch)
                if score >= best[0]:  # ties go to the later, longer-trained epoch
                    best = (score, epoch, copy.deepcopy(model.state_dict()))
    finally:
        if bar:
            bar.close()
    model.load_state_dict(best[2])
    model.eval()
    acc = {
        f"{name}_accuracy": _accuracy(model, ds.mels, ds.labels[:, 0], cfg.run.eval_batch_size)
        for name, ds in splits.items()
    }
    seconds = time.perf_counter() - t0
    save_classifier(out_path, model, extra={"name": cfg.name, "epoch": str(best[1]),
                                            **{k: f"{v:.6f}" for k, v in acc.items()}})
    report = {
        "name": cfg.name,
        "classifier": str(out_path),
        "sha256": file_sha256(out_path),
        "cond_field": field_name,
        "classes": list(classes),
        "clips": {name: len(ds) for name, ds in splits.items()},
        "epochs": cfg.run.epochs,
        "best_epoch": best[1],
        "steps": step,
        "seconds": seconds,
        "device": str(device),
        "seed": cfg.run.seed,
        **acc,
    }
    (run_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    shown = ", ".join(f"{k.split('_')[0]} {v:.1%}" for k, v in acc.items())
    print(f"classifier {cfg.name}: accuracy {shown}; best epoch {best[1]}/{cfg.run.epochs}, "
          f"{seconds:.0f} s -> {out_path}", file=sys.stderr)
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
    from .config import load_config
    from .training_loop import TrainingError

    cfg = load_config(config_path, list(overrides or ()), cls=ClassifierTrainConfig)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise TrainingError("a classifier trains in one process: run python -m cmaudio.train without torchrun")
    run_dir = Path(out) if out else Path("runs") / cfg.name
    if dry_run:
        print(json.dumps(to_dict(cfg), indent=2))
        print(f"dry run: would train classifier {cfg.name!r} for {cfg.run.epochs} epochs into {run_dir}",
              file=sys.stderr)
        return 0
    train_classifier(cfg, run_dir, progress=progress)
    return 0
