"""What every search shares: options, reference-compat flags, the scoring loop, the record."""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from lightsnn.core.options import Options, opt
from lightsnn.data import Splits
from lightsnn.proxies.batches import SearchBatches
from lightsnn.proxies.registry import PROXIES
from lightsnn.proxies.sahd import CandidateSAHDScorer, SAHDScorer
from lightsnn.space.genotype import CELL_TYPES, Genotype
from lightsnn.space.network import POOLINGS, NetConfig, SNASNetwork
from lightsnn.space.neurons import reset_state
from lightsnn.space.ops import SPACES, parse_space
from lightsnn.space.spaces import SearchSpace

BN_MODES = ("train", "eval")

#: Released-code behaviours that ``reference_compat`` can switch on one by one (methods.md §7).
COMPAT_FLAGS: dict[str, str] = {
    "dead_backward": "LightSNN's backward edges run but never reach the next timestep (methods.md §7.1)",
    "carry_state": "neuron state is not reset between scorings; it carries over (methods.md §7.3, 7.12)",
    "count_normalize": "K is divided by the number of LIF calls, as both codes do (methods.md §1.5.1)",
    "fresh_batches": "every repeat of every scoring draws a new random batch (methods.md §7.5)",
    "trained_logits": "architecture logits sit in the optimiser and weight decay revives pruned ops "
                      "(methods.md §7.2; used by training)",
    "arch_on_train_batch": "LitE-SNN: the architecture step uses the weights' training batch (methods.md §7.15)",
    "released_decode": "LitE-SNN: decode 3 nodes, rank edges by the conv op alone, T = 5 (methods.md §5.4, 7.17)",
    "conv_skip": "LitE-SNN: skip_connect is a 3x3 conv on every edge of the retrained network (methods.md §7.18)",
    "node_sum": "LitE-SNN: a searched node's LIF sums its inputs (saturates; the default averages them)",
}


@dataclass(frozen=True)
class MethodOptions(Options):
    """Options every method takes; each method's subclass names its config section ``search.<method>``."""

    section: ClassVar[str] = "search"
    reference_compat: bool | str | list[str] = opt(False, "true, false or a list of released-code behaviours to "
                                                   "reproduce: " + ", ".join(COMPAT_FLAGS))

    #: compat flags this method understands; ``reference_compat: true`` turns all of them on
    compat_flags: ClassVar[tuple[str, ...]] = ()
    #: the architecture family the method finds (what trains and evaluates its result)
    family: ClassVar[str] = "snasnet"

    def check(self) -> None:
        self.compat()  # raises on unknown flags

    def for_dataset(self, dataset: str) -> "MethodOptions":
        """The options a search on ``dataset`` runs with (a method with per-dataset presets fills them in)."""
        return self

    def compat(self) -> set[str]:
        value = self.reference_compat
        if value is True:
            return set(self.compat_flags)
        if value in (False, None):
            return set()
        flags = [value] if isinstance(value, str) else list(value)
        unknown = [f for f in flags if f not in self.compat_flags]
        if unknown:
            raise ValueError(f"reference_compat flag(s) {unknown} do not apply here; "
                             f"allowed: {list(self.compat_flags) or 'none'}")
        return set(flags)


@dataclass(frozen=True)
class BaseOptions(MethodOptions):
    """Options of the methods that search the SNASNet cell."""

    space: str | list[str] = opt("snasnet", "op space: a named space (" + ", ".join(SPACES) + ") or a list of ops")
    cell_type: str = opt("backward", "cell type: backward (with next-timestep edges) or forward", CELL_TYPES)
    pooling: str = opt("avg", "resdown pooling of the macro network", POOLINGS)

    def search_space(self) -> SearchSpace:
        """The space this method searches: the ``space`` ops on ``cell_type`` cells."""
        return SearchSpace(tuple(self.space), self.cell_type)

    def check(self) -> None:
        self._normalise("space", list(parse_space(self.space)))
        super().check()


#: The scores a search can rank candidates by: every proxy of the registry that reads the network's activity or
#: gradients. The kernel proxies (SAHD and its variants) run on the search's hooks, also stacked; the others
#: score one candidate at a time. Counts (params, conv_edges) are left out: a supernet masked to a candidate
#: holds every op's weights.
SEARCH_PROXIES = tuple(name for name, proxy in PROXIES.items() if proxy.needs_data)
#: compat flags whose semantics only the kernel scoring loop implements
_KERNEL_ONLY_FLAGS = ("carry_state", "count_normalize", "fresh_batches")


@dataclass(frozen=True)
class ScoringOptions(BaseOptions):
    batch_size: int = opt(64, "search batch size (samples per SAHD kernel)", min=2)
    repeat: int = opt(2, "forward passes per scoring; the score is their mean", min=1)
    bn_mode: str = opt("train", "BatchNorm/Dropout mode while scoring", BN_MODES)
    proxy: str = opt("sahd", "training-free score the candidates are ranked by (docs/evidence.md); sahd is the "
                             "papers'", SEARCH_PROXIES)

    def check(self) -> None:
        super().check()
        kernel = PROXIES[self.proxy].kernel
        if kernel is None and self.compat() & set(_KERNEL_ONLY_FLAGS):
            raise ValueError(f"{self.section}: reference_compat {sorted(self.compat() & set(_KERNEL_ONLY_FLAGS))} "
                             f"applies to the kernel proxies only, not to proxy {self.proxy!r}")
        if "count_normalize" in self.compat() and kernel[1] != "none":
            raise ValueError(f"{self.section}: reference_compat count_normalize divides the plain kernel sum; proxy "
                             f"{self.proxy!r} normalises its own way (choose sahd or hamming, or drop the flag)")

    def kernel(self) -> tuple[bool, str] | None:
        """(sparsity_aware, normalize) of a kernel proxy (``count_normalize`` makes the sum a mean over LIF
        calls); None for the other proxies."""
        if PROXIES[self.proxy].kernel is None:
            return None
        aware, normalize = PROXIES[self.proxy].kernel
        return aware, "count" if "count_normalize" in self.compat() else normalize


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

    def batches(self, options: ScoringOptions) -> SearchBatches:
        from lightsnn.proxies.batches import DatasetSearchBatches
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


class Scorer:
    """Scores networks with the method's proxy (SAHD by default) under its semantics, timing compute apart from
    data."""

    def __init__(self, options: ScoringOptions, batches: SearchBatches, record: SearchRecord):
        flags = options.compat()
        self.options = options
        self.batches = batches
        self.record = record
        self.reset = "carry_state" not in flags
        self.kernel = options.kernel()
        self.proxy = PROXIES[options.proxy]
        record.data_seconds += batches.data_seconds  # fixed batches were drawn before the first scoring

    def hooks(self, net) -> SAHDScorer | contextlib.nullcontext:
        """The proxy's kernel hooks on ``net`` (a context manager), for :meth:`__call__`; nothing to hook for a
        proxy outside the kernel family (it runs its own passes)."""
        if self.kernel is None:
            return contextlib.nullcontext()
        return SAHDScorer(net, self.kernel[1], sparsity_aware=self.kernel[0])

    def candidate_hooks(self, net) -> CandidateSAHDScorer:
        """The proxy's kernel hooks for stacked candidates of a supernet, for :class:`CandidateScorer`."""
        if self.kernel is None:
            raise ValueError(f"proxy {self.proxy.name!r} scores one candidate at a time (stacked scoring needs a "
                             "kernel proxy)")
        return CandidateSAHDScorer(net, self.kernel[1], sparsity_aware=self.kernel[0])

    def __call__(self, net: SNASNetwork, scorer: SAHDScorer | None) -> float:
        net.train(self.options.bn_mode == "train")
        data_before = self.batches.data_seconds
        start = time.perf_counter()
        if self.kernel is None:
            batches = [self.batches.get(r) for r in range(self.options.repeat)]
            args = (net, None, batches)
            if self.proxy.needs_labels:
                args += ([self.batches.labels(r) for r in range(self.options.repeat)],)
            values = [self.proxy.score(*args)]
        else:
            values = self._kernel_values(net, scorer)
        elapsed = time.perf_counter() - start
        data = self.batches.data_seconds - data_before
        self.record.compute_seconds += elapsed - data
        self.record.data_seconds += data
        return float(np.mean(values))

    @torch.inference_mode()
    def _kernel_values(self, net: SNASNetwork, scorer: SAHDScorer) -> list[float]:
        values = []
        for r in range(self.options.repeat):
            batch = self.batches.get(r)
            if self.reset:
                reset_state(net)
            values.append(scorer.score(batch))
        return values


#: Largest stacked pass on a CPU. Measured on the 2-core VM (LightSNN bench, ~0.5 GiB per candidate):
#: chunks of 1 / 2 / 3 / 4 / 8 / 36 candidates took 141 / 128 / 109 / 101-110 / 117 / 152 s.
CPU_CHUNK_BYTES = 2 << 30


class CandidateScorer:
    """Scores many weightings of one supernet in stacked forward passes, with the scores of one-at-a-time
    scoring (eval-mode BatchNorm is a fixed affine map, so candidate blocks of a stacked batch never mix).

    Chunks hold as many candidates as fit in ``memory_fraction`` of the free device memory (on a CPU at most
    :data:`CPU_CHUNK_BYTES`), at most ``max_chunk`` (0: no cap); the first call measures what one candidate
    needs.
    """

    def __init__(self, scorer: Scorer, net, max_chunk: int = 0, memory_fraction: float = 0.5):
        self.scorer = scorer
        self.net = net
        self.max_chunk = max_chunk
        self.memory_fraction = memory_fraction
        self.chunk: int | None = None

    @staticmethod
    def applies(options: ScoringOptions) -> str | None:
        """Why stacked scoring cannot give the one-at-a-time scores under these options (None: it can)."""
        flags = options.compat()
        if PROXIES[options.proxy].kernel is None:
            return f"proxy {options.proxy!r} is not a kernel proxy: it scores one candidate at a time"
        if options.bn_mode != "eval":
            return "train-mode BatchNorm normalises over the whole stacked batch"
        if "carry_state" in flags:
            return "carried neuron state makes each score depend on the previous candidate"
        if "fresh_batches" in flags:
            return "fresh batches give every candidate its own samples"
        return None

    def chunk_size(self, device: torch.device, probe: torch.Tensor) -> int:
        if self.chunk is None:
            self.net.set_candidate_logits([probe])
            per_candidate = _bytes_per_candidate(self.net, self.scorer.batches.get(0))
            budget = _free_memory(device) * self.memory_fraction
            if device.type == "cpu":  # past ~2 GiB a stacked pass is bound by memory bandwidth, not convs
                budget = min(budget, CPU_CHUNK_BYTES)
            fit = max(1, int(budget // max(per_candidate, 1)))
            self.chunk = min(fit, self.max_chunk) if self.max_chunk > 0 else fit
        return self.chunk

    @torch.inference_mode()
    def __call__(self, candidates: list[torch.Tensor], sahd: "CandidateSAHDScorer", on_chunk: Callable[[int], None] | None = None
                 ) -> list[float]:
        opts = self.scorer.options
        self.net.train(False)
        data_before = self.scorer.batches.data_seconds
        start = time.perf_counter()
        device = next(self.net.parameters()).device
        chunk = self.chunk_size(device, candidates[0])
        scores: list[float] = []
        for first in range(0, len(candidates), chunk):
            part = candidates[first:first + chunk]
            self.net.set_candidate_logits(part)
            sahd.refresh()
            values = []
            for r in range(opts.repeat):
                batch = self.scorer.batches.get(r)
                stacked = batch.repeat(1, len(part), 1, 1, 1) if batch.dim() == 5 else batch.repeat(len(part), 1, 1, 1)
                reset_state(self.net)
                values.append(sahd.score(stacked, len(part)))
            scores.extend(float(np.mean(per_candidate)) for per_candidate in zip(*values))
            if on_chunk is not None:
                on_chunk(len(part))
        elapsed = time.perf_counter() - start
        data = self.scorer.batches.data_seconds - data_before
        self.scorer.record.compute_seconds += elapsed - data
        self.scorer.record.data_seconds += data
        return scores


def _bytes_per_candidate(net, batch: torch.Tensor) -> int:
    """Memory one candidate block of a stacked pass needs, measured on a one-sample forward.

    Every module output of one timestep is counted (an upper bound of what is alive at once), twice for
    neuron state and the backward edges' values from the previous step.
    """
    sample = batch[:, :1] if batch.dim() == 5 else batch[:1]
    total = [0]

    def count(module, inputs, output):
        if isinstance(output, torch.Tensor):
            total[0] += output.numel() * output.element_size()

    leaves = [m for m in net.modules() if not list(m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        reset_state(net)
        net(sample)
    finally:
        for h in handles:
            h.remove()
        reset_state(net)
    per_step = total[0] / net.config.timesteps
    return int(2 * per_step * (batch.shape[1] if batch.dim() == 5 else batch.shape[0]))


def _free_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30  # no way to ask: assume a small machine


def best_index(scores: list[float]) -> int:
    """Index of the highest finite score; NaN and inf are never chosen (methods.md §7.14)."""
    finite = [i for i, s in enumerate(scores) if math.isfinite(s)]
    if not finite:
        raise RuntimeError(f"all {len(scores)} candidates scored NaN or inf; no architecture can be chosen")
    return max(finite, key=lambda i: (scores[i], -i))


def timed(run: Callable[..., SearchResult]) -> Callable[..., SearchResult]:
    def wrapper(options, context: SearchContext) -> SearchResult:
        start = time.perf_counter()
        result = run(options, context)
        result.record.total_seconds = time.perf_counter() - start
        return result
    wrapper.__name__ = run.__name__
    wrapper.__doc__ = run.__doc__
    return wrapper
