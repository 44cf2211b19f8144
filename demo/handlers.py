"""What the demo's events do, free of Gradio: check every input, call the package (Pipeline,
pipeline.limit_peaks, plots.spectrogram_image) and return what the page shows.

Each handler takes the app's ModelCache and a request (GenerateRequest, EditRequest) holding the
values the page or a gradio_client call sent, unchecked. Bad input raises ValueError with a
one-line message; layout.py turns it into a message in the page (the client's AppError).
"""

from __future__ import annotations

import math
import os
import random
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cmaudio.audio import AudioError, denormalise, load_audio
from cmaudio.pipeline import MAX_STEPS, GenerationOutput, Pipeline, bundled_models, limit_peaks
from cmaudio.plots import spectrogram_image

MAX_CLIPS = 8
MAX_DURATION_S = 10.0  # generated clips and continuations; longer than the model's clip -> long audio
MIN_DURATION_S = 0.1
MAX_UPLOAD_S = 30.0
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_SEED = 2**31 - 1
MAX_GUIDANCE = 5.0
AUTO_VOCODER = "auto"
EACH_CLASS = "(each in turn)"  # one-factor models: clip k gets class k mod n
NO_LABEL = "(none)"  # edits: condition on nothing (the null class)
ANY = "(any)"  # second factor left at its null class
EDIT_MODES = ("inpaint", "continue", "variation")


# ----------------------------------------------------------------------------------------------
# Models


def default_models() -> dict[str, str]:
    """Display name -> bundled model name, for every bundled model."""
    return {name: name for name in bundled_models()}


class ModelCache:
    """The pipelines of one app: one per (model, vocoder, guidance), loaded on first use and kept.
    Each app builds its own, so several apps in one process (the tests) share nothing.

    ``models``: display name -> bundled model name or .safetensors path."""

    def __init__(self, models: Mapping[str, str | Path], device: str = "auto"):
        from cmaudio.vocoder import bundled_vocoders

        self.models = dict(models)
        self.names = list(self.models)
        self.vocoders = [AUTO_VOCODER, "griffinlim", *bundled_vocoders()]
        self.device = device
        self._pipes: dict[tuple[str, str, float], Pipeline] = {}
        self._lock = threading.Lock()  # two first requests for one model must not load it twice

    def get(self, model: str, vocoder: str | None = AUTO_VOCODER, guidance: float = 1.0) -> Pipeline:
        if model not in self.models:
            raise ValueError(f"unknown model {model!r}: choose one of {', '.join(self.names)}")
        vocoder = vocoder or AUTO_VOCODER
        if vocoder not in self.vocoders:
            raise ValueError(f"unknown vocoder {vocoder!r}: choose one of {', '.join(self.vocoders)}")
        key = (model, vocoder, guidance)
        with self._lock:
            if key not in self._pipes:
                self._pipes[key] = Pipeline.from_pretrained(
                    self.models[model],
                    device=self.device,
                    vocoder=None if vocoder == AUTO_VOCODER else vocoder,
                    guidance=guidance,
                )
            return self._pipes[key]


# ----------------------------------------------------------------------------------------------
# Input checks (ValueError with a one-line message)


def check_int(value, name: str, lo: int, hi: int) -> int:
    """A whole number in [lo, hi]; API callers may send floats or strings."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if not math.isfinite(f) or f != int(f):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if not lo <= int(f) <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, got {int(f)}")
    return int(f)


def check_float(value, name: str, lo: float, hi: float) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(f) and lo <= f <= hi):
        raise ValueError(f"{name} must be between {lo:g} and {hi:g}, got {value!r}")
    return f


def check_bool(value, name: str) -> bool:
    if value in (None, ""):
        return False
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def resolve_seed(seed) -> int:
    """-1 draws a fresh seed (shown to the user so the clip can be made again); else 0..MAX_SEED."""
    seed = check_int(-1 if seed is None or seed == "" else seed, "seed", -1, MAX_SEED)
    return random.SystemRandom().randrange(MAX_SEED - MAX_CLIPS) if seed == -1 else seed


def parse_sigmas(pipe: Pipeline, text: str | None) -> list[float] | None:
    """Text "80, 0.8" -> [80.0, 0.8] checked against the model's sigma range; empty -> None (use steps)."""
    if text is None or not str(text).strip():
        return None
    try:
        values = [float(x) for x in str(text).replace(" ", ",").split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"sigmas: expected numbers separated by commas, got {text!r}") from None
    if len(values) > MAX_STEPS:
        raise ValueError(f"sigmas: at most {MAX_STEPS} values, got {len(values)}")
    return pipe.sigmas_for(sigmas=values)


def generation_labels(pipe: Pipeline, label: str | None, label2: str | None, n: int) -> list[str | None]:
    """The label string of each of ``n`` clips from the page's label controls: nothing for an
    unconditional model; a class (or every class in turn) for one factor; "pitch:family" for two
    (family ANY leaves it at its null class)."""
    fields = pipe.config.cond_fields
    if not fields:
        return [None] * n
    if len(fields) == 1 and label == EACH_CLASS:
        return [pipe.labels[k % len(pipe.labels)] for k in range(n)]
    text = edit_label(pipe, label, label2)
    if text is None:
        raise ValueError(f"choose a {fields[0]}")
    return [text] * n


def edit_label(pipe: Pipeline, label: str | None, label2: str | None) -> str | None:
    """The conditioning of an edit: None (every factor at its null class) or a label string that
    parse_label accepts. A later factor alone cannot be written as a label string."""
    fields = pipe.config.cond_fields
    given2 = len(fields) > 1 and label2 not in (None, "", ANY)
    if not fields or label in (None, "", NO_LABEL, EACH_CLASS):
        if given2:
            raise ValueError(f"choose a {fields[0]} to go with {fields[1]} {label2!r}")
        return None
    text = f"{label}:{label2}" if given2 else str(label)
    pipe.parse_label(text)
    return text


def hide_path(text: str, path: Path) -> str:
    """A message naming the file the user chose, not the server's upload cache path."""
    return text.replace(str(path), path.name)


def check_upload(path: str | os.PathLike | None) -> Path:
    """An uploaded or recorded file within the size and length caps, before decoding all of it."""
    import soundfile as sf

    if path is None or str(path) == "":
        raise ValueError("upload or record a clip first")
    path = Path(path)
    if not path.is_file():
        raise ValueError("the uploaded file is gone; upload it again")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{path.name}: the file is empty")
    if size > MAX_UPLOAD_BYTES:
        raise ValueError(f"{path.name}: {size / 2**20:.1f} MB is over the {MAX_UPLOAD_BYTES // 2**20} MB upload limit")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AudioError(f"{path.name}: not a readable audio file ({hide_path(reason, path)})") from None
    if info.samplerate <= 0 or info.frames <= 0:
        raise AudioError(f"{path.name}: file holds no samples")
    if info.frames / info.samplerate > MAX_UPLOAD_S:
        raise ValueError(f"{path.name}: {info.frames / info.samplerate:.1f} s is over the {MAX_UPLOAD_S:g} s limit")
    return path


# ----------------------------------------------------------------------------------------------
# What the page shows


def label_choices(pipe: Pipeline) -> list[dict]:
    """Dropdown settings for the model's factors: [generate label, generate label 2, edit label,
    edit label 2]. One factor: its classes (plus every class in turn); two: pitch and family;
    none: hidden."""
    fields, classes = pipe.config.cond_fields, pipe.config.classes
    first = list(classes[0]) if fields else []
    second = list(classes[1]) if len(fields) > 1 else []
    name1 = fields[0] if fields else "label"
    name2 = fields[1] if len(fields) > 1 else "label 2"
    return [
        dict(
            choices=first + ([EACH_CLASS] if len(fields) == 1 else []),
            value=first[0] if first else None,
            label=name1,
            visible=bool(fields),
        ),
        dict(choices=[ANY, *second], value=ANY, label=name2, visible=len(fields) > 1),
        dict(choices=[NO_LABEL, *first], value=NO_LABEL, label=name1, visible=bool(fields)),
        dict(choices=[ANY, *second], value=ANY, label=name2, visible=len(fields) > 1),
    ]


def duration_note(pipe: Pipeline) -> str:
    return f"0 = the model's clip ({pipe.clip_seconds:.2f} s); longer renders by continuation"


def report(out: GenerationOutput, pipe: Pipeline, seeds: Sequence[int]) -> str:
    """One markdown line: what was made, how fast, with what."""
    meta = out.metadata[0] if out.metadata else {}
    sig = ", ".join(f"{s:g}" for s in meta.get("sigmas", []))
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
    clips = out.waveforms.shape[0]
    flagged = [f"clip {k + 1}: {', '.join(m['flags'])}" for k, m in enumerate(out.metadata) if m.get("flags")]
    badge = f" · **flagged** ({'; '.join(flagged)})" if flagged else " · no quality flags"
    guided = f", guidance {pipe.guidance:g}" if pipe.guidance != 1.0 else ""
    return (
        f"**{clips} clip{'s' if clips > 1 else ''}, {out.audio_seconds:.2f} s of audio in {out.seconds:.2f} s: "
        f"{out.x_realtime:.1f}x real time** · {meta.get('steps', 0)} step(s) (sigmas {sig}{guided}) · {seed_text} · "
        f"vocoder {pipe.vocoder.name} · {pipe.device}{badge}"
    )


def pcm16(wav: torch.Tensor) -> np.ndarray:
    """float wav [T] -> int16 [T], scaled down only where it would clip (limit_peaks, as the CLI
    does): the model's level is part of its output, and Gradio would otherwise rescale float
    arrays itself."""
    wav, _ = limit_peaks(wav.detach().float().cpu()[None])
    return (wav[0].numpy() * 32767.0).round().astype(np.int16)


def spectrogram(pipe: Pipeline, mel: torch.Tensor, title: str) -> np.ndarray:
    """A normalised (model-space) mel [n_mels, frames] as an RGB image."""
    return spectrogram_image(denormalise(mel, pipe.config.stats), pipe.config.mel, title)


# ----------------------------------------------------------------------------------------------
# Handlers. Request fields are in the order of the API's inputs, and layout.py names the API's
# parameters after them: renaming or reordering a field breaks gradio_client callers.


@dataclass(frozen=True)
class GenerateRequest:
    """The inputs of /generate as sent (generate checks each): model, label (EACH_CLASS: every
    class in turn), label2 (the second factor, ANY: none), steps, seed (-1: random), clips,
    duration (0: the model's clip), vocoder, sigmas (text; empty: use steps), loop (clips whose
    end flows into their start) and guidance (classifier-free, 1: none); the last two optional,
    so older API calls without them still work)."""

    model: Any
    label: Any
    label2: Any
    steps: Any
    seed: Any
    clips: Any
    duration: Any
    vocoder: Any
    sigmas: Any
    loop: Any = False
    guidance: Any = 1.0


@dataclass(frozen=True)
class EditRequest:
    """The inputs of /edit as sent (edit checks each): model, audio (a file path), mode (one of
    EDIT_MODES), start and end (inpaint, s), seconds (continue), strength (variation), label
    (NO_LABEL: none), label2, steps, seed, vocoder, sigmas."""

    model: Any
    audio: Any
    mode: Any
    start: Any
    end: Any
    seconds: Any
    strength: Any
    label: Any
    label2: Any
    steps: Any
    seed: Any
    vocoder: Any
    sigmas: Any


def generate(cache: ModelCache, req: GenerateRequest) -> tuple:
    """Generate 1-8 clips. Returns MAX_CLIPS wav files (None past ``clips``), MAX_CLIPS
    spectrogram images, a markdown report and the seed used (clip k has seed + k)."""
    guidance = check_float(1.0 if req.guidance in (None, "") else req.guidance, "guidance", 0, MAX_GUIDANCE)
    pipe = cache.get(req.model, req.vocoder, guidance)
    steps = check_int(req.steps, "steps", 1, MAX_STEPS)
    clips = check_int(req.clips, "clips", 1, MAX_CLIPS)
    duration = check_float(0 if req.duration in (None, "") else req.duration, "duration", 0, MAX_DURATION_S)
    if 0 < duration < MIN_DURATION_S:
        raise ValueError(f"duration must be 0 (the model's clip) or {MIN_DURATION_S:g} to {MAX_DURATION_S:g} s")
    sig = parse_sigmas(pipe, req.sigmas)
    labels = generation_labels(pipe, req.label, req.label2, clips)
    seed = resolve_seed(req.seed)
    out = pipe.generate(
        labels=labels,
        steps=None if sig else steps,
        sigmas=sig,
        seed=seed,
        batch_size=MAX_CLIPS,
        duration=duration or None,
        loop=check_bool(req.loop, "loop"),
    )
    seeds = [m["seed"] for m in out.metadata]
    audio = [(out.sample_rate, pcm16(w)) for w in out.waveforms]
    images = [spectrogram(pipe, m, f"{lb or 'clip'} · seed {s}") for m, lb, s in zip(out.mels, labels, seeds)]
    pad = [None] * (MAX_CLIPS - len(audio))
    return (*audio, *pad, *images, *pad, report(out, pipe, seeds), seed)


def edit(cache: ModelCache, req: EditRequest) -> tuple:
    """Inpaint [start, end) s, continue by ``seconds`` or vary at ``strength`` (0..1) an uploaded
    clip. Returns the wav file, its spectrogram, a markdown report and the seed used."""
    pipe = cache.get(req.model, req.vocoder)
    if req.mode not in EDIT_MODES:
        raise ValueError(f"mode must be one of {', '.join(EDIT_MODES)}, got {req.mode!r}")
    steps = check_int(req.steps, "steps", 1, MAX_STEPS)
    sig = parse_sigmas(pipe, req.sigmas)
    cond = edit_label(pipe, req.label, req.label2)
    seed = resolve_seed(req.seed)
    path = check_upload(req.audio)
    try:
        wav = load_audio(path, pipe.sample_rate)
    except AudioError as exc:
        raise AudioError(hide_path(str(exc), path)) from None
    common = dict(steps=None if sig else steps, sigmas=sig, seed=seed, label=cond)
    if req.mode == "inpaint":
        a = check_float(req.start, "start", 0, MAX_UPLOAD_S)
        b = check_float(req.end, "end", 0, MAX_UPLOAD_S)
        out = pipe.inpaint(wav, a, b, **common)
    elif req.mode == "continue":
        out = pipe.continue_audio(wav, check_float(req.seconds, "seconds", MIN_DURATION_S, MAX_DURATION_S), **common)
    else:
        out = pipe.variation(wav, check_float(req.strength, "strength", 0, 1), **common)
    image = spectrogram(pipe, out.mels[0], f"{req.mode} · seed {seed}")
    return (out.sample_rate, pcm16(out.waveforms[0])), image, report(out, pipe, [seed]), seed


def model_controls(cache: ModelCache, model: str) -> tuple[list[dict], str]:
    """The label dropdowns' settings (see label_choices) and the duration note for ``model``."""
    pipe = cache.get(model)
    return label_choices(pipe), duration_note(pipe)
