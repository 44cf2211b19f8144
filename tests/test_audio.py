"""The one mel definition and audio I/O (cmaudio.audio)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cmaudio.audio import (
    AudioError,
    MelConfig,
    MelStats,
    denormalise,
    load_audio,
    mel_spectrogram,
    normalise,
    num_frames,
    peak_normalise,
    save_audio,
)


def mel_band_hz(cfg: MelConfig) -> np.ndarray:
    import librosa

    return librosa.mel_frequencies(cfg.n_mels + 2, fmin=cfg.f_min, fmax=cfg.f_max, htk=False)[1:-1]


def test_one_second_is_63_frames(tone):
    mel = mel_spectrogram(torch.from_numpy(tone(440.0)))
    assert mel.shape == (80, 63) and num_frames(16000, MelConfig()) == 63


@pytest.mark.parametrize("freq", [220.0, 440.0, 1000.0, 3000.0])
def test_tone_peaks_in_its_mel_band(tone, freq):
    cfg = MelConfig()
    mel = mel_spectrogram(torch.from_numpy(tone(freq)), cfg)
    peak_band = int(mel.mean(-1).argmax())
    centres = mel_band_hz(cfg)
    assert abs(centres[peak_band] - freq) <= np.diff(centres).max(), (centres[peak_band], freq)


def test_matches_librosa_slaney_mel(tone):
    import librosa

    w = tone(440.0) + 0.1 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    ref = librosa.feature.melspectrogram(
        y=w,
        sr=16000,
        n_fft=1024,
        hop_length=256,
        win_length=1024,
        n_mels=80,
        fmin=0,
        fmax=8000,
        power=1.0,
        center=True,
        pad_mode="constant",
        htk=False,
        norm="slaney",
    )
    ours = mel_spectrogram(torch.from_numpy(w)).numpy()
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, np.log(np.maximum(ref, 1e-5)), atol=2e-3)


def test_silence_sits_at_the_log_floor():
    cfg = MelConfig()
    mel = mel_spectrogram(torch.zeros(2, 8000), cfg)
    assert torch.allclose(mel, torch.full_like(mel, cfg.log_floor))


def test_batch_equals_single(tone):
    w = torch.from_numpy(np.stack([tone(300.0), tone(500.0)]))
    assert torch.allclose(mel_spectrogram(w)[1], mel_spectrogram(w[1]), atol=1e-5)


def test_normalise_round_trip():
    stats = MelStats(mean=-4.0, std=3.0)
    x = torch.randn(2, 80, 10) * 3 - 4
    y = normalise(x, stats)
    assert abs(float(y.mean())) < 0.1 and abs(float(y.std()) - 0.5) < 0.05
    assert torch.allclose(denormalise(y, stats), x, atol=1e-5)


def test_bad_mel_config_is_refused():
    with pytest.raises(ValueError, match="f_max"):
        MelConfig(f_max=9000.0)
    with pytest.raises(ValueError, match="std"):
        MelStats(std=0.0)


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_save_load_round_trip(tmp_path, tone, fmt):
    w = torch.from_numpy(tone(440.0, 0.25))
    path = save_audio(tmp_path / f"a.{fmt}", w, 16000)
    back = load_audio(path)
    assert back.shape == w.shape and float((back - w).abs().max()) < 1e-4
    assert [p.name for p in tmp_path.iterdir()] == [f"a.{fmt}"]  # no temporary left behind


def test_load_resamples_and_mixes(tmp_path, tone, write_wav):
    st = np.stack([tone(440.0, 0.5, sr=44100), tone(440.0, 0.5, sr=44100)], axis=1)
    wav = load_audio(write_wav(tmp_path / "s.wav", st, sr=44100), 16000)
    assert wav.dim() == 1 and wav.shape[0] == 8000


def test_unreadable_file_is_one_line_error(tmp_path):
    bad = tmp_path / "x.wav"
    bad.write_bytes(b"RIFF1234WAVEjunk" * 3)
    with pytest.raises(AudioError) as e:
        load_audio(bad)
    assert "x.wav" in str(e.value) and "\n" not in str(e.value)


def test_peak_normalise_leaves_silence():
    w = torch.stack([torch.zeros(100), torch.linspace(-0.2, 0.1, 100)])
    out = peak_normalise(w, 0.9)
    assert torch.equal(out[0], w[0]) and abs(float(out[1].abs().max()) - 0.9) < 1e-6


def test_spectrogram_hz_ticks_sit_at_their_frequencies():
    """The Hz ticks of the spectrogram plots (plots._hz_ticks) sit where the mel filter bank puts
    those frequencies: band k's centre, drawn at k + 0.5, is point k + 1 of n_mels + 2 points
    evenly spaced on librosa's Slaney mel scale from f_min to f_max."""
    import librosa

    from cmaudio.plots import _hz_ticks

    mel = MelConfig()
    ticks = _hz_ticks(mel)
    assert [text for _, text in ticks] == ["500", "1k", "2k", "4k"]  # octaves of 500 Hz up to f_max 8k
    lo, hi = librosa.hz_to_mel(mel.f_min), librosa.hz_to_mel(mel.f_max)
    for y, text in ticks:
        hz = 1000 * int(text[:-1]) if text.endswith("k") else int(text)
        at = librosa.mel_to_hz(lo + (y + 0.5) / (mel.n_mels + 1) * (hi - lo))
        assert abs(at - hz) < 1e-3 * hz
