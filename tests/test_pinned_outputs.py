"""What `python -m cmaudio.generate` writes for fixed seeds, pinned per bundled model and vocoder.

Refactoring must not move the audio; work that changes it on purpose (a new bundled vocoder, a
sampler fix) re-pins in the same commit (`python tests/test_pinned_outputs.py`, or with model
names: those only) and says why in the commit message.

Exact digests of the 16-bit PCM pinned this until 2026-12-02, when a machine with AVX-512 moved
every one of them (the same machine with kernels held to AVX2, `ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2`, still gave the old digests): its kernels
round differently, and a last-bit change flips 16-bit samples. So each entry is compared within
what such rounding moves, measured here (2026-12-02) against AVX2 kernels, two threads and oneDNN
off:
- through the neural vocoder at most 1 LSB per sample moved, so the written samples (every
  STRIDE-th) must stay within SAMPLE_LSB;
- Griffin-Lim's 32 iterations amplify the same rounding into phase (up to 1,010 LSB on a drum
  hit), while the spectrum stays put: the mean absolute difference of the clips' pooled log-mel
  moved at most 0.027, so it must stay within LOGMEL_MEAN. Real changes move far more: the
  refined vocoder-16k-hq instead of vocoder-16k 0.08 to 0.19, 3 steps instead of 2 0.6 to 1.1.
Computed with one torch thread, as the reference was.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from cmaudio.audio import mel_spectrogram
from cmaudio.config import MelConfig
from cmaudio.generate import main as generate

REFERENCE = Path(__file__).parent / "data" / "pinned_outputs.json"
LABELS = {"digits": "seven,zero", "digits-real": "7,0", "notes": "60,45:bass", "drums": "kick,hihat"}
VOCODERS = ("vocoder-16k", "griffinlim")
STRIDE = 31  # samples kept per clip for the sample check: a prime, so no hop-periodic pattern hides
SAMPLE_LSB = 4
LOGMEL_MEAN = 0.06
# Which fingerprint pins which vocoder, and how far it may move (see the module doc).
CHECK = {"vocoder-16k": "samples", "griffinlim": "logmel"}
TOLERANCE = {"samples": SAMPLE_LSB, "logmel": LOGMEL_MEAN}


def render(model: str, vocoder: str, out: Path, steps: int = 2) -> dict[str, np.ndarray]:
    """The clips `generate` writes for the pinned arguments, as int16 arrays by file name."""
    args = ["--model", model, "--vocoder", vocoder, "--label", LABELS[model], "--seed", "0", "--steps", str(steps)]
    assert generate([*args, "--device", "cpu", "--out", str(out), "--quiet"]) == 0
    return {p.name: sf.read(str(p), dtype="int16")[0] for p in sorted(out.glob("*.wav"))}


def pooled_logmel(pcm: np.ndarray) -> np.ndarray:
    """Log-mel of a clip averaged over pairs of bands and groups of four frames."""
    x = mel_spectrogram(torch.from_numpy(pcm.astype(np.float32) / 32768), MelConfig()).numpy()
    bands, frames = x.shape[0] // 2 * 2, x.shape[1] // 4 * 4
    return x[:bands, :frames].reshape(bands // 2, 2, frames // 4, 4).mean((1, 3))


def fingerprint(kind: str, clips: dict[str, np.ndarray]) -> dict:
    def values(pcm: np.ndarray) -> list:
        return pcm[::STRIDE].tolist() if kind == "samples" else np.round(pooled_logmel(pcm), 3).tolist()

    return {name: {"length": len(pcm), kind: values(pcm)} for name, pcm in clips.items()}


def distance(kind: str, got: dict, want: dict) -> float:
    """Largest sample difference in LSB, or the largest per-clip mean log-mel difference."""
    worst = 0.0
    for name in want:
        diff = np.abs(np.asarray(got[name][kind], dtype=np.float64) - np.asarray(want[name][kind]))
        worst = max(worst, float(diff.max() if kind == "samples" else diff.mean()))
    return worst


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("model", sorted(LABELS))
@pytest.mark.parametrize("vocoder", VOCODERS)
def test_generate_output_is_pinned(model, vocoder, tmp_path, one_thread):
    kind = CHECK[vocoder]
    want = json.loads(REFERENCE.read_text())[f"{model}/{vocoder}"]
    got = fingerprint(kind, render(model, vocoder, tmp_path))
    assert sorted(got) == sorted(want), "the written file names changed"
    assert [got[n]["length"] for n in sorted(got)] == [want[n]["length"] for n in sorted(want)]
    assert distance(kind, got, want) <= TOLERANCE[kind]


def test_the_check_sees_a_real_change(tmp_path, one_thread):
    """The tolerances are below what a real change moves: the refined vocoder in place of the
    plain one fails the sample check, 3 steps in place of 2 the log-mel check."""
    want = json.loads(REFERENCE.read_text())
    hq = fingerprint("samples", render("digits", "vocoder-16k-hq", tmp_path / "hq"))
    assert distance("samples", hq, want["digits/vocoder-16k"]) > SAMPLE_LSB
    s3 = fingerprint("logmel", render("notes", "griffinlim", tmp_path / "s3", steps=3))
    assert distance("logmel", s3, want["notes/griffinlim"]) > LOGMEL_MEAN


if __name__ == "__main__":  # re-pin: python tests/test_pinned_outputs.py [MODEL ...] (default: all)
    torch.set_num_threads(1)
    only = sys.argv[1:] or sorted(LABELS)
    unknown = sorted(set(only) - set(LABELS))
    if unknown:
        raise SystemExit(f"unknown model {unknown[0]!r}: pinned are {', '.join(sorted(LABELS))}")
    pinned = json.loads(REFERENCE.read_text()) if REFERENCE.is_file() else {}
    for model in only:
        for vocoder in VOCODERS:
            with tempfile.TemporaryDirectory() as tmp:
                pinned[f"{model}/{vocoder}"] = fingerprint(CHECK[vocoder], render(model, vocoder, Path(tmp)))
    REFERENCE.write_text(json.dumps(pinned, separators=(",", ":")) + "\n")
    print(f"re-pinned {', '.join(only)} ({len(pinned)} entries in all) -> {REFERENCE}", file=sys.stderr)
