"""ONNX export (issue 18): the network of a model file as an ONNX graph that onnxruntime runs with
the eager network's numbers, at any batch and clip length."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_pipeline import make_model

from cmaudio.checkpoint import load_model
from cmaudio.export import main as export
from cmaudio.pipeline import resolve_model_path

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


@pytest.mark.parametrize("source", ["tiny", "digits"])
def test_onnx_network_matches_eager_at_any_batch_and_length(tmp_path, source):
    model = make_model(tmp_path / "tiny.safetensors") if source == "tiny" else source
    out = tmp_path / "net.onnx"
    assert export([str(model), str(out)]) == 0
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    mf = load_model(resolve_model_path(model))
    net = mf.model.float().eval()
    names = [i.name for i in sess.get_inputs()]
    assert names == ["x", "sigma", "cond"]
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["cmaudio_config"])["frames"] == mf.config.frames
    g = torch.Generator().manual_seed(0)
    for batch, frames in ((1, mf.config.frames), (3, 40), (2, 101)):
        x = torch.randn(batch, mf.config.mel.n_mels, frames, generator=g)
        sigma = torch.exp(torch.randn(batch, generator=g))
        cond = torch.randint(0, mf.config.cond_sizes[0], (batch, 1), generator=g)
        with torch.no_grad():
            ref = net(x, sigma, cond).numpy()
        got = sess.run(None, {"x": x.numpy(), "sigma": sigma.numpy(), "cond": cond.numpy()})[0]
        assert got.shape == ref.shape and float(np.abs(got - ref).max()) <= 1e-4


@pytest.mark.parametrize(
    "args, needle",
    [
        (["digits", "x.pt"], "suffix chooses the format"),
        (["digits", "x.onnx", "--dtype", "float16"], "ONNX graphs are float32"),
        (["nosuchmodel", "x.onnx"], "unknown model"),
    ],
)
def test_bad_export_arguments_are_one_line_errors(tmp_path, capsys, args, needle):
    args = [a if not a.startswith("x.") else str(tmp_path / a) for a in args]
    assert export(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
