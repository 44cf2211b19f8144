"""Training audio: index a data set, load every clip once, keep raw log-mels in memory.

Layouts (docs/architecture.md, section 6), chosen by ``index_dataset(layout=...)``:

- ``folders``: SC09 / Speech Commands style ``root/<label>/**/*.wav`` (also flac, ogg, aiff, mp3).
  The label is the top-level folder name. Folders starting with ``_`` (``_background_noise_``)
  or ``.`` (``.cmaudio_cache``) and dot-files (macOS ``._x.wav``) are ignored. Splits come from
  ``validation_list.txt`` ("valid") and ``testing_list.txt`` ("test") at the root, paths
  relative to the root such as ``seven/abc.wav``; everything else, or everything when the lists
  are absent, is "train".
- ``manifest``: a JSONL file (one ``{"path": ..., "split": ..., <label fields>...}`` object a
  line), a JSON list of such objects, or a CSV file with a header row. ``path`` is relative to
  the root (or absolute); ``split`` defaults to "train"; label values become strings.
- ``nsynth``: ``root/examples.json`` (note_str -> {pitch, velocity, instrument_family_str,
  instrument_source_str, ...}) and ``root/audio/<note_str>.wav``. Label fields "pitch",
  "velocity", "family" (instrument_family_str), "source" (instrument_source_str), "instrument"
  (instrument_str) or any key of the records. The split is a record's own "split" field when it
  has one (sets built by recipes/notes), else "train", "valid" or "test" when the root folder is
  named nsynth-train / nsynth-valid / nsynth-test (real NSynth), else "train".
- ``ljspeech``: ``root/metadata.csv`` (``id|text|normalized``) and ``root/wavs/<id>.wav``;
  unconditional (``label_fields=()``). Split: ids sorted, the last ceil(5 %) are "valid" (at
  least one when there are two or more clips), the rest "train". LJSpeech ids run by book
  chapter, so the held-out clips are whole sentences from the last chapters, never a sentence
  that also appears in training.
- ``auto``: a manifest given -> manifest; examples.json -> nsynth; metadata.csv and wavs/ ->
  ljspeech; otherwise folders.

``AudioFolder`` loads one split through ``cmaudio.audio.load_audio`` (soundfile: any rate is
resampled, stereo is mixed to mono), crops or zero-pads every clip to the same length, computes
the raw log-mel once with ``cmaudio.audio.mel_spectrogram`` and keeps all of them as one float32
tensor ``mels [N, n_mels, frames]``, cached on disk under ``root/.cmaudio_cache/``. Files that
cannot be used are skipped, counted by reason and named in one summary line logged to the
``cmaudio`` logger (WARNING when anything was skipped, INFO otherwise).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Literal, get_args

import torch
from torch.utils.data import Dataset

from .audio import AudioError, MelConfig, MelStats, load_audio, mel_spectrogram, num_frames
from .config import DataConfig
from .errors import DatasetError
from .layouts import AUDIO_EXTENSIONS, LAYOUTS, Item, Layout, index_dataset, resolve_layout

__all__ = [
    "AUDIO_EXTENSIONS",
    "LAYOUTS",
    "AudioFolder",
    "DatasetError",
    "Item",
    "index_dataset",
    "run_jobs",
]

log = logging.getLogger("cmaudio")
_DEFAULT_MEL = MelConfig()

Crop = Literal["start", "center", "loudest"]
CROPS: tuple[str, ...] = get_args(Crop)

# A cropped clip whose peak is below this is silence (or near it): nothing to learn from.
SILENCE_PEAK = 1e-4
# Bump when the cached content or its meaning changes, so old cache files are never reused.
_CACHE_VERSION = 1
_CACHE_DIR = ".cmaudio_cache"
# How many skipped files the summary line names.
_SHOW_SKIPPED = 8
# Clips per mel_spectrogram call: batched STFTs are faster, and the batch stays small in memory.
_MEL_BATCH = 64


def _class_order(names: set[str]) -> tuple[str, ...]:
    """Sorted class names; integers in numeric order (MIDI pitches "9" < "48" < "100")."""
    try:
        return tuple(sorted(names, key=int))
    except ValueError:
        return tuple(sorted(names))


def _crop(wav: torch.Tensor, length: int, mode: str) -> torch.Tensor:
    """Crop [T] to ``length`` samples by ``mode`` or zero-pad its end -> [length]."""
    n = wav.shape[0]
    if n < length:
        return torch.nn.functional.pad(wav, (0, length - n))
    if n == length or mode == "start":
        return wav[:length]
    if mode == "center":
        start = (n - length) // 2
    else:
        # Energy of every window from a running sum (float64: long clips would lose precision).
        energy = torch.cumsum(wav.double().square(), 0)
        energy = torch.cat([energy.new_zeros(1), energy])
        start = int(torch.argmax(energy[length:] - energy[:-length]))
    return wav[start : start + length]


def _display(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return path


class AudioFolder(Dataset):
    """One split of a data set as raw log-mels in memory (see the module docstring for layouts).

    Attributes:
        mels: float32 [N, n_mels, frames] raw log-mel, frames = num_frames(num_samples, mel).
        wavs: float32 [N, num_samples] cropped waveforms when ``keep_wav``, else None.
        labels: int64 [N, K] class index per item and label field (K = len(cond_fields)).
        cond_fields: the label field names; classes: per field, its class names in index order.
        items: the Item of each loaded clip, in the order of ``mels``.
        skipped: (path, reason) of each file left out; reasons are "missing", "unreadable"
            (any AudioError: corrupt, empty, not audio, NaN), "silent" (peak < 1e-4 after
            cropping) and "unknown label" (not in ``classes``).
        summary: the one-line report logged after loading.

    ``classes`` fixes the label vocabulary (pass the training set's ``classes`` when building a
    validation split so indices agree); without it the classes are those of the usable clips.
    ``split=None`` loads every split.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        mel: MelConfig = _DEFAULT_MEL,
        seconds: float = 1.0,
        split: str | None = "train",
        layout: Layout = "auto",
        manifest: str = "",
        label_fields: tuple[str, ...] | list[str] = ("label",),
        classes: tuple[tuple[str, ...], ...] | None = None,
        cache: bool = True,
        keep_wav: bool = False,
        crop: Crop = "start",
        progress: bool = True,
    ) -> None:
        if not seconds > 0:
            raise DatasetError(f"seconds must be positive, got {seconds}")
        if crop not in CROPS:
            raise DatasetError(f"unknown crop {crop!r}; use one of {', '.join(CROPS)}")
        self.root = Path(root)
        self.mel_config = mel
        self.seconds = float(seconds)
        self.split = split
        self.cond_fields = tuple(label_fields)
        self.keep_wav = keep_wav
        self.num_samples = round(seconds * mel.sample_rate)
        self.frames = num_frames(self.num_samples, mel)
        if classes is not None:
            classes = tuple(tuple(str(c) for c in names) for names in classes)
            if len(classes) != len(self.cond_fields):
                raise DatasetError(
                    f"classes: got {len(classes)} lists for {len(self.cond_fields)} label fields "
                    f"({', '.join(self.cond_fields) or 'none'})"
                )

        all_items = index_dataset(root, layout, manifest, self.cond_fields)
        where = f"{root} (split {split})" if split is not None else str(root)
        items = [it for it in all_items if split is None or it.split == split]
        if not items:
            present = sorted({it.split for it in all_items})
            hint = f" (splits present: {', '.join(present)})" if present else ""
            raise DatasetError(f"no audio files found in {where}{hint}")

        resolved_layout = resolve_layout(self.root, layout, manifest)
        key = self._cache_key(items, resolved_layout, crop, classes)
        cache_path = self.root / _CACHE_DIR / f"{key}.pt" if cache else None
        # The cache names files relative to the root, so a moved data set still hits its cache.
        by_name = {_display(it.path, self.root): it for it in items}
        data = self._read_cache(cache_path, set(by_name)) if cache_path is not None else None
        if data is None:
            data = self._build(items, classes, crop, progress)
            if not data["paths"]:
                shown = ", ".join(f"{p} ({r})" for p, r in data["skipped"][:_SHOW_SKIPPED])
                raise DatasetError(f"no usable audio in {where}: {len(data['skipped'])} files skipped, e.g. {shown}")
            if cache_path is not None:
                self._write_cache(cache_path, data)

        self.mels: torch.Tensor = data["mels"]
        self.wavs: torch.Tensor | None = data["wavs"]
        self.labels: torch.Tensor = data["labels"]
        self.classes: tuple[tuple[str, ...], ...] = tuple(tuple(c) for c in data["classes"])
        self.items: list[Item] = [by_name[p] for p in data["paths"]]
        self.skipped: list[tuple[str, str]] = [(by_name[p].path, r) for p, r in data["skipped"]]
        self.summary = self._summary()
        log.log(logging.WARNING if self.skipped else logging.INFO, "%s", self.summary)

    @classmethod
    def from_config(
        cls,
        cfg: DataConfig,
        mel: MelConfig = _DEFAULT_MEL,
        *,
        split: str | None = None,
        classes: tuple[tuple[str, ...], ...] | None = None,
        keep_wav: bool = False,
        crop: Crop = "start",
        progress: bool = True,
    ) -> AudioFolder:
        """The split ``cfg.split`` (or ``split``) of ``cfg.root`` as a recipe describes it."""
        if not cfg.root:
            raise DatasetError("data.root is empty: set it to the data set folder")
        return cls(
            cfg.root,
            mel=mel,
            seconds=cfg.seconds,
            split=cfg.split if split is None else split,
            layout=cfg.layout,
            manifest=cfg.manifest,
            label_fields=cfg.label_fields,
            classes=classes,
            cache=cfg.cache,
            keep_wav=keep_wav,
            crop=crop,
            progress=progress,
        )

    # ------------------------------------------------------------------------------------------
    # Dataset protocol

    def __len__(self) -> int:
        return self.mels.shape[0]

    def __getitem__(self, i: int) -> dict:
        """-> dict(mel=[n_mels, frames] raw log-mel, cond=[K] int64, index=i[, wav=[samples]])."""
        out = {"mel": self.mels[i], "cond": self.labels[i], "index": i}
        if self.wavs is not None:
            out["wav"] = self.wavs[i]
        return out

    def stats(self) -> MelStats:
        """Mean and (unbiased) std of every raw log-mel value, accumulated in float64 chunks so
        the whole set is never copied at double precision."""
        chunks = self.mels.flatten(1).split(1024)
        n = self.mels.numel()
        mean = sum(float(c.double().sum()) for c in chunks) / n
        sq = sum(float((c.double() - mean).square().sum()) for c in chunks)
        return MelStats(mean=mean, std=math.sqrt(sq / max(n - 1, 1)))

    # ------------------------------------------------------------------------------------------
    # Building and caching

    def _build(
        self,
        items: list[Item],
        classes: tuple[tuple[str, ...], ...] | None,
        crop: str,
        progress: bool,
    ) -> dict:
        from tqdm.auto import tqdm

        cfg = self.mel_config
        mels = torch.empty(len(items), cfg.n_mels, self.frames)
        wavs = torch.empty(len(items), self.num_samples) if self.keep_wav else None
        lookup = [{name: k for k, name in enumerate(names)} for names in classes or ()]
        kept: list[Item] = []
        skipped: list[list[str]] = []
        batch: list[torch.Tensor] = []

        def flush() -> None:
            start = len(kept) - len(batch)
            block = torch.stack(batch)
            mels[start : len(kept)] = mel_spectrogram(block, cfg)
            if wavs is not None:
                wavs[start : len(kept)] = block
            batch.clear()

        # tqdm's disable=None hides the bar when stderr is not a terminal (logs, CI).
        bar = tqdm(items, desc=f"loading {self.root.name}", unit="file", disable=None if progress else True)
        for it in bar:
            if classes is not None and any(lab not in table for lab, table in zip(it.labels, lookup)):
                skipped.append([it.path, "unknown label"])
                continue
            if not os.path.exists(it.path):
                skipped.append([it.path, "missing"])
                continue
            try:
                wav = load_audio(it.path, cfg.sample_rate)
            except AudioError as exc:
                log.debug("skipping %s", exc)
                skipped.append([it.path, "unreadable"])
                continue
            wav = _crop(wav, self.num_samples, crop)
            if float(wav.abs().max()) < SILENCE_PEAK:
                skipped.append([it.path, "silent"])
                continue
            kept.append(it)
            batch.append(wav)
            if len(batch) == _MEL_BATCH:
                flush()
        if batch:
            flush()
        bar.close()

        n = len(kept)
        if n < len(items):
            # Clone so the saved tensors do not carry the unused tail of their storage.
            mels = mels[:n].clone()
            wavs = wavs[:n].clone() if wavs is not None else None
        if classes is None:
            classes = tuple(_class_order({it.labels[k] for it in kept}) for k in range(len(self.cond_fields)))
            lookup = [{name: k for k, name in enumerate(names)} for names in classes]
        labels = torch.tensor(
            [[table[lab] for lab, table in zip(it.labels, lookup)] for it in kept], dtype=torch.long
        ).reshape(n, len(self.cond_fields))
        return {
            "version": _CACHE_VERSION,
            "mels": mels,
            "wavs": wavs,
            "labels": labels,
            "classes": [list(c) for c in classes],
            "paths": [_display(it.path, self.root) for it in kept],
            "skipped": [[_display(p, self.root), r] for p, r in skipped],
        }

    def _cache_key(
        self,
        items: list[Item],
        layout: str,
        crop: str,
        classes: tuple[tuple[str, ...], ...] | None,
    ) -> str:
        """Hash of everything the cached tensors depend on; any change gives a new file name."""
        files = []
        for it in items:
            try:
                st = os.stat(it.path)
                size, mtime = st.st_size, st.st_mtime_ns
            except OSError:
                size, mtime = -1, -1
            files.append([_display(it.path, self.root), size, mtime, list(it.labels), it.split])
        desc = {
            "version": _CACHE_VERSION,
            "files": files,
            "mel": asdict(self.mel_config),
            "seconds": self.seconds,
            "crop": crop,
            "keep_wav": self.keep_wav,
            "split": self.split,
            "layout": layout,
            "label_fields": list(self.cond_fields),
            "classes": [list(c) for c in classes] if classes is not None else None,
            "silence_peak": SILENCE_PEAK,
        }
        return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:32]

    def _read_cache(self, path: Path, names: set[str]) -> dict | None:
        if not path.is_file():
            return None
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            self._check_cache(data, names)
        except Exception as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            log.warning("ignoring unusable cache file %s (%s); rebuilding", path, reason)
            return None
        log.debug("loaded cached features from %s", path)
        return data

    def _check_cache(self, data: object, names: set[str]) -> None:
        if not isinstance(data, dict) or data.get("version") != _CACHE_VERSION:
            raise ValueError("wrong format version")
        n = len(data["paths"])
        k = len(self.cond_fields)
        if data["mels"].dtype != torch.float32 or tuple(data["mels"].shape) != (
            n,
            self.mel_config.n_mels,
            self.frames,
        ):
            raise ValueError("mel tensor of the wrong shape")
        if tuple(data["labels"].shape) != (n, k) or len(data["classes"]) != k:
            raise ValueError("labels of the wrong shape")
        wavs = data["wavs"]
        if self.keep_wav != (wavs is not None) or (wavs is not None and tuple(wavs.shape) != (n, self.num_samples)):
            raise ValueError("waveforms of the wrong shape")
        listed = list(data["paths"]) + [s[0] for s in data["skipped"]]
        if n == 0 or not all(isinstance(s, list) and len(s) == 2 for s in data["skipped"]):
            raise ValueError("malformed index")
        if not set(listed) <= names:
            raise ValueError("files that are not in the index")

    def _write_cache(self, path: Path, data: dict) -> None:
        """Save atomically (temporary name, then rename); a read-only root just goes uncached."""
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
            os.close(fd)
            torch.save(data, tmp)
            os.replace(tmp, path)
        except OSError as exc:
            log.info("not caching features in %s (%s)", path.parent, exc)
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)

    def _summary(self) -> str:
        split = self.split if self.split is not None else "all"
        line = f"AudioFolder({self.root}, split={split}): {len(self)} clips"
        if self.skipped:
            counts = Counter(r for _, r in self.skipped)
            reasons = ", ".join(f"{c} {r}" for r, c in sorted(counts.items(), key=lambda x: -x[1]))
            names = [_display(p, self.root) for p, _ in self.skipped[:_SHOW_SKIPPED]]
            more = ", ..." if len(self.skipped) > _SHOW_SKIPPED else ""
            line += f", {len(self.skipped)} skipped ({reasons}): {', '.join(names)}{more}"
        return line


def run_jobs(fn, items: Sequence, *, jobs: int, desc: str, unit: str, progress: bool = True) -> list:
    """[fn(item) for item in items] on ``jobs`` threads, in order, with a progress bar: how the
    recipes' prepare.py scripts render their clips (the work is in subprocesses and numpy/torch
    calls that release the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(tqdm(pool.map(fn, items), total=len(items), desc=desc, unit=unit, disable=not progress))
