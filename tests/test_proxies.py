"""The proxy registry: one signature, each proxy's computation checked on a case small enough to follow."""
import math

import numpy as np
import pytest
import torch

from lightsnn.proxies.registry import PROXIES, count_conv_edges, get_proxy
from lightsnn.proxies.sahd import SAHDScorer
from lightsnn.space.genotype import Genotype
from lightsnn.space.network import SNASNetwork, count_parameters
from lightsnn.space.neurons import make_lif, reset_state

GENOTYPE = Genotype.from_str("0302 0030 3003 0000")


def test_conv_edges_counts_the_spiking_ops_of_one_cell():
    # codes: 1 skip, 2 conv1x1, 3 conv3x3, 4 avgpool; the backward edge (2, 0) counts too
    assert count_conv_edges(Genotype.from_str("0302 0020 3001 0000")) == 4
    assert count_conv_edges(Genotype.from_str("0101 0010 1001 0000")) == 0
    assert get_proxy("conv_edges").score(None, Genotype.from_str("0302 0020 3001 0000"), []) == 4.0


def test_every_proxy_has_a_one_line_definition_and_unknown_names_are_refused():
    assert {"sahd", "sahd_count", "hamming", "params", "conv_edges"} <= set(PROXIES)
    for proxy in PROXIES.values():
        assert proxy.definition and "\n" not in proxy.definition
    with pytest.raises(ValueError, match="unknown proxy 'synflow'; known: sahd"):
        get_proxy("synflow")


class OneLayer(torch.nn.Module):
    """One LIF layer, one timestep: the kernel can be written down by hand."""

    def __init__(self):
        super().__init__()
        self.lif = make_lif()

    def forward(self, x):
        return self.lif(x)


def test_sahd_and_hamming_on_a_hand_worked_batch():
    # three samples, N = 4 neurons; inputs 2.0 fire (H = 0.75 * 2 >= 1), 0.0 do not
    x = torch.tensor([[2.0, 2.0, 0.0, 0.0], [2.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    spikes = (x > 0).double()
    n = 4
    a = spikes.sum(1)
    dh = a[:, None] + a[None, :] - 2 * spikes @ spikes.T
    ek = a[:, None] + a[None, :] - 2 * a[:, None] * a[None, :] / n
    sahd_k = n - 0.5 / (ek + 1e-3) * dh
    hamming_k = n - dh
    net = OneLayer()
    assert get_proxy("sahd").score(net, None, [x]) == pytest.approx(float(torch.linalg.slogdet(sahd_k)[1]))
    assert get_proxy("hamming").score(net, None, [x]) == pytest.approx(float(torch.linalg.slogdet(hamming_k)[1]))
    # one LIF call: dividing by the number of calls changes nothing here
    assert get_proxy("sahd_count").score(net, None, [x]) == pytest.approx(get_proxy("sahd").score(net, None, [x]))


class TwoLayers(torch.nn.Module):
    """Two LIF calls of different sizes (4 and 2 neurons) on the same samples."""

    def __init__(self):
        super().__init__()
        self.a, self.b = make_lif(), make_lif()

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x[:, :2])], 1)


def test_per_layer_normalisation_and_firing_rate_on_a_hand_worked_batch():
    x = torch.tensor([[2.0, 2.0, 0.0, 0.0], [2.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]])

    def kernels(spikes, aware):
        n = spikes.shape[1]
        a = spikes.sum(1)
        dh = a[:, None] + a[None, :] - 2 * spikes @ spikes.T
        if not aware:
            return n - dh
        ek = a[:, None] + a[None, :] - 2 * a[:, None] * a[None, :] / n
        return n - 0.5 / (ek + 1e-3) * dh

    big, small = (x > 0).double(), (x[:, :2] > 0).double()
    for name, aware in (("sahd_layer", True), ("hamming_layer", False)):
        k = kernels(big, aware) / 4 + kernels(small, aware) / 2  # each call's K over its own N
        assert get_proxy(name).score(TwoLayers(), None, [x]) == pytest.approx(float(torch.linalg.slogdet(k)[1]))
    k_plain = kernels(big, True) + kernels(small, True)
    assert get_proxy("sahd").score(TwoLayers(), None, [x]) == pytest.approx(float(torch.linalg.slogdet(k_plain)[1]))
    # 2 + 2 + 0 spikes of 3 x 4 neurons, 2 + 1 + 0 of 3 x 2: 7 of 18
    assert get_proxy("fire_rate").score(TwoLayers(), None, [x]) == pytest.approx(7 / 18)


def test_registry_scores_equal_the_scorer_they_wrap(tiny):
    torch.manual_seed(0)
    net = SNASNetwork.from_genotype(tiny, GENOTYPE).train()
    batches = [torch.randn(8, 1, 8, 8), torch.randn(8, 1, 8, 8)]
    for name, options in (("sahd", {"normalize": "none"}), ("sahd_count", {"normalize": "count"}),
                          ("hamming", {"normalize": "none", "sparsity_aware": False})):
        direct = []
        with torch.inference_mode(), SAHDScorer(net, **options) as scorer:
            for batch in batches:
                reset_state(net)
                direct.append(scorer.score(batch))
        assert get_proxy(name).score(net, GENOTYPE, batches) == float(np.mean(direct)), name
    assert get_proxy("params").score(net, GENOTYPE, []) == count_parameters(net)
    assert math.isnan(get_proxy("sahd").score(net, GENOTYPE, []))


def test_kernel_proxies_share_one_forward_and_give_the_one_at_a_time_scores(tiny):
    """score_proxies runs SAHD, its normalised form and Hamming off one forward per batch; with dropout active
    (train mode) each group is seeded alike, so the values equal separate calls seeded the same way."""
    from lightsnn.proxies.registry import score_proxies

    torch.manual_seed(0)
    net = SNASNetwork.from_genotype(tiny, GENOTYPE).train()
    batches = [torch.randn(8, 1, 8, 8), torch.randn(8, 1, 8, 8)]
    kernels = [name for name, proxy in PROXIES.items() if proxy.kernel is not None]
    assert len(kernels) >= 5
    forwards = []
    hook = net.stem.register_forward_hook(lambda *args: forwards.append(1))
    score_proxies(net, GENOTYPE, batches, kernels, before_forward=lambda: torch.manual_seed(5))
    hook.remove()
    assert len(forwards) == len(batches)  # one forward per batch for all the kernel proxies
    names = list(PROXIES)
    shared = score_proxies(net, GENOTYPE, batches, names, before_forward=lambda: torch.manual_seed(5))
    for name in names:
        torch.manual_seed(5)
        assert shared[name] == get_proxy(name).score(net, GENOTYPE, batches), name
    assert list(shared) == names
