"""recipes/notes/prepare.py: a tiny fluidsynth build is NSynth-like, in tune, and leaks no
instrument across splits."""

from __future__ import annotations

import json
import shutil
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not SOUNDFONT.is_file(),
    reason="fluidsynth or the FluidR3 sound font (fluid-soundfont-gm) is missing",
)
TINY = {"programs": [0, 4, 6, 24], "pitches": [60, 69], "per_note": 1}




@pytest.fixture(scope="module")
def prepare(recipe_module):
    return recipe_module("notes")


@pytest.fixture(scope="module")
def tiny(prepare, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("notes") / "notes"
    assert prepare.build(out, **TINY, seed=0, jobs=2, progress=False) == out
    return out


# ----------------------------------------------------------------------------------------------
# Without fluidsynth


def test_note_midi_is_one_note(prepare):
    data = prepare.note_midi(program=40, pitch=69, velocity=100, seconds=0.7)
    assert data[:4] == b"MThd"
    length, fmt, ntracks, tpq = struct.unpack(">IHHH", data[4:14])
    assert (length, fmt, ntracks, tpq) == (6, 0, 1, 480)
    assert data[14:18] == b"MTrk"
    (track_len,) = struct.unpack(">I", data[18:22])
    track = data[22:]
    assert len(track) == track_len
    assert b"\x00\xc0\x28" in track  # program change to 40 at delta 0
    assert b"\x00\x90\x45\x64" in track  # note on 69, velocity 100 at delta 0
    assert track.endswith(b"\x00\xff\x2f\x00")  # end of track
    # note off after 0.7 s: 672 ticks at 960 ticks/s -> variable-length 0x85 0x20
    assert b"\x85\x20\x80\x45\x00" in track


def test_program_and_pitch_options(prepare):
    assert prepare.choose_programs(12) == [p for p, _, _ in prepare.PROGRAMS[:12]]
    assert len({prepare.program_info(p)[0] for p in prepare.choose_programs(12)}) == 12
    assert prepare.choose_programs("0,40, 40,73") == [0, 40, 73]
    assert prepare.choose_programs("5") == prepare.choose_programs(5)
    assert prepare.program_info(100)[0] == "synth_fx"  # outside PROGRAMS: its GM group
    with pytest.raises(ValueError):
        prepare.choose_programs([128])
    assert prepare.parse_pitches("48-84") == list(range(48, 85))
    assert prepare.parse_pitches("69,60") == [60, 69]
    assert prepare.parse_pitches((60, 62)) == [60, 61, 62]


def test_velocities_distinct_and_in_range(prepare):
    rng = np.random.default_rng(0)
    for k in (1, 2, 3, 5, 20):
        v = prepare.draw_velocities(rng, k)
        assert len(v) == len(set(v)) == k
        assert all(60 <= x <= 120 for x in v)


def test_split_programs_hold_out_whole_programs(prepare):
    programs = prepare.choose_programs(len(prepare.PROGRAMS))
    splits = prepare.split_programs(programs)
    assert sorted(p for ps in splits.values() for p in ps) == sorted(programs)
    assert splits["valid"] and splits["test"]
    assert 0.7 < len(splits["train"]) / len(programs) < 0.9
    family = {p: prepare.program_info(p)[0] for p in programs}
    train_families = {family[p] for p in splits["train"]}
    assert {family[p] for p in programs} == train_families  # every family is trained on
    held = splits["valid"] + splits["test"]
    assert len({family[p] for p in held}) == len(held)  # held-out ones from distinct families
    assert prepare.split_programs(list(reversed(programs))) == splits  # order-independent
    few = prepare.split_programs(TINY["programs"])  # 3 keyboards + 1 guitar
    assert [len(few[s]) for s in ("train", "valid", "test")] == [2, 1, 1]
    assert 24 in few["train"]  # the only guitar stays in training


def test_plan_is_seeded_and_names_are_unique(prepare):
    notes, splits = prepare.plan([0, 33, 40], [36, 48, 60, 84], per_note=3, seed=1)
    played = {p: {n.pitch for n in notes if n.program == p} for p in (0, 33, 40)}
    assert played == {0: {36, 48, 60, 84}, 33: {36, 48, 60}, 40: {48, 60, 84}}  # within each range
    assert len(notes) == 3 * 10 and len({n.name for n in notes}) == 30
    assert notes == prepare.plan([0, 33, 40], [36, 48, 60, 84], per_note=3, seed=1)[0]
    assert notes != prepare.plan([0, 33, 40], [36, 48, 60, 84], per_note=3, seed=2)[0]
    # a note's velocities depend on (seed, program, pitch) only: more pitches change no other note
    fewer = prepare.plan([0, 33, 40], [48, 60], per_note=3, seed=1)[0]
    assert set(fewer) <= set(notes)


def test_crop_from_onset(prepare):
    sr = prepare.SAMPLE_RATE
    wav = np.zeros(3 * sr, dtype=np.float32)
    wav[1000 : 1000 + 2 * sr] = 0.5 * np.sin(np.arange(2 * sr) * 2 * np.pi * 440 / sr)
    out = prepare.crop_from_onset(wav)
    assert out.shape == (sr,)
    first = int(np.argmax(np.abs(out) > 0))
    assert first == prepare.PRE_ROLL  # sin(0) = 0 at 1000: the onset is sample 1001
    assert abs(out[-1]) < 1e-3  # faded out where the window cuts the note
    short = prepare.crop_from_onset(wav[: 1000 + sr // 4])
    assert short.shape == (sr,) and not short[sr // 2 :].any()  # zero-padded
    assert not prepare.crop_from_onset(np.zeros(100, dtype=np.float32)).any()


# ----------------------------------------------------------------------------------------------
# With fluidsynth


@needs_fluidsynth
def test_tiny_build_layout_and_audio(tiny):
    examples = json.loads((tiny / "examples.json").read_text())
    wavs = sorted((tiny / "audio").glob("*.wav"))
    assert len(wavs) == len(examples) == 8
    assert {p.stem for p in wavs} == set(examples)
    for name, rec in examples.items():
        family, program = rec["instrument_family_str"], rec["program"]
        assert name == f"{family}_{program:03d}-{rec['pitch']:03d}-{rec['velocity']:03d}"
        assert family == ("guitar" if program == 24 else "keyboard")
        assert rec["instrument_source_str"] == "synthetic"
        assert rec["pitch"] in (60, 69) and 60 <= rec["velocity"] <= 120
        assert rec["split"] in ("train", "valid", "test")
    for path in wavs:
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.frames) == (16000, 1, 16000), path
        data, _ = sf.read(str(path), dtype="float32")
        peak = float(np.abs(data).max())
        assert 0.3 < peak < 1.0, (path, peak)  # 0.95 * velocity / 127
        assert float(np.sqrt(np.mean(data[:8000] ** 2))) > 0.01, path  # a note, not silence
        assert np.abs(data[:8]).max() < 0.05 * peak, path  # starts at the onset, not mid-note
    rows = [json.loads(line) for line in (tiny / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["path"] for r in rows) == sorted(f"audio/{n}.wav" for n in examples)
    for r in rows:
        rec = examples[Path(r["path"]).stem]
        assert (r["pitch"], r["family"], r["split"]) == (
            rec["pitch"],
            rec["instrument_family_str"],
            rec["split"],
        )


@needs_fluidsynth
def test_tiny_build_splits_share_no_program(tiny):
    programs = json.loads((tiny / "programs.json").read_text())
    sets = {s: {p["program"] for p in v} for s, v in programs.items()}
    assert set(sets) == {"train", "valid", "test"}
    assert all(sets.values())
    assert not sets["train"] & sets["valid"]
    assert not sets["train"] & sets["test"]
    assert not sets["valid"] & sets["test"]
    examples = json.loads((tiny / "examples.json").read_text())
    for rec in examples.values():
        assert rec["program"] in sets[rec["split"]]
    assert {r["split"] for r in examples.values()} == {"train", "valid", "test"}


@needs_fluidsynth
def test_tuning_check_refuses_transposed_presets(prepare, tmp_path):
    # FluidR3's Drawbar Organ sounds two octaves below its key, Rock Organ one: their labels would
    # be wrong. Reed Organ and the piano are in tune.
    assert abs(prepare.tuning_cents(20, [60])) < 50
    assert abs(prepare.tuning_cents(18, [60]) + 1200) < 50
    prepare.check_tuning([0, 20], [60])
    with pytest.raises(ValueError, match=r"16 \(.*\): sounds -2\d\d\d cents.*18 \(.*\): sounds -1\d\d\d cents") as e:
        prepare.check_tuning([16, 20, 18], [60])
    assert "20 (" not in str(e.value)
    # A build with such a program stops before rendering anything, with a one-line error.
    out = tmp_path / "bad"
    assert prepare.main(["--out", str(out), "--programs", "0,16", "--pitches", "60", "--no-progress"]) == 2
    assert not (out / "audio").exists() or not any((out / "audio").iterdir())
    assert 16 not in prepare.choose_programs(len(prepare.PROGRAMS))


@needs_fluidsynth
def test_audiofolder_reads_pitch_and_family(tiny):
    from cmaudio.data import AudioFolder, index_dataset

    seen = Counter()
    classes = None
    for split in ("train", "valid", "test"):
        ds = AudioFolder(
            tiny,
            layout="manifest",
            manifest="manifest.jsonl",
            label_fields=("pitch", "family"),
            split=split,
            classes=classes,
            progress=False,
        )
        assert not ds.skipped
        assert ds.mels.shape[0] == len(ds) > 0
        if classes is None:
            classes = ds.classes
            assert classes[0] == ("60", "69")  # MIDI numbers as strings, numeric order
            assert set(classes[1]) <= {"keyboard", "guitar"}
        for it in ds.items:
            assert Path(it.path).stem.startswith(f"{it.labels[1]}_")
            assert Path(it.path).stem.split("-")[1] == f"{int(it.labels[0]):03d}"
        seen[split] = len(ds)
    assert sum(seen.values()) == 8
    # the NSynth reader finds the same clips, labels and splits (each record carries its split)
    items = index_dataset(tiny, "nsynth", label_fields=("pitch", "family"))
    manifest = index_dataset(tiny, "manifest", "manifest.jsonl", ("pitch", "family"))
    assert len(items) == 8
    assert [(it.path, it.labels, it.split) for it in items] == [(it.path, it.labels, it.split) for it in manifest]


@needs_fluidsynth
def test_piano_a4_is_440_hz(tiny):
    import librosa

    examples = json.loads((tiny / "examples.json").read_text())
    (name,) = [n for n, r in examples.items() if r["program"] == 0 and r["pitch"] == 69]
    data, sr = sf.read(str(tiny / "audio" / f"{name}.wav"), dtype="float32")
    f0 = librosa.yin(data[1600:12800], fmin=100, fmax=1000, sr=sr, frame_length=2048)
    cents = 1200 * np.log2(float(np.median(f0)) / 440.0)
    assert abs(cents) < 50, cents
    # and the strongest partial is the fundamental
    spec = np.abs(np.fft.rfft(data[1600:9792] * np.hanning(8192)))
    peak_hz = np.argmax(spec) * sr / 8192
    assert abs(1200 * np.log2(peak_hz / 440.0)) < 50, peak_hz


@needs_fluidsynth
def test_build_is_deterministic(prepare, tiny, tmp_path):
    again = prepare.build(tmp_path / "again", **TINY, seed=0, jobs=1, progress=False)
    a = sorted(p.relative_to(tiny).as_posix() for p in tiny.rglob("*") if p.is_file())
    b = sorted(p.relative_to(again).as_posix() for p in again.rglob("*") if p.is_file())
    a = [r for r in a if not r.startswith(".cmaudio_cache")]
    assert a == b
    for rel in a:
        assert (tiny / rel).read_bytes() == (again / rel).read_bytes(), rel


@needs_fluidsynth
def test_silent_renders_are_skipped_and_counted(prepare, tmp_path, monkeypatch, capsys):
    real = prepare.fluidsynth

    def quiet_guitar(note, gain=prepare.GAIN, soundfont=prepare.SOUNDFONT):
        if note.program == 24:
            return np.zeros(3 * prepare.SAMPLE_RATE, dtype=np.float32)
        return real(note, gain, soundfont)

    monkeypatch.setattr(prepare, "fluidsynth", quiet_guitar)
    out = prepare.build(tmp_path / "n", **TINY, seed=0, jobs=2, progress=False)
    names = [p.stem for p in (out / "audio").glob("*.wav")]
    assert len(names) == 6 and not any(n.startswith("guitar_024") for n in names)
    assert len(json.loads((out / "examples.json").read_text())) == 6
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 6
    summary = capsys.readouterr().out
    assert "wrote 6 clips" in summary and "skipped 2 (2x silent" in summary
