"""The proxy registry: one signature, each proxy's computation checked on a case small enough to follow."""
import math

import numpy as np
import pytest
import torch

from lightsnn.proxies.builtin import count_conv_edges
from lightsnn.proxies.registry import PROXIES, get_proxy
from lightsnn.proxies.sahd import KernelHooks
from lightsnn.space.genotype import Genotype
from lightsnn.space.network import SNASNetwork, count_parameters
from lightsnn.space.neurons import make_lif, sequences

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
    with pytest.raises(ValueError, match="unknown proxy 'no_such_proxy'; known: sahd"):
        get_proxy("no_such_proxy")


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


def test_registry_scores_equal_the_kernel_hooks_they_wrap(tiny):
    torch.manual_seed(0)
    net = SNASNetwork.from_genotype(tiny, GENOTYPE).train()
    batches = [torch.randn(8, 1, 8, 8), torch.randn(8, 1, 8, 8)]
    for name, variant in (("sahd", (True, "none")), ("sahd_count", (True, "count")),
                          ("hamming", (False, "none"))):
        direct = []
        with torch.inference_mode(), KernelHooks(net, [variant]) as hooks:
            for batch in batches:
                with sequences(net) as run:
                    direct.append(hooks.score(run, batch)[0][0])
        assert get_proxy(name).score(net, GENOTYPE, batches) == float(np.mean(direct)), name
    assert get_proxy("params").score(net, GENOTYPE, []) == count_parameters(net)
    assert math.isnan(get_proxy("sahd").score(net, GENOTYPE, []))


def test_kernel_proxies_share_one_forward_and_give_the_one_at_a_time_scores(tiny):
    """score_proxies runs SAHD, its normalised form and Hamming off one forward per batch; with dropout active
    (train mode) each group is seeded alike, so the values equal separate calls seeded the same way."""
    from lightsnn.proxies.engine import score_proxies

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
    labels = [torch.arange(8) % 10, torch.arange(8) % 3]
    shared = score_proxies(net, GENOTYPE, batches, names, before_forward=lambda: torch.manual_seed(5), labels=labels)
    for name in names:
        torch.manual_seed(5)
        args = (labels,) if get_proxy(name).needs_labels else ()
        assert shared[name] == get_proxy(name).score(net, GENOTYPE, batches, *args), name
    assert list(shared) == names


# --- the issue-16 candidates beyond the kernel family, each on a case worked by hand -----------------------------
def logdet(k):
    return float(torch.linalg.slogdet(torch.as_tensor(k, dtype=torch.float64))[1])


def sahd_k(spikes):
    n = spikes.shape[1]
    a = spikes.sum(1)
    dh = a[:, None] + a[None, :] - 2 * spikes @ spikes.T
    ek = a[:, None] + a[None, :] - 2 * a[:, None] * a[None, :] / n
    return n - 0.5 / (ek + 1e-3) * dh


class TwoSteps(torch.nn.Module):
    """One LIF run for two timesteps; inputs 2.0 fire and reset to 0, inputs 0.0 stay at 0, so each step's
    spikes are those of its own input."""

    def __init__(self):
        super().__init__()
        self.lif = make_lif()

    def forward(self, x):
        return self.lif(x[:, :4]) + self.lif(x[:, 4:])


def test_per_timestep_sahd_averages_one_kernel_per_timestep():
    x = torch.tensor([[2.0, 2.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0],
                      [2.0, 0.0, 2.0, 0.0, 2.0, 2.0, 2.0, 0.0],
                      [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]])
    s1, s2 = (x[:, :4] > 0).double(), (x[:, 4:] > 0).double()
    expected = (logdet(sahd_k(s1)) + logdet(sahd_k(s2))) / 2
    assert get_proxy("sahd_step").score(TwoSteps(), None, [x]) == pytest.approx(expected)
    # the paper's SAHD sums both timesteps into one kernel instead
    assert get_proxy("sahd").score(TwoSteps(), None, [x]) == pytest.approx(logdet(sahd_k(s1) + sahd_k(s2)))


def test_membrane_kernel_uses_the_charged_potential_before_firing():
    from lightsnn.proxies.measures import charged_membrane

    x = torch.tensor([[2.0, 1.0, 0.0, 0.5], [0.0, 1.0, 2.0, 0.0], [1.0, 0.0, 0.0, 3.0]])
    h = 0.75 * x.double()  # v = 0, tau = 4/3: h = x / tau
    unit = h / h.norm(dim=1, keepdim=True)
    assert get_proxy("membrane").score(OneLayer(), None, [x]) == pytest.approx(logdet(unit @ unit.T))
    # with state: 0.5 charges to 0.375 without firing; the next input 1.0 charges to 0.375 + (1.0 - 0.375) * 0.75
    lif = make_lif()
    lif(torch.full((1, 2), 0.5))
    assert charged_membrane(lif, torch.full((1, 2), 1.0)).flatten().tolist() == pytest.approx([0.84375, 0.84375])


def test_distinct_patterns_counts_codes_per_lif_call():
    # layer a (4 neurons): three distinct codes of three samples; layer b (first 2 inputs): [1,1], [1,1], [0,0]
    x = torch.tensor([[2.0, 2.0, 0.0, 0.0], [2.0, 2.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    assert get_proxy("patterns").score(TwoLayers(), None, [x]) == pytest.approx((1.0 + 2 / 3) / 2)


def test_gradient_saliencies_of_a_linear_layer_by_hand():
    """grad_norm and snip of one Linear layer under cross-entropy: dCE/dW = (softmax(Wx + b) - onehot)^T x / B."""
    from lightsnn.proxies.engine import score_proxies

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4))
    x, y = torch.randn(5, 3), torch.tensor([0, 1, 2, 3, 0])
    w, b = net[0].weight.detach().double().numpy(), net[0].bias.detach().double().numpy()
    logits = x.double().numpy() @ w.T + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad = (p - np.eye(4)[y.numpy()]).T @ x.double().numpy() / 5
    assert get_proxy("grad_norm").score(net, None, [x], [y]) == pytest.approx(np.linalg.norm(grad), rel=1e-5)
    assert get_proxy("snip").score(net, None, [x], [y]) == pytest.approx(np.abs(w * grad).sum(), rel=1e-5)
    assert net[0].weight.grad is None  # the network's own gradients are untouched
    both = score_proxies(net, None, [x], ["grad_norm", "snip"], labels=[y])  # one backward serves both
    assert both["grad_norm"] == pytest.approx(np.linalg.norm(grad), rel=1e-5)
    assert both["snip"] == pytest.approx(np.abs(w * grad).sum(), rel=1e-5)
    with pytest.raises(ValueError, match=r"proxies \['grad_norm'\] need one label tensor per batch \(1 batches\), got none"):
        score_proxies(net, None, [x], ["grad_norm"])


def test_synflow_of_two_linear_layers_by_hand_and_the_network_restored():
    """R = 1^T |W2| |W1| 1, so dR/dW1_ij = (1^T |W2|)_i and dR/dW2_ki = (|W1| 1)_i."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2, bias=False), torch.nn.Linear(2, 2, bias=False)).train()
    before = [p.detach().clone() for p in net.parameters()]
    a1, a2 = before[0].abs().double().numpy(), before[1].abs().double().numpy()
    column, row = a2.sum(0), a1.sum(1)
    expected = math.log((a1 * column[:, None]).sum() + (a2 * row[None, :]).sum())
    assert get_proxy("synflow").score(net, None, [torch.randn(4, 3)]) == pytest.approx(expected)
    for p, q in zip(net.parameters(), before):
        assert p.dtype == torch.float32 and torch.equal(p, q)  # signs, values and dtype restored
    assert net.training


def test_jacobian_covariance_of_a_squared_sum_by_hand():
    """For y = sum(x^2) the input Jacobian of each sample is 2x: the score is that of corrcoef(x)."""

    class Square(torch.nn.Module):
        def forward(self, x):
            return (x ** 2).sum(1, keepdim=True)

    x = torch.tensor([[1.0, 2.0, 0.0, 1.0], [0.0, 1.0, 3.0, 1.0], [2.0, 0.0, 1.0, 0.0]])
    v = np.linalg.eigvalsh(np.corrcoef(x.double().numpy()))
    expected = -np.sum(np.log(v + 1e-5) + 1.0 / (v + 1e-5))
    assert get_proxy("jacob_cov").score(Square(), None, [x]) == pytest.approx(expected, rel=1e-6)


def test_every_candidate_scores_a_real_snasnet_through_its_surrogates(tiny):
    """On a real SNASNet (spikingjelly LIFs) each candidate gives a finite value, the saliencies are non-zero
    (the surrogate passes gradient), and scoring leaves the network as it was."""
    from lightsnn.proxies.engine import score_proxies

    torch.manual_seed(0)
    net = SNASNetwork.from_genotype(tiny, GENOTYPE).train()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    batches = [torch.rand(8, 1, 8, 8) * 3, torch.rand(8, 1, 8, 8) * 3]
    labels = [torch.arange(8) % 10, (torch.arange(8) + 3) % 10]
    names = ["sahd_step", "membrane", "patterns", "grad_norm", "snip", "synflow", "jacob_cov"]
    values = score_proxies(net, GENOTYPE, batches, names, labels=labels)
    assert all(math.isfinite(v) for v in values.values()), values
    assert values["grad_norm"] > 0 and values["snip"] > 0
    for key, value in net.state_dict().items():
        if "running" not in key and "num_batches" not in key:  # train-mode BN statistics move, weights do not
            assert torch.equal(value, state[key]), key
    # synflow scores with fresh BN statistics and puts the network's own back: the same value after other
    # forwards moved them, and every buffer as it was
    state = {k: v.clone() for k, v in net.state_dict().items()}
    assert get_proxy("synflow").score(net, GENOTYPE, batches) == values["synflow"]
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())


def test_the_fire_rate_proxy_and_evaluates_sar_are_one_measure(tiny):
    """Both read counting_spikes: on the same network and batches they give the same number, to the bit."""
    from lightsnn.training.metrics import spiking_activity_rate

    torch.manual_seed(0)
    net = SNASNetwork.from_genotype(tiny, GENOTYPE).eval()
    batches = [torch.randn(8, 1, 8, 8) * 2, torch.randn(5, 1, 8, 8) * 2]
    rate = get_proxy("fire_rate").score(net, GENOTYPE, batches)
    sar = spiking_activity_rate(net, [(b, None) for b in batches], torch.device("cpu"))
    assert 0 < rate < 1
    assert sar["sar"] == rate
    assert sar["spikes"] == pytest.approx(rate * sar["neuron_steps"], rel=1e-12)


def test_the_library_resets_neuron_state_in_one_place():
    """Every network run of the library goes through space.neurons.sequences: no module but neurons.py calls
    reset_state (a hand-written reset forgotten at one call site is how carried state creeps in)."""
    import pathlib
    import re

    import lightsnn

    root = pathlib.Path(lightsnn.__file__).parent
    callers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                     if re.search(r"\breset_state\(", p.read_text()) and p.name != "neurons.py")
    assert callers == []
