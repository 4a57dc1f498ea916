"""Tabular NAS benchmarks: architectures trained to convergence, read from their released files.

A benchmark maps its architecture ids to our :class:`~lightsnn.space.genotype.Genotype` (and back), names the
op space and network preset that rebuild its networks, and gives a table with one row per id: validity,
parameters, test accuracy, training time, and the validation curve (for early-stopping baselines). Nothing is
downloaded: a reader takes the folder the user points it at. Adding a benchmark is one module (a reader that
satisfies :class:`TabularBenchmark`) and one entry in :data:`BENCHMARKS` (docs/extending.md).

May import: :mod:`lightsnn.core`, :mod:`lightsnn.space`, :mod:`lightsnn.search` (method names), numpy, pandas.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from lightsnn.space.genotype import Genotype
    from lightsnn.space.spaces import SearchSpace


class TabularBenchmark(Protocol):
    """What the benchmark study asks of a tabular benchmark (SpikeNAS-Bench is one): its space and network, its
    ids as genotypes and back, and a table of trained results."""

    name: str
    preset: str  # lightsnn.space.network.PRESETS key of the network it trained
    space_name: str  # lightsnn.space.ops.SPACES key of its op space (what a search on it is given)
    space: SearchSpace  # its ops and cell type
    pooling: str  # the macro network's resdown pooling it trained with
    dataset: str  # the dataset it trained on
    table: pd.DataFrame  # one row per id: id, valid, params, test_acc, epochs, seconds

    def genotype(self, arch_id: int) -> Genotype: ...

    def id_of(self, genotype: Genotype) -> int: ...

    def valid_ids(self) -> np.ndarray: ...

    def val_acc_at(self, epochs: int) -> np.ndarray: ...  # per id, after ``epochs`` epochs (early stopping)

    def percentile(self, test_acc: float) -> float: ...  # share (%) of valid ids at most this accurate


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    description: str
    default_root: str  # where the released files are expected, relative to the project root
    module: str  # the module of lightsnn.nasbench that reads it, imported when it is opened
    reader: str  # the class in it: ``reader.open(root, cache_dir)`` gives a TabularBenchmark

    def open(self, root: str | None = None, cache_dir=None) -> TabularBenchmark:
        """The benchmark read from ``root`` (default: :attr:`default_root`); its reader is imported only now."""
        import importlib

        reader = getattr(importlib.import_module(f"{__name__}.{self.module}"), self.reader)
        return reader.open(root or self.default_root, cache_dir)


BENCHMARKS: dict[str, BenchmarkSpec] = {
    s.name: s
    for s in [
        BenchmarkSpec("spikenas-bench", "SpikeNAS-Bench (Sun et al., IEEE TAI 2025): 15,625 SNASNet-style forward "
                      "cells trained on CIFAR-10 for 100-200 epochs", "data/spikenas-bench", "spikenas_bench",
                      "SpikeNASBench"),
    ]
}
BENCHMARK_NAMES = tuple(BENCHMARKS)


def open_benchmark(name: str, root: str | None = None, cache_dir=None) -> TabularBenchmark:
    """The benchmark ``name`` read from ``root`` (default: its spec's folder); one-line errors otherwise."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARK_NAMES)}")
    return BENCHMARKS[name].open(root, cache_dir)
