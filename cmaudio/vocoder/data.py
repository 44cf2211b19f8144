"""Audio for vocoder training: the clips of every data root (``load_clips``), the held-out clips
scored during a run (``load_eval_clips``) and the random training segments drawn from them
(``SegmentSampler``, seeded and exactly resumable)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from ..audio import MelConfig
from ..errors import DatasetError, TrainingError
from .config import VocoderTrainConfig

__all__ = ["SegmentSampler", "load_clips", "load_eval_clips"]

log = logging.getLogger("cmaudio")


def load_clips(
    roots: Sequence[str | os.PathLike],
    mel: MelConfig,
    split: str,
    *,
    seconds: float = 1.0,
    layout: str = "auto",
    cache: bool = True,
    progress: bool = True,
    limit: int = 0,
) -> list[tuple[str, torch.Tensor]]:
    """(name, wavs [N, round(seconds * sr)]) per root: split ``split`` of each data set through
    AudioFolder(keep_wav=True, label_fields=()). A root is a folder (read with ``layout``, e.g.
    SC09-style) or a manifest file (.jsonl, .json, .csv) inside one, which also carries the
    splits (e.g. data/notes/manifest.jsonl). ``limit`` > 0 keeps N clips evenly spaced through
    the split (indexes are sorted by path, so every class of a foldered set is represented)."""
    from ..data import AudioFolder

    out = []
    for root in roots:
        path = Path(root)
        folder, kwargs = path, {"layout": layout}
        if path.is_file():
            folder, kwargs = path.parent, {"layout": "manifest", "manifest": path.name}
        ds = AudioFolder(
            folder,
            mel=mel,
            seconds=seconds,
            split=split,
            label_fields=(),
            cache=cache,
            keep_wav=True,
            progress=progress,
            **kwargs,
        )
        wavs = ds.wavs
        if 0 < limit < len(wavs):
            wavs = wavs[torch.linspace(0, len(wavs) - 1, limit).round().long()]
        # A manifest is named by its folder and stem: data/real holds one per domain.
        name = folder.resolve().name if folder == path else f"{folder.resolve().name}/{path.stem}"
        out.append((name, wavs))
    return out


class SegmentSampler:
    """Random training segments, reproducible from a seed and resumable exactly.

    Draws a root (uniformly when ``balance``, else in proportion to its size), a clip, a start and a
    gain from its own generator, so nothing else in the process (model init, samples) shifts it.
    next(batch) -> wav [batch, segment_samples] float32."""

    def __init__(
        self,
        sets: Sequence[torch.Tensor],
        segment_samples: int,
        seed: int,
        balance: bool = True,
        gain_db: float = 0.0,
    ):
        if not sets or any(s.shape[0] == 0 for s in sets):
            raise TrainingError("the training set is empty")
        lengths = {s.shape[-1] for s in sets}
        if len(lengths) != 1:
            raise TrainingError(f"clips of different lengths across data roots: {sorted(lengths)}")
        self.clip_samples = lengths.pop()
        if segment_samples > self.clip_samples:
            raise TrainingError(
                f"segments of {segment_samples} samples are longer than the clips "
                f"({self.clip_samples}); lower data.segment_frames or raise data.seconds"
            )
        self.wavs = torch.cat(list(sets)).float()
        self.sizes = torch.tensor([s.shape[0] for s in sets])
        self.offsets = torch.cumsum(self.sizes, 0) - self.sizes
        self.segment_samples, self.balance, self.gain_db = segment_samples, balance, gain_db
        self.gen = torch.Generator().manual_seed(seed)

    def _draw_clips(self, n: int) -> torch.Tensor:
        if self.balance:
            which = torch.randint(len(self.sizes), (n,), generator=self.gen)
            within = (torch.rand(n, generator=self.gen) * self.sizes[which]).long()
            return self.offsets[which] + within.clamp_max(self.sizes[which] - 1)
        return torch.randint(self.wavs.shape[0], (n,), generator=self.gen)

    def next(self, batch: int) -> torch.Tensor:
        s = self.segment_samples
        idx = self._draw_clips(batch).tolist()
        start = torch.randint(self.clip_samples - s + 1, (batch,), generator=self.gen).tolist()
        # Silent stretches are kept on purpose: clips (and generated mels) are full of them, and
        # a vocoder that never saw the log floor fills it with noise, which mel L1 punishes.
        seg = torch.stack([self.wavs[i, j : j + s] for i, j in zip(idx, start)])
        if self.gain_db > 0:
            db = -torch.rand(batch, 1, generator=self.gen) * self.gain_db
            seg = seg * torch.pow(10.0, db / 20)
        return seg

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])


def load_eval_clips(cfg: VocoderTrainConfig, progress: bool = True) -> list[tuple[str, torch.Tensor]]:
    """data.eval_clips clips of data.eval_split of every root that has that split (a root
    without one is skipped with a warning)."""
    out = []
    for root in dict.fromkeys(cfg.data.roots):  # a root listed twice (drawn twice as often) is scored once
        try:
            out += load_clips(
                [root],
                cfg.mel,
                cfg.data.eval_split,
                seconds=cfg.data.seconds,
                layout=cfg.data.layout,
                cache=cfg.data.cache,
                progress=progress,
                limit=cfg.data.eval_clips,
            )
        except DatasetError as exc:
            log.warning("no held-out evaluation for %s (%s)", root, exc)
    return out
