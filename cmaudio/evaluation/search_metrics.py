"""The metrics a sigma search can optimise (``python -m cmaudio.evaluate --search-sigmas
--metric NAME``), one table entry each: what it needs, what it compares against, how a set of
generated mels is scored, and whether lower is better. The search minimises ``objective``:
the value itself, or 1 - value for an accuracy (higher is better, in [0, 1]).

Candidates are scored on the model's own mels (no vocoder), except the pitch metric, which
needs audio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..audio import denormalise
from .metrics import feature_stats, frechet_distance, logmel_fd, logmel_frame_stats, pitch_accuracy

__all__ = ["SEARCH_METRICS", "SearchContext", "SearchMetric"]


@dataclass(frozen=True)
class SearchContext:
    """What the score functions read: the pipeline, the requested label of each generated clip,
    the classifier, the pitch targets and the validation split's reference statistics."""

    pipe: object
    labels: list[str | None]
    classifier: object | None = None
    pitch: dict[str, float] | None = None
    reference: tuple | None = None
    batch_size: int = 64

    def classify(self, mels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Classifier probabilities and embeddings of normalised mels."""
        return self.classifier.predict(denormalise(mels, self.pipe.config.stats), self.batch_size)


def _logmel_fd(ctx: SearchContext, mels: torch.Tensor) -> float:
    return logmel_fd(logmel_frame_stats(denormalise(mels, ctx.pipe.config.stats)), ctx.reference)


def _classifier_fd(ctx: SearchContext, mels: torch.Tensor) -> float:
    _, emb = ctx.classify(mels)
    return frechet_distance(feature_stats(emb), ctx.reference)


def _accuracy(ctx: SearchContext, mels: torch.Tensor) -> float:
    probs, _ = ctx.classify(mels)
    index = {name: i for i, name in enumerate(ctx.classifier.classes)}
    target = torch.tensor([index[lb] for lb in ctx.labels])
    return float((probs.argmax(-1) == target).double().mean())


def _pitch(ctx: SearchContext, mels: torch.Tensor) -> float:
    bs = ctx.batch_size
    wavs = torch.cat([ctx.pipe.vocode(mels[i : i + bs]).cpu() for i in range(0, len(mels), bs)])
    return pitch_accuracy(wavs, ctx.pipe.sample_rate, [ctx.pitch[lb] for lb in ctx.labels])[0]


@dataclass(frozen=True)
class SearchMetric:
    """One entry of the table.

    ``needs``: "classifier" (a --classifier file), "classifier_labels" (one that knows every class
    of the model's first factor) or "pitch" (a pitched model); ``reference``: the key of
    Scorer.features of the validation split it compares against, or None; ``value``: the metric
    of a set of normalised mels [n, n_mels, frames] generated for ``SearchContext.labels``."""

    name: str
    title: str
    lower_is_better: bool
    needs: frozenset[str]
    reference: str | None
    value: Callable[[SearchContext, torch.Tensor], float]

    @property
    def shown(self) -> str:
        """What the objective is called in the search's output."""
        return self.title if self.lower_is_better else f"1 - {self.title}"

    def objective(self, ctx: SearchContext, mels: torch.Tensor) -> float:
        """What the search minimises."""
        v = self.value(ctx, mels)
        return v if self.lower_is_better else 1.0 - v


SEARCH_METRICS: dict[str, SearchMetric] = {
    m.name: m
    for m in (
        SearchMetric("logmel_fd", "log-mel FD", True, frozenset(), "frame_stats", _logmel_fd),
        SearchMetric("classifier_fd", "classifier FD", True, frozenset({"classifier"}), "emb_stats", _classifier_fd),
        SearchMetric("accuracy", "accuracy", False, frozenset({"classifier", "classifier_labels"}), None, _accuracy),
        SearchMetric("pitch", "pitch accuracy", False, frozenset({"pitch"}), None, _pitch),
    )
}
