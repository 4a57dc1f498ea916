"""LitE-SNN: the compressive conv, the losses, decoding, and a real search -> train -> evaluate on digits."""
import json
import math
import statistics

import pytest
import torch

from lightsnn.search.litesnn_objective import decode, lite_loss, psi_weights
from lightsnn.space.compconv import CompConv, effective_weights, kept_count, quantize, top_k_mask
from lightsnn.space.litesnn_genotype import LiteGenotype, LiteGenotypeError, edge_index
from lightsnn.space.litesnn_net import LiteNet, LiteNetConfig, LiteSearchNet
from lightsnn.space.neurons import make_lite_lif, reset_state

STEPS = {1: 1.596, 2: 0.996, 4: 0.336}


@pytest.mark.parametrize("bits, levels", [
    (1, [-0.5, -0.5, 0.5, 0.5, 0.5, 0.5]),
    (2, [-1.5, -0.5, 0.5, 0.5, 0.5, 1.5]),   # w/step = -1.108 -0.369 0.092 0.277 0.739 1.846, clamped at 1.5
    (4, [-3.5, -1.5, 0.5, 0.5, 2.5, 5.5]),   # w/step = -3.284 -1.095 0.274 0.821 2.189 5.473
])
def test_quantiser_values_on_a_hand_made_tensor(bits, levels):
    values = [-1.2, -0.4, 0.1, 0.3, 0.8, 2.0]
    step = STEPS[bits] * statistics.stdev(values)
    got = quantize(torch.tensor(values, dtype=torch.float64), bits)
    assert torch.allclose(got, torch.tensor(levels, dtype=torch.float64) * step)


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_quantiser_has_2_to_the_bits_levels_and_a_straight_through_gradient(bits):
    weight = torch.randn(20000, generator=torch.Generator().manual_seed(0), requires_grad=True)
    out = quantize(weight, bits)
    assert len(torch.unique(out.detach())) == 2 ** bits
    (out * torch.arange(20000.0)).sum().backward()
    assert torch.equal(weight.grad, torch.arange(20000.0))
    with pytest.raises(ValueError, match="bit width 5"):
        quantize(weight, 5)


def test_top_k_mask_keeps_exactly_the_configured_share_of_the_largest_scores():
    scores = torch.randn(10, 10, generator=torch.Generator().manual_seed(1), requires_grad=True)
    mask = top_k_mask(scores, 0.2)
    assert mask.sum() == 20 == kept_count(100, 0.2)
    smallest_kept = scores.detach().abs()[mask.detach() == 1].min()
    assert (scores.detach().abs()[mask.detach() == 0] < smallest_kept).all()
    (mask * 3.0).sum().backward()
    assert torch.equal(scores.grad, torch.full((10, 10), 3.0))  # straight through to every score


def test_psi_weighted_loss_against_a_hand_computation():
    logits = torch.tensor([[[2.0, 0.0]], [[0.0, 2.0]], [[0.0, 4.0]]])  # T=3, B=1, K=2
    target = torch.tensor([0])
    psi_hat = torch.tensor([0.5, 0.3, 0.2])
    synops = torch.tensor([10.0, 20.0, 30.0])
    out = lite_loss(logits, target, psi_hat, torch.tensor(1000.0), synops, size_penalty=1e-3, synops_penalty=1e-2)
    # running means: (2,0), (1,1), (2/3, 2): CE = log(1+e^-2), log 2, log(1+e^(4/3))
    ce = [math.log(1 + math.exp(-2)), math.log(2), math.log(1 + math.exp(4 / 3))]
    task = 0.5 * ce[0] + 0.3 * ce[1] + 0.2 * ce[2]
    ops = 0.5 * 10 + 0.3 * 30 + 0.2 * 60
    assert out["task"].item() == pytest.approx(task, rel=1e-6)
    assert out["loss"].item() == pytest.approx(task + 1e-3 * 1000 + 1e-2 * ops, rel=1e-6)
    warm = psi_weights(torch.tensor([5.0, 0.0, 0.0], requires_grad=True), warm=True)
    assert torch.equal(warm, torch.full((3,), 1 / 3)) and not warm.requires_grad


def test_decode_on_hand_set_logits():
    steps = 3
    alphas = torch.zeros(9, 2)  # rows: node0 <- s0 s1; node1 <- s0 s1 n0; node2 <- s0 s1 n0 n1
    alphas[edge_index(0, 0)] = torch.tensor([3.0, 0.0])   # strong skip
    alphas[edge_index(0, 1)] = torch.tensor([0.0, 1.0])
    alphas[edge_index(1, 2)] = torch.tensor([0.0, 2.0])
    alphas[edge_index(1, 0)] = torch.tensor([1.5, 0.0])
    alphas[edge_index(2, 3)] = torch.tensor([2.5, 0.0])   # skip from node 1
    alphas[edge_index(2, 1)] = torch.tensor([0.0, 0.5])
    alphas[edge_index(2, 0)] = torch.tensor([0.0, 0.4])
    betas = torch.tensor([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    psi = torch.tensor([0.0, 0.2, 3.0, 0.1])
    genotype = decode(alphas, betas, psi, (1, 2, 4), 0.2, steps)
    assert genotype.nodes == (((0, "skip_connect"), (1, "snn_b3")),
                              ((0, "skip_connect"), (2, "snn_b3")),
                              ((1, "snn_b3"), (3, "skip_connect")))
    assert genotype.bits == (2, 1) and genotype.timesteps == 3 and genotype.keep == 0.2
    assert LiteGenotype.from_str(genotype.to_str()) == genotype == LiteGenotype.from_json(genotype.to_json())
    # the released decode ranks edges by the conv op alone and fixes T = 5 (here capped at T_max = 4)
    released = decode(alphas, betas, psi, (1, 2, 4), 0.2, steps, released=True)
    assert released.nodes[0] == ((0, "skip_connect"), (1, "snn_b3"))  # only two inputs: both kept
    assert released.nodes[2] == ((0, "snn_b3"), (1, "snn_b3"))  # the strong skip from node 1 is dropped
    assert released.timesteps == 4


@pytest.mark.parametrize("text", ["lite:1b0x/b24/k0.2/T5", "lite:5b0s/b2/k0.2/T5", "lite:1b1s/b2/k0.2/T5",
                                  "lite:1b0s/b9/k0.2/T5", "conv3x3"])
def test_bad_genotype_strings_are_refused(text):
    with pytest.raises(LiteGenotypeError):
        LiteGenotype.from_str(text)


def test_cost_terms_of_one_conv_by_hand():
    conv = CompConv(2, 3, 3, 1, 1, bits=(1, 2, 4), keep=0.5)  # 54 weights, 27 kept
    beta = torch.tensor([0.2, 0.3, 0.5], requires_grad=True)
    expected_bits = 0.2 * 1 + 0.3 * 2 + 0.5 * 4  # 2.8
    size = conv.size_bits(beta)
    assert size.item() == pytest.approx(27 * expected_bits)
    x = torch.zeros(1, 2, 4, 4)
    x[0, 0, :2] = 1.0  # 8 spikes of 32 inputs: rate 1/4
    synops = conv.bit_synops(x, beta)
    assert synops.item() == pytest.approx(27 * 16 * 0.25 * expected_bits)
    # per sample: eight copies of the sample give the same figure (the released code multiplies by B)
    assert conv.bit_synops(x.repeat(8, 1, 1, 1), beta).item() == pytest.approx(synops.item())
    (size + synops).backward()
    assert torch.allclose(beta.grad, torch.tensor([1.0, 2.0, 4.0]) * (27 + 27 * 16 * 0.25))


def test_many_convs_quantised_and_masked_at_once_equal_each_on_its_own():
    """``effective_weights`` quantises and masks the stacked weights of all ops reading one input in one set of
    tensor ops (the search step is bound by op count on a GPU); each conv keeps its own std and top-k mask, and
    the values and straight-through gradients equal those of each conv done on its own."""
    torch.manual_seed(5)
    convs = [CompConv(3, 4, 3, 1, 1, bits=(1, 2, 4), keep=0.3) for _ in range(4)]
    with torch.no_grad():
        convs[2].weight.mul_(7.0)  # a spread of its own: one shared std would quantise it wrongly
    beta = torch.softmax(torch.randn(3), 0).requires_grad_()
    alone = torch.stack([sum(beta[i] * quantize(c.weight, b) for i, b in enumerate(c.bits))
                         * top_k_mask(c.popup_scores, c.keep) for c in convs])
    together = effective_weights(convs, beta)
    assert torch.equal(together, alone)
    assert [int((w != 0).sum()) for w in together] == [kept_count(108, 0.3)] * 4
    parameters = [beta] + [c.weight for c in convs] + [c.popup_scores for c in convs]
    for a, b in zip(torch.autograd.grad((alone ** 2).sum(), parameters),
                    torch.autograd.grad((together ** 2).sum(), parameters)):
        assert torch.allclose(a, b)
    assert torch.equal(convs[1].effective_weight(beta), together[1])


def test_lite_lif_is_the_released_neuron():
    lif = make_lite_lif(step_mode="m")
    inputs = torch.tensor([0.3, 0.3, 0.6, 0.1, 0.45]).view(5, 1)
    spikes = lif(inputs).flatten().tolist()
    # u: 0.3, 0.2*0.3+0.3 = 0.36, 0.2*0.36+0.6 = 0.672 (spike, reset), 0.1, 0.2*0.1+0.45 = 0.47
    assert spikes == [0.0, 0.0, 1.0, 0.0, 0.0]
    assert lif.v.item() == pytest.approx(0.47)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_fused_lite_lif_equals_spikingjellys_reference_neuron(dtype):
    """LitE-SNN's LIF runs a whole sequence as one autograd node; spikingjelly's own LIF with the same surrogate
    (its Torch reference loop) gives the same spikes and voltages bit for bit and the same gradients, through
    the spikes, the reset and the final voltage, also over two calls that carry the membrane."""
    from spikingjelly.activation_based import neuron

    from lightsnn.space.neurons import TanhSurrogate

    torch.manual_seed(2)
    x = (torch.rand(6, 4, 3, 5, 5) * 1.4 - 0.3).to(dtype).requires_grad_()
    reference = neuron.LIFNode(tau=1.25, decay_input=False, v_threshold=0.5, v_reset=0.0,
                               surrogate_function=TanhSurrogate(3.0), detach_reset=False, step_mode="m")
    fused = make_lite_lif()
    weights = torch.randn(6, 4, 3, 5, 5).to(dtype)
    grads, outputs = [], []
    for lif in (reference, fused):
        first, second = lif(x[:4]), lif(x[4:] * 2)  # the membrane carries over between the calls
        outputs.append((first, second, lif.v))
        loss = (first * weights[:4]).sum() + (second * weights[4:]).sum() + (lif.v.float() ** 2).sum()
        grads.append(torch.autograd.grad(loss, x)[0])
    assert all(torch.equal(a, b) for a, b in zip(*outputs))
    assert outputs[1][0].sum() > 0 and (outputs[1][0] == 0).sum() > 0  # some fired, some did not
    assert torch.allclose(grads[0].float(), grads[1].float(), atol=1e-5 if dtype == torch.float32 else 0.05)
    assert grads[1].abs().sum() > 0


def test_networks_run_on_static_and_event_input_and_supernet_gradients_reach_every_search_parameter():
    config = LiteNetConfig(in_channels=2, image_size=8, num_classes=5, timesteps=3, filter_multiplier=2, steps=2,
                           level_path=[0, 0, 1])
    net = LiteSearchNet(config, keep=0.5)
    for x in (torch.rand(4, 2, 8, 8), (torch.rand(3, 4, 2, 8, 8) > 0.7).float()):
        reset_state(net)
        logits = net(x)
        assert logits.shape == (3, 4, 5)
        assert net.last_costs["bit_synops"].shape == (3,)
    loss = lite_loss(logits, torch.tensor([0, 1, 2, 3]), torch.softmax(net.psi, 0), net.last_costs["model_size_bits"],
                     net.last_costs["bit_synops"], 1e-6, 1e-6)["loss"]
    loss.backward()
    for name, group in net.architecture_parameters().items():
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in group), name
    genotype = LiteGenotype((((0, "snn_b3"), (1, "skip_connect")), ((1, "snn_b3"), (2, "skip_connect"))), (1, 2, 4),
                            0.5, 3)
    retrain = LiteNet(LiteNetConfig(in_channels=2, image_size=8, num_classes=5, timesteps=3, filter_multiplier=2,
                                    steps=2, level_path=[0, 0, 1], stem_bits=4, head_bits=4), genotype)
    reset_state(retrain)
    assert retrain(torch.rand(4, 2, 8, 8)).shape == (4, 5)
    with pytest.raises(LiteGenotypeError, match="bits for 3 cells"):
        LiteNet(LiteNetConfig(in_channels=2, image_size=8, num_classes=5, steps=2), genotype)


TINY = {"filter_multiplier": 2, "steps": 2, "level_path": [0, 0, 1, 1], "max_timesteps": 3, "epochs": 3,
        "warmup_epochs": 1, "batch_size": 32, "max_batches": 3, "lr": 0.1, "keep": 0.5,
        "retrain_filter_multiplier": 2, "psi_lr": 2.0}


def test_a_tiny_search_moves_the_architecture_decodes_and_trains_and_evaluates(tmp_path):
    from lightsnn.pipeline.jobs import run_evaluate, run_search, run_train

    config = {"device": "cpu", "search": {"litesnn": TINY},
              "train": {"recipe": "quick", "epochs": 1, "batch_size": 64, "max_batches": 2},
              "evaluate": {"energy_samples": 16}}
    epochs = []
    result = run_search("litesnn", "digits", 0, config, progress=False, checkpoint=tmp_path / "search.ckpt.pt",
                        on_epoch=epochs.append)
    details = result["details"]
    assert result["family"] == "litesnn" and len(details["curves"]) == 3 == len(epochs)
    first, last = details["curves"][0], details["curves"][-1]
    assert first["psi"] == pytest.approx([1 / 3] * 3, abs=1e-3)  # psi rests during the warm-up epoch
    assert max(abs(a - b) for a, b in zip(first["psi"], last["psi"])) > 1e-4
    for key in ("alpha", "beta"):
        moved = torch.tensor(last[key]) - torch.tensor(first[key])
        assert moved.abs().max() > 1e-4, key
    genotype = LiteGenotype.from_json(result["genotype"]["json"])
    assert genotype.steps == 2 and len(genotype.bits) == 4 and 1 <= genotype.timesteps <= 3
    assert result["network"]["timesteps"] == genotype.timesteps and result["network"]["filter_multiplier"] == 2
    assert {"psi_T1", "bits_cell0", "loss", "arch_acc"} <= set(epochs[-1])
    assert not (tmp_path / "search.ckpt.pt").exists()  # a finished search leaves its result only
    json.dumps(result, allow_nan=False)

    trained = run_train("digits", 0, config, tmp_path / "train", search=result)
    assert trained["family"] == "litesnn" and trained["genotype"]["str"] == genotype.to_str()
    evaluated = run_evaluate(str(tmp_path / "train" / "checkpoint.pt"), config, energy_samples=16)
    assert evaluated["family"] == "litesnn"
    # stored size: kept conv weights at their searched bits, the rest fp32: far below the fp32 model
    assert 0 < evaluated["model_size_bytes"] < 0.5 * evaluated["bytes_fp32"]
    assert evaluated["kept_parameters"] < evaluated["parameters"]
    assert evaluated["bit_synops_per_sample"] >= 0


def test_a_killed_search_resumes_and_ends_as_an_uninterrupted_one(tmp_path):
    from lightsnn.pipeline.jobs import run_search

    config = {"device": "cpu", "search": {"litesnn": TINY}}
    whole = run_search("litesnn", "digits", 3, config, progress=False, checkpoint=tmp_path / "a.ckpt.pt")

    class Killed(Exception):
        pass

    def kill_after_two(row):
        if row["epoch"] == 2:
            raise Killed

    with pytest.raises(Killed):
        run_search("litesnn", "digits", 3, config, progress=False, checkpoint=tmp_path / "b.ckpt.pt",
                   on_epoch=kill_after_two)
    assert (tmp_path / "b.ckpt.pt").exists()
    lines = []
    resumed = run_search("litesnn", "digits", 3, config, progress=False, checkpoint=tmp_path / "b.ckpt.pt",
                         log=lines.append)
    assert any("resuming the litesnn search" in line and "after epoch 2" in line for line in lines)
    assert resumed["genotype"]["str"] == whole["genotype"]["str"]
    assert resumed["details"]["final_alphas"] == whole["details"]["final_alphas"]
    assert [r["loss"] for r in resumed["details"]["curves"]] == [r["loss"] for r in whole["details"]["curves"]]
    # the total counts the killed attempt's epochs, as the compute and data seconds do (it was smaller before)
    times = resumed["times"]
    assert times["search_seconds"] >= times["compute_seconds"] + times["data_seconds"] > 0


def test_litesnn_options_refuse_bad_values():
    from lightsnn.pipeline.config import method_options

    for bad, message in (({"bit_widths": [1, 8]}, "bit_widths"), ({"warmup_epochs": 5, "epochs": 5}, "warmup_epochs"),
                         ({"level_path": [0, 2]}, "level_path"), ({"reference_compat": ["carry_state"]},
                                                                  "do not apply")):
        with pytest.raises(ValueError, match=message):
            method_options("litesnn", {"search": {"litesnn": bad}})
    with pytest.raises(ValueError, match="warmup_epochs"):  # checked again once the preset fills epochs in
        method_options("litesnn", {"search": {"litesnn": {"warmup_epochs": 20}}}, dataset="digits")


def test_null_sizes_come_from_the_dataset_preset():
    from lightsnn.pipeline.config import method_options, net_config

    digits = method_options("litesnn", {}, dataset="digits")
    cifar = method_options("litesnn", {"search": {"litesnn": {"epochs": 7}}}, dataset="cifar10")
    assert (digits.filter_multiplier, digits.keep, digits.epochs, digits.level_path) == (4, 0.5, 8, [0, 1, 2])
    assert (cifar.filter_multiplier, cifar.keep, cifar.epochs, cifar.max_timesteps) == (12, 0.2, 7, 6)
    network = net_config("cifar100", {}, method_options("litesnn", {}, dataset="cifar100"))
    assert (network.num_classes, network.timesteps, network.stem_channels) == (100, 6, 48)
