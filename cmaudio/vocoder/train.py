"""Train the neural vocoder (neural.py) as a GAN, and compare vocoders by copy synthesis.

    python -m cmaudio.vocoder.train CONFIG.toml [--set k=v ...] [--out RUN] [--resume] [--dry-run]
    python -m cmaudio.vocoder.train --compare RUN/vocoder.safetensors --data DIR [DIR ...]

Training (Vocos: Siuzdak 2023; HiFi-GAN: Kong et al. 2020). Each step draws random segments of
``data.segment_frames`` frames from the clips of every data root (SC09-style folders, split
``data.split``), computes their raw log-mel with ``cmaudio.audio.mel_spectrogram`` on the fly (so
mel and waveform are aligned by construction) and renders them back with the generator G. Losses:

- reconstruction: multi-resolution mel L1 (weight ``loss.mel_weight``, 45 as HiFi-GAN) plus the
  multi-resolution STFT distance (spectral convergence + log magnitude, Yamamoto et al. 2020);
- from step ``loss.adv_start_step`` on, adversarial training against a multi-period (HiFi-GAN)
  and a multi-resolution (UnivNet) discriminator (discriminators.py), hinge or LSGAN, plus
  feature matching. The reconstruction-only warm-up lets short CPU runs converge before the
  discriminators start to push.

AdamW for G and D, linear warm-up then optional cosine decay, global-norm gradient clipping, an EMA
of G (what is saved and sampled), and a non-finite guard: a step whose losses or gradients are not
finite is skipped and counted; ``run.max_bad_steps`` in a row stop the run. Everything runs in
float32: STFT losses and istft are where reduced precision hurts most.

Run directory (like the acoustic one, docs/architecture.md section 4):
    config.json  log.jsonl  samples/  vocoder.safetensors (EMA G)  state.pt (exact resume)
    vocoder-<step>.safetensors (every run.snapshot_every steps)
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from ..audio import MelConfig, mel_spectrogram
from ..checkpoint import CheckpointError, load_state, load_weights, save_state
from ..cli import Parser, UsageError, main_wrapper
from ..config import ConfigError, check_field, load_config, to_dict
from ..spectral import (
    STFT_RESOLUTIONS,
    evaluate_copy_synthesis,
    mr_stft_loss,
    multi_resolution_mel_l1,
)
from ..training_loop import TrainingError, check_resumable, ema_update, resolve_device, truncate_log
from .discriminators import (
    Discriminators,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
)
from .neural import NeuralVocoder, VocoderConfig, VocoderNetConfig, read_vocoder_metadata, save_vocoder

__all__ = [
    "VocoderDataConfig",
    "VocoderLossConfig",
    "VocoderOptimConfig",
    "VocoderRunConfig",
    "VocoderTrainConfig",
    "VocoderRunResult",
    "SegmentSampler",
    "load_clips",
    "train",
    "compare",
    "format_table",
    "main",
]

log = logging.getLogger("cmaudio")

# Run fields that may change between a run and its resumption without changing the optimisation.
_RESUMABLE_CHANGES = {
    "steps",
    "log_every",
    "sample_every",
    "save_every",
    "snapshot_every",
    "threads",
    "max_bad_steps",
}
# Clips written to samples/ per data root at every sample_every.
_SAMPLES_PER_ROOT = 2


# ----------------------------------------------------------------------------------------------
# Config


@dataclass(frozen=True)
class VocoderDataConfig:
    """Training audio: the union of several data sets (folders or manifest files, load_clips)."""

    # Folders (SC09-style, or any layout data.AudioFolder reads) or manifest files inside them.
    roots: tuple[str, ...] = ()
    layout: Literal["auto", "folders", "manifest", "nsynth", "ljspeech"] = "auto"
    split: str = "train"
    eval_split: str = "test"  # held-out clips scored at every run.sample_every
    eval_clips: int = 16  # per root, evenly spaced; 0 disables the periodic evaluation
    seconds: float = 1.0  # clips are cropped or zero padded to this length
    cache: bool = True
    segment_frames: int = 16  # training segment: this many hops of audio (mel: + 1 frames)
    gain_db: float = 6.0  # random gain in [-gain_db, 0] dB per segment: level robustness
    balance: bool = True  # draw each root equally often, whatever its size

    def __post_init__(self) -> None:
        check_field(self.seconds > 0, "data.seconds", "must be positive")
        check_field(self.segment_frames >= 1, "data.segment_frames", "must be >= 1")
        check_field(self.gain_db >= 0, "data.gain_db", "must be >= 0")
        check_field(self.eval_clips >= 0, "data.eval_clips", "must be >= 0")


@dataclass(frozen=True)
class VocoderLossConfig:
    """Generator and discriminator objectives (discriminators.py, cmaudio.spectral)."""

    # Multi-scale mel L1 (n_fft, hop, n_mels), win = n_fft; includes the vocoder's own front end,
    # HiFi-GAN's mel loss, whose weight 45 this keeps (Kong et al. 2020, eq. 6).
    mel_weight: float = 45.0
    mel_resolutions: tuple[tuple[int, int, int], ...] = (
        (512, 128, 40),
        (1024, 256, 80),
        (2048, 512, 160),
    )
    # MR-STFT (Yamamoto et al. 2020) on top: the mel's Slaney bands (37 Hz apart, 74 Hz wide below
    # 1 kHz) cannot pin a steady partial's frequency, the 2048-point STFT (7.8 Hz bins) can; at 10
    # both terms are of similar size early in training.
    stft_weight: float = 10.0
    stft_resolutions: tuple[tuple[int, int, int], ...] = STFT_RESOLUTIONS
    # Band-limited long-window STFT term (0: off): the MR-STFT loss over only the bins below
    # bass_max_hz of these resolutions. A bass note's pitch is fixed by partials below 1 kHz, a few
    # percent of a 4096-point spectrum's bins, so in a full-band average a fundamental 190 cents
    # flat barely registers; scored alone, it is the whole term.
    bass_weight: float = 0.0
    bass_resolutions: tuple[tuple[int, int, int], ...] = ((8192, 256, 4096),)
    bass_max_hz: float = 1000.0
    # Weight of the term's log-magnitude part; 0 keeps only spectral convergence, which the
    # strong partials dominate (the log magnitude also chases every near-silent low bin of a drum).
    bass_mag_weight: float = 1.0
    adv_kind: Literal["hinge", "lsgan"] = "hinge"  # hinge as Vocos, lsgan as HiFi-GAN
    adv_weight: float = 1.0
    fm_weight: float = 1.0  # Vocos: per discriminator, sum over layers of mean L1
    adv_start_step: int = 0  # reconstruction only before this step
    mpd_periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    mpd_channels: tuple[int, ...] = (16, 32, 64, 128)
    mrd_resolutions: tuple[tuple[int, int, int], ...] = (
        (2048, 512, 2048),
        (1024, 256, 1024),
        (512, 128, 512),
    )
    mrd_channels: int = 16

    def __post_init__(self) -> None:
        for key in ("mel_weight", "stft_weight", "bass_weight", "bass_mag_weight", "adv_weight", "fm_weight"):
            check_field(getattr(self, key) >= 0, f"loss.{key}", "must be >= 0")
        check_field(
            self.mel_weight + self.stft_weight > 0,
            "loss.mel_weight",
            "some reconstruction loss is needed",
        )
        check_field(len(self.mel_resolutions) >= 1, "loss.mel_resolutions", "needs at least one entry")
        check_field(len(self.stft_resolutions) >= 1, "loss.stft_resolutions", "needs at least one entry")
        check_field(self.bass_max_hz > 0, "loss.bass_max_hz", "must be positive")
        check_field(
            self.bass_weight == 0 or len(self.bass_resolutions) >= 1,
            "loss.bass_resolutions",
            "needs at least one entry when loss.bass_weight > 0",
        )
        for key in ("mel_resolutions", "stft_resolutions", "bass_resolutions", "mrd_resolutions"):
            check_field(
                all(min(r) >= 1 for r in getattr(self, key)),
                f"loss.{key}",
                "entries must be positive",
            )
        for key in ("stft_resolutions", "bass_resolutions"):
            check_field(all(w <= n for n, _, w in getattr(self, key)), f"loss.{key}", "need win <= n_fft")
        check_field(
            all(w <= n for n, _, w in self.mrd_resolutions),
            "loss.mrd_resolutions",
            "need win <= n_fft",
        )
        check_field(self.adv_start_step >= 0, "loss.adv_start_step", "must be >= 0")
        check_field(
            len(self.mpd_periods) + len(self.mrd_resolutions) >= 1,
            "loss.mpd_periods",
            "need at least one discriminator",
        )
        check_field(all(p >= 1 for p in self.mpd_periods), "loss.mpd_periods", "must be >= 1")
        check_field(
            len(self.mpd_channels) >= 1 and min(self.mpd_channels) >= 1,
            "loss.mpd_channels",
            "needs positive widths",
        )
        check_field(self.mrd_channels >= 1, "loss.mrd_channels", "must be >= 1")


@dataclass(frozen=True)
class VocoderOptimConfig:
    lr: float = 5e-4  # generator
    lr_d: float = 0.0  # discriminators; 0 -> lr
    betas: tuple[float, float] = (0.8, 0.99)  # HiFi-GAN
    weight_decay: float = 0.01
    eps: float = 1e-8
    warmup_steps: int = 200
    lr_decay_steps: int = 0  # cosine decay to lr * min_lr_ratio over this many steps; 0: constant
    min_lr_ratio: float = 0.1
    grad_clip: float = 100.0  # max global grad norm for G and D each; 0 disables
    ema_decay: float = 0.999  # EMA of G, ramped in as min(decay, (1 + step) / (10 + step))

    def __post_init__(self) -> None:
        check_field(self.lr > 0 and self.lr_d >= 0, "optim.lr", "must be positive")
        check_field(all(0 <= b < 1 for b in self.betas), "optim.betas", "must be in [0, 1)")
        check_field(
            self.warmup_steps >= 0 and self.lr_decay_steps >= 0,
            "optim.warmup_steps",
            "must be >= 0",
        )
        check_field(0 < self.min_lr_ratio <= 1, "optim.min_lr_ratio", "must be in (0, 1]")
        check_field(self.grad_clip >= 0, "optim.grad_clip", "must be >= 0")
        check_field(0 <= self.ema_decay < 1, "optim.ema_decay", "must be in [0, 1)")


@dataclass(frozen=True)
class VocoderRunConfig:
    steps: int = 20000
    batch_size: int = 16
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    log_every: int = 10
    sample_every: int = 1000  # samples/ (wav + png) and held-out metrics into log.jsonl; 0 disables
    save_every: int = 500  # vocoder.safetensors + state.pt
    snapshot_every: int = 0  # also keep vocoder-<step>.safetensors; 0 disables
    max_bad_steps: int = 20  # stop after this many non-finite steps in a row
    # Warm start: G and its EMA from this vocoder file (same mel and net), fresh optimisers,
    # schedule and discriminators; "" trains from scratch. Ignored on --resume (state.pt wins).
    init: str = ""

    def __post_init__(self) -> None:
        check_field(self.steps >= 1, "run.steps", "must be >= 1")
        check_field(self.batch_size >= 1, "run.batch_size", "must be >= 1")
        check_field(self.threads >= 0, "run.threads", "must be >= 0")
        check_field(self.log_every >= 1, "run.log_every", "must be >= 1")
        check_field(self.save_every >= 1, "run.save_every", "must be >= 1")
        check_field(self.snapshot_every >= 0, "run.snapshot_every", "must be >= 0")
        check_field(self.sample_every >= 0, "run.sample_every", "must be >= 0")
        check_field(self.max_bad_steps >= 1, "run.max_bad_steps", "must be >= 1")


@dataclass(frozen=True)
class VocoderTrainConfig:
    """A vocoder training run; saved resolved as RUN/config.json."""

    name: str = "vocoder-16k"  # recorded in the vocoder file (and the bundled asset's file name)
    mel: MelConfig = field(default_factory=MelConfig)
    net: VocoderNetConfig = field(default_factory=VocoderNetConfig)
    data: VocoderDataConfig = field(default_factory=VocoderDataConfig)
    loss: VocoderLossConfig = field(default_factory=VocoderLossConfig)
    optim: VocoderOptimConfig = field(default_factory=VocoderOptimConfig)
    run: VocoderRunConfig = field(default_factory=VocoderRunConfig)

    @property
    def vocoder_config(self) -> VocoderConfig:
        return VocoderConfig(mel=self.mel, net=self.net)


@dataclass
class VocoderRunResult:
    steps: int
    seconds: float
    seconds_per_step: float
    bad_steps: int
    vocoder_path: str
    eval: dict[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# Data


def load_clips(
    roots: Sequence[str | os.PathLike],
    mel: MelConfig,
    split: str,
    *,
    seconds: float = 1.0,
    layout: str = "auto",
    cache: bool = True,
    progress: bool = True,
    limit: int = 0,
) -> list[tuple[str, torch.Tensor]]:
    """(name, wavs [N, round(seconds * sr)]) per root: split ``split`` of each data set through
    AudioFolder(keep_wav=True, label_fields=()). A root is a folder (read with ``layout``, e.g.
    SC09-style) or a manifest file (.jsonl, .json, .csv) inside one, which also carries the
    splits (e.g. data/notes/manifest.jsonl). ``limit`` > 0 keeps N clips evenly spaced through
    the split (indexes are sorted by path, so every class of a foldered set is represented)."""
    from ..data import AudioFolder

    out = []
    for root in roots:
        path = Path(root)
        folder, kwargs = path, {"layout": layout}
        if path.is_file():
            folder, kwargs = path.parent, {"layout": "manifest", "manifest": path.name}
        ds = AudioFolder(
            folder,
            mel=mel,
            seconds=seconds,
            split=split,
            label_fields=(),
            cache=cache,
            keep_wav=True,
            progress=progress,
            **kwargs,
        )
        wavs = ds.wavs
        if 0 < limit < len(wavs):
            wavs = wavs[torch.linspace(0, len(wavs) - 1, limit).round().long()]
        # A manifest is named by its folder and stem: data/real holds one per domain.
        name = folder.resolve().name if folder == path else f"{folder.resolve().name}/{path.stem}"
        out.append((name, wavs))
    return out


class SegmentSampler:
    """Random training segments, reproducible from a seed and resumable exactly.

    Draws a root (uniformly when ``balance``, else in proportion to its size), a clip, a start and a
    gain from its own generator, so nothing else in the process (model init, samples) shifts it.
    next(batch) -> wav [batch, segment_samples] float32."""

    def __init__(
        self,
        sets: Sequence[torch.Tensor],
        segment_samples: int,
        seed: int,
        balance: bool = True,
        gain_db: float = 0.0,
    ):
        if not sets or any(s.shape[0] == 0 for s in sets):
            raise TrainingError("the training set is empty")
        lengths = {s.shape[-1] for s in sets}
        if len(lengths) != 1:
            raise TrainingError(f"clips of different lengths across data roots: {sorted(lengths)}")
        self.clip_samples = lengths.pop()
        if segment_samples > self.clip_samples:
            raise TrainingError(
                f"segments of {segment_samples} samples are longer than the clips "
                f"({self.clip_samples}); lower data.segment_frames or raise data.seconds"
            )
        self.wavs = torch.cat(list(sets)).float()
        self.sizes = torch.tensor([s.shape[0] for s in sets])
        self.offsets = torch.cumsum(self.sizes, 0) - self.sizes
        self.segment_samples, self.balance, self.gain_db = segment_samples, balance, gain_db
        self.gen = torch.Generator().manual_seed(seed)

    def _draw_clips(self, n: int) -> torch.Tensor:
        if self.balance:
            which = torch.randint(len(self.sizes), (n,), generator=self.gen)
            within = (torch.rand(n, generator=self.gen) * self.sizes[which]).long()
            return self.offsets[which] + within.clamp_max(self.sizes[which] - 1)
        return torch.randint(self.wavs.shape[0], (n,), generator=self.gen)

    def next(self, batch: int) -> torch.Tensor:
        s = self.segment_samples
        idx = self._draw_clips(batch).tolist()
        start = torch.randint(self.clip_samples - s + 1, (batch,), generator=self.gen).tolist()
        # Silent stretches are kept on purpose: clips (and generated mels) are full of them, and
        # a vocoder that never saw the log floor fills it with noise, which mel L1 punishes.
        seg = torch.stack([self.wavs[i, j : j + s] for i, j in zip(idx, start)])
        if self.gain_db > 0:
            db = -torch.rand(batch, 1, generator=self.gen) * self.gain_db
            seg = seg * torch.pow(10.0, db / 20)
        return seg

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])


# ----------------------------------------------------------------------------------------------
# Training


def _lr(o: VocoderOptimConfig, base: float, step: int) -> float:
    """Linear warm-up, then cosine decay to base * min_lr_ratio over lr_decay_steps (Vocos decays
    with a cosine too); constant when lr_decay_steps = 0."""
    if o.warmup_steps and step < o.warmup_steps:
        return base * (step + 1) / o.warmup_steps
    if not o.lr_decay_steps:
        return base
    t = min(max(step - o.warmup_steps, 0) / o.lr_decay_steps, 1.0)
    return base * (o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


@torch.no_grad()
def _optimizer(params, o: VocoderOptimConfig, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay)


def _grad_norm(module: torch.nn.Module, clip: float) -> torch.Tensor:
    return torch.nn.utils.clip_grad_norm_(module.parameters(), clip if clip > 0 else float("inf"))


class _Trainer:
    """One GAN step at a time; holds G, its EMA, D, both optimisers and the data sampler."""

    def __init__(self, cfg: VocoderTrainConfig, sampler: SegmentSampler, device: torch.device):
        self.cfg, self.sampler, self.device = cfg, sampler, device
        loss = cfg.loss
        torch.manual_seed(cfg.run.seed)
        self.gen = NeuralVocoder(cfg.vocoder_config, name=cfg.name).to(device)
        self.ema = copy.deepcopy(self.gen).eval().requires_grad_(False)
        self.disc = Discriminators(
            loss.mpd_periods, loss.mpd_channels, loss.mrd_resolutions, loss.mrd_channels
        ).to(device)
        o = cfg.optim
        self.opt_g = _optimizer(self.gen.parameters(), o, o.lr)
        self.opt_d = _optimizer(self.disc.parameters(), o, o.lr_d or o.lr)
        self.step = 0
        self.bad_total = 0

    def reconstruction(
        self, fake: torch.Tensor, real: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        loss = self.cfg.loss
        mel = multi_resolution_mel_l1(fake, real, self.cfg.mel, loss.mel_resolutions).mean()
        stft = mr_stft_loss(fake, real, loss.stft_resolutions)
        return mel, stft

    def train_step(self) -> dict[str, float] | None:
        """One step; returns its losses, or None when it was skipped as non-finite."""
        cfg, loss, o = self.cfg, self.cfg.loss, self.cfg.optim
        for g in self.opt_g.param_groups:
            g["lr"] = _lr(o, o.lr, self.step)
        for g in self.opt_d.param_groups:
            g["lr"] = _lr(o, o.lr_d or o.lr, self.step)
        real = self.sampler.next(cfg.run.batch_size).to(self.device)
        mel = mel_spectrogram(real, cfg.mel)  # aligned with real by construction
        fake = self.gen(mel)
        adversarial = self.step >= loss.adv_start_step and loss.adv_weight + loss.fm_weight > 0
        rec: dict[str, float] = {}

        if adversarial:
            # Discriminator first, on a detached fake (HiFi-GAN's alternation).
            self.disc.requires_grad_(True)
            real_scores, _ = self.disc(real)
            fake_scores, _ = self.disc(fake.detach())
            loss_d = discriminator_loss(real_scores, fake_scores, loss.adv_kind)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            gn_d = _grad_norm(self.disc, o.grad_clip)
            if not (torch.isfinite(loss_d) and torch.isfinite(gn_d)):
                self.opt_d.zero_grad(set_to_none=True)
                return None
            self.opt_d.step()
            rec.update(loss_d=loss_d.item(), grad_norm_d=float(gn_d))

        loss_mel, loss_stft = self.reconstruction(fake, real)
        loss_g = loss.mel_weight * loss_mel + loss.stft_weight * loss_stft
        if loss.bass_weight > 0:
            nyquist = self.cfg.mel.sample_rate / 2
            loss_bass = mr_stft_loss(
                fake, real, loss.bass_resolutions, min(1.0, loss.bass_max_hz / nyquist), loss.bass_mag_weight
            )
            loss_g = loss_g + loss.bass_weight * loss_bass
            rec.update(bass=loss_bass.item())
        if adversarial:
            # D's own gradients are not needed here; freezing it saves their computation.
            self.disc.requires_grad_(False)
            with torch.no_grad():
                _, real_fmaps = self.disc(real)
            fake_scores, fake_fmaps = self.disc(fake)
            loss_adv = generator_loss(fake_scores, loss.adv_kind)
            loss_fm = feature_matching_loss(real_fmaps, fake_fmaps)
            loss_g = loss_g + loss.adv_weight * loss_adv + loss.fm_weight * loss_fm
            rec.update(loss_adv=loss_adv.item(), loss_fm=loss_fm.item())
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        gn_g = _grad_norm(self.gen, o.grad_clip)
        if not (torch.isfinite(loss_g) and torch.isfinite(gn_g)):
            self.opt_g.zero_grad(set_to_none=True)
            return None
        self.opt_g.step()
        if not all(bool(p.isfinite().all()) for p in self.gen.parameters()):
            raise TrainingError(
                f"generator weights became non-finite at step {self.step}; lower optim.lr"
            )
        ema_update(self.ema, self.gen, min(o.ema_decay, (1 + self.step) / (10 + self.step)))
        self.step += 1
        rec.update(
            loss_g=loss_g.item(),
            mel=loss_mel.item(),
            stft=loss_stft.item(),
            grad_norm_g=float(gn_g),
            lr=self.opt_g.param_groups[0]["lr"],
            adversarial=adversarial,
        )
        return rec

    def state(self) -> dict:
        return {
            "format": "cmaudio-state",
            "kind": "vocoder",
            "config": to_dict(self.cfg),
            "step": self.step,
            "generator": self.gen.state_dict(),
            "ema": self.ema.state_dict(),
            "discriminators": self.disc.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "sampler": self.sampler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "bad_total": self.bad_total,
        }

    def load(self, st: dict) -> None:
        self.gen.load_state_dict(st["generator"])
        self.ema.load_state_dict(st["ema"])
        self.disc.load_state_dict(st["discriminators"])
        self.opt_g.load_state_dict(st["opt_g"])
        self.opt_d.load_state_dict(st["opt_d"])
        self.sampler.load_state_dict(st["sampler"])
        torch.set_rng_state(st["torch_rng"])
        self.step, self.bad_total = int(st["step"]), int(st["bad_total"])


def train(
    cfg: VocoderTrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    clips: Sequence[torch.Tensor] | None = None,
    eval_clips: Sequence[tuple[str, torch.Tensor]] | None = None,
) -> VocoderRunResult:
    """Train ``cfg`` into ``run_dir``; with ``resume`` continue exactly from ``run_dir/state.pt``.

    ``clips`` (wavs [N_i, T] per set) and ``eval_clips`` ((name, wavs) per set) replace loading
    ``cfg.data.roots`` (tests, notebooks); otherwise both come from the roots."""
    run_dir = Path(run_dir)
    state_path = run_dir / "state.pt"
    if not resume and state_path.exists():
        raise TrainingError(
            f"{run_dir} already holds a run: pass --resume to continue it, or choose another --out"
        )
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    device = resolve_device(cfg.run.device)
    if clips is None:
        if not cfg.data.roots:
            raise TrainingError("data.roots is empty (use --set 'data.roots=[\"data/digits\"]')")
        loaded = load_clips(
            cfg.data.roots,
            cfg.mel,
            cfg.data.split,
            seconds=cfg.data.seconds,
            layout=cfg.data.layout,
            cache=cfg.data.cache,
            progress=progress,
        )
        clips = [w for _, w in loaded]
        if eval_clips is None and cfg.data.eval_clips and cfg.run.sample_every:
            eval_clips = _load_eval(cfg, progress)
    eval_clips = list(eval_clips or [])
    # segment_frames hops of audio; its centred mel has segment_frames + 1 frames and the
    # generator renders num_samples(segment_frames + 1) = exactly the segment back.
    seg = cfg.data.segment_frames * cfg.mel.hop_length
    sampler = SegmentSampler(clips, seg, cfg.run.seed, cfg.data.balance, cfg.data.gain_db)
    trainer = _Trainer(cfg, sampler, device)

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "samples").mkdir(exist_ok=True)
    if resume and state_path.exists():
        try:
            st = load_state(state_path)
        except CheckpointError as exc:
            raise TrainingError(str(exc)) from None
        if st.get("kind") != "vocoder":
            raise TrainingError(f"{state_path}: not a vocoder training state")
        check_resumable(st["config"], cfg, state_path, _RESUMABLE_CHANGES)
        trainer.load(st)
        truncate_log(run_dir / "log.jsonl", trainer.step)
        for tmp in run_dir.glob(".*.tmp"):  # torn writes of a killed run; renamed files are whole
            tmp.unlink(missing_ok=True)
        log.info("resuming %s at step %d", run_dir, trainer.step)
    else:
        if cfg.run.init:
            _warm_start(trainer, cfg, cfg.run.init)
        (run_dir / "log.jsonl").unlink(missing_ok=True)
    (run_dir / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
    vocoder_path = run_dir / "vocoder.safetensors"

    def save(snapshot: bool) -> None:
        extra = {"trained_on": ",".join(cfg.data.roots)}
        save_vocoder(vocoder_path, trainer.ema, cfg.name, trainer.step, extra=extra)
        if snapshot:
            path = run_dir / f"vocoder-{trainer.step:07d}.safetensors"
            save_vocoder(path, trainer.ema, cfg.name, trainer.step, extra=extra)
        save_state(state_path, trainer.state())

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(
            total=cfg.run.steps,
            initial=trainer.step,
            desc=cfg.name,
            unit="step",
            dynamic_ncols=True,
            file=sys.stderr,
        )
    t_start, start_step = time.perf_counter(), trainer.step
    window: list[dict] = []
    t_window = time.perf_counter()
    bad_in_row = 0
    last_eval: dict[str, float] = {}
    trainer.gen.train()
    while trainer.step < cfg.run.steps:
        rec = trainer.train_step()
        if rec is None:
            # Skip the update; never let a NaN reach the weights or a saved file.
            bad_in_row += 1
            trainer.bad_total += 1
            if bad_in_row >= cfg.run.max_bad_steps:
                if bar:
                    bar.close()
                raise TrainingError(
                    f"losses or gradients were non-finite for {bad_in_row} steps in a row at step "
                    f"{trainer.step}; stopped (last good vocoder: {vocoder_path}). Lower optim.lr."
                )
            continue
        bad_in_row = 0
        step = trainer.step
        window.append(rec)
        if bar:
            bar.update(1)
            bar.set_postfix(mel=f"{rec['mel']:.3f}", g=f"{rec['loss_g']:.3g}")
        if step % cfg.run.log_every == 0 or step == cfg.run.steps:
            now = time.perf_counter()
            out = {"step": step}
            for key in (
                "loss_g",
                "mel",
                "stft",
                "loss_d",
                "loss_adv",
                "loss_fm",
                "grad_norm_g",
                "grad_norm_d",
            ):
                vals = [r[key] for r in window if key in r]
                if vals:
                    out[key] = sum(vals) / len(vals)
            out.update(
                lr=rec["lr"],
                adversarial=rec["adversarial"],
                bad_steps=trainer.bad_total,
                s_per_step=(now - t_window) / len(window),
                segments_per_s=len(window) * cfg.run.batch_size / (now - t_window),
            )
            _append_log(run_dir, out)
            window, t_window = [], now
        snapshot = bool(cfg.run.snapshot_every) and step % cfg.run.snapshot_every == 0
        if step % cfg.run.save_every == 0 or step == cfg.run.steps or snapshot:
            save(snapshot)
        if (
            cfg.run.sample_every
            and (step % cfg.run.sample_every == 0 or step == cfg.run.steps)
            and eval_clips
        ):
            last_eval = _evaluate_and_sample(
                trainer.ema, cfg, eval_clips, run_dir / "samples", step
            )
            _append_log(run_dir, {"step": step, **{f"eval_{k}": v for k, v in last_eval.items()}})
            t_window = time.perf_counter()  # keep evaluation time out of the speed figures
    if bar:
        bar.close()
    seconds = time.perf_counter() - t_start
    done = trainer.step - start_step
    result = VocoderRunResult(
        trainer.step,
        seconds,
        seconds / max(done, 1),
        trainer.bad_total,
        str(vocoder_path),
        last_eval,
    )
    quality = ""
    if last_eval:
        quality = f"; held-out mel L1 {last_eval['mel_l1']:.3f}, MR-STFT {last_eval['mr_stft']:.3f}"
    print(
        f"trained {done} vocoder steps in {seconds:.1f} s ({result.seconds_per_step:.2f} s/step, "
        f"batch {cfg.run.batch_size} x {cfg.data.segment_frames} frames) on {device.type}; "
        f"{trainer.bad_total} skipped steps{quality}; vocoder: {vocoder_path}",
        file=sys.stderr,
    )
    return result


def _weights_config(config: VocoderConfig) -> VocoderConfig:
    """The part of a VocoderConfig the weights depend on: the mel-consistency refinement after
    the network (net.mel_refine*) has no parameters, so a warm start may switch it on or off."""
    d = VocoderNetConfig()
    net = dataclasses.replace(
        config.net, mel_refine=0, mel_refine_updates=d.mel_refine_updates, mel_refine_cap=d.mel_refine_cap
    )
    return dataclasses.replace(config, net=net)


def _warm_start(trainer: _Trainer, cfg: VocoderTrainConfig, path: str) -> None:
    """Load G (and its EMA) from a vocoder file whose mel and net equal ``cfg``'s; anything else
    is a one-line TrainingError. The step count, optimisers and discriminators start fresh."""
    try:
        _, config = read_vocoder_metadata(path)
        if _weights_config(config) != _weights_config(cfg.vocoder_config):
            raise TrainingError(
                f"run.init {path}: its mel/net config differs from this recipe's; a warm start "
                "needs the same generator"
            )
        load_weights(path, trainer.gen)
    except CheckpointError as exc:
        raise TrainingError(f"run.init: {exc}") from None
    trainer.ema.load_state_dict(trainer.gen.state_dict())
    log.info("warm start from %s", path)


def _load_eval(cfg: VocoderTrainConfig, progress: bool) -> list[tuple[str, torch.Tensor]]:
    """data.eval_clips clips of data.eval_split of every root that has that split."""
    from ..data import DatasetError

    out = []
    for root in dict.fromkeys(cfg.data.roots):  # a root listed twice (drawn twice as often) is scored once
        try:
            out += load_clips(
                [root],
                cfg.mel,
                cfg.data.eval_split,
                seconds=cfg.data.seconds,
                layout=cfg.data.layout,
                cache=cfg.data.cache,
                progress=progress,
                limit=cfg.data.eval_clips,
            )
        except DatasetError as exc:
            log.warning("no held-out evaluation for %s (%s)", root, exc)
    return out


def _append_log(run_dir: Path, rec: dict) -> None:
    with open(run_dir / "log.jsonl", "a") as fh:
        fh.write(json.dumps(rec) + "\n")


@torch.no_grad()
def _evaluate_and_sample(
    ema: NeuralVocoder,
    cfg: VocoderTrainConfig,
    eval_clips: Sequence[tuple[str, torch.Tensor]],
    out: Path,
    step: int,
) -> dict[str, float]:
    """Copy-synthesis metrics of the EMA generator over all held-out clips (clip-weighted mean),
    and a few rendered clips as wav plus a png of reference-over-vocoded log-mels. Uses no
    random numbers, so it cannot disturb exact resume."""
    from ..audio import save_audio

    totals: dict[str, float] = {}
    n = 0
    refs, names = [], []
    for name, wavs in eval_clips:
        m = evaluate_copy_synthesis(ema, wavs, cfg.mel, with_pesq=False)
        for k in ("mr_stft", "mel_l1"):
            totals[k] = totals.get(k, 0.0) + m[k] * m["clips"]
        n += m["clips"]
        refs.append(wavs[:_SAMPLES_PER_ROOT])
        names += [f"{name}{i}" for i in range(min(_SAMPLES_PER_ROOT, wavs.shape[0]))]
    ref = torch.cat(refs).float()
    mel = mel_spectrogram(ref, cfg.mel)
    device = next(ema.parameters()).device
    fake = ema(mel.to(device)).float().cpu()
    for nm, w in zip(names, fake):
        save_audio(out / f"step{step:07d}_{nm}.wav", w.clamp(-1, 1), cfg.mel.sample_rate)
    try:
        from ..plots import spectrogram_grid

        grid = torch.cat([mel, mel_spectrogram(fake, cfg.mel)])  # same frame count by construction
        titles = [f"{nm} ref" for nm in names] + [f"{nm} voc" for nm in names]
        spectrogram_grid(grid, titles, out / f"step{step:07d}.png", cfg.mel, cols=len(names))
    except ImportError:
        pass  # matplotlib is an optional extra; the wavs are written regardless
    return {k: v / max(n, 1) for k, v in totals.items()}


# ----------------------------------------------------------------------------------------------
# Copy-synthesis comparison


def compare(
    vocoders: Sequence[str],
    roots: Sequence[str],
    *,
    split: str = "test",
    clips: int = 0,
    seconds: float = 1.0,
    gl_iters: int = 32,
    batch_size: int = 16,
    progress: bool = True,
) -> list[dict]:
    """Copy synthesis on the held-out ``split`` of each root: Griffin-Lim (``gl_iters``) and each
    vocoder (bundled name or file). Returns one row per (data set, vocoder) with the metrics of
    ``cmaudio.spectral.evaluate_copy_synthesis``; every vocoder must share one MelConfig."""
    from . import GriffinLim, load_vocoder

    loaded = [load_vocoder(v) for v in vocoders]
    mel = loaded[0].mel_config if loaded else MelConfig()
    for v in loaded[1:]:
        if v.mel_config != mel:
            raise UsageError(
                f"vocoders {loaded[0].name!r} and {v.name!r} use different mel front ends"
            )
    baseline = GriffinLim(mel, n_iter=gl_iters)
    baseline.name = f"griffinlim-{gl_iters}"
    rows = []
    for name, wavs in load_clips(
        roots, mel, split, seconds=seconds, progress=progress, limit=clips
    ):
        for voc in [baseline, *loaded]:
            m = evaluate_copy_synthesis(voc, wavs, mel, batch_size=batch_size)
            rows.append({"data": name, "vocoder": voc.name, **m})
    return rows


def format_table(rows: Sequence[dict]) -> str:
    """Markdown table of ``compare`` rows (lower is better except PESQ and x-real-time)."""
    pesq = any("pesq_wb" in r for r in rows)
    head = "| data | vocoder | clips | MR-STFT | SC | log-mag L1 | mel L1 |" + (
        " PESQ-wb |" if pesq else ""
    )
    head += " x real time |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = [
            r["data"],
            r["vocoder"],
            str(r["clips"]),
            f"{r['mr_stft']:.4f}",
            f"{r['sc']:.4f}",
            f"{r['log_mag']:.4f}",
            f"{r['mel_l1']:.4f}",
        ]
        if pesq:
            cells.append(f"{r['pesq_wb']:.3f}" if "pesq_wb" in r else "-")
        cells.append(f"{r['x_realtime']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# CLI

EXAMPLES = """examples:
  python -m cmaudio.vocoder.train recipes/vocoder/vocoder.toml --out runs/vocoder-16k
  python -m cmaudio.vocoder.train recipes/vocoder/vocoder.toml --out runs/vocoder-16k --resume
  python -m cmaudio.vocoder.train recipes/vocoder/tiny.toml --set run.steps=50 --out runs/voc-tiny
  python -m cmaudio.vocoder.train recipes/vocoder/vocoder.toml --dry-run
  python -m cmaudio.vocoder.train --compare runs/vocoder-16k/vocoder.safetensors \\
      --data data/digits data/notes/manifest.jsonl data/drums --split test --threads 1
"""


def _body(argv: Sequence[str] | None) -> int:
    p = Parser(
        "cmaudio.vocoder.train",
        "Train the neural vocoder (GAN, Vocos-style), or compare vocoders by copy synthesis.",
        EXAMPLES,
    )
    p.add_argument("config", nargs="?", help="recipe TOML file (not with --compare or --export)")
    p.add_run_arguments()
    g = p.add_argument_group("comparison (copy synthesis on held-out clips)")
    g.add_argument(
        "--compare",
        nargs="+",
        metavar="VOCODER",
        default=None,
        help="vocoder files or bundled names, scored against Griffin-Lim",
    )
    g.add_argument(
        "--data",
        nargs="+",
        metavar="DIR",
        default=None,
        help="data roots: folders (SC09-style) or manifest files",
    )
    g.add_argument("--split", default="test", help="split to score (default: test)")
    g.add_argument(
        "--clips", type=int, default=0, help="N clips per root, evenly spaced (default: all)"
    )
    g.add_argument("--seconds", type=float, default=1.0, help="clip length (default: 1.0)")
    g.add_argument("--gl-iters", type=int, default=32, help="Griffin-Lim iterations (default: 32)")
    g.add_argument("--json", default=None, help="also write the rows as JSON here")
    g.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads for the timing (default: torch's; 1 on a shared CPU)",
    )
    e = p.add_argument_group("export (re-save a vocoder file, e.g. for cmaudio/assets)")
    e.add_argument("--export", nargs=2, metavar=("SRC", "DST"), default=None, help="source and destination files")
    e.add_argument(
        "--mel-refine",
        type=int,
        default=None,
        help="with --export: set net.mel_refine (mel-consistency passes after the network; no weights change)",
    )
    e.add_argument(
        "--mel-refine-updates",
        type=int,
        default=None,
        help="with --export: set net.mel_refine_updates (band-gain updates per pass)",
    )
    args = p.parse_args(argv)

    if args.export is not None:
        if args.config or args.compare is not None or args.resume or args.out:
            raise UsageError("--export takes no CONFIG, --compare, --out or --resume")
        export_vocoder(*args.export, mel_refine=args.mel_refine, mel_refine_updates=args.mel_refine_updates)
        return 0
    if args.mel_refine is not None or args.mel_refine_updates is not None:
        raise UsageError("--mel-refine and --mel-refine-updates go with --export SRC DST")
    if args.compare is not None:
        if args.config or args.resume or args.out:
            raise UsageError("--compare takes no CONFIG, --out or --resume")
        if not args.data:
            raise UsageError("--compare needs --data DIR [DIR ...]")
        if args.clips < 0 or args.gl_iters < 1 or args.seconds <= 0 or args.threads < 0:
            raise UsageError(
                "--clips and --threads must be >= 0, --gl-iters >= 1 and --seconds > 0"
            )
        if args.threads:
            torch.set_num_threads(args.threads)
        t0 = time.perf_counter()
        rows = compare(
            args.compare,
            args.data,
            split=args.split,
            clips=args.clips,
            seconds=args.seconds,
            gl_iters=args.gl_iters,
            progress=not args.no_progress,
        )
        print(format_table(rows))
        print(
            f"\n{time.perf_counter() - t0:.1f} s wall, {torch.get_num_threads()} torch thread(s), "
            f"split {args.split}",
            file=sys.stderr,
        )
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
        return 0
    if not args.config:
        raise UsageError("give a CONFIG.toml to train, or --compare VOCODER --data DIR")
    cfg = load_config(args.config, args.overrides, cls=VocoderTrainConfig)
    run_dir = Path(args.out or os.path.join("runs", cfg.name))
    if args.dry_run:
        print(json.dumps(to_dict(cfg), indent=2))
        print(
            f"dry run: would train vocoder {cfg.name!r} for {cfg.run.steps} steps into {run_dir}",
            file=sys.stderr,
        )
        return 0
    train(cfg, run_dir, resume=args.resume, progress=not args.no_progress)
    return 0


def export_vocoder(
    src: str | Path, dst: str | Path, *, mel_refine: int | None = None, mel_refine_updates: int | None = None
) -> Path:
    """Re-save the vocoder file ``src`` as ``dst`` (weights, name and step unchanged), with
    ``net.mel_refine`` / ``net.mel_refine_updates`` replaced when given. Prints one line."""
    try:
        meta, config = read_vocoder_metadata(src)
        changes = {}
        if mel_refine is not None:
            if mel_refine < 0:
                raise UsageError(f"--mel-refine must be >= 0, got {mel_refine}")
            changes["mel_refine"] = mel_refine
        if mel_refine_updates is not None:
            if mel_refine_updates < 1:
                raise UsageError(f"--mel-refine-updates must be >= 1, got {mel_refine_updates}")
            changes["mel_refine_updates"] = mel_refine_updates
        config = dataclasses.replace(config, net=dataclasses.replace(config.net, **changes))
        name = meta.get("name") or Path(src).stem
        out = NeuralVocoder(config, name=name)
        load_weights(src, out)  # the refinement has no weights: the same tensors load strictly
    except (CheckpointError, ConfigError) as exc:
        raise UsageError(str(exc)) from None
    path = Path(dst)
    step = int(meta["step"]) if meta.get("step", "").isdigit() else 0
    save_vocoder(path, out, name, step, extra={k: meta[k] for k in ("trained_on",) if k in meta})
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, step {step}, mel_refine {config.net.mel_refine}, "
        f"{config.net.mel_refine_updates} update(s) per pass)",
        file=sys.stderr,
    )
    return path


def main(argv: Sequence[str] | None = None) -> int:
    return main_wrapper("cmaudio.vocoder.train", _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
