"""The contract between the search registry and a method: what a search is given (:class:`SearchContext`),
what it records and returns, and the registry entry (:class:`Method`) a method module declares."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
from tqdm.auto import tqdm

from lightsnn.data import Splits
from lightsnn.search.method_options import MethodOptions
from lightsnn.space.genotype import Genotype
from lightsnn.space.network import NetConfig

if TYPE_CHECKING:
    from lightsnn.search.batches import SearchBatches
    from lightsnn.search.method_options import ScoringOptions


@dataclass
class SearchContext:
    net_config: NetConfig  # or the method family's own config (LiteNetConfig)
    splits: Splits
    device: torch.device
    seed: int
    progress: bool | None = None  # None: a bar only on a terminal
    checkpoint: Path | None = None  # where a long (epoch-based) search checkpoints; None: it does not
    on_epoch: Callable[[dict], None] | None = None  # an epoch-based search reports each finished epoch
    log: Callable[[str], None] = print
    dataset: str | None = None  # the dataset's name (a search that trains its candidates takes its loss from it)

    def batches(self, options: ScoringOptions) -> SearchBatches:
        from lightsnn.search.batches import DatasetSearchBatches
        return DatasetSearchBatches(self.splits.train, options.batch_size, options.repeat, self.device,
                                    seed=self.seed, fresh="fresh_batches" in options.compat(),
                                    events=self.splits.events)

    def bar(self, total: int, desc: str):
        return tqdm(total=total, desc=desc, disable=None if self.progress is None else not self.progress,
                    leave=False, dynamic_ncols=True)


@dataclass
class SearchRecord:
    candidates: list[dict] = field(default_factory=list)
    num_scorings: int = 0
    compute_seconds: float = 0.0
    data_seconds: float = 0.0
    total_seconds: float = 0.0
    #: Seconds earlier attempts of a resumed search spent up to their last checkpoint (counted in the total,
    #: as their compute and data seconds are).
    resumed_seconds: float = 0.0
    nonfinite_scores: int = 0
    details: dict = field(default_factory=dict)

    def add(self, score: float, **fields) -> None:
        """One scoring; non-finite scores are kept as strings ("nan", "-inf") so the JSON stays valid."""
        self.num_scorings += 1
        if not math.isfinite(score):
            self.nonfinite_scores += 1
        self.candidates.append({**fields, "score": score if math.isfinite(score) else str(score)})


@dataclass
class SearchResult:
    genotype: Genotype
    score: float | None
    record: SearchRecord
    net_config: NetConfig


def timed(run: Callable[..., SearchResult]) -> Callable[..., SearchResult]:
    def wrapper(options, context: SearchContext) -> SearchResult:
        start = time.perf_counter()
        result = run(options, context)
        result.record.total_seconds = time.perf_counter() - start + result.record.resumed_seconds
        return result
    wrapper.__name__ = run.__name__
    wrapper.__doc__ = run.__doc__
    return wrapper


@dataclass(frozen=True)
class Method:
    """A search method, as its module declares it (``METHOD = Method(...)``); the registry collects them."""

    name: str
    description: str
    options: type[MethodOptions]
    run: Callable[[MethodOptions, SearchContext], SearchResult]
    position: int  # where it is listed (CLI, schema, docs): the papers' methods first, the control last

    @property
    def family(self) -> str:
        """The architecture family it finds, a key of :data:`lightsnn.space.families.FAMILIES`."""
        return self.options.family
