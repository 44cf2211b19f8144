"""Distribution and pitch metrics on tiny inputs with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cmaudio.evaluation.metrics import (
    cents,
    feature_stats,
    frechet_distance,
    inception_score,
    logmel_fd,
    logmel_frame_stats,
    midi_to_hz,
    modified_inception_score,
    pitch_accuracy,
    precision_recall,
    pyin_f0,
)


@pytest.fixture
def feats() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((300, 6)) @ np.diag([1.0, 2.0, 0.5, 1.0, 3.0, 0.1])


def test_fd_of_identical_sets_is_zero(feats):
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-9)
    # Fewer points than dimensions: a rank-deficient covariance must still give 0, not NaN.
    few = feats[:4]
    assert frechet_distance(few, few) == pytest.approx(0.0, abs=1e-9)


def test_fd_of_a_mean_shift_is_its_squared_norm(feats):
    shift = np.array([1.0, -2.0, 0.5, 0.0, 0.0, 3.0])
    assert frechet_distance(feats, feats + shift) == pytest.approx(float(shift @ shift), rel=1e-9)
    assert frechet_distance(torch.tensor(feats), torch.tensor(feats - shift)) == pytest.approx(14.25, rel=1e-9)


def test_fd_closed_forms_and_the_textbook_formula(feats):
    # 1-D Gaussians: (mu_a - mu_b)^2 + (s_a - s_b)^2.
    a = (np.array([1.0]), np.array([[4.0]]))
    b = (np.array([0.0]), np.array([[9.0]]))
    assert frechet_distance(a, b) == pytest.approx(1.0 + 1.0)
    # Against scipy's sqrtm on full-rank covariances.
    from scipy.linalg import sqrtm

    other = np.random.default_rng(1).standard_normal((400, 6)) * 1.5 + 0.3
    (m1, c1), (m2, c2) = feature_stats(feats), feature_stats(other)
    ref = float(((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - 2 * sqrtm(c1 @ c2).real))
    assert frechet_distance(feats, other) == pytest.approx(ref, rel=1e-6)
    assert frechet_distance(other, feats) == pytest.approx(ref, rel=1e-6)
    with pytest.raises(ValueError):
        frechet_distance(feats, other[:, :3])


def test_inception_score_known_values():
    assert inception_score(np.full((12, 5), 0.2)) == pytest.approx(1.0)
    one_hot = np.eye(4)[np.arange(48) % 4]  # each of 4 splits holds 3 of every class
    assert inception_score(one_hot) == pytest.approx(4.0, rel=1e-6)
    assert inception_score(one_hot, splits=4) == pytest.approx(4.0, rel=1e-6)
    assert inception_score(np.eye(4)[[0] * 10]) == pytest.approx(1.0)  # confident but never diverse


def test_modified_inception_score_known_values():
    assert modified_inception_score(np.tile([0.7, 0.2, 0.1], (6, 1))) == pytest.approx(1.0)
    a = 0.8
    p = np.array([[a, 1 - a], [1 - a, a]])
    kl = (2 * a - 1) * math.log(a / (1 - a))  # KL between the two; the two self-pairs give 0
    assert modified_inception_score(p) == pytest.approx(math.exp(kl / 2), rel=1e-9)


def test_precision_recall():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((60, 4))
    assert precision_recall(real, real) == {"precision": 1.0, "recall": 1.0}
    far = real + 100.0
    assert precision_recall(real, far) == {"precision": 0.0, "recall": 0.0}
    # A collapsed generator: every sample sits on one real point -> precise, no recall.
    collapsed = np.repeat(real[:1], 30, 0)
    pr = precision_recall(real, collapsed)
    assert pr["precision"] == 1.0 and pr["recall"] < 0.2
    with pytest.raises(ValueError, match="more than k"):
        precision_recall(real[:3], real[:3])


def test_logmel_frame_fd():
    mels = torch.randn(5, 8, 20) - 5
    assert logmel_fd(mels, mels) == pytest.approx(0.0, abs=1e-9)
    # A constant offset of every bin shifts the frame mean by c in each of the 8 bins.
    assert logmel_fd(mels, mels + 0.5) == pytest.approx(8 * 0.25, rel=1e-9)
    mu, cov = logmel_frame_stats(mels)
    assert mu.shape == (8,) and cov.shape == (8, 8)
    assert logmel_fd((mu, cov), mels) == pytest.approx(0.0, abs=1e-9)


def test_pyin_on_a_synthetic_tone(tone):
    assert float(midi_to_hz(69)) == 440.0 and float(midi_to_hz(81)) == pytest.approx(880.0)
    wav = torch.from_numpy(tone(float(midi_to_hz(69)), seconds=0.5))[None]
    f0 = pyin_f0(wav, 16000, fmin=60.0, fmax=1500.0)
    assert abs(float(cents(f0, 440.0))) < 10  # pYIN's grid is a tenth of a semitone
    silent = torch.zeros(1, 8000)
    both = torch.cat([wav, wav, silent])
    acc, err = pitch_accuracy(both, 16000, [440.0, 466.16, 440.0])
    assert acc == pytest.approx(1 / 3)  # right, a semitone off, unvoiced
    assert abs(float(err[0])) < 10 and abs(float(err[1]) + 100) < 10 and math.isnan(float(err[2]))
