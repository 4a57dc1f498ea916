"""The one spiking neuron of the SNASNet family, built from spikingjelly 2.x.

Every LIF in lightsnn comes from :func:`make_lif`, so the SAHD score, SAR and
state resets can find them all by type (:data:`SPIKING_TYPES`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from spikingjelly.activation_based import functional, neuron, surrogate

from lightsnn.core.options import opt

#: Module types whose outputs are spikes; hooks for SAHD and SAR attach to these.
SPIKING_TYPES: tuple[type, ...] = (neuron.BaseNode,)


@dataclass(frozen=True)
class LIFConfig:
    """LIF parameters of SNASNet/LightSNN (methods.md §1.1): tau 4/3, V_th 1, hard reset to 0."""

    tau: float = opt(4.0 / 3.0, "membrane time constant (> 1): v += (x - (v - v_reset)) / tau")
    v_threshold: float = opt(1.0, "firing threshold")
    v_reset: float = opt(0.0, "hard-reset potential after a spike")
    detach_reset: bool = opt(True, "no gradient through the reset (both codes)")

    def replace(self, **changes: float) -> "LIFConfig":
        values = {**self.__dict__, **changes}
        return LIFConfig(**values)


class LIFNode(neuron.LIFNode):
    """spikingjelly's LIF, with a lean CPU path for steps that record no gradient (scoring, evaluation).

    spikingjelly 2.0 runs a single CPU step through its multi-step kernel with T=1: about 14 passes over
    the tensor (casts, stacks, the reset as ``s*r + (1-s)*h``). Without autograd the same arithmetic
    ``h = v + (x - v) / tau``, ``s = h >= th``, ``v = h - h*s [+ s*v_reset]`` takes 5 passes, and gives
    the same spikes and voltages bit for bit (tested). With gradients, or off the CPU (where spikingjelly's
    fused kernels run), spikingjelly's own step runs.
    """

    def single_step_functional_forward(self, inputs, states, **kwargs):
        x, v = inputs[0], states[0]
        lean = (not torch.is_grad_enabled() and x.device.type == "cpu" and x.dtype == torch.float32
                and self.decay_input and self.v_reset is not None and isinstance(v, torch.Tensor)
                and v.dtype == torch.float32)
        if not lean:
            return super().single_step_functional_forward(inputs, states, **kwargs)
        h = torch.sub(x, v - self.v_reset if self.v_reset != 0.0 else v).div_(self.tau).add_(v)
        # comparisons written straight into float tensors: bool results and masks run far slower on the CPU
        spike = torch.ge(h, self.v_threshold, out=torch.empty_like(h))
        v = h.addcmul_(h, spike, value=-1.0)  # h - h*s: exactly h where silent, 0 where it fired
        if self.v_reset != 0.0:
            v.add_(spike, alpha=self.v_reset)
        return (spike,), (v, *states[1:])


def make_lif(config: LIFConfig = LIFConfig()) -> nn.Module:
    """A single-step spikingjelly LIF with the ATan surrogate (alpha 2)."""
    if config.tau <= 1.0:
        raise ValueError(f"LIF tau must be > 1 (got {config.tau}); spikingjelly's decay is 1/tau")
    return LIFNode(
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
