"""Shared fixtures: synthetic tones and wav files written with soundfile (no data downloads)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def tone() -> Callable[..., np.ndarray]:
    """tone(freq, seconds=1.0, sr=16000, amp=0.5) -> float32 [round(seconds * sr)] sine."""

    def make(freq: float, seconds: float = 1.0, sr: int = 16000, amp: float = 0.5) -> np.ndarray:
        t = np.arange(round(seconds * sr)) / sr
        return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)

    return make


@pytest.fixture
def write_wav() -> Callable[..., Path]:
    """write_wav(path, data [T] or [T, C], sr=16000, subtype=None) -> path; makes parent folders.

    The format follows the suffix (.wav, .flac, .aiff, ...); subtype as soundfile names it
    ("PCM_16", "PCM_24", "PCM_U8", "FLOAT", ...), or soundfile's default for the format.
    """
    import soundfile as sf

    def write(path: str | Path, data: np.ndarray, sr: int = 16000, subtype: str | None = None) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), data, sr, subtype=subtype)
        return path

    return write


ROOT = Path(__file__).resolve().parents[1]


def load_script(relpath: str, name: str):
    """Import a script of the repository (recipes/*/prepare.py, demo/app.py, benchmarks/*.py: not
    package modules) as module ``name``."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, ROOT / relpath)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up while it executes
    spec.loader.exec_module(mod)
    return mod


def load_recipe_module(name: str):
    """Import recipes/<name>/prepare.py."""
    return load_script(f"recipes/{name}/prepare.py", f"recipe_{name}_prepare")


@pytest.fixture(scope="session")
def tones_data(tmp_path_factory) -> Path:
    """The tones data set of recipes/tones at reduced size (40 clips per class)."""
    out = tmp_path_factory.mktemp("tones")
    return load_recipe_module("tones").build(out, per_class=40, seed=0)


# A tiny teacher: trains ~20 steps per second on 2 CPU cores.
TINY = [
    "net.channels=16",
    "net.channel_mult=[1, 2]",
    "net.num_blocks=1",
    "net.attention=false",
    "run.batch_size=8",
    "run.log_every=2",
    "run.sample_every=0",
    "optim.warmup_steps=5",
]


@pytest.fixture(scope="session")
def tiny_overrides() -> list[str]:
    return list(TINY)


@pytest.fixture(scope="session")
def recipe_module():
    """recipe_module(name) imports recipes/<name>/prepare.py."""
    return load_recipe_module


@pytest.fixture(scope="session")
def script_module():
    """script_module(relpath, name) imports a repository script (see load_script)."""
    return load_script
