from collections import Counter

import torch

from lightsnn.space.genotype import Genotype
from lightsnn.space.network import PRESETS, SNASNetwork
from lightsnn.studies.bench import BenchOptions, ConvRecorder, plain_conv_flops_per_second, run_bench


def test_flop_count_is_analytic_two_macs_per_conv_and_linear():
    cfg = PRESETS["digits"].with_overrides({"channels": 2, "classifier_width": 8, "num_cluster": 1, "timesteps": 1})
    net = SNASNetwork.from_genotype(cfg, Genotype.from_str("0003 0000 0000 0000")).eval()
    rec = ConvRecorder(net)
    with torch.no_grad():
        net(torch.zeros(3, 1, 8, 8))
    rec.close()
    c = 2
    macs = (1 * c * 9 * 64  # stem
            + c * c * 9 * 64  # cell1 conv3x3 on 8x8
            + c * 2 * c * 9 * 64  # downconv
            + 2 * c * 2 * c * 9 * 16  # cell2 conv3x3 on 4x4
            + 2 * c * 2 * 2 * 8 + 8 * 10)  # classifier
    assert rec.flops == 2 * macs * 3
    assert sum(rec.conv_shapes.values()) == 4


def test_bench_reports_the_search_conv_ratio():
    opts = BenchOptions(channels=2, image_size=8, timesteps=1, batch_size=4, repeat=1, snasnet_candidates=2,
                        train_batch_size=4, train_batches=1)
    figures = run_bench(opts, torch.device("cpu"), log=lambda _: None)
    assert figures["lightsnn"]["scorings"] == 60 and figures["snasnet"]["scorings"] == 2
    assert 0 < figures["search_conv_ratio"] == figures["lightsnn"]["flops_per_second"] / \
        figures["lightsnn"]["plain_conv_flops_per_second"]
    assert figures["training"]["samples_per_second"] > 0
    assert plain_conv_flops_per_second(Counter({((1, 1, 4, 4), (1, 1, 3, 3), 1): 1}), torch.device("cpu"),
                                       min_seconds=0.05) > 0
