"""The model a training run starts from: the frozen EDM teacher (cd; ect without ``init``) or any
model file named by ``init`` (fine-tuning, ``cmaudio.fit --from``), and how the data's labels meet
its label tables.

A run that starts from a model keeps that model's mel front end, statistics, network and label
tables. With ``init``, labels the data has and the model lacks are appended to the tables
(``extend_classes``); their embedding rows start as the table's null row, the unconditional
embedding, so a new label begins as "any sound this model makes" and is learned from there
(``extended_state``). Every other tensor must match in shape: nothing is dropped or padded
silently, and a mismatch is a one-line TrainingError.
"""

from __future__ import annotations

import re

import torch

from ..checkpoint import ModelFile, load_model
from ..config import TrainConfig
from ..errors import CheckpointError, TrainingError

__all__ = [
    "LABEL_TABLE",
    "assign_labels",
    "extend_classes",
    "extended_state",
    "load_init",
    "load_teacher",
    "match_new_labels",
    "remap_labels",
]

LABEL_TABLE = re.compile(r"(^|\.)classes\.(\d+)\.weight$")  # nets.layers.Embedding's per-factor tables


def _load(path: str, device: torch.device, what: str) -> ModelFile:
    try:
        return load_model(path, device=device)
    except CheckpointError as exc:
        raise TrainingError(f"{what}: {exc}") from None


def load_teacher(cfg: TrainConfig, device: torch.device) -> ModelFile | None:
    """The frozen EDM teacher of a cd run, or of an ect run that has no ``init``; else None."""
    kind = cfg.objective.kind
    if kind not in ("cd", "ect") or (kind == "ect" and cfg.init):
        return None
    if not cfg.teacher:
        raise TrainingError(f"objective {kind!r} needs a teacher model: set teacher = PATH")
    mf = _load(cfg.teacher, device, "teacher")
    if mf.config.precond.kind != "edm":
        raise TrainingError(f"{cfg.teacher}: the teacher must be an EDM model (precond.kind = 'edm')")
    if mf.config.mel != cfg.mel:
        raise TrainingError(f"{cfg.teacher}: the teacher's mel config differs from this run's [mel]")
    for p in mf.model.parameters():
        p.requires_grad_(False)
    return mf


def load_init(cfg: TrainConfig, device: torch.device) -> ModelFile | None:
    """The model file ``init`` names (weights and configuration to start from), or None."""
    return _load(cfg.init, device, "init") if cfg.init else None


def extend_classes(
    source: tuple[tuple[str, ...], ...], found: tuple[tuple[str, ...], ...]
) -> tuple[tuple[str, ...], ...]:
    """Per label field: the source model's classes in their order, then the data's new ones."""
    if len(source) != len(found):
        raise TrainingError(
            f"the model to start from has {len(source)} label fields, the data {len(found)}: "
            "label the data as that model is labelled (or fit without --from)"
        )
    return tuple(tuple(src) + tuple(c for c in new if c not in src) for src, new in zip(source, found))


def remap_labels(
    labels: torch.Tensor, found: tuple[tuple[str, ...], ...], classes: tuple[tuple[str, ...], ...]
) -> torch.Tensor:
    """Class indices [N, K] into ``found`` -> the same classes' indices into ``classes``."""
    out = labels.clone()
    for k, (names, table) in enumerate(zip(found, classes)):
        lookup = torch.tensor([table.index(n) for n in names], dtype=labels.dtype)
        out[:, k] = lookup[labels[:, k].cpu()].to(labels.device)
    return out


def extended_state(state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``state`` (the source model's) reshaped for ``model``, whose label tables may have more
    rows: old rows kept, the null row (the last) moved to the end, new rows = the null row.
    Any other difference in keys or shapes is a TrainingError."""
    target = model.state_dict()
    if set(state) != set(target):
        missing, extra = sorted(set(target) - set(state)), sorted(set(state) - set(target))
        raise TrainingError(f"the model to start from has other weights (missing {missing[:3]}, extra {extra[:3]})")
    out = {}
    for key, value in state.items():
        want = target[key].shape
        if value.shape == want:
            out[key] = value
        elif LABEL_TABLE.search(key) and value.dim() == 2 and value.shape[1] == want[1] and want[0] > value.shape[0]:
            null = value[-1:]
            out[key] = torch.cat([value[:-1], null.expand(want[0] - value.shape[0], -1), null])
        else:
            raise TrainingError(f"the model to start from differs at {key}: {list(value.shape)} vs {list(want)}")
    return out


# Noise levels at which match_new_labels compares labels: low enough that the clip itself is
# mostly kept (above sigma ~2 every denoiser drifts to its own idea of a clip, and a new domain's
# clips are far from all of them), high enough that the label still decides the details. FSDD
# from digits, 24 clips a label: at sigma 0.5 and 1, 10 of 10 digits find their word; adding 2,
# 8 of 10; at 5 to 40, 0 to 6 (assigned one to one, assign_labels).
MATCH_SIGMAS = (0.5, 1.0)
MATCH_CLIPS = 24


def assign_labels(cost: torch.Tensor) -> list[int]:
    """Row i of ``cost`` [new labels, source labels] -> a source label (column), each column used
    once before any is used again, at the least total cost (scipy's Hungarian solver, in rounds
    while rows are left). Why not each row's own minimum: a source label with broadly low error
    ("nine" of the synthetic digits on real speech) is every row's minimum, and new labels that
    start on one row start as one sound and must separate by training alone."""
    from scipy.optimize import linear_sum_assignment

    out, left = [0] * len(cost), list(range(len(cost)))
    while left:
        rows, cols = linear_sum_assignment(cost[left].double().cpu().numpy())
        for r, c in zip(rows.tolist(), cols.tolist()):
            out[left[r]] = c
        done = set(rows.tolist())
        left = [i for k, i in enumerate(left) if k not in done]
    return out


@torch.no_grad()
def match_new_labels(
    model: torch.nn.Module,
    mels: torch.Tensor,
    labels: torch.Tensor,
    source: tuple[tuple[str, ...], ...],
    classes: tuple[tuple[str, ...], ...],
    seed: int = 0,
) -> dict[str, str]:
    """Start each new label's row from the source label that best explains its clips.

    For each new class c of factor k: up to MATCH_CLIPS of its clips (normalised mels [N, n_mels,
    F], label indices [N, K] into ``classes``), noised at MATCH_SIGMAS with fixed noise, are
    denoised under every source class of factor k (other factors null); the squared errors,
    summed over the sigmas, are the costs assign_labels shares out one to one. Not the null row:
    its blurred mixture wins on squared error, and a label that starts there has a long way to go
    (the source's label rows lie about 22 from null; at lr 1e-4 a new row moved 0.3 in 2,800
    steps). FSDD's "0".."9" from the synthetic digits: each found its word ("7" <- "seven").
    Returns {new label: the source label it starts from}."""
    if not source or not source[0]:
        return {}
    g = torch.Generator().manual_seed(seed)
    tables = {int(m.group(2)): p for n, p in model.named_parameters() if (m := LABEL_TABLE.search(n))}
    was_training = model.training
    model.eval()
    chosen = {}
    for k, (src, names) in enumerate(zip(source, classes)):
        new = [c for c in range(len(src), len(names)) if bool((labels[:, k] == c).any())]
        costs = []
        for c in new:
            x = mels[(labels[:, k] == c).nonzero().flatten()[:MATCH_CLIPS]]
            noise = torch.randn(x.shape, generator=g).to(x.device)
            row = []
            for cand in range(len(src)):
                cond = model.null_cond(len(x), x.device)
                cond[:, k] = cand
                row.append(
                    sum(
                        float((model(x + s * noise, torch.full((len(x),), s, device=x.device), cond) - x).pow(2).mean())
                        for s in MATCH_SIGMAS
                    )
                )
            costs.append(row)
        for c, best in zip(new, assign_labels(torch.tensor(costs)) if new else []):
            tables[k][c] = tables[k][best]
            chosen[names[c]] = src[best]
    model.train(was_training)
    return chosen
