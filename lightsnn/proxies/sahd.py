"""The sparsity-aware Hamming distance (SAHD) score (methods.md §1.5).

Every LIF call (every spiking layer at every timestep) gives a binary code
per sample. With ``a`` the per-sample spike counts and ``G = x x^T``:

    dH = a_i + a_j - 2 G_ij                      (Hamming distance)
    Ek = a_i + a_j - 2 a_i a_j / N               (its expectation for independent Bernoulli codes)
    K += N - alpha / (Ek + 1e-3) * dH            (alpha = 0.5)

and the score is ``log |det K|`` (``K / calls`` under the reference code's
``normalize='count'``). One GEMM per call, K accumulated in float64 on the
network's device, a single scalar copied to the host per forward.
"""
from __future__ import annotations

import math
from contextlib import nullcontext

import torch
import torch.nn as nn

from lightsnn.space.neurons import spiking_modules

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


class SAHDScorer:
    """Hooks every spiking module of ``net`` once; ``score(batch)`` runs one forward and returns log|det K|.

    Use as a context manager so the hooks are removed afterwards.
    """

    def __init__(self, net: nn.Module, normalize: str = "none", alpha: float = 0.5, sparsity_aware: bool = True):
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        self.net = net
        self.normalize = normalize
        self.alpha = alpha
        self.sparsity_aware = sparsity_aware
        self._handles: list = []
        self._kernel: torch.Tensor | None = None
        self.calls = 0

    def __enter__(self) -> "SAHDScorer":
        self._handles = [m.register_forward_hook(self._hook) for m in spiking_modules(self.net)]
        if not self._handles:
            raise ValueError("the network has no spiking modules to score")
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, module, inputs, output) -> None:
        x = output.reshape(1, output.shape[0], -1)
        k = sahd_kernels(x, self.alpha, binary=True, sparsity_aware=self.sparsity_aware)[0]
        if self.normalize == "layer":
            k = k / x.shape[2]
        self._kernel = k if self._kernel is None else self._kernel + k
        self.calls += 1

    @torch.inference_mode()  # cheaper than no_grad: spikingjelly's LIF step then skips its autograd bookkeeping
    def score(self, batch: torch.Tensor) -> float:
        """log|det K| of one forward pass of ``batch``; ``nan``/``-inf`` are returned as they are."""
        if not self._handles:
            raise RuntimeError("SAHDScorer.score() outside its 'with' block: no hooks registered")
        self._kernel, self.calls = None, 0
        self.net(batch)
        kernel, calls = self._kernel, self.calls
        self._kernel = None
        if kernel is None:
            return math.nan
        if self.normalize == "count":
            kernel = kernel / calls
        return float(torch.linalg.slogdet(kernel)[1])


class KernelSetScorer(SAHDScorer):
    """Several kernel scores from one forward pass: ``variants`` are (sparsity_aware, normalize) pairs. The
    spikes are the same for all of them, so this equals one :class:`SAHDScorer` per variant on the same
    network and batch, at the cost of one forward."""

    def __init__(self, net: nn.Module, variants, alpha: float = 0.5):
        super().__init__(net, "none", alpha)
        self.variants = [(bool(aware), normalize) for aware, normalize in variants]
        for _, normalize in self.variants:
            if normalize not in NORMALIZATIONS:
                raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        # the kernel sums one forward needs: (sparsity_aware, each call's K over its N) -> sum over calls
        self._sums = sorted({(aware, normalize == "layer") for aware, normalize in self.variants})
        self._kernels: dict[tuple[bool, bool], torch.Tensor] = {}

    def _hook(self, module, inputs, output) -> None:
        x = output.reshape(1, output.shape[0], -1)
        kernels = {}
        for aware, per_neuron in self._sums:
            if aware not in kernels:
                kernels[aware] = sahd_kernels(x, self.alpha, binary=True, sparsity_aware=aware)[0]
            k = kernels[aware] / x.shape[2] if per_neuron else kernels[aware]
            key = (aware, per_neuron)
            self._kernels[key] = k if key not in self._kernels else self._kernels[key] + k
        self.calls += 1

    @torch.inference_mode()
    def score_all(self, batch: torch.Tensor) -> list[float]:
        """log|det K| of every variant for one forward pass of ``batch``."""
        if not self._handles:
            raise RuntimeError("KernelSetScorer.score_all() outside its 'with' block: no hooks registered")
        self._kernels, self.calls = {}, 0
        self.net(batch)
        kernels, calls, self._kernels = self._kernels, self.calls, {}
        if not calls:
            return [math.nan] * len(self.variants)
        out = []
        for aware, normalize in self.variants:
            kernel = kernels[(aware, normalize == "layer")]
            if normalize == "count":
                kernel = kernel / calls
            out.append(float(torch.linalg.slogdet(kernel)[1]))
        return out


class CandidateSAHDScorer(SAHDScorer):
    """A kernel score (SAHD or a variant) of R candidates of one supernet in one forward pass
    (``SuperNet.set_candidate_logits``).

    Each LIF call's output is split into its candidate blocks and each block's kernel is added to the kernel
    of the candidate it belongs to, so every candidate's K is the one its own forward pass would give.
    Use as a context manager; call :meth:`refresh` after changing the candidates.
    """

    def __init__(self, net: nn.Module, normalize: str = "none", alpha: float = 0.5, sparsity_aware: bool = True):
        super().__init__(net, normalize, alpha, sparsity_aware)
        self._rows: dict[int, torch.Tensor | None] = {}
        self._calls: torch.Tensor | None = None

    def refresh(self) -> None:
        """Read which candidate blocks each spiking module now runs on."""
        self._rows = {id(m): rows for m, rows in self.net.candidate_lif_rows()}

    def _hook(self, module, inputs, output) -> None:
        if self._kernel is None:  # a forward outside score(), e.g. a memory probe
            return
        if id(module) not in self._rows:
            raise RuntimeError("a spiking module ran that the candidates do not use; call refresh() after "
                               "set_candidate_logits()")
        rows = self._rows[id(module)]
        blocks = len(rows) if rows is not None else self._kernel.shape[0]
        per_block = output.unflatten(0, (blocks, -1))
        k = sahd_kernels(per_block, self.alpha, binary=True, sparsity_aware=self.sparsity_aware)
        if self.normalize == "layer":
            k = k / per_block[0, 0].numel()
        if rows is None:
            self._kernel += k
            self._calls += 1
        else:
            rows = rows.to(k.device)
            self._kernel.index_add_(0, rows, k)
            self._calls.index_add_(0, rows, torch.ones_like(rows, dtype=self._calls.dtype))

    @torch.inference_mode()
    def score(self, batch: torch.Tensor, num_candidates: int) -> list[float]:
        """log|det K| of every candidate; ``batch`` holds one block of B samples per candidate."""
        if not self._handles:
            raise RuntimeError("CandidateSAHDScorer.score() outside its 'with' block: no hooks registered")
        size = batch.shape[1] if batch.dim() == 5 else batch.shape[0]
        b = size // num_candidates
        self._kernel = torch.zeros(num_candidates, b, b, dtype=torch.float64, device=batch.device)
        self._calls = torch.zeros(num_candidates, dtype=torch.float64, device=batch.device)
        self.net(batch)
        kernel, calls = self._kernel, self._calls
        self._kernel = self._calls = None
        if self.normalize == "count":
            kernel = kernel / calls.clamp(min=1)[:, None, None]
        logdet = torch.linalg.slogdet(kernel)[1]
        logdet[calls == 0] = math.nan  # a candidate without any LIF call has no score
        return logdet.tolist()
