"""End to end on the tones recipe: teacher then ECT student, both under torchrun with two
processes, then python -m cmaudio.generate at 1 and 2 steps; the generated pitch must match the
label (dominant frequency within a semitone) for at least 90% of the clips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

from cmaudio.evaluation.metrics import pitch_hits
from cmaudio.generate import main as generate

ROOT = Path(__file__).resolve().parents[1]
# The recipe, shortened for CI (about 40 s per stage on 2 cores instead of about a minute).
SHORT_TEACHER = ["net.channels=32", "run.steps=800", "run.sample_every=0", "run.save_every=400"]
SHORT_STUDENT = ["run.steps=500", "objective.ect.stage_steps=125", "run.sample_every=0", "run.save_every=250"]


def torchrun_train(recipe: str, out: Path, overrides: list[str]) -> None:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "cmaudio.train",
        str(ROOT / "recipes" / "tones" / recipe),
        "--out",
        str(out),
        "--no-progress",
        *[a for o in overrides for a in ("--set", o)],
    ]
    proc = subprocess.run(
        cmd, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.fixture(scope="session")
def tones_student(tmp_path_factory, recipe_module) -> Path:
    root = tmp_path_factory.mktemp("e2e")
    data = recipe_module("tones").build(root / "data", per_class=160, seed=0)
    torchrun_train("teacher.toml", root / "teacher", [f"data.root={data}", *SHORT_TEACHER])
    teacher = root / "teacher" / "model.safetensors"
    torchrun_train("student.toml", root / "student", [f"data.root={data}", f"teacher={teacher}", *SHORT_STUDENT])
    return root / "student" / "model.safetensors"


@pytest.mark.slow
@pytest.mark.parametrize("steps", [1, 2])
def test_generated_pitch_matches_label(tones_student, tmp_path, steps):
    out = tmp_path / f"steps{steps}"
    assert (
        generate(
            [
                "--model",
                str(tones_student),
                "--label",
                "220,330,440,660",
                "--n",
                "25",
                "--steps",
                str(steps),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    files = json.loads((out / "manifest.json").read_text())["files"]
    assert len(files) == 100 and all(f["steps"] == steps for f in files)
    wavs = torch.stack([torch.from_numpy(sf.read(out / f["file"], dtype="float32")[0]) for f in files])
    hits = pitch_hits(wavs, 16000, torch.tensor([float(f["label"]) for f in files]))
    assert float(hits.float().mean()) >= 0.9, f"{float(hits.float().mean()):.0%} within a semitone"
    assert float(wavs.abs().amax(-1).min()) > 1e-3  # nothing silent


@pytest.mark.slow
def test_long_audio_has_no_seams(tones_student):
    """A 6 s clip from a 0.5 s model: the spectral change across window joins is no larger than
    the change between any two frames inside a window."""
    from cmaudio.pipeline import Pipeline

    pipe = Pipeline.from_pretrained(tones_student, device="cpu")
    out = pipe.generate(labels=["220", "330", "440", "660"] * 2, steps=2, seed=0, duration=6.0)
    assert out.waveforms.shape[-1] >= int(5.9 * 16000)
    diff = (out.mels[..., 1:] - out.mels[..., :-1]).abs().mean(dim=(0, 1))  # [frames - 1]
    W = pipe.config.frames
    period = W - W // 2 - W // 8  # new frames per window (see Pipeline._long)
    first = W - W // 8 - W // 2  # where the first join starts
    joins = torch.cat([diff[s : s + W // 8] for s in range(first, diff.numel() - W // 8, period)])
    assert float(joins.max()) <= 1.5 * float(diff.median()), (float(joins.max()), float(diff.median()))
