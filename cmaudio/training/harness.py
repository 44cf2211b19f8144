"""What every trainer shares: the run folder, resume, the device, the non-finite guard, the EMA,
progress and logs. The acoustic trainer (acoustic.py) runs on it; so do the vocoder's and the
classifier's.

Run folder (docs/architecture.md, section 4):
    config.json   the resolved config, rewritten at every start
    log.jsonl     one JSON object a line, each with "step"; truncated to the resumed step
    state.pt      everything exact resume needs (the trainer's own dict, loaded weights-only)
    samples/      what the trainer writes periodically
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import torch

from ..checkpoint import load_state
from ..config import from_dict, to_dict
from ..errors import CheckpointError, ConfigError, TrainingError

__all__ = [
    "NonFiniteGuard",
    "Progress",
    "RunFolder",
    "Stepper",
    "run_steps",
    "check_resumable",
    "ema_update",
    "get_rng_state",
    "resolve_device",
    "set_rng_state",
    "summary_line",
    "truncate_log",
]

log = logging.getLogger("cmaudio")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """cmaudio.devices.resolve_device for a training process: this rank's GPU under torchrun, and
    a refusal as a TrainingError."""
    from ..devices import resolve_device as choose

    try:
        return choose(name, local_rank)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, parameter by parameter."""
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach(), 1 - decay)


def get_rng_state() -> dict:
    """The global generators a training step draws from (torch, Python, CUDA)."""
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_resumable(saved: dict, cfg, path: Path, resumable: Iterable[str]) -> None:
    """Refuse to resume a run under a config that changes the optimisation: every section of the
    resolved config must equal the saved one, except the ``[run]`` fields named in ``resumable``
    (length, logging and saving frequencies)."""
    now, keep = to_dict(cfg), set(resumable)
    try:  # read through the config class: older files' moved keys and new defaulted fields compare equal
        saved = to_dict(from_dict(type(cfg), saved))
    except ConfigError as exc:
        raise TrainingError(f"{path}: the saved config cannot be read ({exc})") from None
    for section in now:
        a, b = saved.get(section), now[section]
        if section == "run":
            a = {k: v for k, v in (a or {}).items() if k not in keep}
            b = {k: v for k, v in b.items() if k not in keep}
        if a != b:
            raise TrainingError(
                f"{path}: cannot resume with a different [{section}] config than the run was started with"
            )


def truncate_log(path: Path, step: int) -> None:
    """Drop log lines past the resumed step (written after the last checkpoint of a killed run)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a torn last line from a killed process
    path.write_text("".join(k + "\n" for k in keep))


class RunFolder:
    """A run directory: refuses to start over an existing run without ``resume``, reads the saved
    state of a resumed one, writes config.json and appends to log.jsonl. ``main`` is False on the
    non-zero ranks of a DDP run, which read but never write."""

    def __init__(self, path: str | Path, resume: bool, main: bool = True):
        self.path, self.resume, self.main = Path(path), resume, main
        self.state_path = self.path / "state.pt"
        if not resume and self.state_path.exists():
            raise TrainingError(
                f"{self.path} already holds a run: pass --resume to continue it, or choose another --out"
            )

    def saved_state(self, kind: str | None = None) -> dict | None:
        """The state of a resumed run, or None when starting fresh (also when --resume finds no
        state yet: a run killed before its first save starts again)."""
        if not (self.resume and self.state_path.exists()):
            return None
        try:
            st = load_state(self.state_path)
        except CheckpointError as exc:
            raise TrainingError(str(exc)) from None
        if kind is not None and st.get("kind", "acoustic") != kind:
            raise TrainingError(f"{self.state_path}: not a {kind} training state")
        return st

    def open(self, cfg, step: int) -> None:
        """Create the folder, tidy what a killed run left (log lines past ``step``, torn temporary
        files) or clear the log of a fresh run, and write the resolved config."""
        if not self.main:
            return
        (self.path / "samples").mkdir(parents=True, exist_ok=True)
        if step > 0:
            truncate_log(self.path / "log.jsonl", step)
            for tmp in self.path.glob(".*.tmp"):  # torn writes of a killed run; renamed files are whole
                tmp.unlink(missing_ok=True)
            log.info("resuming %s at step %d", self.path, step)
        else:
            (self.path / "log.jsonl").unlink(missing_ok=True)
        (self.path / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")

    def log(self, record: dict) -> None:
        if self.main:
            with open(self.path / "log.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")


class NonFiniteGuard:
    """Counts steps skipped for a non-finite loss or gradient; ``max_in_row`` of them in a row
    stop the run with a one-line TrainingError naming the last good file."""

    def __init__(self, max_in_row: int):
        self.max_in_row, self.in_row = max_in_row, 0

    def ok(self) -> None:
        self.in_row = 0

    def bad(self, step: int, last_good: Path, hint: str = "Lower optim.lr or check the data.") -> None:
        self.in_row += 1
        if self.in_row >= self.max_in_row:
            raise TrainingError(
                f"loss or gradients were non-finite for {self.in_row} steps in a row at step {step}; "
                f"stopped (last good checkpoint: {last_good}). {hint}"
            )


def summary_line(text: str) -> None:
    """The one line a finished run prints (what was trained, how long, where the result is)."""
    print(text, file=sys.stderr, flush=True)


class Progress:
    """A tqdm bar on stderr (when ``show``), the run's timer and the closing summary line every
    trainer prints."""

    def __init__(self, name: str, total: int, initial: int, show: bool):
        self.bar = None
        if show:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=name, unit="step", dynamic_ncols=True, file=sys.stderr)
        self.start_step, self.t_start = initial, time.perf_counter()

    def update(self, **postfix: str) -> None:
        if self.bar:
            self.bar.update(1)
            self.bar.set_postfix(**postfix)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t_start

    def close(self, summary: str | None = None) -> None:
        if self.bar:
            self.bar.close()
            self.bar = None
        if summary:
            summary_line(summary)


class Stepper(Protocol):
    """What ``run_steps`` drives: a trainer that takes one optimiser step at a time."""

    step: int
    bad_total: int

    def train_step(self) -> dict | None:
        """One step; its losses, or None when it was skipped as non-finite."""

    def postfix(self, rec: dict) -> dict[str, str]:
        """The progress bar's numbers for a step."""

    def summarise(self, window: list[dict], seconds: float, elapsed: float) -> dict:
        """The log.jsonl record (without "step") of the steps since the last one."""

    def save(self, elapsed: float, snapshot: bool, final: bool) -> None:
        """Write the run's files (every rank calls it: DDP gathers inside)."""

    def periodic(self, step: int) -> dict | None:
        """Samples and held-out measures every run.sample_every steps; a log record or None."""


def run_steps(trainer: Stepper, run, folder: RunFolder, *, name: str, show: bool, last_good: Path) -> Progress:
    """The one training loop: a step, the non-finite guard, a log line every run.log_every
    steps, the files every run.save_every (and run.snapshot_every) steps and at the end, samples
    every run.sample_every. Returns the closed progress (its start step and seconds) for the
    trainer's summary line."""
    guard = NonFiniteGuard(run.max_bad_steps)
    bar = Progress(name, run.steps, trainer.step, show)
    window, t_window = [], time.perf_counter()
    try:
        while trainer.step < run.steps:
            rec = trainer.train_step()
            if rec is None:  # skipped: a NaN never reaches the weights or a saved file
                trainer.bad_total += 1
                guard.bad(trainer.step, last_good)
                continue
            guard.ok()
            step = trainer.step
            window.append(rec)
            bar.update(**trainer.postfix(rec))
            if step % run.log_every == 0 or step == run.steps:
                now = time.perf_counter()
                folder.log({"step": step, **trainer.summarise(window, now - t_window, bar.seconds)})
                window, t_window = [], now
            snapshot = bool(run.snapshot_every) and step % run.snapshot_every == 0
            if step % run.save_every == 0 or step == run.steps or snapshot:
                trainer.save(bar.seconds, snapshot, step == run.steps)
            if run.sample_every and (step % run.sample_every == 0 or step == run.steps):
                rec = trainer.periodic(step)
                if rec:
                    folder.log({"step": step, **rec})
                t_window = time.perf_counter()  # sampling time is not training speed
    finally:
        bar.close()
    return bar
