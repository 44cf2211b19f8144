"""The training loop: exact resume, SIGKILL recovery, the non-finite guard, DDP and the run folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cmaudio.checkpoint import load_model, load_state
from cmaudio.config import load_config
from cmaudio.training import TrainingError, acoustic, drop_labels, run

ROOT = Path(__file__).resolve().parents[1]
TEACHER = ROOT / "recipes" / "tones" / "teacher.toml"
STUDENT = ROOT / "recipes" / "tones" / "student.toml"


def cfg_for(tones_data, tiny_overrides, *extra, recipe=TEACHER):
    return load_config(recipe, [f"data.root={tones_data}", *tiny_overrides, *extra])


def weights(path) -> dict[str, torch.Tensor]:
    return load_model(path).model.state_dict()


def test_run_folder_contents(tmp_path, tones_data, tiny_overrides):
    cfg = cfg_for(tones_data, tiny_overrides, "run.steps=6", "run.sample_every=6", "run.snapshot_every=3")
    res = run(cfg, tmp_path / "r", progress=False)
    names = {p.name for p in (tmp_path / "r").iterdir()}
    assert {
        "config.json",
        "log.jsonl",
        "model.safetensors",
        "state.pt",
        "samples",
        "model-0000003.safetensors",
        "model-0000006.safetensors",
    } <= names
    assert res.steps == 6 and load_model(tmp_path / "r" / "model.safetensors").step == 6
    recs = [json.loads(x) for x in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [2, 4, 6]
    assert {"loss", "grad_norm", "lr", "examples_per_s", "bad_steps"} <= set(recs[0])
    assert json.loads((tmp_path / "r" / "config.json").read_text())["run"]["seed"] == cfg.run.seed
    samples = {p.suffix for p in (tmp_path / "r" / "samples").iterdir()}
    assert samples == {".wav", ".png"}
    with pytest.raises(TrainingError, match="--resume"):
        run(cfg, tmp_path / "r", progress=False)


@pytest.mark.parametrize("objective", ["edm", "ect"])
def test_resume_is_exact(tmp_path, tones_data, tiny_overrides, objective):
    extra = ["run.save_every=10"]
    recipe = TEACHER
    if objective == "ect":
        teacher = tmp_path / "teacher"
        run(cfg_for(tones_data, tiny_overrides, "run.steps=4"), teacher, progress=False)
        extra += [f"teacher={teacher / 'model.safetensors'}", "objective.ect.stage_steps=5"]
        recipe = STUDENT
    straight = cfg_for(tones_data, tiny_overrides, "run.steps=20", *extra, recipe=recipe)
    run(straight, tmp_path / "a", progress=False)
    run(cfg_for(tones_data, tiny_overrides, "run.steps=10", *extra, recipe=recipe), tmp_path / "b", progress=False)
    run(straight, tmp_path / "b", resume=True, progress=False)
    wa, wb = weights(tmp_path / "a" / "model.safetensors"), weights(tmp_path / "b" / "model.safetensors")
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) <= 1e-6
    sa, sb = load_state(tmp_path / "a" / "state.pt"), load_state(tmp_path / "b" / "state.pt")
    assert all(torch.allclose(sa["model"][k], sb["model"][k], atol=1e-6) for k in sa["model"])
    steps = [json.loads(x)["step"] for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 20


def test_sigkill_then_resume(tmp_path, tones_data, tiny_overrides):
    out = tmp_path / "killed"
    args = [
        sys.executable,
        "-m",
        "cmaudio.train",
        str(TEACHER),
        "--out",
        str(out),
        "--no-progress",
        "--set",
        f"data.root={tones_data}",
        *[a for o in tiny_overrides for a in ("--set", o)],
        "--set",
        "run.save_every=3",
        "--set",
        "run.steps=100000",
    ]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if (out / "state.pt").exists() and load_state(out / "state.pt")["step"] >= 9:
                break
            time.sleep(0.2)
        else:
            pytest.fail("training did not reach step 9 in 60 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # Every file the killed run left behind loads.
    step = load_state(out / "state.pt")["step"]
    # The kill may fall between the two writes of one save: the model is then one save ahead.
    assert load_model(out / "model.safetensors").step in (step, step + 3)
    json.loads((out / "config.json").read_text())
    for line in (out / "log.jsonl").read_text().splitlines()[:-1]:
        json.loads(line)
    cfg = cfg_for(tones_data, tiny_overrides, "run.save_every=3", f"run.steps={step + 4}")
    res = run(cfg, out, resume=True, progress=False)
    assert res.steps == step + 4 and load_model(out / "model.safetensors").step == step + 4
    assert not list(out.glob(".*.tmp"))


def _poison(monkeypatch, bad_steps):
    real = acoustic.build_objective

    def build(*a, **kw):
        loss = real(*a, **kw)

        class Poisoned:
            target_decay = loss.target_decay

            def __call__(self, model, x, cond=None, *, step=0, target=None):
                out = loss(model, x, cond, step=step, target=target)
                return out * float("nan") if bad_steps(step) else out

        return Poisoned()

    monkeypatch.setattr(acoustic, "build_objective", build)


def test_nan_steps_are_skipped_and_counted(tmp_path, tones_data, tiny_overrides, monkeypatch):
    seen = set()

    def bad(step):  # poison the first attempt at steps 3 and 4, then let them through
        if step in (3, 4) and step not in seen:
            seen.add(step)
            return True
        return False

    _poison(monkeypatch, bad)
    res = run(cfg_for(tones_data, tiny_overrides, "run.steps=8"), tmp_path / "r", progress=False)
    assert res.bad_steps == 2 and res.steps == 8
    assert all(torch.isfinite(v).all() for v in weights(tmp_path / "r" / "model.safetensors").values())
    assert json.loads((tmp_path / "r" / "log.jsonl").read_text().splitlines()[-1])["bad_steps"] == 2


def test_persistent_nan_stops_with_a_message(tmp_path, tones_data, tiny_overrides, monkeypatch):
    _poison(monkeypatch, lambda step: step >= 4)
    cfg = cfg_for(tones_data, tiny_overrides, "run.steps=50", "run.save_every=2", "run.max_bad_steps=5")
    with pytest.raises(TrainingError, match="non-finite for 5 steps in a row at step 4"):
        run(cfg, tmp_path / "r", progress=False)
    mf = load_model(tmp_path / "r" / "model.safetensors")
    assert mf.step == 4 and all(torch.isfinite(v).all() for v in mf.model.state_dict().values())


def test_student_needs_a_teacher(tmp_path, tones_data, tiny_overrides):
    cfg = cfg_for(tones_data, tiny_overrides, "teacher=''", recipe=STUDENT)
    with pytest.raises(TrainingError, match="needs a teacher"):
        run(cfg, tmp_path / "r", progress=False)
    cfg = cfg_for(tones_data, tiny_overrides, f"teacher={tmp_path / 'missing.safetensors'}", recipe=STUDENT)
    with pytest.raises(TrainingError, match="no such model file"):
        run(cfg, tmp_path / "r", progress=False)


def test_train_cli_bad_input_exits_2(tmp_path, tones_data):
    from cmaudio.train import main

    assert main([str(TEACHER), "--set", "net.chanels=3", "--dry-run"]) == 2
    assert main([str(tmp_path / "nope.toml")]) == 2
    assert main([str(TEACHER), "--set", f"data.root={tmp_path / 'empty'}", "--out", str(tmp_path / "r")]) == 2


def torchrun(*args, nproc=2):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "cmaudio.train",
        *args,
        "--no-progress",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    return proc


def test_ddp_two_processes_end_with_identical_weights(tmp_path, tones_data, tiny_overrides):
    out = tmp_path / "ddp"
    torchrun(
        str(TEACHER),
        "--out",
        str(out),
        "--set",
        f"data.root={tones_data}",
        *[a for o in tiny_overrides for a in ("--set", o)],
        "--set",
        "run.steps=6",
    )
    st = load_state(out / "state.pt")
    assert len(st["rank_digests"]) == 2 and st["rank_digests"][0] == st["rank_digests"][1]
    assert len(st["rng"]) == 2 and st["step"] == 6


def test_label_dropout_all_null_rows_and_single_factors():
    # Two factors (e.g. pitch, family); null indices 49 and 12.
    n = 20000
    cond = torch.stack([torch.randint(0, 49, (n,)), torch.randint(0, 12, (n,))], 1)
    null = torch.tensor([[49, 12]]).expand(n, 2)
    torch.manual_seed(0)
    same = drop_labels(cond, null, 0.0, 0.0)
    assert torch.equal(same, cond)
    out = drop_labels(cond, null, 0.1, 0.0)
    is_null = out == null
    # label_dropout alone nulls whole rows, never one factor of a row.
    assert torch.equal(is_null[:, 0], is_null[:, 1])
    assert abs(is_null[:, 0].float().mean().item() - 0.1) < 0.01
    out = drop_labels(cond, null, 0.1, 0.15)
    is_null = out == null
    only_family = is_null[:, 1] & ~is_null[:, 0]  # "pitch given, family open": the label "60"
    only_pitch = is_null[:, 0] & ~is_null[:, 1]
    both = is_null.all(1)
    assert abs(only_family.float().mean().item() - 0.9 * 0.15 * 0.85) < 0.01
    assert abs(only_pitch.float().mean().item() - 0.9 * 0.15 * 0.85) < 0.01
    assert abs(both.float().mean().item() - (0.1 + 0.9 * 0.15**2)) < 0.01
    kept = ~is_null.any(1)
    assert torch.equal(out[kept], cond[kept])
    # One factor: factor_dropout has nothing to add to label_dropout's rows.
    one = cond[:, :1]
    torch.manual_seed(1)
    assert torch.equal(drop_labels(one, null[:, :1], 0.0, 0.5), one)


def test_ict_curriculum_never_moves_backwards_on_resume(tmp_path, tones_data, tiny_overrides):
    """Issue 14 (a): N(k) depended on run.steps, which a resume may raise; with s0 2, s1 16 a run
    of 4 steps is at N = 17 by step 3, and the same run resumed to 8 steps fell back to N = 9."""
    ict = ROOT / "recipes" / "tones" / "student_ict.toml"
    extra = ["objective.ict.s0=2", "objective.ict.s1=16", "run.log_every=1", "run.save_every=4", "net.dropout=0.0"]
    run(cfg_for(tones_data, tiny_overrides, "run.steps=4", *extra, recipe=ict), tmp_path / "r", progress=False)
    run(cfg_for(tones_data, tiny_overrides, "run.steps=8", *extra, recipe=ict), tmp_path / "r", resume=True,
        progress=False)
    levels = [json.loads(x)["N"] for x in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert len(levels) == 8 and levels == sorted(levels) and levels[-1] == 17
    assert load_state(tmp_path / "r" / "state.pt")["curriculum_steps"] == 4
