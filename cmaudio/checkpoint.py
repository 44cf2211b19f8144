"""Model files and training state.

- A model file is one ``.safetensors``: the (EMA) weights plus string metadata holding the format
  name and version, the full ModelConfig as JSON (MelConfig, normalisation statistics, network,
  preconditioning, class names, recommended sigmas), the training step and the cmaudio version.
  ``load_model`` needs nothing else, loads strictly and never executes code: safetensors parses a
  JSON header and raw tensors only.
- Training state (``state.pt``: weights, EMA, target, optimiser, step, RNG states) is read with
  ``torch.load(weights_only=True)``, which refuses pickled code.

Every file is written to a temporary name in the same folder, flushed to disk and renamed, so a
crash leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from .config import ModelConfig, from_dict, to_dict
from .errors import CheckpointError, ConfigError
from .files import atomic_write

T = TypeVar("T")

__all__ = [
    "CheckpointError",
    "FORMAT",
    "FORMAT_VERSION",
    "ModelFile",
    "save_model",
    "write_weights",
    "load_model",
    "read_metadata",
    "read_header",
    "read_raw_header",
    "load_weights",
    "save_state",
    "load_state",
    "atomic_write",
]

FORMAT = "cmaudio-model"
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------------------------
# Model files


@dataclass
class ModelFile:
    """What ``load_model`` returns: the rebuilt network, its config and the file's metadata."""

    model: torch.nn.Module  # a precond.Denoiser in eval mode
    config: ModelConfig
    step: int
    metadata: dict[str, str]
    path: str


def save_model(
    path: str | os.PathLike,
    model: torch.nn.Module,
    config: ModelConfig,
    step: int = 0,
    extra: dict[str, str] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write ``model``'s weights (use the EMA copy) and ``config`` as one safetensors file.

    ``dtype`` float16 halves the file (bundled assets); weights load back as float32.
    Refuses non-finite weights: a NaN model is never saved.
    """
    return write_weights(path, model, FORMAT, FORMAT_VERSION, config, {"step": str(int(step)), **(extra or {})}, dtype)


def write_weights(
    path: str | os.PathLike,
    module: torch.nn.Module,
    fmt: str,
    version: int,
    config: Any,
    meta: dict[str, str] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """The one safetensors writer (models, vocoders, classifiers): ``module``'s state dict, floating
    tensors as ``dtype`` (float32, float16 or bfloat16; others as they are), and a header of
    ``meta`` plus format, format_version, config (JSON) and cmaudio_version, which ``meta``
    cannot override. Written atomically; non-finite weights are refused, never saved."""
    from safetensors.torch import save_file

    from . import __version__

    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"unsupported weight dtype {dtype}")
    tensors = {
        k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().cpu()).contiguous()
        for k, v in module.state_dict().items()
    }
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path}: refusing to save non-finite weights ({bad[0]})")
    header = {
        **(meta or {}),
        "format": fmt,
        "format_version": str(version),
        "config": json.dumps(to_dict(config)),
        "cmaudio_version": __version__,
    }
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))


def read_raw_header(path: str | os.PathLike, fmt: str, max_version: int, kind: str) -> tuple[dict[str, str], dict]:
    """Validate the header of any cmaudio safetensors file (model, classifier, vocoder): it exists,
    parses, names format ``fmt`` at a version in 1..``max_version`` and holds a JSON table as its
    config. Returns (metadata, config table); every refusal is one line naming the file. Only
    the JSON header is read: no weights, never code."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such {kind} file")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:
        raise CheckpointError(
            f"{path}: not a cmaudio {kind} file (unreadable safetensors: {_first_line(exc)})"
        ) from None
    if meta.get("format") != fmt:
        raise CheckpointError(f"{path}: unknown {kind} format {meta.get('format')!r} (expected {fmt!r})")
    raw = meta.get("format_version", "")
    try:
        version = int(raw)
    except ValueError:
        raise CheckpointError(f"{path}: bad format_version {raw!r}") from None
    if not 1 <= version <= max_version:
        raise CheckpointError(
            f"{path}: {kind} format version {raw!r} is not supported by this cmaudio (reads 1..{max_version})"
        )
    try:
        config = json.loads(meta.get("config", ""))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: bad {kind} config in metadata ({_first_line(exc)})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: bad {kind} config in metadata (not a JSON table)")
    return meta, config


def read_header(
    path: str | os.PathLike, fmt: str, max_version: int, config_cls: type[T], kind: str
) -> tuple[dict[str, str], T]:
    """read_raw_header, with the config rebuilt as a ``config_cls`` (strictly: unknown keys and
    bad values are refused)."""
    meta, table = read_raw_header(path, fmt, max_version, kind)
    try:
        config = from_dict(config_cls, table)
    except ConfigError as exc:
        raise CheckpointError(f"{path}: bad {kind} config in metadata ({_first_line(exc)})") from None
    return meta, config


def read_metadata(path: str | os.PathLike) -> tuple[dict[str, str], ModelConfig]:
    """Validate a model file's header and return (metadata, ModelConfig) without loading weights."""
    return read_header(path, FORMAT, FORMAT_VERSION, ModelConfig, "model")


def load_weights(path: str | os.PathLike, module: torch.nn.Module) -> None:
    """Read a safetensors file's tensors and load them into ``module`` strictly (load_strict)."""
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read weights ({_first_line(exc)})") from None
    load_strict(module, tensors, str(path))


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> ModelFile:
    """Rebuild the network described by the file and load its weights strictly.

    Missing or unexpected tensors, shape mismatches and non-finite weights are one-line errors.
    """
    from .precond import Denoiser

    path = Path(path)
    meta, config = read_metadata(path)
    model = Denoiser(config)
    load_weights(path, model)
    try:
        step = int(meta.get("step", "0"))
    except ValueError:
        step = 0
    return ModelFile(model.to(device).eval(), config, step, meta, str(path))


def load_strict(module: torch.nn.Module, tensors: dict[str, torch.Tensor], name: str) -> None:
    """load_state_dict that names the first missing/unexpected/mismatched/non-finite tensor."""
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise CheckpointError(f"{name}: weights do not match the model: {', '.join(parts)}")
    for k, v in tensors.items():
        if v.shape != own[k].shape:
            raise CheckpointError(f"{name}: tensor {k} has shape {tuple(v.shape)}, model expects {tuple(own[k].shape)}")
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(f"{name}: tensor {k} holds non-finite values")
    module.load_state_dict(tensors, strict=True)


# ----------------------------------------------------------------------------------------------
# Training state


def save_state(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """torch.save ``state`` atomically (tensors, numbers, strings, lists and dicts only)."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a state file with ``weights_only=True``: pickled code is refused, never run."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such state file")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a loadable training state ({_first_line(exc)})") from None
    if not isinstance(state, dict) or state.get("format") != "cmaudio-state":
        raise CheckpointError(f"{path}: not a cmaudio training state")
    return state


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
