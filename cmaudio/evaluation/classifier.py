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

Training (``python -m cmaudio.train recipes/<name>/classifier.toml``) lives in
cmaudio.training.classifier.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..audio import MelConfig, MelStats
from ..checkpoint import load_weights, read_header, write_weights
from ..config import check_field

__all__ = [
    "CLASSIFIER_FORMAT",
    "CLASSIFIER_FORMAT_VERSION",
    "ClassifierNetConfig",
    "ClassifierConfig",
    "MelClassifier",
    "save_classifier",
    "load_classifier",
    "read_classifier_metadata",
    "file_sha256",
]

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
