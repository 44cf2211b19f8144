"""recipes/fsdd/bundle.py: the bundled file answers to the data set's labels only, and a kept
label generates what it generated before."""

from __future__ import annotations

import pytest
import torch
from test_pipeline import make_model

from cmaudio.checkpoint import load_model
from cmaudio.pipeline import Pipeline


def test_bundle_keeps_the_chosen_labels_and_their_output(tmp_path, script_module):
    bundle = script_module("recipes/fsdd/bundle.py", "fsdd_bundle")
    src = make_model(tmp_path / "fit.safetensors")  # labels low, high
    mf = load_model(src)
    model, cfg = bundle.keep_labels(mf, ["high"])
    assert cfg.classes == (("high",),)
    x, sigma = torch.randn(2, 80, 16), torch.tensor([1.0, 1.0])
    with torch.no_grad():
        before = mf.model(x, sigma, torch.tensor([[1], [2]]))  # "high", null
        after = model(x, sigma, torch.tensor([[0], [1]]))
    assert torch.equal(before, after)
    assert bundle.main([str(src), str(tmp_path / "b.safetensors"), "--keep", "high", "--name", "mine"]) == 0
    out = load_model(tmp_path / "b.safetensors")
    assert out.metadata["name"] == "mine" and "CC BY-SA 4.0" in out.metadata["licence"]
    assert Pipeline.from_pretrained(tmp_path / "b.safetensors", device="cpu").labels == ["high"]
    with pytest.raises(SystemExit, match="no label 'seven'"):
        bundle.keep_labels(mf, ["seven"])
