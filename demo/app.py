"""Gradio web demo of cmaudio: generate clips and edit audio in the browser, on the same Pipeline
as ``python -m cmaudio.generate``.

    python demo/app.py                                          # the bundled models
    python demo/app.py --model runs/tones-student/model.safetensors --port 7860
    python demo/app.py --model digits --host 0.0.0.0 --share    # a public link

Generate tab: model, label (or pitch and instrument family for a two-factor model), steps, seed,
clips, duration (longer than the model's clip renders long audio by continuation), vocoder and an
explicit sigma list; each clip comes back as an audio player and a spectrogram, with the time
taken and the speed in x-real-time. Edit tab: an uploaded or recorded clip (resampled to the
model's rate) is inpainted over a time span, continued, or varied at a strength.

API (``gradio_client``): ``/generate`` and ``/edit``, e.g.

    from gradio_client import Client, handle_file
    c = Client("http://127.0.0.1:7860/")
    out = c.predict(model="digits", label="seven", label2=None, steps=2, seed=0, clips=1, duration=0,
                    vocoder="auto", sigmas="", api_name="/generate")
    out[0]    # wav file of clip 1; out[MAX_CLIPS] its spectrogram png; out[-2] the report; out[-1] the seed
    c.predict(model="digits", audio=handle_file("in.wav"), mode="variation", start=0, end=0.5, seconds=1,
              strength=0.5, label="(none)", label2="(any)", steps=2, seed=0, vocoder="auto", sigmas="",
              api_name="/edit")   # -> (wav file, spectrogram png, report, seed)

Everything the app holds (loaded pipelines) lives in closures of ``build_demo``; nothing is kept at
module level, so tests can build several apps in one process.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import random
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from cmaudio.audio import AudioError, MelConfig, denormalise, load_audio
from cmaudio.cli import Parser, UsageError, main_wrapper
from cmaudio.pipeline import MAX_STEPS, Pipeline, bundled_models, resolve_model_path

MAX_CLIPS = 8
MAX_DURATION_S = 10.0  # generated clips and continuations; longer than the model's clip -> long audio
MIN_DURATION_S = 0.1
MAX_UPLOAD_S = 30.0
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_SEED = 2**31 - 1
AUTO_VOCODER = "auto"
EACH_CLASS = "(each in turn)"  # one-factor models: clip k gets class k mod n
NO_LABEL = "(none)"  # edits: condition on nothing (the null class)
ANY = "(any)"  # second factor left at its null class
EDIT_MODES = ("inpaint", "continue", "variation")

EXAMPLES = """examples:
  python demo/app.py                                              # every bundled model
  python demo/app.py --model runs/tones-student/model.safetensors # a model file (plus the bundled ones)
  python demo/app.py --host 0.0.0.0 --port 8080 --share           # reachable from elsewhere
"""


# ----------------------------------------------------------------------------------------------
# Pure helpers (raise ValueError with a one-line message; the handlers turn it into gr.Error).


def spectrogram_image(logmel: torch.Tensor, mel: MelConfig, title: str = "") -> np.ndarray:
    """Raw log-mel [n_mels, frames] -> RGB uint8 image [H, W, 3], time in seconds, mel band upwards
    (the colours and scale of cmaudio.plots.spectrogram_grid)."""
    # A bare Figure with its own Agg canvas, not pyplot: Gradio runs handlers in worker threads and
    # pyplot's global figure state is not thread-safe.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    logmel = logmel.detach().float().cpu()
    seconds = logmel.shape[-1] / mel.frames_per_second
    fig = Figure(figsize=(4.0, 1.8), dpi=80)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(
        logmel.numpy(),
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=mel.log_floor,
        vmax=max(float(logmel.max()), mel.log_floor + 1),
        extent=(0, seconds, 0, mel.n_mels),
    )
    ax.set_yticks([])
    ax.set_xlabel("seconds", fontsize=8)
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=8)
    fig.subplots_adjust(left=0.03, right=0.97, bottom=0.24, top=0.88 if title else 0.97)  # tight_layout: 2x slower
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def to_int16(wav: torch.Tensor) -> np.ndarray:
    """float wav [T] -> int16 [T]. Peak-normalised only when it would clip (as the CLI does): the
    model's level is part of its output, and Gradio would otherwise rescale float arrays itself."""
    wav = wav.detach().float().cpu()
    peak = float(wav.abs().max()) if wav.numel() else 0.0
    if peak > 0.99:
        wav = wav * (0.99 / peak)
    return (wav.numpy() * 32767.0).round().astype(np.int16)


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


def report(out, pipe: Pipeline, seeds: Sequence[int]) -> str:
    """One markdown line: what was made, how fast, with what."""
    meta = out.metadata[0] if out.metadata else {}
    sig = ", ".join(f"{s:g}" for s in meta.get("sigmas", []))
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
    clips = out.waveforms.shape[0]
    return (
        f"**{clips} clip{'s' if clips > 1 else ''}, {out.audio_seconds:.2f} s of audio in {out.seconds:.2f} s: "
        f"{out.x_realtime:.1f}x real time** · {meta.get('steps', 0)} step(s) (sigmas {sig}) · {seed_text} · "
        f"vocoder {pipe.vocoder.name} · {pipe.device}"
    )


# ----------------------------------------------------------------------------------------------


def default_models() -> dict[str, str]:
    """Display name -> bundled model name, for every bundled model."""
    return {name: name for name in bundled_models()}


def build_demo(
    models: Mapping[str, str | Path] | None = None,
    device: str = "auto",
    concurrency: int = 1,
    max_queue: int = 32,
):
    """The demo as a queued ``gr.Blocks``; launch it with ``max_file_size=MAX_UPLOAD_BYTES`` (as
    ``main`` does) so Gradio refuses oversized uploads before they reach a handler.

    ``models``: display name -> bundled model name or .safetensors path (default: the bundled
    models). One pipeline per (model, vocoder) pair loads on first use and stays cached in this
    closure; the first model loads now, so a bad model file fails here rather than in the page.
    ``concurrency``: how many generations and edits run at once (one limit for both: they share
    the CPU or GPU); ``max_queue``: waiting requests beyond which new ones are refused.
    """
    import gradio as gr

    models = dict(default_models() if models is None else models)
    if not models:
        raise UsageError("no models to serve: none is bundled yet; give one with --model PATH.safetensors")
    names = list(models)
    from cmaudio.vocoder import bundled_vocoders

    vocoders = [AUTO_VOCODER, "griffinlim", *bundled_vocoders()]
    cache: dict[tuple[str, str], Pipeline] = {}
    lock = threading.Lock()  # two first requests for one model must not load it twice

    def get_pipe(model: str, vocoder: str = AUTO_VOCODER) -> Pipeline:
        if model not in models:
            raise ValueError(f"unknown model {model!r}: choose one of {', '.join(names)}")
        vocoder = vocoder or AUTO_VOCODER
        if vocoder not in vocoders:
            raise ValueError(f"unknown vocoder {vocoder!r}: choose one of {', '.join(vocoders)}")
        key = (model, vocoder)
        with lock:
            if key not in cache:
                cache[key] = Pipeline.from_pretrained(
                    models[model], device=device, vocoder=None if vocoder == AUTO_VOCODER else vocoder
                )
            return cache[key]

    def user_errors(fn: Callable) -> Callable:
        """Bad input becomes a one-line message in the page (or the client's AppError); the
        server keeps serving. functools.wraps keeps the signature the API documents."""

        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except ValueError as exc:  # includes AudioError, CheckpointError, VocoderError
                msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise gr.Error(msg, print_exception=False) from None

        return wrapped

    def spectrogram(pipe: Pipeline, mel: torch.Tensor, title: str) -> np.ndarray:
        return spectrogram_image(denormalise(mel, pipe.config.stats), pipe.config.mel, title)

    # -- handlers ------------------------------------------------------------------------------
    @user_errors
    def generate(model, label, label2, steps, seed, clips, duration, vocoder, sigmas):
        """Generate 1-8 clips. Returns MAX_CLIPS wav files (None past ``clips``), MAX_CLIPS
        spectrogram images, a markdown report and the seed used (clip k has seed + k)."""
        pipe = get_pipe(model, vocoder)
        steps = check_int(steps, "steps", 1, MAX_STEPS)
        clips = check_int(clips, "clips", 1, MAX_CLIPS)
        duration = check_float(0 if duration in (None, "") else duration, "duration", 0, MAX_DURATION_S)
        if 0 < duration < MIN_DURATION_S:
            raise ValueError(f"duration must be 0 (the model's clip) or {MIN_DURATION_S:g} to {MAX_DURATION_S:g} s")
        sig = parse_sigmas(pipe, sigmas)
        labels = generation_labels(pipe, label, label2, clips)
        seed = resolve_seed(seed)
        out = pipe.generate(
            labels=labels,
            steps=None if sig else steps,
            sigmas=sig,
            seed=seed,
            batch_size=MAX_CLIPS,
            duration=duration or None,
        )
        seeds = [m["seed"] for m in out.metadata]
        audio = [(out.sample_rate, to_int16(w)) for w in out.waveforms]
        images = [spectrogram(pipe, m, f"{lb or 'clip'} · seed {s}") for m, lb, s in zip(out.mels, labels, seeds)]
        pad = [None] * (MAX_CLIPS - len(audio))
        return (*audio, *pad, *images, *pad, report(out, pipe, seeds), seed)

    @user_errors
    def edit(model, audio, mode, start, end, seconds, strength, label, label2, steps, seed, vocoder, sigmas):
        """Inpaint [start, end) s, continue by ``seconds`` or vary at ``strength`` (0..1) an uploaded
        clip. Returns the wav file, its spectrogram, a markdown report and the seed used."""
        pipe = get_pipe(model, vocoder)
        if mode not in EDIT_MODES:
            raise ValueError(f"mode must be one of {', '.join(EDIT_MODES)}, got {mode!r}")
        steps = check_int(steps, "steps", 1, MAX_STEPS)
        sig = parse_sigmas(pipe, sigmas)
        cond = edit_label(pipe, label, label2)
        seed = resolve_seed(seed)
        path = check_upload(audio)
        try:
            wav = load_audio(path, pipe.sample_rate)
        except AudioError as exc:
            raise AudioError(hide_path(str(exc), path)) from None
        common = dict(steps=None if sig else steps, sigmas=sig, seed=seed, label=cond)
        if mode == "inpaint":
            a = check_float(start, "start", 0, MAX_UPLOAD_S)
            b = check_float(end, "end", 0, MAX_UPLOAD_S)
            out = pipe.inpaint(wav, a, b, **common)
        elif mode == "continue":
            out = pipe.continue_audio(wav, check_float(seconds, "seconds", MIN_DURATION_S, MAX_DURATION_S), **common)
        else:
            out = pipe.variation(wav, check_float(strength, "strength", 0, 1), **common)
        image = spectrogram(pipe, out.mels[0], f"{mode} · seed {seed}")
        return (out.sample_rate, to_int16(out.waveforms[0])), image, report(out, pipe, [seed]), seed

    @user_errors
    def label_controls(model):
        """Label dropdowns (generate tab, edit tab) and the duration note for the chosen model."""
        pipe = get_pipe(model)
        return (*(gr.Dropdown(**c) for c in label_choices(pipe)), gr.Slider(info=duration_note(pipe)))

    # -- layout --------------------------------------------------------------------------------
    first = get_pipe(names[0])  # loaded now: a bad model file fails at build time, not in the page
    initial = label_choices(first)
    # The browser's own <audio controls> for results: light enough for eight players, and the
    # spectrogram beside each one already shows what a waveform view would.
    plain_player = gr.WaveformOptions(show_recording_waveform=False)
    with gr.Blocks(title="cmaudio demo") as demo:
        gr.Markdown(
            "# cmaudio\nConsistency-model audio generation: one to eight network calls per clip, "
            "then a vocoder. Generate clips, or edit your own audio with the same sampler."
        )
        with gr.Row():
            model = gr.Dropdown(names, value=names[0], label="model", elem_id="model")
            vocoder = gr.Dropdown(vocoders, value=AUTO_VOCODER, label="vocoder", elem_id="vocoder")
        with gr.Tabs(selected="generate") as tabs:
            with gr.Tab("Generate", id="generate"):
                with gr.Row():
                    # Custom values allowed: an API call may name another model, whose classes
                    # differ from the page's; generation_labels checks every label instead.
                    label = gr.Dropdown(**initial[0], allow_custom_value=True, elem_id="label")
                    label2 = gr.Dropdown(**initial[1], allow_custom_value=True, elem_id="label2")
                    clips = gr.Slider(1, MAX_CLIPS, value=4, step=1, label="clips", elem_id="clips")
                with gr.Row():
                    steps = gr.Slider(1, MAX_STEPS, value=2, step=1, label="steps (network calls)", elem_id="steps")
                    seed = gr.Number(value=0, precision=0, label="seed (-1 = random)", elem_id="seed")
                    duration = gr.Slider(
                        0,
                        MAX_DURATION_S,
                        value=0,
                        step=0.1,
                        label="duration (s)",
                        info=duration_note(first),
                        elem_id="duration",
                    )
                with gr.Accordion("advanced", open=False):
                    sigmas = gr.Textbox(
                        value="",
                        label="sigmas",
                        placeholder="e.g. 80, 0.8 (decreasing; overrides steps)",
                        elem_id="sigmas",
                    )
                run = gr.Button("Generate", variant="primary", elem_id="generate-button")
                with gr.Row():
                    info = gr.Markdown(label="report", elem_id="generate-info")
                    seed_used = gr.Number(
                        label="seed used", precision=0, interactive=False, scale=0, min_width=160, elem_id="seed-used"
                    )
                slots, audios, images, sends = [], [], [], []
                with gr.Row(equal_height=False):
                    for k in range(MAX_CLIPS):
                        with gr.Column(visible=False, min_width=260) as slot:
                            # type="filepath": the "Edit" button hands the cached wav on without a decode.
                            audios.append(
                                gr.Audio(
                                    label=f"clip {k + 1}",
                                    type="filepath",
                                    format="wav",
                                    waveform_options=plain_player,
                                    interactive=False,
                                    buttons=["download"],
                                    elem_id=f"clip-{k}",
                                )
                            )
                            images.append(
                                gr.Image(
                                    label=f"spectrogram {k + 1}",
                                    show_label=False,  # the figure's title names the clip and seed
                                    type="numpy",
                                    format="png",
                                    interactive=False,
                                    buttons=["download", "fullscreen"],
                                    elem_id=f"spec-{k}",
                                )
                            )
                            sends.append(gr.Button(f"Edit clip {k + 1}", size="sm", elem_id=f"send-{k}"))
                        slots.append(slot)
            with gr.Tab("Edit", id="edit"):
                with gr.Row():
                    edit_in = gr.Audio(
                        sources=["upload", "microphone"],
                        type="filepath",
                        label=f"input clip (up to {MAX_UPLOAD_S:g} s, {MAX_UPLOAD_BYTES // 2**20} MB)",
                        elem_id="edit-input",
                    )
                    with gr.Column():
                        mode = gr.Radio(list(EDIT_MODES), value="variation", label="edit", elem_id="edit-mode")
                        with gr.Row(visible=False) as inpaint_row:
                            start = gr.Number(value=0.1, label="start (s)", elem_id="edit-start")
                            end = gr.Number(value=0.3, label="end (s)", elem_id="edit-end")
                        seconds = gr.Slider(
                            MIN_DURATION_S, MAX_DURATION_S, value=1, step=0.1, label="continue by (s)", visible=False
                        )
                        strength = gr.Slider(0, 1, value=0.5, step=0.05, label="strength", elem_id="edit-strength")
                with gr.Row():
                    edit_label_dd = gr.Dropdown(**initial[2], allow_custom_value=True, elem_id="edit-label")
                    edit_label2 = gr.Dropdown(**initial[3], allow_custom_value=True, elem_id="edit-label2")
                    edit_steps = gr.Slider(1, MAX_STEPS, value=2, step=1, label="steps")
                    edit_seed = gr.Number(value=0, precision=0, label="seed (-1 = random)")
                with gr.Accordion("advanced", open=False):
                    edit_sigmas = gr.Textbox(value="", label="sigmas", placeholder="e.g. 80, 0.8 (overrides steps)")
                edit_run = gr.Button("Edit", variant="primary", elem_id="edit-button")
                with gr.Row():
                    edit_out = gr.Audio(
                        label="result",
                        type="filepath",
                        format="wav",
                        waveform_options=plain_player,
                        interactive=False,
                        buttons=["download"],
                        elem_id="edit-output",
                    )
                    edit_image = gr.Image(
                        label="spectrogram",
                        show_label=False,
                        type="numpy",
                        format="png",
                        interactive=False,
                        buttons=["download", "fullscreen"],
                        elem_id="edit-spec",
                    )
                with gr.Row():
                    edit_info = gr.Markdown(label="report", elem_id="edit-info")
                    edit_seed_used = gr.Number(
                        label="seed used", precision=0, interactive=False, scale=0, min_width=160
                    )

        # -- events ----------------------------------------------------------------------------
        label_outputs = [label, label2, edit_label_dd, edit_label2, duration]
        model.change(label_controls, model, label_outputs, api_visibility="private", queue=False)
        run.click(
            generate,
            [model, label, label2, steps, seed, clips, duration, vocoder, sigmas],
            [*audios, *images, info, seed_used],
            api_name="generate",
            concurrency_limit=concurrency,
            concurrency_id="sampler",
        ).success(
            lambda *a: [gr.Column(visible=x is not None) for x in a],
            audios,
            slots,
            api_visibility="private",
            queue=False,
        )
        for audio, send in zip(audios, sends):
            send.click(
                lambda a: (a, gr.Tabs(selected="edit")), audio, [edit_in, tabs], api_visibility="private", queue=False
            )
        mode.change(
            lambda m: (
                gr.Row(visible=m == "inpaint"),
                gr.Slider(visible=m == "continue"),
                gr.Slider(visible=m == "variation"),
            ),
            mode,
            [inpaint_row, seconds, strength],
            api_visibility="private",
            queue=False,
        )
        edit_inputs = [model, edit_in, mode, start, end, seconds, strength]
        edit_inputs += [edit_label_dd, edit_label2, edit_steps, edit_seed, vocoder, edit_sigmas]
        edit_run.click(
            edit,
            edit_inputs,
            [edit_out, edit_image, edit_info, edit_seed_used],
            api_name="edit",
            concurrency_limit=concurrency,
            concurrency_id="sampler",
        )
    return demo.queue(max_size=max_queue, default_concurrency_limit=concurrency)


# ----------------------------------------------------------------------------------------------


def _body(argv: Sequence[str] | None) -> int:
    p = Parser("demo/app.py", "The cmaudio web demo (Gradio): generate and edit audio in the browser.", EXAMPLES)
    p.add_argument(
        "--model",
        action="append",
        default=[],
        help="a bundled model name or .safetensors path; repeat for several (the bundled models are always offered)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--concurrency", type=int, default=1, help="requests sampled at once (default 1)")
    a = p.parse_args(argv)
    if not 1 <= a.port <= 65535:
        raise UsageError(f"--port must be between 1 and 65535, got {a.port}")
    if a.concurrency < 1:
        raise UsageError("--concurrency must be >= 1")
    # main_wrapper logs at INFO for the package; Gradio's own HTTP client would then log every request.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UsageError("the demo needs gradio and matplotlib: pip install -e '.[demo]'") from None
    models: dict[str, str] = {}
    for m in a.model:  # the models asked for come first: the page opens on the first
        if not resolve_model_path(m).is_file():  # an unknown bundled name raises CheckpointError
            raise UsageError(f"--model {m}: no such file")
        models[m] = m
    models.update((k, v) for k, v in default_models().items() if k not in models)
    try:
        demo = build_demo(models, device=a.device, concurrency=a.concurrency)
    except ValueError as exc:
        if type(exc) is ValueError:  # device errors; the others carry their own type
            raise UsageError(str(exc)) from None
        raise
    try:
        demo.launch(
            server_name=a.host,
            server_port=a.port,
            share=a.share,
            max_file_size=MAX_UPLOAD_BYTES,
        )
    except OSError as exc:  # e.g. the port is taken
        raise UsageError(f"cannot serve on {a.host}:{a.port}: {str(exc).strip().splitlines()[0]}") from None
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return main_wrapper("demo/app.py", _body, argv)


if __name__ == "__main__":
    sys.exit(main())
