"""Objective measures of generated audio, shared by tests, evaluate and the recipes.

Pitch: ``dominant_frequency`` (FFT peak, for pure or harmonic tones whose fundamental is the
strongest partial) and ``cents`` (signed distance between two frequencies); ``pyin_f0`` and
``pitch_accuracy`` (probabilistic YIN, robust to a weak fundamental).

Distribution scores (python -m cmaudio.evaluate, the SC09 protocol of Donahue et al. 2019 and Kong
et al. 2021): ``frechet_distance`` on classifier embeddings or on log-mel frames
(``logmel_frame_stats``, ``logmel_fd``), ``inception_score``, ``modified_inception_score`` and
``precision_recall`` (k-NN manifolds). Everything is computed in float64 numpy.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "dominant_frequency",
    "cents",
    "silence_rate",
    "clipping_rate",
    "feature_stats",
    "frechet_distance",
    "inception_score",
    "modified_inception_score",
    "precision_recall",
    "logmel_frame_stats",
    "logmel_fd",
    "midi_to_hz",
    "pyin_f0",
    "pitch_accuracy",
]


def dominant_frequency(wav: torch.Tensor, sample_rate: int, fmin: float = 30.0) -> torch.Tensor:
    """Frequency (Hz) of the largest FFT bin above ``fmin`` of each clip: wav [B, T] -> [B].
    A Hann window and parabolic interpolation of the peak give sub-bin accuracy."""
    wav = wav.reshape(-1, wav.shape[-1]).float()
    T = wav.shape[-1]
    spec = torch.fft.rfft(wav * torch.hann_window(T, periodic=False), n=4 * T).abs()
    freqs = torch.fft.rfftfreq(4 * T, 1 / sample_rate)
    spec[:, freqs < fmin] = 0
    k = spec.argmax(-1).clamp(1, spec.shape[-1] - 2)
    a, b, c = (spec.gather(1, (k + d)[:, None])[:, 0].clamp_min(1e-12).log() for d in (-1, 0, 1))
    offset = 0.5 * (a - c) / (a - 2 * b + c).where((a - 2 * b + c).abs() > 1e-12, torch.ones_like(a))
    return (k + offset.clamp(-0.5, 0.5)) * (sample_rate / (4 * T))


def cents(f: torch.Tensor | float, ref: torch.Tensor | float) -> torch.Tensor:
    """1200 log2(f / ref): 100 cents is a semitone."""
    f, ref = torch.as_tensor(f, dtype=torch.float64), torch.as_tensor(ref, dtype=torch.float64)
    return 1200 * torch.log2(f.clamp_min(1e-9) / ref)


def silence_rate(wav: torch.Tensor, threshold: float = 1e-3) -> float:
    """Fraction of clips [B, T] whose peak is below ``threshold``."""
    return float((wav.abs().amax(-1) < threshold).float().mean())


def clipping_rate(wav: torch.Tensor, threshold: float = 0.999) -> float:
    """Fraction of clips [B, T] with any sample at or beyond ``threshold`` in magnitude."""
    return float((wav.abs().amax(-1) >= threshold).float().mean())


def pitch_hits(
    wav: torch.Tensor, sample_rate: int, target_hz: torch.Tensor, tolerance_cents: float = 100.0
) -> torch.Tensor:
    """Whether each clip's dominant frequency is within ``tolerance_cents`` of its target: [B] bool."""
    return cents(dominant_frequency(wav, sample_rate), target_hz).abs() < tolerance_cents


# ----------------------------------------------------------------------------------------------
# Distribution scores


def _numpy64(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and (unbiased) covariance [D, D] of features [N, D], in float64."""
    x = _numpy64(features)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need features [N >= 2, D], got shape {x.shape}")
    return x.mean(0), np.atleast_2d(np.cov(x, rowvar=False))


def _psd_sqrt(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(a, b) -> float:
    """Frechet distance between two Gaussians fitted to feature sets (FID, Heusel et al. 2017):

        ||mu_a - mu_b||^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2))

    ``a`` and ``b``: features [N, D] or (mean [D], covariance [D, D]) pairs. The trace of the
    matrix square root is taken as sum sqrt(eig(C_a^(1/2) C_b C_a^(1/2))): that matrix is
    symmetric PSD and has the same eigenvalues as C_a C_b, so the eigen solver is stable even for
    the rank-deficient covariances of small sets (scipy.linalg.sqrtm can return complex noise
    there). Identical sets give 0 up to float rounding; never negative.
    """
    mu_a, c_a = (_numpy64(a[0]), _numpy64(a[1])) if isinstance(a, tuple) else feature_stats(a)
    mu_b, c_b = (_numpy64(b[0]), _numpy64(b[1])) if isinstance(b, tuple) else feature_stats(b)
    if mu_a.shape != mu_b.shape or c_a.shape != c_b.shape:
        raise ValueError(f"feature sizes differ: {mu_a.shape} vs {mu_b.shape}")
    if not all(np.isfinite(v).all() for v in (mu_a, c_a, mu_b, c_b)):
        raise ValueError("features contain NaN or infinite values")
    s = _psd_sqrt(c_a)
    cross = np.linalg.eigvalsh(s @ c_b @ s)
    tr_sqrt = float(np.sqrt(np.clip(cross, 0, None)).sum())
    fd = float(np.sum((mu_a - mu_b) ** 2) + np.trace(c_a) + np.trace(c_b) - 2 * tr_sqrt)
    return max(fd, 0.0)


def _probs(p) -> np.ndarray:
    p = _numpy64(p)
    if p.ndim != 2 or p.shape[0] < 1:
        raise ValueError(f"need class probabilities [N, C], got shape {p.shape}")
    return p / p.sum(1, keepdims=True)


def inception_score(probs, splits: int = 1, eps: float = 1e-12) -> float:
    """exp(E_x KL(p(y|x) || p(y))) of classifier probabilities [N, C] (Salimans et al. 2016):
    1 for predictions that ignore the input, C for confident predictions spread evenly over C
    classes. With ``splits`` > 1 the mean over that many equal parts (the original protocol)."""
    p = _probs(probs)
    scores = []
    for part in np.array_split(p, max(1, int(splits))):
        marginal = part.mean(0, keepdims=True)
        kl = (part * (np.log(part + eps) - np.log(marginal + eps))).sum(1)
        scores.append(math.exp(float(kl.mean())))
    return float(np.mean(scores))


def modified_inception_score(probs, eps: float = 1e-12) -> float:
    """mIS = exp(E_{x_i, x_j} KL(p(y|x_i) || p(y|x_j))) over all ordered pairs of clips
    (Gurumurthy et al. 2017): it rewards diversity within a class as well as confidence, which IS
    cannot see. 1 when every clip gets the same prediction."""
    p = _probs(probs)
    logp = np.log(p + eps)
    neg_entropy = (p * logp).sum(1)  # [N]
    kl = neg_entropy[:, None] - p @ logp.T  # kl[i, j] = KL(p_i || p_j)
    return math.exp(float(kl.mean()))


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.clip(d, 0, None))


def precision_recall(real, fake, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of feature sets real [N, D] and
    fake [M, D]. Each set's manifold is the union of balls around its points with radius the
    distance to the point's k-th nearest neighbour in the same set. Precision: the share of fake
    points inside the real manifold (quality); recall: the share of real points inside the fake
    manifold (coverage of the real variety). Identical sets give 1 and 1."""
    r, f = _numpy64(real), _numpy64(fake)
    if r.ndim != 2 or f.ndim != 2 or r.shape[1] != f.shape[1]:
        raise ValueError(f"need feature sets [N, D] and [M, D], got {r.shape} and {f.shape}")
    if min(len(r), len(f)) <= k:
        raise ValueError(f"need more than k = {k} points in each set, got {len(r)} and {len(f)}")

    def radii(x: np.ndarray) -> np.ndarray:
        d = _pairwise(x, x)
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    cross = _pairwise(f, r)  # [M, N]
    precision = float((cross <= radii(r)[None, :]).any(1).mean())
    recall = float((cross.T <= radii(f)[None, :]).any(1).mean())
    return {"precision": precision, "recall": recall}


def logmel_frame_stats(logmels) -> tuple[np.ndarray, np.ndarray]:
    """Mean [n_mels] and covariance [n_mels, n_mels] of the frames of raw log-mels
    [B, n_mels, frames], each frame a sample: spectral statistics that need no trained model."""
    x = _numpy64(logmels)
    if x.ndim != 3:
        raise ValueError(f"need log-mels [B, n_mels, frames], got shape {x.shape}")
    return feature_stats(x.transpose(0, 2, 1).reshape(-1, x.shape[1]))


def logmel_fd(a, b) -> float:
    """Frechet distance between the log-mel frame statistics of two sets of clips, each given as
    raw log-mels [B, n_mels, frames] or as a ``logmel_frame_stats`` pair."""
    sa = a if isinstance(a, tuple) else logmel_frame_stats(a)
    sb = b if isinstance(b, tuple) else logmel_frame_stats(b)
    return frechet_distance(sa, sb)


# ----------------------------------------------------------------------------------------------
# Pitch by probabilistic YIN


def midi_to_hz(midi) -> torch.Tensor:
    """440 * 2^((m - 69) / 12): MIDI 69 is A4 = 440 Hz."""
    return 440.0 * 2.0 ** ((torch.as_tensor(midi, dtype=torch.float64) - 69) / 12)


def pyin_f0(wav: torch.Tensor, sample_rate: int, fmin: float = 50.0, fmax: float = 2000.0) -> torch.Tensor:
    """Median fundamental frequency (Hz) over the voiced frames of each clip, by pYIN (Mauch &
    Dixon 2014, librosa.pyin): wav [B, T] -> [B] float64, NaN where no frame is voiced."""
    import librosa

    y = _numpy64(wav).reshape(-1, wav.shape[-1]).astype(np.float32)
    fmax = min(fmax, sample_rate / 2 * 0.95)
    frame = 2048 if sample_rate >= 16000 else 1024
    # pYIN needs two periods of fmin in a frame; a shorter clip is padded so it gets one frame.
    if y.shape[-1] < frame:
        y = np.pad(y, ((0, 0), (0, frame - y.shape[-1])))
    f0, voiced, _ = librosa.pyin(y, fmin=fmin, fmax=fmax, sr=sample_rate, frame_length=frame)
    f0 = np.where(voiced, f0, np.nan)
    out = np.full(len(y), np.nan)
    has = (~np.isnan(f0)).any(-1)
    out[has] = np.nanmedian(f0[has], axis=-1)
    return torch.from_numpy(out)


def pitch_accuracy(
    wav: torch.Tensor, sample_rate: int, target_hz, tolerance_cents: float = 50.0
) -> tuple[float, torch.Tensor]:
    """Share of clips [B, T] whose pYIN pitch is within ``tolerance_cents`` of its target [B] Hz
    (50 cents: the nearest MIDI note is the requested one); clips with no voiced frame miss.
    Returns (accuracy, signed cents error [B], NaN where unvoiced)."""
    target = torch.as_tensor(target_hz, dtype=torch.float64).reshape(-1)
    f0 = pyin_f0(wav, sample_rate, fmin=max(30.0, float(target.min()) / 2), fmax=float(target.max()) * 2)
    err = torch.where(torch.isnan(f0), f0, cents(f0.nan_to_num(1.0), target))
    hits = (err.abs() < tolerance_cents) & ~torch.isnan(err)
    return float(hits.double().mean()), err
