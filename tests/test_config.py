"""Typed configs: strict loading, overrides, round trips, every recipe resolves."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmaudio.config import (
    ConfigError,
    ModelConfig,
    NetConfig,
    TrainConfig,
    apply_overrides,
    from_dict,
    load_config,
    to_dict,
)

ROOT = Path(__file__).resolve().parents[1]


def test_round_trip():
    cfg = load_config(
        None,
        [
            "net.channels=48",
            "net.channel_mult=[1, 2]",
            "objective.kind='ict'",
            "precond.kind='consistency'",
            "data.root=/tmp/somewhere",
        ],
    )
    assert cfg.net.channels == 48 and cfg.net.channel_mult == (1, 2) and cfg.data.root == "/tmp/somewhere"
    assert from_dict(TrainConfig, to_dict(cfg)) == cfg


def test_model_config_round_trip():
    m = ModelConfig(cond_fields=("pitch", "family"), classes=(("60", "61"), ("a", "b", "c")), sigmas={"2": [80.0, 0.8]})
    assert from_dict(ModelConfig, to_dict(m)) == m and m.cond_sizes == (2, 3)


@pytest.mark.parametrize(
    "override, key",
    [
        ("net.chanels=3", "net.chanels"),
        ("nett.channels=3", "nett"),
        ("net.channels='wide'", "net.channels"),
        ("net.arch='unet3d'", "net.arch"),
        ("run.steps=0", "run.steps"),
        ("optim.lr=-1", "optim.lr"),
        ("net.channel_mult=[1, 'x']", "net.channel_mult[1]"),
        ("net.attention=3", "net.attention"),
        ("net.factor_dropout=1.0", "net.factor_dropout"),
    ],
)
def test_bad_keys_and_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert str(e.value).startswith(key), str(e.value)


def test_objective_and_precond_must_agree():
    with pytest.raises(ConfigError, match="precond.kind"):
        load_config(None, ["objective.kind='ect'"])


def test_override_parsing():
    d = apply_overrides({"a": {"b": 1}}, ["a.b=2.5", "a.c=true", "d=hello", "e=[1,2]"])
    assert d == {"a": {"b": 2.5, "c": True}, "d": "hello", "e": [1, 2]}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["novalue"])


def test_toml_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such config"):
        load_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[net\nchannels = 3")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad)


def test_int_accepts_integral_float_only():
    assert from_dict(NetConfig, {"channels": 64.0}).channels == 64
    with pytest.raises(ConfigError, match="net.channels|channels"):
        from_dict(NetConfig, {"channels": 64.5})


RECIPES = sorted(p for p in (ROOT / "recipes").rglob("*.toml"))


@pytest.mark.parametrize("path", RECIPES, ids=[str(p.relative_to(ROOT)) for p in RECIPES])
def test_every_recipe_resolves_with_dry_run(path, capsys):
    import json

    if path.parent.name == "vocoder":  # vocoder recipes have their own training CLI
        from cmaudio.vocoder.train import main
    else:
        from cmaudio.train import main

    assert main([str(path), "--dry-run"]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["name"] and ("objective" in resolved or resolved.get("task") == "classifier" or "loss" in resolved)


def test_old_flat_objective_keys_load_into_their_sections(caplog):
    """Recipes, run configs and states written before the per-objective sections still load."""
    import logging

    old = {"kind": "ect", "ect_q": 4.0, "ect_stage_steps": 300, "rho": 5.0, "s0": 2, "guidance": 3.0, "P_std": 1.1}
    with caplog.at_level(logging.INFO, logger="cmaudio"):
        cfg = load_config(None, ["precond.kind='consistency'", *(f"objective.{k}={v!r}" for k, v in old.items())])
    o = cfg.objective
    assert (o.ect.q, o.ect.stage_steps, o.cd.rho, o.ict.rho, o.ict.s0, o.cd.guidance, o.edm.P_std) == (
        4.0,
        300,
        5.0,
        5.0,
        2,
        3.0,
        1.1,
    )
    assert "old flat keys" in caplog.text and "ect_q -> ect.q" in caplog.text
    new = load_config(None, ["precond.kind='consistency'", "objective.kind='ect'", "objective.ect.q=4.0"])
    assert new.objective.ect.q == 4.0 and "ect_q" not in to_dict(new)["objective"]
    with pytest.raises(ConfigError, match="objective.ect.q"):
        load_config(None, ["objective.ect.q=1.0"])


def test_a_state_of_the_old_layout_resumes_under_the_new_one(tmp_path):
    """check_resumable reads the saved config through the config class: the flat keys and the
    dropped data.num_workers of an older state.pt compare equal to today's sections."""
    from cmaudio.errors import TrainingError
    from cmaudio.training.harness import check_resumable

    cfg = load_config(None, ["precond.kind='consistency'", "objective.kind='ect'", "objective.ect.stage_steps=5"])
    saved = to_dict(cfg)
    saved["objective"] = {"kind": "ect", "distance": "pseudo_huber", "huber_c": 0.00054, "ect_stage_steps": 5}
    saved["data"] = {**saved["data"], "num_workers": 0}
    check_resumable(saved, cfg, tmp_path / "state.pt", ("steps",))
    saved["objective"]["ect_stage_steps"] = 6
    with pytest.raises(TrainingError, match=r"different \[objective\]"):
        check_resumable(saved, cfg, tmp_path / "state.pt", ("steps",))
