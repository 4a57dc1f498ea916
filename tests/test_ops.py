import pytest
import torch
import torch.nn as nn

from lightsnn.space.neurons import LIFConfig, spiking_modules
from lightsnn.space.ops import OPS, OpError, OpSpec, canonical_op, parse_space


def test_parameters_in_op_names_set_the_lif():
    spec = OpSpec.parse(" conv3x3( tau=2.0 , th=0.5 ) ")
    assert str(spec) == "conv3x3(tau=2,th=0.5)"
    module = spec.build(4, LIFConfig())
    lif = spiking_modules(module)[0]
    assert lif.v_threshold == 0.5 and lif.tau == 2.0
    assert "." not in spec.module_key()


def test_conv_ops_are_lif_conv_bn_without_bias():
    module = OpSpec.parse("conv1x1").build(6, LIFConfig())
    lif, conv, bn = module
    assert len(spiking_modules(module)) == 1 and lif is spiking_modules(module)[0]
    assert isinstance(conv, nn.Conv2d) and conv.bias is None and conv.kernel_size == (1, 1)
    assert isinstance(bn, nn.BatchNorm2d)
    assert OpSpec.parse("zero").build(6, LIFConfig()) is None


@pytest.mark.parametrize("bad, message", [
    ("conv5x5", "unknown op 'conv5x5'"),
    ("skip(th=1)", "has no LIF"),
    ("conv3x3(thresh=1)", "allowed: th=<float>, tau=<float>"),
    ("conv3x3(th=abc)", "is not a number"),
    ("conv3x3(", "bad op"),
])
def test_bad_op_names_get_clear_errors(bad, message):
    with pytest.raises(OpError, match=message.replace("(", r"\(").replace(")", r"\)")):
        OpSpec.parse(bad)


def test_spaces_by_name_or_list():
    assert parse_space("lightsnn") == ("zero", "conv3x3", "skip")
    assert parse_space(["zero", "conv3x3(th=0.50)"]) == ("zero", "conv3x3(th=0.5)")
    with pytest.raises(OpError, match="twice"):
        parse_space(["skip", "skip"])
    with pytest.raises(OpError, match="unknown op space"):
        parse_space("nope")
    assert set(OPS) >= {"zero", "skip", "conv1x1", "conv3x3", "avgpool3x3", "maxpool3x3"}
    assert canonical_op("avgpool3x3") == "avgpool3x3"


@pytest.mark.parametrize("shape", [(8, 5, 9, 11), (4, 16, 8, 8)])
def test_channels_last_pools_give_the_plain_pools_values_bit_for_bit(shape):
    """The cell's pool ops and the network's pools run channels-last on the CPU when no gradient is recorded
    (several times faster); the values are exactly those of torch's pools in the input's layout, and with
    autograd the plain kernels run (the same values and gradient strides as torch's)."""
    from lightsnn.space.pooling import AvgPool2d, MaxPool2d

    torch.manual_seed(0)
    for ours, plain in ((AvgPool2d(3, 1, 1), torch.nn.AvgPool2d(3, 1, 1)), (MaxPool2d(3, 1, 1), torch.nn.MaxPool2d(3, 1, 1)),
                        (AvgPool2d(2, 2), torch.nn.AvgPool2d(2, 2)), (MaxPool2d(2, 2), torch.nn.MaxPool2d(2, 2))):
        x = torch.randn(shape)
        with torch.inference_mode():
            got, want = ours(x), plain(x)
        assert torch.equal(got, want) and got.is_contiguous()
        x.requires_grad_(True)
        got, want = ours(x), plain(x)
        g = torch.randn_like(want)
        grad, plain_grad = torch.autograd.grad(got, x, g)[0], torch.autograd.grad(want, x, g)[0]
        assert torch.equal(got, want) and torch.equal(grad, plain_grad) and grad.stride() == plain_grad.stride()
        assert isinstance(ours, type(plain))  # op counters that look for torch's pool types still find them
