"""Training: the shared harness (run folder, resume, device, non-finite guard, EMA, progress,
logs) and the acoustic trainer; the vocoder's and the classifier's trainers run on the same
harness.

    from cmaudio.training import run
    run(load_config("recipes/tones/teacher.toml"), "runs/tones-teacher")
"""

from ..errors import TrainingError
from .acoustic import RunResult, drop_labels, run
from .harness import check_resumable, ema_update, resolve_device, truncate_log
from .samples import default_sigmas

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
