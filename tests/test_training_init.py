"""Starting a run from a model file (``init``, what ``cmaudio.fit --from`` uses): weights and
front end kept, the data's new labels appended to the label tables, nothing loaded partially."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from cmaudio.checkpoint import load_model, load_state
from cmaudio.config import load_config
from cmaudio.training import TrainingError, run
from cmaudio.training.start import extend_classes, extended_state, remap_labels

ROOT = Path(__file__).resolve().parents[1]
TEACHER = ROOT / "recipes" / "tones" / "teacher.toml"
STUDENT = ROOT / "recipes" / "tones" / "student.toml"


def test_extend_and_remap_labels():
    classes = extend_classes((("a", "b"),), (("b", "c"),))
    assert classes == (("a", "b", "c"),)
    assert remap_labels(torch.tensor([[0], [1], [0]]), (("b", "c"),), classes).tolist() == [[1], [2], [1]]
    with pytest.raises(TrainingError, match="label fields"):
        extend_classes((("a",), ("x",)), (("a",),))


def test_new_labels_are_assigned_one_to_one_before_any_source_label_repeats():
    from cmaudio.training.start import assign_labels

    # Source label 0 is every new label's own minimum ("nine" on real speech); the least total
    # cost gives each source label once, then starts over for the labels left.
    cost = torch.tensor([[1.0, 1.5, 2.0], [0.9, 1.0, 3.0], [0.8, 2.0, 1.1], [0.7, 0.9, 0.95]])
    assert cost.argmin(1).tolist() == [0, 0, 0, 0]
    assert assign_labels(cost[:3]) == [0, 1, 2]  # total 3.1: each new label its own source label
    # Four new labels, three source labels: rows 1-3 take the three at total 2.75, then row 0 its best.
    assert assign_labels(cost) == [0, 1, 0, 2]


def test_extended_state_keeps_rows_and_refuses_other_shapes():
    old = {"emb.classes.0.weight": torch.arange(6.0).reshape(3, 2), "w": torch.ones(2)}  # 2 classes + null
    model = torch.nn.Module()
    model.emb = torch.nn.Module()
    model.emb.classes = torch.nn.ModuleList([torch.nn.Embedding(5, 2)])  # 4 classes + null
    model.w = torch.nn.Parameter(torch.zeros(2))
    new = extended_state(old, model)["emb.classes.0.weight"]
    assert new[:2].tolist() == old["emb.classes.0.weight"][:2].tolist()
    assert all(row.tolist() == [4.0, 5.0] for row in new[2:])  # new rows and the null row = old null
    model.w = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(TrainingError, match="differs at w"):
        extended_state(old, model)


def test_ect_from_a_student_with_new_labels(tmp_path, tones_data, tiny_overrides, capsys):
    teacher = tmp_path / "teacher"
    run(load_config(TEACHER, [f"data.root={tones_data}", *tiny_overrides, "run.steps=4"]), teacher, progress=False)
    student = tmp_path / "student"
    cd = [f"data.root={tones_data}", *tiny_overrides, "run.steps=2", f"teacher={teacher / 'model.safetensors'}"]
    run(load_config(STUDENT, cd), student, progress=False)
    src = load_model(student / "model.safetensors")
    # New data: two of the classes, and one the student never saw.
    data = tmp_path / "new"
    shutil.copytree(tones_data / "220", data / "220")
    shutil.copytree(tones_data / "440", data / "110")
    tune = [
        f"data.root={data}",
        *tiny_overrides,
        "run.steps=3",
        "objective.kind='ect'",
        "objective.ect.start_stage=4",
        "optim.label_lr_scale=20",
        f"init={student / 'model.safetensors'}",
        f"net.channels={src.config.net.channels + 8}",  # ignored: the network is the init's
    ]
    out = tmp_path / "tuned"
    run(load_config(STUDENT, tune), out, progress=False)
    assert "110 <- 440" in capsys.readouterr().out  # the new label's clips are the 440 Hz tones
    mf = load_model(out / "model.safetensors")
    assert mf.config.classes[0] == (*src.config.classes[0], "110")
    assert mf.config.net.channels == src.config.net.channels and mf.config.mel == src.config.mel
    assert mf.config.stats == src.config.stats
    before, after = src.model.state_dict(), mf.model.state_dict()
    moved = max((after[k].float() - v.float()).abs().max().item() for k, v in before.items() if "classes" not in k)
    assert moved < 0.02  # three small steps from the student's weights, not a fresh network
    table = next(k for k in after if k.endswith("classes.0.weight"))
    assert torch.allclose(after[table][:-2], before[table][:-1], atol=0.02)
    # the new label started as the source row (or the null row) that denoised its clips best
    assert any(torch.allclose(after[table][-2], row, atol=0.02) for row in before[table])
    groups = load_state(out / "state.pt")["optimizer"]["param_groups"]
    assert groups[1]["lr"] == pytest.approx(20 * groups[0]["lr"]) and groups[0]["lr"] > 0
    log = (out / "log.jsonl").read_text()
    assert '"stage": 4' in log
    with pytest.raises(TrainingError, match="init"):
        run(load_config(STUDENT, [*tune[:-2], f"init={tmp_path / 'none.safetensors'}"]), tmp_path / "x", progress=False)


def test_label_tables_get_their_own_learning_rate(tones_data, tiny_overrides):
    from test_pipeline import make_model

    from cmaudio.precond import Denoiser
    from cmaudio.training.acoustic import make_optimizer
    from cmaudio.training.start import LABEL_TABLE

    model = load_model(make_model(Path(tones_data).parent / "lr-model.safetensors")).model
    plain = make_optimizer(load_config(TEACHER, tiny_overrides), model)
    assert len(plain.param_groups) == 1
    opt = make_optimizer(load_config(TEACHER, [*tiny_overrides, "optim.label_lr_scale=20"]), model)
    tables = {id(p) for n, p in model.named_parameters() if LABEL_TABLE.search(n)}
    assert tables and {id(p) for p in opt.param_groups[1]["params"]} == tables
    assert opt.param_groups[1]["lr_scale"] == 20 and len(opt.param_groups[0]["params"]) + len(tables) == len(
        list(model.parameters())
    )
    assert isinstance(model, Denoiser)
