"""Training-free proxies in a registry keyed by name, every one with the same call signature.

``proxy.score(net, genotype, batches)`` returns one float for a freshly initialised network: ``net`` is the
discrete network of ``genotype``, already in the train or eval mode the caller's protocol asks for, and
``batches`` are the search batches (a proxy that needs no data ignores them). Neuron state is reset before
every batch. A proxy with ``needs_labels`` (a loss gradient) is called ``score(net, genotype, batches, labels)``
with one label tensor per batch. A study or a search names the proxy it uses; adding one is one decorated
function.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn

from lightsnn.proxies import candidates
from lightsnn.proxies.sahd import KernelSetScorer, SAHDScorer
from lightsnn.space.genotype import Genotype
from lightsnn.space.network import count_parameters
from lightsnn.space.neurons import reset_state
from lightsnn.space.ops import OPS, OpSpec

ScoreFn = Callable[[nn.Module, Genotype, Sequence[torch.Tensor]], float]


@dataclass(frozen=True)
class Proxy:
    name: str
    definition: str  # one line: what is computed
    score: ScoreFn
    needs_data: bool = True
    kernel: tuple[bool, str] | None = None  # (sparsity_aware, normalize) of a log|det K| proxy: shares forwards
    needs_labels: bool = False
    saliency: Callable | None = None  # (weight, gradient) pairs -> score: shares the loss gradients of a batch


PROXIES: dict[str, Proxy] = {}


def register(name: str, definition: str, needs_data: bool = True, kernel: tuple[bool, str] | None = None,
             needs_labels: bool = False, saliency: Callable | None = None):
    """Decorator: add a score function to :data:`PROXIES` under ``name``."""
    def add(fn: ScoreFn) -> ScoreFn:
        if name in PROXIES:
            raise ValueError(f"proxy {name!r} is registered twice")
        if "\n" in definition:
            raise ValueError(f"proxy {name!r}: the definition must be one line")
        PROXIES[name] = Proxy(name, definition, fn, needs_data, kernel, needs_labels, saliency)
        return fn
    return add


def score_proxies(net: nn.Module, genotype: Genotype, batches: Sequence[torch.Tensor], names: Sequence[str],
                  before_forward: Callable[[], None] | None = None,
                  labels: Sequence[torch.Tensor] | None = None) -> dict[str, float]:
    """Every proxy of ``names`` on one network; the kernel proxies (SAHD and its variants) share each batch's
    forward pass, so asking for three of them costs one forward instead of three, and the saliencies (grad_norm,
    snip) share each batch's loss gradients. ``before_forward`` runs before each group of forwards (e.g. to seed
    dropout the same way for every group); ``labels`` (one tensor per batch) feed the proxies that need them."""
    proxies = [get_proxy(n) for n in names]
    check_labels(proxies, batches, labels)
    out: dict[str, float] = {}
    kernels = [p for p in proxies if p.kernel is not None]
    if kernels:
        if before_forward is not None:
            before_forward()
        values = []
        with torch.inference_mode(), KernelSetScorer(net, [p.kernel for p in kernels]) as scorer:
            for batch in batches:
                reset_state(net)
                values.append(scorer.score_all(batch))
        reset_state(net)
        for index, proxy in enumerate(kernels):
            out[proxy.name] = float(np.mean([v[index] for v in values])) if values else math.nan
    saliencies = [p for p in proxies if p.saliency is not None]
    if saliencies:
        if before_forward is not None:
            before_forward()
        per_batch = []
        for batch, label in zip(batches, labels):
            pairs = candidates.weight_gradients(net, batch, label)
            per_batch.append([p.saliency(pairs) for p in saliencies])
        for index, proxy in enumerate(saliencies):
            out[proxy.name] = float(np.mean([v[index] for v in per_batch])) if per_batch else math.nan
    for proxy in proxies:
        if proxy.kernel is None and proxy.saliency is None:
            if before_forward is not None and proxy.needs_data:
                before_forward()
            args = (net, genotype, batches, labels) if proxy.needs_labels else (net, genotype, batches)
            out[proxy.name] = float(proxy.score(*args))
    return {n: out[n] for n in names}


def check_labels(proxies: Sequence[Proxy], batches: Sequence[torch.Tensor],
                 labels: Sequence[torch.Tensor] | None) -> None:
    """One-line error when a proxy needs labels and ``labels`` do not match the batches."""
    labelled = [p.name for p in proxies if p.needs_labels]
    if labelled and (labels is None or len(labels) != len(batches)):
        raise ValueError(f"proxies {labelled} need one label tensor per batch ({len(batches)} batches), got "
                         f"{'none' if labels is None else len(labels)}")


def get_proxy(name: str) -> Proxy:
    try:
        return PROXIES[name]
    except KeyError:
        raise ValueError(f"unknown proxy {name!r}; known: {', '.join(PROXIES)}") from None


@torch.inference_mode()
def _kernel_score(net: nn.Module, batches: Sequence[torch.Tensor], **scorer_options) -> float:
    """Mean over batches of log|det K|, the state reset before every batch and after the last."""
    values = []
    with SAHDScorer(net, **scorer_options) as scorer:
        for batch in batches:
            reset_state(net)
            values.append(scorer.score(batch))
    reset_state(net)
    return float(np.mean(values)) if values else math.nan


def _register_kernel(name: str, definition: str, sparsity_aware: bool, normalize: str) -> None:
    """A log|det K| proxy: one entry of the kernel family, scored alone or with its family in one forward."""
    def score(net, genotype, batches) -> float:
        return _kernel_score(net, batches, normalize=normalize, sparsity_aware=sparsity_aware)

    register(name, definition, kernel=(sparsity_aware, normalize))(score)


for _name, _definition, _aware, _normalize in (
    ("sahd", "log|det K|, K the plain sum over LIF calls of N - 0.5 dH / E[dH] (the paper's SAHD)", True, "none"),
    ("sahd_count", "SAHD with K divided by the number of LIF calls, as both released codes do", True, "count"),
    ("hamming", "log|det K|, K the plain sum of N - dH: Hamming distance without the sparsity term", False, "none"),
    ("sahd_layer", "SAHD with each LIF call's K divided by its neuron count N before summing (per-layer "
                   "normalisation: the largest layers do not dominate)", True, "layer"),
    ("hamming_layer", "plain Hamming kernel N - dH with each LIF call's K divided by its N before summing", False,
     "layer"),
):
    _register_kernel(_name, _definition, _aware, _normalize)


@register("fire_rate", "mean firing rate at initialisation: spikes / (neurons x timesteps x samples) over every "
                       "LIF call, as SAR")
@torch.inference_mode()
def fire_rate(net, genotype, batches) -> float:
    from lightsnn.space.neurons import spiking_modules

    spikes, steps = [0.0], [0]

    def hook(module, inputs, output):
        spikes[0] += float(output.detach().sum(dtype=torch.float64))
        steps[0] += output.numel()

    handles = [m.register_forward_hook(hook) for m in spiking_modules(net)]
    try:
        for batch in batches:
            reset_state(net)
            net(batch)
    finally:
        for h in handles:
            h.remove()
        reset_state(net)
    return spikes[0] / steps[0] if steps[0] else math.nan


def _register_network_score(name: str, definition: str, compute: Callable[[nn.Module, Sequence[torch.Tensor]], float],
                            needs_labels: bool = False, saliency: Callable | None = None) -> None:
    """A proxy computed from the network and its batches alone (:mod:`lightsnn.proxies.candidates`)."""
    register(name, definition, needs_labels=needs_labels, saliency=saliency)(
        lambda net, genotype, batches, *labels: compute(net, batches, *labels))


def _saliency(name: str) -> Callable:
    """A saliency scored alone: the shared-gradient path of :func:`score_proxies` with this one proxy."""
    return lambda net, batches, labels: score_proxies(net, None, batches, [name], labels=labels)[name]


for _name, _definition, _compute, _reduce in (
    ("sahd_step", "mean over timesteps of log|det K_t|, K_t the SAHD kernel of the LIF calls of timestep t only",
     candidates.sahd_per_step, None),
    ("membrane", "log|det K|, K the sum over LIF calls of the cosine similarity of the samples' charged membrane "
                 "potentials (before firing)", candidates.membrane_kernel_score, None),
    ("patterns", "mean over LIF calls of the share of samples whose spike code is distinct (activation patterns)",
     candidates.distinct_patterns, None),
    ("grad_norm", "sum over conv and linear layers of ||dCE/dW||_2, gradients through the LIFs' surrogate",
     None, candidates.grad_norm_of),
    ("snip", "sum over conv and linear weights of |w * dCE/dw| (SNIP saliency), surrogate gradients",
     None, candidates.snip_of),
    ("synflow", "log sum |w * dR/dw| over conv and linear weights, R the summed output of an all-ones input with "
                "every parameter made positive, BN at fresh statistics, float64, surrogate gradients",
     candidates.synflow, None),
    ("jacob_cov", "-sum(log(v + 1e-5) + 1/(v + 1e-5)), v the eigenvalues of the correlation of the samples' input "
                  "Jacobians d(sum of outputs)/dx, surrogate gradients", candidates.jacobian_covariance, None),
):
    if _reduce is None:
        _register_network_score(_name, _definition, _compute)
    else:  # scored alone through the shared-gradient path, as with its group
        _register_network_score(_name, _definition, _saliency(_name), needs_labels=True, saliency=_reduce)


@register("params", "number of parameters of the discrete network", needs_data=False)
def params(net, genotype, batches) -> float:
    return float(count_parameters(net))


@register("conv_edges", "number of conv edges (edges whose op has a LIF) in cell 1", needs_data=False)
def conv_edges(net, genotype, batches) -> float:
    return float(count_conv_edges(genotype))


def count_conv_edges(genotype: Genotype) -> int:
    return sum(OPS[OpSpec.parse(op).kind].has_lif for _, op in genotype.cell_for(0).ops)
