"""Data-set layouts: which files a data set holds, their labels and their split.

``index_dataset(root, layout, ...)`` lists a data set's clips as ``Item``s (path, labels, split)
for ``data.AudioFolder``; the layouts (folders, manifest, nsynth, ljspeech, auto) are described
in data.py's docstring.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from .errors import DatasetError

__all__ = ["AUDIO_EXTENSIONS", "LAYOUTS", "Item", "Layout", "index_dataset", "read_manifest_rows", "resolve_layout"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".aiff", ".aif", ".mp3")
Layout = Literal["auto", "folders", "manifest", "nsynth", "ljspeech"]
LAYOUTS: tuple[str, ...] = get_args(Layout)

_SC_SPLIT_LISTS = (("validation_list.txt", "valid"), ("testing_list.txt", "test"))
_NSYNTH_SPLITS = {"nsynth-train": "train", "nsynth-valid": "valid", "nsynth-test": "test"}
_NSYNTH_FIELDS = {
    "family": "instrument_family_str",
    "source": "instrument_source_str",
    "instrument": "instrument_str",
}
_LJSPEECH_VALID_FRACTION = 0.05


@dataclass(frozen=True)
class Item:
    """One entry of an index: an audio file, its label per requested field, and its split."""

    path: str
    labels: tuple[str, ...]
    split: str


# ----------------------------------------------------------------------------------------------
# Indexing


def index_dataset(
    root: str | os.PathLike,
    layout: Layout = "auto",
    manifest: str = "",
    label_fields: tuple[str, ...] | list[str] = ("label",),
) -> list[Item]:
    """List every audio file of a data set with its labels (one per field) and split.

    Returns Items sorted by path (deterministic); ``Item.path`` is ``root`` joined with the
    file's relative path. Raises DatasetError for a missing root, an unknown layout, a
    malformed manifest or index file, or an item lacking one of ``label_fields``.
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise DatasetError(f"{root}: no such directory")
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown data layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    fields = tuple(label_fields)
    if len(set(fields)) != len(fields):
        raise DatasetError(f"label fields repeat: {', '.join(fields)}")
    layout = resolve_layout(root_path, layout, manifest)
    if layout == "manifest":
        items = _index_manifest(root_path, manifest, fields)
    elif layout == "nsynth":
        items = _index_nsynth(root_path, fields)
    elif layout == "ljspeech":
        items = _index_ljspeech(root_path, fields)
    else:
        items = _index_folders(root_path, fields)
    items.sort(key=lambda it: it.path)
    return items


def resolve_layout(root: Path, layout: str, manifest: str) -> str:
    if layout != "auto":
        return layout
    if manifest:
        return "manifest"
    if (root / "examples.json").is_file():
        return "nsynth"
    if (root / "metadata.csv").is_file() and (root / "wavs").is_dir():
        return "ljspeech"
    return "folders"


def _missing_field(where: str, field: str, available: list[str] | tuple[str, ...]) -> DatasetError:
    have = ", ".join(available) if available else "none"
    return DatasetError(f"{where}: no label field {field!r} (available: {have})")


def _is_audio(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(AUDIO_EXTENSIONS)


def _index_folders(root: Path, fields: tuple[str, ...]) -> list[Item]:
    for field in fields:
        if field != "label":
            raise _missing_field(f"{root} (folders layout)", field, ["label"])
    splits: dict[str, str] = {}
    for list_name, split in _SC_SPLIT_LISTS:
        list_path = root / list_name
        if list_path.is_file():
            for line in list_path.read_text().splitlines():
                rel = line.strip().replace("\\", "/")
                if rel:
                    splits.setdefault(rel, split)
    items = []
    for dirpath, dirnames, filenames in os.walk(root):
        top = Path(dirpath) == root
        # Pruning in place stops os.walk descending into ignored folders (the cache among them).
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and not (top and d.startswith("_"))]
        for name in filenames:
            if not _is_audio(name):
                continue
            rel = (Path(dirpath) / name).relative_to(root).as_posix()
            if fields and top:
                raise DatasetError(
                    f"{root / rel}: no label field 'label' (the file is not in a class folder; "
                    "use label_fields=() for unlabelled audio)"
                )
            label = rel.split("/", 1)[0]
            items.append(Item(str(root / rel), (label,) if fields else (), splits.get(rel, "train")))
    return items


def read_manifest_rows(path: Path) -> list[tuple[str, dict]]:
    """Rows of a JSONL, JSON-list or CSV manifest as (location for messages, record)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DatasetError(f"{path}: manifest not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read manifest ({exc})") from None
    head = text.lstrip()[:1]
    rows: list[tuple[str, dict]] = []
    if path.suffix.lower() == ".csv" or head not in ("{", "["):
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "path" not in reader.fieldnames:
            raise DatasetError(f"{path}: a CSV manifest needs a header row with a 'path' column")
        for i, row in enumerate(reader, start=2):
            rows.append((f"{path}:{i}", {k: v for k, v in row.items() if v not in (None, "")}))
        return rows
    if head == "[":
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: invalid JSON ({exc})") from None
        entries = [(f"{path}[{i}]", r) for i, r in enumerate(records)]
    else:
        entries = []
        for i, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entries.append((f"{path}:{i}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{i}: invalid JSON ({exc})") from None
    for where, record in entries:
        if not isinstance(record, dict):
            raise DatasetError(f"{where}: expected an object with a 'path', got {record!r}")
        rows.append((where, record))
    return rows


def _index_manifest(root: Path, manifest: str, fields: tuple[str, ...]) -> list[Item]:
    if not manifest:
        raise DatasetError(f"{root}: layout 'manifest' needs a manifest file (data.manifest)")
    items = []
    for where, record in read_manifest_rows(root / manifest):
        if not record.get("path"):
            raise DatasetError(f"{where}: entry has no 'path'")
        labels = []
        for field in fields:
            value = record.get(field)
            if value is None or value == "":
                raise _missing_field(where, field, [k for k in record if k not in ("path", "split")])
            labels.append(str(value))
        split = str(record.get("split") or "train")
        items.append(Item(str(root / str(record["path"])), tuple(labels), split))
    return items


def _index_nsynth(root: Path, fields: tuple[str, ...]) -> list[Item]:
    index_path = root / "examples.json"
    try:
        examples = json.loads(index_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{index_path}: cannot read NSynth index ({exc})") from None
    if not isinstance(examples, dict):
        raise DatasetError(f"{index_path}: expected an object mapping note names to records")
    split = _NSYNTH_SPLITS.get(root.resolve().name, "train")
    items = []
    for note, record in examples.items():
        if not isinstance(record, dict):
            raise DatasetError(f"{index_path}: entry {note!r} is not an object")
        labels = []
        for field in fields:
            value = record.get(_NSYNTH_FIELDS.get(field, field))
            if value is None:
                raise _missing_field(f"{index_path} entry {note!r}", field, sorted(set(_NSYNTH_FIELDS) | set(record)))
            labels.append(str(value))
        items.append(Item(str(root / "audio" / f"{note}.wav"), tuple(labels), str(record.get("split", split))))
    return items


def _index_ljspeech(root: Path, fields: tuple[str, ...]) -> list[Item]:
    if fields:
        raise DatasetError(
            f"{root} (ljspeech layout): no label field {fields[0]!r}; LJSpeech is unconditional, use label_fields=()"
        )
    ids = []
    for line in (root / "metadata.csv").read_text(encoding="utf-8").splitlines():
        clip_id = line.split("|", 1)[0].strip()
        if clip_id:
            ids.append(clip_id)
    ids.sort()
    n_valid = math.ceil(_LJSPEECH_VALID_FRACTION * len(ids)) if len(ids) >= 2 else 0
    first_valid = len(ids) - n_valid
    return [
        Item(str(root / "wavs" / f"{clip_id}.wav"), (), "valid" if i >= first_valid else "train")
        for i, clip_id in enumerate(ids)
    ]


# ----------------------------------------------------------------------------------------------
# Loading
