"""recipes/digits/prepare.py: a tiny espeak-ng build has the SC09 layout and leaks no voice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not on PATH")




@pytest.fixture(scope="module")
def prepare(recipe_module):
    return recipe_module("digits")


@pytest.fixture(scope="module")
def tiny(prepare, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("digits") / "digits"
    assert prepare.build(out, per_digit=3, seed=0, jobs=2, progress=False) == out
    return out


def _voice(rel: str) -> str:
    """'seven/en-us+f3_0.wav' -> 'en-us+f3'."""
    return Path(rel).stem.rsplit("_", 1)[0]


def test_split_pairs_cover_and_disjoint(prepare):
    pairs = [f"{v}+v{i}" for v in prepare.VOICES for i in range(40)]
    splits = prepare.split_pairs(pairs)
    assert set(splits) == {"train", "valid", "test"}
    assert sorted(p for v in splits.values() for p in v) == sorted(
        pairs
    )  # each pair in exactly one split
    assert 0.7 < len(splits["train"]) / len(pairs) < 0.9
    assert splits["valid"] and splits["test"]
    # pairs with one split key (en-us-nyc says most digits exactly like en-us) share a split
    group = {p: p.replace("en-us-nyc+", "en-us+") for p in pairs}
    grouped = prepare.split_pairs(pairs, group)
    where = {p: s for s, ps in grouped.items() for p in ps}
    assert all(where[f"en-us+v{i}"] == where[f"en-us-nyc+v{i}"] for i in range(40))
    few = prepare.split_pairs(["a", "b", "c"])  # too few for the hash cut: ranked instead
    assert all(len(v) == 1 for v in few.values())


def test_plan_draws_voices_from_their_split(prepare):
    splits = prepare.split_pairs([f"en-us+v{i}" for i in range(50)])
    clips = prepare.plan(20, splits, seed=3)
    assert len(clips) == 200 and len({c.rel for c in clips}) == 200
    assert all(c.voice in splits[c.split] for c in clips)
    assert all(120 <= c.speed <= 220 and 20 <= c.pitch <= 80 for c in clips)
    assert clips == prepare.plan(20, splits, seed=3)
    assert clips != prepare.plan(20, splits, seed=4)


@needs_espeak
def test_tiny_build_layout_and_audio(tiny):
    assert sorted(p.name for p in tiny.iterdir() if p.is_dir()) == sorted(WORDS)
    wavs = sorted(tiny.glob("*/*.wav"))
    assert len(wavs) >= 25  # 30 planned; a rare espeak failure is skipped, not fatal
    for word in WORDS:
        assert any((tiny / word).glob("*.wav")), word
    for path in wavs:
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.frames) == (16000, 1, 16000), path
        assert info.subtype == "PCM_16", path
        data, _ = sf.read(str(path), dtype="float32")
        assert data.shape == (16000,)
        peak = float(np.abs(data).max())
        assert 0.2 < peak < 1.0, (path, peak)  # levels are drawn in 0.3..0.9
        assert float(np.sqrt(np.mean(data**2))) > 0.005, path  # a word, not silence


@needs_espeak
def test_tiny_build_splits_share_no_voice(tiny):
    speakers = json.loads((tiny / "speakers.json").read_text())
    assert set(speakers) == {"train", "valid", "test"}
    sets = {k: set(v) for k, v in speakers.items()}
    assert not sets["train"] & sets["valid"]
    assert not sets["train"] & sets["test"]
    assert not sets["valid"] & sets["test"]
    # en-us-nyc says most digits exactly like en-us: each variant of the two is in one split
    same = {k: {p.replace("en-us-nyc", "en-us", 1) for p in v} for k, v in speakers.items()}
    assert not same["train"] & same["valid"]
    assert not same["train"] & same["test"]
    assert not same["valid"] & same["test"]

    listed: dict[str, str] = {}
    for name, split in (("validation_list.txt", "valid"), ("testing_list.txt", "test")):
        rows = (tiny / name).read_text().splitlines()
        assert rows, name
        for rel in rows:
            assert (tiny / rel).is_file(), rel
            assert rel.split("/")[0] in WORDS
            listed[rel] = split
    seen = set()
    for path in tiny.glob("*/*.wav"):
        rel = path.relative_to(tiny).as_posix()
        split = listed.get(rel, "train")  # SC09: files in neither list are training clips
        assert _voice(rel) in sets[split], (rel, split)
        seen.add(split)
    assert seen == {"train", "valid", "test"}


@needs_espeak
def test_build_is_deterministic(prepare, tiny, tmp_path):
    again = prepare.build(tmp_path / "again", per_digit=3, seed=0, jobs=1, progress=False)
    a = sorted(p.relative_to(tiny).as_posix() for p in tiny.rglob("*") if p.is_file())
    b = sorted(p.relative_to(again).as_posix() for p in again.rglob("*") if p.is_file())
    assert a == b
    for rel in a:
        assert (tiny / rel).read_bytes() == (again / rel).read_bytes(), rel


@needs_espeak
def test_failed_clips_are_skipped_and_counted(prepare, tmp_path, monkeypatch, capsys):
    real = prepare._word

    def flaky(clip, speed):
        if clip.word == "three":
            raise prepare.SynthesisError("espeak-ng exit 1: simulated")
        return real(clip, speed)

    monkeypatch.setattr(prepare, "_word", flaky)
    out = prepare.build(tmp_path / "d", per_digit=3, seed=1, jobs=2, progress=False)
    assert not any((out / "three").glob("*.wav"))
    assert len(list(out.glob("*/*.wav"))) == 27
    for name in ("validation_list.txt", "testing_list.txt"):
        assert all((out / rel).is_file() for rel in (out / name).read_text().splitlines())
    summary = capsys.readouterr().out
    assert "wrote 27 clips" in summary and "skipped 3" in summary and "simulated" in summary
