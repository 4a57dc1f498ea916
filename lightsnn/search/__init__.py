"""Search methods, in a registry keyed by name (the CLI and the workflow schema read it), and the scoring
protocol they share (options, reference-compat flags, the scoring loop, the search record).

May import: :mod:`lightsnn.core`, :mod:`lightsnn.data`, :mod:`lightsnn.space`, :mod:`lightsnn.proxies`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from lightsnn.search.common import COMPAT_FLAGS, MethodOptions, SearchContext, SearchResult
from lightsnn.search.lightsnn import LightSNNOptions, run_lightsnn
from lightsnn.search.litesnn import LiteSNNOptions, run_litesnn
from lightsnn.search.random import RandomOptions, run_random
from lightsnn.search.snasnet import SNASNetOptions, run_snasnet
from lightsnn.search.spikenas import SpikeNASOptions, run_spikenas


@dataclass(frozen=True)
class Method:
    name: str
    description: str
    options: type[MethodOptions]
    run: Callable[[MethodOptions, SearchContext], SearchResult]

    @property
    def family(self) -> str:
        """The architecture family it finds: ``snasnet`` (the SNASNet cell) or ``litesnn``."""
        return self.options.family


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("snasnet", "SNASNet: random sampling scored by SAHD (Kim et al., ECCV 2022)", SNASNetOptions,
               run_snasnet),
        Method("lightsnn", "LightSNN: pruning by importance over a supernet with SAHD (arXiv 2503.21846)",
               LightSNNOptions, run_lightsnn),
        Method("spikenas", "SpikeNAS: memory-aware per-cell search, reimplemented from the paper's "
                           "description (arXiv 2402.11322)", SpikeNASOptions, run_spikenas),
        Method("litesnn", "LitE-SNN: differentiable compressive search of cell, per-cell bits, pruning and "
                          "timesteps (IJCAI 2024)", LiteSNNOptions, run_litesnn),
        Method("random", "control: a uniformly random valid architecture, no scoring", RandomOptions, run_random),
    ]
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    return METHODS[name]


#: Methods that search the SNASNet cell (the evidence study and the NAS benchmark take only these).
SNASNET_METHODS = [name for name, m in METHODS.items() if m.family == "snasnet"]

__all__ = ["METHODS", "SNASNET_METHODS", "COMPAT_FLAGS", "Method", "SearchContext", "SearchResult", "get_method"]
