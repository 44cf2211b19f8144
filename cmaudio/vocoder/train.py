"""Train the neural vocoder (neural.py) as a GAN: the run loop and the command line.

    python -m cmaudio.vocoder.train CONFIG.toml [--set k=v ...] [--out RUN] [--resume] [--dry-run]
    python -m cmaudio.vocoder.train --compare RUN/vocoder.safetensors --data DIR [DIR ...]
    python -m cmaudio.vocoder.train --export SRC DST [--mel-refine N] [--mel-refine-updates N]

The pieces live next door: the recipe's dataclasses in config.py, the audio and its random
segments in data.py, one GAN step (losses, optimisers, EMA, warm start) in gan.py, copy-synthesis
comparison in compare.py, re-saving a vocoder file in export.py. The run folder, exact resume,
the non-finite guard, progress and the loop itself are training.harness's, shared with the
acoustic trainer; ``VocoderRun`` says what this run logs, saves and samples::

    config.json  log.jsonl  samples/  vocoder.safetensors (EMA G)  state.pt (exact resume)
    vocoder-<step>.safetensors (every run.snapshot_every steps)

Everything runs in float32: STFT losses and istft are where reduced precision hurts most.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from ..audio import MelConfig, mel_spectrogram
from ..checkpoint import save_state
from ..cli import Parser, main_wrapper
from ..config import load_config, to_dict
from ..errors import TrainingError, UsageError
from ..training.harness import Progress, RunFolder, check_resumable, resolve_device, run_steps
from .base import Vocoder
from .compare import compare, format_table, heldout_metrics
from .config import RESUMABLE_CHANGES, VocoderRunResult, VocoderTrainConfig
from .data import SegmentSampler, load_clips, load_eval_clips
from .export import export_vocoder
from .fileformat import save_vocoder
from .gan import GANTrainer

__all__ = ["VocoderRun", "train", "write_samples", "main"]

log = logging.getLogger("cmaudio")

# Clips written to samples/ per data root at every sample_every.
SAMPLES_PER_ROOT = 2
# Losses averaged over each logging window (those a step reports).
LOGGED = ("loss_g", "mel", "stft", "loss_d", "loss_adv", "loss_fm", "grad_norm_g", "grad_norm_d")


# ----------------------------------------------------------------------------------------------
# The run: the harness's folder, resume, guard, progress and loop around the GAN steps


class VocoderRun:
    """A GANTrainer driven by training.harness.run_steps: what the loop logs, saves and samples."""

    def __init__(self, trainer: GANTrainer, cfg: VocoderTrainConfig, folder: RunFolder, eval_clips):
        self.trainer, self.cfg, self.folder, self.eval_clips = trainer, cfg, folder, eval_clips
        self.vocoder_path = folder.path / "vocoder.safetensors"
        self.last_eval: dict[str, float] = {}

    # the Stepper protocol: step and bad_total are the GAN trainer's own
    @property
    def step(self) -> int:
        return self.trainer.step

    @property
    def bad_total(self) -> int:
        return self.trainer.bad_total

    @bad_total.setter
    def bad_total(self, value: int) -> None:
        self.trainer.bad_total = value

    def train_step(self) -> dict | None:
        return self.trainer.train_step()

    def postfix(self, rec: dict) -> dict[str, str]:
        return {"mel": f"{rec['mel']:.3f}", "g": f"{rec['loss_g']:.3g}"}

    def summarise(self, window: list[dict], seconds: float, elapsed: float) -> dict:
        out = {}
        for key in LOGGED:
            vals = [r[key] for r in window if key in r]
            if vals:
                out[key] = sum(vals) / len(vals)
        n = len(window)
        return out | {
            "lr": window[-1]["lr"],
            "adversarial": window[-1]["adversarial"],
            "bad_steps": self.bad_total,
            "s_per_step": seconds / n,
            "segments_per_s": n * self.cfg.run.batch_size / seconds,
        }

    def save(self, elapsed: float, snapshot: bool, final: bool) -> None:
        """The EMA generator as vocoder.safetensors (and vocoder-<step> when ``snapshot``), then
        state.pt: a run killed in between resumes from the previous state, never a newer one."""
        t, cfg = self.trainer, self.cfg
        extra = {"trained_on": ",".join(cfg.data.roots)}
        save_vocoder(self.vocoder_path, t.ema, cfg.name, t.step, extra=extra)
        if snapshot:
            save_vocoder(self.folder.path / f"vocoder-{t.step:07d}.safetensors", t.ema, cfg.name, t.step, extra=extra)
        save_state(self.folder.state_path, t.state())

    def periodic(self, step: int) -> dict | None:
        if not self.eval_clips:
            return None
        self.last_eval = heldout_metrics(self.trainer.ema, self.eval_clips, self.cfg.mel)
        write_samples(self.trainer.ema, self.eval_clips, self.cfg.mel, self.folder.path / "samples", step)
        return {f"eval_{k}": v for k, v in self.last_eval.items()}


def train(
    cfg: VocoderTrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    clips: Sequence[torch.Tensor] | None = None,
    eval_clips: Sequence[tuple[str, torch.Tensor]] | None = None,
) -> VocoderRunResult:
    """Train ``cfg`` into ``run_dir``; with ``resume`` continue exactly from ``run_dir/state.pt``.

    ``clips`` (wavs [N_i, T] per set) and ``eval_clips`` ((name, wavs) per set) replace loading
    ``cfg.data.roots`` (tests, notebooks); otherwise both come from the roots."""
    folder = RunFolder(run_dir, resume)
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    device = resolve_device(cfg.run.device)
    clips, eval_clips = _training_audio(cfg, clips, eval_clips, progress)
    # segment_frames hops of audio; its centred mel has segment_frames + 1 frames and the
    # generator renders num_samples(segment_frames + 1) = exactly the segment back.
    seg = cfg.data.segment_frames * cfg.mel.hop_length
    sampler = SegmentSampler(clips, seg, cfg.run.seed, cfg.data.balance, cfg.data.gain_db)
    trainer = GANTrainer(cfg, sampler, device)
    st = folder.saved_state(kind="vocoder")
    if st is not None:
        check_resumable(st["config"], cfg, folder.state_path, RESUMABLE_CHANGES)
        trainer.load(st)
    elif cfg.run.init:
        trainer.warm_start(cfg.run.init)
    folder.open(cfg, trainer.step)
    run = VocoderRun(trainer, cfg, folder, eval_clips)
    trainer.gen.train()
    bar = run_steps(run, cfg.run, folder, name=cfg.name, show=progress, last_good=run.vocoder_path)
    return _report(run, bar)


def _training_audio(
    cfg: VocoderTrainConfig,
    clips: Sequence[torch.Tensor] | None,
    eval_clips: Sequence[tuple[str, torch.Tensor]] | None,
    progress: bool,
) -> tuple[Sequence[torch.Tensor], list[tuple[str, torch.Tensor]]]:
    """The training clips per root and the held-out (name, wavs) sets, unless given."""
    if clips is None:
        if not cfg.data.roots:
            raise TrainingError("data.roots is empty (use --set 'data.roots=[\"data/digits\"]')")
        loaded = load_clips(
            cfg.data.roots,
            cfg.mel,
            cfg.data.split,
            seconds=cfg.data.seconds,
            layout=cfg.data.layout,
            cache=cfg.data.cache,
            progress=progress,
        )
        clips = [w for _, w in loaded]
        if eval_clips is None and cfg.data.eval_clips and cfg.run.sample_every:
            eval_clips = load_eval_clips(cfg, progress)
    return clips, list(eval_clips or [])


def _report(run: VocoderRun, bar: Progress) -> VocoderRunResult:
    """The run's result, and its one-line summary on stderr."""
    t, cfg, last_eval = run.trainer, run.cfg, run.last_eval
    done, seconds = t.step - bar.start_step, bar.seconds
    result = VocoderRunResult(t.step, seconds, seconds / max(done, 1), t.bad_total, str(run.vocoder_path), last_eval)
    quality = ""
    if last_eval:
        quality = f"; held-out mel L1 {last_eval['mel_l1']:.3f}, MR-STFT {last_eval['mr_stft']:.3f}"
    bar.close(
        f"trained {done} vocoder steps in {seconds:.1f} s ({result.seconds_per_step:.2f} s/step, "
        f"batch {cfg.run.batch_size} x {cfg.data.segment_frames} frames) on {t.device.type}; "
        f"{t.bad_total} skipped steps{quality}; vocoder: {run.vocoder_path}"
    )
    return result


@torch.no_grad()
def write_samples(
    vocoder: Vocoder,
    eval_clips: Sequence[tuple[str, torch.Tensor]],
    mel_config: MelConfig,
    out: Path,
    step: int,
) -> None:
    """A few held-out clips per set rendered by ``vocoder`` as wav, plus a png of the reference
    log-mels over the vocoded ones. Uses no random numbers (exact resume)."""
    from ..audio import save_audio

    refs, names = [], []
    for name, wavs in eval_clips:
        refs.append(wavs[:SAMPLES_PER_ROOT])
        names += [f"{name}{i}" for i in range(min(SAMPLES_PER_ROOT, wavs.shape[0]))]
    ref = torch.cat(refs).float()
    mel = mel_spectrogram(ref, mel_config)
    device = next(vocoder.parameters()).device
    fake = vocoder(mel.to(device)).float().cpu()
    for nm, w in zip(names, fake):
        # A manifest root is named "<folder>/<stem>" (load_clips): one file name, not a subfolder.
        file_name = f"step{step:07d}_{nm}.wav".replace("/", "-")
        save_audio(out / file_name, w.clamp(-1, 1), mel_config.sample_rate)
    try:
        from ..plots import spectrogram_grid

        grid = torch.cat([mel, mel_spectrogram(fake, mel_config)])  # same frame count by construction
        titles = [f"{nm} ref" for nm in names] + [f"{nm} voc" for nm in names]
        spectrogram_grid(grid, titles, out / f"step{step:07d}.png", mel_config, cols=len(names))
    except ImportError:
        pass  # matplotlib is an optional extra; the wavs are written regardless


# ----------------------------------------------------------------------------------------------
# Command line

EXAMPLES = """examples:
  python -m cmaudio.vocoder.train recipes/vocoder/vocoder.toml --out runs/vocoder-16k
  python -m cmaudio.vocoder.train recipes/vocoder/vocoder.toml --out runs/vocoder-16k --resume
  python -m cmaudio.vocoder.train recipes/vocoder/tiny.toml --set run.steps=50 --out runs/voc-tiny
  python -m cmaudio.vocoder.train recipes/vocoder/vocoder.toml --dry-run
  python -m cmaudio.vocoder.train --compare runs/vocoder-16k/vocoder.safetensors \\
      --data data/digits data/notes/manifest.jsonl data/drums --split test --threads 1
  python -m cmaudio.vocoder.train --export runs/vocoder-16k/vocoder.safetensors \\
      runs/vocoder-16k/vocoder-refine1.safetensors --mel-refine 1
"""


def _parser() -> Parser:
    p = Parser(
        "cmaudio.vocoder.train",
        "Train the neural vocoder (GAN, Vocos-style), or compare vocoders by copy synthesis.",
        EXAMPLES,
    )
    p.add_argument("config", nargs="?", help="recipe TOML file (not with --compare or --export)")
    p.add_run_arguments()
    g = p.add_argument_group("comparison (copy synthesis on held-out clips)")
    g.add_argument(
        "--compare",
        nargs="+",
        metavar="VOCODER",
        default=None,
        help="vocoder files or bundled names, scored against Griffin-Lim",
    )
    g.add_argument(
        "--data",
        nargs="+",
        metavar="DIR",
        default=None,
        help="data roots: folders (SC09-style) or manifest files",
    )
    g.add_argument("--split", default="test", help="split to score (default: test)")
    g.add_argument("--clips", type=int, default=0, help="N clips per root, evenly spaced (default: all)")
    g.add_argument("--seconds", type=float, default=1.0, help="clip length (default: 1.0)")
    g.add_argument("--gl-iters", type=int, default=32, help="Griffin-Lim iterations (default: 32)")
    g.add_argument("--json", default=None, help="also write the rows as JSON here")
    g.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads for the timing (default: torch's; 1 on a shared CPU)",
    )
    e = p.add_argument_group("export (re-save a vocoder file, e.g. for cmaudio/assets)")
    e.add_argument("--export", nargs=2, metavar=("SRC", "DST"), default=None, help="source and destination files")
    e.add_argument(
        "--mel-refine",
        type=int,
        default=None,
        help="with --export: set net.mel_refine (mel-consistency passes after the network; no weights change)",
    )
    e.add_argument(
        "--mel-refine-updates",
        type=int,
        default=None,
        help="with --export: set net.mel_refine_updates (band-gain updates per pass)",
    )
    e.add_argument("--name", default=None, help="with --export: the name recorded in the new file (default: kept)")
    e.add_argument(
        "--mel-refine-momentum",
        type=float,
        default=None,
        help="with --export: set net.mel_refine_momentum (fast Griffin-Lim's extrapolation between passes, 0 .. 2)",
    )
    return p


def _body(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.export is not None:
        if args.config or args.compare is not None or args.resume or args.out:
            raise UsageError("--export takes no CONFIG, --compare, --out or --resume")
        export_vocoder(
            *args.export,
            mel_refine=args.mel_refine,
            mel_refine_updates=args.mel_refine_updates,
            mel_refine_momentum=args.mel_refine_momentum,
            name=args.name,
        )
        return 0
    if any(v is not None for v in (args.mel_refine, args.mel_refine_updates, args.mel_refine_momentum, args.name)):
        raise UsageError("--name and the --mel-refine options go with --export SRC DST")
    if args.compare is not None:
        return _compare_command(args)
    if not args.config:
        raise UsageError("give a CONFIG.toml to train, or --compare VOCODER --data DIR")
    cfg = load_config(args.config, args.overrides, cls=VocoderTrainConfig)
    run_dir = Path(args.out or os.path.join("runs", cfg.name))
    if args.dry_run:
        print(json.dumps(to_dict(cfg), indent=2))
        print(
            f"dry run: would train vocoder {cfg.name!r} for {cfg.run.steps} steps into {run_dir}",
            file=sys.stderr,
        )
        return 0
    train(cfg, run_dir, resume=args.resume, progress=not args.no_progress)
    return 0


def _compare_command(args) -> int:
    if args.config or args.resume or args.out:
        raise UsageError("--compare takes no CONFIG, --out or --resume")
    if not args.data:
        raise UsageError("--compare needs --data DIR [DIR ...]")
    if args.clips < 0 or args.gl_iters < 1 or args.seconds <= 0 or args.threads < 0:
        raise UsageError("--clips and --threads must be >= 0, --gl-iters >= 1 and --seconds > 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows = compare(
        args.compare,
        args.data,
        split=args.split,
        clips=args.clips,
        seconds=args.seconds,
        gl_iters=args.gl_iters,
        progress=not args.no_progress,
    )
    print(format_table(rows))
    print(
        f"\n{time.perf_counter() - t0:.1f} s wall, {torch.get_num_threads()} torch thread(s), split {args.split}",
        file=sys.stderr,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return main_wrapper("cmaudio.vocoder.train", _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
