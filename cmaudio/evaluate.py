"""python -m cmaudio.evaluate: quality against network calls, and the search for a model's sigmas.

Evaluation (``evaluate``): for each sampler setting -- the consistency model at 1, 2, 4 steps and
optionally a teacher's Heun sampler at given network-call budgets -- generate N clips (labels
balanced over the model's first conditioning factor, clip i seeded with seed + i, the same seeds
for every setting so comparisons are paired) and score them against the real test split:

- with a recipe classifier (``--classifier``, cmaudio.classifier; the SC09 protocol of Donahue
  et al. 2019 and Kong et al. 2021): accuracy of the requested label, Frechet distance on its
  embeddings (FID, Heusel et al. 2017), inception score (Salimans et al. 2016), modified
  inception score (Gurumurthy et al. 2017), precision and recall (Kynkäänniemi et al. 2019);
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

Files: OUT/report.json (every score with the classifier file's SHA-256, sample rate, N and
seeds), OUT/report.md (one table) and OUT/quality_vs_calls.png.

Sigma search (``search``, ``--search-sigmas``): on the validation split, the intermediate sigmas
of each step count are tuned by cmaudio.sigma_search (greedy, one point at a time, ternary
search on log sigma) with the same seeds for every candidate, and written into the model file
(ModelConfig.sigmas) as a new file (``--out``) or in place (``--write``). Candidates are scored
on the model's own mels (no vocoder), except the pitch metric, which needs audio.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from .cli import Parser, UsageError, main_wrapper

__all__ = ["evaluate", "search", "pitch_targets", "teacher_levels", "format_markdown", "main"]

METRICS_SEARCH = ("logmel_fd", "classifier_fd", "accuracy", "pitch")
PITCH_MODES = ("auto", "hz", "midi", "off")

EXAMPLES = """examples:
  # quality against network calls: the student at 1/2/4 steps, the teacher at 9/18/35 calls
  python -m cmaudio.evaluate --model runs/digits-student/model.safetensors --data data/digits \\
      --teacher runs/digits-teacher/model.safetensors --teacher-steps 9,18,35 \\
      --classifier runs/digits-classifier/classifier.safetensors --n 500 --out eval/digits
  # no classifier: log-mel FD, pitch accuracy (pYIN), silence and clipping only
  python -m cmaudio.evaluate --model runs/tones-student/model.safetensors --data data/tones --out eval/tones
  # search the 2- and 4-step sigmas on the validation split and write a new model file
  python -m cmaudio.evaluate --model runs/digits-student/model.safetensors --data data/digits \\
      --search-sigmas --steps 2,4 --metric logmel_fd --n 128 --out runs/digits-student/model-tuned.safetensors
  # ... or store them in the model file itself
  python -m cmaudio.evaluate --model runs/tones-student/model.safetensors --data data/tones \\
      --search-sigmas --steps 2 --metric pitch --write
"""

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


def _log(msg: str, progress: bool = True) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# Helpers shared by evaluation and search


def teacher_levels(calls: int, consistency: bool = False) -> int:
    """Sampler levels that fit a budget of network calls: Heun makes 2L - 1 calls with L levels,
    so L = (calls + 1) // 2 (an even budget rounds down: 18 -> 9 levels, 17 calls); a
    consistency model makes one call per level."""
    if calls < 1:
        raise ValueError(f"a call budget must be >= 1, got {calls}")
    return calls if consistency else (calls + 1) // 2


def pitch_targets(config, mode: str = "auto") -> dict[str, float] | None:
    """Target frequency (Hz) of each class of a model's first conditioning factor, or None for an
    unpitched model. ``auto``: a factor named "pitch" or "midi" is MIDI; otherwise class names
    that are all integers in 0..127 are MIDI, all numbers in [20 Hz, Nyquist] are Hz (tones);
    anything else is unpitched. ``hz``/``midi`` force the reading, ``off`` disables it."""
    from .metrics import midi_to_hz

    if mode not in PITCH_MODES:
        raise UsageError(f"--pitch must be one of {', '.join(PITCH_MODES)}, got {mode!r}")
    if mode == "off" or not config.classes:
        return None
    names = config.classes[0]
    try:
        values = [float(x) for x in names]
    except ValueError:
        if mode != "auto":
            raise UsageError(f"--pitch {mode}: class names are not numbers (e.g. {names[0]!r})") from None
        return None
    nyquist = config.mel.sample_rate / 2
    if mode == "auto":
        if config.cond_fields[0] in ("pitch", "midi") or all(v.is_integer() and 0 <= v <= 127 for v in values):
            mode = "midi"
        elif all(20 <= v < nyquist for v in values):
            mode = "hz"
        else:
            return None
    hz = [float(midi_to_hz(v)) for v in values] if mode == "midi" else values
    return dict(zip(names, hz))


def balanced_labels(pipe, n: int) -> list[str | None]:
    """n labels cycling over the first factor's classes (None for an unconditional model)."""
    names = pipe.labels
    return [names[i % len(names)] if names else None for i in range(n)]


def load_clips(
    root,
    mel,
    num_samples: int,
    split: str,
    cond_fields: Sequence[str],
    classes,
    *,
    limit: int | None = None,
    seed: int = 0,
    layout: str = "auto",
    manifest: str = "",
) -> tuple[torch.Tensor, list[str | None]]:
    """Real clips of one split -> (wav [N, num_samples], first-factor label per clip).

    Clips are read, resampled and start-cropped or zero-padded to ``num_samples`` as
    cmaudio.data.AudioFolder does for training; clips whose labels the model does not know, and
    silent or unreadable files, are left out. ``limit``: a seeded random subset of that many,
    balanced over the first factor's classes as far as each class has clips.
    Files are read directly (no feature cache is written into the data folder)."""
    from .audio import AudioError, load_audio
    from .data import SILENCE_PEAK, DatasetError, index_dataset

    items = [it for it in index_dataset(root, layout, manifest, tuple(cond_fields)) if it.split == split]
    known = [set(c) for c in classes]
    items = [it for it in items if all(lab in k for lab, k in zip(it.labels, known))]
    if not items:
        raise DatasetError(f"{root}: no clips with the model's labels in split {split!r}")
    if limit is not None and limit < len(items):
        # Balanced over the first factor like the generated sets (a class-skewed subset would
        # inflate the floor's distances and lower its IS): classes in turn, random within each.
        g = torch.Generator().manual_seed(seed)
        groups: dict[str, list] = {}
        for it in items:
            groups.setdefault(it.labels[0] if it.labels else "", []).append(it)
        queues = [[grp[int(i)] for i in torch.randperm(len(grp), generator=g)] for grp in groups.values()]
        picked: list = []
        while len(picked) < limit:
            picked += [q.pop() for q in queues if q][: limit - len(picked)]
        items = sorted(picked, key=lambda it: it.path)
    wavs, labels = [], []
    for it in items:
        try:
            wav = load_audio(it.path, mel.sample_rate)
        except AudioError:
            continue
        wav = torch.nn.functional.pad(wav[:num_samples], (0, max(0, num_samples - wav.shape[0])))
        if float(wav.abs().max()) < SILENCE_PEAK:
            continue
        wavs.append(wav)
        labels.append(it.labels[0] if it.labels else None)
    if not wavs:
        raise DatasetError(f"{root}: no usable audio in split {split!r}")
    return torch.stack(wavs), labels


class _Scorer:
    """Scores a set of clips against a reference set with every metric that applies."""

    def __init__(self, pipe, classifier=None, pitch: dict[str, float] | None = None, dnsmos: bool = False,
                 k: int = 3, batch_size: int = 64):
        self.pipe = pipe
        self.mel = pipe.config.mel
        self.sr = pipe.sample_rate
        self.clf = classifier
        self.pitch = pitch
        self.dnsmos = dnsmos
        self.k = k
        self.batch_size = batch_size
        self.ref: dict | None = None

    def logmels(self, wavs: torch.Tensor) -> torch.Tensor:
        from .audio import mel_spectrogram

        return torch.cat([mel_spectrogram(wavs[i : i + 256], self.mel) for i in range(0, len(wavs), 256)])

    def features(self, wavs: torch.Tensor | None, logmels: torch.Tensor) -> dict:
        """Everything the metrics need of one set: frame stats, classifier outputs."""
        from .audio import mel_spectrogram
        from .metrics import feature_stats, logmel_frame_stats

        out = {"frame_stats": logmel_frame_stats(logmels)}
        if self.clf is not None:
            clf_mels = logmels
            if self.clf.config.mel != self.mel:
                clf_mels = torch.cat([mel_spectrogram(wavs[i : i + 256], self.clf.config.mel)
                                      for i in range(0, len(wavs), 256)])
            out["probs"], out["emb"] = self.clf.predict(clf_mels, self.batch_size)
            out["emb_stats"] = feature_stats(out["emb"])
        return out

    def set_reference(self, wavs: torch.Tensor) -> None:
        self.ref = self.features(wavs, self.logmels(wavs))

    def score(self, wavs: torch.Tensor, labels: Sequence[str | None], against_reference: bool = True) -> dict:
        """Metrics of clips wav [N, T] whose requested (or, for real clips, true) first-factor
        labels are ``labels``; distances against the reference set unless told not to."""
        from .metrics import (
            clipping_rate,
            frechet_distance,
            inception_score,
            logmel_fd,
            modified_inception_score,
            pitch_accuracy,
            precision_recall,
            silence_rate,
        )

        # An unstable sampler can overflow the vocoder; such clips are scored as silence and
        # counted, rather than turning every distance into NaN.
        bad = ~torch.isfinite(wavs).all(-1)
        m: dict = {"nonfinite_rate": float(bad.double().mean())}
        wavs = torch.where(bad[:, None], torch.zeros_like(wavs), wavs)
        feats = self.features(wavs, self.logmels(wavs))
        ref = self.ref if against_reference else None
        if ref is not None:
            m["logmel_fd"] = logmel_fd(feats["frame_stats"], ref["frame_stats"])
        if self.clf is not None:
            probs = feats["probs"]
            index = {name: i for i, name in enumerate(self.clf.classes)}
            if labels and all(lb in index for lb in labels):
                target = torch.tensor([index[lb] for lb in labels])
                m["accuracy"] = float((probs.argmax(-1) == target).double().mean())
            m["inception_score"] = inception_score(probs)
            m["modified_inception_score"] = modified_inception_score(probs)
            if ref is not None:
                m["classifier_fd"] = frechet_distance(feats["emb_stats"], ref["emb_stats"])
                if min(len(feats["emb"]), len(ref["emb"])) > self.k:
                    m.update(precision_recall(ref["emb"], feats["emb"], k=self.k))
        if self.pitch is not None and labels and all(lb in self.pitch for lb in labels):
            acc, err = pitch_accuracy(wavs, self.sr, [self.pitch[lb] for lb in labels])
            m["pitch_accuracy"] = acc
            voiced = err[~torch.isnan(err)]
            m["pitch_median_abs_cents"] = float(voiced.abs().median()) if len(voiced) else None
        m["silence_rate"] = silence_rate(wavs)
        m["clipping_rate"] = clipping_rate(wavs)
        if self.dnsmos:
            m.update(_dnsmos(wavs, self.sr))
        return m


def _dnsmos(wavs: torch.Tensor, sample_rate: int) -> dict:
    """Mean DNSMOS P.835 (Reddy et al. 2022) scores via speechmos, at 16 kHz."""
    from speechmos import dnsmos

    from .audio import resample

    wavs = resample(wavs, sample_rate, 16000).clamp(-1, 1)
    runs = [dnsmos.run(w.numpy(), sr=16000) for w in wavs]
    return {f"dnsmos_{k}": float(sum(r[f"{k}_mos"] for r in runs) / len(runs)) for k in ("ovrl", "sig", "bak", "p808")}


def _dnsmos_available() -> bool:
    try:
        import speechmos  # noqa: F401
    except ImportError:
        return False
    return True


# ----------------------------------------------------------------------------------------------
# Evaluation


def evaluate(
    model: str | Path,
    data: str | Path,
    n: int = 500,
    steps: Sequence[int] = (1, 2, 4),
    teacher: str | Path | None = None,
    teacher_calls: Sequence[int] = (9, 18, 35),
    classifier: str | Path | None = None,
    out: str | Path | None = None,
    seed: int = 0,
    batch_size: int = 64,
    device: str = "auto",
    vocoder: str | None = None,
    pitch: str = "auto",
    dnsmos: bool = False,
    layout: str = "auto",
    manifest: str = "",
    progress: bool = True,
) -> dict:
    """Score every sampler setting against the real test split (see the module docstring).
    Returns the report; with ``out`` also writes report.json, report.md and quality_vs_calls.png."""
    from . import __version__
    from .classifier import file_sha256, load_classifier
    from .pipeline import Pipeline

    if n < 2:
        raise UsageError(f"--n must be >= 2 (a covariance needs two clips), got {n}")
    pipe = Pipeline.from_pretrained(model, device=device, vocoder=vocoder)
    cfg = pipe.config
    clf, clf_info = None, None
    if classifier is not None:
        clf = load_classifier(classifier, device=pipe.device)
        if clf.config.mel.sample_rate != cfg.mel.sample_rate:
            raise UsageError(f"{classifier}: made for {clf.config.mel.sample_rate} Hz audio, the model makes "
                             f"{cfg.mel.sample_rate} Hz")
        clf_info = {"path": str(classifier), "sha256": file_sha256(classifier), "field": clf.config.cond_field,
                    "classes": list(clf.classes)}
        if cfg.cond_fields and clf.config.cond_field != cfg.cond_fields[0]:
            _log(f"note: the classifier predicts {clf.config.cond_field!r}, the model's first factor is "
                 f"{cfg.cond_fields[0]!r}: no accuracy", progress)
    tpipe = None
    if teacher is not None:
        tpipe = Pipeline.from_pretrained(teacher, device=device, vocoder=vocoder or pipe.vocoder.name)
        if tpipe.config.mel != cfg.mel or tpipe.config.classes != cfg.classes or tpipe.config.frames != cfg.frames:
            raise UsageError(f"{teacher}: the teacher's mel front end, classes or clip length differ from the model's")
    pitch_table = pitch_targets(cfg, pitch)
    if out is not None and not _have_matplotlib():
        _log("note: quality_vs_calls.png needs matplotlib (pip install 'cmaudio[demo]'); it will be skipped", progress)
    use_dnsmos = dnsmos and _dnsmos_available()
    if dnsmos and not use_dnsmos:
        _log("note: --dnsmos needs speechmos (pip install 'cmaudio[eval]'); skipped", progress)

    num = (cfg.frames - 1) * cfg.mel.hop_length
    labels = balanced_labels(pipe, n)
    seeds = [seed, seed + n - 1]
    scorer = _Scorer(pipe, clf, pitch_table, use_dnsmos, batch_size=batch_size)

    _log(f"loading the real test split of {data} ...", progress)
    test_wav, test_labels = load_clips(data, cfg.mel, num, "test", cfg.cond_fields, cfg.classes,
                                       layout=layout, manifest=manifest)
    train_wav, train_labels = load_clips(data, cfg.mel, num, "train", cfg.cond_fields, cfg.classes, limit=n,
                                         seed=seed, layout=layout, manifest=manifest)
    scorer.set_reference(test_wav)

    common = {"sample_rate": pipe.sample_rate, "classifier_sha256": clf_info["sha256"] if clf_info else None}
    rows: list[dict] = []

    def add(setting, group, metrics, *, calls=None, steps_=None, sigmas=None, x_rt=None, n_=None, seeds_=None,
            **more):
        rows.append({"setting": setting, "group": group, "calls": calls, "steps": steps_, "sigmas": sigmas,
                     "x_realtime": x_rt, "n": n_, "seeds": seeds_, **common, **more, "metrics": metrics})

    _log("scoring the real clips ...", progress)
    add("real test (reference)", "real", scorer.score(test_wav, test_labels, against_reference=False),
        n_=len(test_wav))
    add(f"real train, {len(train_wav)} clips (floor)", "floor", scorer.score(train_wav, train_labels),
        n_=len(train_wav), subset_seed=seed)
    with torch.inference_mode():
        mels = scorer.logmels(train_wav)
        voc = torch.cat([pipe.vocoder(mels[i : i + batch_size].to(pipe.device)).float().cpu()
                         for i in range(0, len(mels), batch_size)])
    add(f"real train through {pipe.vocoder.name} (copy synthesis)", "vocoded", scorer.score(voc, train_labels),
        n_=len(train_wav), subset_seed=seed)

    def run_setting(p, k: int, group: str, name: str, **more) -> None:
        p.generate(labels=labels[:1], steps=k, seed=seed)  # warm-up: one-time costs stay out of the timing
        _log(f"{name}: generating {n} clips ...", progress)
        gen = p.generate(labels=labels, steps=k, seed=seed, batch_size=batch_size, progress=progress)
        meta = gen.metadata[0]
        scores = scorer.score(gen.waveforms, labels)
        # Share of clips Pipeline.generate scaled down to the peak ceiling (they would have clipped).
        scores["limited_rate"] = sum(m["gain_db"] < 0 for m in gen.metadata) / len(gen.metadata)
        add(name, group, scores, calls=meta["calls"], steps_=meta["steps"],
            sigmas=meta["sigmas"], x_rt=gen.x_realtime, n_=n, seeds_=seeds, **more)
        r = rows[-1]
        _log(f"  {name}: {r['calls']} calls, {_summary(r['metrics'])}, {gen.x_realtime:.1f}x real time", progress)

    for k in steps:
        kind = "cm" if pipe.is_consistency else "heun"
        run_setting(pipe, k, "model", f"{kind} {k} step{'s' if k > 1 else ''}")
    if tpipe is not None:
        for c in teacher_calls:
            levels = teacher_levels(c, tpipe.is_consistency)
            run_setting(tpipe, levels, "teacher", f"teacher {levels} levels ({c}-call budget)", calls_requested=c)

    report = {
        "model": str(model),
        "model_step": pipe.step,
        "model_kind": "consistency" if pipe.is_consistency else "edm",
        "teacher": str(teacher) if teacher is not None else None,
        "teacher_step": tpipe.step if tpipe is not None else None,
        "vocoder": pipe.vocoder.name,
        "data": str(data),
        "reference": {"split": "test", "clips": len(test_wav)},
        "sample_rate": pipe.sample_rate,
        "clip_seconds": pipe.clip_seconds,
        "n": n,
        "seeds": seeds,
        "labels": "balanced over " + (cfg.cond_fields[0] if cfg.cond_fields else "nothing (unconditional)"),
        "classifier": clf_info,
        "pitch": {"targets": pitch_table, "tolerance_cents": 50.0, "method": "librosa.pyin"} if pitch_table else None,
        "dnsmos": ("speechmos" if use_dnsmos else "not installed") if dnsmos else "not asked",
        "device": str(pipe.device),
        "threads": torch.get_num_threads(),
        "cmaudio_version": __version__,
        "rows": rows,
    }
    if out is not None:
        write_report(report, out)
        _log(f"evaluate: wrote {Path(out) / 'report.json'}, report.md and quality_vs_calls.png", progress)
    return report


def _summary(m: dict) -> str:
    keys = [k for k in ("accuracy", "classifier_fd", "logmel_fd", "pitch_accuracy") if m.get(k) is not None]
    return ", ".join(f"{k} {m[k]:.4g}" for k in keys) or "scored"


def _fmt(value, kind: str) -> str:
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
        cells = [_fmt(r["metrics"].get(key), kind) for key, _, kind in cols]
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


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_report(report: dict, out: str | Path) -> None:
    """OUT/report.json, OUT/report.md and (with matplotlib) OUT/quality_vs_calls.png."""
    from .plots import quality_vs_calls

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(format_markdown(report))
    if not _have_matplotlib():
        return
    rows = report["rows"]
    has = {key for r in rows for key, v in r["metrics"].items() if v is not None}
    panels = [(k, t) for k, t in (("classifier_fd", "FD (classifier embeddings)"), ("logmel_fd", "log-mel FD"))
              if k in has]
    acc = next((k for k in ("accuracy", "pitch_accuracy") if k in has), None)
    if acc:
        panels.append((acc, "accuracy of the requested label" if acc == "accuracy" else "pitch accuracy"))
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


# ----------------------------------------------------------------------------------------------
# Sigma search


def search(
    model: str | Path,
    data: str | Path,
    steps: Sequence[int] = (2, 4),
    metric: str = "logmel_fd",
    n: int = 128,
    seed: int = 0,
    classifier: str | Path | None = None,
    iters: int = 8,
    sweeps: int = 1,
    out: str | Path | None = None,
    write: bool = False,
    batch_size: int = 64,
    device: str = "auto",
    vocoder: str | None = None,
    pitch: str = "auto",
    layout: str = "auto",
    manifest: str = "",
    progress: bool = True,
) -> dict:
    """Search each step count's intermediate sigmas on the validation split and write them into
    the model file (``out``, or in place with ``write``). Returns {steps: result dict}."""
    from .audio import denormalise
    from .classifier import file_sha256, load_classifier
    from .metrics import frechet_distance, logmel_fd, pitch_accuracy
    from .pipeline import Pipeline
    from .sigma_search import search_sigmas, write_sigmas

    if metric not in METRICS_SEARCH:
        raise UsageError(f"--metric must be one of {', '.join(METRICS_SEARCH)}, got {metric!r}")
    if (out is None) == (not write):
        raise UsageError("--search-sigmas writes its result: give --out NEW.safetensors or --write (in place)")
    if n < 2:
        raise UsageError(f"--n must be >= 2, got {n}")
    if any(k < 2 for k in steps):
        raise UsageError("--search-sigmas: every step count must be >= 2 (one step has no free sigma)")
    pipe = Pipeline.from_pretrained(model, device=device, vocoder=vocoder)
    if not pipe.is_consistency:
        raise UsageError(f"{model}: an EDM teacher samples on the Karras grid; sigma search is for consistency models")
    cfg = pipe.config
    if metric in ("classifier_fd", "accuracy") and classifier is None:
        raise UsageError(f"--metric {metric} needs --classifier")
    clf = load_classifier(classifier, device=pipe.device) if classifier is not None else None
    if clf is not None and clf.config.mel != cfg.mel:
        raise UsageError(f"{classifier}: made for another mel front end than the model's")
    pitch_table = pitch_targets(cfg, pitch) if metric == "pitch" else None
    if metric == "pitch" and pitch_table is None:
        raise UsageError(f"--metric pitch: {model} is not a pitched model (see --pitch)")

    labels = balanced_labels(pipe, n)
    seeds = list(range(seed, seed + n))
    num = (cfg.frames - 1) * cfg.mel.hop_length
    ref_stats = None
    if metric in ("logmel_fd", "classifier_fd"):
        _log(f"loading the validation split of {data} ...", progress)
        wav, _ = load_clips(data, cfg.mel, num, "valid", cfg.cond_fields, cfg.classes, layout=layout,
                            manifest=manifest)
        scorer = _Scorer(pipe, clf, batch_size=batch_size)
        feats = scorer.features(wav, scorer.logmels(wav))
        ref_stats = feats["frame_stats"] if metric == "logmel_fd" else feats["emb_stats"]
    if clf is not None:
        index = {name: i for i, name in enumerate(clf.classes)}
        if metric == "accuracy" and not all(lb in index for lb in labels):
            raise UsageError(f"{classifier}: does not know every class of the model's first factor")

    @torch.inference_mode()
    def generate(sigmas: list[float]) -> torch.Tensor:
        """Normalised mels [n, n_mels, frames], the same seeds and labels for every candidate."""
        chunks = []
        for i in range(0, n, batch_size):
            cond = pipe.condition(labels[i : i + batch_size])
            chunks.append(pipe.sample_mels(seeds[i : i + batch_size], cond, sigmas, cfg.frames).cpu())
        return torch.cat(chunks)

    def score(sigmas: list[float]) -> float:
        mels = generate(sigmas)
        if metric == "logmel_fd":
            from .metrics import logmel_frame_stats

            return logmel_fd(logmel_frame_stats(denormalise(mels, cfg.stats)), ref_stats)
        if metric == "pitch":
            wavs = torch.cat([pipe.vocode(mels[i : i + batch_size]).cpu() for i in range(0, n, batch_size)])
            return 1.0 - pitch_accuracy(wavs, pipe.sample_rate, [pitch_table[lb] for lb in labels])[0]
        probs, emb = clf.predict(denormalise(mels, cfg.stats), batch_size)
        if metric == "accuracy":
            target = torch.tensor([index[lb] for lb in labels])
            return 1.0 - float((probs.argmax(-1) == target).double().mean())
        from .metrics import feature_stats

        return frechet_distance(feature_stats(emb), ref_stats)

    shown = {"logmel_fd": "log-mel FD", "classifier_fd": "classifier FD", "accuracy": "1 - accuracy",
             "pitch": "1 - pitch accuracy"}[metric]
    results: dict[str, dict] = {}
    p = cfg.precond
    for k in steps:
        t0 = time.perf_counter()
        _log(f"searching {k} steps ({k - 1} free sigma{'s' if k > 2 else ''}, {iters} iterations each) ...",
             progress)
        res = search_sigmas(score, k, p.sigma_min, p.sigma_max, init=pipe.sigmas_for(k), iters=iters, sweeps=sweeps)
        results[str(k)] = {"sigmas": res.sigmas, "score": res.score, "start": res.start,
                           "start_score": res.start_score, "evaluations": res.evaluations,
                           "seconds": time.perf_counter() - t0}
        print(f"{k} steps: {', '.join(f'{s:.4g}' for s in res.sigmas)}  {shown} {res.score:.4g}  "
              f"(start {', '.join(f'{s:.4g}' for s in res.start)}: {res.start_score:.4g}; "
              f"{res.evaluations} evaluations, {time.perf_counter() - t0:.0f} s)")
    info = {"metric": metric, "split": "valid", "n": n, "seeds": [seed, seed + n - 1], "iters": iters,
            "sweeps": sweeps, "data": str(data), "results": results,
            "classifier_sha256": file_sha256(classifier) if classifier is not None else None}
    target = write_sigmas(model, {k: r["sigmas"] for k, r in results.items()}, out=None if write else out, info=info)
    print(f"wrote sigmas for {', '.join(results)} steps into {target}")
    return results


# ----------------------------------------------------------------------------------------------
# CLI


def _ints(text: str, flag: str, low: int = 1) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"{flag}: expected integers separated by commas, got {text!r}") from None
    if not values or min(values) < low:
        raise UsageError(f"{flag}: need at least one value, each >= {low}, got {text!r}")
    return values


def _body(argv: Sequence[str] | None) -> int:
    p = Parser("cmaudio.evaluate", "Quality against network calls of a model (and its teacher), or search its "
               "intermediate sigmas.", EXAMPLES)
    p.add_argument("--model", required=True, help="bundled name or .safetensors model path")
    p.add_argument("--data", required=True, help="data set folder with a test split (valid for --search-sigmas)")
    p.add_argument("--n", type=int, default=None, help="clips per setting (default 500; 128 for --search-sigmas)")
    p.add_argument("--steps", default=None, help="consistency steps, e.g. 1,2,4 (default; 2,4 for --search-sigmas)")
    p.add_argument("--teacher", default=None, help="teacher model file, sampled with Heun")
    p.add_argument("--teacher-steps", default=None,
                   help="teacher network-call budgets; c calls run (c + 1) // 2 Heun levels (default 9,18,35)")
    p.add_argument("--classifier", default=None, help="recipe classifier file (cmaudio.classifier)")
    p.add_argument("--out", default=None,
                   help="output folder (default ./eval); with --search-sigmas: the new model file")
    p.add_argument("--seed", type=int, default=0, help="first seed; clip i uses seed + i (default 0)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--vocoder", default=None, help="vocoder name or path (default: the best match)")
    p.add_argument("--pitch", default="auto", choices=PITCH_MODES,
                   help="read class names as pitches: auto (default), hz, midi or off")
    p.add_argument("--dnsmos", action="store_true", help="DNSMOS for speech (needs the eval extra: speechmos)")
    p.add_argument("--layout", default="auto", choices=["auto", "folders", "manifest", "nsynth", "ljspeech"])
    p.add_argument("--manifest", default="", help="manifest file relative to --data (layout manifest)")
    p.add_argument("--search-sigmas", action="store_true", help="search the intermediate sigmas instead")
    p.add_argument("--metric", default="logmel_fd", choices=METRICS_SEARCH, help="search metric (default logmel_fd)")
    p.add_argument("--iters", type=int, default=8, help="search: ternary iterations per sigma (default 8)")
    p.add_argument("--sweeps", type=int, default=1, help="search: passes over the sigmas (default 1)")
    p.add_argument("--write", action="store_true", help="search: store the sigmas in --model itself")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    a = p.parse_args(argv)
    if a.batch_size < 1:
        raise UsageError("--batch-size must be >= 1")
    if a.n is not None and a.n < 2:
        raise UsageError(f"--n must be >= 2, got {a.n}")
    if not Path(a.data).is_dir():
        raise UsageError(f"--data {a.data}: no such directory")
    progress = not a.quiet
    try:
        if a.search_sigmas:
            if a.teacher is not None:
                raise UsageError("--teacher has no meaning with --search-sigmas")
            if a.iters < 1 or a.sweeps < 1:
                raise UsageError("--iters and --sweeps must be >= 1")
            if a.out is not None and Path(a.out).suffix != ".safetensors":
                raise UsageError(f"--out {a.out}: with --search-sigmas, give the new model file (.safetensors)")
            search(a.model, a.data, steps=_ints(a.steps or "2,4", "--steps", 2), metric=a.metric, n=a.n or 128,
                   seed=a.seed, classifier=a.classifier, iters=a.iters, sweeps=a.sweeps, out=a.out, write=a.write,
                   batch_size=a.batch_size, device=a.device, vocoder=a.vocoder, pitch=a.pitch, layout=a.layout,
                   manifest=a.manifest, progress=progress)
            return 0
        if a.write:
            raise UsageError("--write belongs to --search-sigmas")
        if a.teacher is None and a.teacher_steps is not None:
            raise UsageError("--teacher-steps needs --teacher")
        out = Path(a.out or "eval")
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out}: exists and is not a folder")
        report = evaluate(a.model, a.data, n=a.n or 500, steps=_ints(a.steps or "1,2,4", "--steps"),
                          teacher=a.teacher, teacher_calls=_ints(a.teacher_steps or "9,18,35", "--teacher-steps"),
                          classifier=a.classifier, out=out, seed=a.seed, batch_size=a.batch_size, device=a.device,
                          vocoder=a.vocoder, pitch=a.pitch, dnsmos=a.dnsmos, layout=a.layout, manifest=a.manifest,
                          progress=progress)
        print(format_markdown(report), end="")
    except ValueError as exc:
        # Pipeline and sampler argument errors are plain ValueErrors; the package's own error
        # classes (subclasses) are reported by main_wrapper.
        if type(exc) is ValueError:
            raise UsageError(str(exc)) from None
        raise
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return main_wrapper("cmaudio.evaluate", _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
