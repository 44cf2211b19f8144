"""Seam quality of loops, long audio, inpainting and continuation, per bundled model and steps.

A seam passes when its spectral flux (cmaudio.quality.seam_flux: 512-point Hann STFT, hop 256,
mean absolute difference of neighbouring log-magnitude frames) is at most the clip's own
95th-percentile flux between frames away from any seam; loops must also keep the seam frames'
energy within 6 dB of the clip's median frame energy. A loop wraps at its loop point
(editing.loop_point) and holds the join the sampler made elsewhere (metadata ``loop_join_s``):
both are scored, each with the other left out of the interior. Long audio's window joins are
read from the metadata (``window_joins_s``). Prints a markdown table.

    python benchmarks/seams.py --models digits drums notes --steps 1,2,4 --clips 20 --out docs/seams.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cmaudio.pipeline import Pipeline
from cmaudio.quality import seam_flux


def labels_for(pipe: Pipeline, n: int) -> list[str | None]:
    return [pipe.labels[i % len(pipe.labels)] if pipe.labels else None for i in range(n)]


def passed(scores: list[dict], energy: bool = False) -> tuple[int, int]:
    ok = sum(s["flux"] <= s["p95"] and (not energy or abs(s["energy_db"]) <= 6) for s in scores)
    return ok, len(scores)


def row(name: str, what: str, steps: int, ok: int, total: int) -> str:
    return f"| {name} | {what} | {steps} | {ok}/{total} | {ok / max(total, 1):.0%} |"


def measure(name: str, steps: int, clips: int) -> list[str]:
    pipe = Pipeline.from_pretrained(name, device="cpu")
    labels = labels_for(pipe, clips)
    rows = []
    loops = pipe.generate(labels=labels, steps=steps, seed=0, loop=True)
    both = [
        seam_flux(w, [w.numel(), round(m["loop_join_s"] * pipe.sample_rate)], wrap=True)
        for w, m in zip(loops.waveforms, loops.metadata)
    ]
    rows.append(row(name, "loop: the wrap (flux and energy)", steps, *passed([b[0] for b in both], energy=True)))
    joined = [b[1] for b, m in zip(both, loops.metadata) if m["loop_join_s"] > 0]  # 0: the join is the wrap
    rows.append(row(name, "loop: the sampler's join (flux)", steps, *passed(joined)))
    for seconds in (5.0, 30.0):
        long = pipe.generate(labels=labels[: max(2, clips // 4)], steps=steps, seed=100, duration=seconds)
        scores = []
        for w, m in zip(long.waveforms, long.metadata):  # render_long's joins, from the metadata
            joins = [round(j * pipe.sample_rate) for j in m["window_joins_s"]]
            scores += seam_flux(w, [j for j in joins if j < w.numel() - 1024])
        rows.append(row(name, f"long audio {seconds:g} s, window joins", steps, *passed(scores)))
    real = pipe.generate(labels=labels, steps=steps, seed=500).waveforms
    hop = pipe.config.mel.hop_length
    inp, cont = [], []
    for k, w in enumerate(real):
        T = w.numel()
        out = pipe.inpaint(
            w, 0.3 * T / pipe.sample_rate, 0.5 * T / pipe.sample_rate, steps=steps, seed=k, label=labels[k]
        ).waveforms[0]
        a, b = int(0.3 * T / hop) * hop, int(0.5 * T / hop + 1) * hop
        inp += seam_flux(out, [a, b])
        more = pipe.continue_audio(w, 1.0, steps=steps, seed=k, label=labels[k]).waveforms[0]
        cont += seam_flux(more, [(T // hop) * hop])
    rows.append(row(name, "inpaint, both edges", steps, *passed(inp)))
    rows.append(row(name, "continue, the join", steps, *passed(cont)))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["digits", "drums", "notes"])
    p.add_argument("--steps", default="1,2,4")
    p.add_argument("--clips", type=int, default=20)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    lines = ["| model | seam | steps | passed | share |", "|---|---|---|---|---|"]
    for name in a.models:
        for steps in (int(s) for s in a.steps.split(",")):
            for line in measure(name, steps, a.clips):
                print(line, flush=True)
                lines.append(line)
    text = "\n".join(lines) + "\n"
    if a.out:
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
