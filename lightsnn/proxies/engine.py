"""The one scoring engine: every proxy of every kind (:data:`~lightsnn.proxies.registry.PROXY_KINDS`) is
computed here, for one network or for stacked candidates of a masked supernet. The searches (through
:class:`lightsnn.search.scoring.Scorer`), the benchmark study and the offline study all call it.

How a kind is computed:
- kernel: one forward per batch through :class:`~lightsnn.proxies.sahd.KernelHooks` serves every kernel proxy
  asked for; a search's semantics (carried neuron state, the released codes' count normalisation, bf16) come
  from :class:`ScoringSetup`;
- saliency: one loss gradient per batch serves every saliency asked for;
- activity and count: each proxy's own function, in passes of its own.

Neuron state is reset by :func:`lightsnn.space.neurons.sequences`, never by hand here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn

from lightsnn.proxies import measures
from lightsnn.proxies.registry import Proxy, check_labels, get_proxy
from lightsnn.proxies.sahd import KernelHooks
from lightsnn.space.genotype import Genotype
from lightsnn.space.neurons import sequences


@dataclass(frozen=True)
class ScoringSetup:
    """How the kernel proxies are computed: the paper's way by default, or a released code's (methods.md §7)."""

    carry_state: bool = False  # neuron state carries from one batch and scoring to the next (§7.3, 7.12)
    count_normalize: bool = False  # a plain kernel sum is divided by the number of LIF calls (§7.2)
    bf16: bool = False  # forwards under bf16 autocast (K stays exact: see sahd_kernels)
    before_forward: Callable[[], None] | None = None  # runs before each group of forwards (e.g. to seed dropout)

    def variant(self, proxy: Proxy) -> tuple[bool, str]:
        aware, normalize = proxy.kernel
        return aware, "count" if self.count_normalize and normalize == "none" else normalize


PAPER = ScoringSetup()


def score_proxies(net: nn.Module, genotype: Genotype | None, batches: Sequence[torch.Tensor], names: Sequence[str],
                  labels: Sequence[torch.Tensor] | None = None, setup: ScoringSetup = PAPER,
                  before_forward: Callable[[], None] | None = None) -> dict[str, float]:
    """Every proxy of ``names`` on one network, each the mean over ``batches``: the kernel proxies share each
    batch's forward pass (three of them cost one forward), the saliencies each batch's loss gradients.
    ``labels`` (one tensor per batch) feed the proxies that need them; ``genotype`` the count proxies."""
    if before_forward is not None:
        setup = replace(setup, before_forward=before_forward)
    proxies = [get_proxy(n) for n in names]
    check_labels(proxies, batches, labels)
    out: dict[str, float] = {}
    kernels = [p for p in proxies if p.kind == "kernel"]
    if kernels:
        per_batch = _kernel_scores(net, batches, [setup.variant(p) for p in kernels], 1, setup)
        for index, proxy in enumerate(kernels):
            out[proxy.name] = float(np.mean([v[0][index] for v in per_batch])) if per_batch else math.nan
    saliencies = [p for p in proxies if p.kind == "saliency"]
    if saliencies:
        _before(setup)
        per_batch = []
        for batch, label in zip(batches, labels):
            pairs = measures.weight_gradients(net, batch, label)
            per_batch.append([p.saliency(pairs) for p in saliencies])
        for index, proxy in enumerate(saliencies):
            out[proxy.name] = float(np.mean([v[index] for v in per_batch])) if per_batch else math.nan
    for proxy in proxies:
        if proxy.kind in ("activity", "count"):
            if proxy.kind == "activity":
                _before(setup)
            args = (net, genotype, batches, labels) if proxy.needs_labels else (net, genotype, batches)
            out[proxy.name] = float(proxy.score(*args))
    return {n: out[n] for n in names}


def score_candidates(net: nn.Module, batches: Sequence[torch.Tensor], name: str, count: int,
                     setup: ScoringSetup = PAPER) -> list[float]:
    """Kernel proxy ``name`` of each of the ``count`` candidates a supernet holds (``set_candidate_logits``), in
    stacked forward passes: each batch is repeated once per candidate, and every candidate gets the score its
    own network would get (eval-mode BatchNorm is a fixed affine map, so candidate blocks never mix)."""
    proxy = get_proxy(name)
    if proxy.kind != "kernel":
        raise ValueError(f"proxy {name!r} is not a kernel proxy: it scores one candidate at a time")
    stacked = [b.repeat(1, count, 1, 1, 1) if b.dim() == 5 else b.repeat(count, 1, 1, 1) for b in batches]
    per_batch = _kernel_scores(net, stacked, [setup.variant(proxy)], count, setup)
    return [float(np.mean([v[c][0] for v in per_batch])) for c in range(count)]


@torch.inference_mode()  # cheaper than no_grad: spikingjelly's LIF step then skips its autograd bookkeeping
def _kernel_scores(net: nn.Module, batches: Sequence[torch.Tensor], variants: list[tuple[bool, str]],
                   candidates: int, setup: ScoringSetup) -> list[list[list[float]]]:
    """[batch][candidate][variant] log|det K| from one forward per batch."""
    _before(setup)
    values = []
    with KernelHooks(net, variants) as hooks, sequences(net, carry=setup.carry_state) as run:
        if candidates > 1:  # one candidate runs every module on all of its batch
            hooks.use_candidates()
        for batch in batches:
            with torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=setup.bf16):
                values.append(hooks.score(run, batch, candidates))
    return values


def _before(setup: ScoringSetup) -> None:
    if setup.before_forward is not None:
        setup.before_forward()
