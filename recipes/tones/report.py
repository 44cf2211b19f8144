"""Pitch accuracy of tones models and their loss curves: the table of recipes/tones/README.md.

    python recipes/tones/report.py runs/tones-teacher runs/tones-student runs/tones-cd runs/tones-ict \
        [--n 25] [--plot docs/tones_loss.png]

For each run: the share of generated clips whose dominant frequency is within a semitone of the
label's, at 1 and 2 steps (a consistency model) or with Heun at 18 steps (35 calls, a teacher).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from cmaudio.evaluation.metrics import pitch_hits
from cmaudio.pipeline import Pipeline


def accuracy(pipe: Pipeline, steps: int, n: int, seed: int = 0) -> float:
    labels = [lb for lb in pipe.labels for _ in range(n)]
    out = pipe.generate(labels=labels, steps=steps, seed=seed, batch_size=50)
    target = torch.tensor([float(lb) for lb in labels])
    return float(pitch_hits(out.waveforms, out.sample_rate, target).float().mean())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--n", type=int, default=25, help="clips per label and setting")
    p.add_argument("--plot", type=Path, default=None, help="write the loss curves here")
    a = p.parse_args(argv)
    print("| run | objective | steps trained | setting | network calls | within a semitone |")
    print("|---|---|---|---|---|---|")
    for run in a.runs:
        cfg = json.loads((run / "config.json").read_text())
        pipe = Pipeline.from_pretrained(run / "model.safetensors", device="cpu")
        settings = [(18, "Heun 18")] if not pipe.is_consistency else [(1, "1 step"), (2, "2 steps")]
        for steps, name in settings:
            acc = accuracy(pipe, steps, a.n)
            calls = pipe.calls(pipe.sigmas_for(steps))
            print(f"| {run.name} | {cfg['objective']['kind']} | {pipe.step} | {name} | {calls} | {acc:.0%} |")
    if a.plot:
        from cmaudio.plots import loss_curves

        loss_curves({r.name: r for r in a.runs}, a.plot)
        print(f"\nloss curves: {a.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
