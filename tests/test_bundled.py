"""The files in cmaudio/assets: what a fresh install generates from, offline."""

from __future__ import annotations

import json

import pytest
import torch

from cmaudio.generate import main as generate
from cmaudio.pipeline import ASSETS, Pipeline, bundled_models
from cmaudio.vocoder import bundled_vocoders

MODELS = {"digits": "seven", "notes": "60", "drums": "kick"}


def test_the_bundled_files_are_the_ones_documented_and_small():
    assert set(bundled_models()) == set(MODELS)
    assert bundled_vocoders() == ["vocoder-16k"]
    for path in ASSETS.glob("*.safetensors"):
        assert path.stat().st_size <= 10_000_000, path


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_bundled_model_renders_audio_with_the_bundled_vocoder(name):
    pipe = Pipeline.from_pretrained(name, device="cpu")
    assert pipe.is_consistency and pipe.vocoder.name == "vocoder-16k"
    assert set(pipe.config.sigmas) >= {"2", "4"}  # tuned lists stored in the file
    out = pipe.generate(labels=[MODELS[name]] * 2, steps=2, seed=0)
    peak = out.waveforms.abs().amax(-1)
    assert torch.isfinite(out.waveforms).all() and (peak > 0.01).all() and (peak <= 0.99 + 1e-6).all()
    assert out.waveforms.shape[-1] == (pipe.config.frames - 1) * pipe.config.mel.hop_length


def test_generate_with_no_flags_renders_the_ten_digits(tmp_path):
    assert generate(["--out", str(tmp_path), "--quiet"]) == 0
    files = json.loads((tmp_path / "manifest.json").read_text())["files"]
    assert sorted(f["label"] for f in files) == sorted(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    )
    assert all(f["steps"] == 2 and f["vocoder"] == "vocoder-16k" for f in files)


def test_generate_middle_c(tmp_path):
    assert generate(["--model", "notes", "--label", "60", "--out", str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / "60_0.wav").is_file()
