"""Editing and long audio at the seams (issue 17): real cross-fades, independent window seeds,
short inputs to continue."""

from __future__ import annotations

import pytest
import torch
from test_pipeline import clip, make_model

from cmaudio.editing import RAMP_SECONDS, crossfade_weights, window_seed
from cmaudio.pipeline import Pipeline

SR, HOP = 16000, 256


@pytest.fixture(scope="module")
def pipe(tmp_path_factory) -> Pipeline:
    return Pipeline.from_pretrained(make_model(tmp_path_factory.mktemp("m") / "cm.safetensors"), device="cpu")


def test_crossfade_is_a_monotone_ramp_inside_the_known_audio():
    """Issue 17 (1): the weights were exactly 0 or 1 (one jump of 1.0 about 10 ms before the
    edit); now they fall smoothly over RAMP_SECONDS inside the known audio on both sides."""
    frames = torch.ones(63)
    frames[20:30] = 0  # an edited span
    T = 62 * HOP
    w = crossfade_weights(frames, T, HOP, SR)
    a, b = 20 * HOP, 30 * HOP  # first and one-past-last edited sample
    ramp = int(RAMP_SECONDS * SR)
    assert ramp >= 0.010 * SR
    assert (w[a:b] == 0).all() and (w[: a - ramp] == 1).all() and (w[b + ramp :] == 1).all()
    before, after = w[a - ramp : a], w[b : b + ramp]
    assert (before.diff() <= 0).all() and (after.diff() >= 0).all()  # monotone towards the edit
    assert ((before > 0) & (before < 1)).sum() >= 0.010 * SR  # a real fade, not a step
    assert float(w.diff().abs().max()) < 0.02


def test_inpaint_and_continue_fade_instead_of_switching(pipe):
    """Every output sample near the edit is a blend: neither the original nor the vocoded one
    (before, each sample was exactly one of the two)."""
    audio = clip(1.0)
    out = pipe.inpaint(audio, 0.4, 0.6, steps=2, seed=0, label="low")
    wav, gen = out.waveforms[0], pipe.vocode(out.mels)[0]
    a = int(0.4 * 62.5) * HOP
    ramp = int(RAMP_SECONDS * SR)
    assert torch.equal(wav[: a - ramp - HOP], audio[: a - ramp - HOP])  # untouched well before
    zone = slice(a - ramp + 8, a - 8)
    blend = (wav[zone] != audio[zone]) & (wav[zone] != gen[zone])
    assert blend.float().mean() > 0.9 and blend.sum() >= 0.010 * SR
    longer = pipe.continue_audio(audio, 0.5, seed=1, label="low")
    wav, gen = longer.waveforms[0], pipe.vocode(longer.mels)[0]
    end = (audio.numel() // HOP) * HOP  # frames before the clip's last one (which saw past its end)
    zone = slice(end - ramp + 8, end - 8)
    blend = (wav[zone] != audio[zone]) & (wav[zone] != gen[zone])
    assert blend.float().mean() > 0.9 and torch.equal(wav[: end - ramp - HOP], audio[: end - ramp - HOP])


@pytest.mark.parametrize("base", [0, 1, 2**31 - 1])
def test_window_seeds_never_repeat_and_never_equal_a_samples_own_seed(base):
    """Issue 17 (2): window w of sample s used seed s * 1000003 + w, so with seed 0 sample 0's
    window w was sample w's own seed."""
    samples = [base + i for i in range(64)]
    derived = [window_seed(s, w) for s in samples for w in range(1, 40)]
    assert len(set(derived)) == len(derived)
    assert not set(derived) & set(samples)
    assert all(2**62 <= d < 2**63 for d in derived)


def test_long_audio_windows_are_not_copied_between_clips(pipe):
    out = pipe.generate(labels=["low"] * 3, steps=1, seed=0, duration=2.0)
    mels, W = out.mels, pipe.config.frames
    for i in range(3):
        for j in range(3):
            if i == j:
                continue
            for a in range(W // 2, mels.shape[-1] - W // 2, W // 4):
                for b in range(0, mels.shape[-1] - W // 2, W // 4):
                    assert not torch.equal(mels[i, :, a : a + W // 2], mels[j, :, b : b + W // 2])


def test_long_audio_joins_windows_at_a_quiet_frame_and_reports_where(pipe, monkeypatch):
    """Each window's known context ends at the quietest of the kept audio's late frames (the
    last quarter-window) and fades over its second half; metadata window_joins_s says where."""
    calls = []
    real = pipe.sample_mels

    def spy(seeds, cond, sigmas, frames, init=None, known=None, mask=None):
        out = real(seeds, cond, sigmas, frames, init=init, known=known, mask=mask)
        calls.append((known, mask, out))
        return out

    monkeypatch.setattr(pipe, "sample_mels", spy)
    out = pipe.generate(labels=["low", "high"], steps=1, seed=3, duration=3.0)
    W, trim, keep = pipe.config.frames, pipe.config.frames // 8, pipe.config.frames // 2
    assert len(calls) > 3
    for (_, _, prev), (_, mask, _) in zip(calls[1:-1], calls[2:]):  # windows after the first
        late = prev[..., W - trim - keep // 2 - 1 : W - trim].mean(1)  # the candidate frames' loudness
        for b in range(2):
            c = int((mask[b, 0] > 0).sum())
            assert keep - keep // 2 <= c <= keep
            assert c - (keep - keep // 2) == int(late[b].argmin())  # the quietest candidate ends it
            assert (mask[b, 0, : c - c // 2] == 1).all() and (mask[b, 0, c - c // 2 : c] < 1).all()
    T = out.waveforms.shape[-1] / SR
    for m in out.metadata:
        js = m["window_joins_s"]
        assert len(js) == len(calls) - 1 and js == sorted(js) and 0 < js[0] and js[-1] < T
        assert all(round(j * SR) % HOP == 0 for j in js)
    loops = pipe.generate(labels=["low"], steps=1, seed=3, duration=3.0, loop=True).metadata[0]
    assert all(0 <= j < T for j in loops["window_joins_s"]) and "loop_join_s" in loops


@pytest.mark.parametrize("samples", [HOP, 1600, 16 * HOP // 2])
def test_continue_takes_clips_from_one_hop_to_half_a_window(pipe, samples):
    """Issue 17 (3): one hop up to half a window raised 'The expanded size of the tensor ...'."""
    audio = clip(samples / SR)
    out = pipe.continue_audio(audio, 0.5, seed=0, label="low")
    assert out.waveforms.shape[-1] >= samples + 0.45 * SR and torch.isfinite(out.waveforms).all()
    with pytest.raises(ValueError, match="at least one hop"):
        pipe.continue_audio(clip(100 / SR), 0.5)


def tone(freq: float, seconds: float = 1.0, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return amp * torch.sin(2 * torch.pi * freq * t)


def test_quality_flags_name_each_defect_and_leave_clean_audio_alone():
    from cmaudio.quality import flags

    clean = tone(440.0)
    hit = torch.exp(-torch.arange(SR) / 800.0) * torch.randn(SR, generator=torch.Generator().manual_seed(1)) * 0.5
    hit = torch.nn.functional.conv1d(hit[None, None], torch.ones(1, 1, 8) / 8, padding=4)[0, 0, :SR]  # dull noise burst
    cases = torch.stack(
        [
            clean,
            clean * 1e-5,  # silent
            (clean * 4).clamp(-0.5, 0.5),  # hard clipped, then at a low level
            torch.randn(SR, generator=torch.Generator().manual_seed(0)) * 0.3,  # white noise
            tone(440.0 * 2 ** (1 / 12)),  # a semitone sharp
            hit,
        ]
    )
    got = flags(cases, SR, pitch_hz=[440.0, None, None, None, 440.0, None])
    assert got == [[], ["silent"], ["clipped"], ["noise"], ["pitch"], []]


def test_generation_and_edits_carry_flags(pipe, tmp_path):
    out = pipe.generate(labels=["low", "high"], steps=1, seed=0)
    assert all(isinstance(m["flags"], list) for m in out.metadata)
    edit = pipe.variation(clip(0.5), 0.3, seed=0)
    assert isinstance(edit.metadata[0]["flags"], list)
    silent = pipe.inpaint(torch.zeros(SR // 2) + 1e-7, 0.1, 0.2, seed=0)
    assert isinstance(silent.metadata[0]["flags"], list)


def test_loop_point_lies_in_the_body_of_the_sound():
    from cmaudio.editing import loop_point

    t = torch.arange(SR) / SR
    body = (t > 0.15) & (t < 0.85)  # most frames: the median level is the tone's
    wav = torch.sin(2 * torch.pi * 330 * t) * body * 0.5 + 1e-4 * torch.randn(
        SR, generator=torch.Generator().manual_seed(0)
    )
    hop = 256
    c = loop_point(wav, range(4, SR // hop - 4), hop)
    assert 0.17 < c * hop / SR < 0.83  # in the steady tone: not its edges, not the silence
    assert loop_point(wav, range(3, 6), hop) in (3, 4, 5) and loop_point(wav, range(3, 5), hop) == 0


def test_loops_wrap_without_a_seam_on_the_bundled_drums_model(tmp_path):
    """Spectral flux against the clip's own 95th-percentile interior flux. A plain clip wrapped
    around jumps from its decay back to its attack. A loop wraps at its loop point, and the join
    the sampler made between its end and its start (metadata loop_join_s) is smooth too."""
    from cmaudio.generate import main as generate
    from cmaudio.quality import seam_flux

    drums = Pipeline.from_pretrained("drums", device="cpu")
    labels = ["kick", "snare", "hihat", "tom", "cymbal", "clap_perc"] * 2

    plain = drums.generate(labels=labels, steps=2, seed=0)
    assert sum(s["flux"] <= s["p95"] for s in (seam_flux(w, [w.numel()], wrap=True)[0] for w in plain.waveforms)) <= 2
    loop = drums.generate(labels=labels, steps=2, seed=0, loop=True)
    assert loop.waveforms.shape == plain.waveforms.shape and all(m["loop"] for m in loop.metadata)
    wrap, join = [], []
    for w, m in zip(loop.waveforms, loop.metadata):
        at = round(m["loop_join_s"] * drums.sample_rate)
        scores = seam_flux(w, [w.numel(), at] if at else [w.numel()], wrap=True)
        wrap.append(scores[0]["flux"] <= scores[0]["p95"] and abs(scores[0]["energy_db"]) <= 6)
        join.append(scores[-1]["flux"] <= scores[-1]["p95"])
    assert sum(wrap) >= 10 and sum(join) >= 10
    assert (
        generate(
            ["--model", "drums", "--label", "hihat", "--loop", "--duration", "1.5", "--out", str(tmp_path), "--quiet"]
        )
        == 0
    )
