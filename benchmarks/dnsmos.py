"""DNSMOS (P.835, the eval extra's speechmos at 16 kHz) of a model's clips against real recordings,
scored the same way: issue 16's check that generated speech is heard as real as the recordings.

N clips balanced over the labels the real folder names (file names like ``7_jackson_32.wav``:
the label is the name up to its first ``_``), fixed seeds, the model's vocoder; the real side is
N recordings evenly spaced through the folder, resampled to 16 kHz. Prints one markdown row each.
``--vocoders`` adds copy synthesis: the same real recordings through the model's mel front end and
each named vocoder (bundled name or file), so the share of the gap that is the vocoder's shows.

    python benchmarks/dnsmos.py --model runs/digits-real/model.safetensors --real data/fsdd/classifier --n 100
    python benchmarks/dnsmos.py --model digits --real data/fsdd/classifier --steps "" --vocoders vocoder-16k,griffinlim
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cmaudio.audio import load_audio, mel_spectrogram
from cmaudio.evaluation.scoring import dnsmos_scores
from cmaudio.pipeline import Pipeline
from cmaudio.vocoder import load_vocoder


def real_clips(folder: Path, n: int) -> tuple[torch.Tensor, list[str]]:
    files = sorted(folder.rglob("*.wav"))
    keep = [files[int(i)] for i in torch.linspace(0, len(files) - 1, min(n, len(files))).round().long()]
    wavs = [load_audio(f, 16000) for f in keep]
    width = max(w.numel() for w in wavs)
    return torch.stack([torch.nn.functional.pad(w, (0, width - w.numel())) for w in wavs]), [
        f.name.split("_")[0] for f in files
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--real", required=True, help="folder of real recordings (label_speaker_index.wav)")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--steps", default="2")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--vocoders", default="", help="comma-separated vocoders for copy synthesis of the real clips")
    p.add_argument("--vocoder", default=None, help="the vocoder of the model's clips (default: the model's best match)")
    p.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance of the model's calls")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    real, names = real_clips(Path(a.real), a.n)
    print("| clips | N | DNSMOS overall | signal | background | P.808 |\n|---|---|---|---|---|---|")

    def row(what: str, scores: dict, n: int) -> None:
        s = scores
        print(
            f"| {what} | {n} | {s['dnsmos_ovrl']:.2f} | {s['dnsmos_sig']:.2f} | {s['dnsmos_bak']:.2f} | "
            f"{s['dnsmos_p808']:.2f} |",
            flush=True,
        )

    row(f"real ({a.real})", dnsmos_scores(real, 16000), len(real))
    pipe = Pipeline.from_pretrained(a.model, device="cpu", vocoder=a.vocoder, guidance=a.guidance)
    wanted = sorted(set(names))
    labels = [lb for lb in wanted if lb in pipe.labels] or pipe.labels
    for name in filter(None, a.vocoders.split(",")):
        vocoder = load_vocoder(name, pipe.config.mel, "cpu")
        with torch.inference_mode():
            copy = vocoder(mel_spectrogram(real, pipe.config.mel))
        row(f"real through mel and {name}", dnsmos_scores(copy, pipe.sample_rate), len(real))
    for steps in (int(s) for s in a.steps.split(",") if s):
        out = pipe.generate(labels=[labels[i % len(labels)] for i in range(a.n)], steps=steps, seed=0)
        guided = f", guidance {a.guidance:g}" if a.guidance != 1 else ""
        what = f"{a.model}, {steps} steps, {pipe.vocoder.name}{guided}"
        row(what, dnsmos_scores(out.waveforms, pipe.sample_rate), a.n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
