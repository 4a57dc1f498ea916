"""Pooling layers that run channels-last on the CPU when no gradient is recorded (scoring, evaluation).

PyTorch's CPU pooling kernels are several times faster on channels-last tensors (measured on the 2-core VM:
3x3 stride-1 max pool of [32, 32, 32, 32] 35 -> 5 ms, average pool 10 -> 3 ms, conversions included) and give
the same values bit for bit (tests/test_ops.py); the output is returned contiguous, as the plain pool returns it.
Training keeps the plain kernels: there the change measured no gain (a training step of a C=32 network with
three average-pool edges, batch 64: 0.98-1.06 s either way), and a channels-last gradient would send the layers
below down other kernels and change training's rounding. Other devices run the plain kernel.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class _ChannelsLastWithoutGrad:
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled() and x.device.type == "cpu" and x.dim() == 4 and x.is_contiguous():
            return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()
        return super().forward(x)


class AvgPool2d(_ChannelsLastWithoutGrad, nn.AvgPool2d):
    """``nn.AvgPool2d``, channels-last on the CPU without autograd."""


class MaxPool2d(_ChannelsLastWithoutGrad, nn.MaxPool2d):
    """``nn.MaxPool2d``, channels-last on the CPU without autograd."""
