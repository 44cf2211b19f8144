"""The fit's options, and its plan: the time budget turned into training steps once, at the start.

The plan is written to RUN/plan.json with a fingerprint of the data (file names, sizes, times)
and the options, so that running the same command again continues the same plan (reproducible:
the steps are not re-measured) and another folder or other flags are refused.

Budget: --minutes covers the whole run, the plan included. The time the data preparation and the
probe took is taken off first. The sigma search and the evaluation do a fixed amount of work
(their clip counts, not the budget, set it: stages.fixed_work), so they get what that work costs
here: its network calls and vocoded clips at the per-clip seconds the probe measured, with
FIXED_MARGIN and FIXED_SECONDS for loading and scoring. What is left trains, shared by
TRAIN_SHARES. Each training stage's steps are its share over the seconds one step took in the
probe (PROBE_STEPS timed steps of the real network and batch: the median step of its log, fixed
costs left out), less SAFETY so that the whole run stays within its budget.

A probe is a few steps, and a step's time changes over the first hundred (two threads: 0.21 s
falling to 0.16 s in one fit, whose probe said 0.19): so each training stage checks its plan
after a tenth and after half of its steps (CHECK_FRACTIONS), and revises its step count from the
seconds a step took over the second half of the steps so far (revise_steps; recorded in
Plan.revised, so a rerun keeps it). One check at a tenth left a 15-minute fit 10% under: its
steps sped up again after the check (0.393 s, then 0.358).
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..errors import DatasetError
from .corpus import LABEL_MODES

__all__ = [
    "MIN_STEPS",
    "TRAIN_SHARES",
    "FitError",
    "FitOptions",
    "Plan",
    "check_step",
    "fingerprint",
    "fixed_seconds",
    "revise_steps",
    "net_overrides",
    "probe_seconds",
    "share_budget",
]

# The training time's split: the teacher twice the student's (the digits recipe's stage ratio).
TRAIN_SHARES = {"teacher": 2 / 3, "student": 1 / 3}
# Steps are planned for 95% of a stage's share: a probe is a few steps, and runs on a 2-core VM took
# 10% less to 19% more a step than their probes; at 0.9 four fits used 80-105% of their budgets
# (fixed work included), at 0.95 they would have used 84-110%, centred on the budget.
SAFETY = 0.95
# The fixed-work stages' estimate: calls x probe seconds x FIXED_MARGIN + FIXED_SECONDS. Measured
# on FSDD digits (64 clips a slice, 3.7 ms a call): sigma search 23-29 s for 25 s of calls;
# evaluation 7.5-9 s for 3 s of calls and vocoding (the rest loads and scores the real clips);
# drums' 18-clip slices 9.4 and 3.6 s.
FIXED_MARGIN = 1.2
FIXED_SECONDS = 8.0
PROBE_STEPS = 6
BATCH = 32
MIN_CLIPS = 20
MIN_STEPS = 5
DEFAULT_MINUTES = 30.0
SMALL_MINUTES = 5.0
# Each training stage revises its plan after these shares of its steps (at least CHECK_MIN steps),
# aiming at REVISED_SAFETY of its budget: what remains is measured, not probed.
CHECK_FRACTIONS = (0.1, 0.5)
CHECK_MIN = 20
REVISED_SAFETY = 0.98


class FitError(DatasetError):
    """A fit that cannot start or continue as asked; one line, exit status 2."""


@dataclass(frozen=True)
class FitOptions:
    """The flags of ``python -m cmaudio.fit`` (docs: cmaudio/fit.py)."""

    data: str
    out: str
    labels: str = "auto"
    manifest: str = ""
    label_pattern: str = ""
    minutes: float = DEFAULT_MINUTES
    seconds: float | None = None
    seed: int = 0
    device: str = "auto"
    source: str = ""  # --from: a bundled model's name or a model file to start from

    def __post_init__(self) -> None:
        if self.labels not in LABEL_MODES:
            raise FitError(f"--labels must be one of {', '.join(LABEL_MODES)}, got {self.labels!r}")
        if self.label_pattern and self.labels not in ("filename", "auto"):
            raise FitError("--label-pattern goes with --labels filename")
        if not 0.2 <= self.minutes <= 24 * 60:
            raise FitError(f"--minutes must be between 0.2 and 1440, got {self.minutes:g}")
        if self.seconds is not None and not 0.25 <= self.seconds <= 10:
            raise FitError(f"--seconds must be between 0.25 and 10, got {self.seconds:g}")
        if self.label_pattern:
            import re

            try:
                rx = re.compile(self.label_pattern)
            except re.error as exc:
                raise FitError(f"--label-pattern {self.label_pattern!r}: {exc}") from None
            if rx.groups > 1:
                raise FitError("--label-pattern: give at most one group (the label)")


def fingerprint(files: list[Path], options: FitOptions) -> str:
    """A digest of the data (names, sizes, modification times) and of the options that shape the
    result (not --out)."""
    h = hashlib.sha256()
    for p in sorted(files):
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{int(st.st_mtime)}\n".encode())
    opts = {k: v for k, v in asdict(options).items() if k != "out"}
    h.update(json.dumps(opts, sort_keys=True).encode())
    return h.hexdigest()[:16]


@dataclass
class Plan:
    """RUN/plan.json: what the run will do, fixed when it starts."""

    fingerprint: str
    options: dict
    clip_seconds: float
    clip_reason: str
    labels: list[str]  # empty: unconditional
    clips: dict[str, int]  # per split
    skipped: dict[str, int]
    budget_seconds: dict[str, float]  # per stage
    seconds_per_step: dict[str, float]  # measured by the probe
    steps: dict[str, int]  # per training stage
    seconds_per_clip: dict[str, float] = field(default_factory=dict)  # a sampling call, a vocoded clip
    # The teacher's network as config overrides (net_overrides; none with --from): recorded so a
    # rerun trains the network its probe measured and its teacher's state.pt holds, whatever the
    # code's default has become since.
    net: list[str] = field(default_factory=list)
    # Per training stage, its checks (revise_steps): {"planned", "checks": [{"at",
    # "seconds_per_step", "budget_seconds", "steps"}, ...]}; its schedules stay those of "planned".
    revised: dict[str, dict] = field(default_factory=dict)
    machine: str = field(default_factory=lambda: f"{platform.machine()}, {torch.get_num_threads()} threads")
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S"))

    def save(self, path: Path) -> None:
        from ..files import atomic_write

        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(asdict(self), indent=2) + "\n"))

    @classmethod
    def load(cls, path: Path) -> Plan:
        try:
            raw = json.loads(path.read_text())
            if "net" not in raw:  # written before plans recorded it: the network of that code
                source, minutes = raw["options"].get("source"), raw["options"]["minutes"]
                raw["net"] = (
                    []
                    if source
                    else net_overrides(bool(raw["labels"]), minutes, channel_mult=(1, 2, 2), freq_channels=0)
                )
            return cls(**raw)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise FitError(f"{path}: not a fit plan ({exc})") from None

    def summary(self) -> str:
        mins = {k: f"{v / 60:.1f}" for k, v in self.budget_seconds.items()}
        source = self.options.get("source", "")
        first = (
            f"no teacher; consistency tuning of {source}"
            if source
            else f"teacher {self.steps['teacher']} steps ({mins['teacher']} min), student"
        )
        return (
            f"plan: {self.clips.get('train', 0)} training clips of {self.clip_seconds:g} s; {first} "
            f"{self.steps['student']} steps ({mins['student']} min), sigma search {mins['sigmas']} min, "
            f"evaluation {mins['evaluate']} min"
        )


def net_overrides(
    labelled: bool, minutes: float, channel_mult: tuple[int, ...] = (2, 2, 2), freq_channels: int = 16
) -> list[str]:
    """The network of a fit: the digits recipe's teacher with its first level twice as wide (128
    channels) and a 2-D head over (mel, time) of ``freq_channels`` (4.2 M parameters), or for
    budgets under SMALL_MINUTES a small one (a budget that short cannot train the large one: a
    few hundred steps of it give noise); label dropout when labelled, so the student can distil
    the guided teacher.

    Why the wide first level: the 1D U-Net reads the mel bands as channels, and a first level
    narrower than the bands (64 < 80) cannot carry each frame's noise through to be subtracted.
    On FSDD (3,000 teacher steps, then 1,300 guided CD steps; 100 clips at 2 steps, the FSDD
    classifier): x1/2/2 teacher 25% recognised (Heun-35), its student 71% (classifier FD 96);
    x2/2/2 teacher 42%, its student 92% (FD 24), for 1.35x the teacher's step time.

    Why the head (nets.unet1d.FreqHead): even wide, the 1D U-Net left noise in at sigma 0.2 to 1
    (its output on noised real recordings 3x as rough in time as the recordings) and the
    teacher's Heun samples ended speckled, 7x as rough: more steps (13,776 against 3,000) or a
    cosine learning-rate decay changed neither. Convolutions along the mel axis fix it; 3,000
    steps each, FSDD: denoising error at sigma 0.5 0.0179 -> 0.0052, training loss 0.218 ->
    0.091, Heun-18 samples as rough as the recordings (0.52 against 0.50; without the head 3.4),
    teacher DNSMOS 1.28 -> 1.97, for 1.9x the step time.

    Plans written before a change record the network they trained (Plan.net); those written
    before plans recorded it trained ``channel_mult`` (1, 2, 2) without the head."""
    if minutes < SMALL_MINUTES:
        net = ["net.channels=32", "net.channel_mult=[1, 2]", "net.num_blocks=1", "net.attention=false"]
    else:
        net = [
            "net.channels=64",
            f"net.channel_mult={list(channel_mult)}",
            "net.num_blocks=2",
            "net.attention=true",
            "net.attn_heads=4",
            *([f"net.freq_channels={freq_channels}"] if freq_channels else []),
        ]
    return ["net.arch='unet1d'", *net, *(["net.label_dropout=0.1"] if labelled else [])]


def probe_seconds(log: Path, batch: int) -> float:
    """Seconds per training step from a probe run's log.jsonl (one line a step): the median of
    batch / examples_per_s over its steps after the first, which leaves out what a run pays once
    (data loading, building the network, the first step's warm-up, saving) and load spikes."""
    rates = [json.loads(line)["examples_per_s"] for line in log.read_text().splitlines()[1:]]
    if not rates:
        raise FitError(f"{log}: the speed probe logged no step")
    return batch / sorted(rates)[len(rates) // 2]


def check_step(steps: int, fraction: float) -> int:
    """The step at which a training stage planned at ``steps`` checks its plan; ``steps`` or
    more: no check (a run too short to gain from it)."""
    return max(CHECK_MIN, int(fraction * steps))


def revise_steps(rows: list[dict], budget: float) -> tuple[int, float]:
    """(steps, seconds a step) for a stage with ``budget`` seconds, from its log so far (rows of
    log.jsonl with "step" and "elapsed_s", the run's own clock, resumes included): the seconds a
    step took over the second half of the steps so far (over all of them when the log has one row
    there), and as many more steps as REVISED_SAFETY of what is left of the budget pays for (at
    least MIN_STEPS in all, the plan's floor)."""
    if not rows:
        raise FitError("the training log is empty: cannot check the plan")
    last = rows[-1]
    half = [r for r in rows if r["step"] >= last["step"] // 2 and r is not last]
    first = half[0] if half else {"step": 0, "elapsed_s": 0.0}
    per_step = (last["elapsed_s"] - first["elapsed_s"]) / max(1, last["step"] - first["step"])
    left = REVISED_SAFETY * budget - last["elapsed_s"]
    return max(MIN_STEPS, last["step"] + max(0, int(left / max(per_step, 1e-6)))), per_step


def fixed_seconds(calls: int, vocoded: int, per_call: float, per_vocoded: float) -> float:
    """What a fixed-work stage is expected to take: its network calls and vocoded clips at the
    probe's per-clip seconds, with room for loading and scoring."""
    return FIXED_MARGIN * (calls * per_call + vocoded * per_vocoded) + FIXED_SECONDS


def share_budget(total: float, fixed: dict[str, float], teacher: bool) -> dict[str, float]:
    """Seconds per stage: the fixed-work stages' estimates, the rest to training (all of it to the
    student when there is no teacher). A budget smaller than the fixed work leaves training none:
    the steps' floor (MIN_STEPS) still trains a little."""
    rest = max(0.0, total - sum(fixed.values()))
    shares = TRAIN_SHARES if teacher else {"teacher": 0.0, "student": 1.0}
    return {**{k: v * rest for k, v in shares.items()}, **fixed}
