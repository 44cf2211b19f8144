"""The files in cmaudio/assets: what a fresh install generates from, offline."""

from __future__ import annotations

import json

import pytest
import torch

from cmaudio.generate import main as generate
from cmaudio.pipeline import ASSETS, Pipeline, bundled_models
from cmaudio.vocoder import bundled_vocoders

MODELS = {"digits": "seven", "digits-real": "7", "notes": "60", "drums": "kick"}


def test_the_bundled_files_are_the_ones_documented_and_small():
    assert set(bundled_models()) == set(MODELS)
    assert bundled_vocoders() == ["vocoder-16k", "vocoder-16k-hq"]
    for path in ASSETS.glob("*.safetensors"):
        assert path.stat().st_size <= 10_000_000, path
    assert sum(p.stat().st_size for p in ASSETS.glob("*.safetensors")) <= 50_000_000


def test_digits_real_states_its_data_and_licence_and_answers_to_the_data_sets_labels():
    from cmaudio.checkpoint import load_model

    mf = load_model(ASSETS / "digits-real.safetensors")
    assert mf.metadata["licence"].startswith("CC BY-SA 4.0") and "Free Spoken Digit" in mf.metadata["licence"]
    assert mf.config.classes == (tuple(str(d) for d in range(10)),)
    assert json.loads(mf.metadata["sigma_search"])["split"] == "valid"  # its sigmas were not chosen on test clips


def test_the_hq_vocoder_is_the_fast_one_refined_and_lands_closer_to_the_mel():
    """vocoder-16k-hq: vocoder-16k's weights with 16 refinement passes and momentum (its file says
    so), and its copy synthesis of a voiced, vibrato tone is closer to the mel than the fast one's."""
    import math

    from cmaudio.audio import mel_spectrogram
    from cmaudio.spectral import mel_l1
    from cmaudio.vocoder import load_vocoder

    fast, hq = load_vocoder("vocoder-16k"), load_vocoder("vocoder-16k-hq")
    net = hq.config.net
    assert (net.mel_refine, net.mel_refine_momentum) == (16, 0.8) and hq.version.startswith("vocoder-16k-hq@")
    assert all(torch.equal(a, b) for a, b in zip(fast.state_dict().values(), hq.state_dict().values()))
    t = torch.arange(16000) / 16000
    phase = 2 * math.pi * torch.cumsum(150 + 30 * torch.sin(2 * math.pi * 2 * t), 0) / 16000
    wav = sum(0.2 / k * torch.sin(k * phase) for k in range(1, 20))
    logmel = mel_spectrogram(wav, fast.mel_config)[None]
    reference = wav[None, : (logmel.shape[-1] - 1) * fast.mel_config.hop_length]
    with torch.inference_mode():
        errors = [float(mel_l1(v(logmel), reference, fast.mel_config)) for v in (fast, hq)]
    assert errors[1] < 0.7 * errors[0], errors


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
