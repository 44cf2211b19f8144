"""The vocoder interface and the registry of vocoder architectures.

Every vocoder is a ``Vocoder``: a torch module with a ``name``, the ``mel_config`` it renders
and ``forward(logmel [B, n_mels, frames] or [n_mels, frames]) -> wav [B, T] (or [T])`` on raw
log-mel as made by ``cmaudio.audio.mel_spectrogram``, T = ``cmaudio.audio.num_samples(frames)``.
``version`` says exactly which vocoder it is ("<name>@<file digest>", or the parameters of one
that has no file), for manifests.

A vocoder that lives in a file registers its class under an architecture name::

    @register_vocoder
    class MyVocoder(Vocoder):
        architecture = "my-vocoder"          # default: the class name

        @classmethod
        def from_file_config(cls, config: dict) -> "MyVocoder": ...   # rebuild, no weights
        def file_config(self) -> dict: ...                             # JSON-able, saved
        # optional: file_mel_config(config) -> MelConfig without building the network

``cmaudio.vocoder.save_vocoder`` records the architecture in the file's metadata and
``cmaudio.vocoder.load_vocoder`` looks it up with ``vocoder_class``: only registered classes are
ever built, from a JSON config, and the weights then load strictly. Files that predate the
registry name no architecture and are ``DEFAULT_ARCHITECTURE`` (the NeuralVocoder).
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

import torch
from torch import nn

from ..audio import MelConfig
from ..errors import VocoderError

__all__ = [
    "DEFAULT_ARCHITECTURE",
    "Vocoder",
    "register_vocoder",
    "registered_architectures",
    "vocoder_class",
]

# What a vocoder file without an "architecture" entry holds (every file written before it existed).
DEFAULT_ARCHITECTURE = "NeuralVocoder"

V = TypeVar("V", bound="Vocoder")

_REGISTRY: dict[str, type[Vocoder]] = {}


class Vocoder(nn.Module):
    """Raw log-mel -> waveform. Subclasses set ``name`` and ``mel_config`` in ``__init__`` and
    implement ``forward``; file-backed ones also ``from_file_config`` and ``file_config``."""

    # Registry key of a file-backed class (register_vocoder fills in the class name when empty).
    architecture: ClassVar[str] = ""
    name: str = "vocoder"
    mel_config: MelConfig
    # Which vocoder exactly: "<name>@<first 12 hex of the file's sha256>" once loaded from a file
    # (load_vocoder sets it), the parameters of one that needs no file (GriffinLim), "" otherwise.
    version: str = ""
    step: int = 0  # training step of the weights (0 when not trained or unknown)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        """logmel [B, n_mels, frames] -> wav [B, num_samples(frames)] float32."""
        raise NotImplementedError

    @classmethod
    def from_file_config(cls: type[V], config: dict) -> V:
        """Build an untrained instance from ``file_config()`` as read back from a file (a plain
        JSON dict). Raise ConfigError (or ValueError/TypeError/KeyError) for a bad config."""
        raise NotImplementedError(f"{cls.__name__} cannot be rebuilt from a file")

    def file_config(self) -> dict:
        """Everything ``from_file_config`` needs, JSON-able; saved in the file's metadata."""
        raise NotImplementedError(f"{type(self).__name__} cannot be saved to a file")

    @classmethod
    def file_mel_config(cls, config: dict) -> MelConfig:
        """The MelConfig of the vocoder a file config describes (default_vocoder_for matches it to
        a model's). By default builds one, leaving the global RNG as it was; override to read it
        from ``config`` without building."""
        with torch.random.fork_rng(devices=[]):
            return cls.from_file_config(config).mel_config


def register_vocoder(cls: type[V]) -> type[V]:
    """Class decorator: make ``cls`` loadable from files naming ``cls.architecture`` (the class
    name when unset). Re-registering a name is refused unless it is the same class redefined
    (same module and qualified name, e.g. a reloaded module)."""
    if not (isinstance(cls, type) and issubclass(cls, Vocoder)):
        raise TypeError(f"register_vocoder: {cls!r} is not a Vocoder subclass")
    key = cls.__dict__.get("architecture") or cls.__name__
    old = _REGISTRY.get(key)
    if old is not None and old is not cls and _qualified(old) != _qualified(cls):
        raise ValueError(f"vocoder architecture {key!r} is already registered by {_qualified(old)}")
    cls.architecture = key
    _REGISTRY[key] = cls
    return cls


def vocoder_class(architecture: str) -> type[Vocoder]:
    """The class registered under ``architecture``; a one-line VocoderError naming the known ones
    otherwise."""
    try:
        return _REGISTRY[architecture]
    except (KeyError, TypeError):
        known = ", ".join(registered_architectures()) or "none"
        raise VocoderError(f"unknown vocoder architecture {architecture!r} (known: {known})") from None


def registered_architectures() -> list[str]:
    """The architecture names vocoder files may name, sorted."""
    return sorted(_REGISTRY)


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
