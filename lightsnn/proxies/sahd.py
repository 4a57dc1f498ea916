"""The sparsity-aware Hamming distance (SAHD) score (methods.md §1.5).

Every LIF call (every spiking layer at every timestep) gives a binary code
per sample. With ``a`` the per-sample spike counts and ``G = x x^T``:

    dH = a_i + a_j - 2 G_ij                      (Hamming distance)
    Ek = a_i + a_j - 2 a_i a_j / N               (its expectation for independent Bernoulli codes)
    K += N - alpha / (Ek + 1e-3) * dH            (alpha = 0.5)

and the score is ``log |det K|`` (``K / calls`` under the reference code's
``normalize='count'``). One GEMM per call, K accumulated in float64 on the
network's device, a single scalar copied to the host per forward.
:class:`KernelHooks` is the kernel kind's one hook class; the scoring engine
(:mod:`lightsnn.proxies.engine`) drives it.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Callable, Sequence

import torch
import torch.nn as nn

from lightsnn.space.neurons import SpikeHooks

#: paper: plain sum; reference code: divide by the number of LIF calls; layer: each call's K divided by its
#: neuron count N before summing, so the largest layers do not dominate (a candidate of issue 16)
NORMALIZATIONS = ("none", "count", "layer")


def sahd_kernel(spikes: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """K of one LIF call: ``spikes`` is [B, N] (anything > 0 counts as a spike); returns [B, B] float64."""
    return sahd_kernels(spikes.reshape(1, spikes.shape[0], -1), alpha)[0]


def sahd_kernels(spikes: torch.Tensor, alpha: float = 0.5, binary: bool = False,
                 sparsity_aware: bool = True) -> torch.Tensor:
    """K of one LIF call for R candidates at once: ``spikes`` is [R, B, ...]; returns [R, B, B] float64.

    ``binary=True`` promises float32 values that are exactly 0 or 1 (a LIF's output), saving a pass.
    ``sparsity_aware=False`` gives the plain Hamming kernel ``N - dH`` (NASWOT's, without SAHD's weighting),
    a baseline of the evidence study.
    """
    x = spikes.reshape(spikes.shape[0], spikes.shape[1], -1)
    if not binary or x.dtype != torch.float32:
        x = (x > 0).to(torch.float32)
    n = x.shape[2]
    counts = x.sum(2).to(torch.float64)
    # a bf16 scoring pass must not round the spike counts; no context at all on the usual fp32 hot path
    exact = torch.autocast(x.device.type, enabled=False) if torch.is_autocast_enabled(x.device.type) else nullcontext()
    with exact:
        gram = torch.bmm(x, x.transpose(1, 2)).to(torch.float64)  # exact: 0/1 products summed in fp32 below 2**24
    pair = counts[:, :, None] + counts[:, None, :]
    hamming = pair - 2.0 * gram
    if not sparsity_aware:
        return n - hamming
    expected = pair - 2.0 * counts[:, :, None] * counts[:, None, :] / n
    return n - (alpha / (expected + 1e-3)) * hamming


class KernelHooks:
    """Kernel scores (SAHD and its variants) from one forward pass, for one network or R stacked candidates.

    ``variants`` are (sparsity_aware, normalize) pairs; the spikes are the same for all of them, so one forward
    serves every variant. With R candidates (a supernet after ``set_candidate_logits``, the batch repeated R
    times; call :meth:`use_candidates` after changing them) each LIF call's output is split into its candidate
    blocks and each block's kernel is added to its own candidate's K, so every candidate's K is the one its own
    forward pass would give. One network is R = 1. Use as a context manager (the hooks are removed after).
    """

    def __init__(self, net: nn.Module, variants: Sequence[tuple[bool, str]], alpha: float = 0.5):
        self.variants = [(bool(aware), normalize) for aware, normalize in variants]
        for _, normalize in self.variants:
            if normalize not in NORMALIZATIONS:
                raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        self.net = net
        self.alpha = alpha
        # the kernel sums one forward needs: (sparsity_aware, each call's K over its N) -> sum over calls
        self._sums = sorted({(aware, normalize == "layer") for aware, normalize in self.variants})
        self._rows: dict[int, torch.Tensor | None] | None = None
        self._kernels: dict[tuple[bool, bool], torch.Tensor] | None = None
        self._calls: torch.Tensor | None = None
        self._spikes = SpikeHooks(net, self._add)

    def __enter__(self) -> "KernelHooks":
        self._spikes.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._spikes.__exit__(*exc)

    def use_candidates(self) -> None:
        """Read which candidate blocks each spiking module of the supernet now runs on."""
        self._rows = {id(m): rows for m, rows in self.net.candidate_lif_rows()}

    def _add(self, module, call, output) -> None:
        if self._kernels is None:  # a forward outside score(), e.g. a memory probe
            return
        if self._rows is None:
            rows = None
        elif id(module) in self._rows:
            rows = self._rows[id(module)]
        else:
            raise RuntimeError("a spiking module ran that the candidates do not use; call use_candidates() after "
                               "set_candidate_logits()")
        blocks = len(rows) if rows is not None else self._calls.shape[0]
        per_block = output.unflatten(0, (blocks, -1))
        neurons = per_block[0, 0].numel()
        plain: dict[bool, torch.Tensor] = {}
        for aware, per_neuron in self._sums:
            if aware not in plain:
                plain[aware] = sahd_kernels(per_block, self.alpha, binary=True, sparsity_aware=aware)
            k = plain[aware] / neurons if per_neuron else plain[aware]
            target = self._kernels[(aware, per_neuron)]
            if rows is None:
                target += k
            else:
                target.index_add_(0, rows.to(k.device), k)
        if rows is None:
            self._calls += 1
        else:
            rows = rows.to(self._calls.device)
            self._calls.index_add_(0, rows, torch.ones_like(rows, dtype=self._calls.dtype))

    def score(self, run: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor,
              candidates: int = 1) -> list[list[float]]:
        """log|det K| of every variant (inner list) of every candidate (outer list) for one forward ``run(batch)``;
        ``batch`` holds one block of B samples per candidate. ``nan``/``-inf`` are returned as they are; a
        candidate without any LIF call scores nan."""
        if not self._spikes.active:
            raise RuntimeError("KernelHooks.score() outside its 'with' block: no hooks registered")
        size = batch.shape[1] if batch.dim() == 5 else batch.shape[0]
        b = size // candidates
        self._kernels = {key: torch.zeros(candidates, b, b, dtype=torch.float64, device=batch.device)
                         for key in self._sums}
        self._calls = torch.zeros(candidates, dtype=torch.float64, device=batch.device)
        try:
            self._spikes.restart()
            run(batch)
            kernels, calls = self._kernels, self._calls
        finally:
            self._kernels = self._calls = None
        out = []
        for aware, normalize in self.variants:
            kernel = kernels[(aware, normalize == "layer")]
            if normalize == "count":
                kernel = kernel / calls.clamp(min=1)[:, None, None]
            logdet = torch.linalg.slogdet(kernel)[1]
            logdet[calls == 0] = math.nan
            out.append(logdet.tolist())
        return [list(values) for values in zip(*out)]
