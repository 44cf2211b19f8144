"""Seeded fuzz of the edits (issue 17): files of one sample to a minute, 1 to 8 channels, 8 to
96 kHz, 8/16/24/32-bit integer and 32/64-bit float WAV and FLAC, holding silence, full-scale
square waves, noise or NaN, through inpaint, continue and variation, by the Python API (a path
and an array) and the demo's edit handler. Each call gives finite audio or a ValueError with a
one-line message; anything else (a traceback) fails."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from test_pipeline import make_model

from cmaudio.pipeline import Pipeline

RATES = (8000, 11025, 16000, 22050, 44100, 48000, 96000)
SUBTYPES = {"wav": ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"), "flac": ("PCM_16", "PCM_24")}
CONTENT = ("silence", "square", "noise", "nan")
CASES = 28


def case(rng: np.random.Generator, k: int, folder: Path) -> tuple[Path, np.ndarray]:
    """A file and the mono array at its own rate; every content kind and format comes up."""
    fmt = ("wav", "flac")[k % 2]
    subtype = SUBTYPES[fmt][int(rng.integers(len(SUBTYPES[fmt])))]
    content = CONTENT[k % len(CONTENT)]
    if content == "nan" and subtype not in ("FLOAT", "DOUBLE"):
        fmt, subtype = "wav", "FLOAT"  # only float files can hold NaN
    rate = int(rng.choice(RATES))
    n = 1 if k == 0 else 60 * rate if k == 1 else int(math.exp(rng.uniform(0, math.log(60 * rate))))
    channels = int(rng.integers(1, 9))
    t = np.arange(n) / rate
    if content == "silence":
        x = np.zeros(n)
    elif content == "square":
        x = np.sign(np.sin(2 * np.pi * rng.uniform(50, 2000) * t) + 1e-9)  # full scale
    else:
        x = rng.uniform(-1, 1, n)
        if content == "nan":
            x[rng.integers(n, size=max(1, n // 100))] = np.nan
    data = np.repeat(x[:, None], channels, 1).astype(np.float32)
    path = folder / f"case{k:02d}-{rate}-{channels}ch-{subtype}.{fmt}"
    sf.write(str(path), data, rate, subtype=subtype, format=fmt.upper())
    return path, x.astype(np.float32)


def outcome(call, *args, **kwargs) -> str:
    """'audio' or 'error'; an exception other than ValueError propagates (fails the test)."""
    try:
        out = call(*args, **kwargs)
    except ValueError as exc:
        message = str(exc)
        assert message and "\n" not in message and "Traceback" not in message, message
        return "error"
    wav = out[0][1] if isinstance(out, tuple) else out.waveforms
    wav = torch.as_tensor(np.asarray(wav), dtype=torch.float32)
    assert wav.numel() > 0 and bool(torch.isfinite(wav).all())
    return "audio"


@pytest.fixture(scope="module")
def edit_handler(script_module, tmp_path_factory):
    pytest.importorskip("gradio")  # the demo extra
    script_module("demo/app.py", "cmaudio_demo_app_fuzz")  # puts demo/ on sys.path
    handlers = importlib.import_module("handlers")
    model = make_model(tmp_path_factory.mktemp("fuzz-model") / "tiny.safetensors")
    cache = handlers.ModelCache({"tiny": model}, device="cpu")
    return handlers, cache, model


@pytest.mark.slow
def test_edits_fuzzed_give_audio_or_one_line_errors(tmp_path, edit_handler):
    handlers, cache, model = edit_handler
    pipe = Pipeline.from_pretrained(model, device="cpu")
    rng = np.random.default_rng(17)
    seen = {"audio": 0, "error": 0}
    for k in range(CASES):
        path, mono = case(rng, k, tmp_path)
        dur = max(len(mono), 1) / 16000 * 1.2
        start = float(rng.uniform(0, dur))
        end, seconds, strength = (
            start + float(rng.uniform(0.01, 1.0)),
            float(rng.uniform(0.05, 2.5)),
            float(rng.random()),
        )
        steps = int(rng.integers(1, 5))
        edits = {
            "inpaint": (pipe.inpaint, (start, end)),
            "continue": (pipe.continue_audio, (seconds,)),
            "variation": (pipe.variation, (strength,)),
        }
        for mode, (method, args) in edits.items():
            for src in (path, torch.from_numpy(mono)):  # a file at any rate; an array taken as 16 kHz
                seen[outcome(method, src, *args, steps=steps, seed=k)] += 1
            req = handlers.EditRequest(
                "tiny", str(path), mode, start, end, seconds, strength, "low", None, steps, k, "griffinlim", ""
            )
            seen[outcome(handlers.edit, cache, req)] += 1
    # Both outcomes happen: the fuzz reaches the edits, not only the input checks.
    assert seen["audio"] >= 20 and seen["error"] >= 20, seen
