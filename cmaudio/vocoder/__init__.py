"""Vocoders: raw log-mel [B, n_mels, frames] (as made by cmaudio.audio.mel_spectrogram) -> wav [B, T].

``load_vocoder(name_or_path)`` returns a module with ``.mel_config`` and ``.name``.
"""

from __future__ import annotations

from pathlib import Path

from ..audio import MelConfig
from .griffinlim import GriffinLim

__all__ = ["GriffinLim", "load_vocoder", "default_vocoder_for", "check_compatible", "VocoderError"]


class VocoderError(ValueError):
    """A vocoder that cannot be loaded or does not match the model's mel front end."""


def load_vocoder(name_or_path: str | Path = "griffinlim", mel_config: MelConfig | None = None, device="cpu"):
    """"griffinlim" (optionally for a given MelConfig), or a neural vocoder by bundled name or path."""
    name = str(name_or_path)
    if name == "griffinlim":
        return GriffinLim(mel_config or MelConfig()).to(device).eval()
    raise VocoderError(f"unknown vocoder {name!r}: available: griffinlim")


def check_compatible(vocoder, mel_config: MelConfig) -> None:
    """Refuse a vocoder whose mel front end differs from the model's (never silent garbage)."""
    if vocoder.mel_config != mel_config:
        diff = [
            f"{k}: model {getattr(mel_config, k)} vs vocoder {getattr(vocoder.mel_config, k)}"
            for k in mel_config.__dataclass_fields__
            if getattr(mel_config, k) != getattr(vocoder.mel_config, k)
        ]
        raise VocoderError(f"vocoder {vocoder.name!r} was made for another mel front end ({'; '.join(diff)})")


def default_vocoder_for(mel_config: MelConfig, device="cpu"):
    """The best vocoder available for this mel front end: the bundled neural vocoder when its
    MelConfig matches, else Griffin-Lim (the manifest records which)."""
    return load_vocoder("griffinlim", mel_config, device)
