"""Vocoder files: write, read and rebuild any registered vocoder architecture (base.py).

A vocoder file is one ``.safetensors``: the (EMA) weights plus string metadata ``format =
"cmaudio-vocoder"``, ``format_version``, ``architecture`` (the registry key of the class that
rebuilds it), ``config`` (that class's ``file_config()`` as JSON), ``name``, ``step`` and
``cmaudio_version``. Format version 1 holds a NeuralVocoder (its ``architecture`` entry may be
absent: files written before the registry, like the bundled vocoder-16k); version 2 any
registered architecture, so a cmaudio that predates the registry refuses such a file in one line
instead of misreading it. Reading never runs code: safetensors parses a JSON header and raw
tensors, the class comes from the registry and the weights load strictly.

``vocoder_digest`` names a file's exact bytes (first 12 hex of its sha256); ``load_vocoder_file``
records ``<name>@<digest>`` as the vocoder's ``version`` for manifests.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..audio import MelConfig
from ..checkpoint import load_strict, read_raw_header, write_weights
from ..errors import CheckpointError, ConfigError, VocoderError
from .base import DEFAULT_ARCHITECTURE, Vocoder, vocoder_class

__all__ = [
    "VOCODER_FORMAT",
    "VOCODER_FORMAT_VERSION",
    "VocoderHeader",
    "build_vocoder",
    "file_mel_config",
    "load_vocoder_file",
    "read_vocoder_header",
    "save_vocoder",
    "vocoder_digest",
]

VOCODER_FORMAT = "cmaudio-vocoder"
# The newest version written and read (see the module docstring for what each holds).
VOCODER_FORMAT_VERSION = 2
DIGEST_HEX = 12


@dataclass(frozen=True)
class VocoderHeader:
    """A vocoder file's validated metadata, without its weights."""

    path: Path
    architecture: str
    config: dict  # the file config as parsed JSON, for the architecture's from_file_config
    metadata: dict[str, str]

    @property
    def name(self) -> str:
        """The name recorded at training (the recipe's ``name``), else the file's stem."""
        return self.metadata.get("name") or self.path.stem

    @property
    def step(self) -> int:
        try:
            return int(self.metadata.get("step", "0"))
        except ValueError:
            return 0


def save_vocoder(
    path: str | os.PathLike,
    vocoder: Vocoder,
    name: str,
    step: int = 0,
    extra: dict[str, str] | None = None,
) -> Path:
    """Write ``vocoder``'s weights (use the EMA copy), architecture and file config as one
    safetensors file, atomically. The class must be registered (``register_vocoder``); non-finite
    weights are refused, never saved."""
    arch = type(vocoder).architecture
    if not arch or vocoder_class(arch) is not type(vocoder):
        raise VocoderError(f"{type(vocoder).__name__} is not a registered vocoder architecture (use @register_vocoder)")
    version = 1 if arch == DEFAULT_ARCHITECTURE else VOCODER_FORMAT_VERSION
    meta = {"name": name, "step": str(int(step)), **(extra or {}), "architecture": arch}
    return write_weights(path, vocoder, VOCODER_FORMAT, version, vocoder.file_config(), meta)


def read_vocoder_header(path: str | os.PathLike) -> VocoderHeader:
    """Validate a vocoder file's header (exists, parses, right format and version, config is a
    JSON table). Every refusal is a one-line CheckpointError naming the file; no weights are read."""
    meta, config = read_raw_header(path, VOCODER_FORMAT, VOCODER_FORMAT_VERSION, "vocoder")
    path = Path(path)
    return VocoderHeader(path, meta.get("architecture") or DEFAULT_ARCHITECTURE, config, meta)


@contextlib.contextmanager
def _file_errors(header: VocoderHeader) -> Iterator[None]:
    """An unknown architecture or a config its class refuses, as one CheckpointError line."""
    try:
        yield
    except VocoderError as exc:
        raise CheckpointError(f"{header.path}: {first_line(exc)}") from None
    except (ConfigError, TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{header.path}: bad vocoder config in metadata ({first_line(exc)})") from None


def file_mel_config(header: VocoderHeader) -> MelConfig:
    """The mel front end the file's vocoder renders, without building it or reading weights."""
    with _file_errors(header):
        return vocoder_class(header.architecture).file_mel_config(header.config)


def build_vocoder(header: VocoderHeader) -> Vocoder:
    """The registered class of ``header.architecture`` built from the file's config, untrained
    (no weights read), named and stepped as the file says."""
    with _file_errors(header):
        vocoder = vocoder_class(header.architecture).from_file_config(header.config)
    vocoder.name, vocoder.step = header.name, header.step
    return vocoder


def load_vocoder_file(path: str | os.PathLike, device: str | torch.device = "cpu", name: str | None = None) -> Vocoder:
    """Rebuild the vocoder a file describes and load its weights strictly (missing, unexpected,
    mis-shaped or non-finite tensors are one-line CheckpointErrors), in eval mode on ``device``.
    ``name`` overrides the file's recorded name (load_vocoder passes the bundled name or the
    path); ``version`` becomes ``<recorded name>@<digest of the bytes the weights came from>``."""
    from safetensors.torch import load as load_tensors

    header = read_vocoder_header(path)
    vocoder = build_vocoder(header)
    try:
        data = header.path.read_bytes()
        tensors = load_tensors(data)
    except Exception as exc:
        raise CheckpointError(f"{header.path}: cannot read weights ({first_line(exc)})") from None
    load_strict(vocoder, tensors, str(header.path))
    vocoder.name = name or header.name
    vocoder.version = f"{header.name}@{short_sha256(data)}"
    return vocoder.to(device).eval()


def vocoder_digest(path: str | os.PathLike) -> str:
    """First 12 hex digits of the sha256 of a vocoder file's bytes: which file, exactly."""
    try:
        return short_sha256(Path(path).read_bytes())
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({first_line(exc)})") from None


def short_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:DIGEST_HEX]


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
