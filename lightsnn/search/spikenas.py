"""SpikeNAS, reimplemented from the paper's description (methods.md §4.2; no public code exists).

Reduced op set; each cell searched on its own (cell1 with cell2 = the same cell,
then cell2 with the chosen cell1); duplicate cells skipped; an analytical memory
model (parameters x weight bits) filters candidates over budget before scoring.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np
import torch

from lightsnn.core.options import opt
from lightsnn.search.method_options import ScoringOptions
from lightsnn.search.protocol import Method, SearchContext, SearchRecord, SearchResult, timed
from lightsnn.search.scoring import Scorer, best_index
from lightsnn.space.genotype import Genotype
from lightsnn.space.network import NetConfig, SNASNetwork, SuperNet, count_parameters
from lightsnn.space.ops import SPACES, OpSpec


@dataclass(frozen=True)
class SpikeNASOptions(ScoringOptions):
    section: ClassVar[str] = "search.spikenas"
    space: str | list[str] = opt("spikenas-ops", "op space: a named space (" + ", ".join(SPACES) + ") or a list of ops")
    candidates_per_cell: int = opt(100, "distinct in-budget candidates scored per cell", min=1)
    mem_budget_mb: float | None = opt(None, "weight-memory budget in MB (10^6 bytes); null: no budget")
    weight_bits: int = opt(32, "bits per weight in the memory model", (1, 2, 4, 8, 16, 32))
    compat_flags: ClassVar[tuple[str, ...]] = ("carry_state", "count_normalize", "fresh_batches")

    def planned_work(self, train_samples: int) -> tuple[str, int]:
        return "snasnet_search", 2 * self.candidates_per_cell  # one cell, then the other

    def check(self) -> None:
        super().check()
        if self.mem_budget_mb is not None and self.mem_budget_mb <= 0:
            raise ValueError(f"{self.section}.mem_budget_mb must be positive or null, got {self.mem_budget_mb}")


@lru_cache(maxsize=None)
def _op_parameters(op: str, channels: int, config: NetConfig) -> int:
    with torch.device("meta"):
        module = OpSpec.parse(op).build(channels, config.lif)
    return 0 if module is None else count_parameters(module)


@lru_cache(maxsize=None)
def _skeleton_parameters(config: NetConfig) -> int:
    with torch.device("meta"):
        return count_parameters(SNASNetwork(config, [{}, {}]))


def analytic_parameters(config: NetConfig, genotype: Genotype) -> int:
    """Parameters of the discrete network, counted without building it or running a forward pass."""
    total = _skeleton_parameters(config)
    for index, channels in enumerate((config.channels, 2 * config.channels)):
        total += sum(_op_parameters(op, channels, config) for _, op in genotype.cell_for(index).ops)
    return total


def memory_bytes(config: NetConfig, genotype: Genotype, weight_bits: int) -> float:
    return analytic_parameters(config, genotype) * weight_bits / 8


@timed
def run_spikenas(options: SpikeNASOptions, ctx: SearchContext) -> SearchResult:
    space = options.search_space()
    rng = np.random.default_rng(ctx.seed)
    torch.manual_seed(ctx.seed)
    record = SearchRecord()
    batches = ctx.batches(options)
    net = SuperNet(ctx.net_config, space, shared=False).to(ctx.device)
    scorer = Scorer(options, batches, record)
    budget = None if options.mem_budget_mb is None else float(options.mem_budget_mb) * 1e6
    chosen = []
    phases = []
    max_draws = 50 * options.candidates_per_cell + 1000
    with ctx.bar(2 * options.candidates_per_cell, "spikenas") as bar:
        for cell_index in (0, 1):
            seen = set()
            scores, genotypes = [], []
            filtered = duplicates = draws = 0
            while len(scores) < options.candidates_per_cell and draws < max_draws:
                cell, _ = space.sample_valid(rng)
                draws += 1
                if cell in seen:
                    duplicates += 1
                    continue
                seen.add(cell)
                genotype = Genotype((cell, cell)) if cell_index == 0 else Genotype((chosen[0], cell))
                memory = memory_bytes(ctx.net_config, genotype, options.weight_bits)
                if budget is not None and memory > budget:
                    filtered += 1
                    continue
                net.set_genotype(genotype)
                net.reinitialize()
                score = scorer(net)
                record.add(score, cell=cell_index, genotype=genotype.to_str(), memory_bytes=memory)
                scores.append(score)
                genotypes.append(genotype)
                bar.update()
            if not scores:
                raise RuntimeError(f"no cell{cell_index + 1} candidate fits the memory budget of "
                                   f"{options.mem_budget_mb} MB ({filtered} filtered)")
            best = best_index(scores)
            chosen.append(genotypes[best].cell_for(cell_index))
            phases.append({"cell": cell_index, "scored": len(scores), "filtered_by_memory": filtered,
                           "duplicates_skipped": duplicates, "exhausted": len(scores) < options.candidates_per_cell,
                           "best_score": scores[best]})
    genotype = Genotype(tuple(chosen))
    record.details = {"phases": phases,
                      "memory_bytes": memory_bytes(ctx.net_config, genotype, options.weight_bits),
                      "parameters": analytic_parameters(ctx.net_config, genotype)}
    return SearchResult(genotype, phases[1]["best_score"], record, ctx.net_config)


METHOD = Method("spikenas", ("SpikeNAS: memory-aware per-cell search, reimplemented from the paper's "
                          "description (arXiv 2402.11322)"), SpikeNASOptions, run_spikenas,
                position=30)
