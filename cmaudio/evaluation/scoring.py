"""Scoring a set of clips against a reference set with every metric that applies (``Scorer``),
and the options every scoring run (evaluation, sigma search) shares (``ScoringOptions``).

Metrics: log-mel frame FD (no trained model); with a recipe classifier, accuracy of the requested
label, classifier FD, inception and modified inception scores, precision and recall; pitch
accuracy by pYIN for pitched models; silence and clipping rates; DNSMOS when asked for speech.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..audio import mel_spectrogram, resample
from ..errors import EvaluationError
from .metrics import (
    clipping_rate,
    feature_stats,
    frechet_distance,
    inception_score,
    logmel_fd,
    logmel_frame_stats,
    modified_inception_score,
    pitch_accuracy,
    precision_recall,
    silence_rate,
)

__all__ = ["ScoringOptions", "Scorer", "dnsmos_available", "dnsmos_scores"]

# Clips per mel_spectrogram call.
MEL_BATCH = 256


@dataclass(frozen=True)
class ScoringOptions:
    """Options of any scoring run: the real data set, the classifier, and how clips are made."""

    data: str | Path
    seed: int = 0  # clip i of a generated set uses seed + i
    classifier: str | Path | None = None  # recipe classifier file (cmaudio.evaluation.classifier)
    batch_size: int = 64
    device: str = "auto"
    vocoder: str | None = None  # name or path; None: the best match for the model
    pitch: str = "auto"  # read class names as pitches: auto, hz, midi or off (clips.pitch_targets)
    layout: str = "auto"  # data set layout (cmaudio.data.index_dataset)
    manifest: str = ""
    progress: bool = True  # progress lines on stderr

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise EvaluationError("--batch-size must be >= 1")

    def note(self, msg: str) -> None:
        """A progress line on stderr (unless ``progress`` is off)."""
        if self.progress:
            print(msg, file=sys.stderr, flush=True)


def logmels(wavs: torch.Tensor, mel) -> torch.Tensor:
    """Raw log-mels of clips [N, T], computed MEL_BATCH clips at a time."""
    return torch.cat([mel_spectrogram(wavs[i : i + MEL_BATCH], mel) for i in range(0, len(wavs), MEL_BATCH)])


class Scorer:
    """Scores a set of clips against a reference set with every metric that applies."""

    def __init__(self, pipe, classifier=None, pitch: dict[str, float] | None = None, dnsmos: bool = False,
                 k: int = 3, batch_size: int = 64):
        self.pipe = pipe
        self.mel = pipe.config.mel
        self.sr = pipe.sample_rate
        self.clf = classifier
        self.pitch = pitch
        self.dnsmos = dnsmos
        self.k = k
        self.batch_size = batch_size
        self.ref: dict | None = None

    def logmels(self, wavs: torch.Tensor) -> torch.Tensor:
        return logmels(wavs, self.mel)

    def features(self, wavs: torch.Tensor | None, mels: torch.Tensor) -> dict:
        """Everything the metrics need of one set: frame stats, classifier outputs."""
        out = {"frame_stats": logmel_frame_stats(mels)}
        if self.clf is not None:
            clf_mels = mels if self.clf.config.mel == self.mel else logmels(wavs, self.clf.config.mel)
            out["probs"], out["emb"] = self.clf.predict(clf_mels, self.batch_size)
            out["emb_stats"] = feature_stats(out["emb"])
        return out

    def set_reference(self, wavs: torch.Tensor) -> None:
        self.ref = self.features(wavs, self.logmels(wavs))

    def score(self, wavs: torch.Tensor, labels: Sequence[str | None], against_reference: bool = True) -> dict:
        """Metrics of clips wav [N, T] whose requested (or, for real clips, true) first-factor
        labels are ``labels``; distances against the reference set unless told not to."""
        # An unstable sampler can overflow the vocoder; such clips are scored as silence and
        # counted, rather than turning every distance into NaN.
        bad = ~torch.isfinite(wavs).all(-1)
        m: dict = {"nonfinite_rate": float(bad.double().mean())}
        wavs = torch.where(bad[:, None], torch.zeros_like(wavs), wavs)
        feats = self.features(wavs, self.logmels(wavs))
        ref = self.ref if against_reference else None
        if ref is not None:
            m["logmel_fd"] = logmel_fd(feats["frame_stats"], ref["frame_stats"])
        if self.clf is not None:
            m.update(self.classifier_scores(feats, ref, labels))
        if self.pitch is not None and labels and all(lb in self.pitch for lb in labels):
            acc, err = pitch_accuracy(wavs, self.sr, [self.pitch[lb] for lb in labels])
            m["pitch_accuracy"] = acc
            voiced = err[~torch.isnan(err)]
            m["pitch_median_abs_cents"] = float(voiced.abs().median()) if len(voiced) else None
        m["silence_rate"] = silence_rate(wavs)
        m["clipping_rate"] = clipping_rate(wavs)
        if self.dnsmos:
            m.update(dnsmos_scores(wavs, self.sr))
        return m

    def classifier_scores(self, feats: dict, ref: dict | None, labels: Sequence[str | None]) -> dict:
        """Accuracy (when the classifier knows every label), IS, mIS and, against a reference
        set, classifier FD, precision and recall."""
        m: dict = {}
        probs = feats["probs"]
        index = {name: i for i, name in enumerate(self.clf.classes)}
        if labels and all(lb in index for lb in labels):
            target = torch.tensor([index[lb] for lb in labels])
            m["accuracy"] = float((probs.argmax(-1) == target).double().mean())
        m["inception_score"] = inception_score(probs)
        m["modified_inception_score"] = modified_inception_score(probs)
        if ref is not None:
            m["classifier_fd"] = frechet_distance(feats["emb_stats"], ref["emb_stats"])
            if min(len(feats["emb"]), len(ref["emb"])) > self.k:
                m.update(precision_recall(ref["emb"], feats["emb"], k=self.k))
        return m


def dnsmos_scores(wavs: torch.Tensor, sample_rate: int) -> dict:
    """Mean DNSMOS P.835 (Reddy et al. 2022) scores via speechmos, at 16 kHz."""
    from speechmos import dnsmos

    wavs = resample(wavs, sample_rate, 16000).clamp(-1, 1)
    runs = [dnsmos.run(w.numpy(), sr=16000) for w in wavs]
    return {f"dnsmos_{k}": float(sum(r[f"{k}_mos"] for r in runs) / len(runs)) for k in ("ovrl", "sig", "bak", "p808")}


def dnsmos_available() -> bool:
    try:
        import speechmos  # noqa: F401
    except ImportError:
        return False
    return True
