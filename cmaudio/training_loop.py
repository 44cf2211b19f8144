"""Moved to cmaudio.training (harness.py, acoustic.py); these names stay importable from here."""

from .errors import TrainingError
from .training import (
    RunResult,
    check_resumable,
    default_sigmas,
    drop_labels,
    ema_update,
    resolve_device,
    run,
    truncate_log,
)

__all__ = [
    "RunResult",
    "TrainingError",
    "check_resumable",
    "default_sigmas",
    "drop_labels",
    "ema_update",
    "resolve_device",
    "run",
    "truncate_log",
]
