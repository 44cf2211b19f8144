"""The demo's page: the Gradio components of the Generate and Edit tabs, and the wiring of their
events to handlers.py. ``build_demo`` makes the app; demo/app.py serves it.

Gradio is imported inside the functions, so that ``python demo/app.py --help`` and the "needs
gradio" message work where it is not installed.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from handlers import (
    AUTO_VOCODER,
    EDIT_MODES,
    MAX_CLIPS,
    MAX_DURATION_S,
    MAX_GUIDANCE,
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_S,
    MIN_DURATION_S,
    EditRequest,
    GenerateRequest,
    ModelCache,
    default_models,
    duration_note,
    edit,
    generate,
    label_choices,
    model_controls,
)

from cmaudio.cli import UsageError
from cmaudio.editing import EDIT_STEPS
from cmaudio.pipeline import MAX_STEPS, Pipeline

# The components of a tab by name. Where a component feeds a request, its name is the request's
# field name: request_inputs builds each event's input list from those, in the API's order.
Controls = dict[str, Any]


def build_demo(
    models: Mapping[str, str | Path] | None = None,
    device: str = "auto",
    concurrency: int = 1,
    max_queue: int = 32,
):
    """The demo as a queued ``gr.Blocks``; launch it with ``max_file_size=MAX_UPLOAD_BYTES`` (as
    ``main`` does) so Gradio refuses oversized uploads before they reach a handler.

    ``models``: display name -> bundled model name or .safetensors path (default: the bundled
    models). One pipeline per (model, vocoder) pair loads on first use and stays in the app's
    ModelCache; the first model loads now, so a bad model file fails here rather than in the page.
    ``concurrency``: how many generations and edits run at once (one limit for both: they share
    the CPU or GPU); ``max_queue``: waiting requests beyond which new ones are refused.
    """
    import gradio as gr

    models = dict(default_models() if models is None else models)
    if not models:
        raise UsageError("no models to serve: none is bundled yet; give one with --model PATH.safetensors")
    cache = ModelCache(models, device)
    first = cache.get(cache.names[0])  # loaded now: a bad model file fails at build time, not in the page
    with gr.Blocks(title="cmaudio demo") as demo:
        gr.Markdown(
            "# cmaudio\nConsistency-model audio generation: one to eight network calls per clip, "
            "then a vocoder. Generate clips, or edit your own audio with the same sampler."
        )
        with gr.Row():
            model = gr.Dropdown(cache.names, value=cache.names[0], label="model", elem_id="model")
            vocoder = gr.Dropdown(cache.vocoders, value=AUTO_VOCODER, label="vocoder", elem_id="vocoder")
        with gr.Tabs(selected="generate") as tabs:
            with gr.Tab("Generate", id="generate"):
                gen = generate_tab(first) | dict(model=model, vocoder=vocoder)
            with gr.Tab("Edit", id="edit"):
                ed = edit_tab(first) | dict(model=model, vocoder=vocoder)
        # Wired in this order: it fixes the events' indices (fn_index) that clients may use.
        wire_model_change(cache, model, gen, ed)
        wire_generate(cache, gen, ed, tabs, concurrency)
        wire_edit(cache, ed, concurrency)
    return demo.queue(max_size=max_queue, default_concurrency_limit=concurrency)


# ----------------------------------------------------------------------------------------------
# Layout


def generate_tab(first: Pipeline) -> Controls:
    """The Generate tab's controls and its MAX_CLIPS result slots (hidden until filled)."""
    import gradio as gr

    initial = label_choices(first)
    c: Controls = {}
    with gr.Row():
        # Custom values allowed: an API call may name another model, whose classes
        # differ from the page's; generation_labels checks every label instead.
        c["label"] = gr.Dropdown(**initial[0], allow_custom_value=True, elem_id="label")
        c["label2"] = gr.Dropdown(**initial[1], allow_custom_value=True, elem_id="label2")
        c["clips"] = gr.Slider(1, MAX_CLIPS, value=4, step=1, label="clips", elem_id="clips")
    with gr.Row():
        c["steps"] = gr.Slider(1, MAX_STEPS, value=2, step=1, label="steps (network calls)", elem_id="steps")
        c["seed"] = gr.Number(value=0, precision=0, label="seed (-1 = random)", elem_id="seed")
        c["duration"] = gr.Slider(
            0, MAX_DURATION_S, value=0, step=0.1, label="duration (s)", info=duration_note(first), elem_id="duration"
        )
        c["loop"] = gr.Checkbox(value=False, label="seamless loop", elem_id="loop")
    with gr.Accordion("advanced", open=False):
        c["sigmas"] = gr.Textbox(
            value="", label="sigmas", placeholder="e.g. 80, 0.8 (decreasing; overrides steps)", elem_id="sigmas"
        )
        c["guidance"] = gr.Slider(
            0,
            MAX_GUIDANCE,
            value=1,
            step=0.25,
            label="guidance",
            info="classifier-free, 1 = none; twice the network calls (models trained with a null label)",
            elem_id="guidance",
        )
    c["run"] = gr.Button("Generate", variant="primary", elem_id="generate-button")
    with gr.Row():
        c["info"] = gr.Markdown(label="report", elem_id="generate-info")
        c["seed_used"] = gr.Number(
            label="seed used", precision=0, interactive=False, scale=0, min_width=160, elem_id="seed-used"
        )
    c["slots"], c["audios"], c["images"], c["sends"] = [], [], [], []
    with gr.Row(equal_height=False):
        for k in range(MAX_CLIPS):
            with gr.Column(visible=False, min_width=260) as slot:
                c["audios"].append(result_audio(f"clip {k + 1}", f"clip-{k}"))
                c["images"].append(result_image(f"spectrogram {k + 1}", f"spec-{k}"))
                c["sends"].append(gr.Button(f"Edit clip {k + 1}", size="sm", elem_id=f"send-{k}"))
            c["slots"].append(slot)
    return c


def edit_tab(first: Pipeline) -> Controls:
    """The Edit tab: an uploaded or recorded clip, the edit and its settings, the result."""
    import gradio as gr

    initial = label_choices(first)
    c: Controls = {}
    with gr.Row():
        c["audio"] = gr.Audio(
            sources=["upload", "microphone"],
            type="filepath",
            label=f"input clip (up to {MAX_UPLOAD_S:g} s, {MAX_UPLOAD_BYTES // 2**20} MB)",
            elem_id="edit-input",
        )
        with gr.Column():
            c["mode"] = gr.Radio(list(EDIT_MODES), value="variation", label="edit", elem_id="edit-mode")
            with gr.Row(visible=False) as c["inpaint_row"]:
                c["start"] = gr.Number(value=0.1, label="start (s)", elem_id="edit-start")
                c["end"] = gr.Number(value=0.3, label="end (s)", elem_id="edit-end")
            c["seconds"] = gr.Slider(
                MIN_DURATION_S, MAX_DURATION_S, value=1, step=0.1, label="continue by (s)", visible=False
            )
            c["strength"] = gr.Slider(0, 1, value=0.5, step=0.05, label="strength", elem_id="edit-strength")
    with gr.Row():
        c["label"] = gr.Dropdown(**initial[2], allow_custom_value=True, elem_id="edit-label")
        c["label2"] = gr.Dropdown(**initial[3], allow_custom_value=True, elem_id="edit-label2")
        c["steps"] = gr.Slider(1, MAX_STEPS, value=EDIT_STEPS, step=1, label="steps")
        c["seed"] = gr.Number(value=0, precision=0, label="seed (-1 = random)")
    with gr.Accordion("advanced", open=False):
        c["sigmas"] = gr.Textbox(value="", label="sigmas", placeholder="e.g. 80, 0.8 (overrides steps)")
    c["run"] = gr.Button("Edit", variant="primary", elem_id="edit-button")
    with gr.Row():
        c["out"] = result_audio("result", "edit-output")
        c["image"] = result_image("spectrogram", "edit-spec")
    with gr.Row():
        c["info"] = gr.Markdown(label="report", elem_id="edit-info")
        c["seed_used"] = gr.Number(label="seed used", precision=0, interactive=False, scale=0, min_width=160)
    return c


def result_audio(label: str, elem_id: str):
    """A generated or edited clip: played, downloaded, and handed to the Edit tab as a file."""
    import gradio as gr

    # The browser's own <audio controls>: light enough for eight players, and the spectrogram
    # beside each one already shows what a waveform view would. type="filepath": the "Edit"
    # button hands the cached wav on without a decode.
    return gr.Audio(
        label=label,
        type="filepath",
        format="wav",
        waveform_options=gr.WaveformOptions(show_recording_waveform=False),
        interactive=False,
        buttons=["download"],
        elem_id=elem_id,
    )


def result_image(label: str, elem_id: str):
    import gradio as gr

    return gr.Image(
        label=label,
        show_label=False,  # the figure's title names the clip and seed
        type="numpy",
        format="png",
        interactive=False,
        buttons=["download", "fullscreen"],
        elem_id=elem_id,
    )


# ----------------------------------------------------------------------------------------------
# Events


def user_errors(fn: Callable) -> Callable:
    """Bad input becomes a one-line message in the page (or the client's AppError); the
    server keeps serving. functools.wraps keeps the signature the API documents."""
    import gradio as gr

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValueError as exc:  # includes AudioError, CheckpointError, VocoderError
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise gr.Error(msg, print_exception=False) from None

    return wrapped


def endpoint(handler: Callable, request_type: type, cache: ModelCache) -> Callable:
    """``handler(cache, request_type(*inputs))`` as Gradio calls it, with one parameter per field
    of the request, in order: Gradio names the API's inputs after the function's parameters, so
    gradio_client callers pass the request's field names."""

    def call(*values):
        return handler(cache, request_type(*values))

    call.__signature__ = inspect.Signature(
        [inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for f in dataclasses.fields(request_type)]
    )
    call.__name__ = call.__qualname__ = handler.__name__
    call.__doc__ = handler.__doc__
    return user_errors(call)


def request_inputs(request_type: type, controls: Controls) -> list:
    """The components that feed the fields of ``request_type``, in the fields' order."""
    return [controls[f.name] for f in dataclasses.fields(request_type)]


def wire_model_change(cache: ModelCache, model, gen: Controls, ed: Controls) -> None:
    """A new model: its label dropdowns in both tabs and its clip length in the duration note."""
    import gradio as gr

    @user_errors
    def label_controls(model):
        choices, note = model_controls(cache, model)
        return (*(gr.Dropdown(**c) for c in choices), gr.Slider(info=note))

    outputs = [gen["label"], gen["label2"], ed["label"], ed["label2"], gen["duration"]]
    model.change(label_controls, model, outputs, api_visibility="private", queue=False)


def wire_generate(cache: ModelCache, gen: Controls, ed: Controls, tabs, concurrency: int) -> None:
    """/generate; then show the slots that got a clip. "Edit clip k" carries clip k to the Edit tab."""
    import gradio as gr

    gen["run"].click(
        endpoint(generate, GenerateRequest, cache),
        request_inputs(GenerateRequest, gen),
        [*gen["audios"], *gen["images"], gen["info"], gen["seed_used"]],
        api_name="generate",
        concurrency_limit=concurrency,
        concurrency_id="sampler",
    ).success(
        lambda *a: [gr.Column(visible=x is not None) for x in a],
        gen["audios"],
        gen["slots"],
        api_visibility="private",
        queue=False,
    )
    for audio, send in zip(gen["audios"], gen["sends"]):
        send.click(
            lambda a: (a, gr.Tabs(selected="edit")), audio, [ed["audio"], tabs], api_visibility="private", queue=False
        )


def wire_edit(cache: ModelCache, ed: Controls, concurrency: int) -> None:
    """The controls of the chosen edit mode only; /edit."""
    import gradio as gr

    ed["mode"].change(
        lambda m: (
            gr.Row(visible=m == "inpaint"),
            gr.Slider(visible=m == "continue"),
            gr.Slider(visible=m == "variation"),
        ),
        ed["mode"],
        [ed["inpaint_row"], ed["seconds"], ed["strength"]],
        api_visibility="private",
        queue=False,
    )
    ed["run"].click(
        endpoint(edit, EditRequest, cache),
        request_inputs(EditRequest, ed),
        [ed["out"], ed["image"], ed["info"], ed["seed_used"]],
        api_name="edit",
        concurrency_limit=concurrency,
        concurrency_id="sampler",
    )
