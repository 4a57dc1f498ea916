"""Scoring candidates with a method's proxy under its semantics: one network at a time (:class:`Scorer`) or
many weightings of one supernet in stacked passes (:class:`CandidateScorer`), and choosing the best."""
from __future__ import annotations

import contextlib
import math
import time
from typing import Callable

import numpy as np
import torch

from lightsnn.proxies.batches import SearchBatches
from lightsnn.proxies.registry import PROXIES, score_proxies
from lightsnn.proxies.sahd import CandidateSAHDScorer, SAHDScorer
from lightsnn.search.options import ScoringOptions
from lightsnn.search.protocol import SearchRecord
from lightsnn.space.network import SNASNetwork
from lightsnn.space.neurons import reset_state


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
        if self.kernel is None:  # the registry's harness: one candidate, in passes of the proxy's own
            batches = [self.batches.get(r) for r in range(self.options.repeat)]
            labels = [self.batches.labels(r) for r in range(self.options.repeat)] if self.proxy.needs_labels else None
            values = [score_proxies(net, None, batches, [self.proxy.name], labels=labels)[self.proxy.name]]
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
            with torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=self.options.bf16):
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
                with torch.autocast(stacked.device.type, dtype=torch.bfloat16, enabled=self.scorer.options.bf16):
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
    from lightsnn.core.budget import available_bytes

    return available_bytes(device, unknown=4 << 30)  # no way to ask: assume a small machine


def best_index(scores: list[float]) -> int:
    """Index of the highest finite score; NaN and inf are never chosen (methods.md §7.14)."""
    finite = [i for i, s in enumerate(scores) if math.isfinite(s)]
    if not finite:
        raise RuntimeError(f"all {len(scores)} candidates scored NaN or inf; no architecture can be chosen")
    return max(finite, key=lambda i: (scores[i], -i))
