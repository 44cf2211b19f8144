"""cmaudio: fast audio generation with consistency models over mel spectrograms.

    from cmaudio import Pipeline
    pipe = Pipeline.from_pretrained("digits")
    out = pipe.generate(labels=["seven"] * 4, steps=2, seed=0)

Importing cmaudio never imports gradio or matplotlib; the public names below load on first use.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "Pipeline": "cmaudio.pipeline",
    "GenerationOutput": "cmaudio.pipeline",
    "MelConfig": "cmaudio.audio",
    "MelStats": "cmaudio.audio",
    "load_audio": "cmaudio.audio",
    "save_audio": "cmaudio.audio",
    "mel_spectrogram": "cmaudio.audio",
    "load_model": "cmaudio.checkpoint",
    "save_model": "cmaudio.checkpoint",
    "load_vocoder": "cmaudio.vocoder",
    "TrainConfig": "cmaudio.config",
    "ModelConfig": "cmaudio.config",
    "load_config": "cmaudio.config",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cmaudio' has no attribute {name!r}")
