"""Pooling layers that run channels-last on the CPU when no gradient is recorded (scoring, evaluation).

PyTorch's CPU pooling kernels are several times faster on channels-last tensors (measured on the 2-core VM:
3x3 stride-1 max pool of [32, 32, 32, 32] 35 -> 5 ms, average pool 10 -> 3 ms, conversions included) and give
the same values bit for bit (tests/test_ops.py); the output is returned contiguous, as the plain pool returns it.
Training keeps the plain kernels: there the change measured no gain (a training step of a C=32 network with
three average-pool edges, batch 64: 0.98-1.06 s either way), and a channels-last gradient would send the layers
below down other kernels and change training's rounding. Other devices run the plain kernel.

A non-overlapping average pool (kernel = stride, no padding: the network's downsampling) keeps the plain
kernel: it makes one pass, and the two layout conversions cost more than they save on large tensors
([32, 64, 32, 32], 2x2: 3.1 ms plain against 9.1 ms channels-last, 5.2 ms of it the first conversion).
"""
from __future__ import annotations

import torch
import torch.nn as nn


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


class _ChannelsLastWithoutGrad:
    _plain_is_faster = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (not self._plain_is_faster and not torch.is_grad_enabled() and x.device.type == "cpu" and x.dim() == 4
                and x.is_contiguous()):
            return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()
        return super().forward(x)


class AvgPool2d(_ChannelsLastWithoutGrad, nn.AvgPool2d):
    """``nn.AvgPool2d``, channels-last on the CPU without autograd unless it does not overlap."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._plain_is_faster = _pair(self.kernel_size) == _pair(self.stride) and _pair(self.padding) == (0, 0)


class MaxPool2d(_ChannelsLastWithoutGrad, nn.MaxPool2d):
    """``nn.MaxPool2d``, channels-last on the CPU without autograd."""
