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
    from lightsnn.space.network import NetConfig
    from lightsnn.space.spaces import SearchSpace


class TabularBenchmark(Protocol):
    """What the studies ask of a tabular benchmark (SpikeNAS-Bench is one), and all they may ask: no study reads a
    reader's own arrays. Per-architecture arrays take the ids they are for; a benchmark may hold only part of its
    space (``coverage`` says how much)."""

    name: str
    preset: str  # lightsnn.space.network.PRESETS key of the network it trained (see network())
    space_name: str  # lightsnn.space.ops.SPACES key of its op space (what a search on it is given)
    space: SearchSpace  # its ops and cell type
    space_size: int  # ids in the space (the table may hold fewer)
    pooling: str  # the macro network's resdown pooling it trained with
    dataset: str  # the dataset it trained on (a lightsnn.data.DATASETS name), named by its folder
    fields: frozenset  # what it records per architecture: test_acc, params, val_curve, cost_per_epoch, ...
    table: pd.DataFrame  # one row per id it holds, indexed by id: id, valid, params, test_acc, epochs, seconds

    @property
    def coverage(self) -> str: ...  # e.g. "276 of the space's 15,625 architectures"

    def network(self, width: int | None = None) -> NetConfig: ...  # the network it trained, at C = width

    def require(self, field: str, study: str) -> None: ...  # one line naming the field when it lacks it

    def genotype(self, arch_id: int) -> Genotype: ...

    def id_of(self, genotype: Genotype) -> int: ...

    def valid_ids(self) -> np.ndarray: ...

    def val_curves(self, ids) -> np.ndarray: ...  # [len(ids), epochs] validation accuracy per epoch

    def val_acc_at(self, epochs: int) -> np.ndarray: ...  # by id over the space, after ``epochs`` epochs

    def hours_per_epoch(self, ids) -> np.ndarray: ...  # GPU-hours of one training epoch of each id

    def trained_costs(self) -> pd.DataFrame: ...  # by id: synops, macs, energy_pj, firing_rate after training

    def percentile(self, test_acc: float) -> float: ...  # share (%) of valid ids at most this accurate


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    description: str
    default_root: str  # where the released files are expected, relative to the project root
    module: str  # the module of lightsnn.nasbench that reads it, imported when it is opened
    reader: str  # the class in it: ``reader.open(root, cache_dir, dataset)`` gives a TabularBenchmark
    datasets: tuple[str, ...] = ("cifar10",)  # the datasets it holds logs of (the first is the default)

    def open(self, root: str | None = None, cache_dir=None, dataset: str | None = None) -> TabularBenchmark:
        """The benchmark of ``dataset`` read from ``root`` (default: :attr:`default_root`); its reader is
        imported only now."""
        import importlib

        if dataset is not None and dataset not in self.datasets:
            raise ValueError(f"benchmark {self.name!r} has no dataset {dataset!r}; it has {', '.join(self.datasets)}")
        reader = getattr(importlib.import_module(f"{__name__}.{self.module}"), self.reader)
        return reader.open(root or self.default_root, cache_dir, dataset or self.datasets[0])


BENCHMARKS: dict[str, BenchmarkSpec] = {
    s.name: s
    for s in [
        BenchmarkSpec("spikenas-bench", "SpikeNAS-Bench (Sun et al., IEEE TAI 2025): 15,625 SNASNet-style forward "
                      "cells trained on CIFAR-10 for 100-200 epochs (and 276 of them on CIFAR-100)",
                      "data/spikenas-bench", "spikenas_bench", "SpikeNASBench", ("cifar10", "cifar100")),
    ]
}
BENCHMARK_NAMES = tuple(BENCHMARKS)


def open_benchmark(name: str, root: str | None = None, cache_dir=None, dataset: str | None = None) -> TabularBenchmark:
    """The benchmark ``name`` of ``dataset`` (default: its first) read from ``root`` (default: its spec's folder);
    one-line errors otherwise."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARK_NAMES)}")
    return BENCHMARKS[name].open(root, cache_dir, dataset)
