import math

import numpy as np
import pytest
import torch

from lightsnn.proxies.registry import get_proxy
from lightsnn.proxies.sahd import KernelHooks, sahd_kernel, sahd_kernels
from lightsnn.space.genotype import Genotype
from lightsnn.space.network import SNASNetwork
from lightsnn.space.neurons import sequences, spiking_modules


def test_kernel_matches_a_value_worked_out_by_hand():
    # two samples, N=4 neurons: counts a=(2,2); they differ in 2 positions.
    # Ek = a_i + a_j - 2 a_i a_j / N = 2 on every pair; K = N - 0.5/(Ek+1e-3) * dH
    x = torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    k = sahd_kernel(x)
    off = 4 - 0.5 / 2.001 * 2
    assert k.dtype == torch.float64
    assert torch.allclose(k, torch.tensor([[4.0, off], [off, 4.0]], dtype=torch.float64), rtol=0, atol=1e-12)


def test_plain_hamming_kernel_drops_the_sparsity_weighting():
    # same two samples: dH = 2 off the diagonal, so K = N - dH = 2 there (the evidence study's baseline)
    x = torch.tensor([[[1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]]])
    k = sahd_kernels(x, sparsity_aware=False)[0]
    assert torch.equal(k, torch.tensor([[4.0, 2.0], [2.0, 4.0]], dtype=torch.float64))


def test_kernel_equals_the_reference_code_formula():
    rng = np.random.default_rng(0)
    x = (rng.random((7, 50)) < 0.2).astype(np.float64)
    n = x.shape[1]
    s = x.sum(1, keepdims=True) / n
    ek = (s @ (1 - s).T + (1 - s) @ s.T) * n
    dh = x @ (1 - x).T + (1 - x) @ x.T
    expected = n * np.ones((7, 7)) - (0.5 / (ek + 1e-3)) * dh
    assert np.allclose(sahd_kernel(torch.from_numpy(x).float()).numpy(), expected, rtol=0, atol=1e-9)


def _net(tiny):
    torch.manual_seed(0)
    return SNASNetwork.from_genotype(tiny, Genotype.from_str("0302 0030 3003 0000"))


def test_score_is_logdet_of_the_summed_kernel_and_hooks_are_removed(tiny):
    net = _net(tiny)
    x = torch.randn(8, 1, 8, 8) * 2
    seen = []

    def grab(module, inputs, output):
        seen.append(output.reshape(output.shape[0], -1).clone())

    handles = [m.register_forward_hook(grab) for m in spiking_modules(net)]
    net.eval()
    with torch.inference_mode(), KernelHooks(net, [(True, "none"), (True, "count")]) as hooks, \
            sequences(net) as run:
        (score, counted), = hooks.score(run, x)
    for h in handles:
        h.remove()
    calls = len(seen)
    k = sum(sahd_kernel(s) for s in seen)
    assert calls == tiny.timesteps * len(spiking_modules(net))
    assert score == pytest.approx(float(torch.linalg.slogdet(k)[1]), rel=1e-12)
    assert counted == pytest.approx(score - 8 * math.log(calls), rel=1e-9)
    assert all(not m._forward_hooks for m in spiking_modules(net))


def test_score_outside_the_context_is_an_error(tiny):
    net = _net(tiny)
    with pytest.raises(RuntimeError, match="outside its 'with' block"):
        KernelHooks(net, [(True, "none")]).score(net, torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="normalize"):
        KernelHooks(net, [(True, "mean")])


def test_identical_samples_give_a_singular_kernel_reported_as_minus_infinity(tiny):
    net = _net(tiny).eval()
    assert not math.isfinite(get_proxy("sahd").score(net, None, [torch.ones(4, 1, 8, 8)]))


def test_a_bf16_scoring_pass_keeps_the_kernel_exact():
    """Under bf16 autocast the network runs in bf16, but K's spike counts (here up to 3,000, beyond bf16's 8-bit
    mantissa) are summed in fp32 and float64 as without it."""
    import torch

    from lightsnn.proxies.sahd import sahd_kernels

    spikes = (torch.rand(1, 6, 3000, generator=torch.Generator().manual_seed(0)) < 0.7).float()
    plain = sahd_kernels(spikes, binary=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = sahd_kernels(spikes, binary=True)
    assert torch.equal(plain, cast)


def test_bf16_scoring_is_an_option_of_kernel_proxies_only(tiny_config):
    import math

    import pytest

    from lightsnn.pipeline.config import method_options
    from lightsnn.pipeline.jobs import run_search

    with pytest.raises(ValueError, match="search.snasnet.bf16 applies to the kernel proxies only, not to proxy 'snip'"):
        method_options("snasnet", {}, {"bf16": True, "proxy": "snip"})
    result = run_search("snasnet", "digits", 0, tiny_config, {"bf16": True, "num_search": 3}, progress=False)
    assert result["options"]["bf16"] is True and all(math.isfinite(c["score"]) for c in result["candidates"])
