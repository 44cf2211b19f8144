"""The stages of a fit, each resumable: data, teacher, student, sigmas, export, evaluate.

RUN/ holds plan.json, data/ (the clips and manifest.jsonl), teacher/ and student/ (training run
folders, resumed exactly after a kill), student-sigmas.safetensors, model.safetensors (the
result: float16, the searched sigmas inside), eval/ (report and spectrograms) and done/<stage>
markers. Each stage is one library call: cmaudio.training.run, evaluation.search.search,
checkpoint.save_model, evaluation.report.evaluate.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..config import TrainConfig, load_config
from .plan import BATCH, CHECK_FRACTIONS, FitOptions, Plan, check_step, revise_steps

__all__ = ["STAGES", "Stages", "fixed_work", "slice_clips"]

STAGES = ("teacher", "student", "sigmas", "export", "evaluate")
SEARCH_STEPS = (2, 4)  # step counts whose sigmas are searched
SEARCH_ITERS = 5  # golden-section iterations per free sigma
EVAL_STEPS = (1, 2, 4)
SPECTROGRAM_CLIPS = 8  # the spectrogram grid's clips, one per label, at 2 steps


def slice_clips(plan: Plan, split: str) -> int:
    """Clips generated against a held-out slice: two per real clip, 8 to 64."""
    return max(8, min(64, 2 * plan.clips.get(split, 0)))


def fixed_work(plan: Plan) -> dict[str, tuple[int, int]]:
    """(network calls, vocoded clips) of the stages whose work the data fixes, not the budget:
    the plan turns them into seconds with the probe's per-clip costs and gives the rest of the
    budget to training."""
    from ..evaluation.search import search_evaluations

    n_s, n_e = slice_clips(plan, "valid"), slice_clips(plan, "test")
    search_calls = n_s * sum(k * search_evaluations(k, SEARCH_ITERS) for k in SEARCH_STEPS)
    # evaluate: each setting's warm-up clip and N clips; copy synthesis of N training clips; the grid
    eval_calls = (n_e + 1) * sum(EVAL_STEPS) + 2 * SPECTROGRAM_CLIPS
    eval_vocoded = n_e * (len(EVAL_STEPS) + 1) + len(EVAL_STEPS) + SPECTROGRAM_CLIPS
    return {"sigmas": (search_calls, 0), "evaluate": (eval_calls, eval_vocoded)}


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Stages:
    """Runs the plan's stages in order, skipping those marked done."""

    def __init__(self, out: Path, plan: Plan, options: FitOptions, progress: bool = True, data: Path | None = None):
        self.out, self.plan, self.options, self.progress = out, plan, options, progress
        self.data = data or out / "data"
        self.labelled = bool(plan.labels)

    # --- configs -------------------------------------------------------------------------------
    def train_config(self, stage: str, steps: int, teacher: Path | None = None) -> TrainConfig:
        """The TrainConfig of a training stage over RUN/data (the digits recipe's settings)."""
        o, data = self.options, self.data
        common = [
            f"data.root={str(data)!r}",
            "data.layout='manifest'",
            "data.manifest='manifest.jsonl'",
            f"data.label_fields={['label'] if self.labelled else []!r}",
            f"data.seconds={self.plan.clip_seconds}",
            "data.gain_db=3.0",
            f"run.steps={steps}",
            f"run.batch_size={BATCH}",
            "run.log_every=20",
            # twenty saves a run, and at most 500 steps apart: a killed fit of hours loses minutes
            f"run.save_every={max(10, min(500, steps // 20))}",
            "run.sample_every=0",
            f"run.device={o.device!r}",
        ]
        if stage == "teacher":
            specific = [
                "name='fit-teacher'",
                "precond.kind='edm'",
                "objective.kind='edm'",
                "optim.lr=1e-3",
                f"optim.warmup_steps={min(200, steps // 10)}",
                "optim.ema_halflife_kimg=20.0",
                f"run.seed={o.seed}",
                *self.plan.net,
            ]
        elif o.source:
            specific = tuning_overrides(o, steps, self.labelled)
        else:
            # Guided CD where there are labels (w = 2: the digits recipe measured 1.5 to 4).
            guidance = 2.0 if self.labelled else 1.0
            specific = [
                "name='fit-student'",
                f"teacher={str(teacher)!r}",
                "precond.kind='consistency'",
                "objective.kind='cd'",
                f"objective.cd.guidance={guidance}",
                "optim.lr=2e-4",
                "optim.warmup_steps=0",
                "optim.ema_halflife_kimg=10.0",
                f"run.seed={o.seed + 1}",
                f"net.label_dropout={0.1 if self.labelled else 0.0}",
            ]
        return load_config(None, common + specific)

    # --- running -------------------------------------------------------------------------------
    def done(self, stage: str) -> bool:
        return (self.out / "done" / stage).is_file()

    def mark(self, stage: str, seconds: float) -> None:
        (self.out / "done").mkdir(exist_ok=True)
        (self.out / "done" / stage).write_text(json.dumps({"seconds": round(seconds, 1)}) + "\n")

    def run(self) -> Path:
        """Every stage not yet done; returns RUN/model.safetensors."""
        for i, stage in enumerate(STAGES):
            if self.done(stage):
                continue
            left = sum(self.plan.budget_seconds.get(s, 0.0) for s in STAGES[i:]) / 60
            say(f"stage {i + 1}/{len(STAGES)}: {stage} (about {left:.1f} min left in all)")
            t0 = time.perf_counter()
            getattr(self, f"stage_{stage}")()
            self.mark(stage, time.perf_counter() - t0)
        return self.out / "model.safetensors"

    def train(self, stage: str, teacher: Path | None = None) -> None:
        """Train ``stage`` to each of its checks (plan.CHECK_FRACTIONS of its steps), revising
        its steps there from how long they took (plan.revise_steps, recorded in plan.json),
        then to the end. The run's schedules (warm-up, ECT's stages) are those first planned."""
        from ..training import run

        folder = self.out / stage
        revised = self.plan.revised.get(stage, {"planned": self.plan.steps[stage], "checks": []})
        cfg = self.train_config(stage, revised["planned"], teacher)
        for fraction in CHECK_FRACTIONS[len(revised["checks"]) :]:
            at = check_step(self.plan.steps[stage], fraction)
            if at >= self.plan.steps[stage] or (revised["checks"] and at <= revised["checks"][-1]["at"]):
                break
            run(with_steps(cfg, at), folder, resume=(folder / "state.pt").exists(), progress=self.progress)
            self.revise(stage, revised, folder / "log.jsonl")
        steps = self.plan.steps[stage]
        run(with_steps(cfg, steps), folder, resume=(folder / "state.pt").exists(), progress=self.progress)

    def revise(self, stage: str, revised: dict, log: Path) -> None:
        """Revise ``stage``'s steps from its log so far (plan.revise_steps). The student's budget
        takes over what the teacher left unused or overran, by the teacher's own clock."""
        rows = read_log(log)
        budget = self.plan.budget_seconds[stage]
        teacher_log = self.out / "teacher" / "log.jsonl"
        if stage == "student" and teacher_log.is_file():
            budget += self.plan.budget_seconds["teacher"] - read_log(teacher_log)[-1]["elapsed_s"]
        steps, per_step = revise_steps(rows, budget)
        before = self.plan.steps[stage]
        check = {"at": rows[-1]["step"], "seconds_per_step": round(per_step, 4), "budget_seconds": round(budget, 1)}
        revised["checks"].append(check | {"steps": steps})
        self.plan.revised[stage] = revised
        self.plan.steps[stage] = steps
        self.plan.save(self.out / "plan.json")
        probe = self.plan.seconds_per_step[stage]
        say(
            f"{stage}: {per_step:.3f} s a step over the second half of its first {rows[-1]['step']}"
            f" (the probe: {probe:.3f}): {before} steps planned, now {steps}"
        )

    def stage_teacher(self) -> None:
        if self.options.source:
            say(f"no teacher: the student is tuned from {self.options.source}")
            return
        self.train("teacher")

    def stage_student(self) -> None:
        self.train("student", teacher=self.out / "teacher" / "model.safetensors")

    def stage_sigmas(self) -> None:
        """The 2- and 4-step sigmas on the held-out valid slice, by log-mel Frechet distance."""
        from ..evaluation.search import SearchConfig, search

        cfg = SearchConfig(
            data=self.out / "data",
            layout="manifest",
            manifest="manifest.jsonl",
            steps=SEARCH_STEPS,
            metric="logmel_fd",
            n=slice_clips(self.plan, "valid"),
            iters=SEARCH_ITERS,
            out=self.out / "student-sigmas.safetensors",
            device=self.options.device,
            seed=self.options.seed,
            progress=self.progress,
        )
        search(self.out / "student" / "model.safetensors", cfg)

    def stage_export(self) -> None:
        """model.safetensors: float16 weights, the searched sigmas, and where they came from."""
        import torch

        from ..checkpoint import load_model, save_model

        mf = load_model(self.out / "student-sigmas.safetensors")
        extra = {k: v for k, v in mf.metadata.items() if k in ("objective", "sigma_search")}
        extra |= {"name": Path(self.options.out).name, "fit_plan": json.dumps(self.plan.options)}
        save_model(self.out / "model.safetensors", mf.model, mf.config, mf.step, extra=extra, dtype=torch.float16)

    def stage_evaluate(self) -> None:
        """Quality versus network calls on the held-out test slice (classifier-free measures),
        and a spectrogram grid of one clip per label at 2 steps."""
        from ..evaluation.report import EvalConfig, evaluate
        from ..pipeline import Pipeline

        pipe = Pipeline.from_pretrained(self.out / "model.safetensors", device=self.options.device)
        cfg = EvalConfig(
            data=self.out / "data",
            layout="manifest",
            manifest="manifest.jsonl",
            n=slice_clips(self.plan, "test"),
            steps=EVAL_STEPS,
            out=self.out / "eval",
            device=self.options.device,
            seed=self.options.seed,
            progress=self.progress,
        )
        evaluate(pipe, cfg)
        write_spectrograms(pipe, self.out / "eval" / "spectrograms.png", self.options.seed, self.plan.labels)


def read_log(log: Path) -> list[dict]:
    """A training run's log.jsonl: its rows with a step time ("elapsed_s"), in order."""
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [r for r in rows if "elapsed_s" in r]


def with_steps(cfg: TrainConfig, steps: int) -> TrainConfig:
    """``cfg`` run to ``steps`` (a run may be resumed with another step count)."""
    import dataclasses

    return dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, steps=steps))


# fit --from: consistency tuning (ECT's loss, Geng et al. 2024) of the model we start from, on the
# new data, with no teacher. ECT's schedule from its first stage: at stage 0 the gap is nearly t
# (r near 0: the target is mostly the data itself), which is what ties the output at high noise,
# where the label decides the content, to the new data; the gap then halves every quarter of the
# run back towards few-step consistency. Started at stage 4 instead (gaps of a few percent of t),
# 2,400 steps from digits on FSDD kept the source's behaviour at high noise: 11% of clips
# recognised at 2 steps (chance 10%). Where every label is known it still wins: a new voice
# (FSDD's yweweler, 15 minutes from a digits-real candidate) kept 62% of the words recognised
# from stage 0 and 39% from stage 2 (classifier FD 123 against 241).
TUNE_START_STAGE = 0
TUNE_STAGES = 4
TUNE_LR = 1e-4
# New labels' rows must move far (training.start.match_new_labels): at lr 1e-4 a row moved 0.3 in
# 2,800 Adam steps, at 20x 2 (FSDD from digits: 7% and 10% recognised, chance 10%); textual
# inversion, the same problem for text-to-image models, learns embeddings at lr 5e-3.
TUNE_LABEL_LR_SCALE = 50.0


def tuning_overrides(options: FitOptions, steps: int, labelled: bool) -> list[str]:
    from ..pipeline import resolve_model_path

    return [
        "name='fit-tuned'",
        f"init={str(resolve_model_path(options.source))!r}",
        "precond.kind='consistency'",
        "objective.kind='ect'",
        f"objective.ect.start_stage={TUNE_START_STAGE}",
        f"objective.ect.stage_steps={max(1, steps // TUNE_STAGES)}",
        f"optim.lr={TUNE_LR}",
        f"optim.label_lr_scale={TUNE_LABEL_LR_SCALE}",
        "optim.warmup_steps=0",
        "optim.ema_halflife_kimg=10.0",
        f"run.seed={options.seed + 1}",
        f"net.label_dropout={0.1 if labelled else 0.0}",
    ]


def write_spectrograms(pipe, path: Path, seed: int, labels: list[str]) -> None:
    """One 2-step clip per label of the data (eight at most), as a spectrogram grid with axes."""
    try:
        from ..plots import spectrogram_grid
    except ImportError:
        return
    from ..audio import denormalise

    labels = labels[:SPECTROGRAM_CLIPS] or [None] * 4
    out = pipe.generate(labels=labels, steps=2, seed=seed)
    spectrogram_grid(denormalise(out.mels, pipe.config.stats), [str(lb) for lb in labels], path, pipe.config.mel)
