"""Vocoders: raw log-mel [B, n_mels, frames] (cmaudio.audio.mel_spectrogram) -> wav [B, T].

``load_vocoder(name_or_path)`` returns a ``Vocoder`` (base.py) with ``.mel_config``, ``.name``
and ``.version`` (which one exactly, for manifests) whose call renders ``(frames - 1) * hop``
samples per clip (``cmaudio.audio.num_samples``):

- ``"griffinlim"``: GriffinLim (griffinlim.py), no training, any MelConfig;
- a bundled vocoder by name (``cmaudio/assets/<name>.safetensors``, see ``bundled_vocoders()``),
  or the path of a vocoder file (fileformat.py), rebuilt by the class registered for the
  architecture the file names (``register_vocoder``); the one trained by ``python -m
  cmaudio.vocoder.train`` is the NeuralVocoder (neural.py: a Vocos-style Fourier-head network).

``default_vocoder_for(mel_config)`` picks the bundled neural vocoder whose MelConfig equals the
model's, else Griffin-Lim; ``check_compatible`` refuses any other pairing with a message.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..audio import MelConfig
from ..errors import CheckpointError, VocoderError
from .base import Vocoder, register_vocoder, registered_architectures, vocoder_class
from .fileformat import (
    file_mel_config,
    load_vocoder_file,
    read_vocoder_header,
    save_vocoder,
    vocoder_digest,
)
from .griffinlim import GriffinLim
from .neural import NeuralVocoder

__all__ = [
    "ASSETS",
    "DEFAULT_VOCODER",
    "GriffinLim",
    "NeuralVocoder",
    "Vocoder",
    "VocoderError",
    "bundled_vocoders",
    "resolve_vocoder_path",
    "check_compatible",
    "default_vocoder_for",
    "load_vocoder",
    "read_vocoder_header",
    "register_vocoder",
    "registered_architectures",
    "save_vocoder",
    "vocoder_class",
    "vocoder_digest",
]

log = logging.getLogger("cmaudio")

ASSETS = Path(__file__).resolve().parents[1] / "assets"
# The bundled 16 kHz vocoder (recipes/vocoder); tried first by default_vocoder_for.
DEFAULT_VOCODER = "vocoder-16k"


def bundled_vocoders() -> list[str]:
    """Names of the neural vocoders shipped in cmaudio/assets (files named vocoder*.safetensors)."""
    return sorted(p.stem for p in ASSETS.glob("vocoder*.safetensors"))


def _is_path(name: str) -> bool:
    p = Path(name)
    return p.suffix == ".safetensors" or p.exists() or "/" in name or "\\" in name


def resolve_vocoder_path(name_or_path: str | Path) -> Path:
    """A bundled vocoder's name ("vocoder-16k") or a path -> the vocoder file's path; VocoderError
    for an unknown name (Griffin-Lim has no file)."""
    name = str(name_or_path)
    if _is_path(name):
        return Path(name)
    if name in bundled_vocoders():
        return ASSETS / f"{name}.safetensors"
    have = ", ".join(["griffinlim", *bundled_vocoders()])
    raise VocoderError(f"unknown vocoder {name!r}: available: {have}; or give a path to a .safetensors vocoder file")


def load_vocoder(
    name_or_path: str | Path = "griffinlim", mel_config: MelConfig | None = None, device="cpu"
) -> Vocoder:
    """ "griffinlim" (for ``mel_config``, default MelConfig()), or a vocoder file by bundled name
    or path, of whichever registered architecture it names. With ``mel_config`` a vocoder made
    for another front end is refused. Every failure is a one-line VocoderError."""
    name = str(name_or_path)
    if name == "griffinlim":
        return GriffinLim(mel_config or MelConfig()).to(device).eval()
    try:
        vocoder = load_vocoder_file(resolve_vocoder_path(name), device=device, name=name)
    except CheckpointError as exc:
        raise VocoderError(str(exc)) from None
    if mel_config is not None:
        check_compatible(vocoder, mel_config)
    return vocoder


def check_compatible(vocoder: Vocoder, mel_config: MelConfig) -> None:
    """Refuse a vocoder whose mel front end differs from the model's (never silent garbage)."""
    if vocoder.mel_config != mel_config:
        diff = [
            f"{k}: model {getattr(mel_config, k)} vs vocoder {getattr(vocoder.mel_config, k)}"
            for k in mel_config.__dataclass_fields__
            if getattr(mel_config, k) != getattr(vocoder.mel_config, k)
        ]
        raise VocoderError(
            f"vocoder {vocoder.name!r} was made for another mel front end ({'; '.join(diff)})"
        )


def default_vocoder_for(mel_config: MelConfig, device="cpu") -> Vocoder:
    """The best vocoder available for this mel front end: the bundled vocoder when its
    MelConfig equals ``mel_config`` (DEFAULT_VOCODER first), else Griffin-Lim. Callers record
    ``.name`` and ``.version`` (the manifest's "vocoder") so which one rendered the audio is never
    a guess."""
    names = bundled_vocoders()
    names.sort(key=lambda n: n != DEFAULT_VOCODER)
    for name in names:
        path = ASSETS / f"{name}.safetensors"
        try:
            if file_mel_config(read_vocoder_header(path)) == mel_config:
                return load_vocoder_file(path, device=device, name=name)
        except CheckpointError as exc:
            # A damaged bundled file must not stop generation; say so and fall back.
            log.warning("skipping bundled vocoder %s (%s)", name, exc)
    return load_vocoder("griffinlim", mel_config, device)
