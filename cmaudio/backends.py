"""How a pipeline runs its network: one table, BACKENDS, keyed by the name users pass
(``Pipeline.from_pretrained(..., backend=...)``, ``generate --backend``, ``bench --backend``).

    eager     the torch module as loaded (the default: works on any fresh install)
    compiled  torch.compile of it (needs a C++ compiler on CPU; first call compiles)
    onnx      onnxruntime running the network exported by cmaudio.onnx_export. The graph is
              exported on first use into the cache folder (CMAUDIO_CACHE, else ~/.cache/cmaudio)
              under a digest of the model file, and reused after. Torch still runs the sampler's
              arithmetic and the vocoder (its ONNX graph, cmaudio.vocoder.onnx_graph, computes
              the STFTs as convolutions: for runtimes without torch, slower than torch's FFTs);
              the network calls run in onnxruntime (CPU).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import torch

from .errors import CheckpointError

__all__ = ["BACKENDS", "OnnxDenoiser", "cache_dir", "onnx_file_for"]


def cache_dir() -> Path:
    return Path(os.environ.get("CMAUDIO_CACHE") or Path.home() / ".cache" / "cmaudio")


def onnx_file_for(model_path: Path) -> Path:
    """The cached ONNX graph of a model file (exported when missing)."""
    digest = hashlib.sha256(Path(model_path).read_bytes()).hexdigest()[:16]
    path = cache_dir() / "onnx" / f"{Path(model_path).stem}-{digest}.onnx"
    if not path.is_file():
        from .onnx_export import export_model_onnx

        export_model_onnx(model_path, path)
    return path


class OnnxDenoiser:
    """The network as onnxruntime runs it, called like precond.Denoiser: (x, sigma, cond) ->
    denoised, on CPU tensors."""

    def __init__(self, path: Path, config):
        try:
            import onnxruntime as ort
        except ImportError:
            raise CheckpointError("backend 'onnx' needs onnxruntime: pip install 'cmaudio[deploy]'") from None
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.config = config
        self.training = False

    def __call__(self, x: torch.Tensor, sigma, cond: torch.Tensor | None = None) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1).expand(x.shape[0])
        feeds = {"x": x.detach().float().cpu().numpy(), "sigma": sigma.detach().cpu().numpy()}
        if "cond" in self.inputs:
            if cond is None:
                cond = torch.tensor(self.config.cond_sizes).expand(x.shape[0], -1)  # the null classes
            feeds["cond"] = cond.detach().cpu().long().numpy()
        return torch.from_numpy(self.session.run(None, feeds)[0]).to(x.device)

    def null_cond(self, batch: int, device="cpu") -> torch.Tensor:
        """The all-null condition [B, K], as precond.Denoiser.null_cond (guidance uses it)."""
        return torch.tensor(self.config.cond_sizes, dtype=torch.long, device=device).expand(batch, -1).clone()

    def to(self, device) -> OnnxDenoiser:
        if torch.device(device).type != "cpu":
            raise CheckpointError("backend 'onnx' runs on the CPU; use --device cpu (or the eager backend on CUDA)")
        return self

    def eval(self) -> OnnxDenoiser:
        return self


def _eager(model, path: Path):
    return model


def _compiled(model, path: Path):
    return torch.compile(model)


def _onnx(model, path: Path):
    return OnnxDenoiser(onnx_file_for(path), model.config)


# backend name -> (loaded torch network, model file) -> what the sampler calls
BACKENDS: dict[str, Callable] = {"eager": _eager, "compiled": _compiled, "onnx": _onnx}
