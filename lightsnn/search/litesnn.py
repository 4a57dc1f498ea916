"""LitE-SNN: differentiable compressive search (methods.md §5) of the cell, per-cell weight precision, weight
pruning and the number of timesteps, under model-size and bit-SynOps penalties.

Bi-level: each step trains the weights on a batch of one half of the training split, then the architecture
(op logits ``alpha``), compression (precision logits ``beta``, pruning scores) and, after the warm-up, the
timestep logits ``psi`` on a batch of the other half. The loss weighs the cross-entropy of the running mean of
the outputs after t = 1..T_max steps by ``softmax(psi)`` (uniform during the warm-up) and adds the costs.
Checkpointed every epoch; a killed search resumes where it stopped.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from lightsnn.core.checkpoints import (
    CheckpointError,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    signals_deferred,
)
from lightsnn.core.budget import MAX_TIMESTEPS
from lightsnn.core.hashing import stable_hash
from lightsnn.core.options import opt
from lightsnn.data import DATASETS, SCALES, collate, get_dataset_spec
from lightsnn.search.litesnn_objective import decode, lite_loss, psi_weights
from lightsnn.search.method_options import MethodOptions
from lightsnn.search.protocol import Method, SearchContext, SearchRecord, SearchResult, timed
from lightsnn.space.compconv import GAUSSIAN_STEPS
from lightsnn.space.litesnn_genotype import LITE_OPS, LiteGenotype
from lightsnn.space.litesnn_net import LiteNetConfig, LiteSearchNet
from lightsnn.space.neurons import run_sequence

#: Bumped when what a search checkpoint holds changes: an older one is then never resumed.
SEARCH_CHECKPOINT_FORMAT = 1


#: Sizes and schedules: the paper's (methods.md §5.2-5.3), and a tiny set that searches the offline datasets in
#: about a minute on a 2-core CPU. The costs' weights scale with the network: the paper's make the costs of a
#: tiny network vanish next to its cross-entropy.
SIZE_PRESETS: dict[str, dict] = {
    "paper": {"filter_multiplier": 12, "steps": 4, "level_path": [0, 0, 1, 1, 1, 2, 2, 2], "max_timesteps": 6,
              "keep": 0.2, "epochs": 50, "warmup_epochs": 5, "batch_size": 120, "lr": 0.025,
              "size_penalty": 5e-10, "synops_penalty": 5e-14, "retrain_filter_multiplier": 48},
    "tiny": {"filter_multiplier": 4, "steps": 3, "level_path": [0, 1, 2], "max_timesteps": 4,
             "keep": 0.5, "epochs": 8, "warmup_epochs": 2, "batch_size": 32, "lr": 0.1,
             "size_penalty": 5e-8, "synops_penalty": 5e-9, "retrain_filter_multiplier": 8},
}


if set(SIZE_PRESETS) != set(SCALES):  # ``preset: auto`` takes the dataset's scale as the preset's name
    raise ImportError(f"LitE-SNN's SIZE_PRESETS {sorted(SIZE_PRESETS)} must name the dataset scales {SCALES}")
_TINY_DATASETS = " and ".join(n for n, spec in DATASETS.items() if spec.scale == "tiny")


@dataclass(frozen=True)
class LiteSNNOptions(MethodOptions):
    """Sizes and schedules left null come from ``preset``; every other option is the paper's by default."""

    section: ClassVar[str] = "search.litesnn"
    preset: str = opt("auto", "sizes and schedule of the null options: paper, tiny, or auto (tiny on "
                              f"{_TINY_DATASETS}, paper elsewhere)", ("auto", *SIZE_PRESETS))
    filter_multiplier: int | None = opt(None, "search network: channels of a node at level 0 (level l: x 2^l); "
                                              "paper 12", min=1)
    steps: int | None = opt(None, "search network: nodes per cell; paper 4", min=1)
    level_path: list[int] | None = opt(None, "resolution level of every cell (search and retrain); paper "
                                             "[0, 0, 1, 1, 1, 2, 2, 2]")
    max_timesteps: int | None = opt(None, "T_max: the timestep search chooses T in 1..T_max; paper 6", min=1,
                                    max=MAX_TIMESTEPS)
    bit_widths: list[int] = opt([1, 2, 4], "candidate weight bit widths (each of 1, 2, 3, 4)")
    keep: float | None = opt(None, "share of each conv's weights the top-k mask keeps; paper 0.2", min=0.001,
                             max=1.0)
    epochs: int | None = opt(None, "search epochs; paper 50", min=1)
    warmup_epochs: int | None = opt(None, "epochs with uniform psi and no psi update; paper 5", min=0)
    batch_size: int | None = opt(None, "batch size of both steps; paper 120 (30 per GPU on 4 GPUs)", min=1)
    max_batches: int | None = opt(None, "cap steps per epoch (smoke runs); null: the whole half split", min=1)
    train_portion: float = opt(0.5, "share of the training split that trains the weights; the rest trains "
                                    "the architecture", min=0.05, max=0.95)
    lr: float | None = opt(None, "weights: SGD learning rate, cosine-annealed over the epochs; paper 0.025",
                           min=0.0)
    lr_min: float = opt(0.001, "weights: cosine floor of the learning rate", min=0.0)
    momentum: float = opt(0.9, "weights: SGD momentum", min=0.0)
    weight_decay: float = opt(3e-4, "weights: SGD weight decay", min=0.0)
    grad_clip: float = opt(5.0, "weights: gradient-norm clip", min=0.0)
    arch_lr: float = opt(1e-3, "alpha: Adam learning rate", min=0.0)
    arch_weight_decay: float = opt(1e-3, "alpha: Adam weight decay", min=0.0)
    comp_lr: float = opt(1e-2, "beta and pruning scores: Adam learning rate", min=0.0)
    comp_weight_decay: float = opt(1e-3, "beta and pruning scores: Adam weight decay", min=0.0)
    psi_lr: float = opt(0.025, "psi: SGD learning rate, cosine-annealed after the warm-up", min=0.0)
    psi_momentum: float = opt(0.9, "psi: SGD momentum", min=0.0)
    psi_weight_decay: float = opt(3e-4, "psi: SGD weight decay", min=0.0)
    size_penalty: float | None = opt(None, "loss weight of the model size in bits; paper 5e-10", min=0.0)
    synops_penalty: float | None = opt(None, "loss weight of the psi-weighted cumulative bit-SynOps per sample; "
                                             "paper 5e-14", min=0.0)
    retrain_filter_multiplier: int | None = opt(None, "retrained network: channels of a node at level 0; paper 48",
                                                min=1)
    retrain_stem_bits: int | None = opt(4, "retrained network: stem bit width (null: fp32)", min=1, max=4)
    retrain_head_bits: int | None = opt(4, "retrained network: classifier bit width (null: fp32)", min=1, max=4)
    compat_flags: ClassVar[tuple[str, ...]] = ("arch_on_train_batch", "released_decode", "conv_skip", "node_sum")
    family: ClassVar[str] = LiteGenotype.family

    def check(self) -> None:
        super().check()
        bad = [b for b in self.bit_widths if b not in GAUSSIAN_STEPS]
        if bad or not self.bit_widths or len(set(self.bit_widths)) != len(self.bit_widths):
            raise ValueError(f"search.litesnn.bit_widths {self.bit_widths} is not allowed; distinct values from "
                             f"{sorted(GAUSSIAN_STEPS)}")
        if self.warmup_epochs is not None and self.epochs is not None and self.warmup_epochs >= self.epochs:
            raise ValueError(f"search.litesnn.warmup_epochs ({self.warmup_epochs}) must be below epochs "
                             f"({self.epochs}), or psi is never searched")
        if self.level_path is not None:
            LiteNetConfig(level_path=list(self.level_path))  # checks the level path

    def search_network(self, preset) -> LiteNetConfig:
        """LitE-SNN's own supernet, sized by these options, with the preset's input and class counts."""
        base = LiteNetConfig(in_channels=preset.in_channels, image_size=preset.image_size,
                             num_classes=preset.num_classes, input_pool=preset.input_pool,
                             level_path=list(self.level_path))
        return search_net_config(base, self)

    def network_to_train(self, searched: LiteNetConfig, genotype: LiteGenotype) -> LiteNetConfig:
        return retrain_net_config(searched, self, genotype)

    def planned_work(self, train_samples: int) -> tuple[str, int]:
        per_epoch = math.ceil(train_samples / 2 / self.batch_size)  # weights and architecture halves
        return "litesnn_step", self.epochs * (per_epoch if self.max_batches is None else min(per_epoch,
                                                                                           self.max_batches))

    def for_dataset(self, dataset: str) -> "LiteSNNOptions":
        """Every null option filled from the preset (``auto``: the dataset's)."""
        name = get_dataset_spec(dataset).scale if self.preset == "auto" else self.preset  # SIZE_PRESETS has both
        filled = {k: v for k, v in SIZE_PRESETS[name].items() if getattr(self, k) is None}
        return replace(self, **filled)


def search_net_config(base: LiteNetConfig, options: LiteSNNOptions) -> LiteNetConfig:
    return replace(base, timesteps=options.max_timesteps, filter_multiplier=options.filter_multiplier,
                   steps=options.steps, level_path=list(options.level_path),
                   node_input="sum" if "node_sum" in options.compat() else "mean")


def retrain_net_config(search: LiteNetConfig, options: LiteSNNOptions, genotype: LiteGenotype) -> LiteNetConfig:
    return replace(search, timesteps=genotype.timesteps, filter_multiplier=options.retrain_filter_multiplier,
                   steps=genotype.steps, level_path=list(search.level_path), stem_bits=options.retrain_stem_bits,
                   head_bits=options.retrain_head_bits)


class _Halves:
    """The two halves of the training split (weights / architecture), reshuffled each epoch from (seed, epoch)."""

    def __init__(self, train, options: LiteSNNOptions, seed: int, events: bool, arch_on_train: bool):
        order = np.random.default_rng(seed).permutation(len(train))
        cut = max(1, min(len(train) - 1, int(round(options.train_portion * len(train)))))
        self.weights = Subset(train, order[:cut].tolist())
        # the released code's "valid" sampler indexes the same first half (methods.md §5.3, 7.15)
        self.arch = self.weights if arch_on_train else Subset(train, order[cut:].tolist())
        self.options, self.seed, self.events = options, seed, events

    def loader(self, part, epoch: int, offset: int) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + 7919 * epoch + offset)
        return DataLoader(part, batch_size=self.options.batch_size, shuffle=True, generator=generator,
                          num_workers=0, collate_fn=collate(self.events), drop_last=len(part) > self.options.batch_size)

    def steps(self) -> int:
        per_epoch = min(math.ceil(len(self.weights) / self.options.batch_size),
                        math.ceil(len(self.arch) / self.options.batch_size))
        return per_epoch if self.options.max_batches is None else min(per_epoch, self.options.max_batches)


def _optimisers(net: LiteSearchNet, options: LiteSNNOptions):
    arch = net.architecture_parameters()
    weights = torch.optim.SGD(net.weight_parameters(), lr=options.lr, momentum=options.momentum,
                              weight_decay=options.weight_decay)
    optimisers = {
        "weights": weights,
        "compression": torch.optim.Adam(arch["compression"], lr=options.comp_lr, betas=(0.5, 0.999),
                                        weight_decay=options.comp_weight_decay),
        "alphas": torch.optim.Adam(arch["alphas"], lr=options.arch_lr, betas=(0.5, 0.999),
                                   weight_decay=options.arch_weight_decay),
        "psi": torch.optim.SGD(arch["psi"], lr=options.psi_lr, momentum=options.psi_momentum,
                               weight_decay=options.psi_weight_decay),
    }
    schedulers = {
        "weights": torch.optim.lr_scheduler.CosineAnnealingLR(weights, options.epochs, eta_min=options.lr_min),
        "psi": torch.optim.lr_scheduler.CosineAnnealingLR(optimisers["psi"],
                                                          max(1, options.epochs - options.warmup_epochs)),
    }
    return optimisers, schedulers


def _snapshot(net: LiteSearchNet) -> dict:
    """The architecture weights as plain lists: one point of the search curves."""
    return {"alpha": torch.softmax(net.alphas.detach(), -1).tolist(),
            "beta": torch.softmax(net.betas.detach(), -1).tolist(),
            "psi": torch.softmax(net.psi.detach(), 0).tolist()}


def _epoch_metrics(row: dict, options: LiteSNNOptions) -> dict:
    """A flat row for per-epoch tracking: losses, costs, psi per T, expected bits per cell."""
    flat = {k: v for k, v in row.items() if isinstance(v, (int, float))}
    for t, value in enumerate(row["psi"], start=1):
        flat[f"psi_T{t}"] = value
    for c, weights in enumerate(row["beta"]):
        flat[f"bits_cell{c}"] = sum(w * b for w, b in zip(weights, options.bit_widths))
    conv = LITE_OPS.index("snn_b3")
    flat["alpha_conv_mean"] = float(np.mean([edge[conv] for edge in row["alpha"]]))
    return flat


@timed
def run_litesnn(options: LiteSNNOptions, ctx: SearchContext) -> SearchResult:
    started = time.perf_counter()
    flags = options.compat()
    device = ctx.device
    config = ctx.net_config
    torch.manual_seed(ctx.seed)
    np.random.seed(ctx.seed % 2**32)
    net = LiteSearchNet(config, tuple(options.bit_widths), options.keep).to(device)
    optimisers, schedulers = _optimisers(net, options)
    halves = _Halves(ctx.splits.train, options, ctx.seed, ctx.splits.events, "arch_on_train_batch" in flags)
    record = SearchRecord()
    fingerprint = stable_hash({"options": asdict(options), "network": config.to_dict(), "seed": ctx.seed,
                               "data": _data_key(ctx.splits),
                               "format": SEARCH_CHECKPOINT_FORMAT}, 16)
    history: list[dict] = []
    start_epoch = 1
    saved = _resumable(ctx.checkpoint, fingerprint, device, ctx.log)
    if saved is not None:
        net.load_state_dict(saved["model"])
        for name, state in saved["optimisers"].items():
            optimisers[name].load_state_dict(state)
        for name, state in saved["schedulers"].items():
            schedulers[name].load_state_dict(state)
        set_rng_state(saved["rng"])
        history = saved["state"]["history"]
        record.compute_seconds = saved["state"]["compute_seconds"]
        record.data_seconds = saved["state"]["data_seconds"]
        # a checkpoint before this field: at least its compute and data time was spent
        record.resumed_seconds = saved["state"].get("search_seconds", record.compute_seconds + record.data_seconds)
        start_epoch = len(history) + 1
        ctx.log(f"resuming the litesnn search from {ctx.checkpoint} after epoch {len(history)}")
    steps = halves.steps()
    with ctx.bar(options.epochs * steps, "litesnn") as bar:
        bar.update((start_epoch - 1) * steps)
        for epoch in range(start_epoch, options.epochs + 1):
            row = _search_epoch(net, halves, optimisers, options, epoch, steps, device, record, bar)
            schedulers["weights"].step()
            if epoch > options.warmup_epochs:
                schedulers["psi"].step()
            row.update(_snapshot(net))
            history.append(row)
            with signals_deferred():  # the checkpoint and the epoch's report go together
                if ctx.checkpoint is not None:
                    save_checkpoint({"format": SEARCH_CHECKPOINT_FORMAT, "model": net.state_dict(),
                                     "meta": {"fingerprint": fingerprint},
                                     "optimisers": {k: o.state_dict() for k, o in optimisers.items()},
                                     "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
                                     "rng": rng_state(),
                                     "state": {"history": history, "compute_seconds": record.compute_seconds,
                                               "data_seconds": record.data_seconds,
                                               "search_seconds": record.resumed_seconds
                                               + time.perf_counter() - started}}, ctx.checkpoint)
                if ctx.on_epoch is not None:
                    ctx.on_epoch(_epoch_metrics(row, options))
    genotype = decode(net.alphas, net.betas, net.psi, tuple(options.bit_widths), options.keep, options.steps,
                      released="released_decode" in flags)
    final = history[-1]
    record.details = {
        "decoded": genotype.to_json(),
        "final_alphas": net.alphas.detach().tolist(), "final_betas": net.betas.detach().tolist(),
        "final_psi": net.psi.detach().tolist(),
        "search_network": config.to_dict(),
        "search_model_size_bits": final["model_size_bits"], "search_bit_synops": final["bit_synops"],
        "steps_per_epoch": steps, "weights_samples": len(halves.weights), "arch_samples": len(halves.arch),
        "seconds_per_epoch": float(np.mean([r["seconds"] for r in history])),
        "curves": history,
    }
    if ctx.checkpoint is not None:
        Path(ctx.checkpoint).unlink(missing_ok=True)  # a finished search is its result; a rerun searches anew
    return SearchResult(genotype, final["arch_acc"], record, retrain_net_config(config, options, genotype))


def _search_epoch(net, halves: _Halves, optimisers: dict, options: LiteSNNOptions, epoch: int, steps: int,
                  device, record: SearchRecord, bar) -> dict:
    warm = epoch <= options.warmup_epochs
    weights_loader = halves.loader(halves.weights, epoch, 0)
    arch_loader = halves.loader(halves.arch, epoch, 1)
    sums = {"loss": 0.0, "task": 0.0, "train_acc": 0.0, "arch_loss": 0.0, "arch_acc": 0.0}
    seen = 0
    last: dict = {}
    data_time = 0.0
    start = data_start = time.perf_counter()
    net.train()
    for index, ((xw, yw), (xa, ya)) in enumerate(zip(weights_loader, arch_loader)):
        if index >= steps:
            break
        xw, yw, xa, ya = xw.to(device), yw.to(device), xa.to(device), ya.to(device)
        data_time += time.perf_counter() - data_start
        # 1. the weights, on the weights half
        out = _forward_loss(net, xw, yw, options, warm)
        for optimiser in optimisers.values():
            optimiser.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(net.weight_parameters(), options.grad_clip)
        optimisers["weights"].step()
        # 2. alpha, compression and (after the warm-up) psi, on the architecture half
        arch = _forward_loss(net, xa, ya, options, warm)
        for optimiser in optimisers.values():
            optimiser.zero_grad(set_to_none=True)
        arch["loss"].backward()
        optimisers["compression"].step()
        optimisers["alphas"].step()
        if not warm:
            optimisers["psi"].step()
        loss = float(out["loss"].detach())
        if not math.isfinite(loss):
            raise RuntimeError(f"the litesnn search diverged at epoch {epoch}, step {index}: loss {loss}")
        sums["loss"] += loss
        sums["task"] += float(out["task"].detach())
        sums["train_acc"] += out["acc"]
        sums["arch_loss"] += float(arch["loss"].detach())
        sums["arch_acc"] += arch["acc"]
        seen += 1
        last = arch
        bar.update()
        bar.set_postfix(loss=f"{loss:.3f}")
        data_start = time.perf_counter()
    elapsed = time.perf_counter() - start
    row = {"epoch": epoch, **{k: v / max(seen, 1) for k, v in sums.items()}, "warmup": warm,
           "model_size_bits": float(net.last_costs["model_size_bits"].detach()),
           # of the last architecture batch: per sample and timestep, and the psi-weighted cumulative cost term
           "bit_synops": float(net.last_costs["bit_synops"].detach().mean()),
           "synops_cost": float(last["synops"]) if last else 0.0,
           "lr": optimisers["weights"].param_groups[0]["lr"], "seconds": elapsed}
    record.data_seconds += data_time
    record.compute_seconds += elapsed - data_time
    return row


def _forward_loss(net: LiteSearchNet, x, y, options: LiteSNNOptions, warm: bool) -> dict:
    logits = run_sequence(net, x)
    psi_hat = psi_weights(net.psi, warm)
    out = lite_loss(logits, y, psi_hat, net.last_costs["model_size_bits"], net.last_costs["bit_synops"],
                    options.size_penalty, options.synops_penalty)
    out["acc"] = float((logits.detach().mean(0).argmax(1) == y).float().mean())
    return out


def _data_key(splits) -> list:
    """What identifies the training data: its size and its caches' paths (their names carry the preparation's
    settings hash)."""
    caches = (splits.info or {}).get("cache") or {}
    return [len(splits.train), sorted(str(entry.get("path")) for entry in caches.values() if isinstance(entry, dict))]


def _resumable(path, fingerprint: str, device, log) -> dict | None:
    if path is None or not Path(path).exists():
        return None
    try:
        saved = load_checkpoint(path, device)
    except CheckpointError as err:
        log(f"{err}; ignoring it, searching from scratch")
        return None
    if saved.get("format") != SEARCH_CHECKPOINT_FORMAT or saved["meta"].get("fingerprint") != fingerprint:
        log(f"{path} was written by a search with other settings; searching from scratch")
        return None
    return saved


METHOD = Method("litesnn", ("LitE-SNN: differentiable compressive search of cell, per-cell bits, pruning and "
                          "timesteps (IJCAI 2024)"), LiteSNNOptions, run_litesnn,
                position=40)
