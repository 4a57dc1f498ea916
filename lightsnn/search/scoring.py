"""Scoring candidates with a method's proxy under its semantics: one network at a time (:class:`Scorer`) or
many weightings of one supernet in stacked passes (:class:`CandidateScorer`), and choosing the best."""
from __future__ import annotations

import contextlib
import math
import time
from typing import Callable

import torch

from lightsnn.search.batches import SearchBatches
from lightsnn.proxies.engine import ScoringSetup, score_candidates, score_proxies
from lightsnn.proxies.registry import PROXIES
from lightsnn.search.method_options import ScoringOptions
from lightsnn.search.protocol import SearchRecord
from lightsnn.space.network import SNASNetwork
from lightsnn.space.neurons import run_sequence


class Scorer:
    """Scores networks with the method's proxy (SAHD by default) under its semantics through the one scoring
    engine (:mod:`lightsnn.proxies.engine`), timing compute apart from data."""

    def __init__(self, options: ScoringOptions, batches: SearchBatches, record: SearchRecord):
        flags = options.compat()
        self.options = options
        self.batches = batches
        self.record = record
        self.proxy = PROXIES[options.proxy]
        self.setup = ScoringSetup(carry_state="carry_state" in flags, count_normalize="count_normalize" in flags,
                                  bf16=options.bf16)
        record.data_seconds += batches.data_seconds  # fixed batches were drawn before the first scoring

    def _batches(self) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        """This scoring's batches (fresh ones are drawn now) and, for a proxy that needs them, their labels."""
        batches = [self.batches.get(r) for r in range(self.options.repeat)]
        labels = [self.batches.labels(r) for r in range(self.options.repeat)] if self.proxy.needs_labels else None
        return batches, labels

    def __call__(self, net: SNASNetwork) -> float:
        net.train(self.options.bn_mode == "train")
        with self._timed():
            batches, labels = self._batches()
            return score_proxies(net, None, batches, [self.proxy.name], labels, self.setup)[self.proxy.name]

    @contextlib.contextmanager
    def _timed(self):
        data_before = self.batches.data_seconds
        start = time.perf_counter()
        try:
            yield
        finally:
            data = self.batches.data_seconds - data_before
            self.record.compute_seconds += time.perf_counter() - start - data
            self.record.data_seconds += data


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
        if PROXIES[options.proxy].kind != "kernel":
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

    def __call__(self, candidates: list[torch.Tensor], on_chunk: Callable[[int], None] | None = None) -> list[float]:
        self.net.train(False)
        device = next(self.net.parameters()).device
        scores: list[float] = []
        with self.scorer._timed():
            chunk = self.chunk_size(device, candidates[0])
            batches, _ = self.scorer._batches()
            for first in range(0, len(candidates), chunk):
                part = candidates[first:first + chunk]
                self.net.set_candidate_logits(part)
                scores.extend(score_candidates(self.net, batches, self.scorer.proxy.name, len(part),
                                               self.scorer.setup))
                if on_chunk is not None:
                    on_chunk(len(part))
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
        run_sequence(net, sample)
    finally:
        for h in handles:
            h.remove()
    per_step = total[0] / net.config.timesteps
    return int(2 * per_step * (batch.shape[1] if batch.dim() == 5 else batch.shape[0]))


def _free_memory(device: torch.device) -> int:
    from lightsnn.core.budget import available_bytes

    return available_bytes(device, unknown=4 << 30)  # no way to ask: assume a small machine


def best_index(scores: list[float]) -> int:
    """Index of the highest finite score; NaN and inf are never chosen (methods.md §7.14)."""
    finite = [i for i, s in enumerate(scores) if math.isfinite(s)]
    if not finite:
        raise RuntimeError(f"all {len(scores)} candidates scored NaN or inf; no architecture can be chosen")
    return max(finite, key=lambda i: (scores[i], -i))
