"""python -m cmaudio.fit: a folder of recordings to a model, on tiny fixture folders written here.

The full runs use budgets of a fraction of a minute (a small network, tens of steps): they check
the stages, the files, resume and refusals, not quality."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cmaudio.fit import main as fit_main

ROOT = Path(__file__).resolve().parents[1]


def chirp(freq: float, seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * (1 + 0.3 * t) * t) * np.hanning(len(t))).astype(np.float32)


def folder_set(root: Path, labels=("low", "high"), per_label=15) -> Path:
    """per_label short recordings per label in sub-folders, at three sample rates, one stereo."""
    for j, label in enumerate(labels):
        for k in range(per_label):
            sr = (16000, 22050, 44100)[k % 3]
            x = chirp(220 * (j + 1) * (1 + 0.02 * k), 0.3 + 0.02 * k, sr)
            (root / label).mkdir(parents=True, exist_ok=True)
            sf.write(root / label / f"{label}_{k}.wav", np.stack([x, x], 1) if k == 0 else x, sr)
    return root


def listing(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*")}


def run_fit(*args) -> int:
    return fit_main([*map(str, args), "--no-progress"])


def test_fit_sub_folders_end_to_end(tmp_path, capsys, monkeypatch):
    import cmaudio.fitting.plan as plan_module

    monkeypatch.setattr(plan_module, "CHECK_MIN", 2)  # the teacher's few steps check their plan at step 2
    data = folder_set(tmp_path / "data")
    before = listing(data)
    out = tmp_path / "run"
    assert run_fit(data, "--out", out, "--minutes", "0.3") == 0
    err = capsys.readouterr().err
    assert "labels (folders, 2): high: 15, low: 15" in err and "python -m cmaudio.generate --model" in err
    assert {"plan.json", "model.safetensors", "eval", "done", "data"} <= {p.name for p in out.iterdir()}
    plan = json.loads((out / "plan.json").read_text())
    assert plan["labels"] == ["high", "low"] and plan["steps"]["teacher"] >= 5
    assert (out / "eval" / "report.md").is_file() and (out / "eval" / "spectrograms.png").is_file()
    assert listing(data) == before  # nothing written outside --out
    # the fixed-work stages' estimates (their calls at the probe's per-clip costs) covered them
    took = {s: json.loads((out / "done" / s).read_text())["seconds"] for s in ("sigmas", "evaluate")}
    assert all(took[s] <= plan["budget_seconds"][s] for s in took), (took, plan["budget_seconds"])
    assert set(plan["seconds_per_clip"]) == {"call", "vocoded"}

    from cmaudio.checkpoint import load_model
    from cmaudio.generate import main as generate

    # the teacher checked its plan after its first steps and trained the revised count
    revised = plan["revised"]["teacher"]
    first, last = revised["checks"][0], revised["checks"][-1]
    assert first["at"] == 2 and revised["planned"] >= 5 and first["seconds_per_step"] > 0
    assert [c["at"] for c in revised["checks"]] == sorted({c["at"] for c in revised["checks"]})
    assert load_model(out / "teacher" / "model.safetensors").step == plan["steps"]["teacher"] == last["steps"]
    assert "teacher: " in err and f"steps planned, now {last['steps']}" in err
    mf = load_model(out / "model.safetensors")
    assert mf.config.classes == (("high", "low"),) and {"2", "4"} <= set(mf.config.sigmas)
    assert (
        generate(
            ["--model", str(out / "model.safetensors"), "--label", "high", "--out", str(tmp_path / "g"), "--quiet"]
        )
        == 0
    )
    # the same command again: complete; other flags: refused, and nothing changes
    assert run_fit(data, "--out", out, "--minutes", "0.3") == 0
    assert "this fit is complete" in capsys.readouterr().err
    assert run_fit(data, "--out", out, "--minutes", "0.4") == 2
    assert "holds a fit of other data or flags" in capsys.readouterr().err


def test_labels_from_file_names_and_patterns(tmp_path, capsys):
    data = tmp_path / "digits"
    data.mkdir()
    for d in range(3):
        for k in range(8):
            sf.write(data / f"{d}_speaker_{k}.wav", chirp(300 + 100 * d, 0.4, 8000), 8000)
    out = tmp_path / "run"
    assert run_fit(data, "--out", out, "--labels", "filename", "--dry-run") == 0
    err = capsys.readouterr().err
    assert "labels (filename, 3): 0: 8, 1: 8, 2: 8" in err and "plan: " in err
    assert not out.exists()  # a dry run writes nothing
    assert run_fit(data, "--out", out, "--labels", "filename", "--label-pattern", r"_(\w+)_", "--dry-run") == 2
    assert "only one label (speaker)" in capsys.readouterr().err
    assert run_fit(data, "--out", out, "--labels", "filename", "--label-pattern", "^x(\\d)", "--dry-run") == 2
    assert "matches no file name" in capsys.readouterr().err


def test_no_labels_and_a_long_recording(tmp_path, capsys):
    """A flat folder is unconditional; a two-hour recording (tones between long silences, FLAC) is
    cut into windows, the silent ones dropped, and its last stretch held out."""
    data = tmp_path / "field"
    data.mkdir()
    sr = 8000
    with sf.SoundFile(data / "two_hours.flac", "w", sr, 1, "PCM_16") as fh:
        for minute in range(120):
            block = np.zeros(60 * sr, np.float32)
            block[: 20 * sr] = np.tile(chirp(200 + minute, 1.0, sr), 20)
            fh.write(block)
    assert run_fit(data, "--out", tmp_path / "run", "--seconds", "2", "--dry-run") == 0
    err = capsys.readouterr().err
    assert "labels: none" in err
    assert "found 1 usable files -> 1200 clips of 2 s (set by --seconds)" in err


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda d: None, "no audio files found"),
        (lambda d: [(d / f"x{i}.wav").write_bytes(b"RIFF junk") for i in range(25)], "0 usable clips (25 files"),
        (lambda d: folder_set(d, labels=("only",), per_label=25), "only one label (only)"),
        (lambda d: [sf.write(d / f"{i}_a.wav", chirp(300, 0.5, 16000), 16000) for i in range(5)], "5 usable clips"),
    ],
    ids=["empty", "corrupt", "one-label", "five-files"],
)
def test_bad_folders_are_one_line_errors(tmp_path, capsys, make, needle):
    data = tmp_path / "data"
    data.mkdir()
    make(data)
    labels = "folders" if "one label" in needle else "auto"
    assert run_fit(data, "--out", tmp_path / "run", "--labels", labels) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert needle in err[-1] and err[-1].startswith("cmaudio.fit: error:")
    assert not (tmp_path / "run").exists()


def test_an_out_folder_with_something_else_is_refused(tmp_path, capsys):
    data = folder_set(tmp_path / "data")
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert run_fit(data, "--out", out) == 2
    assert "already holds something that is not a fit" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_a_killed_fit_continues_where_it_stopped(tmp_path):
    data = folder_set(tmp_path / "data")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "cmaudio.fit", str(data), "--out", str(out), "--minutes", "0.4", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 900  # the plan's probe trains a few short runs first: slow on a loaded CPU
    while not (out / "teacher" / "state.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the fit ended before its teacher's first checkpoint"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "plan.json").is_file() and not (out / "done" / "student").exists()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "continuing the fit started" in done.stderr and (out / "model.safetensors").is_file()
    plan = json.loads((out / "plan.json").read_text())
    from cmaudio.checkpoint import load_model

    teacher = load_model(out / "teacher" / "model.safetensors")
    assert teacher.step == plan["steps"]["teacher"]
    # the plan records the network, and the resumed teacher trained that one (0.4 min: the small net)
    assert "net.channels=32" in plan["net"] and teacher.config.net.channels == 32
    # a plan written before plans recorded the network reads back with the one that version trained
    from cmaudio.fitting.plan import Plan

    (out / "plan.json").write_text(json.dumps({k: v for k, v in plan.items() if k != "net"}))
    assert Plan.load(out / "plan.json").net == plan["net"]


def test_fit_from_a_model_tunes_it_and_extends_its_labels(tmp_path, capsys, tones_data, tiny_overrides):
    from cmaudio.checkpoint import load_model
    from cmaudio.config import load_config
    from cmaudio.training import run

    tones = ROOT / "recipes" / "tones"
    base = [f"data.root={tones_data}", *tiny_overrides]
    run(load_config(tones / "teacher.toml", [*base, "run.steps=4"]), tmp_path / "t", progress=False)
    teacher = tmp_path / "t" / "model.safetensors"
    run(
        load_config(tones / "student.toml", [*base, "run.steps=2", f"teacher={teacher}"]),
        tmp_path / "s",
        progress=False,
    )
    src = load_model(tmp_path / "s" / "model.safetensors")
    data = folder_set(tmp_path / "data")
    out = tmp_path / "run"
    assert run_fit(data, "--out", out, "--minutes", "0.3", "--from", tmp_path / "s" / "model.safetensors") == 0
    err = capsys.readouterr().err
    assert "no teacher; consistency tuning of" in err and "the model it starts from" in err
    plan = json.loads((out / "plan.json").read_text())
    assert plan["steps"]["teacher"] == 0 and plan["steps"]["student"] >= 5 and not (out / "teacher").exists()
    mf = load_model(out / "model.safetensors")
    assert mf.config.classes == ((*src.config.classes[0], "high", "low"),)
    assert mf.config.frames == src.config.frames and mf.config.mel == src.config.mel
    # a teacher or a missing file is refused in one line
    assert run_fit(data, "--out", tmp_path / "r2", "--from", teacher) == 2
    assert "consistency model" in capsys.readouterr().err
    assert run_fit(data, "--out", tmp_path / "r3", "--from", tmp_path / "nope.safetensors") == 2
    assert "--from" in capsys.readouterr().err and not (tmp_path / "r3").exists()


def test_the_budget_pays_the_fixed_work_first_and_trains_with_the_rest():
    from cmaudio.fitting.plan import fixed_seconds, share_budget

    # FSDD's 64-clip slices at the probe's costs there: measured 23-29 s and 7.5-9 s
    fixed = {"sigmas": fixed_seconds(6656, 0, 0.0037, 0.0047), "evaluate": fixed_seconds(471, 267, 0.0037, 0.0047)}
    assert 29 < fixed["sigmas"] < 45 and 9 < fixed["evaluate"] < 15
    b = share_budget(2100.0, fixed, teacher=True)
    assert {k: b[k] for k in fixed} == fixed and sum(b.values()) == pytest.approx(2100)
    assert b["teacher"] == pytest.approx(2 * b["student"])
    b = share_budget(2100.0, fixed, teacher=False)
    assert b["teacher"] == 0 and b["student"] == pytest.approx(2100 - sum(fixed.values()))
    assert share_budget(30.0, fixed, teacher=True)["student"] == 0  # less than the fixed work: no training time


def test_a_stage_revises_its_steps_from_the_seconds_its_first_steps_took():
    from cmaudio.fitting.plan import REVISED_SAFETY, FitError, check_step, revise_steps

    rows = [{"step": s, "elapsed_s": e} for s, e in ((20, 10.0), (40, 18.0), (60, 26.0), (80, 34.0))]
    # 0.4 s a step over steps 40-80 (the slower first 20 left out); REVISED_SAFETY x 100 s - 34 s left
    steps, per_step = revise_steps(rows, budget=100.0)
    assert per_step == pytest.approx(0.4) and steps == 80 + int((REVISED_SAFETY * 100 - 34) / 0.4)
    assert revise_steps(rows[:1], budget=100.0) == (20 + int((REVISED_SAFETY * 100 - 10) / 0.5), 0.5)
    assert revise_steps(rows, budget=20.0)[0] == 80  # over budget already: stop where it is
    assert revise_steps(rows[:1], budget=1.0)[0] == 20 and revise_steps([{"step": 2, "elapsed_s": 9.0}], 1.0)[0] == 5
    with pytest.raises(FitError, match="empty"):
        revise_steps([], budget=10.0)
    assert check_step(8000, 0.1) == 800 and check_step(8000, 0.5) == 4000 and check_step(30, 0.1) == 20


def test_a_plan_from_before_the_network_was_recorded_keeps_its_network(tmp_path):
    """Plans without "net" were written when a fit's large teacher was x1/2/2: a rerun resumes
    that teacher's state.pt only with that network, not today's x2/2/2."""
    from cmaudio.fitting.plan import Plan, net_overrides

    plan = Plan("fp", {"minutes": 60.0, "source": ""}, 0.75, "why", ["a", "b"], {}, {}, {}, {}, {})
    plan.net = net_overrides(True, 60.0)
    plan.save(tmp_path / "plan.json")
    assert Plan.load(tmp_path / "plan.json").net == plan.net and "net.channel_mult=[2, 2, 2]" in plan.net
    assert "net.freq_channels=16" in plan.net
    old = {k: v for k, v in json.loads((tmp_path / "plan.json").read_text()).items() if k != "net"}
    (tmp_path / "plan.json").write_text(json.dumps(old))
    legacy = Plan.load(tmp_path / "plan.json").net
    assert "net.channel_mult=[1, 2, 2]" in legacy and not any("freq_channels" in o for o in legacy)
