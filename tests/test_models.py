"""The U-Net of the paper's appendix (Table 2) and the RED-style residual network."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from n2n_core.paper import models
from n2n_core.config import ModelConfig
from n2n_core.paper.models import REDNet, UNet

# Appendix Table 2 of the paper, RGB in and out: (layer, input channels, output channels)
TABLE2 = [
    ("enc_conv0", 3, 48), ("enc_conv1", 48, 48), ("enc_conv2", 48, 48), ("enc_conv3", 48, 48),
    ("enc_conv4", 48, 48), ("enc_conv5", 48, 48), ("enc_conv6", 48, 48),
    ("dec_conv5a", 48 + 48, 96), ("dec_conv5b", 96, 96),
    ("dec_conv4a", 96 + 48, 96), ("dec_conv4b", 96, 96),
    ("dec_conv3a", 96 + 48, 96), ("dec_conv3b", 96, 96),
    ("dec_conv2a", 96 + 48, 96), ("dec_conv2b", 96, 96),
    ("dec_conv1a", 96 + 3, 64), ("dec_conv1b", 64, 32), ("dec_conv1c", 32, 3),
]


def conv3x3_params(cin: int, cout: int) -> int:
    return 3 * 3 * cin * cout + cout


@pytest.fixture(scope="module")
def unet() -> UNet:
    return models.build(ModelConfig("unet"), seed=0).eval()


# ------------------------------------------------------------------------------------------ U-Net
def test_table2_adds_up_to_the_papers_count():
    # a check of the table above (not of the package): the paper states 991,203 parameters
    assert sum(conv3x3_params(cin, cout) for _, cin, cout in TABLE2) == 991_203


def test_unet_has_exactly_991203_parameters(unet):
    assert sum(p.numel() for p in unet.parameters()) == 991_203


def test_unet_layers_follow_table2(unet):
    convs = {name: m for name, m in unet.named_modules() if isinstance(m, nn.Conv2d)}
    assert set(convs) == {name for name, _, _ in TABLE2}
    for name, cin, cout in TABLE2:
        conv = convs[name]
        assert (conv.in_channels, conv.out_channels) == (cin, cout), name
        assert conv.kernel_size == (3, 3) and conv.padding == (1, 1) and conv.stride == (1, 1), name


def test_unet_every_layer_has_its_own_weights(unet):
    named = list(unet.named_parameters(remove_duplicate=False))
    assert len(named) == 2 * len(TABLE2)  # a weight and a bias per convolution
    assert len({id(p) for _, p in named}) == len(named)
    assert len({p.data_ptr() for _, p in named}) == len(named)  # no storage shared either
    conv_modules = [m for _, m in unet.named_modules(remove_duplicate=False) if isinstance(m, nn.Conv2d)]
    assert len(conv_modules) == len(TABLE2) and len({id(m) for m in conv_modules}) == len(TABLE2)
    unique = {p.data_ptr(): p.numel() for _, p in named}
    assert sum(unique.values()) == 991_203


def test_unet_forward_uses_every_layer():
    # a layer that is defined but skipped (or a block reused in its place) gets no gradient
    net = models.build(ModelConfig("unet"), seed=1)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    net(x).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_unet_uses_leaky_relu_0_1_nearest_upsampling_and_2x2_max_pooling(monkeypatch):
    # appendix Table 2: leaky ReLU (0.1) after every convolution but the last, five 2x2 max-poolings,
    # five nearest-neighbour 2x upsamplings (not transposed convolutions, not bilinear)
    calls = {"leaky_relu": [], "interpolate": [], "max_pool2d": [], "relu": 0}
    leaky_relu, interpolate, max_pool2d, relu = F.leaky_relu, F.interpolate, F.max_pool2d, F.relu

    def spy_leaky_relu(t, negative_slope=0.01, inplace=False):
        calls["leaky_relu"].append(negative_slope)
        return leaky_relu(t, negative_slope, inplace)

    def spy_interpolate(t, size=None, scale_factor=None, mode="nearest", **kwargs):
        calls["interpolate"].append((scale_factor, mode))
        return interpolate(t, size=size, scale_factor=scale_factor, mode=mode, **kwargs)

    def spy_max_pool2d(t, kernel_size, *args, **kwargs):
        calls["max_pool2d"].append((kernel_size, kwargs.get("stride", args[0] if args else None)))
        return max_pool2d(t, kernel_size, *args, **kwargs)

    def spy_relu(*args, **kwargs):
        calls["relu"] += 1
        return relu(*args, **kwargs)

    monkeypatch.setattr(F, "leaky_relu", spy_leaky_relu)
    monkeypatch.setattr(F, "interpolate", spy_interpolate)
    monkeypatch.setattr(F, "max_pool2d", spy_max_pool2d)
    monkeypatch.setattr(F, "relu", spy_relu)
    net = models.build(ModelConfig("unet"), seed=0)
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in net.modules())
    with torch.no_grad():
        out = net(torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert calls["leaky_relu"] == [0.1] * (len(TABLE2) - 1)
    assert calls["interpolate"] == [(2, "nearest")] * 5
    assert [k for k, _ in calls["max_pool2d"]] == [2] * 5
    assert all(stride in (None, 2) for _, stride in calls["max_pool2d"])
    assert calls["relu"] == 0
    assert out.min() < 0  # the last layer is linear: no activation clips the output


@pytest.mark.parametrize("height,width", [(37, 31), (20, 20), (5, 3), (1, 1), (64, 33), (32, 32)])
def test_unet_output_shape_equals_input_shape(unet, generator, height, width):
    x = torch.rand(2, 3, height, width, generator=generator)
    with torch.no_grad():
        y = unet(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_unet_reflect_pads_to_a_multiple_of_32_and_crops_back(unet, generator):
    x = torch.rand(1, 3, 37, 31, generator=generator)
    padded = F.pad(x, (0, 32 - 31, 0, 64 - 37), mode="reflect")  # bottom/right, to 64 x 32
    assert padded.shape[-2:] == (64, 32)
    with torch.no_grad():
        expected = unet(padded)[..., :37, :31]
        assert torch.allclose(unet(x), expected, atol=1e-5)


def test_unet_images_of_a_batch_are_independent(unet, generator):
    # no batch norm: each image's output depends on that image only
    x = torch.rand(3, 3, 40, 24, generator=generator)
    with torch.no_grad():
        batch = unet(x)
        single = torch.cat([unet(x[i:i + 1]) for i in range(3)])
    assert torch.allclose(batch, single, atol=1e-5)


def test_unet_output_layer_runs_in_float32_under_bfloat16_autocast(unet, generator):
    # a bfloat16 output is rounded to 8 bits of mantissa (0.004 near white), a floor the annealed L0
    # loss cannot get under (impulse noise, notebook 07: 19.6 dB in bfloat16 against 21.6 in float32)
    x = torch.rand(1, 3, 32, 32, generator=generator)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = unet(x)
    assert y.dtype == torch.float32
    assert not torch.equal(y, y.bfloat16().float())  # values between bfloat16's steps
    exact = unet(x)
    assert torch.allclose(y, exact, atol=0.05) and not torch.allclose(y, exact, atol=1e-6)  # the body in bfloat16


# ------------------------------------------------------------------------------------------ REDNet
@pytest.mark.parametrize("depth,width", [(4, 8), (10, 16)])
def test_rednet_starts_as_the_identity(generator, depth, width):
    net = REDNet(depth=depth, width=width)
    x = torch.rand(2, 3, 37, 31, generator=generator) * 1.6 - 0.3  # values outside [0, 1] too
    with torch.no_grad():
        assert torch.equal(net(x), x)


@pytest.mark.parametrize("depth", [7, 5, 2, 0])
def test_rednet_rejects_bad_depth_naming_the_value(depth):
    with pytest.raises(ValueError, match=rf"\b{depth}\b"):
        REDNet(depth=depth, width=8)


def test_rednet_rejects_bad_width_and_channel_counts():
    with pytest.raises(ValueError, match="0"):
        REDNet(depth=4, width=0)
    with pytest.raises(ValueError, match="in_channels"):
        REDNet(in_channels=1, out_channels=3, depth=4, width=8)


def test_rednet_parameter_count_by_hand():
    net = REDNet(depth=6, width=8)
    expected = conv3x3_params(3, 8) + 4 * conv3x3_params(8, 8) + conv3x3_params(8, 3)
    assert sum(p.numel() for p in net.parameters()) == expected
    assert len(net.convs) == 6


def test_rednet_depth4_forward_has_the_symmetric_skip(generator):
    # depth 4: conv0, conv1 encode (conv1's output is stored), conv2 decodes and gets it added,
    # conv3 predicts the residual; every hidden layer is followed by a ReLU
    net = REDNet(depth=4, width=8)
    with torch.no_grad():
        for conv in net.convs:  # leave the identity start: random weights everywhere
            conv.weight.normal_(0, 0.2, generator=generator)
            conv.bias.normal_(0, 0.1, generator=generator)
        x = torch.rand(1, 3, 9, 11, generator=generator)
        c = net.convs
        h1 = torch.relu(c[1](torch.relu(c[0](x))))
        h2 = torch.relu(c[2](h1) + h1)
        expected = x + c[3](h2)
        assert torch.allclose(net(x), expected, atol=1e-6)


def test_rednet_output_shape_for_odd_sizes(generator):
    net = models.build(ModelConfig("resnet", depth=4, width=8), seed=0)
    x = torch.rand(1, 3, 37, 31, generator=generator)
    with torch.no_grad():
        assert net(x).shape == x.shape


# ------------------------------------------------------------------------------------------ build
def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("config", [ModelConfig("resnet", depth=4, width=8), ModelConfig("unet")],
                         ids=["resnet", "unet"])
def test_build_with_a_seed_is_reproducible(config):
    assert _same_weights(models.build(config, seed=3), models.build(config, seed=3))
    assert not _same_weights(models.build(config, seed=3), models.build(config, seed=4))


def test_build_leaves_the_global_random_state_untouched():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    expected = torch.rand(5)
    torch.set_rng_state(before)
    models.build(ModelConfig("resnet", depth=4, width=8), seed=7)
    models.build(ModelConfig("unet"), seed=8)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(torch.rand(5), expected)


def test_build_weights_do_not_depend_on_the_global_state():
    torch.manual_seed(1)
    a = models.build(ModelConfig("resnet", depth=4, width=8), seed=11)
    torch.manual_seed(2)
    b = models.build(ModelConfig("resnet", depth=4, width=8), seed=11)
    assert _same_weights(a, b)


def test_build_accepts_the_model_args_of_a_checkpoint():
    cfg = ModelConfig("resnet", depth=6, width=12)
    args = models.model_args(cfg)
    assert args == {"name": "resnet", "depth": 6, "width": 12}
    net = models.build(args, seed=0)
    assert isinstance(net, REDNet) and (net.depth, net.width) == (6, 12)
    assert models.model_args(ModelConfig("unet")) == {"name": "unet"}
    assert isinstance(models.build({"name": "unet"}), UNet)


def test_build_rejects_an_unknown_model_name():
    with pytest.raises(ValueError, match="vgg"):
        models.build({"name": "vgg"})


def test_build_without_a_seed_draws_from_the_global_generator():
    from n2n_core.config import ModelConfig
    from n2n_core.paper.models import build

    torch.manual_seed(0)
    a, b = build(ModelConfig("unet")), build(ModelConfig("unet"))
    assert not torch.equal(a.enc_conv0.weight, b.enc_conv0.weight)
