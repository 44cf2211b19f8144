"""cmaudio.data: layouts, bad-file handling, resampling, labels, feature cache and statistics.

Every file is written by the test into tmp_path with soundfile; clips are 0.25 to 0.5 s.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from cmaudio import audio as audio_mod
from cmaudio import data as data_mod
from cmaudio.audio import MelConfig, mel_spectrogram
from cmaudio.config import DataConfig
from cmaudio.data import AudioFolder, DatasetError, Item, index_dataset

SR = 16000


def peak_band(mel: torch.Tensor) -> int:
    """Mel band with the most energy averaged over time; mel [n_mels, frames]."""
    return int(mel.mean(-1).argmax())


def midi_hz(pitch: int) -> float:
    return 440.0 * 2 ** ((pitch - 69) / 12)


def by_name(ds: AudioFolder, name: str) -> int:
    return next(i for i, it in enumerate(ds.items) if Path(it.path).name == name)


# ----------------------------------------------------------------------------------------------
# Malformed and unusual files


BAD_FILES = {
    "truncated.wav": "unreadable",
    "badheader.wav": "unreadable",
    "random.wav": "unreadable",
    "empty.wav": "unreadable",
    "text.wav": "unreadable",
    "nan.wav": "unreadable",
    "silent.wav": "silent",
}


def write_bad_files(folder: Path, tone, write_wav) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    header = write_wav(folder / "full.tmp.wav", tone(440, 0.5)).read_bytes()
    (folder / "full.tmp.wav").unlink()
    # A valid 44-byte header announcing samples that are not there.
    (folder / "truncated.wav").write_bytes(header[:44])
    # RIFF/WAVE magic, then a 'fmt ' chunk full of garbage.
    (folder / "badheader.wav").write_bytes(header[:20] + b"\xff" * 16 + header[36:])
    (folder / "random.wav").write_bytes(np.random.default_rng(0).bytes(2000))
    (folder / "empty.wav").write_bytes(b"")
    (folder / "text.wav").write_text("this is not audio\n" * 20)
    nan = tone(440, 0.5)
    nan[100] = np.nan
    write_wav(folder / "nan.wav", nan, subtype="FLOAT")
    write_wav(folder / "silent.wav", np.zeros(SR // 2, np.float32))


@pytest.fixture
def messy(tmp_path, tone, write_wav) -> Path:
    """A folder of seven malformed files and seven valid 440 Hz tones in assorted formats."""
    root = tmp_path / "messy"
    clips = root / "clips"
    write_bad_files(clips, tone, write_wav)
    write_wav(clips / "ref.wav", tone(440, 0.5), subtype="PCM_16")
    write_wav(clips / "u8.wav", tone(440, 0.5), subtype="PCM_U8")
    write_wav(clips / "pcm24.wav", tone(440, 0.5), subtype="PCM_24")
    stereo = np.stack([tone(440, 0.5, amp=0.6), tone(440, 0.5, amp=0.2)], axis=1)
    write_wav(clips / "stereo.wav", stereo, subtype="FLOAT")
    write_wav(clips / "rate8k.wav", tone(440, 0.5, sr=8000), sr=8000)
    write_wav(clips / "rate96k.wav", tone(440, 0.5, sr=96000), sr=96000)
    write_wav(clips / "tone.flac", tone(440, 0.5))
    return root


def test_malformed_files_are_skipped_and_valid_ones_load(messy, tone, caplog):
    caplog.set_level(logging.INFO, logger="cmaudio")
    ds = AudioFolder(
        messy, seconds=0.5, label_fields=(), keep_wav=True, cache=False, progress=False
    )

    valid = {
        "ref.wav",
        "u8.wav",
        "pcm24.wav",
        "stereo.wav",
        "rate8k.wav",
        "rate96k.wav",
        "tone.flac",
    }
    assert {Path(it.path).name for it in ds.items} == valid
    assert ds.mels.shape == (7, 80, 32) and ds.mels.dtype == torch.float32
    assert ds.wavs is not None and ds.wavs.shape == (7, 8000)
    assert ds.labels.shape == (7, 0)

    # Resampled tones keep their pitch: the peak mel band matches a 16 kHz reference tone's.
    ref_band = peak_band(mel_spectrogram(torch.from_numpy(tone(440, 0.5))))
    assert ref_band > 0
    for i, it in enumerate(ds.items):
        assert peak_band(ds.mels[i]) == ref_band, it.path
    # The resampled 8 kHz and 96 kHz tones match the reference waveform closely.
    ref = torch.from_numpy(tone(440, 0.5))
    for name in ("rate8k.wav", "rate96k.wav"):
        err = (ds.wavs[by_name(ds, name)] - ref)[400:-400].abs().max()
        assert err < 0.02, name
    # Stereo is mixed to mono: (0.6 + 0.2) / 2 = 0.4 amplitude.
    stereo = ds.wavs[by_name(ds, "stereo.wav")]
    torch.testing.assert_close(stereo, torch.from_numpy(tone(440, 0.5, amp=0.4)), atol=1e-5, rtol=0)
    # 8-bit unsigned and 24-bit PCM come back centred and at the right scale.
    for name, tol in (("u8.wav", 1.5 / 128), ("pcm24.wav", 1e-5)):
        torch.testing.assert_close(ds.wavs[by_name(ds, name)], ref, atol=tol, rtol=0)

    assert Counter(r for _, r in ds.skipped) == Counter(BAD_FILES.values())
    assert {Path(p).name: r for p, r in ds.skipped} == BAD_FILES
    summaries = [r for r in caplog.records if r.getMessage().startswith("AudioFolder(")]
    assert len(summaries) == 1 and summaries[0].levelno == logging.WARNING
    line = summaries[0].getMessage()
    assert line == ds.summary and "\n" not in line
    assert "split=train): 7 clips, 7 skipped (6 unreadable, 1 silent): " in line
    for name in BAD_FILES:
        assert f"clips/{name}" in line


def test_only_bad_files_raise_a_clear_error(tmp_path, tone, write_wav):
    write_bad_files(tmp_path / "bad" / "x", tone, write_wav)
    with pytest.raises(
        DatasetError, match=r"no usable audio in .*bad \(split train\): 7 files skipped, e\.g\. x/"
    ):
        AudioFolder(tmp_path / "bad", label_fields=(), progress=False)
    # Nothing usable is never cached.
    assert not (tmp_path / "bad" / ".cmaudio_cache").exists()


def test_no_audio_files(tmp_path):
    (tmp_path / "empty" / "docs").mkdir(parents=True)
    (tmp_path / "empty" / "docs" / "readme.txt").write_text("no audio here")
    with pytest.raises(DatasetError, match="no audio files found in .*empty"):
        AudioFolder(tmp_path / "empty", label_fields=(), progress=False)
    with pytest.raises(DatasetError, match="no such directory"):
        AudioFolder(tmp_path / "absent", progress=False)
    with pytest.raises(DatasetError, match="unknown data layout 'sc09'"):
        index_dataset(tmp_path / "empty", layout="sc09")


def test_crop_modes_and_padding(tmp_path, write_wav):
    rng = np.random.default_rng(1)
    root = tmp_path / "crops"
    # 1 s of faint noise with a loud burst at 0.6 to 0.8 s; float, so samples come back exact.
    clip = (0.01 * rng.standard_normal(SR)).astype(np.float32)
    clip[9600:12800] = (0.8 * rng.standard_normal(3200)).clip(-1, 1)
    write_wav(root / "a" / "burst.wav", clip, subtype="FLOAT")
    short = (0.5 * rng.standard_normal(SR // 10)).astype(np.float32)
    write_wav(root / "a" / "short.wav", short, subtype="FLOAT")
    quiet = np.zeros(SR, np.float32)
    quiet[12000:] = 0.5
    write_wav(root / "a" / "late.wav", quiet, subtype="FLOAT")

    kw = {"seconds": 0.25, "label_fields": (), "keep_wav": True, "cache": False, "progress": False}
    n = 4000
    start = AudioFolder(root, crop="start", **kw)
    torch.testing.assert_close(start.wavs[by_name(start, "burst.wav")], torch.from_numpy(clip[:n]))
    # late.wav is silent in its first 0.25 s.
    assert [(Path(p).name, r) for p, r in start.skipped] == [("late.wav", "silent")]
    padded = start.wavs[by_name(start, "short.wav")]
    torch.testing.assert_close(padded[: SR // 10], torch.from_numpy(short))
    assert padded[SR // 10 :].abs().max() == 0

    center = AudioFolder(root, crop="center", **kw)
    c0 = (SR - n) // 2
    torch.testing.assert_close(
        center.wavs[by_name(center, "burst.wav")], torch.from_numpy(clip[c0 : c0 + n])
    )

    loudest = AudioFolder(root, crop="loudest", **kw)
    assert loudest.skipped == []
    window = loudest.wavs[by_name(loudest, "burst.wav")].numpy()
    start_at = int(np.flatnonzero(clip == window[0])[0])
    assert 12800 - n - 100 <= start_at <= 9600 + 100
    assert loudest.wavs[by_name(loudest, "late.wav")].abs().min() == 0.5

    with pytest.raises(DatasetError, match="unknown crop 'middle'"):
        AudioFolder(root, crop="middle", **kw)


# ----------------------------------------------------------------------------------------------
# Layouts


@pytest.fixture
def sc09(tmp_path, tone, write_wav) -> Path:
    """SC09-style folders zero/one/two with split lists and a background-noise folder."""
    root = tmp_path / "sc09"
    for rel, freq in [
        ("zero/a.wav", 300),
        ("zero/b.wav", 310),
        ("one/c.wav", 500),
        ("one/d.wav", 510),
        ("two/e.wav", 700),
        ("two/f.flac", 710),
        ("_background_noise_/noise.wav", 900),
    ]:
        write_wav(root / rel, tone(freq, 0.25))
    (root / "validation_list.txt").write_text("zero/b.wav\n")
    (root / "testing_list.txt").write_text("one/d.wav\n\n")
    (root / "zero" / "._a.wav").write_bytes(b"\x00\x05\x16\x07")  # macOS resource fork
    return root


def test_sc09_split_lists(sc09, tmp_path, tone, write_wav):
    items = index_dataset(sc09)
    assert items == sorted(items, key=lambda it: it.path)
    assert [(Path(it.path).relative_to(sc09).as_posix(), it.labels, it.split) for it in items] == [
        ("one/c.wav", ("one",), "train"),
        ("one/d.wav", ("one",), "test"),
        ("two/e.wav", ("two",), "train"),
        ("two/f.flac", ("two",), "train"),
        ("zero/a.wav", ("zero",), "train"),
        ("zero/b.wav", ("zero",), "valid"),
    ]
    assert isinstance(items[0], Item)

    kw = {"seconds": 0.25, "cache": False, "progress": False}
    train = AudioFolder(sc09, **kw)
    assert train.cond_fields == ("label",)
    assert train.classes == (("one", "two", "zero"),)
    assert train.labels[:, 0].tolist() == [0, 1, 1, 2]
    assert train.mels.shape == (4, 80, 16)
    valid = AudioFolder(sc09, split="valid", classes=train.classes, **kw)
    assert [Path(it.path).name for it in valid.items] == ["b.wav"] and valid.labels.tolist() == [
        [2]
    ]
    assert len(AudioFolder(sc09, split="test", **kw)) == 1
    assert len(AudioFolder(sc09, split=None, **kw)) == 6
    with pytest.raises(
        DatasetError, match=r"split validation\) \(splits present: test, train, valid\)"
    ):
        AudioFolder(sc09, split="validation", **kw)

    # Without the lists every file is training data.
    for name in ("validation_list.txt", "testing_list.txt"):
        (sc09 / name).unlink()
    assert {it.split for it in index_dataset(sc09)} == {"train"}

    with pytest.raises(DatasetError, match="no label field 'pitch'"):
        index_dataset(sc09, label_fields=("pitch",))
    write_wav(sc09 / "loose.wav", tone(440, 0.25))
    with pytest.raises(DatasetError, match=r"loose\.wav: no label field 'label'"):
        index_dataset(sc09)
    assert len(index_dataset(sc09, label_fields=())) == 7


def test_given_classes_skip_unknown_labels(sc09):
    ds = AudioFolder(sc09, seconds=0.25, classes=(("zero", "one"),), cache=False, progress=False)
    assert ds.classes == (("zero", "one"),)
    assert [Path(p).name for p, r in ds.skipped if r == "unknown label"] == ["e.wav", "f.flac"]
    assert ds.labels[:, 0].tolist() == [1, 0]
    assert "2 skipped (2 unknown label)" in ds.summary
    with pytest.raises(DatasetError, match="got 2 lists for 1 label fields"):
        AudioFolder(sc09, classes=(("zero",), ("one",)), progress=False)


def test_manifest_jsonl_and_csv_with_two_label_fields(tmp_path, tone, write_wav):
    root = tmp_path / "man"
    rows = [
        {"path": "audio/s1_yes.wav", "split": "train", "speaker": "s1", "word": "yes"},
        {"path": "audio/s2_no.wav", "split": "train", "speaker": "s2", "word": "no"},
        {"path": "audio/s1_no.wav", "split": "train", "speaker": "s1", "word": "no"},
        {"path": "audio/s2_yes.wav", "split": "test", "speaker": "s2", "word": "yes"},
    ]
    for k, row in enumerate(rows):
        write_wav(root / row["path"], tone(300 + 100 * k, 0.25))
    (root / "meta").mkdir()
    (root / "meta" / "list.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    header = "path,split,speaker,word\n"
    (root / "meta" / "list.csv").write_text(
        header + "".join(",".join(r.values()) + "\n" for r in rows)
    )

    fields = ("speaker", "word")
    kw = {"seconds": 0.25, "label_fields": fields, "cache": False, "progress": False}
    ds = AudioFolder(root, manifest="meta/list.jsonl", **kw)
    assert ds.cond_fields == fields and ds.classes == (("s1", "s2"), ("no", "yes"))
    names = [Path(it.path).name for it in ds.items]
    assert names == ["s1_no.wav", "s1_yes.wav", "s2_no.wav"]
    assert ds.labels.tolist() == [[0, 0], [0, 1], [1, 0]]
    assert ds[1]["cond"].tolist() == [0, 1]
    assert index_dataset(root, manifest="meta/list.csv", label_fields=fields) == index_dataset(
        root, manifest="meta/list.jsonl", label_fields=fields
    )
    assert len(AudioFolder(root, manifest="meta/list.csv", split="test", **kw)) == 1

    bad = [dict(r) for r in rows]
    del bad[2]["word"]
    (root / "meta" / "bad.jsonl").write_text("\n".join(json.dumps(r) for r in bad))
    with pytest.raises(DatasetError, match=r"bad\.jsonl:3: no label field 'word'"):
        index_dataset(root, manifest="meta/bad.jsonl", label_fields=fields)
    (root / "meta" / "broken.jsonl").write_text('{"path": "a.wav"}\n{"path": \n')
    with pytest.raises(DatasetError, match=r"broken\.jsonl:2: invalid JSON"):
        index_dataset(root, manifest="meta/broken.jsonl", label_fields=())
    with pytest.raises(DatasetError, match="manifest not found"):
        index_dataset(root, manifest="meta/nope.jsonl")
    with pytest.raises(DatasetError, match="needs a manifest file"):
        index_dataset(root, layout="manifest")


def test_nsynth_layout_numeric_pitch_order(tmp_path, tone, write_wav):
    root = tmp_path / "nsynth-valid"
    notes = {
        "guitar_acoustic_001-100-050": (100, "guitar", "acoustic"),
        "bass_synthetic_002-060-100": (60, "bass", "synthetic"),
        "organ_electronic_003-009-127": (9, "organ", "electronic"),
        "bass_electronic_004-060-075": (60, "bass", "electronic"),
    }
    examples = {}
    for k, (note, (pitch, family, source)) in enumerate(notes.items()):
        examples[note] = {
            "note": k,
            "note_str": note,
            "pitch": pitch,
            "velocity": 100,
            "instrument_family_str": family,
            "instrument_source_str": source,
        }
        write_wav(root / "audio" / f"{note}.wav", tone(midi_hz(pitch), 0.25))
    (root / "examples.json").write_text(json.dumps(examples))

    items = index_dataset(root, label_fields=("pitch", "family", "source"))
    assert {it.split for it in items} == {"valid"}
    assert items[0].labels == ("60", "bass", "electronic")

    kw = {"seconds": 0.25, "label_fields": ("pitch", "family"), "cache": False, "progress": False}
    ds = AudioFolder(root, split="valid", **kw)
    assert ds.classes == (("9", "60", "100"), ("bass", "guitar", "organ"))
    got = {Path(it.path).stem: tuple(lab) for it, lab in zip(ds.items, ds.labels.tolist())}
    assert got == {
        "bass_electronic_004-060-075": (1, 0),
        "bass_synthetic_002-060-100": (1, 0),
        "guitar_acoustic_001-100-050": (2, 1),
        "organ_electronic_003-009-127": (0, 2),
    }
    # Higher pitch, higher peak band.
    bands = [
        peak_band(ds.mels[by_name(ds, f"{n}.wav")])
        for n in ("bass_synthetic_002-060-100", "guitar_acoustic_001-100-050")
    ]
    assert bands[0] < bands[1]
    with pytest.raises(DatasetError, match=r"no audio files found .*\(splits present: valid\)"):
        AudioFolder(root, split="train", **kw)
    with pytest.raises(DatasetError, match="no label field 'timbre'"):
        index_dataset(root, label_fields=("timbre",))

    other = tmp_path / "notes"
    (root).rename(other)
    assert {it.split for it in index_dataset(other, label_fields=("velocity",))} == {"train"}


def test_ljspeech_layout_resamples_22050(tmp_path, tone, write_wav):
    root = tmp_path / "LJSpeech-1.1"
    ids = [f"LJ001-{k:04d}" for k in range(1, 5)]
    lines = [f"{i}|Printing, in the only sense|Printing, in the only sense – {i}" for i in ids]
    (root / "wavs").mkdir(parents=True)
    (root / "metadata.csv").write_text("\n".join(reversed(lines)) + "\n", encoding="utf-8")
    for i in ids:
        write_wav(root / "wavs" / f"{i}.wav", tone(440, 0.3, sr=22050), sr=22050)

    items = index_dataset(root, label_fields=())
    assert [it.split for it in items] == ["train", "train", "train", "valid"]
    assert Path(items[-1].path).name == "LJ001-0004.wav"

    ds = AudioFolder(root, seconds=0.3, label_fields=(), keep_wav=True, cache=False, progress=False)
    assert len(ds) == 3 and ds.wavs.shape == (3, 4800) and ds.labels.shape == (3, 0)
    assert ds[0]["cond"].shape == (0,) and ds[0]["wav"].shape == (4800,)
    # 0.3 s at 22050 Hz fills the whole 0.3 s at 16 kHz, at the same pitch.
    assert ds.wavs[:, -300:-50].abs().amax(dim=1).min() > 0.3
    assert peak_band(ds.mels[0]) == peak_band(mel_spectrogram(torch.from_numpy(tone(440, 0.3))))
    with pytest.raises(DatasetError, match="no label field 'label'.*unconditional"):
        AudioFolder(root, progress=False)


# ----------------------------------------------------------------------------------------------
# Cache, statistics, Dataset protocol


def _counting_loader(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = audio_mod.load_audio

    def counted(path, *args, **kwargs):
        calls.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(data_mod, "load_audio", counted)
    return calls


def test_disk_cache_hit_corruption_and_invalidation(sc09, tone, write_wav, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="cmaudio")
    (sc09 / "one" / "broken.wav").write_text("not audio")
    kw = {"seconds": 0.25, "keep_wav": True, "progress": False}
    first = AudioFolder(sc09, **kw)
    cache_files = list((sc09 / ".cmaudio_cache").glob("*.pt"))
    assert len(cache_files) == 1
    assert not list((sc09 / ".cmaudio_cache").glob("*.tmp"))
    # The cache folder is never indexed as audio.
    assert all(".cmaudio_cache" not in it.path for it in index_dataset(sc09))

    def refuse(*args, **kwargs):
        raise AssertionError("load_audio called on a cache hit")

    monkeypatch.setattr(data_mod, "load_audio", refuse)
    caplog.clear()
    hit = AudioFolder(sc09, **kw)
    torch.testing.assert_close(hit.mels, first.mels, rtol=0, atol=0)
    torch.testing.assert_close(hit.wavs, first.wavs, rtol=0, atol=0)
    assert torch.equal(hit.labels, first.labels) and hit.classes == first.classes
    assert hit.items == first.items and hit.skipped == first.skipped == [
        (str(sc09 / "one" / "broken.wav"), "unreadable")
    ]
    assert hit.summary == first.summary
    assert [r.getMessage() for r in caplog.records] == [first.summary]

    # A torn cache file is ignored and rebuilt.
    cache_files[0].write_bytes(b"PK\x03\x04 torn")
    calls = _counting_loader(monkeypatch)
    rebuilt = AudioFolder(sc09, **kw)
    assert len(calls) == 5 and torch.equal(rebuilt.mels, first.mels)
    assert torch.load(cache_files[0], weights_only=True)["version"] == data_mod._CACHE_VERSION

    # A changed file gives a new key: everything is reloaded and the new content shows.
    calls.clear()
    write_wav(sc09 / "zero" / "a.wav", tone(2000, 0.25))
    st = os.stat(sc09 / "zero" / "a.wav")
    os.utime(sc09 / "zero" / "a.wav", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changed = AudioFolder(sc09, **kw)
    assert len(calls) == 5
    assert len(list((sc09 / ".cmaudio_cache").glob("*.pt"))) == 2
    k = by_name(changed, "a.wav")
    assert peak_band(changed.mels[k]) > peak_band(first.mels[k])

    # Other settings are other cache entries.
    calls.clear()
    AudioFolder(sc09, **{**kw, "crop": "center"})
    assert len(calls) == 5


def test_unwritable_cache_location_is_skipped(sc09, monkeypatch):
    # A file where the cache folder should be: mkdir fails as on a read-only root (even as root).
    (sc09 / ".cmaudio_cache").write_text("in the way")
    calls = _counting_loader(monkeypatch)
    a = AudioFolder(sc09, seconds=0.25, progress=False)
    b = AudioFolder(sc09, seconds=0.25, progress=False)
    assert len(calls) == 8 and torch.equal(a.mels, b.mels)


def test_stats_getitem_and_dataloader(sc09):
    ds = AudioFolder(sc09, seconds=0.25, split=None, cache=False)
    stats = ds.stats()
    m = ds.mels.double()
    assert stats.mean == pytest.approx(float(m.mean()), rel=1e-9)
    assert stats.std == pytest.approx(float(m.std()), rel=1e-9)
    assert stats.sigma_data == 0.5

    item = ds[3]
    assert set(item) == {"mel", "cond", "index"}
    assert item["mel"].shape == (80, 16) and item["cond"].dtype == torch.long and item["index"] == 3
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4, shuffle=False)))
    assert batch["mel"].shape == (4, 80, 16) and batch["cond"].shape == (4, 1)
    assert batch["index"].tolist() == [0, 1, 2, 3]


def test_from_config_and_mel_config(sc09):
    cfg = DataConfig(root=str(sc09), split="valid", seconds=0.5, cache=False)
    ds = AudioFolder.from_config(cfg, progress=False)
    assert len(ds) == 1 and ds.mels.shape == (1, 80, 32)
    small = MelConfig(n_mels=40, hop_length=128)
    ds = AudioFolder.from_config(cfg, small, split="train", progress=False)
    assert ds.mels.shape == (4, 40, 63) and ds.frames == 63
    with pytest.raises(DatasetError, match="data.root is empty"):
        AudioFolder.from_config(DataConfig())


def test_nsynth_records_may_carry_their_own_split(tmp_path, tone, write_wav):
    """Sets built by recipes/notes keep train/valid/test in one folder, split per record."""
    root = tmp_path / "notes"
    examples = {}
    for k, split in enumerate(["train", "train", "valid", "test"]):
        name = f"keyboard_{k}-060-100"
        examples[name] = {"pitch": 60, "instrument_family_str": "keyboard", "split": split}
        write_wav(root / "audio" / f"{name}.wav", tone(midi_hz(60), 0.25))
    (root / "examples.json").write_text(json.dumps(examples))
    items = index_dataset(root, label_fields=("pitch",))
    assert [it.split for it in items] == ["train", "train", "valid", "test"]
