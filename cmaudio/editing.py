"""Editing and long audio with the same network (DESIGN section 3, "Editing"): inpainting,
continuation, variation, and generation beyond the model's clip length window by window.

The known frames go back into the mel after every network call (sampling.sample_consistency);
the waveform keeps the original samples where they are known and cross-fades to the vocoded
ones over a raised-cosine ramp of RAMP_SECONDS that lies inside the known audio, ending at the
edit, so the switch from original to generated audio is never a jump.

Window seeds (long audio, continuation): window w >= 1 of the sample seeded s draws its noise
from ``window_seed(s, w)``: a SplitMix64 hash of (s, w) with the top bit of a 63-bit integer set.
Two (sample, window) pairs of a call never share a seed (a hash collision aside, ~2^-62), and no
window seed equals a sample's own seed below 2^62, so a window never repeats another clip.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .audio import load_audio, mel_spectrogram, normalise
from .output import GenerationOutput
from .quality import frame_measures

if TYPE_CHECKING:  # the pipeline calls these functions; they only use its public methods
    from .pipeline import Pipeline

__all__ = [
    "EDIT_STEPS",
    "RAMP_SECONDS",
    "continue_audio",
    "crossfade_weights",
    "inpaint",
    "render_long",
    "variation",
    "window_seed",
]

RAMP_SECONDS = 0.02  # original -> generated cross-fade, inside the known audio
# Inpainting and continuation default to 4 network calls: docs/results.md, "Seams" (with 1 call
# the known audio never reaches the network; at 4, 82-100% of inpainted edges pass, 80-95% at 2).
EDIT_STEPS = 4
_MASK64 = (1 << 64) - 1


def window_seed(seed: int, window: int) -> int:
    """The seed of window ``window`` (>= 1) of the sample seeded ``seed`` (module docstring)."""
    z = ((int(seed) & _MASK64) * 0x9E3779B97F4A7C15 + int(window) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64  # SplitMix64's finaliser
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    z ^= z >> 31
    return (1 << 62) | (z & ((1 << 62) - 1))


def crossfade_weights(
    frame_mask: torch.Tensor, T: int, hop: int, sample_rate: int, ramp_s: float = RAMP_SECONDS
) -> torch.Tensor:
    """Frame mask [frames] (1 known, 0 edited) -> weight of the original per sample [T]: 1 inside
    the known audio, falling along a raised cosine to 0 over the last ``ramp_s`` seconds before
    each edited stretch (so the fade lies in audio whose mel was kept), 0 where edited."""
    known = frame_mask.float().cpu().repeat_interleave(hop)[:T]
    known = torch.nn.functional.pad(
        known, (0, max(0, T - known.numel())), value=float(known[-1]) if known.numel() else 0.0
    )
    pos = torch.arange(T, dtype=torch.float64)
    edited = known < 0.5
    if not bool(edited.any()):
        return torch.ones(T)
    inf = torch.tensor(float("inf"), dtype=torch.float64)
    last = torch.where(edited, pos, -inf).cummax(0).values  # the edited sample before (or at) each
    nxt = torch.where(edited, pos, inf).flip(0).cummin(0).values.flip(0)  # ... and after
    dist = torch.minimum(pos - last, nxt - pos)  # samples to the nearest edited one (0 on it)
    ramp = max(1.0, ramp_s * sample_rate)
    w = 0.5 - 0.5 * torch.cos(math.pi * (dist / ramp).clamp(0, 1))
    return torch.where(edited, torch.zeros_like(w), w).float()


def splice(original: torch.Tensor, generated: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """weight * original + (1 - weight) * generated, sample by sample (original zero-padded)."""
    T = generated.shape[-1]
    orig = torch.nn.functional.pad(original, (0, max(0, T - original.shape[-1])))[:T]
    return weight[:T] * orig + (1 - weight[:T]) * generated


def render_long(
    pipe: Pipeline, seeds: Sequence[int], cond, sigmas, frames: int, context: torch.Tensor | None = None
) -> tuple[torch.Tensor, list[list[int]]]:
    """(Normalised mels [B, n_mels, frames], per sample the frames where windows join), window by
    window. Each new window starts half a window before the end of what is kept and takes the
    frames from there up to the join as known context, soft-masked over the context's second half
    (the join is a cross-fade inside the sampler). The join is the quietest frame of the kept
    audio's last quarter-window, per sample: a pause between sounds hides it, and a longer fade
    smooths it (measured in docs/results.md, "Seams": digits' 30 s joins pass 87% -> 92%). A
    context shorter than half a window (a short clip to continue) is used whole, and so is a real
    clip's end. The last eighth of a generated window is regenerated, not kept: models trained on
    clips learn how clips END (fade-outs), which must not recur at every seam."""
    W, B, n_mels = pipe.config.frames, len(seeds), pipe.config.mel.n_mels
    keep, trim = W // 2, W // 8
    out = pipe.sample_mels(seeds, cond, sigmas, W) if context is None else context.expand(B, -1, -1)
    cut = trim if context is None else 0  # a real clip's end is real: keep all of it
    joins: list[list[int]] = [[] for _ in seeds]
    w = 0
    while out.shape[-1] - cut < frames:
        w += 1
        n = out.shape[-1] - cut
        start = max(0, n - keep)
        ends = [n] * B
        if cut and n - start > 2:  # generated audio: join at its quietest late frame
            first = n - (n - start) // 2
            loudness = out[:, :, first - 1 : n].mean(1)  # per frame, normalised log-mel
            ends = [first + int(i) for i in loudness.argmin(-1)]
        mask = torch.zeros(B, 1, W, device=pipe.device)
        known = torch.zeros(B, n_mels, W, device=pipe.device)
        for b, p in enumerate(ends):
            c = p - start
            fade = max(1, c // 2)
            mask[b, :, : c - fade] = 1.0
            mask[b, :, c - fade : c] = torch.linspace(1, 0, fade + 2, device=pipe.device)[1:-1]
            known[b, :, :c] = out[b, :, start:p]
            joins[b].append(p)
        win = pipe.sample_mels([window_seed(s, w) for s in seeds], cond, sigmas, W, known=known, mask=mask)
        out = torch.cat([out[..., :start], win], dim=-1)
        cut = trim
    return out[..., :frames], [[j for j in js if j < frames] for js in joins]


def load_clip(pipe: Pipeline, audio) -> tuple[torch.Tensor, torch.Tensor]:
    """A path, or a waveform [T] at the model's rate -> (normalised mel [1, n_mels, frames], the
    waveform [T] itself)."""
    rate = pipe.sample_rate
    wav = load_audio(audio, rate) if isinstance(audio, (str, Path)) else torch.as_tensor(audio).float()
    if wav.dim() != 1 or wav.numel() < pipe.config.mel.hop_length:
        raise ValueError("audio must be a mono clip of at least one hop of samples")
    if not torch.isfinite(wav).all():
        raise ValueError("audio contains NaN or infinite samples")
    return normalise(mel_spectrogram(wav, pipe.config.mel), pipe.config.stats)[None].to(pipe.device), wav


def _output(pipe: Pipeline, wav, mel, seed, label, sigmas, t0) -> GenerationOutput:
    meta = [pipe.metadata(seed, label, sigmas) | {"flags": pipe.flags(wav, [label])[0]}]
    return GenerationOutput(wav, mel.cpu(), pipe.sample_rate, meta, time.perf_counter() - t0)


def inpaint(
    pipe: Pipeline,
    audio,
    start_s: float,
    end_s: float,
    steps: int | None = EDIT_STEPS,
    seed: int = 0,
    label: str | None = None,
    sigmas: Sequence[float] | None = None,
) -> GenerationOutput:
    """Regenerate the span [start_s, end_s) of a clip; the rest of its mel stays exactly."""
    t0 = time.perf_counter()
    mel, wav = load_clip(pipe, audio)
    F = mel.shape[-1]
    fps = pipe.config.mel.frames_per_second
    a, b = int(math.floor(start_s * fps)), int(math.ceil(end_s * fps))
    if not (0 <= start_s < end_s) or a >= F:
        raise ValueError(f"need 0 <= start < end within the clip ({F / fps:.2f} s), got {start_s}, {end_s}")
    mask = torch.ones(1, 1, F, device=pipe.device)
    mask[..., a : min(b, F)] = 0
    sig = pipe.sigmas_for(steps, sigmas)
    out = pipe.sample_mels([seed], pipe.condition([label]), sig, F, known=mel, mask=mask)
    gen = pipe.vocode(out)[0].cpu()
    weight = crossfade_weights(mask[0, 0], gen.shape[-1], pipe.config.mel.hop_length, pipe.sample_rate)
    return _output(pipe, splice(wav, gen, weight)[None], out, seed, label, sig, t0)


def continue_audio(
    pipe: Pipeline,
    audio,
    seconds: float,
    steps: int | None = EDIT_STEPS,
    seed: int = 0,
    label: str | None = None,
    sigmas: Sequence[float] | None = None,
) -> GenerationOutput:
    """Extend a clip by ``seconds``; the output begins with the given clip (outpainting)."""
    t0 = time.perf_counter()
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    mel, wav = load_clip(pipe, audio)
    F = mel.shape[-1]
    total = F + int(math.ceil(seconds * pipe.config.mel.frames_per_second))
    sig = pipe.sigmas_for(steps, sigmas)
    out, _ = render_long(pipe, [seed], pipe.condition([label]), sig, total, context=mel)
    out[..., :F] = mel  # the given clip's frames, exactly
    gen = pipe.vocode(out)[0].cpu()
    # The last frame of the clip is centred on its final samples: its mel saw past the end.
    known = (torch.arange(total) < F - 1).float()
    weight = crossfade_weights(known, gen.shape[-1], pipe.config.mel.hop_length, pipe.sample_rate)
    return _output(pipe, splice(wav, gen, weight)[None], out, seed, label, sig, t0)


def variation(
    pipe: Pipeline,
    audio,
    strength: float,
    steps: int | None = 2,
    seed: int = 0,
    label: str | None = None,
    sigmas: Sequence[float] | None = None,
) -> GenerationOutput:
    """Re-noise a clip to a level set by ``strength`` in [0, 1] (log-interpolated between
    sigma_min and sigma_max) and resample from there (SDEdit-style): the one edit that starts
    below sigma_max on purpose. Strength 0 returns the input mel unchanged."""
    t0 = time.perf_counter()
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    mel, wav = load_clip(pipe, audio)
    p = pipe.config.precond
    if strength == 0:
        return _output(pipe, wav[None].clone(), mel, seed, label, [], t0)
    tau = math.exp(math.log(p.sigma_min) + strength * (math.log(p.sigma_max) - math.log(p.sigma_min)))
    tau = min(max(tau, p.sigma_min * 1.0001), p.sigma_max)
    sig = pipe.sigmas_for(steps, sigmas, from_noise=False)
    sig = [tau] + [s for s in sig[1:] if s < tau]
    out = pipe.sample_mels([seed], pipe.condition([label]), sig, mel.shape[-1], init=mel)
    return _output(pipe, pipe.vocode(out).cpu(), out, seed, label, sig, t0)


# ----------------------------------------------------------------------------------------------
# Seamless loops: the wrap-around seam inpainted, the waveform rendered across it.

LOOP_WINDOW = 1 << 20  # window index of the seam inpainting in window_seed (long audio uses 1, 2, ...)


def make_loop(pipe: Pipeline, mels: torch.Tensor, seeds: Sequence[int], cond, sigmas) -> torch.Tensor:
    """Mels [B, n_mels, F] whose end flows into their start. A window of the last half and the
    first half of a model window, joined where the clip ends and starts again, is sampled again
    with its outer quarters known and its middle (the join) generated, as inpainting does; the
    result goes back to the end and the start. The join is then the network's own, made with
    context on both sides. place_loop then moves the wrap away from it."""
    W = pipe.config.frames
    h = loop_half(pipe, mels.shape[-1])
    window = torch.zeros(mels.shape[0], mels.shape[1], W, device=pipe.device)
    window[..., :h] = mels[..., -h:].to(pipe.device)
    window[..., W - h :] = mels[..., :h].to(pipe.device)
    mask = torch.zeros(1, 1, W, device=pipe.device)
    mask[..., : h // 2] = 1.0
    mask[..., W - h // 2 :] = 1.0
    if W - 2 * h > 0:  # a loop shorter than a window: the frames between are free too
        mask[..., h : W - h] = 0.0
    out = pipe.sample_mels([window_seed(s, LOOP_WINDOW) for s in seeds], cond, sigmas, W, known=window, mask=mask)
    looped = mels.clone().to(pipe.device)
    looped[..., -h:] = out[..., :h]
    looped[..., :h] = out[..., W - h :]
    return looped


def loop_half(pipe: Pipeline, frames: int) -> int:
    """Half the width of make_loop's window: frames [h - h // 2, F - (h - h // 2)) stay as sampled."""
    return min(pipe.config.frames // 2, frames // 2)


# The loop point stays this many frames (hops) from the join, so that the 512-sample frames
# seam_flux scores the wrap with never reach the join.
JOIN_GUARD = 4


def place_loop(pipe: Pipeline, wav: torch.Tensor, mels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Rotate looped clips (waveforms [B, T] from vocode_loop, mels [B, n_mels, F]) so that
    each wraps inside the body of its sound rather than at the join make_loop made (for one-shot
    material that join lies in the silence after the sound), as a sampler instrument's loop
    points sit in the sustain; the rendering is circular, so any whole-hop rotation plays the same
    loop. The loop point is chosen on what is heard (loop_point, on the waveform), at least
    JOIN_GUARD frames from the join. The period is T = (F - 1) hops (vocode_loop): the mels'
    first F - 1 frames rotate and the last frame repeats the new first. Returns the rotated
    waveforms and mels and, per clip, the sample where the join now lies (0: at the wrap)."""
    F, T, hop = mels.shape[-1], wav.shape[-1], pipe.config.mel.hop_length
    starts = [loop_point(w, range(JOIN_GUARD, F - 1 - JOIN_GUARD), hop) for w in wav]
    wav = torch.stack([torch.roll(w, -c * hop, dims=-1) for w, c in zip(wav, starts)])
    period = torch.stack([torch.roll(m[..., : F - 1], -c, dims=-1) for m, c in zip(mels, starts)])
    mels = torch.cat([period, period[..., :1]], dim=-1)
    return wav, mels, [(T - c * hop) % T for c in starts]


def loop_point(wav: torch.Tensor, candidates: range, hop: int, n_fft: int = 512) -> int:
    """Of the frame indexes ``candidates`` (the loop wraps at sample c * hop), the one where a
    waveform [T] is steadiest at a typical level, by the measures quality.seam_flux scores seams
    with: the least max(flux across the point / the clip's 95th-percentile flux, |energy there -
    the median frame energy| / 6 dB). 0 when there are fewer than three candidates."""
    if len(candidates) < 3:
        return 0
    flux, energy = frame_measures(wav.float().cpu(), n_fft, hop)
    starts = torch.arange(len(energy)) * hop
    median = energy.median()
    across, level = [], []
    for c in candidates:
        f = (starts < c * hop) & (starts + n_fft > c * hop)  # the frames that straddle the point
        across.append(flux[(f[:-1] | f[1:])].mean() if f.any() else flux.new_tensor(float("inf")))
        level.append((energy[f].mean() - median).abs() if f.any() else flux.new_tensor(float("inf")))
    cost = torch.maximum(torch.stack(across) / flux.quantile(0.95).clamp_min(1e-6), torch.stack(level) / 6.0)
    return candidates[int(cost.argmin())]


def vocode_loop(pipe: Pipeline, mels: torch.Tensor, fade_s: float = RAMP_SECONDS) -> torch.Tensor:
    """Waveforms [B, T] of looped mels, continuous where they wrap: the mels are rendered with
    their first frames appended, and the head of each clip cross-fades from that continuation
    (the audio that follows the clip's end) into the clip's own start."""
    k = min(8, mels.shape[-1])
    hop = pipe.config.mel.hop_length
    T = (mels.shape[-1] - 1) * hop
    full = pipe.vocode(torch.cat([mels, mels[..., 1 : k + 1]], dim=-1))
    wav, after = full[..., :T].clone(), full[..., T : T + (k - 1) * hop]
    n = min(after.shape[-1], max(1, int(fade_s * pipe.sample_rate)))
    w = 0.5 - 0.5 * torch.cos(torch.linspace(0, math.pi, n, device=wav.device))
    wav[..., :n] = (1 - w) * after[..., :n] + w * wav[..., :n]
    return wav
