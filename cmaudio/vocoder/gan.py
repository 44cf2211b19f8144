"""One GAN training step of the neural vocoder (Vocos: Siuzdak 2023; HiFi-GAN: Kong et al. 2020).

``GANTrainer`` holds the generator G (a NeuralVocoder), its EMA (what is saved and sampled), the
discriminators D (discriminators.py), both AdamW optimisers and the segment sampler, and
``train_step`` runs one step on a batch of random segments whose raw log-mel is computed on the
fly (``cmaudio.audio.mel_spectrogram``, so mel and waveform are aligned by construction):

- reconstruction: multi-resolution mel L1 (``loss.mel_weight``, 45 as HiFi-GAN) plus the
  multi-resolution STFT distance (spectral convergence + log magnitude, Yamamoto et al. 2020),
  and optionally a band-limited long-window STFT term for bass pitch (``loss.bass_weight``);
- from step ``loss.adv_start_step`` on, adversarial training against a multi-period and a
  multi-resolution discriminator, hinge or LSGAN, plus feature matching; D steps first, on a
  detached fake.

Linear warm-up then optional cosine decay of the learning rates, global-norm gradient clipping,
and a step whose losses or gradients are not finite changes nothing and returns None (the loop
counts those). ``state``/``load`` are the GAN half of the run's ``state.pt`` (exact resume).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math

import torch

from ..audio import mel_spectrogram
from ..checkpoint import load_weights
from ..config import to_dict
from ..errors import CheckpointError, TrainingError
from ..spectral import mr_stft_loss, multi_resolution_mel_l1
from ..training.harness import ema_update
from .config import VocoderOptimConfig, VocoderTrainConfig
from .data import SegmentSampler
from .discriminators import Discriminators, discriminator_loss, feature_matching_loss, generator_loss
from .neural import NeuralVocoder, VocoderConfig, VocoderNetConfig, read_vocoder_metadata

__all__ = ["GANTrainer", "learning_rate", "weights_config"]

log = logging.getLogger("cmaudio")


def learning_rate(o: VocoderOptimConfig, base: float, step: int) -> float:
    """Linear warm-up, then cosine decay to base * min_lr_ratio over lr_decay_steps (Vocos decays
    with a cosine too); constant when lr_decay_steps = 0."""
    if o.warmup_steps and step < o.warmup_steps:
        return base * (step + 1) / o.warmup_steps
    if not o.lr_decay_steps:
        return base
    t = min(max(step - o.warmup_steps, 0) / o.lr_decay_steps, 1.0)
    return base * (o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def _optimizer(params, o: VocoderOptimConfig, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay)


def _grad_norm(module: torch.nn.Module, clip: float) -> torch.Tensor:
    return torch.nn.utils.clip_grad_norm_(module.parameters(), clip if clip > 0 else float("inf"))


def weights_config(config: VocoderConfig) -> VocoderConfig:
    """The part of a VocoderConfig the weights depend on: the mel-consistency refinement after
    the network (net.mel_refine*) has no parameters, so a warm start may switch it on or off."""
    d = VocoderNetConfig()
    net = dataclasses.replace(
        config.net,
        mel_refine=0,
        mel_refine_updates=d.mel_refine_updates,
        mel_refine_cap=d.mel_refine_cap,
        mel_refine_momentum=d.mel_refine_momentum,
    )
    return dataclasses.replace(config, net=net)


class GANTrainer:
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
            g["lr"] = learning_rate(o, o.lr, self.step)
        for g in self.opt_d.param_groups:
            g["lr"] = learning_rate(o, o.lr_d or o.lr, self.step)
        real = self.sampler.next(cfg.run.batch_size).to(self.device)
        mel = mel_spectrogram(real, cfg.mel)  # aligned with real by construction
        fake = self.gen(mel)
        adversarial = self.step >= loss.adv_start_step and loss.adv_weight + loss.fm_weight > 0
        rec: dict[str, float] = {}
        if adversarial and not self._discriminator_step(real, fake, rec):
            return None
        loss_g, loss_mel, loss_stft = self._generator_loss(real, fake, adversarial, rec)
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

    def _discriminator_step(self, real: torch.Tensor, fake: torch.Tensor, rec: dict) -> bool:
        """D's update on a detached fake (HiFi-GAN's alternation, D first); False, with nothing
        changed, when its loss or gradient is not finite."""
        self.disc.requires_grad_(True)
        real_scores, _ = self.disc(real)
        fake_scores, _ = self.disc(fake.detach())
        loss_d = discriminator_loss(real_scores, fake_scores, self.cfg.loss.adv_kind)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        gn_d = _grad_norm(self.disc, self.cfg.optim.grad_clip)
        if not (torch.isfinite(loss_d) and torch.isfinite(gn_d)):
            self.opt_d.zero_grad(set_to_none=True)
            return False
        self.opt_d.step()
        rec.update(loss_d=loss_d.item(), grad_norm_d=float(gn_d))
        return True

    def _generator_loss(
        self, real: torch.Tensor, fake: torch.Tensor, adversarial: bool, rec: dict
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(G's total loss, its mel term, its MR-STFT term); the bass, adversarial and feature
        matching terms go into ``rec``."""
        loss = self.cfg.loss
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
        return loss_g, loss_mel, loss_stft

    def warm_start(self, path: str) -> None:
        """Load G (and its EMA) from a vocoder file whose mel and net equal the config's (the
        refinement aside); anything else is a one-line TrainingError. The step count, optimisers
        and discriminators stay fresh."""
        try:
            _, config = read_vocoder_metadata(path)
            if weights_config(config) != weights_config(self.cfg.vocoder_config):
                raise TrainingError(
                    f"run.init {path}: its mel/net config differs from this recipe's; a warm start "
                    "needs the same generator"
                )
            load_weights(path, self.gen)
        except CheckpointError as exc:
            raise TrainingError(f"run.init: {exc}") from None
        self.ema.load_state_dict(self.gen.state_dict())
        log.info("warm start from %s", path)

    def state(self) -> dict:
        """Everything exact resume needs (the keys of the run's state.pt)."""
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
