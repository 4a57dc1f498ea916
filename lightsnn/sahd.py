"""The sparsity-aware Hamming distance (SAHD) score (spec 1.5).

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

import torch
import torch.nn as nn

from .neurons import spiking_modules

NORMALIZATIONS = ("none", "count")  # paper: plain sum; reference code: divide by the number of LIF calls


def sahd_kernel(spikes: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """K of one LIF call: ``spikes`` is [B, N] (anything > 0 counts as a spike); returns [B, B] float64."""
    x = (spikes.reshape(spikes.shape[0], -1) > 0).to(torch.float32)
    n = x.shape[1]
    counts = x.sum(1).to(torch.float64)
    gram = (x @ x.T).to(torch.float64)  # exact: 0/1 products summed in fp32 below 2**24
    pair = counts[:, None] + counts[None, :]
    hamming = pair - 2.0 * gram
    expected = pair - 2.0 * counts[:, None] * counts[None, :] / n
    return n - (alpha / (expected + 1e-3)) * hamming


class SAHDScorer:
    """Hooks every spiking module of ``net`` once; ``score(batch)`` runs one forward and returns log|det K|.

    Use as a context manager so the hooks are removed afterwards.
    """

    def __init__(self, net: nn.Module, normalize: str = "none", alpha: float = 0.5):
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        self.net = net
        self.normalize = normalize
        self.alpha = alpha
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
        k = sahd_kernel(output, self.alpha)
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
