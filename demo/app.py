"""Gradio web demo of cmaudio: generate clips and edit audio in the browser, on the same Pipeline
as ``python -m cmaudio.generate``.

    python demo/app.py                                          # the bundled models
    python demo/app.py --model runs/tones-student/model.safetensors --port 7860
    python demo/app.py --model digits --host 0.0.0.0 --share    # a public link

Generate tab: model, label (or pitch and instrument family for a two-factor model), steps, seed,
clips, duration (longer than the model's clip renders long audio by continuation), vocoder, a guidance scale and an
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

This file is the entry point: its flags, and serving the app. The page is demo/layout.py
(``build_demo``), what its events do is demo/handlers.py. Everything an app holds (its loaded
pipelines) lives in the ModelCache it builds; nothing is kept at module level, so tests can build
several apps in one process.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from cmaudio.cli import Parser, UsageError, main_wrapper
from cmaudio.pipeline import resolve_model_path

# demo/ is a folder of scripts, not a package: `python demo/app.py` puts it on sys.path for the
# sibling modules imported below, and so must anyone importing this file by its path (the tests).
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from handlers import MAX_UPLOAD_BYTES, default_models
from layout import build_demo

EXAMPLES = """examples:
  python demo/app.py                                              # every bundled model
  python demo/app.py --model runs/tones-student/model.safetensors # a model file (plus the bundled ones)
  python demo/app.py --host 0.0.0.0 --port 8080 --share           # reachable from elsewhere
"""


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
