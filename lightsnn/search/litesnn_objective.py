"""LitE-SNN's objective and decoding (methods.md §5.2-5.4): the timestep weights, the loss with its size and
SynOps penalties, and the architecture the logits say. The search loop is :mod:`lightsnn.search.litesnn`."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lightsnn.space.litesnn_genotype import LITE_OPS, LiteGenotype, edge_index


def psi_weights(psi: torch.Tensor, warm: bool) -> torch.Tensor:
    """``softmax(psi)`` after the warm-up, uniform (constant, no gradient) during it."""
    if warm:
        return torch.full_like(psi, 1.0 / psi.numel()).detach()
    return torch.softmax(psi, dim=0)


def lite_loss(logits: torch.Tensor, target: torch.Tensor, psi_hat: torch.Tensor, model_size_bits: torch.Tensor,
              bit_synops: torch.Tensor, size_penalty: float, synops_penalty: float) -> dict[str, torch.Tensor]:
    """``sum_t psi_t CE(mean(logits[:t]), y) / sum psi + a size + b sum_t psi_t sum_{tau<=t} synops_tau``.

    ``logits`` ``[T, B, K]``; ``bit_synops`` per sample and timestep ``[T]``."""
    steps = logits.shape[0]
    running = logits.cumsum(0) / torch.arange(1, steps + 1, device=logits.device, dtype=logits.dtype).view(-1, 1, 1)
    ce = torch.stack([F.cross_entropy(running[t], target) for t in range(steps)])
    task = (psi_hat * ce).sum() / psi_hat.sum()
    ops = (psi_hat * bit_synops.cumsum(0)).sum()
    total = task + size_penalty * model_size_bits + synops_penalty * ops
    return {"loss": total, "task": task, "ce_per_t": ce.detach(), "synops": ops.detach()}


def decode(alphas: torch.Tensor, betas: torch.Tensor, psi: torch.Tensor, bits: tuple[int, ...], keep: float,
           steps: int, released: bool = False) -> LiteGenotype:
    """The architecture the logits say: top-2 inputs per node, the argmax op per kept edge, the argmax bit width
    per cell, T = argmax(psi) + 1.

    Edges are ranked by their strongest op. ``released`` decodes as the released code: only the first 3 nodes,
    edges ranked by the ``snn_b3`` weight alone (its "ignore none" slice drops skip), and T = 5 (hard-coded in
    its retraining; the search's psi is never decoded), capped at T_max (methods.md §5.4, 7.17)."""
    weights = torch.softmax(alphas.detach().double(), dim=-1)
    decoded = min(3, steps) if released else steps
    conv = LITE_OPS.index("snn_b3")
    nodes = []
    for node in range(decoded):
        rows = [edge_index(node, source) for source in range(2 + node)]
        strength = [float(weights[r, conv] if released else weights[r].max()) for r in rows]
        top = sorted(range(len(rows)), key=lambda s: (-strength[s], s))[:2]
        nodes.append(tuple((s, LITE_OPS[int(weights[rows[s]].argmax())]) for s in sorted(top)))
    cell_bits = tuple(bits[int(i)] for i in betas.detach().argmax(-1))
    timesteps = min(5, psi.numel()) if released else int(psi.detach().argmax()) + 1
    return LiteGenotype(tuple(nodes), cell_bits, keep, timesteps)
