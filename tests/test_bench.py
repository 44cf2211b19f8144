"""python -m cmaudio.bench runs with a tiny model in seconds and reports every entry."""

from __future__ import annotations

import json

from test_pipeline import make_model

from cmaudio.bench import main as bench


def test_bench_reports_every_entry(tmp_path, capsys):
    model = make_model(tmp_path / "m.safetensors")
    out = tmp_path / "bench.json"
    assert (
        bench(["--model", str(model), "--device", "cpu", "--batch-size", "1,4", "--repeats", "1", "--json", str(out)])
        == 0
    )
    report = json.loads(out.read_text())
    assert {"device", "threads", "results"} <= set(report)
    names = {(r["name"], r["batch_size"]) for r in report["results"]}
    for b in (1, 4):
        for n in (
            "cm-1",
            "cm-2",
            "cm-4",
            "heun-18",
            "cm-1-net",
            "cm-2-net",
            "cm-4-net",
            "heun-18-net",
            "vocoder-griffinlim",
        ):
            assert (n, b) in names
    r = {(x["name"], x["batch_size"]): x for x in report["results"]}
    assert r[("cm-2", 4)]["calls"] == 2 and r[("heun-18", 4)]["calls"] == 35
    assert all(x["x_realtime"] > 0 and x["seconds_per_clip"] > 0 for x in report["results"])
    assert "cm-2-net / heun-18-net" in capsys.readouterr().out


def test_bench_bad_arguments(capsys):
    assert bench(["--batch-size", "a,b"]) == 2
    assert "--batch-size" in capsys.readouterr().err


def test_gpu_check_script_refuses_cleanly_without_cuda(capsys, script_module):
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: run benchmarks/gpu_check.py itself")
    assert script_module("benchmarks/gpu_check.py", "gpu_check").main([]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_bench_backends_side_by_side(tmp_path, capsys, monkeypatch):
    """--backend eager,onnx: both in one run, a backend field on every row, the time to the first
    clip of each (the ONNX export included) and cm-2's speed ratio to eager."""
    import pytest

    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("CMAUDIO_CACHE", str(tmp_path / "cache"))
    model = make_model(tmp_path / "m.safetensors")
    out = tmp_path / "bench.json"
    assert (
        bench(
            [
                "--model",
                str(model),
                "--device",
                "cpu",
                "--batch-size",
                "2",
                "--repeats",
                "1",
                "--backend",
                "eager,onnx",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert {r["backend"] for r in report["results"]} == {"eager", "onnx"}
    assert set(report["first_clip_seconds"]) == {"eager", "onnx"} and report["backends"] == ["eager", "onnx"]
    assert report["ratios"]["cm-2 onnx / eager, batch 2"] > 0
    assert "cm-2 onnx / eager, batch 2" in capsys.readouterr().out
    assert bench(["--model", str(model), "--backend", "eager,tensorrt"]) == 2
    assert "--backend" in capsys.readouterr().err


def test_vocoder_speed_benchmark_times_each_vocoder_and_the_pass_variants(tmp_path, capsys, script_module):
    import torch

    from cmaudio.vocoder import ASSETS
    from cmaudio.vocoder.export import export_vocoder

    bench = script_module("benchmarks/vocoder_speed.py", "vocoder_speed")
    # From a file saved without refinement too: the variant must be rebuilt, not relabelled.
    plain = export_vocoder(ASSETS / "vocoder-16k.safetensors", tmp_path / "plain.safetensors", mel_refine=0)
    variant = bench.with_passes(str(plain), "3:2:0.5")
    net = variant.config.net
    assert (net.mel_refine, net.mel_refine_updates, net.mel_refine_momentum) == (3, 2, 0.5)
    mel = variant.mel_config
    assert variant(torch.full((1, mel.n_mels, 5), -5.0)).shape == (1, 4 * mel.hop_length)
    args = ["--vocoders", "vocoder-16k", "--passes", "2", "--batch-size", "2", "--seconds", "0.25", "--rounds", "1"]
    assert bench.main(args) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| ") and "---" not in r][1:]
    assert [r.split(" | ")[0] for r in rows] == [
        "| griffinlim-32", "| vocoder-16k", "| vocoder-16k (2 passes x 1, momentum 0)"
    ]
    assert rows[0].endswith("| 1.00 |")  # the baseline against itself
    assert all(float(r.split(" | ")[-1].rstrip(" |")) > 0 for r in rows)
