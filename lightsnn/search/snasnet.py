"""SNASNet: random sampling of cells scored by SAHD at initialisation (methods.md §2.2)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from lightsnn.core.options import opt
from lightsnn.search.method_options import BN_MODES, ScoringOptions
from lightsnn.search.protocol import Method, SearchContext, SearchRecord, SearchResult, timed
from lightsnn.search.scoring import Scorer, best_index
from lightsnn.space.genotype import Genotype
from lightsnn.space.network import SuperNet


@dataclass(frozen=True)
class SNASNetOptions(ScoringOptions):
    section: ClassVar[str] = "search.snasnet"
    num_search: int = opt(5000, "number of accepted (valid) candidates to score", min=1)
    batch_size: int = opt(256, "search batch size (samples per SAHD kernel)", min=2)
    bn_mode: str = opt("train", "BatchNorm/Dropout mode while scoring (SNASNet never calls eval())",
                       BN_MODES)
    dedupe_cache: bool = opt(False, "score each distinct cell once and reuse its score; changes the method "
                                    "(duplicates get no fresh weights or batch)")
    compat_flags: ClassVar[tuple[str, ...]] = ("carry_state", "count_normalize", "fresh_batches")

    def planned_work(self, train_samples: int) -> tuple[str, int]:
        return "snasnet_search", self.num_search


@timed
def run_snasnet(options: SNASNetOptions, ctx: SearchContext) -> SearchResult:
    """Sample valid cells with SNASNet's sampler, score each at fresh initialisation, keep the best."""
    space = options.search_space()
    rng = np.random.default_rng(ctx.seed)
    torch.manual_seed(ctx.seed)
    record = SearchRecord()
    batches = ctx.batches(options)
    # One network on the device, masked to each candidate and re-initialised in place (methods.md §7.11).
    net = SuperNet(ctx.net_config, space, shared=True).to(ctx.device)
    scorer = Scorer(options, batches, record)
    scores: list[float] = []
    genotypes: list[Genotype] = []
    cache: dict[Genotype, float] = {}
    draws = 0
    with ctx.bar(options.num_search, "snasnet") as bar:
        for index in range(options.num_search):
            cell, n = space.sample_valid(rng)
            draws += n
            genotype = Genotype.shared(cell)
            if options.dedupe_cache and genotype in cache:
                score = cache[genotype]
            else:
                net.set_genotype(genotype)
                net.reinitialize()
                score = scorer(net)
                record.add(score, index=index, genotype=genotype.to_str())
                cache[genotype] = score
            scores.append(score)
            genotypes.append(genotype)
            bar.update()
    best = best_index(scores)
    record.details = {"draws": draws, "accepted": len(scores), "distinct_cells": len(set(genotypes))}
    return SearchResult(genotypes[best], scores[best], record, ctx.net_config)


METHOD = Method("snasnet", "SNASNet: random sampling scored by SAHD (Kim et al., ECCV 2022)", SNASNetOptions, run_snasnet,
                position=10)
