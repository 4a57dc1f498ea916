import copy

import pytest
import torch

from lightsnn.space.cell import Cell
from lightsnn.space.genotype import Genotype
from lightsnn.space.network import PRESETS, SNASNetwork, SuperNet, count_parameters
from lightsnn.space.neurons import LIFConfig, reset_state, sequences, spiking_modules


def _run(net, x, train):
    """Output and the spikes of every LIF call, in call order."""
    spikes = []
    handles = [m.register_forward_hook(lambda m, i, o: spikes.append(o.clone())) for m in spiking_modules(net)]
    net.train(train)
    reset_state(net)
    torch.manual_seed(1)  # same dropout mask in train mode
    with torch.no_grad():
        out = net(x)
    for h in handles:
        h.remove()
    return out, spikes


@pytest.mark.parametrize("space, genotype", [
    ("lightsnn-ops", "0313 3031 1303 3310"),
    ("snasnet-ops", "0302 0030 3003 0000"),
    ("snasnet-ops", "0241 0004 3001 0200 | 0003 1003 0100 0000"),
])
@pytest.mark.parametrize("train", [False, True])
def test_supernet_masked_to_one_path_equals_the_discrete_network(tiny, space, genotype, train):
    torch.manual_seed(0)
    g = Genotype.from_str(genotype)
    sup = SuperNet(tiny, space, shared=len(g.cells) == 1)
    sup.set_genotype(g)
    with torch.no_grad():  # make BN non-trivial so a wrong path would show
        for m in sup.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.weight.uniform_(0.5, 1.5)
            elif isinstance(m, torch.nn.Linear):  # the N(0, 0.01) init keeps the classifier silent
                m.weight.normal_(0, 0.5)
    net = SNASNetwork.from_genotype(tiny, g)
    net.load_state_dict(sup.discrete_state_dict(g), strict=True)
    x = torch.randn(6, 1, 8, 8) * 3
    (a, spikes_a), (b, spikes_b) = _run(sup, x, train), _run(net, x, train)
    assert torch.equal(a, b)
    assert len(spikes_a) == len(spikes_b) and all(torch.equal(p, q) for p, q in zip(spikes_a, spikes_b))
    # the networks did spike: the comparison is not between silent networks
    assert sum(float(s.sum()) for s in spikes_a) > 0


def test_backward_edges_carry_a_node_to_the_next_timestep():
    # F01 skip, F13 skip, B10 skip: x1(t) = x0 + b0, b0(t+1) = x1(t) + b1 -> x3 grows a, 2a, 3a
    edges = {(0, 1): ["skip"], (1, 3): ["skip"], (1, 0): ["skip"]}
    cell = Cell(1, edges, LIFConfig())
    a = torch.ones(1, 1, 2, 2)
    state, outs = None, []
    for _ in range(3):
        out, state = cell(a, state)
        outs.append(out[0, 0, 0, 0].item())
    assert outs == [1.0, 2.0, 3.0]
    dead = Cell(1, edges, LIFConfig(), dead_backward=True)
    state, outs = None, []
    for _ in range(3):
        out, state = dead(a, state)
        outs.append(out[0, 0, 0, 0].item())
    assert outs == [1.0, 1.0, 1.0]


def test_backward_state_uses_old_values_of_later_nodes():
    # methods.md §2.1: b0' = B10(x1+b1) + ... uses the OLD b1; b1' = B21(x2+b2)
    edges = {(0, 1): ["skip"], (1, 2): ["skip"], (2, 3): ["skip"], (0, 3): ["skip"],
             (1, 0): ["skip"], (2, 1): ["skip"]}
    cell = Cell(1, edges, LIFConfig())
    x = torch.ones(1, 1, 1, 1)
    out0, s = cell(x, None)  # x1=1, x2=1, x3=2; b0'=1, b1'=1
    assert out0.item() == 2 and s[0].item() == 1 and s[1].item() == 1
    out1, s = cell(x, s)  # in0=2 -> x1=2; in1=2+1=3 -> x2=3; x3 = in0 + x2 = 5; b0'= in1 = 3; b1' = x2 = 3
    assert out1.item() == 5 and s[0].item() == 3 and s[1].item() == 3


def test_classifier_size_comes_from_the_real_feature_map():
    dvs = PRESETS["dvs128_gesture"].with_overrides({"channels": 2, "classifier_width": 8, "timesteps": 2})
    net = SNASNetwork.from_genotype(dvs, Genotype.from_str("0003 0000 0000 0000"))
    # 128 -> input pool 64 -> resdown1 32 -> resdown2 16: 2C * 16 * 16 (the released code assumes 8 x 8)
    assert net.in_features == 2 * 2 * 16 * 16
    frames = torch.rand(2, 3, 2, 128, 128)
    reset_state(net)
    assert net(frames).shape == (3, 11)
    with pytest.raises(ValueError, match=r"T=2"):
        net(torch.rand(4, 3, 2, 128, 128))


def test_presets_match_the_papers():
    assert PRESETS["cifar10"].channels == 256 and PRESETS["cifar100"].channels == 128
    assert PRESETS["cifar100"].num_classes * PRESETS["cifar100"].num_cluster == 500
    assert PRESETS["dvs128_gesture"].timesteps == 16 and PRESETS["dvs128_gesture"].input_pool
    with pytest.raises(ValueError, match="unknown network option"):
        PRESETS["digits"].with_overrides({"chanels": 3})


def test_zero_edges_build_no_modules_and_discrete_params_are_smaller(tiny):
    g = Genotype.from_str("0003 0000 0000 0000")
    net = SNASNetwork.from_genotype(tiny, g)
    sup = SuperNet(tiny, "lightsnn-ops")
    assert count_parameters(net) < count_parameters(sup)
    # LIFs: downconv, last_act, classifier, one per conv3x3 edge in each cell
    assert len(spiking_modules(net)) == 3 + 2
    # weights live where the network lives: no hard-coded device
    assert all(p.device.type == "cpu" for p in copy.deepcopy(net).parameters())


@pytest.mark.parametrize("lif", [LIFConfig(), LIFConfig(tau=2.0, v_reset=0.3, v_threshold=0.8)])
def test_lean_cpu_lif_step_equals_spikingjelly_bit_for_bit(lif):
    from spikingjelly.activation_based import neuron, surrogate

    from lightsnn.space.neurons import make_lif
    ours = make_lif(lif)
    theirs = neuron.LIFNode(tau=lif.tau, decay_input=True, v_threshold=lif.v_threshold, v_reset=lif.v_reset,
                            surrogate_function=surrogate.ATan(), detach_reset=True)
    g = torch.Generator().manual_seed(0)
    for context in (torch.inference_mode, torch.no_grad):
        reset_state(ours), reset_state(theirs)
        fired = 0
        with context():
            for _ in range(6):
                x = torch.randn(16, 4, 5, 5, generator=g) * 2
                x[0, 0, 0, :3] = torch.tensor([lif.v_threshold, lif.v_threshold * lif.tau, 0.0])  # on the edge
                a, b = ours(x), theirs(x)
                assert torch.equal(a, b) and torch.equal(ours.v, theirs.v)
                fired += int(a.sum())
        assert 0 < fired < 6 * x.numel()


def test_lif_with_gradients_runs_spikingjelly_and_trains():
    from lightsnn.space.neurons import make_lif
    lif = make_lif()
    x = (torch.randn(8, 3) * 2).requires_grad_()
    out = lif(x) + lif(x)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # the ATan surrogate's gradient


def _candidate_logits(net, count, seed):
    """Random partly pruned logit sets: candidates run different ops on different edges."""
    g = torch.Generator().manual_seed(seed)
    sets = []
    for _ in range(count):
        logits = torch.zeros_like(net.logits)
        pruned = torch.rand(logits.shape, generator=g) < 0.4
        pruned[..., 0] &= pruned[..., 1:].sum(-1) < logits.shape[-1] - 1  # keep one op per edge
        logits[pruned] = -1000.0
        logits += torch.rand(logits.shape, generator=g, dtype=torch.float64) * 0.5  # unequal weights
        sets.append(logits)
    return sets


@pytest.mark.parametrize("space, shared, events", [("lightsnn-ops", True, False), ("snasnet-ops", False, False),
                                                   ("lightsnn-ops", True, True)])
@pytest.mark.parametrize("normalize, aware", [("none", True), ("count", True), ("layer", True), ("none", False)])
def test_stacked_candidates_score_as_each_alone(tiny, space, shared, events, normalize, aware):
    from lightsnn.proxies.sahd import KernelHooks
    cfg = tiny if not events else PRESETS["ndigits"].with_overrides(
        {"channels": 4, "timesteps": 3, "classifier_width": 16, "num_cluster": 2})
    torch.manual_seed(0)
    net = SuperNet(cfg, space, shared=shared).eval()
    candidates = _candidate_logits(net, 5, seed=1)
    shape = (cfg.timesteps, 6, cfg.in_channels, cfg.image_size, cfg.image_size) if events else \
        (6, cfg.in_channels, cfg.image_size, cfg.image_size)
    x = (torch.rand(shape) < 0.3).float() if events else torch.randn(shape) * 2
    alone = []
    with torch.inference_mode(), KernelHooks(net, [(aware, normalize)]) as hooks:
        for logits in candidates:
            net.set_logits(logits)
            with sequences(net) as run:
                alone.append(hooks.score(run, x)[0][0])
    stacked_x = x.repeat(1, len(candidates), 1, 1, 1) if events else x.repeat(len(candidates), 1, 1, 1)
    with torch.inference_mode(), KernelHooks(net, [(aware, normalize)]) as hooks:
        net.set_candidate_logits(candidates)
        hooks.use_candidates()
        with sequences(net) as run:
            together = [v[0] for v in hooks.score(run, stacked_x, len(candidates))]
    assert len(set(alone)) == len(alone)  # the candidates really differ
    assert together == pytest.approx(alone, rel=1e-9, abs=1e-9)
