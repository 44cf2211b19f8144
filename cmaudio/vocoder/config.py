"""The vocoder training recipe as dataclasses: one per TOML table ([data], [loss], [optim],
[run]; [mel] and [net] are the vocoder's own, neural.py) and ``VocoderTrainConfig`` holding them,
saved resolved as RUN/config.json. Every value is checked when the config is built
(``cmaudio.config.from_dict`` / ``load_config``): a bad one is a one-line ConfigError naming its key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..audio import MelConfig
from ..config import check_field
from ..spectral import STFT_RESOLUTIONS
from .neural import VocoderConfig, VocoderNetConfig

__all__ = [
    "RESUMABLE_CHANGES",
    "VocoderDataConfig",
    "VocoderLossConfig",
    "VocoderOptimConfig",
    "VocoderRunConfig",
    "VocoderTrainConfig",
    "VocoderRunResult",
]

# Run fields that may change between a run and its resumption without changing the optimisation.
RESUMABLE_CHANGES = frozenset(
    {
        "steps",
        "log_every",
        "sample_every",
        "save_every",
        "snapshot_every",
        "threads",
        "max_bad_steps",
    }
)


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
    """What ``train`` returns: the final step, wall time, skipped steps, the vocoder file and the
    last held-out metrics (empty when there were none)."""

    steps: int
    seconds: float
    seconds_per_step: float
    bad_steps: int
    vocoder_path: str
    eval: dict[str, float] = field(default_factory=dict)
