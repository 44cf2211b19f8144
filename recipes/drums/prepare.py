"""Build the drums data set: the recorded one-shots of the hydrogen-drumkits package, 1 s at
16 kHz, labelled by instrument type (SC09-style folders).

Sources: every kit folder under /usr/share/hydrogen/data/drumkits/ with a drumkit.xml. Each
<instrument> names its sample files in its layers (both schemas: <filename> directly under
<instrument>, or in <layer> / <instrumentComponent><layer>; any XML namespace). A sample's label
comes from its instrument's name, or from its file name when the name says nothing:

    kick, snare, hihat, tom, cymbal (crash, ride, china, splash, bell of a ride),
    clap_perc (clap, stick, rim, cowbell, tambourine, shaker, clave, woodblock, hand drums...)

Samples that map to none of these (effects, whistles, unnamed slots), a file used twice in one
kit (or byte-identical to one of an earlier kit), missing, unreadable and silent files are
skipped and counted.

Post-processing: mono mix, resample to 16 kHz (cmaudio.audio.load_audio), cut leading silence
(start 2 ms before the first sample within 40 dB of the peak), crop 1 s with a 50 ms fade-out
or, when shorter, fade the last 5 ms and zero-pad; peak-normalise to LEVEL (0.5).

Augmentation (train split only, ``--augment K`` copies of each file): gain +-6 dB, pitch shift
+-2 semitones by resampling (varispeed: the sample also gets shorter or longer), a delay of
0..20 ms; every draw comes from ``--seed``. Valid and test clips are the files as they are.

Splits hold out whole kits: TEST_KITS kits for test and VALID_KITS for valid, taken in the order
of a hash of the kit name (independent of the seed) among kits that have a kick, a snare, a
hi-hat and at least five of the six types, and no more than 15 % of all files. Kits that share
a sample file, or that KIT_GROUPS names as one drum set recorded several times, count as one and
stay in one split.

Layout: OUT/<type>/<kit>_<instrument>_<k>[_aug<j>].wav (names made file-safe; k counts the
samples of that instrument), OUT/validation_list.txt and OUT/testing_list.txt (paths relative to
OUT), OUT/kits.json mapping each split to its kits. The same arguments give the same files.

    python recipes/drums/prepare.py --out data/drums [--augment 8] [--seed 0] [--jobs 2]
    python recipes/drums/prepare.py --out /tmp/drums_tiny --tiny
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

try:
    from cmaudio.audio import AudioError, load_audio, peak_normalise, resample, save_audio
    from cmaudio.data import run_jobs
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from cmaudio.audio import AudioError, load_audio, peak_normalise, resample, save_audio
    from cmaudio.data import run_jobs

DRUMKITS = Path("/usr/share/hydrogen/data/drumkits")
LABELS = ("kick", "snare", "hihat", "tom", "cymbal", "clap_perc")
SPLITS = ("train", "valid", "test")
SPLIT_LISTS = {"valid": "validation_list.txt", "test": "testing_list.txt"}
TEST_KITS = 2
VALID_KITS = 1
# A held-out kit must have these types, and at least MIN_TYPES of LABELS.
CORE_TYPES = ("kick", "snare", "hihat")
MIN_TYPES = 5
# ... and hold at most this share of all files: the big acoustic kits are worth more to training.
MAX_HELD_SHARE = 0.15
# Kits that are one drum set recorded (or cut) several times: always in one split.
KIT_GROUPS = {
    "Millo-Drums_v.1": "Millo",
    "Millo_MultiLayered2": "Millo",
    "Millo_MultiLayered3": "Millo",
}

SAMPLE_RATE = 16000
N_SAMPLES = SAMPLE_RATE  # 1 s
ONSET_DB = 40.0  # the onset is the first sample within this many dB of the peak
PRE_ROLL = SAMPLE_RATE * 2 // 1000  # 2 ms kept before the onset (faded in)
CROP_FADE = SAMPLE_RATE * 50 // 1000  # 50 ms fade-out where 1 s cuts the sample
END_FADE = SAMPLE_RATE * 5 // 1000  # 5 ms fade-out at the end of a shorter sample
SILENT_PEAK = 1e-3  # a file quieter than -60 dBFS is silent
LEVEL = 0.5  # output peak before augmentation gain

DEFAULT_AUGMENT = 8
GAIN_DB = 6.0  # augmentation gain is uniform in +-GAIN_DB
SEMITONES = 2.0  # pitch shift uniform in +-SEMITONES, rounded to RATE_STEP
RATE_STEP = 50  # Hz: the shift resamples from a multiple of this to 16 kHz (fast kernels)
MAX_DELAY = SAMPLE_RATE * 20 // 1000  # 0..20 ms of silence before the onset
MAX_PEAK = 0.99

TINY_AUGMENT = 1
TINY_PER_TYPE = 1  # --tiny: at most this many files of each type from each kit

# Ordered rules: the first that matches the normalised name gives the type. Hi-hats and cymbals
# come first ("Sabian Hat", "Ride Bell" are not percussion); "Snare Rimshot" is a snare, while
# "Side Stick" and "Rim Click" are percussion.
RULES: tuple[tuple[str, re.Pattern], ...] = tuple(
    (label, re.compile(pattern))
    for label, pattern in (
        ("hihat", r"hi ?hat|hats?\b|\bhh\b|\bchh\b|\bohh\b"),
        (
            "cymbal",
            r"\bcrash|\bride|\bchina|\bsplash|\bcymbal|\bcup\b|\bpaiste|\bzildjian|\bsabian",
        ),
        ("kick", r"\bkick|\bbass ?drum|\bbd\b"),
        ("snare", r"\bsnare|\bsd\b"),
        ("tom", r"\btom"),
        (
            "clap_perc",
            r"\bclap|\bstick|\brim|\bcowbell|\btambourine|\bshaker|\bmaraca|\bclave|\bwood ?block"
            r"|\bblock|\bagogo|\bconga|\bbongo|\bcajon|\bdjembe|\bsangban|\bdununba|\bkenkeni"
            r"|\bsnap|\bbell|\bperc|\btriangle|\bguiro|\bcabasa|\btimbale|\bcastanet",
        ),
    )
)


@dataclass(frozen=True)
class Source:
    """One sample file of one kit, with its label."""

    kit: str
    instrument: str  # the instrument's name in drumkit.xml
    path: str  # absolute path of the file
    label: str
    rel: str  # OUT-relative path of the unaugmented clip, without ".wav"


@dataclass(frozen=True)
class Aug:
    """One augmented copy: gain, resampling rate for the pitch shift, delay."""

    j: int
    gain_db: float
    rate: int  # the clip is read as if sampled at this rate and resampled to 16 kHz
    delay: int  # samples

    @property
    def semitones(self) -> float:
        return 12 * float(np.log2(self.rate / SAMPLE_RATE))


@dataclass(frozen=True)
class Job:
    source: Source
    split: str
    augs: tuple[Aug, ...]


# ----------------------------------------------------------------------------------------------
# Kits, labels and splits


def _local(tag: str) -> str:
    """The tag without its XML namespace: "{http://...}instrument" -> "instrument"."""
    return tag.rsplit("}", 1)[-1]


def parse_drumkit(xml_path: str | Path) -> list[tuple[str, list[str]]]:
    """(instrument name, [sample file names in layer order]) for each instrument of a
    drumkit.xml, in file order; instruments without a file are left out.

    Handles the old schema (<filename> directly under <instrument>), the layered one
    (<instrument><layer><filename>) and the component one
    (<instrument><instrumentComponent><layer><filename>), with or without a namespace.
    """
    root = ET.parse(xml_path).getroot()
    out = []
    for inst in root.iter():
        if _local(inst.tag) != "instrument":
            continue
        name = next((c.text or "" for c in inst if _local(c.tag) == "name"), "").strip()
        files = [
            e.text.strip()
            for e in inst.iter()
            if _local(e.tag) == "filename" and e.text and e.text.strip()
        ]
        if files:
            out.append((name, list(dict.fromkeys(files))))
    return out


def _words(text: str) -> str:
    """Lower-case words for the rules: "HiHatClosed-0.wav" -> "hi hat closed 0 wav"."""
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    text = re.sub(r"(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])", " ", text)
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def classify(name: str, filename: str = "") -> str | None:
    """The type of an instrument from its name, else from its file name; None when neither
    says. Parenthesised details ("Kick (Tama Superstar 22")") are ignored in names."""
    for text in (re.sub(r"\([^)]*\)?", " ", name), Path(filename).stem):
        words = _words(text)
        for label, rule in RULES:
            if rule.search(words):
                return label
    return None


def slug(text: str) -> str:
    """A file-safe name: "Crash/Ride (Paiste 18")" -> "Crash-Ride-Paiste-18"."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-") or "x"


def list_kits(root: str | Path = DRUMKITS) -> list[str]:
    """Names of the kit folders under ``root`` that have a drumkit.xml, sorted."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "drumkit.xml").is_file())


def collect(
    root: str | Path = DRUMKITS, kits: list[str] | None = None
) -> tuple[list[Source], Counter, dict[str, str]]:
    """Every usable sample file: (sources in kit order, skip counts by reason, kit -> group).

    Kits sharing a byte-identical file are put in one group (the copy is skipped).
    """
    root = Path(root)
    skipped: Counter = Counter()
    sources: list[Source] = []
    group = {k: KIT_GROUPS.get(k, k) for k in (kits if kits is not None else list_kits(root))}
    seen_hash: dict[str, str] = {}  # sha1 -> kit
    for kit in group:
        try:
            instruments = parse_drumkit(root / kit / "drumkit.xml")
        except (OSError, ET.ParseError):
            skipped["bad drumkit.xml"] += 1
            continue
        used: set[str] = set()
        count: Counter = Counter()
        for name, files in instruments:
            for fname in files:
                path = (root / kit / fname).resolve()
                if str(path) in used:
                    skipped["duplicate"] += 1
                    continue
                used.add(str(path))
                label = classify(name, fname)
                if label is None:
                    skipped["no type"] += 1
                    continue
                if not path.is_file():
                    skipped["missing"] += 1
                    continue
                digest = hashlib.sha1(path.read_bytes()).hexdigest()
                if digest in seen_hash:
                    skipped["duplicate"] += 1
                    other = seen_hash[digest]
                    if group[other] != group[kit]:  # merge the two groups
                        old, new = group[kit], group[other]
                        group = {k: new if g == old else g for k, g in group.items()}
                    continue
                seen_hash[digest] = kit
                inst = slug(name or Path(fname).stem)
                k = count[inst]
                count[inst] += 1
                rel = f"{label}/{slug(kit)}_{inst}_{k}"
                sources.append(Source(kit, name, str(path), label, rel))
    return sources, skipped, group


def _hash_unit(name: str) -> float:
    """A stable number in [0, 1) from a name (not Python's salted hash())."""
    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big") / 2**64


def split_kits(
    sources: list[Source],
    group: dict[str, str],
    test_kits: int = TEST_KITS,
    valid_kits: int = VALID_KITS,
) -> dict[str, list[str]]:
    """Assign every kit to one split: groups in hash order, eligible ones (CORE_TYPES, at least
    MIN_TYPES types, at most MAX_HELD_SHARE of the files) to test until ``test_kits`` kits,
    then to valid until ``valid_kits``; a group that would overshoot is passed over. The rest
    are train. When too few groups are eligible (a folder of other kits), the share limit and
    then the type rules are dropped, always leaving at least one group for training."""
    types: dict[str, set[str]] = defaultdict(set)
    files: Counter = Counter()
    for s in sources:
        types[group[s.kit]].add(s.label)
        files[group[s.kit]] += 1
    members: dict[str, list[str]] = defaultdict(list)
    for kit in sorted({s.kit for s in sources}):
        members[group[kit]].append(kit)

    def complete(g: str) -> bool:
        return set(CORE_TYPES) <= types[g] and len(types[g]) >= MIN_TYPES

    def eligible(g: str) -> bool:
        return complete(g) and files[g] <= MAX_HELD_SHARE * len(sources)

    order = sorted(members, key=lambda g: _hash_unit(f"drumkit-{g}"))
    where: dict[str, str] = {}
    for split, want in (("test", test_kits), ("valid", valid_kits)):
        taken = 0
        for rule in (eligible, complete, lambda g: True):
            for g in order:
                if (
                    g not in where
                    and rule(g)
                    and taken + len(members[g]) <= want
                    and len(where) + 1 < len(order)
                ):
                    where[g] = split
                    taken += len(members[g])
    return {
        s: sorted(k for g, ks in members.items() if where.get(g, "train") == s for k in ks)
        for s in SPLITS
    }


def plan(
    sources: list[Source],
    splits: dict[str, list[str]],
    augment: int,
    seed: int,
    per_type: int | None = None,
) -> list[Job]:
    """One job per source (train ones with ``augment`` augmentations), in a fixed order; all
    randomness comes from ``seed`` here. ``per_type`` keeps only the first that many files of
    each type from each kit (tiny builds)."""
    where = {k: s for s, ks in splits.items() for k in ks}
    rng = np.random.default_rng(seed)
    jobs = []
    taken: Counter = Counter()
    for src in sources:
        if per_type is not None:
            if taken[src.kit, src.label] >= per_type:
                continue
            taken[src.kit, src.label] += 1
        split = where[src.kit]
        augs = []
        if split == "train":
            for j in range(augment):
                gain = float(rng.uniform(-GAIN_DB, GAIN_DB))
                semis = float(rng.uniform(-SEMITONES, SEMITONES))
                rate = int(round(SAMPLE_RATE * 2 ** (semis / 12) / RATE_STEP)) * RATE_STEP
                delay = int(rng.integers(0, MAX_DELAY + 1))
                augs.append(Aug(j, round(gain, 3), rate, delay))
        jobs.append(Job(src, split, tuple(augs)))
    return jobs


# ----------------------------------------------------------------------------------------------
# Audio


class SampleError(RuntimeError):
    """A sample file that cannot be used; the message is the reason counted in the summary."""


def from_onset(wav: np.ndarray) -> np.ndarray:
    """Cut leading silence: start PRE_ROLL before the first sample within ONSET_DB of the peak
    (the pre-roll faded in). Raises SampleError("silent") for a silent file."""
    peak = float(np.abs(wav).max()) if len(wav) else 0.0
    if peak < SILENT_PEAK:
        raise SampleError("silent")
    onset = int(np.argmax(np.abs(wav) >= peak * 10 ** (-ONSET_DB / 20)))
    start = max(0, onset - PRE_ROLL)
    seg = wav[start:].astype(np.float32, copy=True)
    if onset > start:
        seg[: onset - start] *= np.linspace(0.0, 1.0, onset - start, endpoint=False)
    return seg


def fit(seg: np.ndarray, delay: int = 0) -> np.ndarray:
    """Place ``seg`` after ``delay`` zeros in a 1 s window: cropped with CROP_FADE, or faded
    over END_FADE and zero-padded."""
    out = np.zeros(N_SAMPLES, dtype=np.float32)
    room = N_SAMPLES - delay
    if len(seg) >= room:
        seg = seg[:room].copy()
        n = min(CROP_FADE, room)
        seg[room - n :] *= np.linspace(1.0, 0.0, n, dtype=np.float32)
    else:
        seg = seg.copy()
        n = min(END_FADE, len(seg))
        seg[len(seg) - n :] *= np.linspace(1.0, 0.0, n, dtype=np.float32)
    out[delay : delay + len(seg)] = seg
    return out


def pitch_shift(seg: np.ndarray, rate: int) -> np.ndarray:
    """Varispeed: read ``seg`` as if sampled at ``rate`` Hz and resample it to SAMPLE_RATE, so
    it sounds 12*log2(rate/16000) semitones higher (and plays that much faster)."""
    if rate == SAMPLE_RATE:
        return seg
    need = int(np.ceil(N_SAMPLES * rate / SAMPLE_RATE)) + 256  # what the 1 s window uses
    return resample(torch.from_numpy(seg[:need].copy()), rate, SAMPLE_RATE).numpy()


def _level(wav: np.ndarray, gain_db: float = 0.0) -> np.ndarray:
    peak = min(MAX_PEAK, LEVEL * 10 ** (gain_db / 20))
    return peak_normalise(torch.from_numpy(wav), peak).numpy()


def render(job: Job) -> list[tuple[str, np.ndarray]]:
    """The clips of one job: [(rel path with .wav, float32 [N_SAMPLES])]. Raises SampleError."""
    try:
        wav = load_audio(job.source.path, SAMPLE_RATE).numpy()
    except AudioError:
        raise SampleError("unreadable") from None
    seg = from_onset(wav)
    out = [(f"{job.source.rel}.wav", _level(fit(seg)))]
    for aug in job.augs:
        clip = fit(pitch_shift(seg, aug.rate), aug.delay)
        out.append((f"{job.source.rel}_aug{aug.j}.wav", _level(clip, aug.gain_db)))
    return out


def _make(job: Job, out: Path) -> list[str] | str:
    """Render and write one job's clips: their rel paths, or the reason the file was skipped."""
    try:
        clips = render(job)
    except SampleError as exc:
        return str(exc)
    for rel, wav in clips:
        save_audio(out / rel, wav, SAMPLE_RATE)
    return [rel for rel, _ in clips]


# ----------------------------------------------------------------------------------------------
# The build


def build(
    out: str | Path,
    augment: int = DEFAULT_AUGMENT,
    seed: int = 0,
    jobs: int = 2,
    progress: bool = True,
    *,
    drumkits: str | Path = DRUMKITS,
    kits: list[str] | None = None,
    per_type: int | None = None,
    test_kits: int = TEST_KITS,
    valid_kits: int = VALID_KITS,
) -> Path:
    """Build the data set under ``out`` and return its path; prints a summary.

    ``kits`` limits the build to those kit folders, ``per_type`` to that many files of each type
    per kit (the splits are those of the full build). Wav files under OUT/<type>/ that this
    build did not write are removed.
    """
    if augment < 0:
        raise ValueError(f"augment must be >= 0, got {augment}")
    names = list_kits(drumkits) if kits is None else list(kits)
    if not names:
        raise RuntimeError(
            f"no drum kits in {drumkits} (Debian/Ubuntu: apt-get install hydrogen-drumkits)"
        )
    t0 = time.perf_counter()
    out = Path(out)
    sources, skipped, group = collect(drumkits, names)
    if not sources:
        raise RuntimeError(f"no usable samples in the kits of {drumkits}")
    splits = split_kits(sources, group, test_kits, valid_kits)
    todo = plan(sources, splits, augment, seed, per_type)
    for label in LABELS:
        (out / label).mkdir(parents=True, exist_ok=True)

    results = run_jobs(lambda j: _make(j, out), todo, jobs=jobs, desc="drums", unit="file", progress=progress)

    written: dict[str, tuple[str, str]] = {}  # rel -> (split, label)
    for job, r in zip(todo, results, strict=True):
        if isinstance(r, str):
            skipped[r] += 1
        else:
            written.update({rel: (job.split, job.source.label) for rel in r})
    stale = 0
    for label in LABELS:
        for f in (out / label).glob("*.wav"):
            if f"{label}/{f.name}" not in written:
                f.unlink()
                stale += 1
    for split, name in SPLIT_LISTS.items():
        rows = sorted(rel for rel, (s, _) in written.items() if s == split)
        (out / name).write_text("".join(r + "\n" for r in rows))
    (out / "kits.json").write_text(json.dumps(splits, indent=1) + "\n")

    counts = Counter(written.values())
    per_split = Counter(s for s, _ in written.values())
    n_src = sum(1 for r in results if not isinstance(r, str))
    n_aug = sum(1 for rel in written if "_aug" in rel.rsplit("/", 1)[-1])
    msg = (
        f"drums: wrote {len(written)} clips to {out} "
        f"(train/valid/test {per_split['train']}/{per_split['valid']}/{per_split['test']} clips "
        f"from {len(splits['train'])}/{len(splits['valid'])}/{len(splits['test'])} kits; "
        f"{n_src} files + {n_aug} augmented) in {time.perf_counter() - t0:.1f} s"
    )
    if skipped:
        msg += "; skipped " + ", ".join(f"{c} {r}" for r, c in skipped.most_common())
    if stale:
        msg += f"; removed {stale} wav files of an earlier build"
    for split in SPLITS:
        per_label = ", ".join(f"{lab} {counts[split, lab]}" for lab in LABELS)
        print(f"drums: {split} ({', '.join(splits[split])}): {per_label}", flush=True)
    print(msg, flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="data/drums")
    p.add_argument(
        "--augment",
        type=int,
        default=DEFAULT_AUGMENT,
        help="augmented copies of each training file",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--drumkits", default=str(DRUMKITS), help="the folder holding the kits")
    p.add_argument("--test-kits", type=int, default=TEST_KITS)
    p.add_argument("--valid-kits", type=int, default=VALID_KITS)
    p.add_argument(
        "--tiny",
        action="store_true",
        help=f"{TINY_PER_TYPE} file of each type per kit, {TINY_AUGMENT} augmentation",
    )
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    if a.augment < 0:
        p.error("--augment must be >= 0")
    build(
        a.out,
        TINY_AUGMENT if a.tiny else a.augment,
        a.seed,
        a.jobs,
        progress=not a.no_progress,
        drumkits=a.drumkits,
        per_type=TINY_PER_TYPE if a.tiny else None,
        test_kits=a.test_kits,
        valid_kits=a.valid_kits,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
