"""python -m cmaudio.generate: render clips from a model file into a folder with a manifest.

Thin wrapper over cmaudio.pipeline.Pipeline.generate.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from .cli import Parser, UsageError, main_wrapper

EXAMPLES = """examples:
  python -m cmaudio.generate                                  # one clip per class of the bundled default
  python -m cmaudio.generate --label seven,three --n 4 --steps 2 --out samples/
  python -m cmaudio.generate --model notes --label 60         # middle C
  python -m cmaudio.generate --model runs/tones-student/model.safetensors --label 220,440 --sigmas 80,0.8
  python -m cmaudio.generate --label five --duration 4 --plot # long audio by continuation
  python -m cmaudio.generate --model drums --label hihat --loop --duration 2   # a seamless 2 s loop
"""


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--sigmas: expected numbers separated by commas, got {text!r}") from None


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out, prefix=".write-test-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise UsageError(f"cannot write to output folder {out}: {exc.strerror or exc}") from None


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in label)


def _body(argv: Sequence[str] | None) -> int:
    import time

    p = Parser("cmaudio.generate", "Generate audio with a consistency model (or a teacher, with Heun).", EXAMPLES)
    p.add_argument("--model", default=None, help="bundled model name or path to a .safetensors file (default: digits)")
    p.add_argument("--label", default=None, help="comma-separated labels, e.g. seven,three (default: every class)")
    p.add_argument("--n", type=int, default=None, help="clips per label when labels are given, else clips in all")
    p.add_argument("--seed", type=int, default=0, help="first seed; clip k uses seed + k")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (network calls), 1 to 8; default 2")
    p.add_argument("--sigmas", default=None, help="explicit decreasing sigma list, e.g. 80,0.8 (overrides --steps)")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds per clip; longer than the model's clip renders by overlapping continuation",
    )
    p.add_argument("--loop", action="store_true", help="clips whose end flows into their start (any --duration)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--vocoder", default=None, help="griffinlim, a bundled vocoder name or a path (default: best match)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--backend",
        default="eager",
        choices=["eager", "compiled", "onnx"],
        help="how the network runs: eager torch (default), torch.compile, or onnxruntime (CPU)",
    )
    p.add_argument(
        "--guidance",
        type=float,
        default=1.0,
        help="classifier-free guidance scale at every call (default 1: none; doubles the network's work)",
    )
    p.add_argument("--out", default="samples", help="output folder (default ./samples)")
    p.add_argument("--format", default="wav", choices=["wav", "flac"])
    p.add_argument("--plot", action="store_true", help="also write a spectrogram grid png")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)

    if a.n is not None and a.n < 1:
        raise UsageError("--n must be >= 1")
    if a.batch_size < 1:
        raise UsageError("--batch-size must be >= 1")
    if a.steps is not None and a.sigmas is not None:
        raise UsageError("give --steps or --sigmas, not both")
    sigmas = _floats(a.sigmas) if a.sigmas is not None else None
    out = Path(a.out)

    from .pipeline import DEFAULT_MODEL, Pipeline

    try:
        pipe = Pipeline.from_pretrained(
            a.model or DEFAULT_MODEL, device=a.device, vocoder=a.vocoder, backend=a.backend, guidance=a.guidance
        )
    except ValueError as exc:
        if type(exc) is ValueError:  # device errors; other errors carry their own type
            raise UsageError(str(exc)) from None
        raise
    try:
        if a.label is not None:
            labels = [x.strip() for x in a.label.split(",") if x.strip()]
            labels = [lb for lb in labels for _ in range(a.n or 1)]
        else:
            n = a.n or (len(pipe.labels) if pipe.labels else 1)
            labels = [pipe.labels[i % len(pipe.labels)] if pipe.labels else None for i in range(n)]
        for lb in labels:
            pipe.parse_label(lb)
        sig = pipe.sigmas_for(a.steps, sigmas)
        if a.duration is not None and a.duration <= 0:
            raise ValueError("--duration must be positive")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _check_writable(out)

    from .audio import save_audio

    result = pipe.generate(
        labels=labels,
        sigmas=sigmas,
        steps=a.steps,
        seed=a.seed,
        batch_size=a.batch_size,
        duration=a.duration,
        progress=not a.quiet,
        loop=a.loop,
    )
    t_write = time.perf_counter()
    files = []
    for wav, meta in zip(result.waveforms, result.metadata):
        stem = f"{_safe(meta['label'])}_{meta['seed']}" if meta["label"] is not None else f"sample_{meta['seed']}"
        path = out / f"{stem}.{a.format}"
        save_audio(path, wav, result.sample_rate, a.format)
        files.append({"file": path.name, **meta, "seconds": wav.shape[-1] / result.sample_rate})
    if a.plot:
        from .audio import denormalise
        from .plots import spectrogram_grid

        spectrogram_grid(
            denormalise(result.mels, pipe.config.stats),
            [f["file"] for f in files],
            out / "spectrograms.png",
            pipe.config.mel,
        )
    wall = result.seconds + (time.perf_counter() - t_write)
    manifest = {
        "model": pipe.name,
        "model_step": pipe.step,
        "vocoder": pipe.vocoder.name,
        "vocoder_version": pipe.vocoder.version or pipe.vocoder.name,
        "device": str(pipe.device),
        "backend": pipe.backend,
        "sample_rate": result.sample_rate,
        "files": files,
        "wall_seconds": wall,
        "audio_seconds": result.audio_seconds,
        "x_realtime": result.audio_seconds / max(wall, 1e-9),
    }
    from .files import atomic_write

    atomic_write(out / "manifest.json", lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=2) + "\n"))
    flagged = Counter(name for f in files for name in f["flags"])
    if flagged:
        shown = ", ".join(f"{n} {name}" for name, n in flagged.most_common())
        n_bad = sum(bool(f["flags"]) for f in files)
        print(
            f"{n_bad} of {len(files)} clips flagged ({shown}): see 'flags' in {out / 'manifest.json'}", file=sys.stderr
        )
    print(
        f"wrote {len(files)} clips ({result.audio_seconds:.1f} s of audio) to {out} in {wall:.2f} s, "
        f"{manifest['x_realtime']:.1f}x real time, {len(sig)} steps, vocoder {pipe.vocoder.name}",
        file=sys.stderr,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return main_wrapper("cmaudio.generate", _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
