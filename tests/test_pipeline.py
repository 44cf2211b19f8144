"""Pipeline and python -m cmaudio.generate: seeding contract, editing invariants, long audio, CLI."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from cmaudio.audio import MelConfig, MelStats, mel_spectrogram, normalise
from cmaudio.checkpoint import save_model
from cmaudio.config import ModelConfig, NetConfig, PrecondConfig
from cmaudio.generate import main as generate
from cmaudio.pipeline import Pipeline
from cmaudio.precond import Denoiser


def make_model(path: Path, kind: str = "consistency", label_dropout: float = 0.0, freq_channels: int = 0) -> Path:
    """A small untrained model with random (non-zero) output layers: enough for the contracts.
    ``freq_channels``: with the 2-D head over (mel, time) that fitted models have."""
    torch.manual_seed(0)
    cfg = ModelConfig(
        mel=MelConfig(),
        stats=MelStats(-6.0, 2.5),
        precond=PrecondConfig(kind=kind),
        frames=16,
        net=NetConfig(
            channels=16,
            channel_mult=(1, 2),
            num_blocks=1,
            attention=False,
            label_dropout=label_dropout,
            freq_channels=freq_channels,
        ),
        cond_fields=("label",),
        classes=(("low", "high"),),
        sigmas={"2": [80.0, 0.7]},
    )
    m = Denoiser(cfg)
    with torch.no_grad():
        for p in m.parameters():
            if not p.any():
                p.normal_(std=0.05)
    return save_model(path, m, cfg, step=7)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("model") / "cm.safetensors")


@pytest.fixture(scope="module")
def pipe(model_path) -> Pipeline:
    return Pipeline.from_pretrained(model_path, device="cpu")


def test_same_seed_same_audio(pipe):
    a = pipe.generate(labels=["low", "high"], steps=2, seed=3)
    b = pipe.generate(labels=["low", "high"], steps=2, seed=3)
    assert torch.equal(a.waveforms, b.waveforms) and torch.equal(a.mels, b.mels)
    assert a.waveforms.shape == (2, 15 * 256) and a.sample_rate == 16000
    assert a.metadata[1] == {
        "seed": 4,
        "label": "high",
        "sigmas": [80.0, 0.7],
        "steps": 2,
        "calls": 2,
        "guidance": 1.0,
        "model": pipe.name,
        "vocoder": "vocoder-16k",
        "vocoder_version": pipe.vocoder.version,
        "gain_db": 0.0,
        "flags": a.metadata[1]["flags"],
    }
    assert pipe.vocoder.version.startswith("vocoder-16k@") and len(pipe.vocoder.version) == len("vocoder-16k@") + 12
    assert isinstance(a.metadata[1]["flags"], list)


def test_sample_depends_only_on_its_seed(pipe):
    labels = ["low", "high", "low", "high", "low", "high", "low", "high"]
    full = pipe.generate(labels=labels, steps=2, seed=10, batch_size=8)
    one_by_one = pipe.generate(labels=labels, steps=2, seed=10, batch_size=1)
    assert float((full.mels - one_by_one.mels).abs().max()) < 1e-5
    assert pipe.vocoder.name == "vocoder-16k"  # the bundled neural vocoder: feed-forward
    assert float((full.waveforms - one_by_one.waveforms).abs().max()) < 1e-5
    alone = pipe.generate(labels=["high"], steps=2, seed=13)
    assert float((alone.mels[0] - full.mels[3]).abs().max()) < 1e-5


def test_griffinlim_batch_independence_is_looser(model_path):
    """Griffin-Lim's 32 phase-retrieval iterations amplify float rounding of the mel (~1e-7) to
    ~1e-3 in the waveform; the mels themselves stay within 1e-5."""
    pipe = Pipeline.from_pretrained(model_path, device="cpu", vocoder="griffinlim")
    labels = ["low", "high"] * 4
    full = pipe.generate(labels=labels, steps=2, seed=10, batch_size=8)
    one_by_one = pipe.generate(labels=labels, steps=2, seed=10, batch_size=1)
    assert float((full.mels - one_by_one.mels).abs().max()) < 1e-5
    assert float((full.waveforms - one_by_one.waveforms).abs().max()) < 5e-3


def test_steps_and_sigmas(pipe):
    assert pipe.sigmas_for(2) == [80.0, 0.7]  # the model file's recommendation
    assert len(pipe.sigmas_for(3)) == 3 and pipe.sigmas_for(1) == [80.0]
    assert pipe.sigmas_for(sigmas=[80, 1]) == [80.0, 1.0]
    # Issue 17 (4): generation starts from noise at sigma_max; a list starting lower has no data
    # term to start from and is refused in one line (variation starts lower on purpose).
    with pytest.raises(ValueError, match=r"starts at sigma_max \(80\), got 40, 1"):
        pipe.sigmas_for(sigmas=[40, 1])
    with pytest.raises(ValueError, match="starts at sigma_max"):
        pipe.generate(labels=["low"], sigmas=[40, 1])
    assert pipe.sigmas_for(sigmas=[40, 1], from_noise=False) == [40.0, 1.0]
    assert pipe.variation(clip(0.5), 0.5, sigmas=[40, 1], seed=0).metadata[0]["sigmas"][0] < 40
    for bad in (0, 9):
        with pytest.raises(ValueError, match="between 1 and 8"):
            pipe.sigmas_for(bad)
    with pytest.raises(ValueError, match="unknown label 'mid'|unknown label.*valid: low, high"):
        pipe.generate(labels=["mid"])


def clip(seconds=1.0, f=440.0):
    t = torch.arange(int(16000 * seconds)) / 16000
    return 0.3 * torch.sin(2 * torch.pi * f * t) * torch.linspace(1, 0.2, t.numel())


def test_inpaint_keeps_known_frames(pipe):
    audio = clip(1.0)
    out = pipe.inpaint(audio, 0.3, 0.5, steps=2, seed=0, label="low")
    mel = normalise(mel_spectrogram(audio, pipe.config.mel), pipe.config.stats)
    fps = pipe.config.mel.frames_per_second
    a, b = int(0.3 * fps), int(0.5 * fps) + 1
    assert torch.equal(out.mels[0, :, :a], mel[:, :a]) and torch.equal(out.mels[0, :, b:], mel[:, b:])
    assert not torch.allclose(out.mels[0, :, a:b], mel[:, a:b], atol=1e-3)
    # Outside the span (and its short cross-fade) the waveform is the original clip.
    assert torch.equal(out.waveforms[0, :3000], audio[:3000])


def test_continuation_begins_with_the_clip(pipe):
    audio = clip(0.5)
    out = pipe.continue_audio(audio, 1.0, steps=2, seed=1, label="high")
    mel = normalise(mel_spectrogram(audio, pipe.config.mel), pipe.config.stats)
    assert torch.equal(out.mels[0, :, : mel.shape[-1]], mel)
    assert out.waveforms.shape[-1] >= int(1.45 * 16000)
    assert torch.equal(out.waveforms[0, :7000], audio[:7000])


def test_variation(pipe):
    audio = clip(0.5)
    mel = normalise(mel_spectrogram(audio, pipe.config.mel), pipe.config.stats)
    assert torch.equal(pipe.variation(audio, 0.0).mels[0], mel)
    weak, strong = (pipe.variation(audio, s, seed=0, label="low").mels[0] for s in (0.3, 1.0))
    assert float((weak - mel).abs().mean()) < float((strong - mel).abs().mean())
    with pytest.raises(ValueError, match="strength"):
        pipe.variation(audio, 1.5)


def test_long_audio_length_and_determinism(pipe):
    out = pipe.generate(labels=["low"], steps=2, seed=0, duration=2.0)
    assert out.mels.shape[-1] == 2 * 16000 // 256 + 1
    again = pipe.generate(labels=["low"], steps=2, seed=0, duration=2.0)
    assert torch.equal(out.waveforms, again.waveforms)


def test_teacher_pipeline_uses_heun(tmp_path):
    pipe = Pipeline.from_pretrained(make_model(tmp_path / "t.safetensors", kind="edm"), device="cpu")
    out = pipe.generate(labels=["low"], steps=3, seed=0)
    assert out.metadata[0]["calls"] == 5 and torch.isfinite(out.waveforms).all()


# ---------------------------------------------------------------------------------------------- CLI


def test_generate_cli_writes_files_and_manifest(model_path, tmp_path):
    out = tmp_path / "out"
    assert (
        generate(
            [
                "--model",
                str(model_path),
                "--label",
                "low,high",
                "--n",
                "2",
                "--seed",
                "5",
                "--steps",
                "2",
                "--out",
                str(out),
                "--plot",
                "--quiet",
            ]
        )
        == 0
    )
    names = sorted(p.name for p in out.iterdir())
    assert names == ["high_7.wav", "high_8.wav", "low_5.wav", "low_6.wav", "manifest.json", "spectrograms.png"]
    m = json.loads((out / "manifest.json").read_text())
    assert {"wall_seconds", "audio_seconds", "x_realtime", "model", "vocoder"} <= set(m)
    f = {x["file"]: x for x in m["files"]}
    assert f["high_7.wav"]["seed"] == 7 and f["high_7.wav"]["label"] == "high"
    assert f["low_5.wav"]["sigmas"] == [80.0, 0.7] and f["low_5.wav"]["steps"] == 2
    assert {"model", "vocoder"} <= set(f["low_5.wav"])


def test_generate_cli_default_renders_every_class_and_flac(model_path, tmp_path):
    out = tmp_path / "o"
    assert generate(["--model", str(model_path), "--out", str(out), "--format", "flac", "--quiet"]) == 0
    assert sorted(p.name for p in out.glob("*.flac")) == ["high_1.flac", "low_0.flac"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--label", "mid"], "unknown label 'mid'"),
        (["--steps", "9"], "between 1 and 8"),
        (["--steps", "0"], "between 1 and 8"),
        (["--sigmas", "0.5,80"], "decreasing"),
        (["--sigmas", "80,0.001"], "outside"),
        (["--sigmas", "80,abc"], "--sigmas"),
        (["--n", "0"], "--n"),
        (["--device", "tpu"], "invalid choice"),
    ],
)
def test_generate_cli_errors_exit_2_with_one_line(model_path, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert generate(["--model", str(model_path), "--out", str(out), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (out / "manifest.json").exists()


def test_generate_cli_bad_model_files(tmp_path, capsys):
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"a": 1}))
    for model, message in (
        (tmp_path / "missing.safetensors", "no such model file"),
        (evil, "not a cmaudio model file"),
        ("nosuchname", "unknown model"),
    ):
        assert generate(["--model", str(model), "--out", str(tmp_path / "o"), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_generate_cli_unwritable_output(model_path, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert generate(["--model", str(model_path), "--out", str(blocker / "sub"), "--quiet"]) == 2
    assert "cannot write to output folder" in capsys.readouterr().err


def test_limit_peaks_scales_only_clips_over_the_ceiling():
    from cmaudio.pipeline import PEAK_CEILING, limit_peaks

    t = torch.linspace(0, 1, 1600)
    wav = torch.stack([0.5 * torch.sin(40 * t), 2.0 * torch.sin(40 * t), torch.zeros(1600)])
    out, gain_db = limit_peaks(wav)
    assert torch.equal(out[0], wav[0]) and torch.equal(out[2], wav[2])
    assert abs(float(out[1].abs().max()) - PEAK_CEILING) < 1e-6
    assert torch.allclose(out[1], wav[1] * (PEAK_CEILING / float(wav[1].abs().max())), atol=1e-6)
    assert gain_db[0] == 0.0 and gain_db[2] == 0.0
    assert abs(gain_db[1] - 20 * torch.log10(torch.tensor(PEAK_CEILING / float(wav[1].abs().max())))) < 1e-4


def test_generate_never_writes_a_clipping_clip(model_path, monkeypatch):
    pipe = Pipeline.from_pretrained(model_path, device="cpu")
    quiet = pipe.generate(labels=["low", "high"], steps=2, seed=3)
    loud_vocoder = pipe.vocode
    def loud(mels):  # the same clips at three times full scale
        w = loud_vocoder(mels)
        return w * (3.0 / w.abs().amax(-1, keepdim=True))

    monkeypatch.setattr(pipe, "vocode", loud)
    louder = pipe.generate(labels=["low", "high"], steps=2, seed=3)
    assert float(louder.waveforms.abs().max()) <= 0.99 + 1e-6
    assert all(m["gain_db"] < 0 for m in louder.metadata) and all(m["gain_db"] == 0 for m in quiet.metadata)
    # Scaling, not clipping: the shape of each clip is kept.
    ratio = louder.waveforms / quiet.waveforms.where(quiet.waveforms.abs() > 1e-4, torch.ones(1))
    mask = quiet.waveforms.abs() > 1e-4
    for k in range(2):
        r = ratio[k][mask[k]]
        assert float(r.max() - r.min()) < 1e-3 * float(r.abs().mean())


def test_guidance_combines_the_conditional_and_null_calls(tmp_path, capsys):
    """Classifier-free guidance at sampling: with one step the clip is D(z sigma_max) itself, so
    the guided mel is exactly null + w (cond - null) of the unguided pipeline's two mels."""
    from cmaudio.generate import main as generate

    path = make_model(tmp_path / "g.safetensors", label_dropout=0.1)
    plain = Pipeline.from_pretrained(path, device="cpu")
    guided = Pipeline.from_pretrained(path, device="cpu", guidance=2.5)
    cond = plain.generate(labels=["low"], steps=1, seed=3).mels
    null = plain.generate(labels=[None], steps=1, seed=3).mels
    out = guided.generate(labels=["low"], steps=1, seed=3)
    assert not torch.allclose(cond, null, atol=1e-3)
    assert torch.allclose(out.mels, null + 2.5 * (cond - null), atol=1e-4)
    assert out.metadata[0]["calls"] == 2 and out.metadata[0]["guidance"] == 2.5
    assert plain.generate(labels=["low"], steps=2, seed=3).metadata[0]["calls"] == 2
    with pytest.raises(ValueError, match="null label"):
        Pipeline.from_pretrained(make_model(tmp_path / "p.safetensors"), device="cpu", guidance=2.0)
    with pytest.raises(ValueError, match=">= 0"):
        Pipeline.from_pretrained(path, device="cpu", guidance=float("nan"))
    assert generate(["--model", str(tmp_path / "p.safetensors"), "--guidance", "2", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "null label" in err[0] and not (tmp_path / "o").exists()
