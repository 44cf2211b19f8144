"""Choosing a consistency model's intermediate sigmas by search, and storing them in its file.

Multistep consistency sampling evaluates f at sigma_max and then at a decreasing list of
intermediate noise levels (Song et al. 2023, Algorithm 1). Which levels work best depends on the
trained model, so they are searched on a validation metric and stored per step count in the model
file (ModelConfig.sigmas, keys "2", "4", ...), where Pipeline.sigmas_for finds them.

``search_sigmas`` is a pure search over a score function (lower is better): the first sigma stays
sigma_max and the free points are tuned greedily one at a time (coordinate descent), each by a
golden-section search -- the ternary search that reuses one interior point per iteration -- on
log sigma, inside the open interval between its neighbours, so the list stays strictly
decreasing. The incumbent value is always one of the candidates, so a search never returns a
worse list than it started from, even on a noisy, not quite unimodal metric. Image CMs landed
near 0.8 to 1.5 for the second of two steps (Song et al. 2023; Song & Dhariwal 2023).

``write_sigmas`` puts the chosen lists into a model file (a new file, or in place, atomically).

``search`` (python -m cmaudio.evaluate --search-sigmas) runs it on a model: on the validation
split, each step count's intermediate sigmas are tuned on one metric of the table
cmaudio.evaluation.search_metrics, with the same seeds and labels for every candidate, and
written into the model file (a new file, ``out``, or in place, ``write``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..checkpoint import CheckpointError, load_model, save_model
from ..config import ModelConfig
from ..errors import EvaluationError
from ..pipeline import Pipeline
from ..sampling import check_sigmas
from ..schedules import karras_sigmas
from .classifier import file_sha256, load_classifier
from .clips import balanced_labels, load_clips, pitch_targets
from .scoring import Scorer, ScoringOptions
from .search_metrics import SEARCH_METRICS, SearchContext, SearchMetric

__all__ = ["SearchConfig", "SearchResult", "search", "search_evaluations", "search_sigmas", "with_sigmas",
           "write_sigmas"]

_GOLDEN = (math.sqrt(5) - 1) / 2  # 0.618...: the interval shrinks by this per evaluation


@dataclass
class SearchResult:
    """The best list found, its score, and every (sigmas, score) evaluated, in order."""

    sigmas: list[float]
    score: float
    start: list[float]
    start_score: float
    history: list[tuple[list[float], float]] = field(default_factory=list)

    @property
    def evaluations(self) -> int:
        return len(self.history)


def search_evaluations(steps: int, iters: int, sweeps: int = 1) -> int:
    """The most score evaluations search_sigmas makes for a ``steps``-long list: the start, then
    per free sigma and sweep its two interior points and one more per iteration (repeats are
    cached, so a search may make fewer)."""
    return 1 + sweeps * (steps - 1) * (iters + 2)


def search_sigmas(
    score_fn: Callable[[list[float]], float],
    steps: int,
    sigma_min: float,
    sigma_max: float,
    *,
    init: Sequence[float] | None = None,
    iters: int = 6,
    sweeps: int = 1,
    margin: float = 1e-3,
) -> SearchResult:
    """Greedy coordinate-wise golden-section (ternary) search of a ``steps``-long sigma list.

    score_fn(sigmas) -> float, lower is better; called with strictly decreasing lists that start
    at sigma_max and stay inside (sigma_min, sigma_max]. ``init``: the starting list (default the
    Karras grid of steps + 1 levels without its last); ``iters``: interval reductions per point
    (each one evaluation; the log-interval shrinks by 0.618^iters); ``sweeps``: passes over the
    points from the largest down; ``margin``: the smallest log-distance kept between neighbours.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if iters < 1 or sweeps < 1:
        raise ValueError("iters and sweeps must be >= 1")
    if init is None:
        init = karras_sigmas(steps + 1, sigma_min, sigma_max).tolist()[:-1]
    current = check_sigmas(init, sigma_min, sigma_max)
    if len(current) != steps or current[0] != sigma_max:
        raise ValueError(f"init must hold {steps} sigmas starting at sigma_max = {sigma_max:g}, got {current}")
    cache: dict[tuple[float, ...], float] = {}
    history: list[tuple[list[float], float]] = []

    def score(sigmas: list[float]) -> float:
        key = tuple(sigmas)
        if key not in cache:
            cache[key] = float(score_fn(list(sigmas)))
            history.append((list(sigmas), cache[key]))
        return cache[key]

    best = score(current)
    start, start_score = list(current), best
    for _ in range(sweeps):
        for j in range(1, steps):
            hi = math.log(current[j - 1]) - margin
            lo = math.log(current[j + 1] if j + 1 < steps else sigma_min) + margin
            if lo >= hi:
                continue

            def at(log_s: float, j: int = j, base: list[float] = current) -> float:
                trial = list(base)
                trial[j] = math.exp(log_s)
                return score(trial)

            a, b = lo, hi
            c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
            fc, fd = at(c), at(d)
            for _ in range(iters):
                if fc <= fd:  # the minimum of a unimodal function is left of d
                    b, d, fd = d, c, fc
                    c = b - _GOLDEN * (b - a)
                    fc = at(c)
                else:
                    a, c, fc = c, d, fd
                    d = a + _GOLDEN * (b - a)
                    fd = at(d)
            # The best point of this coordinate among everything tried, the incumbent included.
            cands = [(s, v) for s, v in history if s[:j] == current[:j] and s[j + 1 :] == current[j + 1 :]]
            sig, val = min(cands, key=lambda sv: sv[1])
            if val < best:
                current, best = list(sig), val
    return SearchResult(list(current), best, start, start_score, history)


def with_sigmas(config: ModelConfig, sigmas: dict[str, Sequence[float]]) -> ModelConfig:
    """``config`` with ``sigmas`` (step count -> list) as its recommended lists, other step counts
    kept, ordered by step count. Each list is validated first (check_sigmas, and the key must be
    its length); a bad one is a one-line ValueError naming it."""
    p = config.precond
    new = dict(config.sigmas)
    for k, lst in sigmas.items():
        try:
            checked = check_sigmas(lst, p.sigma_min, p.sigma_max)
        except ValueError as exc:
            raise ValueError(f"sigmas for {k} steps: {exc}") from None
        if str(k) != str(len(checked)):
            raise ValueError(f"{len(checked)} sigmas under the key {str(k)!r}")
        new[str(k)] = checked
    order = sorted(new, key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))
    return dataclasses.replace(config, sigmas={k: new[k] for k in order})


def write_sigmas(
    model_path: str | os.PathLike,
    sigmas: dict[str, Sequence[float]],
    out: str | os.PathLike | None = None,
    info: dict | None = None,
) -> Path:
    """Store ``sigmas`` (step count -> list) as the model's recommended lists (ModelConfig.sigmas,
    other step counts kept) in ``out``, or in place when ``out`` is None; written atomically with
    the same weights, step and metadata. ``info`` (how they were chosen) is recorded as JSON in
    the metadata key "sigma_search". Lists are validated first: nothing is written for a bad one."""
    model_path = Path(model_path)
    mf = load_model(model_path)
    try:
        config = with_sigmas(mf.config, sigmas)
    except ValueError as exc:
        raise CheckpointError(f"{model_path}: {exc}") from None
    reserved = {"format", "format_version", "config", "step", "cmaudio_version"}
    extra = {k: v for k, v in mf.metadata.items() if k not in reserved}
    if info is not None:
        extra["sigma_search"] = json.dumps(info)
    return save_model(out if out is not None else model_path, mf.model, config, step=mf.step, extra=extra)


# ----------------------------------------------------------------------------------------------
# Searching a model's sigmas on a metric


@dataclass(frozen=True)
class SearchConfig(ScoringOptions):
    """Options of ``search``; the shared ones (data, classifier, seed, ...) are ScoringOptions'."""

    steps: tuple[int, ...] = (2, 4)  # step counts to search, each >= 2
    metric: str = "logmel_fd"  # a key of SEARCH_METRICS
    n: int = 128  # generated clips per candidate
    iters: int = 8  # ternary iterations per sigma
    sweeps: int = 1  # passes over the sigmas
    out: str | Path | None = None  # the new model file; or
    write: bool = False  # store the sigmas in the model file itself

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.metric not in SEARCH_METRICS:
            raise EvaluationError(f"--metric must be one of {', '.join(SEARCH_METRICS)}, got {self.metric!r}")
        if (self.out is None) == (not self.write):
            raise EvaluationError("--search-sigmas writes its result: give --out NEW.safetensors or --write (in place)")
        if self.n < 2:
            raise EvaluationError(f"--n must be >= 2, got {self.n}")
        if any(k < 2 for k in self.steps):
            raise EvaluationError("--search-sigmas: every step count must be >= 2 (one step has no free sigma)")


def search_context(pipe: Pipeline, metric: SearchMetric, cfg: SearchConfig) -> SearchContext:
    """Check that the metric can be computed for this model and load what it needs: the
    classifier, the pitch targets, the validation split's reference statistics."""
    if "classifier" in metric.needs and cfg.classifier is None:
        raise EvaluationError(f"--metric {metric.name} needs --classifier")
    clf = load_classifier(cfg.classifier, device=pipe.device) if cfg.classifier is not None else None
    if clf is not None and clf.config.mel != pipe.config.mel:
        raise EvaluationError(f"{cfg.classifier}: made for another mel front end than the model's")
    pitch = pitch_targets(pipe.config, cfg.pitch) if "pitch" in metric.needs else None
    if "pitch" in metric.needs and pitch is None:
        raise EvaluationError(f"--metric pitch: {pipe.name} is not a pitched model (see --pitch)")
    reference, present = None, None
    if metric.reference is not None:
        mcfg = pipe.config
        cfg.note(f"loading the validation split of {cfg.data} ...")
        num = (mcfg.frames - 1) * mcfg.mel.hop_length
        wav, present = load_clips(cfg.data, mcfg.mel, num, "valid", mcfg.cond_fields, mcfg.classes,
                                  layout=cfg.layout, manifest=cfg.manifest, progress=cfg.progress)
        scorer = Scorer(pipe, clf, batch_size=cfg.batch_size)
        reference = scorer.features(wav, scorer.logmels(wav))[metric.reference]
        present = set(present)  # generate only the classes the reference has (fit --from)
    labels = balanced_labels(pipe, cfg.n, present)
    if "classifier_labels" in metric.needs and not all(lb in clf.classes for lb in labels):
        raise EvaluationError(f"{cfg.classifier}: does not know every class of the model's first factor")
    return SearchContext(pipe, labels, clf, pitch, reference, cfg.batch_size)


@torch.inference_mode()
def generate_mels(pipe: Pipeline, labels: Sequence[str | None], seeds: Sequence[int], sigmas: Sequence[float],
                  batch_size: int) -> torch.Tensor:
    """Normalised mels [n, n_mels, frames] of clip i seeded with seeds[i] and asked for labels[i]."""
    chunks = []
    for i in range(0, len(seeds), batch_size):
        cond = pipe.condition(labels[i : i + batch_size])
        chunks.append(pipe.sample_mels(seeds[i : i + batch_size], cond, sigmas, pipe.config.frames).cpu())
    return torch.cat(chunks)


def search_steps(pipe: Pipeline, k: int, score: Callable[[list[float]], float], shown: str,
                 cfg: SearchConfig) -> dict:
    """Search the sigmas of ``k`` steps from the model's current list; prints the result line."""
    t0 = time.perf_counter()
    cfg.note(f"searching {k} steps ({k - 1} free sigma{'s' if k > 2 else ''}, {cfg.iters} iterations each) ...")
    p = pipe.config.precond
    res = search_sigmas(score, k, p.sigma_min, p.sigma_max, init=pipe.sigmas_for(k), iters=cfg.iters,
                        sweeps=cfg.sweeps)
    print(f"{k} steps: {', '.join(f'{s:.4g}' for s in res.sigmas)}  {shown} {res.score:.4g}  "
          f"(start {', '.join(f'{s:.4g}' for s in res.start)}: {res.start_score:.4g}; "
          f"{res.evaluations} evaluations, {time.perf_counter() - t0:.0f} s)")
    return {"sigmas": res.sigmas, "score": res.score, "start": res.start, "start_score": res.start_score,
            "evaluations": res.evaluations, "seconds": time.perf_counter() - t0}


def search(model: str | Path, cfg: SearchConfig) -> dict:
    """Search each step count's intermediate sigmas of ``model`` (a consistency model file) on the
    validation split and write them into the model file (``cfg.out``, or in place with
    ``cfg.write``). Prints one line per step count and the file written; returns
    {steps: result dict}. Option errors are EvaluationErrors."""
    metric = SEARCH_METRICS[cfg.metric]
    pipe = Pipeline.from_pretrained(model, device=cfg.device, vocoder=cfg.vocoder)
    if not pipe.is_consistency:
        raise EvaluationError(f"{model}: an EDM teacher samples on the Karras grid; sigma search is for "
                              "consistency models")
    ctx = search_context(pipe, metric, cfg)
    seeds = list(range(cfg.seed, cfg.seed + cfg.n))

    def score(sigmas: list[float]) -> float:
        return metric.objective(ctx, generate_mels(pipe, ctx.labels, seeds, sigmas, cfg.batch_size))

    results = {str(k): search_steps(pipe, k, score, metric.shown, cfg) for k in cfg.steps}
    info = {"metric": cfg.metric, "split": "valid", "n": cfg.n, "seeds": [cfg.seed, cfg.seed + cfg.n - 1],
            "iters": cfg.iters, "sweeps": cfg.sweeps, "data": str(cfg.data), "results": results,
            "classifier_sha256": file_sha256(cfg.classifier) if cfg.classifier is not None else None}
    target = write_sigmas(model, {k: r["sigmas"] for k, r in results.items()}, out=None if cfg.write else cfg.out,
                          info=info)
    print(f"wrote sigmas for {', '.join(results)} steps into {target}")
    return results
