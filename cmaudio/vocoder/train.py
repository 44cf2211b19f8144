"""Train the neural vocoder (neural.py) as a GAN: the run loop and the command line.

    python -m cmaudio.vocoder.train CONFIG.toml [--set k=v ...] [--out RUN] [--resume] [--dry-run]
    python -m cmaudio.vocoder.train --compare RUN/vocoder.safetensors --data DIR [DIR ...]
    python -m cmaudio.vocoder.train --export SRC DST [--mel-refine N] [--mel-refine-updates N]

The pieces live next door: the recipe's dataclasses in config.py, the audio and its random
segments in data.py, one GAN step (losses, optimisers, EMA, warm start) in gan.py, copy-synthesis
comparison in compare.py, re-saving a vocoder file in export.py. This module holds what a
training run does around the steps, kept apart from them:

- the run folder, exact resume and logging (``RunFolder``), like the acoustic one
  (docs/architecture.md section 4)::

      config.json  log.jsonl  samples/  vocoder.safetensors (EMA G)  state.pt (exact resume)
      vocoder-<step>.safetensors (every run.snapshot_every steps)

- the non-finite guard (``NonFiniteGuard``): a step whose losses or gradients are not finite is
  skipped and counted; ``run.max_bad_steps`` in a row stop the run;
- the loop (``train``): logging windows, saving, held-out metrics and samples.

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
from ..checkpoint import load_state, save_state
from ..cli import Parser, main_wrapper
from ..config import load_config, to_dict
from ..errors import CheckpointError, TrainingError, UsageError
from ..training_loop import check_resumable, resolve_device, truncate_log
from .base import Vocoder
from .compare import compare, format_table, heldout_metrics
from .config import RESUMABLE_CHANGES, VocoderRunResult, VocoderTrainConfig
from .data import SegmentSampler, load_clips, load_eval_clips
from .export import export_vocoder
from .fileformat import save_vocoder
from .gan import GANTrainer

__all__ = ["NonFiniteGuard", "RunFolder", "train", "write_samples", "main"]

log = logging.getLogger("cmaudio")

# Clips written to samples/ per data root at every sample_every.
SAMPLES_PER_ROOT = 2
# Losses averaged over each logging window (those a step reports).
LOGGED = ("loss_g", "mel", "stft", "loss_d", "loss_adv", "loss_fm", "grad_norm_g", "grad_norm_d")


# ----------------------------------------------------------------------------------------------
# Run folder, resume, logging and the non-finite guard (no GAN in here)


class RunFolder:
    """A vocoder run's folder: where its files are, exact resume from state.pt, log.jsonl."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.state_path = self.path / "state.pt"
        self.log_path = self.path / "log.jsonl"
        self.samples = self.path / "samples"
        self.vocoder_path = self.path / "vocoder.safetensors"

    def refuse_overwrite(self, resume: bool) -> None:
        if not resume and self.state_path.exists():
            raise TrainingError(
                f"{self.path} already holds a run: pass --resume to continue it, or choose another --out"
            )

    def open(self, trainer: GANTrainer, cfg: VocoderTrainConfig, resume: bool) -> None:
        """Create the folder; continue exactly from state.pt when resuming (and there is one),
        else start afresh (warm-started from ``run.init`` if set); write the resolved config."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.samples.mkdir(exist_ok=True)
        if resume and self.state_path.exists():
            self.resume(trainer, cfg)
        else:
            if cfg.run.init:
                trainer.warm_start(cfg.run.init)
            self.log_path.unlink(missing_ok=True)
        (self.path / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")

    def resume(self, trainer: GANTrainer, cfg: VocoderTrainConfig) -> None:
        try:
            st = load_state(self.state_path)
        except CheckpointError as exc:
            raise TrainingError(str(exc)) from None
        if st.get("kind") != "vocoder":
            raise TrainingError(f"{self.state_path}: not a vocoder training state")
        check_resumable(st["config"], cfg, self.state_path, RESUMABLE_CHANGES)
        trainer.load(st)
        truncate_log(self.log_path, trainer.step)
        for tmp in self.path.glob(".*.tmp"):  # torn writes of a killed run; renamed files are whole
            tmp.unlink(missing_ok=True)
        log.info("resuming %s at step %d", self.path, trainer.step)

    def save(self, trainer: GANTrainer, cfg: VocoderTrainConfig, snapshot: bool) -> None:
        """The EMA generator as vocoder.safetensors (and vocoder-<step> when ``snapshot``), then
        state.pt: a run killed in between resumes from the previous state, never a newer one."""
        extra = {"trained_on": ",".join(cfg.data.roots)}
        save_vocoder(self.vocoder_path, trainer.ema, cfg.name, trainer.step, extra=extra)
        if snapshot:
            path = self.path / f"vocoder-{trainer.step:07d}.safetensors"
            save_vocoder(path, trainer.ema, cfg.name, trainer.step, extra=extra)
        save_state(self.state_path, trainer.state())

    def append_log(self, rec: dict) -> None:
        with open(self.log_path, "a") as fh:
            fh.write(json.dumps(rec) + "\n")


class LogWindow:
    """The steps since the last log line: their mean losses and the training speed."""

    def __init__(self) -> None:
        self.recs: list[dict] = []
        self.restart_clock()

    def restart_clock(self) -> None:
        """Start timing afresh (after an evaluation, whose time is not training speed)."""
        self.t0 = time.perf_counter()

    def add(self, rec: dict) -> None:
        self.recs.append(rec)

    def summary(self, step: int, bad_total: int, batch_size: int) -> dict:
        """The log.jsonl record of this window, which then starts over."""
        now = time.perf_counter()
        out: dict = {"step": step}
        for key in LOGGED:
            vals = [r[key] for r in self.recs if key in r]
            if vals:
                out[key] = sum(vals) / len(vals)
        last, n = self.recs[-1], len(self.recs)
        out.update(
            lr=last["lr"],
            adversarial=last["adversarial"],
            bad_steps=bad_total,
            s_per_step=(now - self.t0) / n,
            segments_per_s=n * batch_size / (now - self.t0),
        )
        self.recs, self.t0 = [], now
        return out


class NonFiniteGuard:
    """Counts skipped (non-finite) steps; ``limit`` in a row stop the run with a TrainingError."""

    def __init__(self, limit: int, last_good: Path):
        self.limit, self.last_good, self.in_row = limit, last_good, 0

    def skipped(self, trainer: GANTrainer) -> None:
        # The update was skipped: a NaN never reaches the weights or a saved file.
        self.in_row += 1
        trainer.bad_total += 1
        if self.in_row >= self.limit:
            raise TrainingError(
                f"losses or gradients were non-finite for {self.in_row} steps in a row at step "
                f"{trainer.step}; stopped (last good vocoder: {self.last_good}). Lower optim.lr."
            )

    def passed(self) -> None:
        self.in_row = 0


# ----------------------------------------------------------------------------------------------
# The loop


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
    folder = RunFolder(run_dir)
    folder.refuse_overwrite(resume)
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    device = resolve_device(cfg.run.device)
    clips, eval_clips = _training_audio(cfg, clips, eval_clips, progress)
    # segment_frames hops of audio; its centred mel has segment_frames + 1 frames and the
    # generator renders num_samples(segment_frames + 1) = exactly the segment back.
    seg = cfg.data.segment_frames * cfg.mel.hop_length
    sampler = SegmentSampler(clips, seg, cfg.run.seed, cfg.data.balance, cfg.data.gain_db)
    trainer = GANTrainer(cfg, sampler, device)
    folder.open(trainer, cfg, resume)
    return _loop(trainer, cfg, folder, eval_clips, progress)


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


def _loop(
    trainer: GANTrainer,
    cfg: VocoderTrainConfig,
    folder: RunFolder,
    eval_clips: list[tuple[str, torch.Tensor]],
    progress: bool,
) -> VocoderRunResult:
    run = cfg.run
    bar = _progress_bar(cfg, trainer.step) if progress else None
    t_start, start_step = time.perf_counter(), trainer.step
    window, guard = LogWindow(), NonFiniteGuard(run.max_bad_steps, folder.vocoder_path)
    last_eval: dict[str, float] = {}
    trainer.gen.train()
    try:
        while trainer.step < run.steps:
            rec = trainer.train_step()
            if rec is None:
                guard.skipped(trainer)
                continue
            guard.passed()
            step = trainer.step
            window.add(rec)
            if bar:
                bar.update(1)
                bar.set_postfix(mel=f"{rec['mel']:.3f}", g=f"{rec['loss_g']:.3g}")
            if step % run.log_every == 0 or step == run.steps:
                folder.append_log(window.summary(step, trainer.bad_total, run.batch_size))
            snapshot = bool(run.snapshot_every) and step % run.snapshot_every == 0
            if step % run.save_every == 0 or step == run.steps or snapshot:
                folder.save(trainer, cfg, snapshot)
            if run.sample_every and (step % run.sample_every == 0 or step == run.steps) and eval_clips:
                last_eval = heldout_metrics(trainer.ema, eval_clips, cfg.mel)
                write_samples(trainer.ema, eval_clips, cfg.mel, folder.samples, step)
                folder.append_log({"step": step, **{f"eval_{k}": v for k, v in last_eval.items()}})
                window.restart_clock()  # keep evaluation time out of the speed figures
    finally:
        if bar:
            bar.close()
    return _report(trainer, cfg, folder, time.perf_counter() - t_start, start_step, last_eval)


def _progress_bar(cfg: VocoderTrainConfig, initial: int):
    from tqdm import tqdm

    return tqdm(
        total=cfg.run.steps, initial=initial, desc=cfg.name, unit="step", dynamic_ncols=True, file=sys.stderr
    )


def _report(
    trainer: GANTrainer,
    cfg: VocoderTrainConfig,
    folder: RunFolder,
    seconds: float,
    start_step: int,
    last_eval: dict[str, float],
) -> VocoderRunResult:
    """The run's result, and its one-line summary on stderr."""
    done = trainer.step - start_step
    result = VocoderRunResult(
        trainer.step, seconds, seconds / max(done, 1), trainer.bad_total, str(folder.vocoder_path), last_eval
    )
    quality = ""
    if last_eval:
        quality = f"; held-out mel L1 {last_eval['mel_l1']:.3f}, MR-STFT {last_eval['mr_stft']:.3f}"
    print(
        f"trained {done} vocoder steps in {seconds:.1f} s ({result.seconds_per_step:.2f} s/step, "
        f"batch {cfg.run.batch_size} x {cfg.data.segment_frames} frames) on {trainer.device.type}; "
        f"{trainer.bad_total} skipped steps{quality}; vocoder: {folder.vocoder_path}",
        file=sys.stderr,
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
    g.add_argument(
        "--clips", type=int, default=0, help="N clips per root, evenly spaced (default: all)"
    )
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
    return p


def _body(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.export is not None:
        if args.config or args.compare is not None or args.resume or args.out:
            raise UsageError("--export takes no CONFIG, --compare, --out or --resume")
        export_vocoder(*args.export, mel_refine=args.mel_refine, mel_refine_updates=args.mel_refine_updates)
        return 0
    if args.mel_refine is not None or args.mel_refine_updates is not None:
        raise UsageError("--mel-refine and --mel-refine-updates go with --export SRC DST")
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
        f"\n{time.perf_counter() - t0:.1f} s wall, {torch.get_num_threads()} torch thread(s), "
        f"split {args.split}",
        file=sys.stderr,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return main_wrapper("cmaudio.vocoder.train", _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
