"""Metrics of a trained network: accuracy, SAR, parameters, memory, synaptic operations, energy, latency."""
from __future__ import annotations

import functools
import statistics
import time
from dataclasses import dataclass
from typing import ClassVar

import torch

from lightsnn.core.energy import ENERGY_MODEL, energy_pj
from lightsnn.core.options import Options, opt
from lightsnn.space.compconv import QUANTISED_TYPES
from lightsnn.space.neurons import counting_spikes, sequences


@dataclass(frozen=True)
class EvaluateOptions(Options):
    """The config's ``evaluate`` section: the one place these defaults live (CLI, schema, jobs, studies)."""

    section: ClassVar[str] = "evaluate"
    bits: int = opt(8, "bit width of the reported weight memory", min=1, max=32)
    energy_samples: int = opt(256, "test samples for synaptic-operation counting", min=1)




@torch.no_grad()
def spiking_activity_rate(model, loader, device) -> dict:
    """SAR = total spikes / (total neurons x timesteps x samples), over the whole loader (methods.md §3.4, 6):
    the firing-rate measure of the ``fire_rate`` proxy (:func:`~lightsnn.space.neurons.counting_spikes`) on the
    trained network in eval mode."""
    model.eval()
    with counting_spikes(model) as count, sequences(model) as run:
        for x, _ in loader:
            run(x.to(device))
    return {"sar": count.spikes / max(count.neuron_steps, 1), "spikes": count.spikes,
            "neuron_steps": count.neuron_steps}


def weight_layers(model) -> dict[str, tuple[int, int, int]]:
    """Every conv and linear layer: name -> (stored bits per weight, weights kept, weights).

    LitE-SNN's quantised layers store ``bits[0]``-bit weights, ``kept()`` of them (top-k pruning); every other
    layer fp32 weights, all kept."""
    layers = {}
    for name, module in model.named_modules():
        if isinstance(module, QUANTISED_TYPES):
            layers[name] = (module.bits[0] if len(module.bits) == 1 else 32, module.kept(), module.weight.numel())
        elif isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            layers[name] = (32, module.weight.numel(), module.weight.numel())
    return layers


@functools.cache
def counter_mode() -> type:
    """spikingjelly's ``DispatchCounterMode``, minus torch's guard against compiling its handler.

    torch wraps every dispatch mode's ``__torch_dispatch__`` so that ``torch.compile`` skips it, and the
    wrapper imports ``torch._dynamo`` on the first counted op: 1.2-1.8 s in every evaluate job, for nothing,
    since nothing here is compiled. ``_should_skip_dynamo`` is the switch ``TorchDispatchMode`` documents for
    mode authors; the handler itself is spikingjelly's, unwrapped."""
    from spikingjelly.activation_based.op_counter import DispatchCounterMode

    handler = DispatchCounterMode.__dict__["__torch_dispatch__"]

    class CounterMode(DispatchCounterMode):
        __torch_dispatch__ = getattr(handler, "__wrapped__", handler)

        @classmethod
        def _should_skip_dynamo(cls) -> bool:
            return False

    return CounterMode


@torch.no_grad()
def operation_counts(model, loader, device, max_samples: int) -> dict:
    """Synaptic operations (spike-driven accumulates) and MACs per sample, with spikingjelly's op_counter.

    Bit-SynOps weigh each layer's SynOps by its weight bit width and the share of its weights kept (the counter
    counts dense kernels): ``sum_layers SynOps x kept/weights x bits`` (methods.md §6)."""
    from spikingjelly.activation_based.op_counter import MACCounter, SynOpCounter

    model.eval()
    synops, macs = SynOpCounter(), MACCounter()
    seen = 0
    with sequences(model) as run:
        for x, _ in loader:
            if seen >= max_samples:
                break
            with counter_mode()([synops, macs]):
                run(x.to(device))
            seen += x.shape[1] if x.dim() == 5 else x.shape[0]
    per_sample_synops = synops.get_total() / max(seen, 1)
    per_sample_macs = macs.get_total() / max(seen, 1)
    counts = synops.get_counts()
    root = type(model).__name__
    bit_synops = sum(sum(counts.get(f"{root}.{name}", {}).values()) * kept / total * bits
                     for name, (bits, kept, total) in weight_layers(model).items())
    return {"samples": seen, "synops_per_sample": per_sample_synops, "macs_per_sample": per_sample_macs,
            "bit_synops_per_sample": bit_synops / max(seen, 1),
            "energy_pj_per_sample": energy_pj(per_sample_synops, per_sample_macs), "energy_model": ENERGY_MODEL}


def model_parameters(model) -> int:
    """Parameters of the model as deployed: LitE-SNN's pruning scores only chose its masks, so they do not count."""
    return sum(p.numel() for name, p in model.named_parameters() if not name.endswith("popup_scores"))


def memory_footprint(model, bits: int) -> dict:
    """Parameters (pruning scores are not part of the model: they only chose its mask), their memory at fp32 and
    at ``bits``, and the model size as stored: kept conv/linear weights at their own bit widths (LitE-SNN's
    searched precisions; fp32 elsewhere) plus every other parameter (BN, biases) at fp32."""
    params = model_parameters(model)
    layers = weight_layers(model)
    size_bits = sum(b * kept for b, kept, _ in layers.values())
    size_bits += 32 * (params - sum(total for _, _, total in layers.values()))
    return {"parameters": params, "bytes_fp32": params * 4, f"bytes_{bits}bit": params * bits / 8,
            "kept_parameters": params - sum(total - kept for _, kept, total in layers.values()),
            "model_size_bits": size_bits, "model_size_bytes": size_bits / 8}


@torch.no_grad()
def latency_per_sample(model, sample: torch.Tensor, device, repeats: int = 10) -> float:
    """Median wall time of one single-sample inference (timesteps included), in seconds."""
    model.eval()
    x = sample.to(device)
    times = []
    with sequences(model) as run:
        for _ in range(repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            run(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:])
