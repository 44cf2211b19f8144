"""Real spoken digits: lay out the Free Spoken Digit Dataset (../shared/data/fsdd, 4 speakers,
8 kHz, CC BY-SA 4.0) for the digits-real model, its classifier and the new-voice rehearsal.

    OUT/train/              the recordings of every speaker but the held-out one, as the data set
                            names them ({digit}_{speaker}_{index}.wav): what cmaudio.fit trains on
                            with --labels filename (labels "0".."9")
    OUT/speaker-<name>/     every recording of the held-out speaker (HELD_OUT, never trained on):
                            where new-voice claims are measured
    OUT/classifier/<digit>/ all four speakers in SC09 layout for the classifier, with the data
                            set's own convention: indexes 0-4 in testing_list.txt, 5-9 in
                            validation_list.txt, 10-49 train

Files are copied as they are (8 kHz; cmaudio resamples on reading). The held-out speaker is the
one the vocoder corpus holds out too (recipes/vocoder/prepare_real.py), so no model of the
project has heard that voice.

    python recipes/fsdd/prepare.py --out data/fsdd [--fsdd ../shared/data/fsdd/recordings]
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

FSDD = Path(__file__).resolve().parents[3] / "shared" / "data" / "fsdd" / "recordings"
HELD_OUT = "yweweler"
NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


def build(out: Path, fsdd: Path, held_out: str = HELD_OUT) -> Counter:
    if not fsdd.is_dir():
        raise SystemExit(f"{fsdd}: not found (the FSDD recordings; see ../shared/data/fsdd/README.md)")
    files = sorted(p for p in fsdd.iterdir() if NAME.match(p.name))
    if not files:
        raise SystemExit(f"{fsdd}: no files named like 7_jackson_32.wav")
    for sub in ("train", f"speaker-{held_out}", "classifier"):
        shutil.rmtree(out / sub, ignore_errors=True)
    lists: dict[str, list[str]] = {"testing_list.txt": [], "validation_list.txt": []}
    counts: Counter = Counter()
    for p in files:
        digit, speaker, index = NAME.match(p.name).groups()
        side = f"speaker-{held_out}" if speaker == held_out else "train"
        (out / side).mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, out / side / p.name)
        rel = f"{digit}/{p.name}"
        (out / "classifier" / digit).mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, out / "classifier" / rel)
        if int(index) < 5:
            lists["testing_list.txt"].append(rel)
        elif int(index) < 10:
            lists["validation_list.txt"].append(rel)
        counts[side] += 1
    for name, rows in lists.items():
        (out / "classifier" / name).write_text("".join(r + "\n" for r in rows))
    counts["classifier test"], counts["classifier valid"] = (
        len(lists["testing_list.txt"]),
        len(lists["validation_list.txt"]),
    )
    return counts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="data/fsdd")
    p.add_argument("--fsdd", default=str(FSDD), help="the folder of FSDD recordings")
    p.add_argument("--held-out", default=HELD_OUT, help="the speaker no model trains on")
    a = p.parse_args(argv)
    counts = build(Path(a.out), Path(a.fsdd), a.held_out)
    print(f"fsdd: {', '.join(f'{k} {v}' for k, v in counts.items())} -> {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
