"""FLOPs counted from a network's conv and linear calls: what ``bench`` measures against and ``plan`` costs by."""
from __future__ import annotations

from collections import Counter

import torch
import torch.nn as nn

from lightsnn.space.genotype import Genotype
from lightsnn.space.network import SNASNetwork
from lightsnn.space.neurons import run_sequence


class ConvRecorder:
    """Records FLOPs and conv input/weight shapes of every Conv2d/Linear call while active."""

    def __init__(self, net: nn.Module):
        self.flops = 0.0
        self.conv_shapes: Counter = Counter()
        self.handles = []
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                self.handles.append(m.register_forward_hook(self._conv))
            elif isinstance(m, nn.Linear):
                self.handles.append(m.register_forward_hook(self._linear))

    def _conv(self, m, inputs, out):
        x = inputs[0]
        self.flops += 2.0 * m.in_channels * m.kernel_size[0] * m.kernel_size[1] * out.shape[0] * out.shape[1] \
            * out.shape[2] * out.shape[3]
        self.conv_shapes[(tuple(x.shape), tuple(m.weight.shape), m.padding[0])] += 1

    def _linear(self, m, inputs, out):
        self.flops += 2.0 * m.in_features * m.out_features * inputs[0].shape[0]

    def close(self):
        for h in self.handles:
            h.remove()


#: A genotype that stands in for a search's pick when its training is costed (the bench suite trains it too).
TYPICAL = "0313 3031 1303 3310"


def forward_flops(netcfg, genotype: str = TYPICAL, events: bool = False) -> float:
    """FLOPs of one sample's forward pass (2 x MACs of every conv and linear call over the T timesteps), counted on
    the meta device: shapes only, so a paper-size network costs no compute. ``events``: the input is T frames and
    the stem runs at every timestep (a static image passes the stem once)."""
    with torch.device("meta"):
        net = SNASNetwork.from_genotype(netcfg, Genotype.from_str(genotype)).eval()
    record = ConvRecorder(net)
    shape = (1, netcfg.in_channels, netcfg.image_size, netcfg.image_size)
    with torch.no_grad():
        run_sequence(net, torch.zeros((netcfg.timesteps, *shape) if events else shape, device="meta"))
    record.close()
    return float(record.flops)
