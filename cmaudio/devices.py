"""The one device choice of cmaudio: "auto" (CUDA when present), "cpu" or "cuda" ("cuda:N" too).
Pipelines use it as it is; trainers through training.harness, which names the process's GPU
under torchrun and reports a refusal as a TrainingError."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(name: str | torch.device = "auto", index: int | None = None) -> torch.device:
    """The torch device for ``name``; ``index`` picks the GPU of a "cuda" or "auto" choice.
    Raises ValueError (one line) for an unknown name or CUDA asked for without a GPU."""
    name = str(name)
    if name != "auto" and name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"unknown device {name!r}: use auto, cpu or cuda")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    if index is not None and ":" not in name:
        return torch.device("cuda", index)
    return torch.device("cuda" if name == "auto" else name)
