"""Figures people would rather look at than read: spectrogram grids, loss curves, quality versus
network calls, and one spectrogram as an image array (for the web demo). matplotlib is an optional
extra, imported inside each function (never by ``import cmaudio``); each function but
spectrogram_image writes a png and returns its path."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .audio import MelConfig

__all__ = ["spectrogram_grid", "spectrogram_image", "loss_curves", "quality_vs_calls"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def spectrogram_grid(
    logmels: torch.Tensor, titles: Sequence[str], path: str | Path, mel: MelConfig = MelConfig(), cols: int = 5
) -> Path:
    """Raw log-mels [B, n_mels, frames] as a grid of images: time in seconds across, frequency in
    Hz upwards (on the mel scale of the bands), one colour scale for the grid. Axes are labelled on
    the left column and the bottom row, ticks on every image."""
    plt = _pyplot()
    logmels = logmels.detach().float().cpu()
    n = logmels.shape[0]
    cols = max(1, min(cols, n))
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.0 * rows), squeeze=False)
    vmax = max(float(logmels.max()), mel.log_floor + 1)  # one colour scale for the whole grid
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        _show_logmel(ax, logmels[i], mel, vmax)
        _label_axes(ax, mel, hz=i % cols == 0, seconds=i + cols >= n)
        ax.set_title(str(titles[i]) if i < len(titles) else "", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def spectrogram_image(logmel: torch.Tensor, mel: MelConfig = MelConfig(), title: str = "") -> np.ndarray:
    """Raw log-mel [n_mels, frames] -> RGB uint8 image [H, W, 3] of 320 x 144 pixels: time in
    seconds across, frequency in Hz upwards (on the mel scale of the bands), the colours and
    scale of spectrogram_grid."""
    # A bare Figure with its own Agg canvas, not pyplot: web servers call this from worker threads,
    # and pyplot's global figure state is not thread-safe.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    logmel = logmel.detach().float().cpu()
    fig = Figure(figsize=(4.0, 1.8), dpi=80)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    _show_logmel(ax, logmel, mel, max(float(logmel.max()), mel.log_floor + 1))
    _label_axes(ax, mel)
    if title:
        ax.set_title(title, fontsize=8)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.24, top=0.88 if title else 0.97)  # tight_layout: 2x slower
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _show_logmel(ax, logmel: torch.Tensor, mel: MelConfig, vmax: float) -> None:
    """One raw log-mel [n_mels, frames] on ``ax``: x in seconds, y in mel bands (band k spans
    [k, k + 1]), silence at the bottom of the colour scale."""
    ax.imshow(
        logmel.numpy(),
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=mel.log_floor,
        vmax=vmax,
        extent=(0, logmel.shape[-1] / mel.frames_per_second, 0, mel.n_mels),
    )


def _label_axes(ax, mel: MelConfig, hz: bool = True, seconds: bool = True) -> None:
    """Hz ticks on the band axis of _show_logmel, seconds on the time axis; the axis names where
    asked (a grid names them once per row and column)."""
    ticks = _hz_ticks(mel)
    ax.set_yticks([y for y, _ in ticks], [text for _, text in ticks])
    if hz:
        ax.set_ylabel("Hz", fontsize=8)
    if seconds:
        ax.set_xlabel("seconds", fontsize=8)
    ax.tick_params(labelsize=7)


def _slaney_mel(hz: float) -> float:
    """Hz -> mel on the Slaney scale (linear below 1 kHz, logarithmic above), the scale of the
    filter bank of audio.mel_basis."""
    return hz * 3 / 200 if hz < 1000 else 15 + 27 * math.log(hz / 1000) / math.log(6.4)


def _hz_ticks(mel: MelConfig) -> list[tuple[float, str]]:
    """(position on the band axis of _show_logmel, label) for octaves of 500 Hz inside the image
    (lower ones would crowd: the scale is linear below 1 kHz). n_mels + 2 points evenly spaced in
    mel from f_min to f_max are the filters' edges and centres: band k's centre, drawn at k + 0.5,
    is point k + 1."""
    lo, hi = _slaney_mel(mel.f_min), _slaney_mel(mel.f_max)
    ticks, hz = [], 500
    while hz <= mel.f_max:
        y = (_slaney_mel(hz) - lo) / (hi - lo) * (mel.n_mels + 1) - 0.5
        if 0 <= y <= mel.n_mels:
            ticks.append((y, f"{hz // 1000}k" if hz >= 1000 else str(hz)))
        hz *= 2
    return ticks


def loss_curves(runs: dict[str, str | Path], path: str | Path, smooth: int = 10) -> Path:
    """Training loss against step for each named run directory (its log.jsonl), log scale."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, run_dir in runs.items():
        recs = [json.loads(x) for x in (Path(run_dir) / "log.jsonl").read_text().splitlines() if x.strip()]
        steps = [r["step"] for r in recs]
        loss = torch.tensor([r["loss"] for r in recs], dtype=torch.float64)
        if smooth > 1 and len(loss) >= smooth:
            loss = torch.nn.functional.avg_pool1d(
                loss[None, None], smooth, 1, padding=smooth // 2, count_include_pad=False
            )[0, 0, : len(steps)]
        ax.plot(steps, loss.tolist(), label=name)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def quality_vs_calls(
    points: Sequence[dict],
    path: str | Path,
    metrics: Sequence[tuple[str, str]],
    floors: dict[str, float | None] | None = None,
    title: str = "",
) -> Path:
    """One panel per metric against network calls (log x), one line per group (e.g. the
    consistency model and the teacher's Heun sampler). ``points``: dicts with "group", "calls"
    and "metrics" (key -> value); ``metrics``: (key, axis title) pairs; ``floors``: a reference
    value per key drawn as a dashed line (real data against real data)."""
    plt = _pyplot()
    metrics = list(metrics) or [("logmel_fd", "log-mel FD")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    groups = list(dict.fromkeys(p["group"] for p in points))
    for ax, (key, label) in zip(axes[0], metrics):
        for g, marker in zip(groups, "osD^v"):
            pts = sorted((p["calls"], p["metrics"].get(key)) for p in points if p["group"] == g)
            pts = [(c, v) for c, v in pts if c is not None and v is not None]
            if pts:
                ax.plot([c for c, _ in pts], [v for _, v in pts], marker=marker, label=g)
        floor = (floors or {}).get(key)
        if floor is not None:
            ax.axhline(floor, color="gray", linestyle="--", linewidth=1, label="real train vs test")
        values = [p["metrics"].get(key) for p in points] + [floor]
        values = [v for v in values if v is not None]
        if values and min(values) > 0 and max(values) / min(values) > 30:
            ax.set_yscale("log")  # distances of early and late settings can differ by orders of magnitude
        ax.set_xscale("log")
        ax.set_xlabel("network calls per clip")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
