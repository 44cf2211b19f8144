"""Build the notes data set: single notes of the FluidR3 General MIDI sound font rendered by
fluidsynth, 1 s at 16 kHz, labelled by MIDI pitch and NSynth-like instrument family.

Every clip is one note of one GM program (instrument) at one MIDI pitch and velocity. Each note
is written as a one-note MIDI file (program change, note on, note off after NOTE_SECONDS, end
of track) and rendered with ``fluidsynth -ni -g 0.8 -r 16000`` (reverb and chorus at their
defaults). Post-processing: stereo -> mono, crop 1 s from the onset (the first sample within
60 dB of the note's peak, less 1 ms) with a 30 ms fade-out where the window cuts the release,
zero-pad if shorter, peak-normalise to 0.95 * velocity / 127 (louder notes stay louder).
Renders that are silent (some programs have no sample at some pitches) are skipped and counted;
a render that clips is rendered once more at a third of the gain.

Programs: the default 24 are two per family over 12 families (PROGRAMS lists them in the order
``--programs N`` takes them: one per family first). Pitches: the requested range (default
36..84, C2..C6) as far as each program's instrument plays it (``program_range``): bass programs
36..72, programs whose instrument reaches the octave below C3 (piano, organs, guitars from E2,
cello, trombone, choir, synths, ...) from there, the others from 48 (C3). So the octave below
C3 has 13 training programs, not only the two bass ones. Velocities: ``--per-note`` distinct
values per (program, pitch), one drawn from each equal slice of 60..120, seeded by
(seed, program, pitch) so that adding pitches or programs leaves every other note as it was.

Layout (NSynth-like, read by cmaudio.data's "nsynth" layout): OUT/audio/<note_str>.wav, with
note_str = ``<family>_<program:03d>-<pitch:03d>-<velocity:03d>``; OUT/examples.json mapping
note_str -> {pitch, velocity, instrument_family_str, instrument_source_str ("synthetic"),
instrument_str, program, program_name, split}. cmaudio.data's nsynth layout takes the split from
the root folder's name (nsynth-train/-valid/-test), so it reads every clip here as "train";
OUT/manifest.jsonl lists each clip once more as {path, split, pitch, family, velocity,
program} for ``layout = "manifest"``, ``manifest = "manifest.jsonl"``, which does read the
splits. OUT/programs.json maps each split to its programs.

Splits hold out whole programs, so no instrument is heard in two splits: about 10 % of the
programs each go to valid and test, chosen by a hash of the program number (independent of the
seed) among families that keep at least one training program, preferring distinct families.
The same arguments give the same files; fluidsynth failures are skipped and counted.

    python recipes/notes/prepare.py --out data/notes [--programs 24] [--pitches 36-84]
        [--per-note 3] [--seed 0] [--jobs 2]
    python recipes/notes/prepare.py --out /tmp/notes_tiny --tiny
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

try:
    from cmaudio.audio import peak_normalise, resample, save_audio
    from cmaudio.data import run_jobs
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from cmaudio.audio import peak_normalise, resample, save_audio
    from cmaudio.data import run_jobs

FLUIDSYNTH = "fluidsynth"
SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
FLUIDSYNTH_TIMEOUT_S = 60.0
GAIN = 0.8
SPLITS = ("train", "valid", "test")
VALID_FRACTION = 0.1
TEST_FRACTION = 0.1

SAMPLE_RATE = 16000
N_SAMPLES = SAMPLE_RATE  # 1 s
NOTE_SECONDS = 0.7  # note on -> note off; the release tail fills the rest of the window
PITCHES = (36, 84)  # inclusive: C2..C6, as far as each program plays (program_range)
VELOCITY = (60, 120)  # inclusive
DEFAULT_PROGRAMS = 24
DEFAULT_PER_NOTE = 3

ONSET_DB = 60.0  # the onset is the first sample within this many dB of the peak
PRE_ROLL = SAMPLE_RATE // 1000  # 1 ms kept before the onset
CROP_FADE = SAMPLE_RATE * 30 // 1000  # 30 ms fade-out where the window cuts the note
SILENT_PEAK = 1e-3  # a render (after cropping) quieter than -60 dBFS is silent
CLIP_PEAK = 0.999  # a raw render reaching this has clipped
LEVEL = 0.95  # output peak at velocity 127

# (program, family, name): GM programs spread over the GM groups, mapped to NSynth-like family
# names. Ordered so that the first N take one per family before a second of any.
PROGRAMS: tuple[tuple[int, str, str], ...] = (
    (0, "keyboard", "Acoustic Grand Piano"),
    (11, "mallet", "Vibraphone"),
    # Not Drawbar Organ (16): in FluidR3 its notes sound two octaves below their key (key 60
    # has its partials at 65, 131 and 262 Hz, the first two strongest), so every pitch label
    # would be wrong; Percussive and Rock Organ (17, 18) sound one octave below. check_tuning
    # refuses such programs.
    (20, "organ", "Reed Organ"),
    (24, "guitar", "Acoustic Guitar (nylon)"),
    (33, "bass", "Electric Bass (finger)"),
    (40, "string", "Violin"),
    (56, "brass", "Trumpet"),
    (65, "reed", "Alto Sax"),
    (73, "flute", "Flute"),
    (80, "synth_lead", "Lead 1 (square)"),
    (89, "synth_pad", "Pad 2 (warm)"),
    (52, "vocal", "Choir Aahs"),
    (4, "keyboard", "Electric Piano 1"),
    (12, "mallet", "Marimba"),
    (19, "organ", "Church Organ"),
    (25, "guitar", "Acoustic Guitar (steel)"),
    (32, "bass", "Acoustic Bass"),
    (42, "string", "Cello"),
    (57, "brass", "Trombone"),
    (71, "reed", "Clarinet"),
    (75, "flute", "Pan Flute"),
    (81, "synth_lead", "Lead 2 (sawtooth)"),
    (88, "synth_pad", "Pad 1 (new age)"),
    (53, "vocal", "Voice Oohs"),
    (6, "keyboard", "Harpsichord"),
    (13, "mallet", "Xylophone"),
    (21, "organ", "Accordion"),
    (27, "guitar", "Electric Guitar (clean)"),
    (38, "bass", "Synth Bass 1"),
    (48, "string", "String Ensemble 1"),
    (61, "brass", "Brass Section"),
    (68, "reed", "Oboe"),
    (74, "flute", "Recorder"),
    (84, "synth_lead", "Lead 5 (charang)"),
    (90, "synth_pad", "Pad 3 (polysynth)"),
    (54, "vocal", "Synth Voice"),
)
PROGRAM_INFO = {p: (family, name) for p, family, name in PROGRAMS}
# GM group (program // 8) -> family, for programs outside PROGRAMS given by number.
GM_GROUPS = (
    "keyboard", "mallet", "organ", "guitar", "bass", "string", "string", "brass",
    "reed", "flute", "synth_lead", "synth_pad", "synth_fx", "ethnic", "percussive", "sound_fx",
)  # fmt: skip
# Playable range (lowest, highest MIDI pitch) per program, clipped to the requested pitches.
# General MIDI instruments render at any pitch, but a violin at C2 or a flute at C3 is no
# instrument anyone plays: programs stay within (roughly) their real instrument's compass.
DEFAULT_RANGE = (48, 127)
FAMILY_RANGE = {"bass": (28, 72)}
PROGRAM_RANGE = {
    0: (21, 108), 4: (28, 103), 6: (29, 89),  # pianos, harpsichord
    12: (36, 96),  # marimba (5 octaves)
    19: (24, 108), 20: (29, 89), 21: (29, 93),  # church organ, harmonium, accordion (bass side)
    24: (40, 84), 25: (40, 84), 27: (40, 88),  # guitars: low E2
    42: (36, 84), 48: (28, 108),  # cello: C2; string ensemble (with the basses)
    57: (40, 77), 61: (36, 96),  # trombone: E2; brass section
    52: (40, 81), 53: (40, 81), 54: (36, 96),  # choir and voices, bass voices from E2
    80: (24, 108), 81: (24, 108), 84: (24, 108),  # synth leads
    88: (24, 108), 89: (24, 108), 90: (24, 108),  # synth pads
}  # fmt: skip

# check_tuning: a program's middle note must sound within this many cents of its key.
TUNING_TOLERANCE_CENTS = 50.0

TINY_PROGRAMS = (0, 4, 6, 24)
TINY_PITCHES = (60, 69)
TINY_PER_NOTE = 1


@dataclass(frozen=True)
class Note:
    """One planned clip: everything about it is fixed before rendering starts."""

    name: str  # note_str, e.g. "keyboard_000-069-100"
    program: int
    family: str
    pitch: int
    velocity: int
    split: str


# ----------------------------------------------------------------------------------------------
# Programs, splits and the plan


def program_info(program: int) -> tuple[str, str]:
    """(family, name) of a GM program number 0..127."""
    if not 0 <= program <= 127:
        raise ValueError(f"GM programs are 0..127, got {program}")
    return PROGRAM_INFO.get(program, (GM_GROUPS[program // 8], f"GM program {program}"))


def program_range(program: int) -> tuple[int, int]:
    """(lowest, highest) MIDI pitch this program renders."""
    family = program_info(program)[0]
    return PROGRAM_RANGE.get(program, FAMILY_RANGE.get(family, DEFAULT_RANGE))


def choose_programs(spec: int | str | list[int] | tuple[int, ...]) -> list[int]:
    """A count (the first N of PROGRAMS), a list, or a string "24" / "0,4,40" -> programs."""
    if isinstance(spec, str):
        parts = [s for s in spec.replace(" ", "").split(",") if s]
        if not parts:
            raise ValueError("--programs is empty")
        spec = int(parts[0]) if len(parts) == 1 and "," not in spec else [int(s) for s in parts]
    if isinstance(spec, int):
        if not 1 <= spec <= len(PROGRAMS):
            raise ValueError(f"program count must be 1..{len(PROGRAMS)}, got {spec}")
        return [p for p, _, _ in PROGRAMS[:spec]]
    programs = list(dict.fromkeys(int(p) for p in spec))
    for p in programs:
        program_info(p)  # validates the range
    return programs


def parse_pitches(spec: str | tuple[int, int] | list[int]) -> list[int]:
    """Sorted MIDI pitches from "48-84" (inclusive), "60,64,67", (lo, hi) or a list."""
    if isinstance(spec, str):
        spec = spec.replace(" ", "")
        if "-" in spec.strip("-"):
            lo, hi = spec.split("-", 1)
            pitches = list(range(int(lo), int(hi) + 1))
        else:
            pitches = [int(s) for s in spec.split(",") if s]
    elif isinstance(spec, tuple) and len(spec) == 2:
        pitches = list(range(spec[0], spec[1] + 1))
    else:
        pitches = [int(p) for p in spec]
    pitches = sorted(set(pitches))
    if not pitches:
        raise ValueError("no pitches")
    return pitches


def _hash_unit(name: str) -> float:
    """A stable number in [0, 1) from a name (not Python's salted hash())."""
    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big") / 2**64


def split_programs(programs: list[int]) -> dict[str, list[int]]:
    """Assign each program to one split: about 10 % each to valid and test (at least one each
    from three programs up), by a hash of the program number. A program is held out only if its
    family keeps a training program, and held-out programs come from distinct families while
    any qualify."""
    family = {p: program_info(p)[0] for p in programs}
    n = len(programs)
    wanted = {
        "test": max(1, round(n * TEST_FRACTION)) if n >= 3 else 0,
        "valid": max(1, round(n * VALID_FRACTION)) if n >= 3 else 0,
    }
    order = sorted(programs, key=lambda p: _hash_unit(f"gm-program-{p}"))
    in_train = Counter(family.values())
    where: dict[int, str] = {}
    used: set[str] = set()
    for split in ("test", "valid"):
        for distinct in (True, False):
            for p in order:
                if sum(s == split for s in where.values()) >= wanted[split]:
                    break
                f = family[p]
                if p in where or in_train[f] <= 1 or (distinct and f in used):
                    continue
                where[p] = split
                in_train[f] -= 1
                used.add(f)
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for p in programs:
        out[where.get(p, "train")].append(p)
    return {s: sorted(v) for s, v in out.items()}


def draw_velocities(rng: np.random.Generator, k: int) -> list[int]:
    """``k`` distinct velocities, one from each of ``k`` equal slices of VELOCITY."""
    lo, hi = VELOCITY
    edges = np.linspace(lo, hi + 1, k + 1)
    out = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        a_i, b_i = int(np.ceil(a)), max(int(np.ceil(b)), int(np.ceil(a)) + 1)
        v = int(rng.integers(a_i, b_i))
        while v in out:  # only when slices are narrower than one step (k > 61)
            v = v + 1 if v < hi else lo
        out.append(v)
    return out


def plan(
    programs: list[int], pitches: list[int], per_note: int, seed: int
) -> tuple[list[Note], dict[str, list[int]]]:
    """Every note to render, in a fixed order, and the program splits."""
    if per_note < 1 or per_note > VELOCITY[1] - VELOCITY[0] + 1:
        raise ValueError(f"per_note must be 1..{VELOCITY[1] - VELOCITY[0] + 1}, got {per_note}")
    splits = split_programs(programs)
    where = {p: s for s, ps in splits.items() for p in ps}
    notes = []
    for program in programs:
        family = program_info(program)[0]
        lo, hi = program_range(program)
        for pitch in pitches:
            if not lo <= pitch <= hi:
                continue
            rng = np.random.default_rng([seed, program, pitch])  # one stream per note
            for velocity in sorted(draw_velocities(rng, per_note)):
                notes.append(
                    Note(
                        name=f"{family}_{program:03d}-{pitch:03d}-{velocity:03d}",
                        program=program,
                        family=family,
                        pitch=pitch,
                        velocity=velocity,
                        split=where[program],
                    )
                )
    return notes, splits


# ----------------------------------------------------------------------------------------------
# Rendering


class RenderError(RuntimeError):
    """fluidsynth gave no usable audio for one note; the message is a short reason."""


def _vlq(n: int) -> bytes:
    """MIDI variable-length quantity."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def note_midi(
    program: int, pitch: int, velocity: int, seconds: float = NOTE_SECONDS, channel: int = 0
) -> bytes:
    """A format-0 MIDI file of one note: tempo, program change, note on, note off after
    ``seconds``, end of track (480 ticks per quarter at 120 bpm: 960 ticks per second)."""
    tpq, tempo = 480, 500_000  # microseconds per quarter note
    ticks = max(1, round(seconds * 1e6 / tempo * tpq))
    track = b"".join(
        [
            b"\x00\xff\x51\x03" + tempo.to_bytes(3, "big"),
            b"\x00" + bytes([0xC0 | channel, program]),
            b"\x00" + bytes([0x90 | channel, pitch, velocity]),
            _vlq(ticks) + bytes([0x80 | channel, pitch, 0]),
            b"\x00\xff\x2f\x00",
        ]
    )
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq)
    return header + b"MTrk" + struct.pack(">I", len(track)) + track


def fluidsynth(note: Note, gain: float = GAIN, soundfont: str = SOUNDFONT) -> np.ndarray:
    """Render one note; returns float32 mono [T] at SAMPLE_RATE. Raises RenderError."""
    with tempfile.TemporaryDirectory(prefix="cmaudio-notes-") as tmp:
        mid, wav = Path(tmp) / "note.mid", Path(tmp) / "note.wav"
        mid.write_bytes(note_midi(note.program, note.pitch, note.velocity))
        cmd = [
            FLUIDSYNTH, "-ni", "-q", "-g", str(gain), "-r", str(SAMPLE_RATE),
            "-O", "float",  # no 16-bit rounding (or dither) before our own processing
            # load only the samples this note plays: halves the start-up of each render
            "-o", "synth.dynamic-sample-loading=1",
            "-F", str(wav), soundfont, str(mid),
        ]  # fmt: skip
        try:
            r = subprocess.run(cmd, capture_output=True, timeout=FLUIDSYNTH_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise RenderError("fluidsynth timed out") from None
        except OSError as exc:
            raise RenderError(f"fluidsynth did not run ({exc.strerror or exc})") from None
        if r.returncode != 0:
            err = r.stderr.decode(errors="replace").strip().splitlines()
            raise RenderError(f"fluidsynth exit {r.returncode}" + (f": {err[-1]}" if err else ""))
        try:
            data, sr = sf.read(str(wav), dtype="float32", always_2d=True)
        except Exception:  # any unreadable output is one skipped note
            raise RenderError("fluidsynth wrote no readable wav") from None
    if data.shape[0] == 0:
        raise RenderError("fluidsynth wrote no samples")
    mono = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    return resample(mono, int(sr), SAMPLE_RATE).numpy()


def crop_from_onset(wav: np.ndarray) -> np.ndarray:
    """1 s from the onset (first sample within ONSET_DB of the peak, less PRE_ROLL), with a
    CROP_FADE fade-out when sound is cut; zero-padded when shorter. Silence stays silence."""
    out = np.zeros(N_SAMPLES, dtype=np.float32)
    peak = float(np.abs(wav).max()) if len(wav) else 0.0
    if peak <= 0.0:
        return out
    start = int(np.argmax(np.abs(wav) >= peak * 10 ** (-ONSET_DB / 20)))
    seg = wav[max(0, start - PRE_ROLL) :][:N_SAMPLES].astype(np.float32)
    if len(seg) == N_SAMPLES:
        seg = seg.copy()
        seg[-CROP_FADE:] *= np.linspace(1.0, 0.0, CROP_FADE, dtype=np.float32)
    out[: len(seg)] = seg
    return out


def render(note: Note) -> np.ndarray:
    """The finished clip: float32 [N_SAMPLES]. Raises RenderError ("silent" for no sound)."""
    raw = fluidsynth(note)
    if float(np.abs(raw).max()) >= CLIP_PEAK:
        raw = fluidsynth(note, gain=GAIN / 3)
        if float(np.abs(raw).max()) >= CLIP_PEAK:
            raise RenderError("fluidsynth output clips")
    clip = crop_from_onset(raw)
    if float(np.abs(clip).max()) < SILENT_PEAK:
        raise RenderError("silent")
    level = LEVEL * note.velocity / 127
    return peak_normalise(torch.from_numpy(clip), level).numpy()


def tuning_cents(program: int, pitches: list[int]) -> float:
    """Signed cents from the key to the sounding pitch (pYIN median) of one note of ``program``:
    the requested pitch nearest its playable range's middle, at velocity 100. NaN if unvoiced.
    The search reaches two octaves and a third below the key, so a preset transposed down by
    whole octaves (FluidR3's Drawbar Organ: -2400) is measured, not mistaken for a fundamental."""
    from cmaudio.evaluation.metrics import midi_to_hz, pyin_f0

    lo, hi = program_range(program)
    inside = [p for p in pitches if lo <= p <= hi] or list(pitches)
    key = min(inside, key=lambda p: abs(p - (lo + hi) / 2))
    family = program_info(program)[0]
    wav = render(Note("tuning", program, family, key, 100, "train"))
    hz = float(midi_to_hz(key))
    f0 = float(pyin_f0(torch.from_numpy(wav)[None], SAMPLE_RATE, fmin=max(20.0, hz / 5), fmax=hz * 2.2)[0])
    return 1200 * float(np.log2(f0 / hz)) if f0 == f0 else float("nan")


def check_tuning(programs: list[int], pitches: list[int]) -> None:
    """Raise ValueError naming every program whose notes do not sound at their key (their pitch
    labels would be wrong) or have no pitch pYIN can find. A program whose test note does not
    render (silent, fluidsynth failure) is not judged: the build skips and counts its notes."""
    bad = []
    for program in programs:
        try:
            off = tuning_cents(program, pitches)
        except RenderError:
            continue
        if not abs(off) <= TUNING_TOLERANCE_CENTS:  # NaN (no pitch) fails too
            what = "no pitch found" if off != off else f"sounds {off:+.0f} cents from its key"
            bad.append(f"{program} ({program_info(program)[1]}): {what}")
    if bad:
        raise ValueError(
            "programs whose pitch labels would be wrong in this sound font (leave them out): " + "; ".join(bad)
        )


def _make(note: Note, out: Path) -> str | None:
    """Render and write one clip; returns None on success, else the reason it was skipped."""
    try:
        wav = render(note)
    except RenderError as exc:
        return str(exc)
    save_audio(out / "audio" / f"{note.name}.wav", wav, SAMPLE_RATE)
    return None


# ----------------------------------------------------------------------------------------------
# The build


def build(
    out: str | Path,
    programs: int | str | list[int] | tuple[int, ...] = DEFAULT_PROGRAMS,
    pitches: str | tuple[int, int] | list[int] = PITCHES,
    per_note: int = DEFAULT_PER_NOTE,
    seed: int = 0,
    jobs: int = 2,
    progress: bool = True,
) -> Path:
    """Build the data set under ``out`` and return its path; prints one summary line.

    Wav files under OUT/audio/ that this build did not write (left by an earlier build with
    other arguments) are removed, so OUT holds exactly this build.
    """
    if shutil.which(FLUIDSYNTH) is None:
        raise RuntimeError(
            f"{FLUIDSYNTH} is not on PATH (Debian/Ubuntu: apt-get install fluidsynth)"
        )
    if not Path(SOUNDFONT).is_file():
        raise RuntimeError(
            f"{SOUNDFONT} not found (Debian/Ubuntu: apt-get install fluid-soundfont-gm)"
        )
    t0 = time.perf_counter()
    out = Path(out)
    programs, pitches = choose_programs(programs), parse_pitches(pitches)
    check_tuning(programs, pitches)
    notes, splits = plan(programs, pitches, per_note, seed)
    (out / "audio").mkdir(parents=True, exist_ok=True)

    results = run_jobs(lambda n: _make(n, out), notes, jobs=jobs, desc="notes", unit="note", progress=progress)

    written = [n for n, r in zip(notes, results, strict=True) if r is None]
    failed = [(n, r) for n, r in zip(notes, results, strict=True) if r is not None]
    keep = {f"{n.name}.wav" for n in written}
    stale = 0
    for f in (out / "audio").glob("*.wav"):
        if f.name not in keep:
            f.unlink()
            stale += 1

    examples = {}
    for n in written:
        examples[n.name] = {
            "note_str": n.name,
            "pitch": n.pitch,
            "velocity": n.velocity,
            "instrument_family_str": n.family,
            "instrument_source_str": "synthetic",
            "instrument_str": f"{n.family}_{n.program:03d}",
            "program": n.program,
            "program_name": program_info(n.program)[1],
            "sample_rate": SAMPLE_RATE,
            "split": n.split,
        }
    (out / "examples.json").write_text(json.dumps(examples, indent=1) + "\n")
    rows = [
        {
            "path": f"audio/{n.name}.wav",
            "split": n.split,
            "pitch": n.pitch,
            "family": n.family,
            "velocity": n.velocity,
            "program": n.program,
        }
        for n in written
    ]
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    programs_json = {
        s: [
            {"program": p, "family": program_info(p)[0], "name": program_info(p)[1]}
            for p in splits[s]
        ]
        for s in SPLITS
    }
    (out / "programs.json").write_text(json.dumps(programs_json, indent=1) + "\n")

    per_split = Counter(n.split for n in written)
    msg = (
        f"notes: wrote {len(written)} clips to {out} "
        f"(train/valid/test {per_split['train']}/{per_split['valid']}/{per_split['test']} clips "
        f"from {len(splits['train'])}/{len(splits['valid'])}/{len(splits['test'])} programs, "
        f"{len({n.family for n in written})} families, {len({n.pitch for n in written})} pitches) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    if failed:
        reasons = Counter(r for _, r in failed)
        progs = Counter(n.program for n, _ in failed)
        shown = ", ".join(f"{p} ({c})" for p, c in sorted(progs.items())[:8])
        msg += (
            f"; skipped {len(failed)} ("
            + "; ".join(f"{c}x {r}" for r, c in reasons.most_common())
            + f"; programs: {shown}{', ...' if len(progs) > 8 else ''})"
        )
    if stale:
        msg += f"; removed {stale} wav files of an earlier build"
    print(msg, flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="data/notes")
    p.add_argument(
        "--programs",
        default=str(DEFAULT_PROGRAMS),
        help=f"a count (the first N of {len(PROGRAMS)} spread over families) or a list 0,4,40",
    )
    p.add_argument(
        "--pitches",
        default=f"{PITCHES[0]}-{PITCHES[1]}",
        help="'36-84' or '60,69'; each program plays those within its range (program_range)",
    )
    p.add_argument(
        "--per-note", type=int, default=DEFAULT_PER_NOTE, help="velocities per program and pitch"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument(
        "--tiny",
        action="store_true",
        help=f"programs {TINY_PROGRAMS}, pitches {TINY_PITCHES}, one velocity: a few seconds",
    )
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    try:
        if a.tiny:
            args = (list(TINY_PROGRAMS), list(TINY_PITCHES), TINY_PER_NOTE)
        else:
            args = (choose_programs(a.programs), parse_pitches(a.pitches), a.per_note)
    except ValueError as exc:
        p.error(str(exc))
    try:
        build(a.out, *args, seed=a.seed, jobs=a.jobs, progress=not a.no_progress)
    except (RuntimeError, ValueError) as exc:
        print(f"prepare.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
