"""Quality against network calls (python -m cmaudio.evaluate): ``evaluate(pipe_or_model, cfg)``
and the report it writes.

For each sampler setting -- the consistency model at 1, 2, 4 steps and optionally a teacher's
Heun sampler at given network-call budgets -- generate N clips (labels balanced over the model's
first conditioning factor, clip i seeded with seed + i, the same seeds for every setting so
comparisons are paired) and score them against the real test split:

- with a recipe classifier (``EvalConfig.classifier``, cmaudio.evaluation.classifier; the SC09
  protocol of Donahue et al. 2019 and Kong et al. 2021): accuracy of the requested label,
  Frechet distance on its embeddings (FID, Heusel et al. 2017), inception score (Salimans et al.
  2016), modified inception score (Gurumurthy et al. 2017), precision and recall (Kynkäänniemi
  et al. 2019);
- with no model at all: the Frechet distance of log-mel frame statistics (the waveform is
  re-analysed by cmaudio.audio.mel_spectrogram, so the vocoder's part is included), silence and
  clipping rates, pitch accuracy by pYIN for pitched models (class names in Hz or MIDI, or a
  "pitch" factor), DNSMOS (speechmos, the optional ``eval`` extra) when asked for speech;
- speed: x-real-time of each setting's generation, vocoder included.

Reference rows: the real test split itself (accuracy, IS, pitch, ... of real audio: the ceiling),
N clips of the real training split against the test split (the floor of every distance at this
N), and the same clips through the vocoder (copy synthesis: what the vocoder alone costs).

Teacher budgets are network calls: Heun with L levels makes 2L - 1 calls (the last step is
Euler), so a budget of c calls runs L = (c + 1) // 2 levels: 9 -> 5 levels (9 calls),
18 -> 9 levels (17 calls), 35 -> 18 levels (35 calls). The table shows the calls really made.

Files (``write_report``): OUT/report.json (every score with the classifier file's SHA-256, sample
rate, N and seeds), OUT/report.md (one table, ``format_markdown``) and OUT/quality_vs_calls.png.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import __version__
from ..errors import EvaluationError
from ..pipeline import Pipeline
from ..plots import quality_vs_calls
from .classifier import file_sha256, load_classifier
from .clips import balanced_labels, load_clips, pitch_targets
from .scoring import Scorer, ScoringOptions, dnsmos_available

__all__ = ["COLUMNS", "EvalConfig", "evaluate", "format_markdown", "teacher_levels", "write_report"]

# (metric key, column title, format) in table order; a column shows when any row has a value.
COLUMNS = (
    ("accuracy", "accuracy", "pct"),
    ("classifier_fd", "FD (classifier)", "num"),
    ("inception_score", "IS", "num"),
    ("modified_inception_score", "mIS", "num"),
    ("precision", "precision", "num"),
    ("recall", "recall", "num"),
    ("logmel_fd", "log-mel FD", "num"),
    ("pitch_accuracy", "pitch accuracy", "pct"),
    ("silence_rate", "silent", "pct"),
    ("clipping_rate", "clipped", "pct"),
    ("limited_rate", "scaled to 0.99 peak", "pct"),
    ("nonfinite_rate", "non-finite", "pct"),
    ("dnsmos_ovrl", "DNSMOS OVRL", "num"),
)
# Metrics the progress line of a setting shows, and those the plot shows (key, axis title).
SUMMARY_KEYS = ("accuracy", "classifier_fd", "logmel_fd", "pitch_accuracy")
PLOT_DISTANCES = (("classifier_fd", "FD (classifier embeddings)"), ("logmel_fd", "log-mel FD"))
PLOT_ACCURACIES = (("accuracy", "accuracy of the requested label"), ("pitch_accuracy", "pitch accuracy"))


@dataclass(frozen=True)
class EvalConfig(ScoringOptions):
    """Options of ``evaluate``; the shared ones (data, classifier, seed, ...) are ScoringOptions'."""

    n: int = 500  # clips per setting
    steps: tuple[int, ...] = (1, 2, 4)  # the model's sampler steps
    teacher: str | Path | None = None  # teacher model file, sampled with Heun
    teacher_calls: tuple[int, ...] = (9, 18, 35)  # its network-call budgets (teacher_levels)
    out: str | Path | None = None  # folder for report.json, report.md, quality_vs_calls.png
    dnsmos: bool = False  # DNSMOS for speech (needs speechmos)
    guidance: float = 1.0  # classifier-free guidance of the model's calls (pipeline.check_guidance)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n < 2:
            raise EvaluationError(f"--n must be >= 2 (a covariance needs two clips), got {self.n}")


def teacher_levels(calls: int, consistency: bool = False) -> int:
    """Sampler levels that fit a budget of network calls: Heun makes 2L - 1 calls with L levels,
    so L = (calls + 1) // 2 (an even budget rounds down: 18 -> 9 levels, 17 calls); a
    consistency model makes one call per level."""
    if calls < 1:
        raise ValueError(f"a call budget must be >= 1, got {calls}")
    return calls if consistency else (calls + 1) // 2


# ----------------------------------------------------------------------------------------------
# Evaluation


def load_classifier_for(pipe: Pipeline, cfg: EvalConfig):
    """The recipe classifier of ``cfg`` (or None) and its report entry."""
    if cfg.classifier is None:
        return None, None
    clf = load_classifier(cfg.classifier, device=pipe.device)
    mcfg = pipe.config
    if clf.config.mel.sample_rate != mcfg.mel.sample_rate:
        raise EvaluationError(f"{cfg.classifier}: made for {clf.config.mel.sample_rate} Hz audio, the model makes "
                              f"{mcfg.mel.sample_rate} Hz")
    info = {"path": str(cfg.classifier), "sha256": file_sha256(cfg.classifier), "field": clf.config.cond_field,
            "classes": list(clf.classes)}
    if mcfg.cond_fields and clf.config.cond_field != mcfg.cond_fields[0]:
        cfg.note(f"note: the classifier predicts {clf.config.cond_field!r}, the model's first factor is "
                 f"{mcfg.cond_fields[0]!r}: no accuracy")
    return clf, info


def load_teacher(pipe: Pipeline, cfg: EvalConfig) -> Pipeline | None:
    """The teacher of ``cfg`` (or None), checked to make clips the model's reference can judge."""
    if cfg.teacher is None:
        return None
    tpipe = Pipeline.from_pretrained(cfg.teacher, device=pipe.device, vocoder=cfg.vocoder or pipe.vocoder.name)
    m, t = pipe.config, tpipe.config
    if t.mel != m.mel or t.classes != m.classes or t.frames != m.frames:
        raise EvaluationError(f"{cfg.teacher}: the teacher's mel front end, classes or clip length differ from "
                              "the model's")
    return tpipe


def make_row(setting: str, group: str, metrics: dict, common: dict, *, calls=None, steps=None, sigmas=None,
             x_realtime=None, n=None, seeds=None, **more) -> dict:
    """One row of the report: what was scored, how, and its metrics."""
    return {"setting": setting, "group": group, "calls": calls, "steps": steps, "sigmas": sigmas,
            "x_realtime": x_realtime, "n": n, "seeds": seeds, **common, **more, "metrics": metrics}


def reference_rows(
    pipe: Pipeline, scorer: Scorer, cfg: EvalConfig, common: dict
) -> tuple[list[dict], int, set[str | None]]:
    """Load the real test split (the scorer's reference) and N training clips; score the test
    split (ceiling), the training clips (floor) and those through the vocoder (copy synthesis).
    Returns (rows, clips in the test split, the labels those clips hold)."""
    mcfg = pipe.config
    num = (mcfg.frames - 1) * mcfg.mel.hop_length
    cfg.note(f"loading the real test split of {cfg.data} ...")
    test_wav, test_labels = load_clips(cfg.data, mcfg.mel, num, "test", mcfg.cond_fields, mcfg.classes,
                                       layout=cfg.layout, manifest=cfg.manifest, progress=cfg.progress)
    train_wav, train_labels = load_clips(cfg.data, mcfg.mel, num, "train", mcfg.cond_fields, mcfg.classes,
                                         limit=cfg.n, seed=cfg.seed, layout=cfg.layout, manifest=cfg.manifest,
                                         progress=cfg.progress)
    scorer.set_reference(test_wav)
    cfg.note("scoring the real clips ...")
    rows = [make_row("real test (reference)", "real", scorer.score(test_wav, test_labels, against_reference=False),
                     common, n=len(test_wav)),
            make_row(f"real train, {len(train_wav)} clips (floor)", "floor", scorer.score(train_wav, train_labels),
                     common, n=len(train_wav), subset_seed=cfg.seed)]
    bs = cfg.batch_size
    with torch.inference_mode():
        mels = scorer.logmels(train_wav)
        voc = torch.cat([pipe.vocoder(mels[i : i + bs].to(pipe.device)).float().cpu() for i in range(0, len(mels), bs)])
    rows.append(make_row(f"real train through {pipe.vocoder.name} (copy synthesis)", "vocoded",
                         scorer.score(voc, train_labels), common, n=len(train_wav), subset_seed=cfg.seed))
    return rows, len(test_wav), set(test_labels)


def setting_row(pipe: Pipeline, k: int, group: str, name: str, labels: list, scorer: Scorer, cfg: EvalConfig,
                common: dict, **more) -> dict:
    """Generate N clips with ``k`` sampler levels (after a warm-up, so one-time costs stay out of
    the timing) and score them."""
    pipe.generate(labels=labels[:1], steps=k, seed=cfg.seed)
    cfg.note(f"{name}: generating {cfg.n} clips ...")
    gen = pipe.generate(labels=labels, steps=k, seed=cfg.seed, batch_size=cfg.batch_size, progress=cfg.progress)
    meta = gen.metadata[0]
    scores = scorer.score(gen.waveforms, labels)
    # Share of clips Pipeline.generate scaled down to the peak ceiling (they would have clipped).
    scores["limited_rate"] = sum(m["gain_db"] < 0 for m in gen.metadata) / len(gen.metadata)
    row = make_row(name, group, scores, common, calls=meta["calls"], steps=meta["steps"], sigmas=meta["sigmas"],
                   x_realtime=gen.x_realtime, n=cfg.n, seeds=[cfg.seed, cfg.seed + cfg.n - 1], **more)
    summary = ", ".join(f"{key} {scores[key]:.4g}" for key in SUMMARY_KEYS if scores.get(key) is not None) or "scored"
    cfg.note(f"  {name}: {row['calls']} calls, {summary}, {gen.x_realtime:.1f}x real time")
    return row


def evaluate(pipe_or_model: Pipeline | str | Path, cfg: EvalConfig) -> dict:
    """Score every sampler setting against the real test split (see the module docstring).
    ``pipe_or_model``: a Pipeline, or a bundled name or model file loaded with ``cfg.device`` and
    ``cfg.vocoder``. Returns the report; with ``cfg.out`` also writes report.json, report.md and
    quality_vs_calls.png. Option errors are EvaluationErrors."""
    pipe = pipe_or_model
    if not isinstance(pipe, Pipeline):
        pipe = Pipeline.from_pretrained(pipe_or_model, device=cfg.device, vocoder=cfg.vocoder, guidance=cfg.guidance)
    mcfg = pipe.config
    clf, clf_info = load_classifier_for(pipe, cfg)
    tpipe = load_teacher(pipe, cfg)
    pitch_table = pitch_targets(mcfg, cfg.pitch)
    if cfg.out is not None and not have_matplotlib():
        cfg.note("note: quality_vs_calls.png needs matplotlib (pip install 'cmaudio[demo]'); it will be skipped")
    use_dnsmos = cfg.dnsmos and dnsmos_available()
    if cfg.dnsmos and not use_dnsmos:
        cfg.note("note: --dnsmos needs speechmos (pip install 'cmaudio[eval]'); skipped")
    scorer = Scorer(pipe, clf, pitch_table, use_dnsmos, batch_size=cfg.batch_size)
    common = {"sample_rate": pipe.sample_rate, "classifier_sha256": clf_info["sha256"] if clf_info else None}
    rows, test_clips, present = reference_rows(pipe, scorer, cfg, common)
    # Only the classes the reference data holds: a model tuned from another (fit --from) keeps
    # its source's labels too, which this data cannot score.
    labels = balanced_labels(pipe, cfg.n, present)
    kind = "cm" if pipe.is_consistency else "heun"
    for k in cfg.steps:
        rows.append(setting_row(pipe, k, "model", f"{kind} {k} step{'s' if k > 1 else ''}", labels, scorer, cfg,
                                common))
    if tpipe is not None:
        for c in cfg.teacher_calls:
            levels = teacher_levels(c, tpipe.is_consistency)
            rows.append(setting_row(tpipe, levels, "teacher", f"teacher {levels} levels ({c}-call budget)", labels,
                                    scorer, cfg, common, calls_requested=c))
    report = {
        "model": pipe.name,
        "model_step": pipe.step,
        "model_kind": "consistency" if pipe.is_consistency else "edm",
        "teacher": str(cfg.teacher) if cfg.teacher is not None else None,
        "teacher_step": tpipe.step if tpipe is not None else None,
        "vocoder": pipe.vocoder.name,
        "data": str(cfg.data),
        "reference": {"split": "test", "clips": test_clips},
        "sample_rate": pipe.sample_rate,
        "clip_seconds": pipe.clip_seconds,
        "n": cfg.n,
        "seeds": [cfg.seed, cfg.seed + cfg.n - 1],
        "labels": "balanced over " + (mcfg.cond_fields[0] if mcfg.cond_fields else "nothing (unconditional)"),
        "classifier": clf_info,
        "pitch": {"targets": pitch_table, "tolerance_cents": 50.0, "method": "librosa.pyin"} if pitch_table else None,
        "dnsmos": ("speechmos" if use_dnsmos else "not installed") if cfg.dnsmos else "not asked",
        "device": str(pipe.device),
        "threads": torch.get_num_threads(),
        "cmaudio_version": __version__,
        "rows": rows,
    }
    if cfg.out is not None:
        write_report(report, cfg.out)
        cfg.note(f"evaluate: wrote {Path(cfg.out) / 'report.json'}, report.md and quality_vs_calls.png")
    return report


# ----------------------------------------------------------------------------------------------
# Report files


def format_value(value, kind: str) -> str:
    """A table cell: "-" for no value, a percentage for ``pct``, else 3 decimals or 3 digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    return f"{value:.3g}" if abs(value) >= 1000 or abs(value) < 0.01 and value != 0 else f"{value:.3f}"


def format_markdown(report: dict) -> str:
    """report.md: a header naming what was measured and one table."""
    rows = report["rows"]
    # The non-finite column only appears when some clip was non-finite.
    cols = [c for c in COLUMNS
            if any(r["metrics"].get(c[0]) is not None and (c[0] != "nonfinite_rate" or r["metrics"][c[0]] > 0)
                   for r in rows)]
    clf = report["classifier"]
    lines = [
        f"# Evaluation of {report['model']}",
        "",
        f"- data: {report['data']} (reference: the {report['reference']['split']} split, "
        f"{report['reference']['clips']} clips); sample rate {report['sample_rate']} Hz, "
        f"clips of {report['clip_seconds']:.3f} s",
        f"- generated: N = {report['n']} per setting, {report['labels']}, seeds {report['seeds'][0]}.."
        f"{report['seeds'][1]} (the same for every setting); vocoder {report['vocoder']}; device "
        f"{report['device']}",
        f"- classifier: {clf['path']} (sha256 {clf['sha256']})" if clf else "- classifier: none",
    ]
    if report["teacher"]:
        lines.append(f"- teacher: {report['teacher']} (Heun: L levels = 2L - 1 network calls)")
    lines += [
        "",
        "| setting | network calls | " + " | ".join(c[1] for c in cols) + " | x-real-time |",
        "|---|---|" + "---|" * len(cols) + "---|",
    ]
    for r in rows:
        cells = [format_value(r["metrics"].get(key), kind) for key, _, kind in cols]
        calls = "-" if r["calls"] is None else str(r["calls"])
        xrt = "-" if r["x_realtime"] is None else f"{r['x_realtime']:.1f}"
        lines.append(f"| {r['setting']} | {calls} | " + " | ".join(cells) + f" | {xrt} |")
    lines += [
        "",
        "FD: Frechet distance (lower is better); IS, mIS: inception and modified inception scores; "
        "precision/recall: k-NN manifolds (k = 3) of the classifier embeddings; pitch accuracy: pYIN "
        "within 50 cents of the requested pitch. The floor row is real training audio against the real "
        "test split at the same N: no model can be expected to beat it.",
    ]
    return "\n".join(lines) + "\n"


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_report(report: dict, out: str | Path) -> None:
    """OUT/report.json, OUT/report.md and (with matplotlib) OUT/quality_vs_calls.png."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(format_markdown(report))
    if not have_matplotlib():
        return
    rows = report["rows"]
    has = {key for r in rows for key, v in r["metrics"].items() if v is not None}
    panels = [(k, t) for k, t in PLOT_DISTANCES if k in has]
    panels += [(k, t) for k, t in PLOT_ACCURACIES if k in has][:1]
    series = [r for r in rows if r["group"] in ("model", "teacher")]
    floor = next((r for r in rows if r["group"] == "floor"), None)
    floors = {k: floor["metrics"].get(k) for k, _ in panels} if floor else {}
    quality_vs_calls(
        [{"group": "consistency model" if r["group"] == "model" else "teacher (Heun)", "calls": r["calls"],
          "metrics": r["metrics"]} for r in series],
        out / "quality_vs_calls.png",
        metrics=panels,
        floors=floors,
        title=f"{Path(report['model']).parent.name or report['model']}: N = {report['n']}",
    )
