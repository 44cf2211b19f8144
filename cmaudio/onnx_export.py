"""ONNX export of an acoustic model's network (``python -m cmaudio.export MODEL OUT.onnx``).

The graph is the preconditioned denoiser D(x, sigma, cond) -> denoised mel of the model file
(precond.Denoiser in float32): inputs ``x`` [batch, n_mels, frames], ``sigma`` [batch] and, for a
conditional model, ``cond`` [batch, factors] (int64 class indexes); output ``denoised``. Batch and
frames are dynamic, so edits run at the clip's own length. The samplers stay in Python: a
consistency sampler is one graph call per step. The model's config travels as the graph's
metadata (``cmaudio_config``, JSON), so a runtime can rebuild the mel front end and sigmas
without the .safetensors file.

Needs the ``onnx`` package (the ``deploy`` extra); tests compare onnxruntime with eager torch.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch

from .errors import CheckpointError

__all__ = ["OPSET", "export_model_onnx", "write_onnx"]

OPSET = 17


def write_onnx(
    module: torch.nn.Module,
    args: tuple,
    out: str | os.PathLike,
    inputs: list[str],
    outputs: list[str],
    dynamic: dict[str, dict[int, str]],
    metadata: dict[str, str],
) -> Path:
    """Trace ``module`` on ``args`` into an ONNX graph at ``out`` (atomically), with these input
    and output names, dynamic axes and metadata properties: the one way this package writes ONNX
    (the network here, a neural vocoder in vocoder.onnx_graph)."""
    try:
        import onnx
    except ImportError:
        raise CheckpointError("ONNX export needs the onnx package: pip install 'cmaudio[deploy]'") from None
    from .files import atomic_write

    def write(tmp: str) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer notes on shape arithmetic: the sizes stay dynamic
            torch.onnx.export(
                module,
                args,
                tmp,
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=dynamic,
                opset_version=OPSET,
                dynamo=False,
            )
        graph = onnx.load(tmp)
        for key, value in metadata.items():
            entry = graph.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(graph, tmp)

    return atomic_write(Path(out), write)


def export_model_onnx(model_path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the network of the model file ``model_path`` as ONNX to ``out``; returns ``out``."""
    from .checkpoint import load_model
    from .config import to_dict

    mf = load_model(model_path)
    cfg = mf.config
    x = torch.randn(2, cfg.mel.n_mels, cfg.frames)
    sigma = torch.full((2,), 1.0)
    names, dynamic = ["x", "sigma"], {"x": {0: "batch", 2: "frames"}, "sigma": {0: "batch"}}
    args: tuple = (x, sigma)
    if cfg.cond_sizes:
        args = (x, sigma, torch.zeros(2, len(cfg.cond_sizes), dtype=torch.long))
        names.append("cond")
        dynamic["cond"] = {0: "batch"}
    dynamic["denoised"] = {0: "batch", 2: "frames"}
    meta = {"cmaudio_config": json.dumps(to_dict(cfg)), "cmaudio_kind": "denoiser", "cmaudio_step": str(mf.step)}
    return write_onnx(mf.model.float().eval(), args, out, names, ["denoised"], dynamic, meta)
