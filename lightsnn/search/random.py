"""The control every NAS comparison needs: a uniformly random valid architecture, no scoring."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lightsnn.core.options import opt
from lightsnn.search.method_options import BaseOptions
from lightsnn.search.protocol import Method, SearchContext, SearchRecord, SearchResult, timed
from lightsnn.space.genotype import Genotype


@dataclass(frozen=True)
class RandomOptions(BaseOptions):
    section: ClassVar[str] = "search.random"
    separate_cells: bool = opt(False, "draw cell1 and cell2 independently instead of one shared cell")


@timed
def run_random(options: RandomOptions, ctx: SearchContext) -> SearchResult:
    space, rng = options.search_space(), np.random.default_rng(ctx.seed)
    cells = [space.sample_uniform(rng) for _ in range(2 if options.separate_cells else 1)]
    return SearchResult(Genotype(tuple(cells)), None, SearchRecord(), ctx.net_config)


METHOD = Method("random", "control: a uniformly random valid architecture, no scoring", RandomOptions, run_random,
                position=90)
