"""The ``benchmark`` config section: light to import (the CLI builds its flags from it)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from lightsnn.core.hashing import stable_hash
from lightsnn.core.options import Options, opt
from lightsnn.nasbench import BENCHMARK_NAMES, BENCHMARKS

#: Every dataset some benchmark holds logs of (each benchmark's own are checked against its spec).
BENCHMARK_DATASETS = tuple(dict.fromkeys(d for spec in BENCHMARKS.values() for d in spec.datasets))

SCORE_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class BenchmarkOptions(Options):
    """The config's ``benchmark`` section (``snakemake benchmark``, ``python -m lightsnn benchmark``)."""

    section: ClassVar[str] = "benchmark"
    name: str = opt("spikenas-bench", "tabular benchmark", BENCHMARK_NAMES)
    root: str | None = opt(None, "folder of the benchmark's released files (default data/<name>)")
    dataset: str = opt("cifar10", "the benchmark's dataset: which of its logs to read (SpikeNAS-Bench: CIFAR10/ or "
                       "CIFAR100/ under root)", BENCHMARK_DATASETS)
    images: str | None = opt(None, "dataset whose genuine test images the scores see (default: the benchmark's "
                             "dataset, its local '-subset' where one is registered)")
    sample: int = opt(200, "valid architectures scored, a seeded sample (0: all valid ones)", min=0)
    sample_seed: int = opt(0, "seed of the sample", min=0)
    exclude_seed: int | None = opt(None, "draw the sample from the valid ids outside the sample of this seed (same "
                                   "size): a test sample disjoint from a development sample", min=0)
    width: int = opt(16, "C of the scored networks (the benchmark trained C=128); see docs/evidence.md", min=1)
    weight_seeds: int = opt(2, "weight draws per architecture; a score is their mean", min=1)
    batch_size: int = opt(64, "images per scoring batch", min=2)
    batches: int = opt(2, "batches per score (their mean)", min=1)
    bn_mode: str = opt("train", "BatchNorm/Dropout mode while scoring (SNASNet's protocol)", ("train", "eval"))
    proxies: list[str] | None = opt(None, "registered proxies to compute (default: all)")
    shards: int = opt(4, "score files (one Snakemake job each)", min=1)
    epochs: list[int] = opt([5, 10, 20, 40, 60], "epochs of the early-stopping baselines (validation accuracy)")
    bootstrap: int = opt(2000, "bootstrap resamples of every interval", min=100)
    methods: list[str] = opt(["snasnet", "lightsnn", "random"], "search methods run on the benchmark's space (search "
                             "quality); not spikenas, whose two separately searched cells the benchmark never trained")
    seeds: int = opt(20, "seeds per search method (paired by seed with random)", min=2)
    search: dict = opt({"snasnet": {"num_search": 50, "batch_size": 64}, "lightsnn": {"batch_size": 32}},
                       "method -> option overrides of its searches on the benchmark (search.<method> keys)")
    combine: list[str] | None = opt(None, "rank aggregations correlated beside the proxies, 'a+b' = mean of the "
                                    "scores' ranks (default: params + each data proxy)")
    top_n: list[int] = opt([1, 2, 5, 10, 20, 50, 100], "candidate counts of the top-by-score curve")
    budgets: list[float] = opt([0.01, 0.1, 1.0, 3.0, 10.0, 30.0, 100.0], "GPU-hour budgets of the anytime table "
                               "(training-based searches replayed on the benchmark's curves)")
    budget_seeds: int = opt(20, "seeds of every replayed search in the anytime table", min=2)

    def check(self) -> None:
        from lightsnn.search import METHODS, SNASNET_METHODS

        if self.dataset not in BENCHMARKS[self.name].datasets:
            raise ValueError(f"benchmark.dataset={self.dataset!r} not allowed: benchmark {self.name!r} has logs of "
                             f"{', '.join(BENCHMARKS[self.name].datasets)}")
        unknown = [m for m in [*self.methods, *self.search] if m not in METHODS]
        if unknown:
            raise ValueError(f"benchmark: method(s) {unknown} not allowed; choose from {list(METHODS)}")
        foreign = [m for m in [*self.methods, *self.search] if m not in SNASNET_METHODS]
        if foreign:
            raise ValueError(f"benchmark: method(s) {foreign} not allowed: they search another space than the SNASNet "
                             "cell SpikeNAS-Bench trained; choose from snasnet, lightsnn, random")
        if "spikenas" in self.methods:
            raise ValueError("benchmark.methods: spikenas is not allowed: it searches a separate cell per position "
                             "and SpikeNAS-Bench trained networks whose two cells are the same; choose from "
                             "snasnet, lightsnn, random")
        if "random" not in self.methods:
            raise ValueError(f"benchmark.methods must include random (the baseline of every pairing), got {self.methods}")
        if any(n < 1 for n in self.top_n):
            raise ValueError(f"benchmark.top_n must all be >= 1, got {self.top_n}")
        if any(not 1 <= e <= 200 for e in self.epochs):
            raise ValueError(f"benchmark.epochs must be in 1..200, got {self.epochs}")
        if not self.budgets or any(not 0 < b <= 1e5 for b in self.budgets):
            raise ValueError(f"benchmark.budgets must be GPU-hours in (0, 100000], got {self.budgets}")
        if self.exclude_seed is not None and self.exclude_seed == self.sample_seed:
            raise ValueError(f"benchmark.exclude_seed={self.exclude_seed} equals sample_seed: the sample would "
                             "exclude itself; give the development sample's seed")
        if self.exclude_seed is not None and self.sample == 0:
            raise ValueError("benchmark.exclude_seed needs a sample size (sample > 0), got sample: 0 (all valid ids)")

    def scoring_images(self) -> str:
        """The dataset the scores and searches see: ``images``, else the benchmark's own dataset's registered
        '-subset' (1,000 genuine test images suffice for scoring), else the dataset itself."""
        from lightsnn.data import DATASET_NAMES

        if self.images is not None:
            return self.images
        return f"{self.dataset}-subset" if f"{self.dataset}-subset" in DATASET_NAMES else self.dataset

    def combinations(self) -> list[tuple[str, list[str]]]:
        """The rank aggregations to correlate: (name, parts); one-line error for an unknown part."""
        from lightsnn.proxies.registry import PROXIES

        names = self.proxy_names()
        if self.combine is None:
            return [(f"params+{p}", ["params", p]) for p in names if p in PROXIES and PROXIES[p].needs_data
                    and "params" in names]
        out = []
        for combo in self.combine:
            parts = [part.strip() for part in str(combo).split("+")]
            bad = [part for part in parts if part not in names]
            if len(parts) < 2 or bad:
                raise ValueError(f"benchmark.combine: {combo!r} not allowed; write 'a+b' with a, b among the "
                                 f"computed proxies {', '.join(names)}")
            out.append(("+".join(parts), parts))
        return out

    def proxy_names(self) -> list[str]:
        """The proxies to compute: ``proxies``, or every registered one; one-line error for an unknown name."""
        from lightsnn.proxies.registry import PROXIES

        names = list(PROXIES) if self.proxies is None else list(self.proxies)
        unknown = [p for p in names if p not in PROXIES]
        if unknown or not names:
            raise ValueError(f"benchmark.proxies={self.proxies!r}: {unknown or 'empty'} not allowed; registered "
                             f"proxies: {', '.join(PROXIES)}")
        return names

    def score_settings(self) -> dict:
        """Everything a score depends on (not the sample, not the sharding)."""
        keys = ("name", "width", "weight_seeds", "batch_size", "batches", "bn_mode")
        settings = {k: getattr(self, k) for k in keys} | {"images": self.scoring_images(), "proxies": self.proxy_names(),
                                                          "version": SCORE_SCHEMA_VERSION}
        if self.dataset != BENCHMARKS[self.name].datasets[0]:  # absent for the default: earlier folders keep names
            settings["dataset"] = self.dataset
        return settings

    def score_folder(self, out: str | Path) -> Path:
        return Path(out) / f"scores-C{self.width}-{stable_hash(self.score_settings())[:10]}"


#: The benchmark keys each step of the workflow depends on (the other keys never rerun it): a new search budget
#: rescores nothing, more epochs of the early-stopping baselines only recorrelate. A step not named here (the
#: search-quality table) depends on the whole section.
STEP_KEYS: dict[str, tuple[str, ...]] = {
    "score": ("name", "root", "dataset", "images", "sample", "sample_seed", "exclude_seed", "width", "weight_seeds",
              "batch_size", "batches", "bn_mode", "proxies", "shards"),
    "search": ("name", "root", "dataset", "images", "width"),
}
STEP_KEYS["correlate"] = STEP_KEYS["score"] + ("epochs", "bootstrap", "combine")
STEP_KEYS["anytime"] = ("name", "root", "dataset", "budgets", "budget_seeds")
STEP_KEYS["front"] = ("name", "root", "dataset", "budgets", "budget_seeds")
