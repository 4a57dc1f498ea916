"""Issue-16 candidate scores beyond the SAHD kernel family: how else might an untrained SNN reveal its accuracy?

Activity scores read the spiking layers during one forward pass (per-timestep SAHD, membrane potentials,
distinct spike patterns); saliency scores backpropagate through the LIFs' surrogate gradients (grad_norm,
snip, synflow, jacob_cov, adapted from the zero-cost proxies of ANNs). Each is registered in
:mod:`lightsnn.proxies.registry` with a one-line definition; this module holds the computations.

Shapes as everywhere in lightsnn: a batch is ``[B, C, H, W]`` (static) or ``[T, B, C, H, W]`` (events).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lightsnn.proxies.sahd import sahd_kernels
from lightsnn.space.neurons import SpikeHooks, run_sequence, sequences

#: layers whose weights the saliency scores sum over (zero-cost-nas: conv and linear weights only)
WEIGHTED_TYPES = (nn.Conv2d, nn.Linear)


def _logdet(kernel: torch.Tensor | None) -> float:
    return math.nan if kernel is None else float(torch.linalg.slogdet(kernel)[1])


@torch.inference_mode()
def sahd_per_step(net: nn.Module, batches: Sequence[torch.Tensor], alpha: float = 0.5) -> float:
    """Mean over batches and timesteps of log|det K_t|, K_t the SAHD kernel summed over the LIF calls of
    timestep t only (the paper's sum mixes every timestep into one K)."""
    values: list[float] = []
    kernels: dict[int, torch.Tensor] = {}

    def on_spikes(module, step, spikes):
        k = sahd_kernels(spikes.reshape(1, spikes.shape[0], -1), alpha, binary=True)[0]
        kernels[step] = k if step not in kernels else kernels[step] + k

    with SpikeHooks(net, on_spikes) as hooks, sequences(net) as run:
        for batch in batches:
            kernels.clear()
            hooks.restart()
            run(batch)
            values.extend(_logdet(k) for _, k in sorted(kernels.items()))
    return float(np.mean(values)) if values else math.nan


def charged_membrane(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The potential a single-step LIF charges to from input ``x`` before it fires or resets (spikingjelly's
    charge equation, with or without ``decay_input``)."""
    if getattr(module, "step_mode", "s") != "s" or not hasattr(module, "tau"):
        raise ValueError(f"membrane scores need single-step LIF neurons, got {type(module).__name__} in step "
                         f"mode {getattr(module, 'step_mode', '?')!r}")
    v = module.v if isinstance(module.v, torch.Tensor) else torch.full_like(x, float(module.v))
    v_reset = 0.0 if module.v_reset is None else module.v_reset
    if module.decay_input:
        return v + (x - (v - v_reset)) / module.tau
    return v - (v - v_reset) / module.tau + x


@torch.inference_mode()
def membrane_kernel_score(net: nn.Module, batches: Sequence[torch.Tensor]) -> float:
    """Mean over batches of log|det K|, K the sum over LIF calls of the cosine-similarity matrix of the samples'
    charged membrane potentials (the analog signal behind the spikes)."""
    values: list[float] = []
    kernel: list[torch.Tensor | None] = [None]

    def pre(module, x):
        h = charged_membrane(module, x).reshape(x.shape[0], -1).to(torch.float64)
        h = F.normalize(h, dim=1)
        k = h @ h.T
        kernel[0] = k if kernel[0] is None else kernel[0] + k

    with SpikeHooks(net, lambda *args: None, pre=pre), sequences(net) as run:
        for batch in batches:
            kernel[0] = None
            run(batch)
            values.append(_logdet(kernel[0]))
    return float(np.mean(values)) if values else math.nan


@torch.inference_mode()
def distinct_patterns(net: nn.Module, batches: Sequence[torch.Tensor]) -> float:
    """Mean over LIF calls (and batches) of the share of samples whose spike code is distinct: 1 when every
    sample gives its own pattern, 1/B when all give the same one."""
    shares: list[float] = []

    def on_spikes(module, step, spikes):
        codes = spikes.reshape(spikes.shape[0], -1)
        shares.append(torch.unique(codes, dim=0).shape[0] / codes.shape[0])

    with SpikeHooks(net, on_spikes), sequences(net) as run:
        for batch in batches:
            run(batch)
    return float(np.mean(shares)) if shares else math.nan


# --- saliencies: gradients through the surrogate -------------------------------------------------------------
def weighted_layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, WEIGHTED_TYPES)]


def weight_gradients(net: nn.Module, batch: torch.Tensor, labels: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, dCE/dweight) of every conv and linear layer for one batch, gradients through the surrogates;
    the network's own gradients are left as they were."""
    layers = weighted_layers(net)
    weights = [m.weight for m in layers]
    with torch.enable_grad(), sequences(net) as run:
        loss = F.cross_entropy(run(batch), labels.to(batch.device))
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
    return [(w.detach(), torch.zeros_like(w) if g is None else g.detach()) for w, g in zip(weights, grads)]


def grad_norm_of(pairs) -> float:
    """Sum over layers of the L2 norm of the weight gradient."""
    return float(sum(float(g.norm()) for _, g in pairs))


def snip_of(pairs) -> float:
    """Sum over weights of |w * dL/dw|: the loss change if each weight were removed."""
    return float(sum(float((w * g).abs().sum()) for w, g in pairs))


def synflow(net: nn.Module, batches: Sequence[torch.Tensor]) -> float:
    """log of sum |w * dR/dw| over conv and linear weights, R the summed output of the all-ones input (shaped as
    one sample of the first batch) through the network with every parameter replaced by its absolute value,
    BatchNorm in eval mode with fresh statistics (mean 0, variance 1: whatever forwards ran before do not
    matter), no dropout, in float64; the network is restored afterwards."""
    if not batches:
        return math.nan
    example = batches[0]
    shape = (example.shape[0], 1, *example.shape[2:]) if example.dim() == 5 else (1, *example.shape[1:])
    was_training = net.training
    signs = {}
    dtype = next(net.parameters()).dtype
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    statistics = [{k: v.clone() for k, v in m.named_buffers(recurse=False)} for m in norms]
    try:
        with torch.no_grad():
            for name, p in net.named_parameters():
                signs[name] = torch.sign(p)
                p.abs_()
            for m in norms:
                m.reset_running_stats()
        net.eval()
        net.double()
        weights = [m.weight for m in weighted_layers(net)]
        with torch.enable_grad(), sequences(net) as run:
            out = run(torch.ones(shape, dtype=torch.float64, device=example.device)).sum()
            grads = torch.autograd.grad(out, weights, allow_unused=True)
        total = sum(float((w.detach() * g).abs().sum()) for w, g in zip(weights, grads) if g is not None)
    finally:
        net.to(dtype)
        with torch.no_grad():
            for name, p in net.named_parameters():
                p.mul_(signs[name])
            for m, saved in zip(norms, statistics):
                for k, v in saved.items():
                    getattr(m, k).copy_(v)
        net.train(was_training)
    return math.log(total) if total > 0 else math.nan


def jacobian_covariance(net: nn.Module, batches: Sequence[torch.Tensor], k: float = 1e-5) -> float:
    """Mean over batches of -sum_i (log(v_i + k) + 1 / (v_i + k)), v the eigenvalues of the correlation
    matrix of the samples' input Jacobians d(sum of outputs)/dx (jacob_cov; higher: less correlated)."""
    values = []
    for batch in batches:
        x = batch.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(run_sequence(net, x).sum(), x)
        if grad.dim() == 5:  # [T, B, ...] -> [B, T, ...]
            grad = grad.transpose(0, 1)
        jac = grad.reshape(grad.shape[0], -1).to(torch.float64).cpu().numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.corrcoef(jac)
        if not np.all(np.isfinite(corr)):
            values.append(math.nan)
            continue
        v = np.linalg.eigvalsh(corr)
        values.append(float(-np.sum(np.log(v + k) + 1.0 / (v + k))))
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan
