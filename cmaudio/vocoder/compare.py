"""Copy synthesis: score vocoders by rendering the mel of held-out clips back to audio.

``compare`` runs Griffin-Lim and any vocoder files on the held-out split of each data root and
returns one row of ``cmaudio.spectral.evaluate_copy_synthesis`` metrics per (data set, vocoder);
``format_table`` prints them as markdown (``python -m cmaudio.vocoder.train --compare``).
``heldout_metrics`` is the periodic evaluation of a training run (clip-weighted means).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..audio import MelConfig
from ..errors import VocoderError
from ..spectral import evaluate_copy_synthesis
from .base import Vocoder
from .data import load_clips
from .griffinlim import GriffinLim

__all__ = ["compare", "format_table", "heldout_metrics"]


def compare(
    vocoders: Sequence[str],
    roots: Sequence[str],
    *,
    split: str = "test",
    clips: int = 0,
    seconds: float = 1.0,
    gl_iters: int = 32,
    batch_size: int = 16,
    progress: bool = True,
) -> list[dict]:
    """Copy synthesis on the held-out ``split`` of each root: Griffin-Lim (``gl_iters``) and each
    vocoder (bundled name or file). Returns one row per (data set, vocoder) with the metrics of
    ``cmaudio.spectral.evaluate_copy_synthesis``; every vocoder must share one MelConfig."""
    from . import load_vocoder

    loaded = [load_vocoder(v) for v in vocoders]
    mel = loaded[0].mel_config if loaded else MelConfig()
    for v in loaded[1:]:
        if v.mel_config != mel:
            raise VocoderError(f"vocoders {loaded[0].name!r} and {v.name!r} use different mel front ends")
    baseline = GriffinLim(mel, n_iter=gl_iters)
    baseline.name = f"griffinlim-{gl_iters}"
    rows = []
    for name, wavs in load_clips(roots, mel, split, seconds=seconds, progress=progress, limit=clips):
        for voc in [baseline, *loaded]:
            m = evaluate_copy_synthesis(voc, wavs, mel, batch_size=batch_size)
            rows.append({"data": name, "vocoder": voc.name, **m})
    return rows


# (column, row key, format): one table for the printed comparison.
COLUMNS = (
    ("MR-STFT", "mr_stft", "{:.4f}"),
    ("SC", "sc", "{:.4f}"),
    ("log-mag L1", "log_mag", "{:.4f}"),
    ("mel L1", "mel_l1", "{:.4f}"),
    ("mel-64 L1", "mel64_l1", "{:.4f}"),
    ("PESQ-wb", "pesq_wb", "{:.3f}"),
    ("peak ratio (median / max)", "peak_ratio_max", None),
    ("x real time", "x_realtime", "{:.0f}"),
)


def format_table(rows: Sequence[dict]) -> str:
    """Markdown table of ``compare`` rows (lower is better except PESQ and x-real-time; a peak
    ratio above 1 means the vocoder's output peaks higher than its input)."""
    cols = [c for c in COLUMNS if any(c[1] in r for r in rows)]
    head = "| data | vocoder | clips | " + " | ".join(c[0] for c in cols) + " |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = [r["data"], r["vocoder"], str(r["clips"])]
        for _, key, fmt in cols:
            if key not in r:
                cells.append("-")
            elif fmt is None:
                cells.append(f"{r['peak_ratio_median']:.2f} / {r['peak_ratio_max']:.2f}")
            else:
                cells.append(fmt.format(r[key]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@torch.no_grad()
def heldout_metrics(
    vocoder: Vocoder, eval_clips: Sequence[tuple[str, torch.Tensor]], mel: MelConfig
) -> dict[str, float]:
    """Copy-synthesis MR-STFT and mel L1 of ``vocoder`` over every held-out (name, wavs) set, as
    means weighted by clip count (no PESQ: fast enough to run during training). Uses no random
    numbers, so it cannot disturb exact resume."""
    totals: dict[str, float] = {}
    n = 0
    for _, wavs in eval_clips:
        m = evaluate_copy_synthesis(vocoder, wavs, mel, with_pesq=False)
        for k in ("mr_stft", "mel_l1"):
            totals[k] = totals.get(k, 0.0) + m[k] * m["clips"]
        n += m["clips"]
    return {k: v / max(n, 1) for k, v in totals.items()}
