"""How often cmaudio.quality flags real held-out clips (false alarms) and injected defects (hits).

For each data set: every clip of its test split as it is, then the same clips made silent,
hard-clipped (x4, clamped to +-1), replaced by white noise at the clip's RMS, and (pitched sets)
detuned by a semitone. Writes a markdown table.

    python benchmarks/quality_flags.py --data data/digits data/drums data/notes/manifest.jsonl \
        data/real/speech.jsonl --out docs/quality_flags.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cmaudio.audio import MelConfig
from cmaudio.quality import flags
from cmaudio.vocoder.data import load_clips

NOISY = {"hihat", "cymbal", "snare", "clap_perc"}  # labels whose real sound is noise-like


def labels_of(root: str, n: int) -> list[str | None]:
    from cmaudio.data import AudioFolder

    path = Path(root)
    folder, kw = (path.parent, {"layout": "manifest", "manifest": path.name}) if path.is_file() else (path, {})
    fields = ("pitch",) if "notes" in root else (("label",) if not path.is_file() else ())
    try:
        ds = AudioFolder(folder, split="test", label_fields=fields, cache=True, progress=False, **kw)
    except Exception:
        return [None] * n
    if not fields:
        return [None] * n
    names = ds.classes[0]
    return [names[i] for i in ds.labels[:, 0].tolist()]


def rates(wavs, sr, pitch) -> dict[str, float]:
    f = flags(wavs, sr, pitch_hz=pitch)
    return {
        "any": sum(bool(x) for x in f) / len(f),
        **{k: sum(k in x for x in f) / len(f) for k in ("silent", "clipped", "noise", "pitch")},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--clips", type=int, default=0, help="clips per data set, evenly spaced (default: all)")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    mel, sr = MelConfig(), 16000
    head = "| data | clips | real flagged | silence hit | clipping hit | noise hit | detune hit | noise-like labels |"
    lines = [
        head,
        "|---|---|---|---|---|---|---|---|",
    ]
    for root in a.data:
        ((name, wavs),) = load_clips([root], mel, "test", seconds=a.seconds, progress=False)
        labels = labels_of(root, len(wavs))
        if 0 < a.clips < len(wavs):  # evenly spaced, as load_clips(limit=) picks them
            keep = torch.linspace(0, len(wavs) - 1, a.clips).round().long()
            wavs, labels = wavs[keep], [labels[i] for i in keep.tolist()]
        pitched = all(lb is not None and lb.isdigit() for lb in labels) and "notes" in root
        hz = [440 * 2 ** ((int(lb) - 69) / 12) for lb in labels] if pitched else None
        noise_ok = [lb in NOISY for lb in labels]
        real = rates(wavs, sr, hz)
        silent = rates(wavs * 1e-5, sr, None)["silent"]
        clipped = rates((wavs / wavs.abs().amax(-1, keepdim=True).clamp_min(1e-6) * 4).clamp(-1, 1), sr, None)
        rms = wavs.pow(2).mean(-1, keepdim=True).sqrt()
        noise = rates(torch.randn(wavs.shape, generator=torch.Generator().manual_seed(0)) * rms, sr, None)
        detune = "-"
        if pitched:
            # A semitone up by reading the clip faster (linear interpolation: a defect, not a
            # resampler; torchaudio's sinc at a 16000:15102 ratio is a kernel of thousands of phases).
            pos = torch.arange(wavs.shape[-1]) * 2 ** (1 / 12)
            i0 = pos.floor().long().clamp_max(wavs.shape[-1] - 2)
            frac = (pos - i0).clamp(0, 1)
            up = wavs[:, i0] * (1 - frac) + wavs[:, i0 + 1] * frac
            up[:, pos >= wavs.shape[-1] - 1] = 0
            detune = f"{rates(up, sr, hz)['pitch']:.1%}"
        noisy_real = [i for i, ok in enumerate(noise_ok) if ok]
        noisy_flag = "-"
        if noisy_real:
            f = flags(wavs[noisy_real], sr)
            noisy_flag = f"{sum('noise' in x for x in f) / len(f):.1%} over the flatness threshold"
        lines.append(
            f"| {name} | {len(wavs)} | {real['any']:.1%} | {silent:.1%} | {clipped['clipped']:.1%} | "
            f"{noise['noise']:.1%} | {detune} | {noisy_flag} |"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if a.out:
        Path(a.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
