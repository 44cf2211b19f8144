"""Build the digits data set: "zero".."nine" spoken by espeak-ng, 1 s at 16 kHz (SC09 layout).

Every clip is one word from one English voice (accent) and one voice variant, at a speed
(-s 120..220 words/min) and pitch (-p 20..80) drawn from a seeded RNG. Post-processing:
resample 22,050 -> 16,000 Hz, trim leading and trailing silence, place the word at a random
offset in the 1 s window (a word longer than 1 s is spoken once more, faster, and cropped with
a short fade only if still too long), peak-normalise to a random level in 0.3..0.9.

Layout: OUT/<word>/<voice>+<variant>_<k>.wav (k counts repeats of that word by that voice),
OUT/validation_list.txt and OUT/testing_list.txt (paths like ``seven/en-us+f3_0.wav``), and
OUT/speakers.json mapping each split to its voice+variant names. Splits share no voice+variant:
each pair goes to train / valid / test (about 80/10/10) by a hash of its name, independent of
the seed. Before building, espeak-ng is probed (a second or two): variants that sound exactly
like another are dropped, and voices that say some digit exactly alike (en-us-nyc and en-us)
are hashed as one, so that no sound is shared across splits. The same arguments give the same
files; espeak failures are skipped and counted.

    python recipes/digits/prepare.py --out data/digits [--per-digit 400] [--seed 0] [--jobs 2]
    python recipes/digits/prepare.py --out /tmp/digits_tiny --tiny
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
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

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
VOICES = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-029",
    "en-us-nyc",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
)
SPLITS = ("train", "valid", "test")
SPLIT_LISTS = {"valid": "validation_list.txt", "test": "testing_list.txt"}
VALID_FRACTION = 0.1
TEST_FRACTION = 0.1

SAMPLE_RATE = 16000
SECONDS = 1.0
N_SAMPLES = int(SAMPLE_RATE * SECONDS)
ESPEAK = "espeak-ng"
ESPEAK_TIMEOUT_S = 30.0
# -v names that differ from the label: espeak-ng 1.51 silently ignores "+variant" after "en-gb"
# (same voice as "en"), so "en-gb+f3" would sound exactly like "en-gb".
ESPEAK_NAMES = {"en-gb": "en"}
SPEED = (120, 220)  # words per minute, inclusive
PITCH = (20, 80)  # espeak 0..99, inclusive
AMPLITUDE = 25  # espeak default 100 clips some variants; at 30 the loudest peaked at 0.88
LEVEL = (0.3, 0.9)  # output peak
MAX_SPEED = 450  # the faster retry for words longer than the window stays below this

# Silence trimming: 10 ms frames, a frame is speech when its RMS is within TRIM_DB of the loudest
# frame; TRIM_PAD frames either side of the speech are kept so soft onsets (f, s, th) survive.
FRAME = SAMPLE_RATE // 100
TRIM_DB = 40.0
TRIM_PAD = 2
EDGE_FADE = SAMPLE_RATE // 200  # 5 ms fades at both ends of the trimmed word
CROP_FADE = SAMPLE_RATE // 50  # 20 ms fade-out where a too-long word is cut
CLIP_INT16 = 32700  # raw espeak output at or above this magnitude counts as clipped

DEFAULT_PER_DIGIT = 400
TINY_PER_DIGIT = 3


@dataclass(frozen=True)
class Clip:
    """One planned clip: everything random about it is drawn before synthesis starts."""

    rel: str  # path relative to OUT, e.g. "seven/en-us+f3_0.wav"
    word: str
    split: str
    voice: str  # "en-gb" or "en-gb+f3"; espeak_voice() gives what -v gets
    speed: int
    pitch: int
    offset: float  # 0..1: where the word sits in the slack of the window
    level: float  # output peak


# ----------------------------------------------------------------------------------------------
# Voices and splits


def _espeak_voices(espeak: str, which: str) -> str:
    """The table ``espeak-ng --voices=WHICH`` prints, or "" when espeak-ng cannot run."""
    try:
        return subprocess.run(
            [espeak, f"--voices={which}"], capture_output=True, text=True, timeout=ESPEAK_TIMEOUT_S, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def list_variants(espeak: str = ESPEAK) -> list[str]:
    """Variant names as ``-v voice+NAME`` takes them (the file names under !v/), sorted.

    Names containing spaces are left out (``-v`` cannot take them).
    """
    out = _espeak_voices(espeak, "variant")
    names = set()
    for line in out.splitlines():
        m = re.search(r"!v/(\S+(?: \S+)*)", line)
        if m and " " not in m.group(1):
            names.add(m.group(1))
    return sorted(names)


def list_voices(espeak: str = ESPEAK) -> list[str]:
    """The entries of VOICES that this espeak-ng installs (mbrola voices are never used)."""
    out = _espeak_voices(espeak, "en")
    have = set()
    for line in out.splitlines()[1:]:
        cols = line.split()
        # columns: Pty Language Age/Gender VoiceName File [Other languages]
        if len(cols) >= 5 and not cols[4].startswith("mb/"):
            have.add(cols[1])
    return [v for v in VOICES if v in have]


def espeak_voice(pair: str) -> str:
    """The ``-v`` argument for a voice+variant name: "en-gb+f3" -> "en+f3"."""
    voice, _, variant = pair.partition("+")
    voice = ESPEAK_NAMES.get(voice, voice)
    return f"{voice}+{variant}" if variant else voice


def _signature(pair: str, words: tuple[str, ...]) -> tuple[str, ...]:
    """Hashes of the audio of ``words`` said by ``pair`` at fixed settings ("" on failure)."""
    sig = []
    for word in words:
        try:
            raw, _ = espeak(word, espeak_voice(pair), 160, 50)
            sig.append(hashlib.sha1(raw.tobytes()).hexdigest()[:16])
        except SynthesisError:
            sig.append("")
    return tuple(sig)


@dataclass(frozen=True)
class Voices:
    """What this espeak-ng offers, after removing what would repeat or leak."""

    pairs: tuple[str, ...]  # "en-us", "en-us+f3", ...
    group: dict[str, str]  # pair -> split key; pairs sharing a key always share a split
    notes: tuple[str, ...]  # one line each: what was dropped or grouped, and why


@functools.lru_cache(maxsize=4)
def discover(jobs: int = 2) -> Voices:
    """Probe espeak-ng (about 300 short runs, a second or two) for the voices and variants to use.

    - Variants that sound exactly like the plain voice or like another variant (in espeak-ng
      1.51: "fast" = no variant, "caleb" = "klatt" = "klatt6") are dropped: they would only
      repeat a timbre, or put one timbre under two names in two splits.
    - Voices that say some digit exactly like another voice (en-us-nyc says seven of the ten
      like en-us) share a split key, so each variant of the two lands in one split.
    - A voice that ignores ``+variant`` (as "en-gb" does; ESPEAK_NAMES works around it) is
      used without variants.
    """
    voices, variants = list_voices(), list_variants()
    notes: list[str] = []
    if not voices:
        return Voices((), {}, ())
    ref = voices[0]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        vsig = dict(zip(voices, pool.map(lambda v: _signature(v, WORDS), voices), strict=True))
        probe = ("seven", "two")
        xsig = list(pool.map(lambda x: _signature(f"{ref}+{x}", probe), variants))
        seen = {_signature(ref, probe): ""}
        kept, same = [], []
        for x, sig in zip(variants, xsig, strict=True):
            if "" in sig:
                same.append(f"{x} (fails)")
            elif sig in seen:
                same.append(f"{x} (= {seen[sig] or 'no variant'})")
            else:
                seen[sig] = x
                kept.append(x)
        if same:
            notes.append(f"dropped {len(same)} variants: " + ", ".join(same))
        seven = WORDS.index("seven")
        ignores = [
            v
            for v in voices
            if kept and _signature(f"{v}+{kept[0]}", ("seven",)) == vsig[v][seven : seven + 1]
        ]
    if ignores:
        notes.append(f"voices that ignore +variant, used plain: {', '.join(ignores)}")
    key = {v: v for v in voices}  # voices that say any digit identically share a split key
    for i, a in enumerate(voices):
        for b in voices[:i]:
            if any(x and x == y for x, y in zip(vsig[a], vsig[b], strict=True)):
                key = {v: (key[b] if k == key[a] else k) for v, k in key.items()}
                notes.append(f"{a} says some digits exactly like {b}: kept in one split")
                break
    dead = [v for v in voices if not any(vsig[v])]
    if dead:
        notes.append(f"voices that fail, not used: {', '.join(dead)}")
    plain = [v for v in voices if v not in dead]
    pairs = plain + [f"{v}+{x}" for v in plain if v not in ignores for x in kept]
    group = {}
    for p in pairs:
        voice, plus, variant = p.partition("+")
        group[p] = key[voice] + plus + variant
    return Voices(tuple(pairs), group, tuple(notes))


def _hash_unit(name: str) -> float:
    """A stable number in [0, 1) from a name (not Python's salted hash())."""
    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big") / 2**64


def split_pairs(pairs, group: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Assign every voice+variant to exactly one split, about 80/10/10, by a hash of its split
    key (``group[pair]``, default the pair itself): pairs with one key share a split.

    When a split would be empty (a handful of keys), keys ranked by hash are cut 80/10/10
    instead, so that each split has at least one key whenever there are three or more.
    """
    group = group or {}
    keys = sorted({group.get(p, p) for p in pairs}, key=_hash_unit)
    cut_valid, cut_test = 1 - VALID_FRACTION - TEST_FRACTION, 1 - TEST_FRACTION
    where = {}
    for k in keys:
        u = _hash_unit(k)
        where[k] = "train" if u < cut_valid else "valid" if u < cut_test else "test"
    if len(keys) >= 3 and len(set(where.values())) < len(SPLITS):
        n_test = max(1, round(len(keys) * TEST_FRACTION))
        n_valid = max(1, round(len(keys) * VALID_FRACTION))
        n_train = len(keys) - n_valid - n_test
        where = {
            k: "train" if i < n_train else "valid" if i < n_train + n_valid else "test"
            for i, k in enumerate(keys)
        }
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for p in pairs:
        out[where[group.get(p, p)]].append(p)
    return {s: sorted(v) for s, v in out.items()}


def split_counts(n: int) -> dict[str, int]:
    """Clips per split for ``n`` clips of one word: about 80/10/10, one each from n >= 3."""
    n_valid = max(1, round(n * VALID_FRACTION)) if n >= 3 else 0
    n_test = max(1, round(n * TEST_FRACTION)) if n >= 3 else 0
    return {"train": n - n_valid - n_test, "valid": n_valid, "test": n_test}


def plan(per_digit: int, splits: dict[str, list[str]], seed: int) -> list[Clip]:
    """Every clip to make, in a fixed order; all randomness comes from ``seed`` here."""
    rng = np.random.default_rng(seed)
    counts = split_counts(per_digit)
    clips: list[Clip] = []
    repeats: Counter[tuple[str, str]] = Counter()
    for word in WORDS:
        for split in SPLITS:
            pool = splits[split]
            for _ in range(counts[split] if pool else 0):
                voice = pool[int(rng.integers(len(pool)))]
                k = repeats[word, voice]
                repeats[word, voice] += 1
                clips.append(
                    Clip(
                        rel=f"{word}/{voice}_{k}.wav",
                        word=word,
                        split=split,
                        voice=voice,
                        speed=int(rng.integers(SPEED[0], SPEED[1] + 1)),
                        pitch=int(rng.integers(PITCH[0], PITCH[1] + 1)),
                        offset=float(rng.uniform()),
                        level=float(rng.uniform(*LEVEL)),
                    )
                )
    return clips


# ----------------------------------------------------------------------------------------------
# Synthesis and post-processing


class SynthesisError(RuntimeError):
    """espeak-ng gave no usable audio for one clip; the message is a short reason."""


def espeak(word: str, voice: str, speed: int, pitch: int, amplitude: int = AMPLITUDE):
    """Run espeak-ng once; returns (int16 samples [T], sample rate). Raises SynthesisError."""
    cmd = [ESPEAK, "-v", voice, "-s", str(speed), "-p", str(pitch), "-a", str(amplitude)]
    try:
        r = subprocess.run(
            [*cmd, "--stdout", word], capture_output=True, timeout=ESPEAK_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise SynthesisError("espeak-ng timed out") from None
    except OSError as exc:
        raise SynthesisError(f"espeak-ng did not run ({exc.strerror or exc})") from None
    if r.returncode != 0:
        err = r.stderr.decode(errors="replace").strip().splitlines()
        raise SynthesisError(f"espeak-ng exit {r.returncode}" + (f": {err[0]}" if err else ""))
    try:
        # --stdout streams a wav whose size fields are placeholders; soundfile reads it anyway.
        data, sr = sf.read(io.BytesIO(r.stdout), dtype="int16", always_2d=True)
    except Exception:
        raise SynthesisError("espeak-ng output is not a wav file") from None
    if data.shape[0] == 0:
        raise SynthesisError("espeak-ng wrote no samples")
    return data[:, 0], int(sr)


def trim(wav: np.ndarray) -> np.ndarray:
    """Cut leading and trailing silence: keep from the first to the last 10 ms frame whose RMS
    is within TRIM_DB of the loudest frame, plus TRIM_PAD frames either side."""
    n = len(wav) // FRAME
    if n == 0:
        return wav[:0]
    rms = np.sqrt(np.mean(wav[: n * FRAME].reshape(n, FRAME).astype(np.float64) ** 2, axis=1))
    top = rms.max()
    if top <= 1e-5:
        return wav[:0]
    speech = np.nonzero(rms >= top * 10 ** (-TRIM_DB / 20))[0]
    first = max(0, speech[0] - TRIM_PAD) * FRAME
    last = min(n, speech[-1] + 1 + TRIM_PAD) * FRAME
    return wav[first:last]


def _fade(wav: np.ndarray, n_in: int, n_out: int) -> np.ndarray:
    wav = wav.copy()
    n_in, n_out = min(n_in, len(wav)), min(n_out, len(wav))
    if n_in:
        wav[:n_in] *= np.linspace(0.0, 1.0, n_in, endpoint=False, dtype=wav.dtype)
    if n_out:
        wav[len(wav) - n_out :] *= np.linspace(1.0, 0.0, n_out, endpoint=False, dtype=wav.dtype)
    return wav


def _word(clip: Clip, speed: int) -> np.ndarray:
    """Synthesise, check for clipping (retry quieter once), resample to 16 kHz and trim."""
    raw, sr = espeak(clip.word, espeak_voice(clip.voice), speed, clip.pitch)
    if np.abs(raw.astype(np.int32)).max() >= CLIP_INT16:
        raw, sr = espeak(
            clip.word, espeak_voice(clip.voice), speed, clip.pitch, amplitude=AMPLITUDE // 3
        )
        if np.abs(raw.astype(np.int32)).max() >= CLIP_INT16:
            raise SynthesisError("espeak-ng output clips")
    wav = torch.from_numpy(raw.astype(np.float32) / 32768.0)
    wav = resample(wav, sr, SAMPLE_RATE).numpy()
    return trim(wav)


def render(clip: Clip) -> np.ndarray:
    """The finished clip: float32 [N_SAMPLES], peak ``clip.level``. Raises SynthesisError."""
    word = _word(clip, clip.speed)
    if len(word) > N_SAMPLES:  # say it faster once, so that it fits without losing its end
        faster = min(MAX_SPEED, int(np.ceil(clip.speed * len(word) / (0.95 * N_SAMPLES))))
        if faster > clip.speed:
            word = _word(clip, faster)
    if len(word) == 0:
        raise SynthesisError("espeak-ng output is silent")
    word = _fade(word, EDGE_FADE, EDGE_FADE)
    if len(word) > N_SAMPLES:
        word = _fade(word[:N_SAMPLES], 0, CROP_FADE)
    out = np.zeros(N_SAMPLES, dtype=np.float32)
    start = int(clip.offset * (N_SAMPLES - len(word)))
    out[start : start + len(word)] = word
    return peak_normalise(torch.from_numpy(out), clip.level).numpy()


def _make(clip: Clip, out: Path) -> str | None:
    """Render and write one clip; returns None on success, else the reason it was skipped."""
    try:
        wav = render(clip)
    except SynthesisError as exc:
        return str(exc)
    save_audio(out / clip.rel, wav, SAMPLE_RATE)
    return None


# ----------------------------------------------------------------------------------------------
# The build


def build(
    out: str | Path,
    per_digit: int = DEFAULT_PER_DIGIT,
    seed: int = 0,
    jobs: int = 2,
    progress: bool = True,
) -> Path:
    """Build the data set under ``out`` and return its path; prints one summary line.

    Wav files under OUT/<word>/ that this build did not write (left by an earlier build with
    other arguments) are removed, so OUT holds exactly this build.
    """
    if shutil.which(ESPEAK) is None:
        raise RuntimeError(f"{ESPEAK} is not on PATH (Debian/Ubuntu: apt-get install espeak-ng)")
    if per_digit < 1:
        raise ValueError(f"per_digit must be at least 1, got {per_digit}")
    t0 = time.perf_counter()
    out = Path(out)
    found = discover(max(1, jobs))
    if not found.pairs:
        raise RuntimeError(f"{ESPEAK} gives none of the voices {', '.join(VOICES)}")
    splits = split_pairs(found.pairs, found.group)
    clips = plan(per_digit, splits, seed)
    for word in WORDS:
        (out / word).mkdir(parents=True, exist_ok=True)

    results = run_jobs(lambda c: _make(c, out), clips, jobs=jobs, desc="digits", unit="clip", progress=progress)

    written = [c for c, r in zip(clips, results, strict=True) if r is None]
    failed = [(c, r) for c, r in zip(clips, results, strict=True) if r is not None]
    keep = {c.rel for c in written}
    stale = 0
    for word in WORDS:
        for f in (out / word).glob("*.wav"):
            if f"{word}/{f.name}" not in keep:
                f.unlink()
                stale += 1
    for split, name in SPLIT_LISTS.items():
        rows = sorted(c.rel for c in written if c.split == split)
        (out / name).write_text("".join(r + "\n" for r in rows))
    (out / "speakers.json").write_text(json.dumps(splits, indent=1) + "\n")

    per_split = Counter(c.split for c in written)
    used = {s: len({c.voice for c in written if c.split == s}) for s in SPLITS}
    msg = (
        f"digits: wrote {len(written)} clips to {out} "
        f"(train/valid/test {per_split['train']}/{per_split['valid']}/{per_split['test']} clips "
        f"from {used['train']}/{used['valid']}/{used['test']} of "
        f"{len(splits['train'])}/{len(splits['valid'])}/{len(splits['test'])} voice+variants) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    if failed:
        reasons = Counter(r for _, r in failed)
        voices_failed = sorted({c.voice for c, _ in failed})
        shown = ", ".join(voices_failed[:8]) + (", ..." if len(voices_failed) > 8 else "")
        msg += (
            f"; skipped {len(failed)} ("
            + "; ".join(f"{n}x {r}" for r, n in reasons.most_common())
            + f"; voices: {shown})"
        )
    if stale:
        msg += f"; removed {stale} wav files of an earlier build"
    for note in found.notes:
        print(f"digits: {note}", flush=True)
    print(msg, flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="data/digits")
    p.add_argument(
        "--per-digit", type=int, default=DEFAULT_PER_DIGIT, help="clips per digit (all splits)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--tiny", action="store_true", help=f"{TINY_PER_DIGIT} clips per digit")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    if a.per_digit < 1:
        p.error("--per-digit must be at least 1")
    per_digit = TINY_PER_DIGIT if a.tiny else a.per_digit
    build(a.out, per_digit, a.seed, a.jobs, progress=not a.no_progress)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
