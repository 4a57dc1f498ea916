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

from lightsnn.space.genotype import Genotype

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


def _discover() -> None:
    """Import every module of :mod:`lightsnn.proxies`: a proxy in a file of its own registers itself (its
    module imports :func:`register` from here), with no list to extend. The built-in proxies
    (:mod:`lightsnn.proxies.builtin`) come first, in the order they are listed there."""
    import importlib
    import pkgutil

    import lightsnn.proxies as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")


_discover()
