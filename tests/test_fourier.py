"""The vocoder's inverse STFT (cmaudio.vocoder.fourier) computes what torch.istft computes."""

from __future__ import annotations

import pytest
import torch

from cmaudio.audio import MelConfig
from cmaudio.vocoder.fourier import istft, overlap_add

CONFIGS = [
    MelConfig(),  # the bundled front end: hop divides n_fft, window as long as n_fft
    MelConfig(win_length=800),  # a shorter window, centred in n_fft as torch.istft does
    MelConfig(n_fft=512, hop_length=128, win_length=512, n_mels=40),
    MelConfig(hop_length=200),  # hop does not divide n_fft: torch.istft itself
]


def torch_istft(spec, m, window, length):
    return torch.istft(spec, m.n_fft, m.hop_length, m.win_length, window=window, center=True, length=length)


@pytest.mark.filterwarnings("ignore:The length of signal is shorter")  # torch's, on the padded case
@pytest.mark.parametrize("mel", CONFIGS, ids=lambda m: f"{m.n_fft}-{m.win_length}-{m.hop_length}")
@pytest.mark.parametrize("batch,frames,extra", [(1, 2, 0), (3, 5, 0), (2, 40, 0), (2, 40, 300)])
def test_istft_matches_torch_istft_in_value_gradient_and_refusal(mel, batch, frames, extra):
    torch.manual_seed(frames)
    window = torch.hann_window(mel.win_length)
    spec = torch.randn(batch, mel.n_fft // 2 + 1, frames, dtype=torch.complex64, requires_grad=True)
    length = (frames - 1) * mel.hop_length + extra  # extra: past the last frame, zero padded
    try:
        want = torch_istft(spec, mel, window, length)
    except RuntimeError:  # the window does not overlap-add to a positive envelope everywhere
        with pytest.raises(RuntimeError, match="window overlap add min"):
            istft(spec, mel, window, length)
        return
    got = istft(spec, mel, window, length)
    assert got.shape == want.shape == (batch, length)
    assert (got - want).abs().max() < 1e-6
    ramp = torch.linspace(-1, 1, length)  # a loss that weighs every sample differently
    g_got, = torch.autograd.grad((got * ramp).sum(), spec)
    g_want, = torch.autograd.grad((want * ramp).sum(), spec)
    assert (g_got - g_want).abs().max() <= 1e-5 * g_want.abs().max()


def test_overlap_add_puts_frame_t_at_sample_t_hop():
    frames = torch.zeros(1, 8, 3)
    frames[0, :, 1] = torch.arange(1.0, 9.0)  # frame 1 only: lands at samples 2..9 with hop 2
    out = overlap_add(frames, hop=2)
    assert out.shape == (1, 2 * 2 + 8)
    assert out[0].tolist() == [0, 0, *range(1, 9), 0, 0]
