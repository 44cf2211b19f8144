"""ONNX export (issue 18): the network of a model file as an ONNX graph that onnxruntime runs with
the eager network's numbers, at any batch and clip length."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_pipeline import make_model

from cmaudio.checkpoint import load_model
from cmaudio.export import main as export
from cmaudio.pipeline import resolve_model_path

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


@pytest.mark.parametrize("source", ["tiny", "tiny-head", "digits"])
def test_onnx_network_matches_eager_at_any_batch_and_length(tmp_path, source):
    # tiny-head: the 2-D head over (mel, time) that cmaudio.fit's networks have
    tiny = {"tiny": 0, "tiny-head": 8}
    model = make_model(tmp_path / "tiny.safetensors", freq_channels=tiny[source]) if source in tiny else source
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


def test_conv_transforms_match_torch_stft_and_istft():
    """The graph's Fourier transforms (convolutions with fixed bases), against torch's FFTs, with
    a window shorter than n_fft (padded and centred, as torch pads it)."""
    from cmaudio.vocoder.onnx_graph import ConvISTFT, ConvSTFT

    n_fft, hop, win = 512, 128, 400
    window = torch.nn.functional.pad(torch.hann_window(win, dtype=torch.float64), ((n_fft - win) // 2,) * 2)
    wav = torch.randn(2, 40 * hop, generator=torch.Generator().manual_seed(0))
    hann = torch.hann_window(win)
    ref = torch.stft(wav, n_fft, hop, win, hann, center=True, pad_mode="constant", return_complex=True)
    real, imag = ConvSTFT(window, hop)(wav)
    assert real.shape == ref.real.shape and float((torch.complex(real, imag) - ref).abs().max()) < 1e-3
    back = ConvISTFT(window, hop)(ref.real, ref.imag)
    want = torch.istft(ref, n_fft, hop, win, hann, center=True, length=wav.shape[-1])
    assert back.shape == want.shape and float((back - want).abs().max()) < 1e-4
    assert float((back - wav).abs().max()) < 1e-4  # and the pair is the identity


@pytest.mark.parametrize("momentum", [None, 0.8])
def test_onnx_vocoder_matches_eager_waveforms(tmp_path, momentum):
    """The bundled neural vocoder as one ONNX graph (refinement included, with its momentum
    between passes when set): waveforms within 1e-3 of the eager vocoder at any batch and length."""
    from cmaudio.vocoder import load_vocoder
    from cmaudio.vocoder.export import export_vocoder

    source = "vocoder-16k"
    if momentum is not None:
        source = str(tmp_path / "fast.safetensors")
        bundled = Path(__file__).resolve().parents[1] / "cmaudio" / "assets" / "vocoder-16k.safetensors"
        export_vocoder(bundled, source, mel_refine=3, mel_refine_momentum=momentum)
    out = tmp_path / "vocoder.onnx"
    assert export([source, str(out)]) == 0
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["cmaudio_kind"] == "vocoder" and json.loads(meta["cmaudio_vocoder"])["version"]
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    vocoder = load_vocoder(source).float().eval()
    assert vocoder.config.net.mel_refine >= 1  # the graph holds an STFT as well as inverse ones
    g = torch.Generator().manual_seed(1)
    for batch, frames in ((1, 2), (3, 40), (2, 101)):
        logmel = torch.randn(batch, 80, frames, generator=g) * 2 - 6
        with torch.no_grad():
            ref = vocoder(logmel).numpy()
        got = sess.run(None, {"logmel": logmel.numpy()})[0]
        assert got.shape == ref.shape and float(np.abs(got - ref).max()) <= 1e-3


@pytest.mark.parametrize(
    "args, needle",
    [
        (["digits", "x.pt"], "suffix chooses the format"),
        (["digits", "x.onnx", "--dtype", "float16"], "ONNX graphs are float32"),
        (["nosuchmodel", "x.onnx"], "unknown model"),
        (["griffinlim", "x.onnx"], "only neural vocoder files"),
        (["vocoder-16k", "x.onnx", "--sigmas", "2=80,1"], "ONNX graphs are float32"),
    ],
)
def test_bad_export_arguments_are_one_line_errors(tmp_path, capsys, args, needle):
    args = [a if not a.startswith("x.") else str(tmp_path / a) for a in args]
    assert export(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


@pytest.mark.parametrize("source", ["tiny", "digits"])
def test_onnx_backend_generates_what_eager_does(tmp_path, monkeypatch, source):
    """Pipeline(backend="onnx"): the graph exported on first use into the cache, then reused;
    mels within 1e-4 and waveforms within 1e-3 of eager, same seeds."""
    from cmaudio.pipeline import Pipeline

    monkeypatch.setenv("CMAUDIO_CACHE", str(tmp_path / "cache"))
    model = make_model(tmp_path / "tiny.safetensors") if source == "tiny" else source
    eager = Pipeline.from_pretrained(model, device="cpu")
    fast = Pipeline.from_pretrained(model, device="cpu", backend="onnx")
    labels = [eager.labels[i % len(eager.labels)] for i in range(3)]
    a = eager.generate(labels=labels, steps=2, seed=0)
    b = fast.generate(labels=labels, steps=2, seed=0)
    assert float((a.mels - b.mels).abs().max()) <= 1e-4
    assert float((a.waveforms - b.waveforms).abs().max()) <= 1e-3
    cached = list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    Pipeline.from_pretrained(model, device="cpu", backend="onnx")
    assert cached[0].stat().st_mtime_ns == stamp  # reused, not exported again


def test_generate_cli_backend_onnx(tmp_path, monkeypatch):
    from cmaudio.generate import main as generate

    monkeypatch.setenv("CMAUDIO_CACHE", str(tmp_path / "cache"))
    assert (
        generate(["--label", "seven", "--backend", "onnx", "--device", "cpu", "--out", str(tmp_path / "g"), "--quiet"])
        == 0
    )
    assert json.loads((tmp_path / "g" / "manifest.json").read_text())["backend"] == "onnx"


@pytest.mark.slow
def test_compiled_backend_generates_what_eager_does(tmp_path):
    """backend="compiled" (torch.compile, frozen weights on the CPU): same clips as eager within
    1e-4, at two batch sizes and after a length change (edits run at the clip's own length)."""
    import shutil

    from cmaudio.pipeline import Pipeline

    if not (shutil.which("g++") or shutil.which("c++")):
        pytest.skip("torch.compile on the CPU needs a C++ compiler")
    model = make_model(tmp_path / "tiny.safetensors")
    eager = Pipeline.from_pretrained(model, device="cpu")
    fast = Pipeline.from_pretrained(model, device="cpu", backend="compiled")
    for n in (2, 5):
        a = eager.generate(n=n, steps=2, seed=n)
        b = fast.generate(n=n, steps=2, seed=n)
        assert float((a.mels - b.mels).abs().max()) <= 1e-4
    z = torch.randn(2, eager.config.mel.n_mels, 24)
    with torch.inference_mode():
        assert float((eager.model(z, 1.0) - fast.model(z, 1.0)).abs().max()) <= 1e-4
