"""Build the real-audio vocoder corpus: recordings made by people, from Debian packages and FSDD.

Sources (one table, SOURCES; each recording's licence is in recipes/vocoder/README.md):

    source            domain    package / folder                                   group (split unit)
    ktuberling        speech    ktuberling-data: sounds/<lang>/*.ogg, one word a file    language (one speaker)
    hedgewars-voices  speech    hedgewars-data: Sounds/voices/<pack>/*.ogg               voice actor
    fsdd              speech8k  ../shared/data/fsdd/recordings, 8 kHz spoken digits      speaker
    wesnoth           music     wesnoth-1.16-music: data/core/music/*.ogg                track
    hedgewars-music   music     hedgewars-data: Data/Music/*.ogg                         track
    hedgewars-sfx     effects   hedgewars-data: Data/Sounds/*.ogg                        file bucket

Splits hold out whole groups (a speaker, a voice actor, a track, a file), never one recording on
both sides: the groups in TEST_GROUPS, else a fixed share of each source's groups chosen by a hash
of the group name (independent of the seed). A missing package is skipped with one line.

Processing: mono, 16 kHz (cmaudio.audio.load_audio). Short recordings (words, exclamations,
effects) are trimmed to 10 ms before and after the part within 40 dB of their peak,
peak-normalised to LEVEL, and joined per group with GAP seconds of silence, so that a clip is a
run of speech rather than a word in a second of silence; long recordings (music) are
peak-normalised per track and keep their dynamics. Each group's stream is cut into clips: train
clips of ``--seconds`` (1 s, the length of the synthetic sets, so one SegmentSampler draws from
all of them), test clips of ``--test-seconds`` (4 s: PESQ wants utterances of at least 2 s).
A track gives at most ``--max-track-seconds`` of train clips, evenly spaced through it. Clips
whose peak is below SILENT are dropped. FSDD is 8 kHz: resampled to 16 kHz it has nothing above
4 kHz, so it is its own domain (speech8k), scored apart from wide-band speech.

Layout: OUT/<source>/<group>/<k>.wav; one manifest per source, OUT/<source>.jsonl, and one per
domain, OUT/<domain>.jsonl (rows: path, split, source, group, domain), so a training root is a
domain or a single source (leave one out to rehearse generalisation); one per held-out group,
OUT/heldout-<source>-<group>.jsonl (per-speaker scores); OUT/summary.json counts clips and
seconds per source and split.

    python recipes/vocoder/prepare_real.py --out data/real
    python recipes/vocoder/prepare_real.py --out /tmp/real_tiny --tiny   # a few files per source
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

try:
    from cmaudio.audio import AudioError, load_audio, peak_normalise, save_audio
    from cmaudio.data import run_jobs
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from cmaudio.audio import AudioError, load_audio, peak_normalise, save_audio
    from cmaudio.data import run_jobs

SR = 16000
LEVEL = 0.8  # peak of a normalised word or track
GAP = 0.12  # seconds of silence between joined short recordings
TRIM_DB = 40.0
SILENT = 1e-3  # a clip whose peak is below this carries nothing
FSDD = Path(__file__).resolve().parents[3] / "shared" / "data" / "fsdd" / "recordings"
KTUBERLING = Path("/usr/share/ktuberling/sounds")
HEDGEWARS = Path("/usr/share/games/hedgewars/Data")
WESNOTH = Path("/usr/share/games/wesnoth/1.16/data/core/music")
AUDIO = (".ogg", ".wav", ".flac")


@dataclass(frozen=True)
class Source:
    name: str
    domain: str
    package: str  # what provides it (apt package, or a folder)
    licence: str
    root: Path
    groups: Callable[[Path], dict[str, list[Path]]]  # root -> {group: files}
    long: bool  # long recordings (tracks) rather than short ones joined per group
    test_share: float  # share of groups held out, when TEST_GROUPS names none
    test_groups: tuple[str, ...] = ()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO and p.is_file())


def _by_folder(root: Path) -> dict[str, list[Path]]:
    """One group per sub-folder; folders sharing a stem before '@' (sr, sr@latin) are one speaker."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        groups[d.name.split("@")[0]].extend(_files(d))
    return {g: f for g, f in groups.items() if f}


def _by_actor(root: Path) -> dict[str, list[Path]]:
    """Hedgewars voice packs: Default, Default_es, Default_pl ... are one actor's pack set."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        groups[d.name.split("_")[0]].extend(_files(d))
    return dict(groups)


def _by_file(root: Path) -> dict[str, list[Path]]:
    return {p.stem: [p] for p in _files(root)}


def _by_bucket(root: Path, buckets: int = 10) -> dict[str, list[Path]]:
    """Short unrelated files (effects) in ``buckets`` groups by a hash of the file name: each file
    stays on one side, and a held-out group has enough audio for a few test clips."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for p in _files(root):
        groups[f"bucket{int(hashlib.sha1(p.name.encode()).hexdigest(), 16) % buckets}"].append(p)
    return dict(groups)


def _by_speaker(root: Path) -> dict[str, list[Path]]:
    """FSDD names files {digit}_{speaker}_{index}.wav."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for p in _files(root):
        groups[p.stem.split("_")[1]].append(p)
    return dict(groups)


SOURCES = (
    Source(
        "ktuberling",
        "speech",
        "ktuberling-data",
        "GPL-2+ (KDE ktuberling)",
        KTUBERLING / "",
        _by_folder,
        False,
        0.0,
        ("en", "el", "sl"),
    ),
    Source(
        "hedgewars-voices",
        "speech",
        "hedgewars-data",
        "GFDL-1.3 (Hedgewars Data/Sounds)",
        HEDGEWARS / "Sounds" / "voices",
        _by_actor,
        False,
        0.0,
        ("British", "Pirate"),
    ),
    Source(
        "fsdd",
        "speech8k",
        "../shared/data/fsdd",
        "CC BY-SA 4.0 (Free Spoken Digit Dataset)",
        FSDD,
        _by_speaker,
        False,
        0.0,
        ("yweweler",),
    ),
    Source("wesnoth", "music", "wesnoth-1.16-music", "GPL-2 (Battle for Wesnoth music)", WESNOTH, _by_file, True, 0.15),
    Source(
        "hedgewars-music",
        "music",
        "hedgewars-data",
        "GPL-2 (Hedgewars Data/Music)",
        HEDGEWARS / "Music",
        _by_file,
        True,
        0.15,
    ),
    Source(
        "hedgewars-sfx",
        "effects",
        "hedgewars-data",
        "GFDL-1.3 (Hedgewars Data/Sounds)",
        HEDGEWARS / "Sounds",
        _by_bucket,
        False,
        0.2,
    ),
)


def split_of(source: Source, group: str, groups: list[str]) -> str:
    """'test' for a held-out group: the named ones, else the first test_share of the groups in the
    order of a hash of their names (the same on every machine and for every seed)."""
    if source.test_groups:
        return "test" if group in source.test_groups else "train"
    order = sorted(groups, key=lambda g: hashlib.sha1(f"{source.name}/{g}".encode()).hexdigest())
    held = max(1, round(source.test_share * len(groups)))
    return "test" if group in order[:held] else "train"


def trim(wav: torch.Tensor, db: float = TRIM_DB, pad: float = 0.01) -> torch.Tensor:
    """The part within ``db`` of the peak, with ``pad`` seconds either side."""
    keep = (wav.abs() >= wav.abs().max() * 10 ** (-db / 20)).nonzero()
    if keep.numel() == 0:
        return wav[:0]
    p = int(pad * SR)
    return wav[max(0, int(keep[0]) - p) : int(keep[-1]) + p + 1]


def stream(source: Source, files: list[Path]) -> list[torch.Tensor]:
    """The group's audio as a list of streams to cut: one per track, or all short files joined."""
    out = []
    for path in files:
        try:
            wav = load_audio(path, SR)
        except AudioError as exc:
            print(f"  skipped: {exc}", file=sys.stderr)
            continue
        if wav.abs().max() < SILENT:
            continue
        out.append(peak_normalise(wav if source.long else trim(wav), LEVEL))
    if source.long or not out:
        return out
    gap = torch.zeros(int(GAP * SR))
    return [torch.cat([x for w in out for x in (w, gap)])]


def cut(wav: torch.Tensor, seconds: float, max_seconds: float) -> list[torch.Tensor]:
    """Clips of ``seconds``; at most ``max_seconds`` of them, evenly spaced; the last partial clip
    is kept zero-padded when it is at least half full."""
    n = int(seconds * SR)
    count = len(wav) // n + (1 if len(wav) % n >= n // 2 else 0)
    wav = torch.nn.functional.pad(wav, (0, max(0, count * n - len(wav))))
    keep = range(count)
    if max_seconds and count * seconds > max_seconds:
        k = max(1, int(max_seconds / seconds))
        keep = sorted({round(i * (count - 1) / max(1, k - 1)) for i in range(k)})
    clips = [wav[i * n : (i + 1) * n] for i in keep]
    return [c for c in clips if c.abs().max() >= SILENT]


def build(out: Path, args: argparse.Namespace) -> dict:
    rows: dict[str, list[dict]] = defaultdict(list)
    summary: dict = {}
    for source in SOURCES:
        if not source.root.is_dir():
            print(f"{source.name}: {source.root} not found, skipped (install {source.package})")
            continue
        groups = source.groups(source.root)
        if args.tiny:
            groups = {g: f[:3] for g, f in list(groups.items())[:4]}
            args.max_track_seconds, args.max_test_track_seconds = 8.0, 8.0
            if source.test_groups:
                groups.update({g: f[:3] for g, f in source.groups(source.root).items() if g in source.test_groups})
        names = sorted(groups)
        jobs = [(g, split_of(source, g, names)) for g in names]

        def work(job, source=source, groups=groups):
            group, split = job
            seconds = args.test_seconds if split == "test" else args.seconds
            limit = args.max_track_seconds if (source.long and split == "train") else 0
            limit = limit or (args.max_test_track_seconds if source.long else 0)
            clips = [c for s in stream(source, groups[group]) for c in cut(s, seconds, limit)]
            folder = out / source.name / group.replace(" ", "_")
            folder.mkdir(parents=True, exist_ok=True)
            made = []
            for k, clip in enumerate(clips):
                path = folder / f"{k:04d}.wav"
                save_audio(path, clip, SR)
                made.append(
                    {
                        "path": str(path.relative_to(out)),
                        "split": split,
                        "source": source.name,
                        "group": group,
                        "domain": source.domain,
                    }
                )
            return made

        made = [
            r
            for rs in run_jobs(
                work, jobs, jobs=args.jobs, desc=source.name, unit="group", progress=not args.no_progress
            )
            for r in rs
        ]
        rows[source.name] = made
        rows[source.domain].extend(made)
        stats = {}
        for split in ("train", "test"):
            n = sum(r["split"] == split for r in made)
            secs = n * (args.test_seconds if split == "test" else args.seconds)
            held = sorted({r["group"] for r in made if r["split"] == split})
            stats[split] = {"clips": n, "seconds": secs, "groups": held if split == "test" else len(held)}
        summary[source.name] = {"domain": source.domain, "licence": source.licence, "package": source.package, **stats}
        print(
            f"{source.name}: {stats['train']['clips']} train clips ({stats['train']['groups']} groups), "
            f"{stats['test']['clips']} test clips (held out: {', '.join(stats['test']['groups'])})"
        )
    for name, rs in rows.items():
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rs))
    # One manifest per held-out group (a speaker, a track): per-speaker scores with --compare.
    held: dict[str, list[dict]] = defaultdict(list)
    for r in (r for src in SOURCES for r in rows.get(src.name, []) if r["split"] == "test"):
        held[f"heldout-{r['source']}-{r['group']}".replace(" ", "_")].append(r)
    for name, rs in held.items():
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rs))
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="data/real")
    p.add_argument("--seconds", type=float, default=1.0, help="train clip length")
    p.add_argument("--test-seconds", type=float, default=4.0, help="held-out clip length")
    p.add_argument("--max-track-seconds", type=float, default=150.0, help="train audio per music track")
    p.add_argument("--max-test-track-seconds", type=float, default=40.0, help="held-out audio per track")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--tiny", action="store_true", help="a few files per source, for tests")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    summary = build(out, args)
    if not summary:
        print("no source found: install the packages listed in recipes/vocoder/README.md", file=sys.stderr)
        return 1
    total = sum(s["train"]["seconds"] + s["test"]["seconds"] for s in summary.values())
    print(f"{out}: {len(summary)} sources, {total / 60:.1f} min of audio in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
