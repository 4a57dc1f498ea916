"""The one spiking neuron of the SNASNet family, built from spikingjelly 2.x.

Every LIF in lightsnn comes from :func:`make_lif`, so the SAHD score, SAR and
state resets can find them all by type (:data:`SPIKING_TYPES`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn
from spikingjelly.activation_based import functional, neuron, surrogate

#: Module types whose outputs are spikes; hooks for SAHD and SAR attach to these.
SPIKING_TYPES: tuple[type, ...] = (neuron.BaseNode,)


@dataclass(frozen=True)
class LIFConfig:
    """LIF parameters of SNASNet/LightSNN (spec 1.1): tau 4/3, V_th 1, hard reset to 0."""

    tau: float = 4.0 / 3.0
    v_threshold: float = 1.0
    v_reset: float = 0.0
    detach_reset: bool = True

    def replace(self, **changes: float) -> "LIFConfig":
        values = {**self.__dict__, **changes}
        return LIFConfig(**values)


def make_lif(config: LIFConfig = LIFConfig()) -> nn.Module:
    """A single-step spikingjelly LIF with the ATan surrogate (alpha 2)."""
    if config.tau <= 1.0:
        raise ValueError(f"LIF tau must be > 1 (got {config.tau}); spikingjelly's decay is 1/tau")
    return neuron.LIFNode(
        tau=config.tau,
        decay_input=True,
        v_threshold=config.v_threshold,
        v_reset=config.v_reset,
        surrogate_function=surrogate.ATan(),
        detach_reset=config.detach_reset,
        step_mode="s",
    )


def reset_state(net: nn.Module) -> None:
    """Reset every neuron's membrane (and SJ dropout masks): call before each sample sequence."""
    functional.reset_net(net)


def spiking_modules(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, SPIKING_TYPES)]
