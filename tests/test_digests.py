"""What `python -m cmaudio.generate` writes for fixed seeds, pinned as a digest of its 16-bit PCM.

One digest per bundled model and vocoder. Refactoring must not move a sample; work that changes
audio on purpose (a new bundled vocoder, a sampler fix) re-pins here in the same commit and says
why in the commit message. Computed with one torch thread: the float reductions of a few kernels
depend on the thread count, and a last-bit change can flip a 16-bit sample.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import soundfile as sf
import torch

from cmaudio.generate import main as generate

LABELS = {"digits": "seven,zero", "notes": "60,45:bass", "drums": "kick,hihat"}
PINNED = {
    ("digits", "vocoder-16k"): "d94fb3acc56ee95a",
    ("digits", "griffinlim"): "f53979a27b887444",
    ("notes", "vocoder-16k"): "fcd12e9d8e6aa3d5",
    ("notes", "griffinlim"): "acdad9d711cd9f2c",
    ("drums", "vocoder-16k"): "2e3bd45bcb8d79ea",
    ("drums", "griffinlim"): "6f8419be9df91552",
}


def pcm_digest(folder) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.glob("*.wav")):
        data, _ = sf.read(str(path), dtype="int16")
        h.update(path.name.encode())
        h.update(np.ascontiguousarray(data).tobytes())
    return h.hexdigest()[:16]


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("model,vocoder", sorted(PINNED))
def test_generate_output_is_pinned(model, vocoder, tmp_path, one_thread):
    args = ["--model", model, "--vocoder", vocoder, "--label", LABELS[model], "--seed", "0"]
    assert generate([*args, "--steps", "2", "--device", "cpu", "--out", str(tmp_path), "--quiet"]) == 0
    assert pcm_digest(tmp_path) == PINNED[(model, vocoder)]
