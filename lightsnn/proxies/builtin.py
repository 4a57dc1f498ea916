"""The built-in proxies, registered in the order every table lists them: the kernel family (SAHD and its
variants), the activity scores, the saliencies and the counts. The computations live in
:mod:`lightsnn.proxies.sahd` and :mod:`lightsnn.proxies.measures`; the kernels and saliencies are scored through
the engine's shared passes (:mod:`lightsnn.proxies.engine`)."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn

from lightsnn.proxies import measures
from lightsnn.proxies.registry import ScoreFn, register
from lightsnn.space.genotype import Genotype
from lightsnn.space.network import count_parameters
from lightsnn.space.neurons import counting_spikes, sequences
from lightsnn.space.ops import OPS, OpSpec


def _alone(name: str) -> ScoreFn:
    """The score function of a proxy that the engine computes in a shared pass (kernel, saliency): the same
    pass with this one proxy."""
    def score(net, genotype, batches, labels=None) -> float:
        from lightsnn.proxies.engine import score_proxies  # at call time: the engine imports the registry

        return score_proxies(net, genotype, batches, [name], labels=labels)[name]
    return score


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
