"""Pipeline: model file + mel statistics + vocoder -> waveforms. The one path every front end
(python -m cmaudio.generate, the Python API, the Gradio demo, evaluate, bench) uses.

    pipe = Pipeline.from_pretrained("digits")
    out = pipe.generate(labels=["seven"] * 4, steps=2, seed=0)
    out.waveforms  # [B, T] float32 at out.sample_rate

Seeding: sample i of a call with seed s draws all its noise from a generator seeded with s + i, so
it is the same clip whatever the batch size, the batch order or the other samples.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import torch

from .audio import denormalise, num_frames
from .checkpoint import CheckpointError, ModelFile, load_model
from .config import ModelConfig
from .devices import resolve_device
from .editing import EDIT_STEPS, make_loop, place_loop, render_long, vocode_loop
from .output import GenerationOutput
from .sampling import SAMPLERS, Sampler, check_sigmas
from .schedules import karras_sigmas

__all__ = ["Pipeline", "GenerationOutput", "bundled_models", "resolve_model_path", "MAX_STEPS"]

ASSETS = Path(__file__).parent / "assets"
MAX_STEPS = 8  # consistency sampler steps; a teacher takes up to MAX_HEUN_STEPS Heun steps
MAX_HEUN_STEPS = 256
DEFAULT_MODEL = "digits"


def bundled_models() -> list[str]:
    """Names of the models shipped in cmaudio/assets (vocoders excluded)."""
    return sorted(p.stem for p in ASSETS.glob("*.safetensors") if not p.stem.startswith("vocoder"))


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A bundled name ("digits") or a path to a .safetensors model file."""
    p = Path(name_or_path)
    if p.suffix == ".safetensors" or p.exists() or "/" in str(name_or_path):
        return p
    if (ASSETS / f"{name_or_path}.safetensors").is_file():
        return ASSETS / f"{name_or_path}.safetensors"
    have = ", ".join(bundled_models()) or "none yet"
    raise CheckpointError(
        f"unknown model {name_or_path!r}: bundled models: {have}; or give a path to a .safetensors file"
    )


# Peak ceiling of generated clips. The data sets are peak-normalised to random levels (digits:
# 0.3 to 0.9) and recipes train with random gain on top, so a model may render a clip a few dB
# over full scale; generate() scales such a clip down rather than let a file clip.
PEAK_CEILING = 0.99


def limit_peaks(wav: torch.Tensor, ceiling: float = PEAK_CEILING) -> tuple[torch.Tensor, list[float]]:
    """Scale each clip [B, T] whose peak exceeds ``ceiling`` down to it; return the clips and the
    gain applied to each in dB (0.0 for clips left alone)."""
    peak = wav.abs().amax(-1, keepdim=True)
    gain = torch.where(peak > ceiling, ceiling / peak.clamp_min(1e-12), torch.ones_like(peak))
    wav = wav * gain
    # float32 rounding can leave a scaled peak a hair over the ceiling (float32(0.99) is itself
    # 0.99000001): scale those once more, compared in float64, so a clip never exceeds it.
    peak = wav.abs().amax(-1, keepdim=True)
    wav = torch.where(peak.double() > ceiling, wav * (ceiling / peak.clamp_min(1e-12)), wav)
    return wav, [float(20 * math.log10(g)) for g in gain.flatten().tolist()]


def check_guidance(config: ModelConfig, guidance: float) -> float:
    """A classifier-free guidance scale for this model, or a one-line ValueError. Guidance,
    D_null + w (D_cond - D_null) at every call (objectives.GuidedDenoiser), needs a model trained
    with the null label (net.label_dropout > 0): a model tuned without a teacher (fit --from)
    learns its labels unguided, and guidance at sampling gives them back their weight (FSDD
    digits: 57% -> 75% recognised at 2 steps with w = 1.5; docs/results.md)."""
    w = float(guidance)
    if not math.isfinite(w) or w < 0:
        raise ValueError(f"guidance must be a finite number >= 0, got {guidance}")
    if w != 1.0 and not (config.cond_sizes and config.net.label_dropout > 0):
        raise ValueError("guidance needs a labelled model trained with a null label (net.label_dropout > 0)")
    return w


class Pipeline:
    """A loaded model with its mel statistics and a vocoder; see the module docstring."""

    def __init__(
        self,
        model_file: ModelFile,
        vocoder,
        device: torch.device,
        name: str,
        backend: str = "eager",
        path: Path | None = None,
        guidance: float = 1.0,
    ):
        from .backends import BACKENDS
        from .vocoder import check_compatible

        check_compatible(vocoder, model_file.config.mel)
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}: one of {', '.join(BACKENDS)}")
        if backend == "onnx" and path is None:
            raise ValueError("backend 'onnx' needs the model file: use Pipeline.from_pretrained")
        self.guidance = check_guidance(model_file.config, guidance)
        self.model = BACKENDS[backend](model_file.model.to(device).eval(), path)
        if self.guidance != 1.0:
            from .objectives import GuidedDenoiser

            self.model = GuidedDenoiser(self.model, self.guidance)
        self.backend = backend
        self.config: ModelConfig = model_file.config
        self.vocoder = vocoder.to(device).eval()
        self.device = device
        self.name = name
        self.step = model_file.step

    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path = DEFAULT_MODEL,
        device: str | torch.device = "auto",
        vocoder: str | None = None,
        backend: str = "eager",
        guidance: float = 1.0,
    ) -> Pipeline:
        """Load a bundled model by name or a model file by path. ``vocoder``: a name ("griffinlim",
        a bundled neural vocoder) or path; by default the bundled neural vocoder when its mel front
        end matches the model's, else Griffin-Lim. ``backend``: eager, compiled or onnx
        (cmaudio.backends). ``guidance``: classifier-free guidance scale w of every network call
        (check_guidance), 1 for none."""
        from .vocoder import default_vocoder_for, load_vocoder

        dev = resolve_device(device)
        path = resolve_model_path(name_or_path)
        mf = load_model(path, device="cpu")
        voc = load_vocoder(vocoder, mf.config.mel) if vocoder else default_vocoder_for(mf.config.mel)
        return cls(mf, voc, dev, str(name_or_path), backend=backend, path=path, guidance=guidance)

    @property
    def sample_rate(self) -> int:
        return self.config.mel.sample_rate

    @property
    def sampler(self) -> Sampler:
        """This model's sampler (sampling.SAMPLERS, by its precond.kind)."""
        return SAMPLERS[self.config.precond.kind]

    @property
    def is_consistency(self) -> bool:
        return self.config.precond.kind == "consistency"

    @property
    def labels(self) -> list[str]:
        """Valid label strings: class names of a one-factor model; for several factors the first
        factor's names (the others default to their null class) -- see parse_label."""
        return list(self.config.classes[0]) if self.config.classes else []

    @property
    def clip_seconds(self) -> float:
        return (self.config.frames - 1) * self.config.mel.hop_length / self.sample_rate

    # ------------------------------------------------------------------------------------------
    def parse_label(self, label: str | None) -> list[int]:
        """ "seven" -> [7]; for factored models "60:guitar" (fields in order, trailing ones may be
        omitted and take the null class). None -> all null."""
        sizes = self.config.cond_sizes
        if label is None:
            return list(sizes)
        if not sizes:
            raise ValueError(f"model {self.name!r} is unconditional: it takes no label (got {label!r})")
        parts = str(label).split(":")
        if len(parts) > len(sizes):
            raise ValueError(
                f"label {label!r} has {len(parts)} parts; this model has {len(sizes)}: "
                f"{':'.join(self.config.cond_fields)}"
            )
        out = list(sizes)
        for k, part in enumerate(parts):
            names = self.config.classes[k]
            if part not in names:
                shown = ", ".join(names[:40]) + (" ..." if len(names) > 40 else "")
                raise ValueError(f"unknown {self.config.cond_fields[k]} {part!r}: valid: {shown}")
            out[k] = names.index(part)
        return out

    def sigmas_for(
        self, steps: int | None = None, sigmas: Sequence[float] | None = None, from_noise: bool = True
    ) -> list[float]:
        """The sampler's sigma list: given explicitly, else the model file's recommendation for
        ``steps``, else a Karras grid. For an EDM teacher, the Heun grid of ``steps`` levels."""
        p = self.config.precond
        if sigmas is not None:
            sig = check_sigmas(sigmas, p.sigma_min, p.sigma_max)
            # Generation starts from pure noise (Song et al. 2023, Algorithm 1): at sigma_max.
            # A list starting lower would begin from noise * sigmas[0] with no data term.
            if from_noise and self.is_consistency and sig[0] < p.sigma_max * (1 - 1e-6):
                raise ValueError(
                    f"a sigma list for generation starts at sigma_max ({p.sigma_max:g}), got "
                    f"{', '.join(f'{x:g}' for x in sig)}; variation is the edit that starts lower"
                )
            return sig
        steps = 2 if steps is None else int(steps)
        limit = MAX_STEPS if self.is_consistency else MAX_HEUN_STEPS
        if not 1 <= steps <= limit:
            raise ValueError(f"steps must be between 1 and {limit}, got {steps}")
        if not self.is_consistency:
            return karras_sigmas(steps, p.sigma_min, p.sigma_max).tolist() if steps > 1 else [p.sigma_max]
        if str(steps) in self.config.sigmas:
            return check_sigmas(self.config.sigmas[str(steps)], p.sigma_min, p.sigma_max)
        return karras_sigmas(steps + 1, p.sigma_min, p.sigma_max).tolist()[:-1]

    def calls(self, sigmas: Sequence[float]) -> int:
        """Network evaluations of one sample with these sigmas (k for consistency, 2k - 1 for
        Heun; twice that with guidance, whose conditional and null halves share one batch)."""
        return self.sampler.calls(len(sigmas)) * (2 if self.guidance != 1.0 else 1)

    def noise(self, seeds: Sequence[int], n_draws: int, frames: int) -> torch.Tensor:
        """[n_draws, B, n_mels, frames]: draw j of sample i from the generator seeded with seeds[i]."""
        shape = (n_draws, self.config.mel.n_mels, frames)
        z = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds], 1)
        return z.to(self.device)

    def autocast(self):
        """The precision every network call of this pipeline runs in: bf16 on CUDA, fp32 on CPU."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    @torch.inference_mode()
    def sample_mels(self, seeds, cond, sigmas, frames, init=None, known=None, mask=None) -> torch.Tensor:
        """One batch of normalised mels [B, n_mels, frames] (the batch API bench and evaluate use):
        sample i draws its noise from seeds[i] (see noise); cond from condition(labels); init,
        known and mask as sampling.sample_consistency takes them."""
        z = self.noise(seeds, self.sampler.draws(len(sigmas)), frames)
        with self.autocast():
            p = self.config.precond
            x = self.sampler(self.model, z, sigmas, cond, sigma_min=p.sigma_min, init=init, known=known, mask=mask)
        return x.float()

    @torch.inference_mode()
    def vocode(self, mels: torch.Tensor) -> torch.Tensor:
        """Normalised mels [B, n_mels, frames] -> wav [B, T]."""
        logmel = denormalise(mels.float(), self.config.stats)
        return self.vocoder(logmel.to(self.device)).float()

    def condition(self, labels: Sequence[str | None]) -> torch.Tensor | None:
        """Class indexes [B, factors] for these labels (parse_label), or None for an unconditional model."""
        if not self.config.cond_sizes:
            return None
        return torch.tensor([self.parse_label(lb) for lb in labels], dtype=torch.long, device=self.device)

    def flags(self, wav: torch.Tensor, labels: Sequence[str | None]) -> list[list[str]]:
        """cmaudio.quality flags of clips [B, T] rendered for ``labels`` (pitch checked for
        pitched models: the first label factor read as a pitch)."""
        from .evaluation.clips import pitch_targets
        from .quality import flags

        targets = pitch_targets(self.config)
        hz = None
        if targets:
            hz = [targets.get(str(lb).split(":")[0]) if lb is not None else None for lb in labels]
        return flags(wav, self.sample_rate, hz)

    def metadata(self, seed, label, sigmas) -> dict:
        """The metadata of one clip: seed, label, sigmas, steps, calls, model and vocoder."""
        return {
            "seed": int(seed),
            "label": label,
            "sigmas": [float(s) for s in sigmas],
            "steps": len(sigmas),
            "calls": self.calls(sigmas),
            "guidance": self.guidance,
            "model": self.name,
            "vocoder": self.vocoder.name,
            "vocoder_version": self.vocoder.version or self.vocoder.name,
        }

    # ------------------------------------------------------------------------------------------
    def generate(
        self,
        labels: Sequence[str | None] | None = None,
        n: int | None = None,
        steps: int | None = 2,
        sigmas: Sequence[float] | None = None,
        seed: int = 0,
        batch_size: int = 16,
        duration: float | None = None,
        progress: bool = False,
        loop: bool = False,
    ) -> GenerationOutput:
        """Generate clips. ``labels``: one label per clip; or ``n`` clips (with no labels on a
        conditional model, the classes of the first factor in turn). ``duration`` (seconds) beyond
        the model's clip length renders long audio by overlapping continuation. ``loop``: clips
        whose end flows into their start (editing.make_loop), at any duration."""
        t0 = time.perf_counter()
        if labels is None:
            count = len(self.labels) if n is None and self.labels else (n or 1)
            labels = [self.labels[i % len(self.labels)] if self.labels else None for i in range(count)]
        labels = list(labels)
        if not labels:
            raise ValueError("nothing to generate: give labels or n >= 1")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        sig = self.sigmas_for(steps, sigmas)
        for lb in labels:
            self.parse_label(lb)
        seeds = [seed + i for i in range(len(labels))]
        frames = self.config.frames
        if duration is not None:
            if duration <= 0:
                raise ValueError("duration must be positive")
            frames = num_frames(int(round(duration * self.sample_rate)), self.config.mel)
        mels, windows = [], []  # windows: per clip, the frames where long audio's windows join
        chunks = range(0, len(labels), batch_size)
        if progress:
            from tqdm import tqdm

            chunks = tqdm(chunks, desc="generate", unit="batch", total=math.ceil(len(labels) / batch_size))
        for i in chunks:
            s, lb = seeds[i : i + batch_size], labels[i : i + batch_size]
            cond = self.condition(lb)
            if frames <= self.config.frames:
                m, j = self.sample_mels(s, cond, sig, self.config.frames)[..., :frames], [[] for _ in s]
            else:
                m, j = render_long(self, s, cond, sig, frames)
            windows += j
            mels.append(make_loop(self, m, s, cond, sig) if loop else m)
        mel = torch.cat(mels)
        render = partial(vocode_loop, self) if loop else self.vocode
        wav = torch.cat([render(mel[i : i + batch_size]) for i in range(0, len(mel), batch_size)])
        hop, T = self.config.mel.hop_length, wav.shape[-1]
        shifts = [0] * len(labels)
        if loop:
            wav, mel, joins = place_loop(self, wav, mel)
            shifts = [(T - j) % T for j in joins]  # each clip turned by this many samples
        wav, gain_db = limit_peaks(wav)
        found = self.flags(wav, labels)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        meta = [
            self.metadata(s, lb, sig) | {"gain_db": round(g, 2), "flags": f}
            for s, lb, g, f in zip(seeds, labels, gain_db, found)
        ]
        if frames > self.config.frames:  # where long audio's windows join, in seconds (sorted)
            meta = [
                m | {"window_joins_s": sorted(round((f * hop - d) % T / self.sample_rate, 4) for f in js)}
                for m, js, d in zip(meta, windows, shifts)
            ]
        if loop:  # where the sampler joined the clip's end to its start (it wraps elsewhere)
            meta = [m | {"loop": True, "loop_join_s": round(j / self.sample_rate, 4)} for m, j in zip(meta, joins)]
        return GenerationOutput(wav.cpu(), mel.cpu(), self.sample_rate, meta, time.perf_counter() - t0)

    # ------------------------------------------------------------------------------------------
    # Editing (cmaudio.editing): the same network, known frames put back after every call.

    def inpaint(
        self,
        audio,
        start_s: float,
        end_s: float,
        steps: int | None = EDIT_STEPS,
        seed: int = 0,
        label: str | None = None,
        sigmas: Sequence[float] | None = None,
    ) -> GenerationOutput:
        """Regenerate the span [start_s, end_s) of a clip (a path, or a waveform [T] at the model's
        rate); the rest of its mel stays exactly, and the original audio cross-fades into the new."""
        from .editing import inpaint

        return inpaint(self, audio, start_s, end_s, steps, seed, label, sigmas)

    def continue_audio(
        self,
        audio,
        seconds: float,
        steps: int | None = EDIT_STEPS,
        seed: int = 0,
        label: str | None = None,
        sigmas: Sequence[float] | None = None,
    ) -> GenerationOutput:
        """Extend a clip by ``seconds``; the output begins with the given clip (outpainting)."""
        from .editing import continue_audio

        return continue_audio(self, audio, seconds, steps, seed, label, sigmas)

    def variation(
        self,
        audio,
        strength: float,
        steps: int | None = 2,
        seed: int = 0,
        label: str | None = None,
        sigmas: Sequence[float] | None = None,
    ) -> GenerationOutput:
        """Re-noise a clip to ``strength`` in [0, 1] and resample from there (SDEdit-style)."""
        from .editing import variation

        return variation(self, audio, strength, steps, seed, label, sigmas)
