"""Model files and training state: bit-exact round trips; hostile files refused, no code run."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from cmaudio.audio import MelConfig
from cmaudio.checkpoint import CheckpointError, load_model, load_state, read_metadata, save_model, save_state
from cmaudio.config import ModelConfig, NetConfig
from cmaudio.precond import Denoiser


def tiny_model(seed: int = 0, **net) -> tuple[Denoiser, ModelConfig]:
    torch.manual_seed(seed)
    net = {"channels": 8, "channel_mult": (1, 2), "num_blocks": 1, "attention": False} | net
    cfg = ModelConfig(
        mel=MelConfig(n_mels=16),
        net=NetConfig(**net),
        cond_fields=("label",),
        classes=(("a", "b", "c"),),
        sigmas={"2": [80.0, 0.8]},
    )
    m = Denoiser(cfg)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return m, cfg


def test_round_trip_is_bit_exact(tmp_path):
    m, cfg = tiny_model()
    path = save_model(tmp_path / "m.safetensors", m, cfg, step=123)
    mf = load_model(path)
    assert mf.config == cfg and mf.step == 123
    for (k, a), (k2, b) in zip(m.state_dict().items(), mf.model.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x = torch.randn(2, 16, 9)
    with torch.no_grad():
        assert torch.equal(m.eval()(x, 1.0, torch.tensor([[0], [3]])), mf.model(x, 1.0, torch.tensor([[0], [3]])))
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


class Boom:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['CMAUDIO_PWNED']}",))


def assert_one_line(exc: pytest.ExceptionInfo, name: str):
    msg = str(exc.value)
    assert "\n" not in msg and name in msg, msg


@pytest.fixture
def pwned(tmp_path, monkeypatch):
    marker = tmp_path / "PWNED"
    monkeypatch.setenv("CMAUDIO_PWNED", str(marker))
    return marker


def test_pickle_posing_as_model_is_refused_without_running(tmp_path, pwned):
    bad = tmp_path / "evil.safetensors"
    bad.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(CheckpointError) as e:
        load_model(bad)
    assert_one_line(e, "evil.safetensors")
    assert not pwned.exists()


def test_pickle_posing_as_state_is_refused_without_running(tmp_path, pwned):
    bad = tmp_path / "state.pt"
    torch.save({"format": "cmaudio-state", "x": Boom()}, bad)
    with pytest.raises(CheckpointError) as e:
        load_state(bad)
    assert_one_line(e, "state.pt")
    assert not pwned.exists()


@pytest.mark.parametrize("content", [b"", os.urandom(4096), b"\x10\x00\x00\x00\x00\x00\x00\x00{}", b"not a model"])
def test_random_bytes_refused(tmp_path, content):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError) as e:
        load_model(bad)
    assert_one_line(e, "x.safetensors")


def test_truncated_file_refused(tmp_path):
    m, cfg = tiny_model()
    path = save_model(tmp_path / "m.safetensors", m, cfg)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as e:
        load_model(path)
    assert_one_line(e, "m.safetensors")


def write_with_meta(path, meta, tensors=None):
    from safetensors.torch import save_file

    save_file(tensors or {"w": torch.zeros(2)}, str(path), metadata=meta)
    return path


@pytest.mark.parametrize(
    "meta, expect",
    [
        ({}, "unknown model format"),
        ({"format": "something-else", "format_version": "1"}, "unknown model format"),
        ({"format": "cmaudio-model", "format_version": "99", "config": "{}"}, "version '99'"),
        ({"format": "cmaudio-model", "format_version": "x", "config": "{}"}, "format_version"),
        ({"format": "cmaudio-model", "format_version": "1", "config": "{not json"}, "bad model config"),
        ({"format": "cmaudio-model", "format_version": "1", "config": json.dumps({"nett": {}})}, "nett"),
    ],
)
def test_wrong_metadata_refused(tmp_path, meta, expect):
    path = write_with_meta(tmp_path / "m.safetensors", meta)
    with pytest.raises(CheckpointError, match=expect) as e:
        load_model(path)
    assert_one_line(e, "m.safetensors")


def test_missing_and_unexpected_keys_named(tmp_path):
    m, cfg = tiny_model()
    good = save_model(tmp_path / "good.safetensors", m, cfg)
    meta, _ = read_metadata(good)
    tensors = dict(m.state_dict())
    first = next(iter(tensors))
    del tensors[first]
    tensors["extra.weight"] = torch.zeros(1)
    path = write_with_meta(tmp_path / "m.safetensors", meta, tensors)
    with pytest.raises(CheckpointError) as e:
        load_model(path)
    assert "1 missing" in str(e.value) and first in str(e.value) and "extra.weight" in str(e.value)


def test_shape_mismatch_named(tmp_path):
    m, cfg = tiny_model()
    small = save_model(tmp_path / "s.safetensors", m, cfg)
    meta, _ = read_metadata(small)
    big, _ = tiny_model(channels=16)
    path = write_with_meta(tmp_path / "m.safetensors", meta, dict(big.state_dict()))
    with pytest.raises(CheckpointError, match="shape"):
        load_model(path)


def test_nan_weights_never_saved_or_loaded(tmp_path):
    m, cfg = tiny_model()
    with torch.no_grad():
        next(m.parameters()).fill_(float("nan"))
    with pytest.raises(CheckpointError, match="non-finite"):
        save_model(tmp_path / "m.safetensors", m, cfg)
    assert not list(tmp_path.iterdir())


def test_state_round_trip(tmp_path):
    state = {
        "format": "cmaudio-state",
        "step": 5,
        "w": torch.randn(3),
        "rng": torch.get_rng_state(),
        "nested": {"a": [1, 2.5, "x"]},
    }
    back = load_state(save_state(tmp_path / "state.pt", state))
    assert back["step"] == 5 and torch.equal(back["w"], state["w"]) and back["nested"] == state["nested"]
    plain = tmp_path / "plain.pt"
    torch.save({"step": 1}, plain)
    with pytest.raises(CheckpointError, match="not a cmaudio training state"):
        load_state(plain)


def test_half_precision_file_loads_as_float32(tmp_path):
    from cmaudio.export import main as export

    m, cfg = tiny_model()
    full = save_model(tmp_path / "full.safetensors", m, cfg, step=3)
    assert export([str(full), str(tmp_path / "half.safetensors"), "--dtype", "float16"]) == 0
    half = load_model(tmp_path / "half.safetensors")
    assert half.config == cfg and half.step == 3
    assert all(v.dtype == torch.float32 for v in half.model.state_dict().values())
    assert (tmp_path / "half.safetensors").stat().st_size < 0.6 * full.stat().st_size
    x = torch.randn(2, 16, 9)
    with torch.no_grad():
        a, b = m.eval()(x, 2.0, None), half.model(x, 2.0, None)
    assert float((a - b).abs().max()) < 1e-2 * float(a.abs().max())


def test_export_sets_sigmas_by_hand_and_refuses_bad_lists(tmp_path, capsys):
    from cmaudio.export import main as export

    m, cfg = tiny_model()
    src = save_model(tmp_path / "m.safetensors", m, cfg, step=3)
    dst = tmp_path / "s.safetensors"
    assert export([str(src), str(dst), "--dtype", "float32", "--sigmas", "2=80,2.0", "--sigmas", "1=80"]) == 0
    got = load_model(dst)
    assert got.config.sigmas["2"] == [80.0, 2.0] and got.config.sigmas["1"] == [80.0]
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), got.model.state_dict().values()))
    for bad, needle in (("2=80", "1 sigmas under the key '2'"), ("2=2,80", "strictly decreasing"),
                        ("2=80,0.001", "outside")):
        assert export([str(src), str(tmp_path / "bad.safetensors"), "--sigmas", bad]) == 2
        assert needle in capsys.readouterr().err
    assert not (tmp_path / "bad.safetensors").exists()
