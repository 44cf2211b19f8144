"""recipes/drums/prepare.py: drumkit.xml parsing, labels, whole-kit splits, and builds from a
synthetic kit folder (always) and from the installed hydrogen-drumkits (when present)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

DRUMKITS = Path("/usr/share/hydrogen/data/drumkits")
LABELS = ("kick", "snare", "hihat", "tom", "cymbal", "clap_perc")
needs_drumkits = pytest.mark.skipif(
    not any(DRUMKITS.glob("*/drumkit.xml")) if DRUMKITS.is_dir() else True,
    reason="hydrogen-drumkits is not installed",
)




@pytest.fixture(scope="module")
def prepare(recipe_module):
    return recipe_module("drums")


# ----------------------------------------------------------------------------------------------
# A synthetic kit folder: both drumkit.xml schemas, several formats, and files to skip

NS = "http://www.hydrogen-music.org/drumkit"


def _old_schema(name: str, instruments: list[tuple[str, list[str]]]) -> str:
    """Old schema, no namespace: <filename> directly under <instrument>."""
    body = "".join(
        f"<instrument><id>{i}</id><name>{n}</name>"
        + "".join(f"<filename>{f}</filename>" for f in files)
        + "<volume>1</volume></instrument>"
        for i, (n, files) in enumerate(instruments)
    )
    return (
        f"<drumkit_info><name>{name}</name><instrumentList>{body}</instrumentList></drumkit_info>"
    )


def _new_schema(name: str, instruments: list[tuple[str, list[str]]]) -> str:
    """Component schema with a default namespace: <instrumentComponent><layer><filename>."""
    body = "".join(
        f"<instrument><id>{i}</id><name>{n}</name><instrumentComponent><component_id>0"
        "</component_id>"
        + "".join(f"<layer><filename>{f}</filename><min>0</min></layer>" for f in files)
        + "</instrumentComponent></instrument>"
        for i, (n, files) in enumerate(instruments)
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><drumkit_info xmlns="{NS}" '
        f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><name>{name}</name>'
        f"<instrumentList>{body}</instrumentList></drumkit_info>"
    )


def _hit(kind: str, sr: int, seed: int, lead: float = 0.05, seconds: float = 0.6) -> np.ndarray:
    """A crude drum hit after ``lead`` s of silence: a pitched thump or a noise burst."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    if kind in ("kick", "tom"):
        f = (50.0 if kind == "kick" else 150.0) + 0.5 * seed  # no two files alike
        body = np.sin(2 * np.pi * f * t) * np.exp(-t * 8)
    else:
        body = rng.standard_normal(len(t)) * np.exp(-t * (30 if kind == "hihat" else 10))
    wav = np.concatenate([np.zeros(int(lead * sr)), body])
    return (0.6 * wav / np.abs(wav).max()).astype(np.float32)


KITS = {
    # kit: (schema, [(instrument, [(file, kind or a special)])])
    "Alpha Kit": (
        _old_schema,
        [
            ("Kick", [("kick.wav", "kick")]),
            ("Snare Rock", [("snare.flac", "snare")]),
            ("Closed HH", [("hh.aiff", "hihat")]),
            ("Tom Hi", [("tom.wav", "tom")]),
            ("Crash", [("crash.wav", "cymbal")]),
            ("Hand Clap", [("clap.wav", "snare")]),
            ("Whistle", [("whistle.wav", "hihat")]),  # no type
            ("Ride", [("silent.wav", "silent")]),
            ("Cowbell", [("corrupt.wav", "corrupt")]),
            ("Tambourine", [("missing.wav", "missing")]),
        ],
    ),
    "Beta": (
        _new_schema,
        [
            ("Kick (22 inch)", [("k1.flac", "kick"), ("k2.flac", "kick")]),
            ("Snare", [("s1.wav", "snare")]),
            ("Hi-Hat Open", [("h1.wav", "hihat")]),
            ("Tom Low", [("t1.wav", "tom")]),
            ("Tom Mid", [("t1.wav", "tom")]),  # the same file again: a duplicate
            ("Ride Bell", [("r1.wav", "cymbal")]),
        ],
    ),
    "Gamma": (
        _new_schema,
        [
            ("BassDrum", [("bd.wav", "kick")]),
            ("Snare", [("sd.wav", "snare")]),
            ("17", [("HiHatClosed-0.wav", "hihat")]),  # the name says nothing: the file does
            ("Floor Tom", [("ft.wav", "tom")]),
            ("Splash", [("sp.wav", "cymbal")]),
            ("Side Stick", [("st.wav", "snare")]),
        ],
    ),
    "Delta": (
        _old_schema,
        [
            ("Conga", [("c1.wav", "tom"), ("c2.wav", "tom")]),
            ("Shaker", [("sh.wav", "hihat")]),
        ],
    ),
}


@pytest.fixture(scope="module")
def fake_kits(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("drumkits")
    for k, (kit, (schema, instruments)) in enumerate(KITS.items()):
        folder = root / kit
        folder.mkdir()
        xml = schema(kit, [(name, [f for f, _ in files]) for name, files in instruments])
        (folder / "drumkit.xml").write_text(xml)
        for i, (_, files) in enumerate(instruments):
            for j, (fname, kind) in enumerate(files):
                path = folder / fname
                sr = (44100, 48000)[(i + j) % 2]
                if kind == "missing" or path.exists():
                    continue
                if kind == "corrupt":
                    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all")
                    continue
                wav = (
                    np.zeros(sr // 2, dtype=np.float32)
                    if kind == "silent"
                    else _hit(kind, sr, seed=100 * k + 10 * i + j)
                )
                if (i + j) % 3 == 0:
                    wav = np.stack([wav, 0.5 * wav], axis=1)  # some stereo files
                sf.write(str(path), wav, sr)
    return root


@pytest.fixture(scope="module")
def fake_build(prepare, fake_kits, tmp_path_factory) -> tuple[Path, str]:
    import contextlib
    import io

    out = tmp_path_factory.mktemp("drums_fake") / "drums"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        prepare.build(
            out, augment=2, seed=0, jobs=2, progress=False, drumkits=fake_kits, test_kits=1
        )
    return out, buf.getvalue()


# ----------------------------------------------------------------------------------------------
# Pieces


def test_parse_drumkit_both_schemas(prepare, tmp_path):
    inst = [("Kick", ["a.wav", "b.wav"]), ("Empty", []), ("Snare", ["c.flac", "c.flac"])]
    for schema in (_old_schema, _new_schema):
        path = tmp_path / f"{schema.__name__}.xml"
        path.write_text(schema("K", inst))
        assert prepare.parse_drumkit(path) == [("Kick", ["a.wav", "b.wav"]), ("Snare", ["c.flac"])]
    # the plain layered schema: <instrument><layer><filename>
    path = tmp_path / "layer.xml"
    path.write_text(
        f'<drumkit_info xmlns="{NS}"><instrumentList><instrument><name>Tom</name>'
        "<layer><filename>t1.wav</filename></layer><layer><filename>t2.wav</filename></layer>"
        "</instrument></instrumentList></drumkit_info>"
    )
    assert prepare.parse_drumkit(path) == [("Tom", ["t1.wav", "t2.wav"])]


@pytest.mark.parametrize(
    ("name", "filename", "label"),
    [
        ("Kick", "tom-0105.wav", "kick"),  # the name wins over the file name
        ('Kick (Tama Superstar 22")', "", "kick"),
        ("c3 - bass drum 1", "", "kick"),
        ("BassDrum", "", "kick"),
        ("Snare Rimshot (Pearl Free Floating Maple 14x3.5)", "", "snare"),
        ("Pearl Side Stick", "", "clap_perc"),
        ("Rim Click (Pearl Free Floating Maple 14x3.5)", "", "clap_perc"),
        ("Sabian Hat Semi-Open", "", "hihat"),
        ('Hi-Hat Pedal (Paiste Alpha Metal edge 14")', "", "hihat"),
        ("Pedal HH", "", "hihat"),
        ("VariBreaks Hat 1 Cl", "", "hihat"),
        ("Side OHH", "", "hihat"),
        ("tomhi2", "", "tom"),
        ("Pearl Tom Floor", "", "tom"),
        ('Ride (Custom, Zagrebin 22")', "", "cymbal"),
        ("Ride Bell", "", "cymbal"),
        ("Paiste Bell", "", "cymbal"),
        ("Zildjian Splash Choke", "", "cymbal"),
        ('China (Paiste Alpha 18")', "", "cymbal"),
        ("Cowbell", "", "clap_perc"),
        ("Finger Snaps", "", "clap_perc"),
        ("Djembe1 Slap", "", "clap_perc"),
        ("Sangban1 Bell Hit", "", "clap_perc"),
        ("redo super opaco", "snare-opaque-2mics_normal-shot1.flac", "snare"),
        ("17", "HiHatClosed-0.wav", "hihat"),
        ("f#4 - ", "bd1.flac", "kick"),
        ("Whistle", "EE_Whistle.flac", None),
        ("Zap 1", "yFX_8.flac", None),
        ("Sample: beats_08-37.flac", "beats_08-37.flac", None),
        ("17", "emptySample.flac", None),
    ],
)
def test_classify(prepare, name, filename, label):
    assert prepare.classify(name, filename) == label


def test_slug(prepare):
    assert (
        prepare.slug('Crash/Ride (Paiste Rude Crash/Ride 18")')
        == "Crash-Ride-Paiste-Rude-Crash-Ride-18"
    )
    assert prepare.slug("Gimme A Hand 1.0") == "Gimme-A-Hand-1-0"
    assert prepare.slug("  ") == "x"


def test_split_kits_whole_kits_and_groups(prepare):
    S = prepare.Source

    def kit(name, labels, n=1):
        return [S(name, lab, f"/{name}/{lab}{i}", lab, "") for lab in labels for i in range(n)]

    full = list(LABELS)
    sources = []
    for i in range(8):
        sources += kit(f"full{i}", full)
    sources += kit("big", full, n=20)  # more than MAX_HELD_SHARE of all files
    sources += kit("perc", ["clap_perc"], n=3) + kit("A1", full) + kit("A2", full)
    group = {s.kit: s.kit for s in sources} | {"A1": "A", "A2": "A"}
    splits = prepare.split_kits(sources, group, test_kits=2, valid_kits=1)
    kits = sorted({s.kit for s in sources})
    assert sorted(k for ks in splits.values() for k in ks) == kits
    assert len(splits["test"]) == 2 and len(splits["valid"]) == 1
    held = splits["test"] + splits["valid"]
    assert "big" not in held and "perc" not in held
    where = {k: s for s, ks in splits.items() for k in ks}
    assert where["A1"] == where["A2"]  # one group, one split
    assert prepare.split_kits(list(reversed(sources)), group, 2, 1) == splits
    # too few eligible kits: the rules relax, but training keeps at least one kit
    few = kit("x", ["kick"]) + kit("y", ["snare"]) + kit("z", ["hihat"])
    s3 = prepare.split_kits(few, {"x": "x", "y": "y", "z": "z"}, test_kits=2, valid_kits=1)
    assert len(s3["train"]) >= 1 and sorted(sum(s3.values(), [])) == ["x", "y", "z"]


def test_shared_files_join_kits(prepare, tmp_path):
    for kit, files in (("One", ["a.wav", "b.wav"]), ("Two", ["c.wav", "d.wav"])):
        (tmp_path / kit).mkdir()
        (tmp_path / kit / "drumkit.xml").write_text(
            _new_schema(kit, [("Kick", files[:1]), ("Snare", files[1:])])
        )
    same = _hit("kick", 44100, seed=1)
    sf.write(str(tmp_path / "One" / "a.wav"), same, 44100)
    sf.write(str(tmp_path / "Two" / "c.wav"), same, 44100)  # byte-identical to One/a.wav
    sf.write(str(tmp_path / "One" / "b.wav"), _hit("snare", 44100, seed=2), 44100)
    sf.write(str(tmp_path / "Two" / "d.wav"), _hit("snare", 44100, seed=3), 44100)
    sources, skipped, group = prepare.collect(tmp_path)
    assert [Path(s.path).name for s in sources] == ["a.wav", "b.wav", "d.wav"]
    assert skipped == {"duplicate": 1}
    assert group["One"] == group["Two"]


def test_audio_helpers(prepare):
    sr = prepare.SAMPLE_RATE
    with pytest.raises(prepare.SampleError, match="silent"):
        prepare.from_onset(np.zeros(1000, dtype=np.float32))
    wav = np.zeros(2 * sr, dtype=np.float32)
    wav[3000:] = np.cos(2 * np.pi * 1000 * np.arange(2 * sr - 3000) / sr)
    seg = prepare.from_onset(wav)
    assert len(seg) == 2 * sr - 3000 + prepare.PRE_ROLL and not seg[: prepare.PRE_ROLL].any()
    clip = prepare.fit(seg, delay=100)
    assert clip.shape == (sr,) and not clip[:100].any()
    assert abs(clip[-1]) < 1e-3  # faded where the window cuts
    short = prepare.fit(np.ones(800, dtype=np.float32))
    assert short[0] == 1.0 and short[799] < 0.01 and not short[800:].any()
    # +2 semitones by resampling: 1 kHz -> 1122 Hz, and the sound gets shorter
    tone = np.sin(2 * np.pi * 1000 * np.arange(2 * sr) / sr).astype(np.float32)
    rate = round(sr * 2 ** (2 / 12) / prepare.RATE_STEP) * prepare.RATE_STEP
    up = prepare.pitch_shift(tone, rate)
    assert len(up) < len(tone)
    spec = np.abs(np.fft.rfft(up[:8192] * np.hanning(8192)))
    hz = np.argmax(spec) * sr / 8192
    assert abs(12 * np.log2(hz / 1000) - 2) < 0.1, hz


def test_plan_augments_train_only(prepare):
    S = prepare.Source
    sources = [S(k, "Kick", f"/{k}/{i}", "kick", f"kick/{k}_{i}") for k in "abc" for i in range(3)]
    splits = {"train": ["a"], "valid": ["b"], "test": ["c"]}
    jobs = prepare.plan(sources, splits, augment=4, seed=0)
    for job in jobs:
        assert len(job.augs) == (4 if job.split == "train" else 0)
        for aug in job.augs:
            assert abs(aug.gain_db) <= 6 and abs(aug.semitones) <= 2.1
            assert 0 <= aug.delay <= prepare.MAX_DELAY
            assert aug.rate % prepare.RATE_STEP == 0
    assert jobs == prepare.plan(sources, splits, augment=4, seed=0)
    assert jobs != prepare.plan(sources, splits, augment=4, seed=1)
    tiny = prepare.plan(sources, splits, augment=1, seed=0, per_type=1)
    assert [j.source.kit for j in tiny] == ["a", "b", "c"]


# ----------------------------------------------------------------------------------------------
# A build from the synthetic kits (needs no hydrogen-drumkits)


def test_fake_build_layout_labels_and_skips(prepare, fake_build):
    out, summary = fake_build
    kits = json.loads((out / "kits.json").read_text())
    assert sorted(sum(kits.values(), [])) == sorted(KITS)
    assert len(kits["test"]) == 1 and len(kits["valid"]) == 1
    assert "Delta" in kits["train"]  # percussion only: never held out
    labels = {
        "Alpha-Kit": {"Kick": "kick", "Snare-Rock": "snare", "Closed-HH": "hihat"},
        "Gamma": {"17": "hihat", "Side-Stick": "clap_perc", "BassDrum": "kick"},
        "Delta": {"Conga": "clap_perc", "Shaker": "clap_perc"},
        "Beta": {"Ride-Bell": "cymbal", "Tom-Low": "tom"},
    }
    wavs = sorted(p.relative_to(out).as_posix() for p in out.glob("*/*.wav"))
    for rel in wavs:
        label, name = rel.split("/")
        kit, inst = name.split("_")[:2]
        if inst in labels.get(kit, {}):
            assert labels[kit][inst] == label, rel
    listed = {}
    for name, split in (("validation_list.txt", "valid"), ("testing_list.txt", "test")):
        for rel in (out / name).read_text().splitlines():
            listed[rel] = split
    slug_kit = {prepare.slug(k): k for k in KITS}
    for rel in wavs:
        split = listed.get(rel, "train")
        kit = slug_kit[rel.split("/")[1].split("_")[0]]
        assert kit in kits[split], rel
        assert ("_aug" in rel) <= (split == "train"), rel  # augmented copies only in train
    originals = [r for r in wavs if "_aug" not in r]
    train_originals = [r for r in originals if r not in listed]
    assert len(wavs) == len(originals) + 2 * len(train_originals)
    assert not any("Whistle" in r or "Tom-Mid" in r for r in wavs)
    assert "1 no type" in summary and "1 silent" in summary and "1 unreadable" in summary
    assert "1 missing" in summary and "1 duplicate" in summary
    for rel in wavs:
        data, sr = sf.read(str(out / rel), dtype="float32")
        assert sr == 16000 and data.shape == (16000,), rel
        peak = float(np.abs(data).max())
        assert peak > 0.2, rel
        if "_aug" not in rel:  # leading silence cut: the hit starts within the first 10 ms
            assert int(np.argmax(np.abs(data) >= 0.1 * peak)) < 160, rel


def test_fake_build_reads_as_folders(fake_build):
    from cmaudio.data import AudioFolder

    out, _ = fake_build
    train = AudioFolder(out, layout="folders", label_fields=("label",), progress=False)
    assert set(train.classes[0]) <= set(LABELS) and len(train.classes[0]) == 6
    for split in ("valid", "test"):
        ds = AudioFolder(out, layout="folders", split=split, classes=train.classes, progress=False)
        assert len(ds) > 0 and not ds.skipped
        assert all("_aug" not in it.path for it in ds.items)


# ----------------------------------------------------------------------------------------------
# The installed hydrogen-drumkits


@pytest.fixture(scope="module")
def tiny(prepare, tmp_path_factory) -> Path:
    if not any(DRUMKITS.glob("*/drumkit.xml")):
        pytest.skip("hydrogen-drumkits is not installed")
    out = tmp_path_factory.mktemp("drums") / "drums"
    prepare.build(out, augment=1, seed=0, jobs=2, progress=False, per_type=1)
    return out


@needs_drumkits
def test_tiny_build_layout_and_audio(tiny):
    assert sorted(p.name for p in tiny.iterdir() if p.is_dir()) == sorted(LABELS)
    wavs = sorted(tiny.glob("*/*.wav"))
    assert len(wavs) >= 60
    for label in LABELS:
        assert any((tiny / label).glob("*.wav")), label
    for path in wavs:
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.frames) == (16000, 1, 16000), path
        data, _ = sf.read(str(path), dtype="float32")
        peak = float(np.abs(data).max())
        assert 0.2 < peak < 1.0, (path, peak)
        assert float(np.sqrt(np.mean(data**2))) > 1e-3, path


@needs_drumkits
def test_tiny_build_splits_are_whole_kits(prepare, tiny):
    kits = json.loads((tiny / "kits.json").read_text())
    sets = {s: set(v) for s, v in kits.items()}
    assert set(sets) == {"train", "valid", "test"} and all(sets.values())
    assert not sets["train"] & sets["valid"]
    assert not sets["train"] & sets["test"]
    assert not sets["valid"] & sets["test"]
    assert sorted(sum(kits.values(), [])) == prepare.list_kits()
    by_slug = {prepare.slug(k): s for s, ks in kits.items() for k in ks}
    listed = {}
    for name, split in (("validation_list.txt", "valid"), ("testing_list.txt", "test")):
        for rel in (tiny / name).read_text().splitlines():
            assert (tiny / rel).is_file(), rel
            listed[rel] = split
    seen = Counter()
    for path in tiny.glob("*/*.wav"):
        rel = path.relative_to(tiny).as_posix()
        split = listed.get(rel, "train")
        assert by_slug[path.name.split("_")[0]] == split, rel
        assert ("_aug" in rel) <= (split == "train"), rel
        seen[split] += 1
    assert set(seen) == {"train", "valid", "test"}


@needs_drumkits
def test_tiny_build_reads_as_folders(tiny):
    from cmaudio.data import AudioFolder

    train = AudioFolder(tiny, label_fields=("label",), split="train", progress=False)
    assert train.classes == (tuple(sorted(LABELS)),)
    assert not train.skipped
    test = AudioFolder(tiny, split="test", classes=train.classes, progress=False)
    assert len(test) > 0 and not test.skipped


@needs_drumkits
def test_build_is_deterministic(prepare, tiny, tmp_path):
    again = prepare.build(tmp_path / "again", augment=1, seed=0, jobs=1, progress=False, per_type=1)
    a = sorted(p.relative_to(tiny).as_posix() for p in tiny.rglob("*") if p.is_file())
    b = sorted(p.relative_to(again).as_posix() for p in again.rglob("*") if p.is_file())
    a = [r for r in a if not r.startswith(".cmaudio_cache")]
    assert a == b
    for rel in a:
        assert (tiny / rel).read_bytes() == (again / rel).read_bytes(), rel
