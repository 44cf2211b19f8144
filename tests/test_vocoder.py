"""Vocoders (Griffin-Lim and the Vocos-style neural one), their files, the GAN training loop, the
copy-synthesis comparison and the spectral distances. Tiny configs, fixed seeds, CPU, seconds."""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cmaudio import vocoder as vocoder_pkg
from cmaudio.audio import MelConfig, mel_spectrogram, num_samples
from cmaudio.checkpoint import save_model
from cmaudio.config import ConfigError, ModelConfig, NetConfig, from_dict, load_config, to_dict
from cmaudio.errors import CheckpointError, TrainingError
from cmaudio.evaluation.metrics import cents, dominant_frequency
from cmaudio.spectral import (
    evaluate_copy_synthesis,
    log_magnitude_l1,
    mel_l1,
    mr_stft_distance,
    mr_stft_loss,
    pesq_available,
    pesq_wb,
    spectral_convergence,
    stft_magnitude,
)
from cmaudio.vocoder import (
    GriffinLim,
    NeuralVocoder,
    Vocoder,
    VocoderError,
    bundled_vocoders,
    check_compatible,
    default_vocoder_for,
    load_vocoder,
    read_vocoder_header,
    register_vocoder,
    registered_architectures,
    save_vocoder,
    vocoder_class,
    vocoder_digest,
)
from cmaudio.vocoder.compare import compare, format_table
from cmaudio.vocoder.config import VocoderTrainConfig
from cmaudio.vocoder.data import SegmentSampler
from cmaudio.vocoder.discriminators import (
    Discriminators,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
)
from cmaudio.vocoder.gan import GANTrainer
from cmaudio.vocoder.neural import VocoderConfig, VocoderNetConfig
from cmaudio.vocoder.train import main, train, write_samples

ROOT = Path(__file__).resolve().parents[1]
SR = 16000
TINY_NET = {"dim": 16, "intermediate_dim": 32, "num_layers": 2}
# Small discriminators and short segments keep a GAN step well under a second.
TINY_LOSS = {
    "mpd_periods": [2, 3],
    "mpd_channels": [4, 8],
    "mrd_channels": 4,
    "mrd_resolutions": [[512, 128, 512], [256, 64, 256]],
}


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a small shared CPU, thread barriers cost more than these tiny
    networks gain from a second core. Restored afterwards for the other test modules."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_vocoder(seed: int = 0, phase: str = "integrated", mel: MelConfig = MelConfig()) -> NeuralVocoder:
    torch.manual_seed(seed)
    v = NeuralVocoder(VocoderConfig(mel=mel, net=VocoderNetConfig(**TINY_NET, phase=phase)), name="tiny")
    with torch.no_grad():  # away from the init so a round trip that dropped a tensor would show
        for p in v.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return v.eval()


def tiny_cfg(**sections) -> VocoderTrainConfig:
    data = {
        "run": {
            "batch_size": 4,
            "device": "cpu",
            "log_every": 1,
            "sample_every": 0,
            "save_every": 1,
        },
        "net": dict(TINY_NET),
        "loss": dict(TINY_LOSS),
        "data": {"segment_frames": 8},
        "optim": {"warmup_steps": 2, "lr": 1e-3},
    }
    for k, v in sections.items():
        data[k] = {**data.get(k, {}), **v}
    return from_dict(VocoderTrainConfig, data)


def sine_clips(freqs, seconds: float = 0.5, seed: int = 0) -> torch.Tensor:
    """[len(freqs), seconds * SR] sines of amplitude 0.5 with random start phases."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(round(seconds * SR)) / SR
    f = torch.as_tensor(freqs, dtype=torch.float32)[:, None]
    return 0.5 * torch.sin(2 * math.pi * f * t + 2 * math.pi * torch.rand(len(freqs), 1, generator=g))


def assert_one_line(exc: pytest.ExceptionInfo, *needles: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert n in msg, msg


# ----------------------------------------------------------------------------------------------
# Shapes and the length convention


@pytest.mark.parametrize("frames", [1, 7, 63])
@pytest.mark.parametrize("phase", ["direct", "integrated"])
def test_neural_shapes_for_odd_frame_counts(frames, phase):
    v = tiny_vocoder(phase=phase)
    with torch.no_grad():
        wav = v(torch.randn(3, 80, frames) - 5)
        single = v(torch.randn(80, frames) - 5)
    assert wav.shape == (3, num_samples(frames, v.mel_config)) and wav.dtype == torch.float32
    assert single.shape == (num_samples(frames, v.mel_config),)
    assert torch.isfinite(wav).all()


@pytest.mark.parametrize("frames", [1, 2, 7, 63])
def test_mel_refine_keeps_shapes(frames):
    torch.manual_seed(0)
    v = NeuralVocoder(VocoderConfig(net=VocoderNetConfig(**TINY_NET, mel_refine=2)), name="tiny").eval()
    with torch.no_grad():
        wav = v(torch.randn(3, 80, frames) - 5)
    assert wav.shape == (3, num_samples(frames, v.mel_config)) and torch.isfinite(wav).all()


def test_mel_refine_pulls_band_energies_onto_the_mel():
    """A chord whose upper partial came out 12 dB too quiet: each refinement step moves the
    output's mel towards the requested one, and a signal already on its mel is left as it is."""
    mel_cfg = MelConfig()
    t = torch.arange(SR // 2) / SR
    target_wav = 0.3 * torch.sin(2 * math.pi * 300 * t) + 0.3 * torch.sin(2 * math.pi * 2500 * t)
    off_wav = 0.3 * torch.sin(2 * math.pi * 300 * t) + 0.075 * torch.sin(2 * math.pi * 2500 * t)
    target = mel_spectrogram(target_wav, mel_cfg)[None]
    n = num_samples(target.shape[-1], mel_cfg)
    v = NeuralVocoder(VocoderConfig(net=VocoderNetConfig(**TINY_NET, mel_refine=1)), name="tiny").eval()
    errors = []
    wav = off_wav[None, :n]
    with torch.no_grad():
        for _ in range(3):
            errors.append(float(mel_l1(wav, target_wav[None, :n], mel_cfg)))
            wav = v.refine(wav, target)
        same = v.refine(target_wav[None, :n], target)
    assert errors[1] < 0.5 * errors[0] and errors[2] < errors[1], errors
    assert float(mel_l1(same, target_wav[None, :n], mel_cfg)) < 0.02
    # Two band-gain updates in one pass (one STFT/iSTFT pair) land closer than one.
    net2 = VocoderNetConfig(**TINY_NET, mel_refine=1, mel_refine_updates=2)
    v2 = NeuralVocoder(VocoderConfig(net=net2), name="tiny").eval()
    with torch.no_grad():
        twice = float(mel_l1(v2.refine(off_wav[None, :n], target), target_wav[None, :n], mel_cfg))
    assert twice < errors[1], (twice, errors)


def test_refinement_momentum_lands_closer_to_the_mel_in_the_same_passes():
    """Fast Griffin-Lim's extrapolation between passes (net.mel_refine_momentum): a voiced,
    vibrato tone started from its magnitude with random phases (as Griffin-Lim starts) ends nearer
    its mel after 8 passes with momentum 0.8 than after 8 plain passes, at every pass count."""
    mel_cfg = MelConfig()
    t = torch.arange(SR // 2) / SR
    phase = 2 * math.pi * torch.cumsum(180 + 40 * torch.sin(2 * math.pi * 3 * t), 0) / SR
    envelope = 0.5 + 0.5 * torch.sin(8 * math.pi * t).abs()
    target_wav = sum(0.3 / k * torch.sin(k * phase) for k in range(1, 12)) * envelope
    target = mel_spectrogram(target_wav, mel_cfg)[None]
    n = num_samples(target.shape[-1], mel_cfg)
    window = torch.hann_window(mel_cfg.win_length)
    spec = torch.stft(target_wav[None, :n], mel_cfg.n_fft, mel_cfg.hop_length, window=window, return_complex=True)
    angles = 2 * math.pi * torch.rand(spec.shape, generator=torch.Generator().manual_seed(0))
    start = torch.istft(torch.polar(spec.abs(), angles), mel_cfg.n_fft, mel_cfg.hop_length, window=window, length=n)
    v = NeuralVocoder(VocoderConfig(net=VocoderNetConfig(**TINY_NET, mel_refine=1)), name="tiny").eval()
    with torch.no_grad():
        for passes in (4, 8):
            plain = float(mel_l1(v.refine(start, target, passes), target_wav[None, :n], mel_cfg))
            fast = float(mel_l1(v.refine(start, target, passes, momentum=0.8), target_wav[None, :n], mel_cfg))
            assert fast < 0.9 * plain, (passes, fast, plain)


@pytest.mark.parametrize("frames", [7, 63])
def test_griffinlim_shapes_for_odd_frame_counts(frames):
    wav = GriffinLim(n_iter=2)(torch.randn(3, 80, frames) - 5)
    assert wav.shape == (3, num_samples(frames, MelConfig())) and torch.isfinite(wav).all()


def test_griffinlim_one_frame():
    assert GriffinLim(n_iter=2)(torch.randn(2, 80, 1)).shape == (2, 0)


def test_wrong_mel_bins_is_a_clear_error():
    with pytest.raises(ValueError, match=r"expects raw log-mel \[B, 80, frames\]"):
        tiny_vocoder()(torch.randn(1, 64, 10))


def test_output_frames_align_with_mel_frames(monkeypatch):
    """If the head predicted the exact STFT, the output would be the input sample for sample: the
    istft uses the mel's n_fft, hop, window and centring, so its frame k is the mel's frame k."""
    g = torch.Generator().manual_seed(0)
    wav = torch.randn(2, 5000, generator=g) * 0.1
    cfg = MelConfig()
    spec = torch.stft(
        wav,
        cfg.n_fft,
        cfg.hop_length,
        cfg.win_length,
        torch.hann_window(cfg.win_length),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    mel = mel_spectrogram(wav)
    assert spec.shape[-1] == mel.shape[-1]
    v = tiny_vocoder()
    monkeypatch.setattr(v, "spectrum", lambda logmel: spec)
    out = v(mel)
    n = num_samples(mel.shape[-1], cfg)
    assert out.shape == (2, n) and torch.allclose(out, wav[:, :n], atol=1e-5)


# ----------------------------------------------------------------------------------------------
# Pitch survives copy synthesis


def test_sine_pitch_survives_griffinlim(tone):
    ref = torch.from_numpy(tone(440.0))[None]
    out = GriffinLim()(mel_spectrogram(ref))
    assert abs(float(cents(dominant_frequency(out, SR), 440.0))) < 50


def overfit(freq: float, phase: str, steps: int) -> tuple[NeuralVocoder, torch.Tensor]:
    """A small generator trained on one steady tone with the reconstruction losses only. The
    heavy MR-STFT weight matters: mel bands 74 Hz wide leave a partial's exact frequency to the
    2048-point STFT term, and with it every sine phase seed tried lands within 30 cents."""
    cfg = from_dict(
        VocoderTrainConfig,
        {
            "net": {"dim": 64, "intermediate_dim": 128, "num_layers": 2, "phase": phase},
            "run": {"batch_size": 4, "device": "cpu"},
            "data": {"segment_frames": 16, "gain_db": 0},
            "optim": {"lr": 3e-3, "warmup_steps": 10, "lr_decay_steps": steps, "ema_decay": 0.9},
            "loss": {"adv_start_step": 10**9, "stft_weight": 40.0},
        },
    )
    clips = sine_clips([freq] * 8, seconds=1.0)
    trainer = GANTrainer(cfg, SegmentSampler([clips], 16 * 256, seed=0), torch.device("cpu"))
    for _ in range(steps):
        assert trainer.train_step() is not None
    with torch.no_grad():
        out = trainer.ema(mel_spectrogram(clips[:2]))
    return trainer.ema, out


def test_sine_pitch_survives_neural_vocoder():
    """470 Hz, not 440: 440 Hz is 10 cents from 437.5 Hz, a multiple of sample_rate / hop that a
    hop-periodic output hits (next test); 470 Hz lies between 437.5 and 500 Hz."""
    _, out = overfit(470.0, "integrated", 250)
    assert torch.isfinite(out).all()
    assert float(cents(dominant_frequency(out, SR), 470.0).abs().max()) < 50


@pytest.mark.parametrize("phase", ["direct", "integrated"])
def test_only_the_integrated_phase_escapes_hop_periodicity(phase):
    """Why phase = "integrated" is the default. The backbone is shift-equivariant, so frames of a
    perfectly steady mel get identical outputs; with Vocos' direct phase the waveform then
    repeats every hop (its partials can only sit at multiples of 62.5 Hz), while a per-frame
    phase advance, integrated over frames, lets them sit anywhere."""
    column = mel_spectrogram(sine_clips([470.0], seconds=1.0))[:, :, 30:31]
    steady = column.repeat(1, 1, 63)
    with torch.no_grad():
        out = tiny_vocoder(phase=phase)(steady)[0]
    mid = out[4096:8192]
    periodic = torch.allclose(mid, out[4096 + 256 : 8192 + 256], atol=1e-5 * float(mid.abs().max()))
    assert periodic == (phase == "direct")


# ----------------------------------------------------------------------------------------------
# Files: strict loading


def test_round_trip_is_bit_exact(tmp_path):
    v = tiny_vocoder()
    path = save_vocoder(tmp_path / "v.safetensors", v, "tiny-16k", step=7)
    w = load_vocoder(path)
    assert isinstance(w, NeuralVocoder) and w.config == v.config and w.step == 7
    assert w.name == str(path) and w.mel_config == MelConfig()
    for (k, a), (k2, b) in zip(v.state_dict().items(), w.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    mel = torch.randn(2, 80, 9) - 5
    with torch.no_grad():
        assert torch.equal(v(mel), w(mel))
    assert [p.name for p in tmp_path.iterdir()] == ["v.safetensors"]


def rewrite(path, tensors, meta):
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=meta)
    return path


@pytest.fixture
def saved(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = save_vocoder(tmp_path / "v.safetensors", tiny_vocoder(), "tiny")
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    return path, load_file(str(path)), meta


def test_missing_tensor_refused(saved, tmp_path):
    path, tensors, meta = saved
    tensors.pop("head.weight")
    bad = rewrite(tmp_path / "missing.safetensors", tensors, meta)
    with pytest.raises(VocoderError) as exc:
        load_vocoder(bad)
    assert_one_line(exc, "missing.safetensors", "1 missing", "head.weight")


def test_unexpected_tensor_refused(saved, tmp_path):
    path, tensors, meta = saved
    tensors["extra.weight"] = torch.zeros(3)
    bad = rewrite(tmp_path / "extra.safetensors", tensors, meta)
    with pytest.raises(VocoderError) as exc:
        load_vocoder(bad)
    assert_one_line(exc, "extra.safetensors", "unexpected", "extra.weight")


def test_misshaped_and_nonfinite_tensors_refused(saved, tmp_path):
    path, tensors, meta = saved
    shaped = dict(tensors, **{"head.bias": torch.zeros(5)})
    with pytest.raises(VocoderError) as exc:
        load_vocoder(rewrite(tmp_path / "shape.safetensors", shaped, meta))
    assert_one_line(exc, "shape.safetensors", "head.bias", "shape")
    nan = dict(tensors, **{"head.bias": torch.full_like(tensors["head.bias"], math.nan)})
    with pytest.raises(VocoderError) as exc:
        load_vocoder(rewrite(tmp_path / "nan.safetensors", nan, meta))
    assert_one_line(exc, "nan.safetensors", "non-finite")


@pytest.mark.parametrize(
    "change",
    [
        {"format": "cmaudio-model"},
        {"format": "something-else"},
        {"format_version": "99"},
        {"format_version": "x"},
        {"config": "{not json"},
        {"config": json.dumps({"net": {"dim": -1}})},
        {"config": json.dumps({"bogus": 1})},
    ],
)
def test_bad_metadata_refused(saved, tmp_path, change):
    path, tensors, meta = saved
    bad = rewrite(tmp_path / "meta.safetensors", tensors, {**meta, **change})
    with pytest.raises(VocoderError) as exc:
        load_vocoder(bad)
    assert_one_line(exc, "meta.safetensors")


def test_acoustic_model_file_is_not_a_vocoder(tmp_path):
    from cmaudio.precond import Denoiser

    cfg = ModelConfig(net=NetConfig(channels=8, channel_mult=(1,), num_blocks=1, attention=False))
    path = save_model(tmp_path / "model.safetensors", Denoiser(cfg), cfg)
    with pytest.raises(VocoderError) as exc:
        load_vocoder(path)
    assert_one_line(exc, "model.safetensors", "unknown vocoder format 'cmaudio-model'")


def test_random_bytes_and_pickles_refused_without_running(tmp_path, monkeypatch):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(VocoderError) as exc:
        load_vocoder(junk)
    assert_one_line(exc, "junk.safetensors")

    marker = tmp_path / "PWNED"
    monkeypatch.setenv("CMAUDIO_PWNED", str(marker))

    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {os.environ['CMAUDIO_PWNED']}",))

    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(VocoderError):
        load_vocoder(evil)
    assert not marker.exists()
    with pytest.raises(VocoderError) as exc:
        load_vocoder(tmp_path / "absent.safetensors")
    assert_one_line(exc, "absent.safetensors", "no such vocoder file")


def test_non_finite_weights_are_never_saved(tmp_path):
    v = tiny_vocoder()
    with torch.no_grad():
        v.head.bias[0] = math.nan
    with pytest.raises(ValueError, match="non-finite"):
        save_vocoder(tmp_path / "v.safetensors", v, "tiny")
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------------------------
# The interface: architectures, the registry and versions


@register_vocoder
class FrameProjectionVocoder(Vocoder):
    """A vocoder the package has never heard of: each mel frame linearly projected to one hop of
    samples, times a gain (a non-tensor setting only its file config carries)."""

    architecture = "test-frame-projection"

    def __init__(self, mel_config: MelConfig, gain: float):
        super().__init__()
        self.mel_config, self.gain, self.name = mel_config, gain, "frame-projection"
        self.proj = torch.nn.Linear(mel_config.n_mels, mel_config.hop_length)

    @classmethod
    def from_file_config(cls, config: dict) -> FrameProjectionVocoder:
        return cls(from_dict(MelConfig, config["mel"]), float(config["gain"]))

    def file_config(self) -> dict:
        return {"mel": to_dict(self.mel_config), "gain": self.gain}

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        hops = self.proj(logmel.transpose(1, 2)) * self.gain  # [B, frames, hop]
        return hops.flatten(1)[:, : num_samples(logmel.shape[-1], self.mel_config)]


def test_a_new_architecture_saves_and_loads_without_touching_the_loader(tmp_path):
    assert vocoder_class("test-frame-projection") is FrameProjectionVocoder
    assert {"NeuralVocoder", "test-frame-projection"} <= set(registered_architectures())
    mel = MelConfig(n_mels=64)
    torch.manual_seed(0)
    v = FrameProjectionVocoder(mel, 0.5)
    path = save_vocoder(tmp_path / "proj.safetensors", v, "proj-16k", step=3)
    header = read_vocoder_header(path)
    assert header.architecture == header.metadata["architecture"] == "test-frame-projection"
    assert header.metadata["format_version"] == "2" and header.name == "proj-16k"
    w = load_vocoder(path)
    assert type(w) is FrameProjectionVocoder and w.gain == 0.5 and w.mel_config == mel
    assert w.step == 3 and w.name == str(path) and not w.training
    assert w.version == f"proj-16k@{vocoder_digest(path)}"
    assert [k for k in w.state_dict()] == [k for k in v.state_dict()]
    assert all(torch.equal(a, b) for a, b in zip(v.state_dict().values(), w.state_dict().values()))
    logmel = torch.randn(2, 64, 9) - 5
    with torch.no_grad():
        assert torch.equal(v(logmel), w(logmel))
    assert w(logmel).shape == (2, num_samples(9, mel))
    with pytest.raises(VocoderError, match="another mel front end"):
        load_vocoder(path, mel_config=MelConfig())
    # Strict loading holds for every architecture.
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    tensors.pop("proj.bias")
    bad = rewrite(tmp_path / "partial.safetensors", tensors, header.metadata)
    with pytest.raises(VocoderError) as exc:
        load_vocoder(bad)
    assert_one_line(exc, "partial.safetensors", "1 missing", "proj.bias")


def test_unknown_architecture_in_a_file_is_a_one_line_error(saved, tmp_path):
    path, tensors, meta = saved
    bad = rewrite(tmp_path / "arch.safetensors", tensors, {**meta, "architecture": "hifigan-v9"})
    with pytest.raises(VocoderError) as exc:
        load_vocoder(bad)
    assert_one_line(exc, "arch.safetensors", "unknown vocoder architecture 'hifigan-v9'", "NeuralVocoder")


def test_registry_refuses_clashes_and_non_vocoders(tmp_path):
    clash = type("NeuralVocoder", (Vocoder,), {})  # the same name, another class
    with pytest.raises(ValueError, match="'NeuralVocoder' is already registered"):
        register_vocoder(clash)
    assert vocoder_class("NeuralVocoder") is NeuralVocoder

    with pytest.raises(TypeError, match="not a Vocoder subclass"):
        register_vocoder(torch.nn.Linear)
    with pytest.raises(VocoderError) as exc:
        vocoder_class("nope")
    assert_one_line(exc, "unknown vocoder architecture 'nope'", "NeuralVocoder")

    class Unregistered(FrameProjectionVocoder):
        pass

    with pytest.raises(VocoderError, match="not a registered vocoder architecture"):
        save_vocoder(tmp_path / "u.safetensors", Unregistered(MelConfig(), 1.0), "u")
    assert not list(tmp_path.iterdir())
    assert isinstance(GriffinLim(), Vocoder) and isinstance(tiny_vocoder(), Vocoder)


def test_neural_vocoder_files_stay_readable_by_older_cmaudio(saved):
    """A NeuralVocoder file is still format version 1 (what a cmaudio from before the registry
    reads); it names its architecture, and the bundled file, which does not, is a NeuralVocoder."""
    _, _, meta = saved
    assert meta["format_version"] == "1" and meta["architecture"] == "NeuralVocoder"
    bundled = vocoder_pkg.ASSETS / "vocoder-16k.safetensors"
    header = read_vocoder_header(bundled)
    assert "architecture" not in header.metadata and header.architecture == "NeuralVocoder"
    v = load_vocoder("vocoder-16k")
    assert type(v) is NeuralVocoder and v.version == f"vocoder-16k@{vocoder_digest(bundled)}"


def test_version_names_the_exact_file(tmp_path):
    a = save_vocoder(tmp_path / "a.safetensors", tiny_vocoder(), "tiny")
    b = save_vocoder(tmp_path / "b.safetensors", tiny_vocoder(seed=1), "tiny")
    va = load_vocoder(a).version
    assert va == "tiny@" + hashlib.sha256(a.read_bytes()).hexdigest()[:12] == f"tiny@{vocoder_digest(a)}"
    assert load_vocoder(b).version != va and load_vocoder(str(a)).version == va
    assert load_vocoder("griffinlim").version == "griffinlim@n_iter=32,momentum=0.99"
    assert GriffinLim(n_iter=8, momentum=0.5).version == "griffinlim@n_iter=8,momentum=0.5"
    with pytest.raises(CheckpointError, match="absent.safetensors"):
        vocoder_digest(tmp_path / "absent.safetensors")


# ----------------------------------------------------------------------------------------------
# Names, defaults and the mel contract


@pytest.fixture
def assets(tmp_path, monkeypatch):
    """A private assets folder holding one bundled neural vocoder named vocoder-16k."""
    folder = tmp_path / "assets"
    folder.mkdir()
    save_vocoder(folder / "vocoder-16k.safetensors", tiny_vocoder(), "vocoder-16k")
    monkeypatch.setattr(vocoder_pkg, "ASSETS", folder)
    return folder


def test_bundled_name_resolves(assets):
    assert bundled_vocoders() == ["vocoder-16k"]
    v = load_vocoder("vocoder-16k")
    assert isinstance(v, NeuralVocoder) and v.name == "vocoder-16k" and not v.training


def test_unknown_name_lists_what_exists(assets):
    with pytest.raises(VocoderError) as exc:
        load_vocoder("hifigan")
    assert_one_line(exc, "'hifigan'", "griffinlim", "vocoder-16k")


def test_default_is_the_bundled_neural_vocoder_when_the_mel_matches(assets):
    v = default_vocoder_for(MelConfig())
    assert isinstance(v, NeuralVocoder) and v.name == "vocoder-16k"
    other = MelConfig(n_mels=64)
    g = default_vocoder_for(other)
    assert isinstance(g, GriffinLim) and g.mel_config == other and g.name == "griffinlim"


def test_default_falls_back_when_a_bundled_file_is_damaged(assets, caplog):
    (assets / "vocoder-16k.safetensors").write_bytes(b"not a safetensors file")
    assert isinstance(default_vocoder_for(MelConfig()), GriffinLim)
    assert "skipping bundled vocoder vocoder-16k" in caplog.text


def test_default_without_bundled_vocoders_is_griffinlim(tmp_path, monkeypatch):
    monkeypatch.setattr(vocoder_pkg, "ASSETS", tmp_path)
    assert isinstance(default_vocoder_for(MelConfig()), GriffinLim)


def test_mel_mismatch_refused_with_a_message(tmp_path):
    v = tiny_vocoder()
    other = MelConfig(hop_length=200, win_length=800)
    with pytest.raises(VocoderError) as exc:
        check_compatible(v, other)
    assert_one_line(exc, "'tiny'", "hop_length: model 200 vs vocoder 256", "win_length")
    check_compatible(v, MelConfig())
    path = save_vocoder(tmp_path / "v.safetensors", v, "tiny")
    with pytest.raises(VocoderError, match="another mel front end"):
        load_vocoder(path, mel_config=other)
    assert load_vocoder(path, mel_config=MelConfig()).mel_config == MelConfig()


# ----------------------------------------------------------------------------------------------
# Discriminators and adversarial losses


@pytest.mark.parametrize("T", [1001, 4096])
def test_discriminator_outputs(T):
    torch.manual_seed(0)
    d = Discriminators(
        **{
            "periods": (2, 3),
            "mpd_channels": (4, 8),
            "mrd_channels": 4,
            "resolutions": ((512, 128, 512), (256, 64, 256)),
        }
    )
    scores, fmaps = d(torch.randn(2, T) * 0.1)
    assert len(scores) == len(fmaps) == 4
    assert all(s.shape[0] == 2 and s.dim() == 2 for s in scores)
    assert all(len(f) == 4 for f in fmaps[:2]) and all(len(f) == 6 for f in fmaps[2:])


def test_adversarial_losses_known_values():
    one, minus = [torch.ones(2, 3)], [-torch.ones(2, 3)]
    assert float(discriminator_loss(one, minus, "hinge")) == 0.0  # both beyond the margin
    assert float(generator_loss(one, "hinge")) == 0.0
    assert float(discriminator_loss(minus, one, "hinge")) == 4.0
    zero = [torch.zeros(2, 3)]
    assert float(discriminator_loss(one, zero, "lsgan")) == 0.0
    assert float(generator_loss(zero, "lsgan")) == 1.0
    f = [[torch.randn(2, 4), torch.randn(2, 5)]]
    assert float(feature_matching_loss(f, f)) == 0.0
    g = [[f[0][0] + 1, f[0][1] - 2]]
    assert float(feature_matching_loss(f, g)) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="unknown adversarial loss"):
        generator_loss(one, "wgan")


# ----------------------------------------------------------------------------------------------
# Training


@pytest.mark.parametrize("adv_kind", ["hinge", "lsgan"])
def test_two_gan_steps_are_finite_and_move_both_networks(adv_kind):
    cfg = tiny_cfg(loss={"adv_kind": adv_kind, "adv_start_step": 0})
    trainer = GANTrainer(cfg, SegmentSampler([sine_clips([220.0, 330.0, 440.0])], 8 * 256, 0), torch.device("cpu"))
    g0 = {k: v.clone() for k, v in trainer.gen.state_dict().items()}
    d0 = {k: v.clone() for k, v in trainer.disc.state_dict().items()}
    t0 = time.perf_counter()
    recs = [trainer.train_step() for _ in range(2)]
    assert time.perf_counter() - t0 < 10
    for r in recs:
        assert r is not None and r["adversarial"]
        assert all(math.isfinite(r[k]) for k in ("loss_g", "loss_d", "loss_adv", "loss_fm", "mel", "stft"))
    assert any(not torch.equal(g0[k], v) for k, v in trainer.gen.state_dict().items())
    assert any(not torch.equal(d0[k], v) for k, v in trainer.disc.state_dict().items())
    assert trainer.step == 2


def test_warm_up_leaves_the_discriminators_alone():
    cfg = tiny_cfg(loss={"adv_start_step": 5})
    trainer = GANTrainer(cfg, SegmentSampler([sine_clips([220.0])], 8 * 256, 0), torch.device("cpu"))
    d0 = {k: v.clone() for k, v in trainer.disc.state_dict().items()}
    rec = trainer.train_step()
    assert not rec["adversarial"] and "loss_d" not in rec
    assert all(torch.equal(d0[k], v) for k, v in trainer.disc.state_dict().items())


def test_segment_sampler_is_seeded_balanced_and_resumable():
    big, small = torch.zeros(100, 4000) + 0.5, torch.zeros(2, 4000) - 0.5
    a, b = SegmentSampler([big, small], 1024, seed=3), SegmentSampler([big, small], 1024, seed=3)
    x = a.next(400)
    assert x.shape == (400, 1024) and torch.equal(x, b.next(400))
    assert 0.35 < float((x < 0).float().mean()) < 0.65  # the 2-clip set drawn half the time
    state = a.state_dict()
    y = a.next(8)
    a.load_state_dict(state)
    assert torch.equal(a.next(8), y)
    with pytest.raises(TrainingError, match="longer than the clips"):
        SegmentSampler([big], 5000, seed=0)


def test_run_folder_contents(tmp_path):
    cfg = tiny_cfg(
        run={"steps": 4, "sample_every": 4, "save_every": 2, "log_every": 2, "snapshot_every": 3},
        loss={"adv_start_step": 2},
    )
    clips = [sine_clips([220.0, 330.0]), sine_clips([550.0, 660.0], seed=1)]
    held = [("low", sine_clips([247.0])), ("high", sine_clips([587.0]))]
    res = train(cfg, tmp_path / "r", progress=False, clips=clips, eval_clips=held)
    names = {p.name for p in (tmp_path / "r").iterdir()}
    assert names == {
        "config.json",
        "log.jsonl",
        "samples",
        "vocoder.safetensors",
        "state.pt",
        "vocoder-0000003.safetensors",
    }
    assert res.steps == 4 and res.bad_steps == 0 and set(res.eval) == {"mr_stft", "mel_l1"}
    recs = [json.loads(x) for x in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    train_recs = [r for r in recs if "loss_g" in r]
    assert [r["step"] for r in train_recs] == [2, 4]
    assert not train_recs[0]["adversarial"] and train_recs[1]["adversarial"] and "loss_d" in train_recs[1]
    assert any("eval_mel_l1" in r for r in recs)
    samples = sorted(p.name for p in (tmp_path / "r" / "samples").iterdir())
    assert "step0000004_low0.wav" in samples and "step0000004_high0.wav" in samples
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert from_dict(VocoderTrainConfig, saved) == cfg
    v = load_vocoder(tmp_path / "r" / "vocoder.safetensors")
    assert v.step == 4 and v.config == cfg.vocoder_config
    with pytest.raises(TrainingError, match="--resume"):
        train(cfg, tmp_path / "r", progress=False, clips=clips)


def test_samples_of_a_manifest_root_are_files_in_samples(tmp_path):
    """load_clips names a manifest root "<folder>/<stem>"; its samples are still plain files in
    samples/ (a slash there once stopped a run at its first sample_every)."""
    held = [("notes/manifest", sine_clips([247.0, 330.0])), ("drums", sine_clips([587.0]))]
    write_samples(tiny_vocoder(), held, MelConfig(), tmp_path, 7)
    wavs = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".wav")
    assert wavs == ["step0000007_drums0.wav", "step0000007_notes-manifest0.wav", "step0000007_notes-manifest1.wav"]
    assert all(p.is_file() for p in tmp_path.iterdir())


def test_resume_is_exact(tmp_path):
    clips = [sine_clips([220.0, 330.0, 440.0])]
    kw = {"loss": {"adv_start_step": 2}}
    train(tiny_cfg(run={"steps": 6}, **kw), tmp_path / "a", progress=False, clips=clips)
    train(tiny_cfg(run={"steps": 3}, **kw), tmp_path / "b", progress=False, clips=clips)
    train(tiny_cfg(run={"steps": 6}, **kw), tmp_path / "b", progress=False, clips=clips, resume=True)
    from cmaudio.checkpoint import load_state

    sa, sb = load_state(tmp_path / "a" / "state.pt"), load_state(tmp_path / "b" / "state.pt")
    assert sa["step"] == sb["step"] == 6
    for part in ("generator", "ema", "discriminators"):
        for k in sa[part]:
            assert torch.allclose(sa[part][k], sb[part][k], atol=1e-6), (part, k)
    steps = [json.loads(x)["step"] for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 6


def test_resume_refuses_a_different_config(tmp_path):
    clips = [sine_clips([220.0])]
    train(tiny_cfg(run={"steps": 1}), tmp_path / "r", progress=False, clips=clips)
    with pytest.raises(TrainingError, match=r"different \[net\]"):
        train(
            tiny_cfg(run={"steps": 2}, net={"dim": 24}),
            tmp_path / "r",
            progress=False,
            clips=clips,
            resume=True,
        )


def test_warm_start_loads_the_generator_and_refuses_another_net(tmp_path):
    clips = [sine_clips([220.0, 330.0])]
    train(tiny_cfg(run={"steps": 3}), tmp_path / "a", progress=False, clips=clips)
    src = tmp_path / "a" / "vocoder.safetensors"
    # lr ~ 0: after one step the saved EMA generator must still be the file warm-started from.
    slow = {"lr": 1e-12, "warmup_steps": 0}
    init = {"steps": 1, "init": str(src)}
    train(tiny_cfg(run=init, optim=slow), tmp_path / "b", progress=False, clips=clips)
    train(tiny_cfg(run={"steps": 1}, optim=slow), tmp_path / "c", progress=False, clips=clips)
    a, b, c = (load_vocoder(tmp_path / r / "vocoder.safetensors").state_dict() for r in "abc")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert not all(torch.allclose(a[k], c[k], atol=1e-3) for k in a)
    # The refinement has no weights: a warm start may switch it on, momentum included.
    refine = {"mel_refine": 2, "mel_refine_momentum": 0.5}
    train(tiny_cfg(run=init, net=refine), tmp_path / "f", progress=False, clips=clips)
    net = load_vocoder(tmp_path / "f" / "vocoder.safetensors").config.net
    assert (net.mel_refine, net.mel_refine_momentum) == (2, 0.5)
    with pytest.raises(TrainingError) as exc:
        train(tiny_cfg(run=init, net={"dim": 24}), tmp_path / "d", progress=False, clips=clips)
    assert_one_line(exc, "run.init", "differs")
    with pytest.raises(TrainingError) as exc:
        train(
            tiny_cfg(run={"steps": 1, "init": str(tmp_path / "nope.safetensors")}),
            tmp_path / "e",
            progress=False,
            clips=clips,
        )
    assert_one_line(exc, "run.init", "nope.safetensors")


def test_non_finite_steps_are_skipped_then_stop(tmp_path):
    clips = [torch.full((2, 4000), math.nan)]
    cfg = tiny_cfg(run={"steps": 5, "max_bad_steps": 3})
    with pytest.raises(TrainingError, match="non-finite for 3 steps in a row"):
        train(cfg, tmp_path / "r", progress=False, clips=clips)
    assert not (tmp_path / "r" / "vocoder.safetensors").exists()


def test_config_is_strict():
    with pytest.raises(ConfigError, match="loss.adv_kind"):
        from_dict(VocoderTrainConfig, {"loss": {"adv_kind": "wgan"}})
    with pytest.raises(ConfigError, match="net.phase"):
        from_dict(VocoderTrainConfig, {"net": {"phase": "random"}})
    with pytest.raises(ConfigError, match="net.kernel_size"):
        from_dict(VocoderTrainConfig, {"net": {"kernel_size": 4}})
    with pytest.raises(ConfigError, match="data.bogus"):
        from_dict(VocoderTrainConfig, {"data": {"bogus": 1}})


@pytest.mark.parametrize("recipe", ["vocoder.toml", "tiny.toml"])
def test_recipes_load(recipe):
    cfg = load_config(ROOT / "recipes" / "vocoder" / recipe, cls=VocoderTrainConfig)
    assert cfg.mel == MelConfig() and len(cfg.data.roots) == 3
    if recipe == "vocoder.toml":
        assert cfg.name == "vocoder-16k" and cfg.loss.adv_start_step < cfg.run.steps
        n = sum(p.numel() for p in NeuralVocoder(cfg.vocoder_config).parameters())
        assert n * 4 < 10e6  # the bundled file stays under 10 MB in float32


# ----------------------------------------------------------------------------------------------
# Spectral distances


def test_distances_of_a_signal_to_itself_are_zero(tone):
    x = torch.from_numpy(np.stack([tone(440.0), tone(1000.0, amp=0.1)]))
    assert torch.allclose(mr_stft_distance(x, x), torch.zeros(2), atol=1e-6)
    assert torch.allclose(mel_l1(x, x), torch.zeros(2), atol=1e-6)


def test_distances_grow_with_noise(tone):
    x = torch.from_numpy(tone(440.0))[None]
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(1, x.shape[-1], generator=g)
    d = [float(mr_stft_distance(x + s * noise, x)) for s in (0.001, 0.01, 0.1)]
    m = [float(mel_l1(x + s * noise, x)) for s in (0.001, 0.01, 0.1)]
    assert 0 < d[0] < d[1] < d[2] and 0 < m[0] < m[1] < m[2]


def test_spectral_convergence_is_scale_invariant_and_log_mag_sees_gain(tone):
    x = torch.from_numpy(tone(440.0))[None]
    y = x + 0.05 * torch.randn(1, x.shape[-1], generator=torch.Generator().manual_seed(1))
    ex, ey = stft_magnitude(x, 1024, 256, 1024), stft_magnitude(y, 1024, 256, 1024)
    sc = spectral_convergence(ey, ex)
    assert torch.allclose(spectral_convergence(3 * ey, 3 * ex), sc, rtol=1e-5)
    # A pure gain of 2 moves every log magnitude above the floor by ln 2 (white noise: all bins).
    noise = torch.randn(1, 8000, generator=torch.Generator().manual_seed(2)) * 0.1
    loud = stft_magnitude(noise, 1024, 256, 1024)[..., 2:-2]  # edge frames see the zero padding
    assert float(log_magnitude_l1(2 * loud, loud)) == pytest.approx(math.log(2), rel=1e-3)


def test_lengths_are_cropped_and_shapes_are_per_clip():
    a, b = torch.randn(3, 4000) * 0.1, torch.randn(3, 4100) * 0.1
    assert mr_stft_distance(a, b).shape == (3,) and mel_l1(a, b).shape == (3,)
    parts = mr_stft_distance(a, b, components=True)
    assert torch.allclose(parts["total"], parts["sc"] + parts["mag"])
    with pytest.raises(ValueError, match="batch sizes differ"):
        mel_l1(a, b[:2])


def test_training_loss_is_not_blown_up_by_a_silent_segment():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(4, 4096, generator=g) * 0.1
    ref[0] = 0.0  # a segment cut from the silent tail of a clip
    est = ref + 0.01 * torch.randn(4, 4096, generator=g)
    assert float(mr_stft_distance(est, ref)[0]) > 1e3  # per clip: SC divides by ~0
    loss = mr_stft_loss(est, ref)
    assert loss.dim() == 0 and float(loss) < 10
    assert float(mr_stft_loss(ref, ref)) == pytest.approx(0.0, abs=1e-6)


def test_band_limited_stft_loss_sees_only_its_band(tone):
    # A 0.5% detuning of a 3 kHz partial is invisible below 1 kHz; the same of a 82.4 Hz
    # fundamental (9 cents) is not, and weighs far more there than in the full-band average.
    res = ((8192, 256, 4096),)
    frac = 1000 / 8000
    hi, hi_off = torch.from_numpy(tone(3000.0))[None], torch.from_numpy(tone(3015.0))[None]
    lo, lo_off = torch.from_numpy(tone(82.4))[None], torch.from_numpy(tone(82.8))[None]
    assert float(mr_stft_loss(hi_off, hi, res, frac)) < 0.01 * float(mr_stft_loss(hi_off, hi, res))
    assert float(mr_stft_loss(lo_off, lo, res, frac)) > 2 * float(mr_stft_loss(lo_off, lo, res))
    # mag_weight 0: spectral convergence alone, batch Frobenius norms over the kept bins.
    e, r = stft_magnitude(lo_off, 8192, 256, 4096)[:, :513], stft_magnitude(lo, 8192, 256, 4096)[:, :513]
    sc = float((r - e).norm() / r.norm())
    assert float(mr_stft_loss(lo_off, lo, res, frac, mag_weight=0.0)) == pytest.approx(sc, rel=1e-5)
    assert float(mr_stft_loss(lo_off, lo, res, frac)) > sc
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="max_bin_fraction"):
            mr_stft_loss(lo, lo, res, bad)


def test_bass_term_is_trained_and_reported():
    with pytest.raises(ConfigError, match="loss.bass_max_hz"):
        from_dict(VocoderTrainConfig, {"loss": {"bass_max_hz": 0}})
    with pytest.raises(ConfigError, match="loss.bass_resolutions"):
        from_dict(VocoderTrainConfig, {"loss": {"bass_weight": 1.0, "bass_resolutions": []}})
    cfg = tiny_cfg(loss={"bass_weight": 5.0, "bass_resolutions": [[2048, 256, 1024]], "adv_start_step": 100})
    trainer = GANTrainer(cfg, SegmentSampler([sine_clips([82.4, 110.0])], 8 * 256, 0), torch.device("cpu"))
    rec = trainer.train_step()
    assert rec is not None and rec["bass"] > 0
    assert rec["loss_g"] == pytest.approx(45 * rec["mel"] + 10 * rec["stft"] + 5 * rec["bass"], rel=1e-4)
    plain = GANTrainer(tiny_cfg(), SegmentSampler([sine_clips([82.4])], 8 * 256, 0), torch.device("cpu"))
    assert "bass" not in plain.train_step()


def test_losses_have_finite_gradients_on_silence():
    est = torch.zeros(2, 4096, requires_grad=True)
    zeros = torch.zeros(2, 4096)
    (mr_stft_loss(est, zeros) + mel_l1(est, zeros).sum()).backward()
    assert torch.isfinite(est.grad).all()


def test_pesq(tone):
    x = torch.from_numpy(tone(440.0))[None]
    if not pesq_available():
        with pytest.raises(ImportError, match="pip install pesq"):
            pesq_wb(x, x, SR)
        return
    assert pesq_wb(x, x, SR).shape == (1,)


def test_copy_synthesis_report(tone):
    wavs = torch.from_numpy(np.stack([tone(440.0), tone(660.0)]))
    m = evaluate_copy_synthesis(GriffinLim(n_iter=8), wavs, MelConfig(), batch_size=1, with_pesq=False)
    assert m["clips"] == 2 and m["x_realtime"] > 0 and m["seconds"] > 0
    assert 0 < m["mel_l1"] < 1 and m["mr_stft"] == pytest.approx(m["sc"] + m["log_mag"])


# ----------------------------------------------------------------------------------------------
# The comparison CLI


@pytest.fixture
def heldout(tmp_path, tone, write_wav):
    root = tmp_path / "tones"
    for i, f in enumerate([220.0, 330.0, 440.0, 550.0]):
        write_wav(root / "t" / f"{i}.wav", tone(f, seconds=0.5))
    (root / "testing_list.txt").write_text("t/2.wav\nt/3.wav\n")
    return root


def test_compare_prints_a_table(tmp_path, heldout, capsys):
    path = save_vocoder(tmp_path / "v.safetensors", tiny_vocoder(), "tiny")
    rows = compare([str(path)], [str(heldout)], seconds=0.5, gl_iters=4, progress=False)
    assert [(r["data"], r["vocoder"], r["clips"]) for r in rows] == [
        ("tones", "griffinlim-4", 2),
        ("tones", str(path), 2),
    ]
    out_json = tmp_path / "rows.json"
    assert (
        main(
            [
                "--compare",
                str(path),
                "--data",
                str(heldout),
                "--seconds",
                "0.5",
                "--gl-iters",
                "4",
                "--no-progress",
                "--json",
                str(out_json),
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "| tones | griffinlim-4 | 2 |" in table and "MR-STFT" in table
    assert len(json.loads(out_json.read_text())) == 2
    assert format_table(rows).count("\n") == 3


@pytest.mark.parametrize(
    "argv, needle",
    [
        ([], "give a CONFIG.toml"),
        (["--compare", "x.safetensors"], "--compare needs --data"),
        (["cfg.toml", "--compare", "x.safetensors", "--data", "d"], "--compare takes no CONFIG"),
        (
            ["--compare", "nonexistent-vocoder", "--data", "d"],
            "unknown vocoder 'nonexistent-vocoder'",
        ),
        (["no-such.toml"], "no such config file"),
    ],
)
def test_cli_errors_are_one_line(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_cli_dry_run(capsys):
    recipe = ROOT / "recipes" / "vocoder" / "vocoder.toml"
    assert main([str(recipe), "--set", "run.steps=5", "--dry-run"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["run"]["steps"] == 5 and cfg["name"] == "vocoder-16k"


def test_export_sets_the_refinement_and_keeps_the_weights(tmp_path, capsys):
    src = tmp_path / "v.safetensors"
    save_vocoder(src, tiny_vocoder(), "tiny", 7, extra={"trained_on": "a,b"})
    argv = ["--export", str(src), str(tmp_path / "w.safetensors"), "--mel-refine", "2", "--mel-refine-updates", "3"]
    assert main(argv) == 0
    a, b = load_vocoder(src), load_vocoder(tmp_path / "w.safetensors")
    assert b.config.net.mel_refine == 2 and b.config.net.mel_refine_updates == 3 and b.step == 7
    assert a.config.net.mel_refine == 0
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    mel = torch.randn(1, 80, 9) - 5
    with torch.no_grad():
        assert not torch.allclose(a(mel), b(mel), atol=1e-4)
    assert main(["--export", str(src), str(tmp_path / "x.safetensors"), "--mel-refine", "-1"]) == 2
    assert "net.mel_refine: must be >= 0" in capsys.readouterr().err
    assert main(["--export", str(src), str(tmp_path / "x.safetensors"), "--mel-refine-momentum", "2.5"]) == 2
    assert "net.mel_refine_momentum: must be in [0, 2)" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()
    assert main(["--mel-refine-momentum", "0.9", "--compare", "griffinlim", "--data", "x"]) == 2
    assert "go with --export SRC DST" in capsys.readouterr().err
    argv = ["--export", str(src), str(tmp_path / "m.safetensors"), "--mel-refine", "4", "--mel-refine-momentum", "0.99"]
    assert main(argv) == 0
    assert load_vocoder(tmp_path / "m.safetensors").config.net.mel_refine_momentum == 0.99


def test_copy_synthesis_reports_a_64_band_mel_and_the_peak_ratio():
    """A vocoder that doubles its output: mel-64 L1 grows by ln 2 in every band, and the output
    peak is twice the input's; the identity-like Griffin-Lim stays near 1."""
    from cmaudio.spectral import evaluate_copy_synthesis

    t = torch.arange(8000) / 16000
    wavs = torch.stack([0.5 * torch.sin(2 * math.pi * f * t) for f in (220.0, 440.0)])
    mel = MelConfig()
    gl = GriffinLim(mel, n_iter=8)

    class Doubled(torch.nn.Module):
        def forward(self, logmel):
            return 2 * gl(logmel)

    plain = evaluate_copy_synthesis(gl, wavs, mel, with_pesq=False)
    loud = evaluate_copy_synthesis(Doubled(), wavs, mel, with_pesq=False)
    assert loud["peak_ratio_max"] == pytest.approx(2 * plain["peak_ratio_max"], rel=1e-4)
    assert loud["peak_ratio_median"] > 1.5 > plain["peak_ratio_median"] > 0.5
    assert loud["mel64_l1"] > plain["mel64_l1"] + 0.5 and plain["mel64_l1"] >= 0
