"""LitE-SNN's compressive convolution (methods.md §5.1): shared weights quantised at several bit widths, mixed by
learned precision weights, and pruned by learned importance scores.

* :func:`quantize`: the Gaussian-optimal uniform quantiser, step ``g_b * std(W)``, ``2^b`` levels at the odd
  multiples of half a step, straight-through gradient to ``W``.
* :func:`top_k_mask`: keeps the ``keep`` share of the weights with the largest ``|score|``; straight-through
  gradient to the scores (edge-popup).
* :class:`CompConv`: ``conv2d(x, M * sum_b beta_b Q_b(W))`` with the mixing weights ``beta`` given by the caller
  (one row per cell in the search, a single bit width after decoding). Its cost terms (model size, bit-SynOps)
  are differentiable in ``beta`` and are per sample, never times the batch size (methods.md §7.19).
"""
from __future__ import annotations

import contextlib
import functools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

#: Step of the optimal uniform quantiser of a unit Gaussian, per bit width (methods.md §5.1).
GAUSSIAN_STEPS: dict[int, float] = {1: 1.596, 2: 0.996, 3: 0.586, 4: 0.336}


def quantize(weight: torch.Tensor, bits: int | tuple[int, ...], stacked: bool = False) -> torch.Tensor:
    """``clamp((round(W/d + 1/2) - 1/2) d, +-(2^b/2 - 1/2) d)`` with ``d = g_b std(W)``; gradient straight to W.

    ``stacked``: the leading dimension indexes separate weight tensors, each quantised with its own std. A tuple
    of bit widths gives every width at once, ``[len(bits), *weight.shape]``. Both make one set of tensor ops of
    what would be one set per conv and width: LitE-SNN's step is bound by op count on a GPU."""
    widths = tuple(bits) if isinstance(bits, tuple) else (bits,)
    for b in widths:
        if b not in GAUSSIAN_STEPS:
            raise ValueError(f"bit width {b} has no quantiser step; allowed: {sorted(GAUSSIAN_STEPS)}")
    w = weight.detach()
    spread = w.flatten(1).std(1).view(-1, *[1] * (w.dim() - 1)) if stacked else w.std()
    gains, halves = _width_constants(widths, w.dim(), w.dtype, w.device)
    step = gains * spread.clamp_min(1e-12)
    top = halves * step
    levels = torch.minimum(torch.maximum((torch.round(w / step + 0.5) - 0.5) * step, -top), top)
    out = levels + (weight - w)  # exactly the levels forward, the identity backward
    return out if isinstance(bits, tuple) else out[0]


@functools.lru_cache(maxsize=64)
def _width_constants(widths: tuple[int, ...], dims: int, dtype: torch.dtype, device: torch.device):
    """Per bit width, ``g_b`` and ``2^b/2 - 1/2`` shaped to broadcast over ``[widths, *weight]``: made once per
    device, not copied to a GPU on every forward."""
    shape = (len(widths),) + (1,) * dims
    gains = torch.tensor([GAUSSIAN_STEPS[b] for b in widths], dtype=dtype, device=device).view(shape)
    halves = torch.tensor([2 ** b / 2 - 0.5 for b in widths], dtype=dtype, device=device).view(shape)
    return gains, halves


def kept_count(numel: int, keep: float) -> int:
    """Weights a top-k mask keeps: ``round(keep * numel)``, at least one."""
    return max(1, min(numel, int(round(keep * numel))))


def top_k_mask(scores: torch.Tensor, keep: float, stacked: bool = False) -> torch.Tensor:
    """1 for the :func:`kept_count` largest ``|scores|``, else 0; the gradient passes straight to ``scores``.
    ``stacked``: the leading dimension indexes separate score tensors, each masked on its own."""
    flat = scores.detach().abs().flatten(1 if stacked else 0)
    if not stacked:
        flat = flat.unsqueeze(0)
    mask = torch.zeros_like(flat).scatter_(1, flat.topk(kept_count(flat.shape[1], keep), dim=1).indices, 1.0)
    mask = mask.view_as(scores)
    return mask + (scores - scores.detach()) if scores.requires_grad else mask


def effective_weights(convs: "list[CompConv]", beta: torch.Tensor | None = None) -> torch.Tensor:
    """``M * sum_b beta_b Q_b(W)`` of every conv of ``convs`` (one shape, bit widths and keep ratio), stacked
    ``[len(convs), out, in, k, k]``: each conv keeps its own quantiser step and top-k mask, computed for all of
    them in one set of tensor ops."""
    first = convs[0]
    if any(c.weight.shape != first.weight.shape or c.bits != first.bits or c.keep != first.keep for c in convs):
        raise ValueError("effective_weights needs convs of one shape, bit widths and keep ratio")
    weight = torch.stack([c.weight for c in convs]) if len(convs) > 1 else first.weight.unsqueeze(0)
    if beta is None:
        if len(first.bits) != 1:
            raise ValueError(f"a conv with bit widths {first.bits} needs mixing weights beta")
        mixed = quantize(weight, first.bits[0], stacked=True)
    else:
        levels = quantize(weight, first.bits, stacked=True)  # [bits, convs, out, in, k, k]
        mixed = sum(b * q for b, q in zip(beta.unbind(0), levels.unbind(0)))  # one op each way, not a select a width
    if first.popup_scores is None:
        return mixed
    scores = torch.stack([c.popup_scores for c in convs]) if len(convs) > 1 else first.popup_scores.unsqueeze(0)
    return mixed * top_k_mask(scores, first.keep, stacked=True)


class CompConv(nn.Module):
    """A conv with quantised (several bit widths, mixed) and pruned weights; ``bits`` of length one after decode.

    ``keep=1`` has no pruning scores: every weight is kept (the retrained stem, quantised but not pruned).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, bits: tuple[int, ...] = (1, 2, 4), keep: float = 0.2):
        super().__init__()
        if not 0.0 < keep <= 1.0:
            raise ValueError(f"keep ratio must be in (0, 1], got {keep}")
        for b in bits:
            if b not in GAUSSIAN_STEPS:
                raise ValueError(f"bit width {b} has no quantiser step; allowed: {sorted(GAUSSIAN_STEPS)}")
        self.bits = tuple(int(b) for b in bits)
        self.keep = float(keep)
        self.stride, self.padding = stride, padding
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.popup_scores = nn.Parameter(torch.empty_like(self.weight)) if keep < 1.0 else None
        self.init_scores()

    @property
    def fan_in(self) -> int:
        return self.weight[0].numel()

    def init_scores(self) -> None:
        """Scores ``sqrt(6 / fan_in) * W / max|W|`` (the released code's): the first mask keeps the largest weights."""
        if self.popup_scores is not None:
            with torch.no_grad():
                w = self.weight
                self.popup_scores.copy_(math.sqrt(6.0 / self.fan_in) * w / w.abs().max().clamp_min(1e-12))

    def effective_weight(self, beta: torch.Tensor | None = None) -> torch.Tensor:
        """``M * sum_b beta_b Q_b(W)``; ``beta`` (softmax weights over ``bits``) may be None for one bit width."""
        return effective_weights([self], beta)[0]

    def forward(self, x: torch.Tensor, beta: torch.Tensor | None = None) -> torch.Tensor:
        weight = self._cached if self._cached is not None else self.effective_weight(beta)
        return F.conv2d(x, weight, None, self.stride, self.padding)

    _cached: torch.Tensor | None = None

    def cache(self, beta: torch.Tensor | None = None) -> torch.Tensor:
        """Compute the effective weight once for a whole forward pass (every timestep uses the same)."""
        self._cached = self.effective_weight(beta)
        return self._cached

    def uncache(self) -> None:
        self._cached = None

    def expected_bits(self, beta: torch.Tensor | None = None) -> torch.Tensor | float:
        """``sum_b b * beta_b``: the bit width a weight costs, differentiable in ``beta``."""
        if beta is None:
            return float(self.bits[0])
        return (beta * torch.as_tensor(self.bits, dtype=beta.dtype, device=beta.device)).sum()

    def kept(self) -> int:
        return self.weight.numel() if self.popup_scores is None else kept_count(self.weight.numel(), self.keep)

    def size_bits(self, beta: torch.Tensor | None = None):
        """Model size in bits: kept weights times their (expected) bit width."""
        return self.kept() * self.expected_bits(beta)

    def bit_synops(self, x: torch.Tensor, beta: torch.Tensor | None = None):
        """Per-sample bit-SynOps of one call: kept share x Cin Cout K^2 x H_out W_out x input firing rate x bits.

        The firing rate is the mean of ``x`` over the batch (a count, detached): the batch size never enters."""
        h_out = (x.shape[-2] + 2 * self.padding - self.weight.shape[-2]) // self.stride + 1
        w_out = (x.shape[-1] + 2 * self.padding - self.weight.shape[-1]) // self.stride + 1
        rate = x.detach().float().mean()
        return self.kept() * h_out * w_out * rate * self.expected_bits(beta)


class QuantLinear(nn.Linear):
    """A linear layer whose weights are quantised to ``bits`` (straight-through), not pruned: the retrained head."""

    def __init__(self, in_features: int, out_features: int, bits: int = 4, bias: bool = True):
        super().__init__(in_features, out_features, bias)
        if bits not in GAUSSIAN_STEPS:
            raise ValueError(f"bit width {bits} has no quantiser step; allowed: {sorted(GAUSSIAN_STEPS)}")
        self.bits = (int(bits),)
        self.keep = 1.0

    _cached: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self._cached if self._cached is not None else quantize(self.weight, self.bits[0])
        return F.linear(x, weight, self.bias)

    def cache(self, beta=None) -> torch.Tensor:
        self._cached = quantize(self.weight, self.bits[0])
        return self._cached

    def uncache(self) -> None:
        self._cached = None

    def kept(self) -> int:
        return self.weight.numel()


@contextlib.contextmanager
def weights_cached(net: nn.Module):
    """Quantise and mask every weight of ``net`` once for the forward pass inside (not once per timestep)."""
    modules = [m for m in net.modules() if isinstance(m, QUANTISED_TYPES)]
    try:
        for m in modules:
            m.cache()
        yield
    finally:
        for m in modules:
            m.uncache()


#: Modules whose weights are stored at ``bits[0]`` bits, ``kept()`` of them (the rest: fp32).
QUANTISED_TYPES = (CompConv, QuantLinear)
