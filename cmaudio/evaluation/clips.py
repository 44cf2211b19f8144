"""What generated clips are compared with and asked for: the real clips of a data set's split
(read by cmaudio.data.AudioFolder, optionally a seeded subset balanced over the first label
factor), the labels a model is asked for (balanced over its first factor), and the target pitch
of each class of a pitched model."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import torch

from ..audio import MelConfig
from ..data import AudioFolder, index_dataset
from ..errors import DatasetError, EvaluationError
from .metrics import midi_to_hz

__all__ = ["PITCH_MODES", "balanced_labels", "balanced_subset", "load_clips", "pitch_targets"]

PITCH_MODES = ("auto", "hz", "midi", "off")


def balanced_labels(pipe, n: int, present: Collection[str | None] | None = None) -> list[str | None]:
    """n labels cycling over the first factor's classes (None for an unconditional model); with
    ``present``, over those of them it holds."""
    names = [c for c in pipe.labels if present is None or c in present]
    return [names[i % len(names)] if names else None for i in range(n)]


def balanced_subset(groups: Sequence[str], limit: int, seed: int) -> list[int]:
    """Indexes (ascending) of a seeded random subset of ``limit`` items whose group (class) is
    ``groups[i]``: classes in turn, random within each, as far as each class has items."""
    g = torch.Generator().manual_seed(seed)
    members: dict[str, list[int]] = {}
    for i, group in enumerate(groups):
        members.setdefault(group, []).append(i)
    queues = [[grp[int(i)] for i in torch.randperm(len(grp), generator=g)] for grp in members.values()]
    picked: list[int] = []
    while len(picked) < min(limit, len(groups)):
        picked += [q.pop() for q in queues if q][: limit - len(picked)]
    return sorted(picked)


def load_clips(
    root,
    mel: MelConfig,
    num_samples: int,
    split: str,
    cond_fields: Sequence[str],
    classes,
    *,
    limit: int | None = None,
    seed: int = 0,
    layout: str = "auto",
    manifest: str = "",
    progress: bool = False,
) -> tuple[torch.Tensor, list[str | None]]:
    """Real clips of one split -> (wav [N, num_samples], first-factor label per clip).

    Clips are read by AudioFolder as for training (resampled, start-cropped or zero-padded to
    ``num_samples``); clips whose labels the model does not know (``classes``, one tuple per
    field of ``cond_fields``), and silent or unreadable files, are left out. No feature cache is
    written into the data folder. ``limit``: a seeded random subset of that many, balanced over
    the first factor's classes (a class-skewed subset would inflate the floor's distances and
    lower its IS)."""
    known = [set(c) for c in classes]
    items = index_dataset(root, layout, manifest, tuple(cond_fields))
    if not any(it.split == split and all(lab in k for lab, k in zip(it.labels, known)) for it in items):
        raise DatasetError(f"{root}: no clips with the model's labels in split {split!r}")
    ds = AudioFolder(root, mel=mel, seconds=num_samples / mel.sample_rate, split=split, layout=layout,
                     manifest=manifest, label_fields=tuple(cond_fields), classes=tuple(classes), cache=False,
                     keep_wav=True, progress=progress)
    labels = [it.labels[0] if it.labels else None for it in ds.items]
    wavs = ds.wavs
    if limit is not None and limit < len(labels):
        keep = balanced_subset([lb or "" for lb in labels], limit, seed)
        wavs, labels = wavs[keep], [labels[i] for i in keep]
    return wavs, labels


def pitch_targets(config, mode: str = "auto") -> dict[str, float] | None:
    """Target frequency (Hz) of each class of a model's first conditioning factor, or None for an
    unpitched model. ``auto``: a factor named "pitch" or "midi" is MIDI; otherwise class names
    that are all numbers in [20 Hz, Nyquist] are Hz (tones); anything else is unpitched (small
    integers are not read as MIDI: FSDD's digit labels are "0".."9"). ``hz``/``midi`` force the
    reading, ``off`` disables it."""
    if mode not in PITCH_MODES:
        raise EvaluationError(f"--pitch must be one of {', '.join(PITCH_MODES)}, got {mode!r}")
    if mode == "off" or not config.classes:
        return None
    names = config.classes[0]
    try:
        values = [float(x) for x in names]
    except ValueError:
        if mode != "auto":
            raise EvaluationError(f"--pitch {mode}: class names are not numbers (e.g. {names[0]!r})") from None
        return None
    nyquist = config.mel.sample_rate / 2
    if mode == "auto":
        if config.cond_fields[0] in ("pitch", "midi"):
            mode = "midi"
        elif all(20 <= v < nyquist for v in values):
            mode = "hz"
        else:
            return None
    hz = [float(midi_to_hz(v)) for v in values] if mode == "midi" else values
    return dict(zip(names, hz))
