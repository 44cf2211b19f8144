"""Your own sounds: a folder of recordings to a fast consistency model in one call.

    from cmaudio.fitting import FitOptions, fit
    fit(FitOptions(data="my_sounds", out="runs/mine", labels="filename", minutes=30))

What it does (python -m cmaudio.fit is the command line): find the files and their labels
(corpus.py), cut them into clips of one length, hold out a slice by file, turn the time budget
into a step plan (plan.py), then train an EDM teacher, distil a (guided) consistency student,
choose its 2- and 4-step sigmas on the held-out slice, export RUN/model.safetensors and
evaluate it (stages.py). Every stage resumes where a killed run stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from .corpus import SR, Clips, assign_splits, cut_clips, find_sources, write_corpus
from .plan import (
    BATCH,
    MIN_CLIPS,
    MIN_STEPS,
    PROBE_STEPS,
    SAFETY,
    FitError,
    FitOptions,
    Plan,
    fingerprint,
    fixed_seconds,
    net_overrides,
    probe_seconds,
    share_budget,
)
from .stages import STAGES, Stages, fixed_work

__all__ = ["FitError", "FitOptions", "FitResult", "fit"]


@dataclass
class FitResult:
    model: Path | None  # RUN/model.safetensors (None for a dry run)
    plan: Plan
    already_done: bool = False


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def check_out(out: Path) -> Path | None:
    """RUN/plan.json of a fit to continue, or None for a new one; a folder holding anything else
    is refused."""
    plan = out / "plan.json"
    if plan.is_file():
        return plan
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FitError(f"{out} already holds something that is not a fit: choose a new --out")
    return None


def describe(clips: Clips, splits: list[str], mode: str, seconds: float, why: str) -> None:
    """The labels and clip counts found, before anything is trained."""
    files = len(set(clips.files))
    say(f"found {files} usable files -> {len(clips.labels)} clips of {seconds:g} s ({why})")
    if clips.skipped:
        say("skipped files: " + ", ".join(f"{n} {reason}" for reason, n in clips.skipped.most_common()))
    per_split = Counter(splits)
    say(
        f"splits: {per_split['train']} train, {per_split['valid']} valid, {per_split['test']} test clips "
        "(held out by file)"
    )
    if mode != "none":
        counts = Counter(str(lb) for lb in clips.labels)
        shown = ", ".join(f"{lb}: {n}" for lb, n in sorted(counts.items())[:30])
        say(f"labels ({mode}, {len(counts)}): {shown}{' ...' if len(counts) > 30 else ''}")
    else:
        say("labels: none (an unconditional model)")


def validate(clips: Clips, mode: str, data: Path) -> None:
    if len(clips.labels) < MIN_CLIPS:
        extra = f" ({sum(clips.skipped.values())} files unusable)" if clips.skipped else ""
        raise FitError(f"{data}: {len(clips.labels)} usable clips{extra}; a fit needs at least {MIN_CLIPS}")
    if mode != "none":
        labels = {str(lb) for lb in clips.labels}
        if len(labels) < 2:
            raise FitError(
                f"{data}: only one label ({labels.pop()}) found with --labels {mode}; "
                "use --labels none for an unconditional model"
            )


def make_plan(options: FitOptions, fp: str, data: Path, info: dict, t_start: float) -> Plan:
    """Measure a training step of the teacher and of the student here, and a sampling call and a
    vocoded clip of the probe's student; share what is left of the budget after reading the data
    and this probe (plan.share_budget)."""
    draft = Plan(
        fp, asdict(options), info["seconds"], info["why"], info["labels"], info["clips"], info["skipped"], {}, {}, {}
    )
    draft.net = [] if options.source else net_overrides(bool(info["labels"]), options.minutes)
    with tempfile.TemporaryDirectory(prefix="cmaudio-probe-") as tmp, contextlib.redirect_stderr(io.StringIO()):
        stages = Stages(Path(tmp), draft, options, progress=False, data=data)
        t_teacher = 0.0 if options.source else probe_seconds(probe_run(stages, "teacher", 1 + PROBE_STEPS), BATCH)
        student_log = probe_run(stages, "student", 1 + PROBE_STEPS)
        t_student = probe_seconds(student_log, BATCH)
        per_call, per_vocoded = probe_clip_seconds(student_log.parent / "model.safetensors", options.device)
    draft.seconds_per_step = {"teacher": t_teacher, "student": t_student}
    draft.seconds_per_clip = {"call": per_call, "vocoded": per_vocoded}
    fixed = {k: fixed_seconds(*work, per_call, per_vocoded) for k, work in fixed_work(draft).items()}
    prep = time.perf_counter() - t_start
    shared = share_budget(options.minutes * 60 - prep, fixed, teacher=not options.source)
    draft.budget_seconds = {"data": prep, **shared}
    draft.steps = {
        "teacher": max(MIN_STEPS, int(SAFETY * draft.budget_seconds["teacher"] / t_teacher)) if t_teacher else 0,
        "student": max(MIN_STEPS, int(SAFETY * draft.budget_seconds["student"] / t_student)),
    }
    return draft


def probe_clip_seconds(model: Path, device: str, batch: int = BATCH, repeats: int = 3) -> tuple[float, float]:
    """Seconds per clip of one sampling call and of the vocoder, for ``model`` at ``batch`` clips
    (bench's time_call: the median after a warm-up, CUDA synchronised)."""
    import torch

    from ..evaluation.bench import time_call
    from ..pipeline import Pipeline

    pipe = Pipeline.from_pretrained(model, device=device)
    cond = pipe.condition([None] * batch)  # the null label: the same network cost as any other
    sigmas = [pipe.config.precond.sigma_max]
    with torch.inference_mode():

        def call() -> torch.Tensor:
            return pipe.sample_mels(list(range(batch)), cond, sigmas, pipe.config.frames)

        mels = call()
        per_call = time_call(call, pipe.device, repeats, 0.0)
        per_vocoded = time_call(lambda: pipe.vocode(mels), pipe.device, repeats, 0.0)
    return per_call / batch, per_vocoded / batch


def probe_run(stages: Stages, stage: str, steps: int) -> Path:
    """A fresh training run of ``stage`` for ``steps`` steps, logging every step; its log."""
    from ..training import run

    teacher = None
    if stage == "student" and not stages.options.source:
        teacher = stages.out / "t0" / "model.safetensors"
        if not teacher.exists():
            run(stages.train_config("teacher", 1), stages.out / "t0", progress=False)
    folder = stages.out / f"{stage}-{time.perf_counter_ns()}"
    cfg = stages.train_config(stage, steps, teacher)
    run(dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, log_every=1)), folder, progress=False)
    return folder / "log.jsonl"


def source_seconds(options: FitOptions) -> float | None:
    """The clip length of the --from model (a model file or a bundled name), None without one.
    Its length wins over the data's: its network, sigmas and habits were learned at that length."""
    if not options.source:
        return None
    from ..checkpoint import load_model
    from ..errors import CheckpointError
    from ..pipeline import resolve_model_path

    try:
        cfg = load_model(resolve_model_path(options.source)).config
    except CheckpointError as exc:
        raise FitError(f"--from: {exc}") from None
    if cfg.precond.kind != "consistency" or cfg.mel.sample_rate != SR:
        raise FitError(f"--from {options.source}: need a {SR} Hz consistency model (a generator, not a teacher)")
    return (cfg.frames - 1) * cfg.mel.hop_length / cfg.mel.sample_rate


def prepare(options: FitOptions, out: Path, fp: str, sources, mode: str, dry_run: bool) -> Plan:
    """Read and cut the clips, describe them, write RUN/data (a temporary folder for a dry run,
    removed after) and make the plan."""
    t0 = time.perf_counter()
    start = source_seconds(options)
    clips, seconds, why = cut_clips(sources, options.seconds or start)
    if start and not options.seconds:
        why = f"the clip length of {options.source}, the model it starts from (--seconds overrides)"
    splits = assign_splits(clips, seed=options.seed)
    describe(clips, splits, mode, seconds, why)
    validate(clips, mode, Path(options.data))
    labels = sorted({str(lb) for lb in clips.labels}) if mode != "none" else []
    info = {
        "seconds": seconds,
        "why": why,
        "labels": labels,
        "clips": dict(Counter(splits)),
        "skipped": dict(clips.skipped),
    }
    if dry_run:
        with tempfile.TemporaryDirectory(prefix="cmaudio-fit-") as tmp:
            write_corpus(clips, splits, Path(tmp))
            return make_plan(options, fp, Path(tmp), info, t0)
    write_corpus(clips, splits, out / "data")
    return make_plan(options, fp, out / "data", info, t0)


def fit(options: FitOptions, *, dry_run: bool = False, progress: bool = True) -> FitResult:
    """Run (or continue) the fit ``options`` describes; see the module docstring."""
    out, data = Path(options.out), Path(options.data)
    plan_path = check_out(out)
    sources, mode = find_sources(data, options.labels, options.manifest, options.label_pattern)
    fp = fingerprint([s.path for s in sources], options)
    if plan_path is not None:
        plan = Plan.load(plan_path)
        if plan.fingerprint != fp:
            raise FitError(f"{out} holds a fit of other data or flags: give a new --out (or the same command)")
        if all((out / "done" / s).is_file() for s in STAGES):
            say(f"{out}: this fit is complete; model: {out / 'model.safetensors'}")
            return FitResult(out / "model.safetensors", plan, already_done=True)
        say(f"{out}: continuing the fit started {plan.created}")
    else:
        plan = prepare(options, out, fp, sources, mode, dry_run)
        if not dry_run:
            plan.save(out / "plan.json")
    say(plan.summary())
    if dry_run:
        return FitResult(None, plan)
    model = Stages(out, plan, options, progress).run()
    say(closing(out, plan, model))
    return FitResult(model, plan)


def closing(out: Path, plan: Plan, model: Path) -> str:
    """The last lines: the held-out quality, the time against the budget, the commands to use it."""
    spent = plan.budget_seconds.get("data", 0.0) + sum(
        json.loads((out / "done" / s).read_text())["seconds"] for s in STAGES if (out / "done" / s).is_file()
    )
    lines = []
    report = out / "eval" / "report.json"
    if report.is_file():
        rows = json.loads(report.read_text()).get("rows", [])
        fds = [
            f"{r['setting']}: {r['metrics']['logmel_fd']:.1f}"
            for r in rows
            if r.get("group") == "model" and "logmel_fd" in r.get("metrics", {})
        ]
        if fds:
            lines.append("held-out log-mel FD (lower is better): " + ", ".join(fds) + f"  ({out / 'eval'})")
    label = f" --label {plan.labels[0]}" if plan.labels else ""
    lines += [
        f"done in {spent / 60:.1f} min of a {plan.options['minutes']:g} min budget: {model}",
        f"  python -m cmaudio.generate --model {model}{label}",
        f"  python demo/app.py --model {model}",
    ]
    return "\n".join(lines)
