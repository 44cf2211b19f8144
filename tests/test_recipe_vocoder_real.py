"""recipes/vocoder/prepare_real.py: the real-audio vocoder corpus, on fixture recordings written
here (the Debian packages are not needed; the last test uses them where installed)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cmaudio.audio import MelConfig
from cmaudio.data import AudioFolder

SR = 16000


@pytest.fixture(scope="module")
def real(script_module):
    return script_module("recipes/vocoder/prepare_real.py", "recipe_vocoder_prepare_real")


def word(freq: float, seconds: float, sr: int = SR) -> np.ndarray:
    """A 'word': a tone between two stretches of near silence."""
    t = np.arange(int(seconds * sr)) / sr
    body = 0.5 * np.sin(2 * np.pi * freq * t) * np.hanning(len(t))
    pad = np.zeros(int(0.2 * sr))
    return np.concatenate([pad, body, pad]).astype(np.float32)


@pytest.fixture
def sources(tmp_path, write_wav, real):
    """Two fixture sources: speakers of short words (two at 44.1 kHz stereo) and long tracks."""
    speech, music = tmp_path / "speech", tmp_path / "music"
    for k, speaker in enumerate(["ann", "bob", "cy", "dee"]):
        for i in range(12):
            sr = 44100 if k % 2 else SR
            data = word(200 + 40 * i + 7 * k, 0.4, sr)
            write_wav(speech / speaker / f"w{i}.wav", np.stack([data, data], 1) if k % 2 else data, sr)
    for i in range(5):
        t = np.arange(12 * 22050) / 22050
        write_wav(music / f"track{i}.ogg", (0.3 * np.sin(2 * np.pi * (110 + 20 * i) * t)).astype(np.float32), 22050)
    write_wav(music / "silent.wav", np.zeros(SR, np.float32))
    return (
        real.Source("fix-speech", "speech", "fixture", "CC0", speech, real._by_folder, False, 0.0, ("dee",)),
        real.Source("fix-music", "music", "fixture", "CC0", music, real._by_file, True, 0.2),
    )


def args(**kw) -> argparse.Namespace:
    base = dict(
        seconds=1.0,
        test_seconds=4.0,
        max_track_seconds=6.0,
        max_test_track_seconds=8.0,
        jobs=1,
        tiny=False,
        no_progress=True,
    )
    return argparse.Namespace(**(base | kw))


def test_build_holds_out_whole_groups_and_writes_manifests(tmp_path, real, sources, monkeypatch):
    monkeypatch.setattr(real, "SOURCES", sources)
    out = tmp_path / "out"
    summary = real.build(out, args())
    rows = [json.loads(x) for x in (out / "speech.jsonl").read_text().splitlines()]
    train_groups = {r["group"] for r in rows if r["split"] == "train"}
    assert train_groups == {"ann", "bob", "cy"} and {r["group"] for r in rows if r["split"] == "test"} == {"dee"}
    # 12 words of ~0.42 s joined with 0.12 s gaps: ~6.4 s a speaker -> 6 train clips of 1 s
    assert summary["fix-speech"]["train"]["clips"] == 3 * 6 and summary["fix-speech"]["test"]["clips"] == 2
    music = [json.loads(x) for x in (out / "music.jsonl").read_text().splitlines()]
    held = {r["group"] for r in music if r["split"] == "test"}
    assert len(held) == 1 and not held & {r["group"] for r in music if r["split"] == "train"}
    assert "silent" not in {r["group"] for r in music}  # a silent recording gives no clip
    # at most max_track_seconds of train clips per track, evenly spaced
    per_track = {g: sum(r["group"] == g and r["split"] == "train" for r in music) for g in ("track0", "track1")}
    assert all(0 < n <= 6 for n in per_track.values())
    assert (out / "heldout-fix-speech-dee.jsonl").is_file()

    # the manifests are what data.AudioFolder and the vocoder trainer read
    def read(split: str, seconds: float) -> AudioFolder:
        return AudioFolder(
            out,
            mel=MelConfig(),
            seconds=seconds,
            split=split,
            layout="manifest",
            manifest="speech.jsonl",
            label_fields=(),
            cache=False,
            keep_wav=True,
            progress=False,
        )

    ds = read("train", 1.0)
    assert len(ds) == 18 and float(ds.wavs.abs().amax(-1).min()) > 0.1
    test = read("test", 4.0)
    assert test.wavs.shape == (2, 4 * SR)


def test_a_missing_source_is_skipped_with_one_line(tmp_path, real, sources, monkeypatch, capsys):
    gone = real.Source("absent", "music", "no-such-package", "?", tmp_path / "nope", real._by_file, True, 0.2)
    monkeypatch.setattr(real, "SOURCES", (gone, sources[0]))
    summary = real.build(tmp_path / "out", args())
    assert set(summary) == {"fix-speech"}
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("absent")]
    assert len(lines) == 1 and "not found, skipped (install no-such-package)" in lines[0]


def test_splits_do_not_depend_on_the_seed_or_the_order(real):
    src = real.SOURCES[3]  # wesnoth: hashed share
    groups = [f"track{i}" for i in range(20)]
    a = {g: real.split_of(src, g, groups) for g in groups}
    b = {g: real.split_of(src, g, list(reversed(groups))) for g in groups}
    assert a == b and sum(v == "test" for v in a.values()) == 3


def test_cut_and_trim(real):
    wav = torch.ones(int(2.6 * SR)) * 0.5
    clips = real.cut(wav, 1.0, 0)
    assert len(clips) == 3 and all(c.numel() == SR for c in clips)  # 0.6 s left over: kept, padded
    assert len(real.cut(torch.ones(int(2.3 * SR)), 1.0, 0)) == 2  # 0.3 s left over: dropped
    assert len(real.cut(torch.ones(20 * SR), 1.0, 5.0)) == 5
    padded = torch.cat([torch.zeros(SR), torch.ones(SR) * 0.5, torch.zeros(SR)])
    assert real.trim(padded).numel() == SR + 2 * int(0.01 * SR)


@pytest.mark.skipif(not Path("/usr/share/ktuberling/sounds").is_dir(), reason="ktuberling-data not installed")
def test_tiny_build_from_the_installed_packages(tmp_path, real):
    assert real.main(["--out", str(tmp_path / "r"), "--tiny", "--no-progress", "--jobs", "1"]) == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["ktuberling"]["licence"].startswith("GPL") and summary["ktuberling"]["train"]["clips"] > 0
