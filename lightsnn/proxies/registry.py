"""Training-free proxies in a registry keyed by name, every one with the same call signature.

``proxy.score(net, genotype, batches)`` returns one float for a freshly initialised network: ``net`` is the
network to score (the discrete network of ``genotype``, or a supernet masked to a candidate), already in the
train or eval mode the caller's protocol asks for, and ``batches`` are the search batches (a count proxy ignores
them). ``genotype`` is read by the count proxies only; the others may be given None. Neuron state is reset
before every batch. A proxy with ``needs_labels`` (a loss gradient) is called
``score(net, genotype, batches, labels)`` with one label tensor per batch.

Every proxy has a kind (:data:`PROXY_KINDS`), declared where it is registered, which decides how it is computed
and what may use it. :func:`lightsnn.proxies.engine.score_proxies` is the one engine that computes them:
searches, the benchmark study and the offline study all call it. A study or a search names the proxy it uses; adding one is one registered
function (docs/extending.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn as nn

from lightsnn.proxies import measures
from lightsnn.space.genotype import Genotype
from lightsnn.space.network import count_parameters
from lightsnn.space.neurons import counting_spikes, sequences
from lightsnn.space.ops import OPS, OpSpec

ScoreFn = Callable[[nn.Module, Genotype, Sequence[torch.Tensor]], float]


#: What a proxy reads, which decides how the engine (:mod:`lightsnn.proxies.engine`) computes it and what may use it.
PROXY_KINDS: dict[str, str] = {
    "kernel": "log|det K| of a kernel of the samples' spike codes: the kernel proxies share each batch's forward "
              "pass, and a search can score stacked candidates of a supernet with one",
    "activity": "reads the network's activity, outputs or input gradients in passes of its own",
    "saliency": "reduces (weight, loss gradient) pairs: the saliencies share each batch's loss gradients",
    "count": "counts the architecture or the network: no data, no forward pass (a search cannot rank by one: a "
             "masked supernet holds every op's weights)",
}


@dataclass(frozen=True)
class Proxy:
    name: str
    definition: str  # one line: what is computed
    score: ScoreFn
    kind: str = "activity"  # a key of PROXY_KINDS
    kernel: tuple[bool, str] | None = None  # a kernel proxy's (sparsity_aware, normalize)
    needs_labels: bool = False
    saliency: Callable | None = None  # a saliency's (weight, gradient) pairs -> score

    @property
    def needs_data(self) -> bool:
        return self.kind != "count"


PROXIES: dict[str, Proxy] = {}


def register(name: str, definition: str, kind: str = "activity", kernel: tuple[bool, str] | None = None,
             needs_labels: bool = False, saliency: Callable | None = None):
    """Decorator: add a score function to :data:`PROXIES` under ``name``, of ``kind`` (:data:`PROXY_KINDS`); a
    kernel proxy gives its ``kernel``, a saliency its reduction ``saliency``."""
    def add(fn: ScoreFn) -> ScoreFn:
        if name in PROXIES:
            raise ValueError(f"proxy {name!r} is registered twice")
        if "\n" in definition:
            raise ValueError(f"proxy {name!r}: the definition must be one line")
        if kind not in PROXY_KINDS:
            raise ValueError(f"proxy {name!r}: kind {kind!r} is not one of {list(PROXY_KINDS)}")
        if (kind == "kernel") != (kernel is not None) or (kind == "saliency") != (saliency is not None):
            raise ValueError(f"proxy {name!r}: a kernel proxy (only) gives kernel=, a saliency (only) saliency=")
        PROXIES[name] = Proxy(name, definition, fn, kind, kernel, needs_labels, saliency)
        return fn
    return add


def _alone(name: str) -> ScoreFn:
    """The score function of a proxy that the engine computes in a shared pass (kernel, saliency): the same
    pass with this one proxy."""
    def score(net, genotype, batches, labels=None) -> float:
        from lightsnn.proxies.engine import score_proxies

        return score_proxies(net, genotype, batches, [name], labels=labels)[name]
    return score


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


def _register_kernel(name: str, definition: str, sparsity_aware: bool, normalize: str) -> None:
    """A log|det K| proxy: scored alone, it is the engine's shared forward with this one kernel."""
    register(name, definition, kind="kernel", kernel=(sparsity_aware, normalize))(_alone(name))


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
    with counting_spikes(net) as count, sequences(net) as run:
        for batch in batches:
            run(batch)
    return count.rate


def _register_network_score(name: str, definition: str,
                            compute: Callable[[nn.Module, Sequence[torch.Tensor]], float]) -> None:
    """An activity proxy computed from the network and its batches alone (:mod:`lightsnn.proxies.measures`)."""
    register(name, definition)(lambda net, genotype, batches: compute(net, batches))


for _name, _definition, _compute, _reduce in (
    ("sahd_step", "mean over timesteps of log|det K_t|, K_t the SAHD kernel of the LIF calls of timestep t only",
     measures.sahd_per_step, None),
    ("membrane", "log|det K|, K the sum over LIF calls of the cosine similarity of the samples' charged membrane "
                 "potentials (before firing)", measures.membrane_kernel_score, None),
    ("patterns", "mean over LIF calls of the share of samples whose spike code is distinct (activation patterns)",
     measures.distinct_patterns, None),
    ("grad_norm", "sum over conv and linear layers of ||dCE/dW||_2, gradients through the LIFs' surrogate",
     None, measures.grad_norm_of),
    ("snip", "sum over conv and linear weights of |w * dCE/dw| (SNIP saliency), surrogate gradients",
     None, measures.snip_of),
    ("synflow", "log sum |w * dR/dw| over conv and linear weights, R the summed output of an all-ones input with "
                "every parameter made positive, BN at fresh statistics, float64, surrogate gradients",
     measures.synflow, None),
    ("jacob_cov", "-sum(log(v + 1e-5) + 1/(v + 1e-5)), v the eigenvalues of the correlation of the samples' input "
                  "Jacobians d(sum of outputs)/dx, surrogate gradients", measures.jacobian_covariance, None),
):
    if _reduce is None:
        _register_network_score(_name, _definition, _compute)
    else:  # scored alone through the shared-gradient path, as with its group
        register(_name, _definition, kind="saliency", needs_labels=True, saliency=_reduce)(_alone(_name))


@register("params", "number of parameters of the discrete network", kind="count")
def params(net, genotype, batches) -> float:
    return float(count_parameters(net))


@register("conv_edges", "number of conv edges (edges whose op has a LIF) in cell 1", kind="count")
def conv_edges(net, genotype, batches) -> float:
    return float(count_conv_edges(genotype))


def count_conv_edges(genotype: Genotype) -> int:
    return sum(OPS[OpSpec.parse(op).kind].has_lif for _, op in genotype.cell_for(0).ops)


def _discover() -> None:
    """Import every module of :mod:`lightsnn.proxies`: a proxy in a file of its own registers itself (its
    module imports :func:`register` from here), with no list to extend."""
    import importlib
    import pkgutil

    import lightsnn.proxies as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")


_discover()
