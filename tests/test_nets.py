"""Backbones (cmaudio.nets): shapes, conditioning, zero init, gradient flow, determinism."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from cmaudio.config import NetConfig
from cmaudio.errors import ConfigError
from cmaudio.nets import UNet1D, UNet2D, build_net
from cmaudio.nets.unet1d import FreqHead

# "unet1d-head": unet1d with its 2-D head over (mel, time) (net.freq_channels, nets.unet1d.FreqHead)
ARCHS = ("unet1d", "unet1d-head", "unet2d")
COND_SIZES = ((), (10,), (37, 11))
N_MELS = 9  # odd, so UNet2D must pad and crop the mel axis too


def tiny(arch: str, **kw) -> NetConfig:
    """Three levels (factor 4), attention at the lowest level and the middle."""
    base = {"channels": 8, "channel_mult": (1, 2, 2), "num_blocks": 1, "attn_heads": 2}
    if arch == "unet1d-head":
        arch, base = "unet1d", base | {"freq_channels": 4}
    return NetConfig(arch=arch, **(base | kw))


def make(arch: str, cond_sizes=(), seed: int = 0, randomise: bool = True, **kw) -> torch.nn.Module:
    """A tiny net. ``randomise`` gives the zero-initialised layers (output conv, each block's
    second conv, attention projections) random weights, so that every path reaches the output."""
    torch.manual_seed(seed)
    net = build_net(tiny(arch, **kw), N_MELS, cond_sizes)
    if randomise:
        with torch.no_grad():
            for p in net.parameters():
                if not p.any():
                    p.normal_(std=0.3)
    return net


def inputs(cond_sizes, batch: int = 3, frames: int = 7, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, N_MELS, frames, generator=g)
    c_noise = torch.empty(batch).uniform_(-1.6, 1.1, generator=g)
    cond = None
    if cond_sizes:
        # high is exclusive: size + 1 lets the null class appear too
        cond = torch.stack([torch.randint(0, n + 1, (batch,), generator=g) for n in cond_sizes], 1)
    return x, c_noise, cond


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("cond_sizes", COND_SIZES)
@pytest.mark.parametrize("frames", (1, 7, 63, 101))
def test_output_shape_matches_input_for_any_frames(arch, cond_sizes, frames):
    net = make(arch, cond_sizes)
    x, c_noise, cond = inputs(cond_sizes, frames=frames)
    out = net(x, c_noise, cond)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()


def test_build_net_dispatches_on_arch():
    assert type(build_net(tiny("unet1d"), N_MELS, ())) is UNet1D
    assert build_net(tiny("unet1d"), N_MELS, ()).head is None
    assert isinstance(build_net(tiny("unet1d-head"), N_MELS, ()).head, FreqHead)
    assert type(build_net(tiny("unet2d"), N_MELS, ())) is UNet2D
    with pytest.raises(ValueError, match="net.arch"):
        build_net(dataclasses.replace(tiny("unet1d"), arch="unet3d"), N_MELS, ())


@pytest.mark.parametrize("arch", ARCHS)
def test_output_is_exactly_zero_at_init(arch):
    # F == 0 makes a preconditioned model start as D = c_skip x.
    net = make(arch, (10,), randomise=False)
    x, c_noise, cond = inputs((10,))
    assert torch.equal(net(x, c_noise, cond), torch.zeros_like(x))


@pytest.mark.parametrize("arch", ARCHS)
def test_cond_none_equals_all_null_classes(arch):
    net = make(arch, (37, 11))
    x, c_noise, _ = inputs((37, 11))
    null = torch.tensor([[37, 11]]).expand(x.shape[0], -1)
    torch.testing.assert_close(net(x, c_noise, None), net(x, c_noise, null), rtol=0, atol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_each_class_factor_and_the_noise_level_change_the_output(arch):
    net = make(arch, (37, 11))
    x, c_noise, _ = inputs((37, 11))
    cond = torch.tensor([[3, 4]]).expand(x.shape[0], -1)
    ref = net(x, c_noise, cond)
    for k, other in ((0, 5), (0, 37), (1, 9), (1, 11)):  # another class, and the null class
        changed = cond.clone()
        changed[:, k] = other
        assert (net(x, c_noise, changed) - ref).abs().max() > 1e-3, (k, other)
    assert (net(x, c_noise + 0.05, cond) - ref).abs().max() > 1e-3


@pytest.mark.parametrize("arch", ARCHS)
def test_every_parameter_gets_a_finite_nonzero_gradient(arch):
    net = make(arch, (37, 11))
    x, c_noise, cond = inputs((37, 11), batch=4, frames=9)
    net(x, c_noise, cond).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("arch", ARCHS)
def test_examples_do_not_interact_within_a_batch(arch):
    # One seed per sample (DESIGN section 4) needs each output to depend on its own input only.
    net = make(arch, (10,)).eval()
    x, c_noise, cond = inputs((10,), batch=3, frames=11)
    batched = net(x, c_noise, cond)
    for i in range(3):
        alone = net(x[i : i + 1], c_noise[i : i + 1], cond[i : i + 1])
        torch.testing.assert_close(alone, batched[i : i + 1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_eval_is_deterministic_and_dropout_only_acts_in_training(arch):
    net = make(arch, (10,), dropout=0.5)
    x, c_noise, cond = inputs((10,))
    net.eval()
    assert torch.equal(net(x, c_noise, cond), net(x, c_noise, cond))
    net.train()
    assert not torch.equal(net(x, c_noise, cond), net(x, c_noise, cond))


@pytest.mark.parametrize("arch", ARCHS)
def test_options_build_and_run(arch):
    # attention off, an explicit embedding width and two resolution levels (factor 2).
    options = (
        {"attention": False},
        {"emb_channels": 24},
        {"channel_mult": (1, 2), "num_blocks": 2},
    )
    for kw in options:
        net = make(arch, (10,), **kw)
        x, c_noise, cond = inputs((10,), frames=5)
        assert net(x, c_noise, cond).shape == x.shape
    no_attn = make(arch, attention=False)
    assert not any("attn" in name for name, _ in no_attn.named_parameters())


def test_scalar_c_noise_is_shared_by_the_batch():
    net = make("unet1d", (10,))
    x, _, cond = inputs((10,))
    torch.testing.assert_close(net(x, torch.tensor(0.3), cond), net(x, torch.full((3,), 0.3), cond))


def test_bad_cond_is_rejected_with_a_message():
    x, c_noise, _ = inputs(())
    with pytest.raises(ValueError, match="cond must be"):
        make("unet1d", (37, 11))(x, c_noise, torch.zeros(3, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="unconditional"):
        make("unet1d", ())(x, c_noise, torch.zeros(3, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="attn_heads"):
        make("unet1d", attn_heads=3)



def test_freq_head_starts_as_the_identity_and_then_refines_each_band_locally():
    """At init (zero output convolution) the head returns the U-Net's output unchanged, so the
    net still starts at F == 0; once trained it works locally over (mel, time): four 3 x 3
    convolutions, so a change to the U-Net's output at one bin reaches at most 4 bins and frames
    away except through GroupNorm's statistics."""
    torch.manual_seed(0)
    head, emb = FreqHead(4, 16), torch.randn(2, 16)
    x, f = torch.randn(2, 24, 24), torch.randn(2, 24, 24)
    torch.testing.assert_close(head(x, f, emb), f, rtol=0, atol=0)
    with torch.no_grad():
        for p in head.parameters():
            if not p.any():
                p.normal_(std=0.3)
    bumped = f.clone()
    bumped[:, 12, 12] += 1.0
    moved = (head(x, bumped, emb) - head(x, f, emb)).abs().amax(0)
    near = torch.zeros_like(moved, dtype=torch.bool)
    near[8:17, 8:17] = True
    assert moved[12, 12] > 0 and moved[~near].max() < 0.05 * moved.max()


def test_freq_channels_is_checked():
    with pytest.raises(ConfigError, match="net.freq_channels: must be >= 0"):
        NetConfig(freq_channels=-1)
    with pytest.raises(ConfigError, match="net.freq_channels: applies to unet1d only"):
        NetConfig(arch="unet2d", freq_channels=8)


def test_pad_to_multiple_is_the_least_padding_to_a_multiple():
    from cmaudio.nets.layers import pad_to_multiple

    for factor in (1, 2, 4, 8):
        for size in range(0, 40):
            pad = pad_to_multiple(size, factor)
            assert 0 <= pad < factor and (size + pad) % factor == 0
