"""The one spiking neuron of the SNASNet family, built from spikingjelly 2.x.

Every LIF in lightsnn comes from :func:`make_lif`, so the SAHD score, SAR and
state resets can find them all by type (:data:`SPIKING_TYPES`).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, ClassVar, Iterator

import torch
import torch.nn as nn
from spikingjelly.activation_based import functional, neuron, surrogate

from lightsnn.core.options import Options, opt

#: Module types whose outputs are spikes; hooks for SAHD and SAR attach to these.
SPIKING_TYPES: tuple[type, ...] = (neuron.BaseNode,)


@dataclass(frozen=True)
class LIFConfig(Options):
    """LIF parameters of SNASNet/LightSNN (methods.md §1.1): tau 4/3, V_th 1, hard reset to 0. Checked when
    built, so a config's ``network.lif`` is refused by the first command that reads it, not by a later one."""

    section: ClassVar[str] = "network.lif"

    tau: float = opt(4.0 / 3.0, "membrane time constant: v += (x - (v - v_reset)) / tau", above=1.0)
    v_threshold: float = opt(1.0, "firing threshold", above=0.0)
    v_reset: float = opt(0.0, "hard-reset potential after a spike")
    detach_reset: bool = opt(True, "no gradient through the reset (both codes)")

    def check(self) -> None:
        if not self.v_reset < self.v_threshold:
            raise ValueError(f"network.lif.v_reset must be below v_threshold ({self.v_threshold}), "
                             f"got {self.v_reset!r}")


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


def tanh_slope(x: torch.Tensor, b: float) -> torch.Tensor:
    """LitE-SNN's surrogate gradient at ``x = v - threshold``: ``(1 - tanh^2(b x)) b / (2 tanh(b/2))`` for
    ``|x| < 1/2``, else 0."""
    return (1 - torch.tanh(b * x) ** 2) * (b / (2 * math.tanh(b / 2))) * (x.abs() < 0.5)


class _TanhSpike(torch.autograd.Function):
    """Heaviside forward; LitE-SNN's tanh surrogate backward, non-zero only within half a unit of threshold."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, b: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.b = b
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad * tanh_slope(x, ctx.b), None


class TanhSurrogate(surrogate.SurrogateFunctionBase):
    """LitE-SNN's ``ActFun_changeable`` (methods.md §5.1): ``(1 - tanh^2(b x)) b / (2 tanh(b/2))`` for
    ``|x| < 1/2`` (x = v - threshold; the membrane between 0 and 1 at threshold 0.5), integrating to 1."""

    def __init__(self, b: float = 3.0, spiking: bool = True):
        super().__init__(spiking, b=b)

    @staticmethod
    def spiking_function(x, b):
        return _TanhSpike.apply(x, b)

    @staticmethod
    def primitive_function(x, b):
        return (torch.tanh(b * x.clamp(-0.5, 0.5)) / math.tanh(b / 2) + 1) / 2


class _LiteLIFSequence(torch.autograd.Function):
    """LitE-SNN's LIF over a whole ``[T, ...]`` sequence as one autograd node (hard reset to 0, gradient through
    the reset, tanh surrogate). Forward: spikingjelly's own arithmetic, ``h = v - v / tau + x``, ``s = h >= th``,
    ``v = h - h s``, so spikes and voltages equal its reference bit for bit. Backward, from ``t = T`` down:
    ``dh_t = ds_t sg_t + dv_t ((1 - s_t) - h_t sg_t)``, ``dx_t = dh_t``, ``dv_{t-1} = dh_t (1 - 1/tau)``."""

    @staticmethod
    def forward(ctx, x_seq: torch.Tensor, v: torch.Tensor, tau: float, threshold: float, b: float):
        spikes, charged = torch.empty_like(x_seq), torch.empty_like(x_seq)
        for x, h, spike in zip(x_seq.unbind(0), charged.unbind(0), spikes.unbind(0)):  # views: no copies
            torch.sub(v, v / tau, out=h).add_(x)
            torch.ge(h, threshold, out=spike)
            v = h - h * spike
        ctx.save_for_backward(charged, spikes)
        ctx.tau, ctx.threshold, ctx.b = tau, threshold, b
        return spikes, v

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor | None, grad_v: torch.Tensor | None):
        charged, spikes = ctx.saved_tensors
        slope = tanh_slope(charged - ctx.threshold, ctx.b)
        through_reset = (1 - spikes).sub_(charged * slope)  # dv_t / dh_t
        grad_x = torch.empty_like(charged)
        grad_v = torch.zeros_like(charged[0]) if grad_v is None else grad_v
        keep = 1 - 1 / ctx.tau
        steps = zip(grad_x.unbind(0), through_reset.unbind(0), slope.unbind(0),
                    grad_spikes.unbind(0) if grad_spikes is not None else [None] * len(charged))
        for dx, through, sg, ds in reversed(list(steps)):
            torch.mul(grad_v, through, out=dx)
            if ds is not None:
                dx.addcmul_(ds, sg)
            grad_v = dx * keep
        return grad_x, grad_v, None, None, None


class LiteLIFNode(LIFNode):
    """LitE-SNN's neuron: spikingjelly's LIF with the tanh surrogate (below), run over ``[T, ...]`` by
    :class:`_LiteLIFSequence` in multi-step mode. spikingjelly 2.0 fuses a multi-step LIF only for its built-in
    surrogates; with this one its Torch reference runs a Python loop that launches 68 ops forward and 108
    backward at T=6, and a paper-size LitE-SNN step launched tens of thousands of ops (bound by launches on a
    GPU). Here: 39 and 35. Spikes and voltages equal spikingjelly's, gradients to rounding
    (tested)."""

    def multi_step_forward(self, x_seq: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        v = self._memories["v"]
        v = v if isinstance(v, torch.Tensor) else torch.full_like(x_seq[0], float(v))
        spikes, v = _LiteLIFSequence.apply(x_seq, v, self.tau, self.v_threshold, self.surrogate_function.b)
        self._memories["v"] = v
        return spikes


def make_lite_lif(decay: float = 0.2, threshold: float = 0.5, b: float = 3.0, step_mode: str = "m") -> nn.Module:
    """LitE-SNN's neuron as a spikingjelly LIF: ``u = decay * u_prev * (1 - s_prev) + I``, spike at
    ``u >= threshold``, hard reset to 0 with gradient through the reset (methods.md §5.1).

    spikingjelly's ``decay_input=False`` charge ``H = V - V / tau + X`` is exactly that with ``tau = 1/(1 - decay)``.
    The released code fires at ``u > 0.5``; the two differ only where a membrane equals the threshold exactly.
    Multi-step by default (``[T, B, ...]`` in one call): LitE-SNN's networks are feed-forward in time.
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"LitE-SNN LIF decay must be in [0, 1), got {decay}")
    return LiteLIFNode(tau=1.0 / (1.0 - decay), decay_input=False, v_threshold=threshold, v_reset=0.0,
                       surrogate_function=TanhSurrogate(b), detach_reset=False, step_mode=step_mode)


def reset_state(net: nn.Module) -> None:
    """Reset every neuron's membrane (and SJ dropout masks). Code that runs a network goes through
    :func:`sequences`, the one place that decides when state is reset."""
    functional.reset_net(net)


@contextmanager
def sequences(net: nn.Module, carry: bool = False) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """Yield ``run(x)``, which runs ``net`` on one sample sequence from rest; the network is left at rest when
    the block ends, even on an error. ``carry=True`` keeps the state from one call (and block) to the next, as
    the released SNASNet/LightSNN codes do (methods.md §7.3)."""
    def run(x: torch.Tensor) -> torch.Tensor:
        if not carry:
            reset_state(net)
        return net(x)

    try:
        yield run
    finally:
        if not carry:
            reset_state(net)


def run_sequence(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` from rest, the network left at rest: one sample sequence on its own."""
    with sequences(net) as run:
        return run(x)


def spiking_modules(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, SPIKING_TYPES)]


class SpikeHooks:
    """The one way to observe a network's spikes: forward hooks on every spiking module for a ``with`` block.

    ``on_spikes(module, call, spikes)`` gets each call's output, ``call`` counting that module's calls since
    :meth:`restart` (the timestep, in single-step networks); ``pre(module, x)`` optionally sees each call's input
    current. Every score of spikes (SAHD and its kernels, firing rates, patterns, membranes) and the SAR read
    spikes through this class."""

    def __init__(self, net: nn.Module, on_spikes: Callable[[nn.Module, int, torch.Tensor], None],
                 pre: Callable[[nn.Module, torch.Tensor], None] | None = None):
        self.net, self.on_spikes, self.pre = net, on_spikes, pre
        self.calls: dict[int, int] = {}
        self._handles: list = []

    def __enter__(self) -> "SpikeHooks":
        modules = spiking_modules(self.net)
        if not modules:
            raise ValueError("the network has no spiking modules to observe")
        for m in modules:
            self._handles.append(m.register_forward_hook(self._hook))
            if self.pre is not None:
                self._handles.append(m.register_forward_pre_hook(lambda mod, args: self.pre(mod, args[0])))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    @property
    def active(self) -> bool:
        return bool(self._handles)

    def restart(self) -> None:
        """Count calls from zero again (before each sample sequence)."""
        self.calls = {}

    def _hook(self, module, inputs, output) -> None:
        call = self.calls.get(id(module), 0)
        self.calls[id(module)] = call + 1
        self.on_spikes(module, call, output)


@dataclass
class SpikeCount:
    """Spikes and neuron-steps (neurons x timesteps x samples) seen so far; ``rate`` is their ratio, the
    spiking activity rate (SAR, methods.md §3.4) or a fresh network's firing rate. The spikes are summed on
    the network's device in float64, so counting costs no host sync per layer."""

    total: torch.Tensor | None = None
    neuron_steps: int = 0

    @property
    def spikes(self) -> float:
        return 0.0 if self.total is None else float(self.total)

    @property
    def rate(self) -> float:
        return self.spikes / self.neuron_steps if self.neuron_steps else math.nan


@contextmanager
def counting_spikes(net: nn.Module) -> Iterator[SpikeCount]:
    """Count every spike ``net`` emits inside the block: the one firing-rate measure of the ``fire_rate`` proxy
    and of ``evaluate``'s SAR."""
    count = SpikeCount()

    def add(module, call, output):
        spikes = output.detach().sum(dtype=torch.float64)
        count.total = spikes if count.total is None else count.total + spikes
        count.neuron_steps += output.numel()  # B x neurons of this layer, for one timestep

    with SpikeHooks(net, add):
        yield count
