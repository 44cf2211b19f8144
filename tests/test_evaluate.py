"""Recipe classifiers, sigma search and python -m cmaudio.evaluate on tiny models and data."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from test_pipeline import make_model

from cmaudio.audio import MelConfig, MelStats
from cmaudio.checkpoint import CheckpointError, read_metadata, save_model
from cmaudio.config import ConfigError, ModelConfig
from cmaudio.evaluate import main as evaluate_cli
from cmaudio.evaluation.classifier import (
    ClassifierConfig,
    ClassifierNetConfig,
    MelClassifier,
    file_sha256,
    load_classifier,
    read_classifier_metadata,
    save_classifier,
)
from cmaudio.evaluation.clips import pitch_targets
from cmaudio.evaluation.report import teacher_levels
from cmaudio.evaluation.search import search_evaluations, search_sigmas, write_sigmas
from cmaudio.training.classifier import AugmentConfig, main_train

pytest.importorskip("matplotlib")

FREQS = {"low": 220.0, "high": 880.0}  # the classes of test_pipeline.make_model


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """SC09-style folder: classes low/high, 8 train + 4 valid + 4 test clips each, 0.3 s."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("lowhigh")
    rng = np.random.default_rng(0)
    lists = {"validation_list.txt": [], "testing_list.txt": []}
    t = np.arange(int(0.3 * 16000)) / 16000
    for label, f0 in FREQS.items():
        (root / label).mkdir()
        for k in range(16):
            amp = rng.uniform(0.1, 0.6)
            wav = amp * np.sin(2 * np.pi * f0 * rng.uniform(0.97, 1.03) * t + rng.uniform(0, 6.28))
            wav += 0.01 * rng.standard_normal(t.shape)
            rel = f"{label}/{label}_{k}.wav"
            sf.write(root / rel, wav.astype(np.float32), 16000)
            if k >= 12:
                lists["testing_list.txt"].append(rel)
            elif k >= 8:
                lists["validation_list.txt"].append(rel)
    for name, rows in lists.items():
        (root / name).write_text("\n".join(rows) + "\n")
    return root


def tiny_recipe(path: Path, root: Path, epochs: int = 2) -> Path:
    path.write_text(
        f"""task = "classifier"
name = "tiny-classifier"
[data]
root = "{root}"
seconds = 0.3
gain_db = 3.0
[net]
channels = [4, 8]
embed_dim = 16
[run]
epochs = {epochs}
batch_size = 8
lr = 3e-3
device = "cpu"
"""
    )
    return path


@pytest.fixture(scope="module")
def classifier(folder, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("clf")
    assert main_train(tiny_recipe(tmp / "c.toml", folder), [], tmp / "run", False) == 0
    return tmp / "run" / "classifier.safetensors"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("models")
    return make_model(tmp / "cm.safetensors"), make_model(tmp / "teacher.safetensors", kind="edm")


# ---------------------------------------------------------------------------------------------- classifier


def small_config(**kw) -> ClassifierConfig:
    return ClassifierConfig(
        stats=MelStats(-6.0, 2.0), net=ClassifierNetConfig(channels=(4, 8), embed_dim=16), classes=("a", "b", "c"), **kw
    )


def test_classifier_takes_any_frame_count():
    torch.manual_seed(0)
    m = MelClassifier(small_config()).eval()
    for frames in (1, 5, 63, 100):
        logits, emb = m(torch.randn(2, 80, frames) - 6)
        assert logits.shape == (2, 3) and emb.shape == (2, 16)
    probs, emb = m.predict(torch.randn(5, 80, 20) - 6, batch_size=2)
    assert probs.shape == (5, 3) and torch.allclose(probs.sum(-1), torch.ones(5, dtype=probs.dtype))
    with pytest.raises(ValueError, match="expected log-mels"):
        m(torch.randn(2, 40, 10))


def test_classifier_file_round_trip_and_hostile_files(tmp_path, models):
    torch.manual_seed(0)
    m = MelClassifier(small_config()).eval()
    path = save_classifier(tmp_path / "c.safetensors", m, extra={"name": "x"})
    back = load_classifier(path)
    x = torch.randn(3, 80, 12) - 6
    assert torch.equal(m(x)[0], back(x)[0]) and back.config == m.config
    meta, cfg = read_classifier_metadata(path)
    assert meta["format"] == "cmaudio-classifier" and meta["format_version"] == "1" and cfg.classes == ("a", "b", "c")
    assert len(file_sha256(path)) == 64

    from safetensors.torch import load_file, save_file

    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"a": 1}))
    extra = tmp_path / "extra.safetensors"
    save_file({**load_file(str(path)), "bogus": torch.zeros(1)}, str(extra), metadata=meta)
    old = tmp_path / "v9.safetensors"
    save_file(load_file(str(path)), str(old), metadata={**meta, "format_version": "9"})
    bad_cfg = tmp_path / "cfg.safetensors"
    save_file(load_file(str(path)), str(bad_cfg), metadata={**meta, "config": '{"classes": ["a"], "oops": 1}'})
    cases = [
        (tmp_path / "missing.safetensors", "no such classifier file"),
        (evil, "not a cmaudio classifier file"),
        (models[0], "format 'cmaudio-model'"),
        (extra, "unexpected"),
        (old, "version '9'"),
        (bad_cfg, "bad classifier config"),
    ]
    for p, message in cases:
        with pytest.raises(CheckpointError, match=message) as exc:
            load_classifier(p)
        assert len(str(exc.value).splitlines()) == 1


def test_augment_keeps_shape_and_is_seeded():
    from cmaudio.training.classifier import augment

    x = torch.randn(4, 80, 30) - 5
    cfg = AugmentConfig()
    a = augment(x, cfg, MelConfig(), 6.0, torch.Generator().manual_seed(1))
    b = augment(x, cfg, MelConfig(), 6.0, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b) and torch.isfinite(a).all() and not torch.equal(a, x)
    assert float(a.min()) >= MelConfig().log_floor - 1e-5
    off = AugmentConfig(shift_seconds=0, time_masks=0, freq_masks=0, noise_prob=0)
    assert torch.equal(augment(x, off, MelConfig(), 0.0, torch.Generator()), x)


def test_classifier_training_writes_its_run(classifier):
    run = classifier.parent
    report = json.loads((run / "report.json").read_text())
    assert {"train_accuracy", "valid_accuracy", "test_accuracy", "sha256", "seconds"} <= set(report)
    assert report["sha256"] == file_sha256(classifier) and report["classes"] == ["high", "low"]
    assert report["clips"] == {"train": 16, "valid": 8, "test": 8}
    assert json.loads((run / "config.json").read_text())["task"] == "classifier"
    recs = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in recs if "valid_accuracy" in r] == [1, 2]


@pytest.mark.parametrize("select", [True, False])
def test_classifier_keeps_the_best_valid_or_the_last_epoch(folder, tmp_path, select):
    over = ["run.epochs=4", f"run.select_on_valid={'true' if select else 'false'}"]
    assert main_train(tiny_recipe(tmp_path / "c.toml", folder), over, tmp_path / "run", False) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    valid = [r["valid_accuracy"] for r in map(json.loads, (tmp_path / "run" / "log.jsonl").read_text().splitlines())
             if "valid_accuracy" in r]
    best = max(i for i, v in enumerate(valid, 1) if v == max(valid))  # ties: the later epoch
    assert report["best_epoch"] == (best if select else 4)


def test_classifier_recipe_beats_chance_in_two_epochs(tones_data, tmp_path):
    """recipes/tones/classifier.toml on the reduced tones set (4 classes, chance 25%)."""
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "tones" / "classifier.toml"
    over = [f"data.root={tones_data}", "run.epochs=2", "run.device=cpu"]
    assert main_train(recipe, over, tmp_path / "run", False) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["test_accuracy"] > 0.5 and report["valid_accuracy"] > 0.5


def test_classifier_config_errors(tmp_path, folder, capsys):
    recipe = tiny_recipe(tmp_path / "c.toml", folder)
    assert main_train(recipe, ["run.epochs=1"], tmp_path / "run", True) == 0
    assert '"epochs": 1' in capsys.readouterr().out and not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="net.chanels: unknown key"):
        main_train(recipe, ["net.chanels=[4]"], tmp_path / "run", False)
    with pytest.raises(ConfigError, match="exactly one field"):
        main_train(recipe, ['data.label_fields=["a", "b"]'], tmp_path / "run", False)
    with pytest.raises(ConfigError, match="task"):
        main_train(recipe, ["task=teacher"], tmp_path / "run", False)
    recipes = Path(__file__).resolve().parents[1] / "recipes"
    for name in ("digits", "tones"):
        assert main_train(recipes / name / "classifier.toml", [], tmp_path / name, True) == 0


def test_classifier_refuses_to_overwrite_a_run(classifier, folder, tmp_path):
    from cmaudio.errors import TrainingError

    with pytest.raises(TrainingError, match="already holds a classifier"):
        main_train(tiny_recipe(tmp_path / "c.toml", folder), [], classifier.parent, False)


# ---------------------------------------------------------------------------------------------- sigma search


def test_search_finds_the_minimum_of_a_known_function():
    res = search_sigmas(lambda s: (math.log(s[1]) - math.log(0.7)) ** 2, 2, 0.002, 80.0, iters=25)
    assert res.sigmas[0] == 80.0 and abs(math.log(res.sigmas[1] / 0.7)) < 1e-3
    assert res.evaluations == 1 + 25 + 2 and res.score <= res.start_score


def test_search_several_points_in_order():
    target = [80.0, 3.0, 0.7, 0.1]
    res = search_sigmas(lambda s: sum(math.log(a / b) ** 2 for a, b in zip(s, target)), 4, 0.002, 80.0,
                        iters=20, sweeps=2)
    assert all(abs(math.log(a / b)) < 1e-2 for a, b in zip(res.sigmas, target))
    # A metric that wants every point at 1.0: the constraint keeps the list strictly decreasing.
    res = search_sigmas(lambda s: sum(math.log(a) ** 2 for a in s[1:]), 4, 0.002, 80.0, iters=15, sweeps=3)
    assert all(a > b for a, b in zip(res.sigmas, res.sigmas[1:])) and res.sigmas[-1] > 0.002
    for sig, _ in res.history:
        assert sig[0] == 80.0 and all(a > b for a, b in zip(sig, sig[1:])) and sig[-1] > 0.002


@pytest.mark.parametrize("steps, iters, sweeps", [(2, 5, 1), (4, 5, 1), (3, 2, 2)])
def test_search_evaluations_counts_the_scores_a_search_makes(steps, iters, sweeps):
    """The fit plans its sigma-search time from this count (cmaudio.fitting.stages.fixed_work)."""
    target = [80.0, 5.0, 1.0, 0.2][:steps]
    calls = []

    def score(s):
        calls.append(s)
        return sum(math.log(a / b) ** 2 for a, b in zip(s, target))

    res = search_sigmas(score, steps, 0.002, 80.0, iters=iters, sweeps=sweeps)
    # a smooth metric with its minimum inside: no point is tried twice, so the count is exact
    assert len(calls) == res.evaluations == search_evaluations(steps, iters, sweeps)


def test_search_never_returns_worse_than_its_start():
    res = search_sigmas(lambda s: 0.0 if s == [80.0, 0.8] else 1.0, 2, 0.002, 80.0, init=[80.0, 0.8], iters=4)
    assert res.sigmas == [80.0, 0.8] and res.score == 0.0
    with pytest.raises(ValueError, match="init must hold"):
        search_sigmas(lambda s: 0.0, 3, 0.002, 80.0, init=[80.0, 1.0])


def test_write_sigmas_new_file_and_in_place(models, tmp_path):
    src = models[0]
    before = src.read_bytes()
    new = write_sigmas(src, {"2": [80.0, 1.5], "3": [80.0, 5.0, 0.5]}, tmp_path / "tuned.safetensors",
                       info={"metric": "test"})
    assert src.read_bytes() == before
    meta, cfg = read_metadata(new)
    assert cfg.sigmas["2"] == [80.0, 1.5] and cfg.sigmas["3"] == [80.0, 5.0, 0.5]
    assert json.loads(meta["sigma_search"]) == {"metric": "test"} and meta["step"] == "7"
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(before)
    write_sigmas(copy, {"2": [80.0, 0.9]})
    assert read_metadata(copy)[1].sigmas["2"] == [80.0, 0.9]
    with pytest.raises(CheckpointError, match="decreasing"):
        write_sigmas(copy, {"2": [0.5, 80.0]})
    assert read_metadata(copy)[1].sigmas["2"] == [80.0, 0.9]


# ---------------------------------------------------------------------------------------------- evaluate


def test_teacher_call_budgets():
    assert [teacher_levels(c) for c in (9, 18, 35)] == [5, 9, 18]
    assert [2 * teacher_levels(c) - 1 for c in (9, 18, 35)] == [9, 17, 35]
    assert teacher_levels(4, consistency=True) == 4


def test_pitch_targets():
    def cfg(fields, classes):
        return ModelConfig(cond_fields=fields, classes=classes)

    assert pitch_targets(cfg(("label",), (("zero", "one"),))) is None
    assert pitch_targets(cfg(("label",), tuple([tuple(str(d) for d in range(10))]))) is None  # FSDD digits
    assert pitch_targets(cfg(("label",), (("220", "440"),))) == {"220": 220.0, "440": 440.0}
    assert pitch_targets(cfg(("pitch", "family"), (("60", "69"), ("guitar",))))["69"] == pytest.approx(440.0)
    assert pitch_targets(cfg(("label",), (("69",),)), "hz") == {"69": 69.0}
    assert pitch_targets(cfg(("label",), (("220", "440"),)), "off") is None
    assert pitch_targets(cfg((), ())) is None


def test_real_subsets_are_balanced_and_seeded(folder):
    from cmaudio.evaluation.clips import load_clips

    wav, labels = load_clips(folder, MelConfig(), 3840, "train", ("label",), (("low", "high"),), limit=6, seed=1)
    assert wav.shape == (6, 3840) and sorted(labels) == ["high"] * 3 + ["low"] * 3
    again = load_clips(folder, MelConfig(), 3840, "train", ("label",), (("low", "high"),), limit=6, seed=1)[0]
    assert torch.equal(wav, again)
    test, _ = load_clips(folder, MelConfig(), 8000, "test", ("label",), (("low", "high"),))
    assert test.shape == (8, 8000) and float(test[:, 4800:].abs().max()) == 0.0  # 0.3 s clips, zero-padded


def test_evaluate_writes_the_three_files(models, folder, classifier, tmp_path, capsys):
    model, teacher = models
    out = tmp_path / "eval"
    args = ["--model", str(model), "--data", str(folder), "--n", "6", "--steps", "1,2", "--teacher", str(teacher),
            "--teacher-steps", "3,4", "--classifier", str(classifier), "--out", str(out), "--device", "cpu",
            "--batch-size", "4", "--quiet"]
    assert evaluate_cli(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["quality_vs_calls.png", "report.json", "report.md"]
    report = json.loads((out / "report.json").read_text())
    assert report["n"] == 6 and report["seeds"] == [0, 5] and report["sample_rate"] == 16000
    assert report["classifier"]["sha256"] == file_sha256(classifier)
    rows = {r["setting"]: r for r in report["rows"]}
    assert [r["group"] for r in report["rows"]] == ["real", "floor", "vocoded", "model", "model", "teacher", "teacher"]
    assert rows["cm 1 step"]["calls"] == 1 and rows["cm 2 steps"]["calls"] == 2
    assert rows["cm 2 steps"]["sigmas"] == [80.0, 0.7]
    teach = [r for r in report["rows"] if r["group"] == "teacher"]
    assert [(r["calls_requested"], r["calls"], r["steps"]) for r in teach] == [(3, 3, 2), (4, 3, 2)]
    for r in report["rows"]:
        assert r["classifier_sha256"] == report["classifier"]["sha256"] and r["sample_rate"] == 16000
    gen = rows["cm 2 steps"]
    assert gen["n"] == 6 and gen["seeds"] == [0, 5] and gen["x_realtime"] > 0
    m = gen["metrics"]
    assert {"accuracy", "classifier_fd", "inception_score", "modified_inception_score", "precision", "recall",
            "logmel_fd", "silence_rate", "clipping_rate"} <= set(m)
    assert 0 <= m["accuracy"] <= 1 and m["classifier_fd"] >= 0 and 1 <= m["inception_score"] <= 2
    floor = next(r for r in report["rows"] if r["group"] == "floor")["metrics"]
    assert floor["logmel_fd"] >= 0 and "accuracy" in floor
    md = (out / "report.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| setting | network calls | accuracy | FD (classifier) |")
    assert table[0].endswith("x-real-time |") and len(table) == 1 + 7  # header + rows (separator starts "|-")
    assert "| cm 2 steps | 2 |" in md and "sha256" in md
    assert "| cm 2 steps | 2 |" in capsys.readouterr().out


def test_evaluate_without_a_classifier_on_a_pitched_model(tmp_path, write_wav, tone):
    """Class names in Hz: pitch accuracy by pYIN; no classifier metrics, log-mel FD still there."""
    torch.manual_seed(0)
    from cmaudio.config import NetConfig, PrecondConfig
    from cmaudio.precond import Denoiser

    cfg = ModelConfig(stats=MelStats(-6.0, 2.5), precond=PrecondConfig(kind="consistency"), frames=16,
                      net=NetConfig(channels=8, channel_mult=(1,), num_blocks=1, attention=False),
                      cond_fields=("label",), classes=(("220", "440"),))
    model = save_model(tmp_path / "m.safetensors", Denoiser(cfg), cfg)
    data = tmp_path / "data"
    for f in ("220", "440"):
        for k in range(3):
            write_wav(data / f / f"{k}.wav", tone(float(f), seconds=0.25, amp=0.2 + 0.1 * k))
    (data / "testing_list.txt").write_text("220/0.wav\n440/0.wav\n")
    out = tmp_path / "eval"
    assert evaluate_cli(["--model", str(model), "--data", str(data), "--n", "4", "--steps", "1", "--out", str(out),
                         "--device", "cpu", "--dnsmos", "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["classifier"] is None and report["pitch"]["targets"] == {"220": 220.0, "440": 440.0}
    assert report["dnsmos"] in ("speechmos", "not installed")
    real = report["rows"][0]["metrics"]
    assert real["pitch_accuracy"] == 1.0 and "classifier_fd" not in real
    gen = report["rows"][-1]["metrics"]
    assert {"pitch_accuracy", "logmel_fd", "silence_rate"} <= set(gen) and "accuracy" not in gen
    assert (out / "quality_vs_calls.png").stat().st_size > 0


def test_search_sigmas_cli(models, folder, tmp_path, capsys):
    model = models[0]
    before = model.read_bytes()
    new = tmp_path / "tuned.safetensors"
    base = ["--model", str(model), "--data", str(folder), "--search-sigmas", "--n", "4", "--iters", "2",
            "--device", "cpu", "--quiet"]
    assert evaluate_cli([*base, "--steps", "2,3", "--out", str(new)]) == 0
    assert model.read_bytes() == before
    meta, cfg = read_metadata(new)
    for k in ("2", "3"):
        s = cfg.sigmas[k]
        assert len(s) == int(k) and s[0] == 80.0 and all(a > b for a, b in zip(s, s[1:]))
    info = json.loads(meta["sigma_search"])
    assert info["metric"] == "logmel_fd" and info["split"] == "valid" and info["n"] == 4
    assert info["results"]["2"]["evaluations"] == 1 + 2 + 2
    assert "2 steps: 80, " in capsys.readouterr().out
    in_place = tmp_path / "inplace.safetensors"
    in_place.write_bytes(before)
    assert evaluate_cli([*base[:1], str(in_place), *base[2:], "--steps", "2", "--write"]) == 0
    assert read_metadata(in_place)[1].sigmas["2"] == cfg.sigmas["2"]  # same seeds, same search


@pytest.mark.parametrize("metric", ["classifier_fd", "accuracy"])
def test_search_sigmas_with_the_classifier(models, folder, classifier, tmp_path, metric):
    new = tmp_path / "tuned.safetensors"
    assert evaluate_cli(["--model", str(models[0]), "--data", str(folder), "--search-sigmas", "--steps", "2",
                         "--n", "4", "--iters", "1", "--metric", metric, "--classifier", str(classifier),
                         "--out", str(new), "--device", "cpu", "--quiet"]) == 0
    info = json.loads(read_metadata(new)[0]["sigma_search"])
    assert info["metric"] == metric and info["classifier_sha256"] == file_sha256(classifier)
    assert info["results"]["2"]["score"] <= info["results"]["2"]["start_score"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--steps", "0"], "--steps"),
        (["--steps", "a,b"], "--steps"),
        (["--n", "1"], "--n"),
        (["--teacher-steps", "9"], "--teacher-steps needs --teacher"),
        (["--write"], "--write belongs to --search-sigmas"),
        (["--search-sigmas"], "give --out NEW.safetensors or --write"),
        (["--search-sigmas", "--write", "--steps", "1"], "each >= 2"),
        (["--search-sigmas", "--write", "--metric", "accuracy"], "needs --classifier"),
        (["--search-sigmas", "--write", "--metric", "pitch"], "not a pitched model"),
        (["--search-sigmas", "--out", "x.txt"], ".safetensors"),
        (["--classifier", "EVIL"], "not a cmaudio classifier file"),
        (["--device", "tpu"], "invalid choice"),
    ],
)
def test_evaluate_cli_errors_exit_2_with_one_line(models, folder, tmp_path, capsys, extra, message):
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"a": 1}))
    extra = [str(evil) if e == "EVIL" else e for e in extra]
    before = models[0].read_bytes()
    args = ["--model", str(models[0]), "--data", str(folder), "--quiet", *extra]
    if "--search-sigmas" not in extra:
        args += ["--out", str(tmp_path / "o")]
    assert evaluate_cli(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o" / "report.json").exists() and models[0].read_bytes() == before


def test_evaluate_cli_bad_data(models, tmp_path, capsys):
    assert evaluate_cli(["--model", str(models[0]), "--data", str(tmp_path / "nope"), "--quiet"]) == 2
    assert "no such directory" in capsys.readouterr().err
    (tmp_path / "d" / "other").mkdir(parents=True)
    assert evaluate_cli(["--model", str(models[0]), "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o"),
                         "--quiet"]) == 2
    assert "no clips with the model's labels in split 'test'" in capsys.readouterr().err
