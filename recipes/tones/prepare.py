"""Build the tones data set: four classes named by frequency in Hz ("220", "330", "440", "660"),
harmonic tones with random phases, harmonic amplitudes, level and envelope over a faint noise
floor, 0.5 s at 16 kHz.

Layout (SC09 style): OUT/<label>/<label>_<k>.wav plus validation_list.txt and testing_list.txt.

    python recipes/tones/prepare.py --out data/tones [--per-class 160] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf

LABELS = ("220", "330", "440", "660")
SAMPLE_RATE = 16000
SECONDS = 0.5


def tone(f0: float, rng: np.random.Generator, sr: int = SAMPLE_RATE, seconds: float = SECONDS) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    n_harm = int(rng.integers(1, 6))
    tilt = rng.uniform(0.3, 1.0)  # amplitude ratio between successive harmonics
    wav = np.zeros_like(t)
    for h in range(1, n_harm + 1):
        if h * f0 < sr / 2 - 500:
            wav += tilt ** (h - 1) * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi))
    attack = rng.uniform(0.005, 0.05)
    decay = rng.uniform(0.5, 6.0)  # 1/s
    env = np.minimum(t / attack, 1.0) * np.exp(-decay * t)
    env *= np.minimum(1.0, (seconds - t) / 0.01)  # 10 ms fade-out, no click at the end
    wav *= env
    level = 10 ** (rng.uniform(-20, -3) / 20)
    wav = wav / np.abs(wav).max() * level
    # A faint noise floor (about 60 dB below the tone), as any recording has: without it most mel
    # bins sit exactly at the log clamp, a degenerate target that diffusion models fit poorly.
    wav += rng.standard_normal(wav.shape) * level * 10 ** (-60 / 20)
    return wav.astype(np.float32)


def build(out: str | Path, per_class: int = 160, seed: int = 0, valid: float = 0.1, test: float = 0.1) -> Path:
    out = Path(out)
    rng = np.random.default_rng(seed)
    n_valid, n_test = int(per_class * valid), int(per_class * test)
    lists: dict[str, list[str]] = {"validation_list.txt": [], "testing_list.txt": []}
    for label in LABELS:
        (out / label).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            rel = f"{label}/{label}_{k:04d}.wav"
            sf.write(out / rel, tone(float(label), rng), SAMPLE_RATE, subtype="PCM_16")
            if k < n_valid:
                lists["validation_list.txt"].append(rel)
            elif k < n_valid + n_test:
                lists["testing_list.txt"].append(rel)
    for name, rows in lists.items():
        (out / name).write_text("".join(r + "\n" for r in rows))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="data/tones")
    p.add_argument("--per-class", type=int, default=160)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    out = build(a.out, a.per_class, a.seed)
    print(f"wrote {a.per_class * len(LABELS)} clips of {SECONDS} s to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
