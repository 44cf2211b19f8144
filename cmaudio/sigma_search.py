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
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .checkpoint import CheckpointError, load_model, save_model
from .config import ModelConfig
from .sampling import check_sigmas
from .schedules import karras_sigmas

__all__ = ["SearchResult", "search_sigmas", "with_sigmas", "write_sigmas"]

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
