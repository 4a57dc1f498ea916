"""Tabular NAS benchmarks: architectures trained to convergence, read from their released files.

A benchmark maps its architecture ids to our :class:`~lightsnn.space.genotype.Genotype` (and back), names the
op space and network preset that rebuild its networks, and gives a table with one row per id: validity,
parameters, test accuracy, training time, and the validation curve (for early-stopping baselines). Nothing is
downloaded: a reader takes the folder the user points it at. Adding a benchmark is one module and one entry in
:data:`BENCHMARKS`.

May import: :mod:`lightsnn.core`, :mod:`lightsnn.space`, :mod:`lightsnn.search` (method names), numpy, pandas.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

BENCHMARK_NAMES = ("spikenas-bench",)


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    description: str
    default_root: str  # where the released files are expected, relative to the project root
    open: Callable  # (root, cache_dir | None) -> a benchmark object (see SpikeNASBench)


def _registry() -> dict[str, BenchmarkSpec]:
    from lightsnn.nasbench import spikenas

    return {"spikenas-bench": BenchmarkSpec(
        "spikenas-bench", "SpikeNAS-Bench (Sun et al., IEEE TAI 2025): 15,625 SNASNet-style forward cells "
        "trained on CIFAR-10 for 100-200 epochs", spikenas.DEFAULT_ROOT, spikenas.SpikeNASBench.open)}


def open_benchmark(name: str, root: str | None = None, cache_dir=None):
    """The benchmark ``name`` read from ``root`` (default: its spec's folder); one-line errors otherwise."""
    if name not in BENCHMARK_NAMES:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARK_NAMES)}")
    spec = _registry()[name]
    return spec.open(root or spec.default_root, cache_dir)
