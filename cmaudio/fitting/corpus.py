"""A user's folder of recordings -> clips of one length with labels, ready for training.

Labels (``find_sources``):
  auto      a manifest (--manifest, or manifest.jsonl/.json/.csv at the root) -> its "label";
            every audio file inside a sub-folder, two or more of them -> the sub-folder;
            otherwise no labels
  folders   the top-level sub-folder of each file
  filename  the file name up to its first "_", "-", "." or space (7_jackson_32.wav -> 7), or the
            first group of --label-pattern
  manifest  the "label" field of --manifest (paths relative to the folder)
  none      unconditional

Clips (``cut_clips``): every file is read with cmaudio.audio.load_audio (any rate, channel count
and format soundfile reads; mixed to mono, resampled to 16 kHz). A file longer than LONG_CLIPS
clip lengths is a long recording: it is cut into back-to-back windows of the clip length, and a
window quieter than SILENT_DB below the recording's peak is dropped (silence between takes). A
shorter file is trimmed to the part within TRIM_DB of its peak, then its loudest clip-length
window is kept (zero-padded when shorter). The clip length (``choose_seconds``) is the 90th
percentile of the trimmed lengths of the short files rounded up to a quarter second, within
MIN_SECONDS..MAX_SECONDS, or DEFAULT_LONG_SECONDS when the folder holds only long recordings.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..audio import AudioError, load_audio
from ..errors import DatasetError
from ..layouts import AUDIO_EXTENSIONS, index_dataset

__all__ = ["Clips", "LABEL_MODES", "Source", "choose_seconds", "cut_clips", "find_sources", "label_from_name"]

LABEL_MODES = ("auto", "folders", "filename", "manifest", "none")
SR = 16000
LONG_CLIPS = 8  # a file longer than this many clips is a long recording, cut into windows
SILENT_DB = 40.0  # a window of a long recording this far below its peak is dropped
TRIM_DB = 40.0
SILENT_PEAK = 1e-4  # a file whose peak is below this is silence
MIN_SECONDS, MAX_SECONDS, DEFAULT_LONG_SECONDS = 0.5, 4.0, 2.0
MANIFESTS = ("manifest.jsonl", "manifest.json", "manifest.csv")


@dataclass(frozen=True)
class Source:
    path: Path
    label: str | None


@dataclass
class Clips:
    """Clips of one length: wav [N, T] at 16 kHz, a label (or None) and the source file of each."""

    wavs: torch.Tensor
    labels: list[str | None]
    files: list[str]
    skipped: Counter = field(default_factory=Counter)  # reason -> files


def label_from_name(name: str, pattern: re.Pattern | None = None) -> str | None:
    """The label of a file name: the first group of ``pattern`` (None when it does not match), or
    the name up to its first "_", "-", "." or space."""
    if pattern is not None:
        m = pattern.search(name)
        return (m.group(1) if m.groups() else m.group(0)) if m else None
    return re.split(r"[_\-. ]", name, maxsplit=1)[0] or None


def audio_files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and not any(s.startswith(".") for s in p.parts)
    )


def find_sources(root: Path, mode: str, manifest: str = "", pattern: str = "") -> tuple[list[Source], str]:
    """The audio files of ``root`` with their labels, and the label mode used (auto resolved)."""
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    if mode == "auto":
        mode = auto_mode(root, manifest)
    if mode == "manifest":
        name = manifest or next((m for m in MANIFESTS if (root / m).is_file()), "")
        if not name:
            raise DatasetError(f"{root}: --labels manifest needs --manifest FILE")
        items = index_dataset(root, "manifest", name, ("label",))
        return [Source(Path(it.path), it.labels[0]) for it in items], mode
    files = audio_files(root)
    if not files:
        raise DatasetError(f"{root}: no audio files found ({', '.join(AUDIO_EXTENSIONS)})")
    if mode == "folders":
        top = [p.relative_to(root).parts for p in files]
        if any(len(t) < 2 for t in top):
            raise DatasetError(f"{root}: --labels folders needs every file in a sub-folder")
        return [Source(p, t[0]) for p, t in zip(files, top)], mode
    if mode == "filename":
        rx = re.compile(pattern) if pattern else None
        sources = [Source(p, label_from_name(p.name, rx)) for p in files]
        if rx is not None and not any(s.label for s in sources):
            raise DatasetError(f"--label-pattern {pattern!r} matches no file name in {root}")
        return [s for s in sources if s.label], mode
    return [Source(p, None) for p in files], "none"


def auto_mode(root: Path, manifest: str) -> str:
    if manifest or any((root / m).is_file() for m in MANIFESTS):
        return "manifest"
    files = audio_files(root)
    tops = {p.relative_to(root).parts[0] for p in files if len(p.relative_to(root).parts) > 1}
    if files and len(tops) >= 2 and all(len(p.relative_to(root).parts) > 1 for p in files):
        return "folders"
    return "none"


def trim(wav: torch.Tensor, db: float = TRIM_DB, margin: int = SR // 50) -> torch.Tensor:
    """The part of ``wav`` within ``db`` of its peak, ``margin`` samples either side."""
    loud = (wav.abs() >= wav.abs().max() * 10 ** (-db / 20)).nonzero()
    return wav[max(0, int(loud[0]) - margin) : int(loud[-1]) + margin + 1] if loud.numel() else wav[:0]


def loudest_window(wav: torch.Tensor, n: int) -> torch.Tensor:
    if wav.numel() <= n:
        return torch.nn.functional.pad(wav, (0, n - wav.numel()))
    energy = torch.nn.functional.avg_pool1d(wav[None, None] ** 2, n, stride=max(1, n // 8))[0, 0]
    start = int(energy.argmax()) * max(1, n // 8)
    return wav[start : start + n]


def read(path: Path, skipped: Counter) -> torch.Tensor | None:
    try:
        wav = load_audio(path, SR)
    except AudioError as exc:
        reason = "unreadable"
        if "NaN" in str(exc) or "infinite" in str(exc):
            reason = "non-finite samples"
        elif "no samples" in str(exc):
            reason = "empty"
        skipped[reason] += 1
        return None
    if float(wav.abs().max()) < SILENT_PEAK:
        skipped["silent"] += 1
        return None
    return wav


def choose_seconds(lengths: list[float], any_long: bool) -> tuple[float, str]:
    """The clip length for these trimmed file lengths (seconds), and why."""
    if not lengths:
        return DEFAULT_LONG_SECONDS, f"long recordings only: {DEFAULT_LONG_SECONDS:g} s windows"
    p90 = float(np.percentile(lengths, 90))
    seconds = min(MAX_SECONDS, max(MIN_SECONDS, math.ceil(p90 * 4) / 4))
    return seconds, f"90% of the recordings last up to {p90:.2f} s (trimmed), rounded up to {seconds:g} s"


def cut_clips(sources: list[Source], seconds: float | None, progress: bool = True) -> tuple[Clips, float, str]:
    """Read every source and cut it into clips; returns (clips, clip seconds, why that length).
    ``seconds`` None chooses the length from the data (choose_seconds)."""
    from tqdm.auto import tqdm

    skipped: Counter = Counter()
    loaded = []
    for src in tqdm(sources, desc="read", unit="file", disable=not progress):
        wav = read(src.path, skipped)
        if wav is not None:
            loaded.append((src, wav))
    probe = seconds or DEFAULT_LONG_SECONDS
    short = [trim(w).numel() / SR for _, w in loaded if w.numel() <= LONG_CLIPS * probe * SR]
    if seconds is None:
        seconds, why = choose_seconds(short, any_long=len(short) < len(loaded))
    else:
        why = "set by --seconds"
    n = round(seconds * SR)
    wavs, labels, files = [], [], []
    for src, wav in loaded:
        if wav.numel() > LONG_CLIPS * n:
            peak = float(wav.abs().max())
            for k in range(wav.numel() // n):
                win = wav[k * n : (k + 1) * n]
                if float(win.abs().max()) >= peak * 10 ** (-SILENT_DB / 20):
                    wavs.append(win), labels.append(src.label), files.append(str(src.path))
        else:
            wavs.append(loudest_window(trim(wav), n)), labels.append(src.label), files.append(str(src.path))
    stacked = torch.stack(wavs) if wavs else torch.zeros(0, n)
    return Clips(stacked, labels, files, skipped), seconds, why


def assign_splits(clips: Clips, share: float = 0.15, seed: int = 0) -> list[str]:
    """ "valid" (the sigma search's reference) and "test" (the evaluation's) for a held-out slice
    of about ``share`` of the clips, "train" for the rest. Whole files are held out (a recording is
    never on both sides), chosen per label by a seeded shuffle, alternately valid and test; a
    folder of a single recording holds out its last stretch instead."""
    files = list(dict.fromkeys(clips.files))
    if len(files) == 1:
        n = len(clips.files)
        held = max(2, round(share * n))
        return ["train" if i < n - held else ("valid" if i < n - held // 2 else "test") for i in range(n)]
    g = np.random.default_rng(seed)
    first = {f: clips.files.index(f) for f in files}
    held: list[str] = []
    for label in sorted({str(lb) for lb in clips.labels}):
        own = [f for f in files if str(clips.labels[first[f]]) == label]
        g.shuffle(own)
        want, count = max(2, round(share * sum(str(lb) == label for lb in clips.labels))), 0
        for f in own[:-1]:  # every label keeps at least one file for training
            if count >= want:
                break
            held.append(f)
            count += clips.files.count(f)
    role = {f: ("valid", "test")[k % 2] for k, f in enumerate(held)}
    return [role.get(f, "train") for f in clips.files]


def write_corpus(clips: Clips, splits: list[str], out: Path) -> Path:
    """OUT/clips/<k>.wav and OUT/manifest.jsonl (path, split, label, file): what AudioFolder reads."""
    import json

    from ..audio import save_audio

    (out / "clips").mkdir(parents=True, exist_ok=True)
    rows = []
    for k, (wav, split, label, src) in enumerate(zip(clips.wavs, splits, clips.labels, clips.files)):
        rel = f"clips/{k:06d}.wav"
        save_audio(out / rel, wav, SR)
        rows.append({"path": rel, "split": split, "file": src} | ({"label": label} if label is not None else {}))
    manifest = out / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest
