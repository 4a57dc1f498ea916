"""Training a found architecture from scratch with surrogate gradients (methods.md §2.3, 3.3).

The discrete network is trained, never the supernet. Only the reference-compat
flag ``trained_logits`` trains LightSNN's supernet with its logits in the
optimiser, where weight decay alone revives pruned ops (methods.md §3.3).
Checkpoints are written atomically every epoch; a restarted run resumes from
the last one and, on the CPU with the same seed, ends exactly as an
uninterrupted run: the shuffling order of epoch e depends only on (seed, e),
and the RNG states are saved with the weights.

A checkpoint is trusted only when it is safe and current: it is read with
``weights_only=True`` (tensors and plain types, never arbitrary pickled code),
and resumed only when its fingerprint (genotype, training options, seed,
dataset and its preprocessing, network, search compat, code version) equals
the new run's and its training is unfinished. Anything else trains from
scratch and says why in one line: a finished training run again is a fresh
training (what ``snakemake --forcerun`` asks for).
"""
from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from lightsnn.core.checkpoints import (
    CheckpointError,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    signals_deferred,
)
from lightsnn.core.hashing import stable_hash
from lightsnn.core.layout import BEST_FILE, CHECKPOINT_FILE, file_name
from lightsnn.core.names import current, old_names
from lightsnn.core.options import Options, from_section, opt
from lightsnn.data import DATASETS, collate, get_dataset_spec
from lightsnn.data import LOSSES as DATASET_LOSSES
from lightsnn.space.families import get_family
from lightsnn.space.neurons import sequences

#: Bumped whenever what a checkpoint holds changes: an older checkpoint is then never resumed.
CHECKPOINT_FORMAT = 2

LOSSES = ("auto", *DATASET_LOSSES)
#: What ``loss: auto`` means, in words generated from the dataset registry.
_AUTO_LOSSES = "".join(f"{loss.upper()} on one-hot for {', '.join(n for n, s in DATASETS.items() if s.loss == loss)}, "
                       for loss in DATASET_LOSSES[1:] if any(s.loss == loss for s in DATASETS.values())) + "else CE"

#: Named recipes (methods.md §2.3, 3.3); any field can be overridden in the config's ``train`` section.
RECIPES: dict[str, dict] = {
    "snasnet-paper": {"lr": 0.1, "eta_min": 0.001, "epochs": 300, "batch_size": 64},
    "lightsnn-paper": {"lr": 0.2, "eta_min_ratio": 0.01, "epochs": 300, "batch_size": 64},  # the paper's lr
    "lightsnn-code": {"lr": 0.1, "eta_min_ratio": 0.01, "epochs": 300, "batch_size": 64},  # the released code's
    "quick": {"lr": 0.1, "eta_min": 0.0, "epochs": 5, "batch_size": 64},
}


@dataclass(frozen=True)
class TrainOptions(Options):
    """The config's ``train`` section: a named recipe and any field overriding it."""

    section: ClassVar[str] = "train"
    recipe: str = opt("snasnet-paper", "named recipe: the defaults of the other fields (old names " +
                      ", ".join(old_names("training recipe")) + " still work)", tuple(RECIPES) + old_names("training recipe"))
    epochs: int = opt(300, "epochs", min=1)
    batch_size: int = opt(64, "batch size", min=1)
    lr: float = opt(0.1, "initial learning rate")
    momentum: float = opt(0.9, "SGD momentum", min=0.0)
    weight_decay: float = opt(5e-4, "SGD weight decay", min=0.0)
    eta_min: float | None = opt(0.001, "cosine floor of the learning rate")  # or eta_min_ratio * lr
    eta_min_ratio: float | None = opt(None, "cosine floor as a share of lr")
    loss: str = opt("auto", f"auto (the dataset's own: {_AUTO_LOSSES}), ce or mse", LOSSES)
    val_fraction: float = opt(0.0, "share of the training set held out for model selection", min=0.0)
    bf16: bool | None = opt(False, "train under bf16 autocast (tensor cores on a GPU; avx512-bf16 on a CPU): "
                                   "convolutions and the LIF membrane in bf16, the loss in fp32; null: on where "
                                   "training runs on CUDA. Off by default: same mean accuracy as fp32 but a wider "
                                   "spread over seeds (docs/bench.md)")
    channels_last: bool | None = opt(False, "channels-last memory format for the network and its 4-D inputs (no "
                                            "NCHW<->NHWC conversions around cuDNN's bf16 convolutions); null: on "
                                            "where training runs on CUDA")
    device_data: bool | None = opt(None, "training batches made on the device instead of per sample on the host: "
                                         "CIFAR's uint8 images kept there (crop, flip and normalise batch-wise), "
                                         "cached event frames kept there in their compact dtype; other datasets "
                                         "ignore it; null: on where training runs on CUDA, off elsewhere")
    max_batches: int | None = opt(None, "cap batches per epoch (smoke runs); null: whole epochs", min=1)

    @classmethod
    def from_config(cls, section: dict | None, overrides: dict | None = None) -> "TrainOptions":
        """The recipe's values, then the section's, then the non-None ``overrides``."""
        values = dict(section or {})
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        recipe = values["recipe"] = current("training recipe", values.get("recipe", "snasnet-paper"))
        if recipe not in RECIPES:
            raise ValueError(f"unknown training recipe {recipe!r}; known: {', '.join(RECIPES)}")
        merged = {**RECIPES[recipe], **values}
        if "eta_min_ratio" in merged and merged["eta_min_ratio"] is not None and "eta_min" not in values:
            merged["eta_min"] = None
        return from_section(cls, merged, where="train", what="train option(s)")

    #: The options that change only speed and rounding, not the recipe; null decides them by the device.
    SPEED_OPTIONS: ClassVar[tuple[str, ...]] = ("bf16", "channels_last", "device_data")

    def on(self, device) -> "TrainOptions":
        """These options with every null speed option decided for ``device``: on for CUDA, off elsewhere."""
        cuda = torch.device(device).type == "cuda"
        return replace(self, **{key: cuda for key in self.SPEED_OPTIONS if getattr(self, key) is None})

    def check(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"train.lr must be > 0, got {self.lr}")
        if self.val_fraction >= 1.0:
            raise ValueError(f"train.val_fraction must be in [0, 1), got {self.val_fraction}")

    def floor(self) -> float:
        if self.eta_min is not None:
            return self.eta_min
        return (self.eta_min_ratio or 0.0) * self.lr


def split_validation(train: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset | None]:
    if fraction <= 0:
        return train, None
    order = np.random.default_rng(seed).permutation(len(train))
    n_val = max(1, int(round(fraction * len(train))))
    return Subset(train, order[n_val:].tolist()), Subset(train, order[:n_val].tolist())


def loss_kind(options: "TrainOptions", dataset: str) -> str:
    """``auto``: the dataset's own (MSE on one-hot for DVS128 Gesture, LightSNN's choice; else cross-entropy)."""
    return options.loss if options.loss != "auto" else get_dataset_spec(dataset).loss


def loss_fn(kind: str, num_classes: int):
    if kind == "mse":
        return lambda out, y: F.mse_loss(out, F.one_hot(y, num_classes).to(out.dtype))
    return F.cross_entropy


def build_model(net_config, genotype, search: dict | None = None):
    """The network to train and, under LightSNN's ``trained_logits`` compat, the logits parameter: the
    genotype's family builds it (:mod:`lightsnn.space.families`), with the search result's compat flags."""
    return get_family(genotype.family).build(net_config, genotype, search)


def _differences(old: dict, new: dict) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


@torch.no_grad()
def evaluate_accuracy(model, loader, device, loss, topk=(1,)) -> dict:
    model.eval()
    total, loss_sum = 0, 0.0
    correct = {k: 0 for k in topk}
    with sequences(model) as run:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            out = run(x).float()
            loss_sum += float(loss(out, y)) * len(y)
            top = out.topk(max(topk), dim=1).indices
            for k in topk:
                correct[k] += int((top[:, :k] == y[:, None]).any(1).sum())
            total += len(y)
    return {"loss": loss_sum / max(total, 1), **{f"top{k}": correct[k] / max(total, 1) for k in topk}}


class Trainer:
    def __init__(self, model, options: TrainOptions, splits, device, seed: int, out_dir: Path,
                 num_classes: int, loss_kind: str, logits_param: torch.nn.Parameter | None = None,
                 progress: bool | None = None, log=None, meta: dict | None = None,
                 fingerprint: dict | None = None, fresh: bool = False):
        self.meta = dict(meta or {})  # what evaluation needs to rebuild the model: genotype, network, dataset
        # what this training is for; a checkpoint with other fields is never resumed
        self.fingerprint_fields = dict(fingerprint or {})
        self.meta["fingerprint_fields"] = self.fingerprint_fields
        self.meta["fingerprint"] = stable_hash(self.fingerprint_fields, 16)
        self.fresh = fresh
        self.model = model.to(device)
        self.options = options = options.on(device)  # speed options left null decided for the device
        self.device = device
        self.seed = seed
        self.out_dir = Path(out_dir)
        self.checkpoint = self.out_dir / file_name(CHECKPOINT_FILE)
        self.progress = progress
        self.log = log or (lambda line: print(line, flush=True))
        self.loss = loss_fn(loss_kind, num_classes)
        self.events = splits.events
        train, self.val = split_validation(splits.train, options.val_fraction, seed)
        self.train_set, self.test_set = train, splits.test
        params = list(self.model.parameters())
        self.logits_param = logits_param
        if logits_param is not None:
            params.append(logits_param)
        self.optimizer = torch.optim.SGD(params, lr=options.lr, momentum=options.momentum,
                                         weight_decay=options.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=options.epochs,
                                                                    eta_min=options.floor())
        if options.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def _loader(self, dataset, shuffle: bool, epoch: int = 0) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return DataLoader(dataset, batch_size=self.options.batch_size, shuffle=shuffle, generator=generator,
                          num_workers=0, collate_fn=collate(self.events),
                          pin_memory=self.device.type == "cuda")

    def val_loader(self) -> DataLoader:
        """The held-out part of the training set (``val_fraction``): what a search that trains its candidates
        may select by (never the test set)."""
        if self.val is None:
            raise ValueError("a held-out split needs train.val_fraction > 0")
        return self._loader(self.val, shuffle=False)

    def validate(self) -> dict:
        """Loss and top-1 accuracy on :meth:`val_loader`'s samples."""
        return evaluate_accuracy(self.model, self.val_loader(), self.device, self.loss)

    def _sync_logits(self):
        if self.logits_param is not None:
            self.model.set_logits(self.logits_param.detach())

    def _resumable(self) -> dict | None:
        """The checkpoint to resume from, or None (with one line saying why) to train from scratch."""
        path = self.checkpoint
        if not path.exists():
            return None
        if self.fresh:
            self.log(f"fresh start requested: ignoring {path}, training from scratch")
            return None
        try:
            saved = load_checkpoint(path, self.device)
        except CheckpointError as err:
            self.log(f"{err}; ignoring it, training from scratch")
            return None
        meta = saved["meta"]
        if saved.get("format") != CHECKPOINT_FORMAT or meta.get("fingerprint") != self.meta["fingerprint"]:
            differ = _differences(meta.get("fingerprint_fields") or {}, self.fingerprint_fields)
            self.log(f"{path} was trained for another setup (differs in: {', '.join(differ) or 'format'}); "
                     "training from scratch")
            return None
        done = int(saved["state"]["epoch"])
        if done >= self.options.epochs:
            self.log(f"{path} holds a finished training ({done} epochs); a rerun trains anew from scratch")
            return None
        return saved

    def run(self, on_epoch=None, on_start=None) -> dict:
        """Train to the last epoch, resuming a matching checkpoint. ``on_start(extra, epoch)`` is called once
        the start point is known, with the ``extra`` dict of a resumed checkpoint (else None); what it returns
        (plain types, e.g. a tracking run id) is kept in every checkpoint. ``on_epoch(row)`` follows each epoch."""
        state = {"epoch": 0, "history": [], "best": None}
        saved = self._resumable()
        if saved is not None:
            self.model.load_state_dict(saved["model"])
            self.optimizer.load_state_dict(saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
            if self.logits_param is not None:
                self.logits_param.data.copy_(saved["logits"])
            set_rng_state(saved["rng"])
            state = saved["state"]
            self.log(f"resuming from {self.checkpoint} after epoch {state['epoch']}")
        else:
            torch.manual_seed(self.seed)
            np.random.seed(self.seed % 2**32)
            random.seed(self.seed)
        extra = (on_start((saved or {}).get("extra"), state["epoch"]) if on_start is not None else None) or {}
        self._sync_logits()
        test_loader = self._loader(self.test_set, shuffle=False)
        val_loader = self._loader(self.val, shuffle=False) if self.val is not None else None
        for epoch in range(state["epoch"] + 1, self.options.epochs + 1):
            start = time.perf_counter()
            train_stats = self.train_epoch(epoch)
            lr = self.optimizer.param_groups[0]["lr"]
            self.scheduler.step()
            test = evaluate_accuracy(self.model, test_loader, self.device, self.loss)
            row = {"epoch": epoch, "lr": lr, "train_loss": train_stats["loss"], "train_acc": train_stats["acc"],
                   "test_loss": test["loss"], "test_acc": test["top1"], "seconds": time.perf_counter() - start,
                   "samples_per_second": train_stats["samples"] / train_stats["seconds"]}
            if val_loader is not None:
                val = evaluate_accuracy(self.model, val_loader, self.device, self.loss)
                row.update(val_loss=val["loss"], val_acc=val["top1"])
            state["history"].append(row)
            key = "val_acc" if val_loader is not None else "test_acc"
            if state["best"] is None or row[key] > state["best"][key]:
                state["best"] = dict(row)
                self._save_weights(self.out_dir / file_name(BEST_FILE))
            state["epoch"] = epoch
            with signals_deferred():  # the checkpoint and the epoch's log go together, never one without the other
                save_checkpoint({"format": CHECKPOINT_FORMAT,
                              "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                              "scheduler": self.scheduler.state_dict(), "rng": rng_state(), "state": state,
                              "logits": None if self.logits_param is None else self.logits_param.detach().clone(),
                              "meta": self.meta, "extra": extra}, self.checkpoint)
                self.log(f"epoch {epoch}/{self.options.epochs} loss {row['train_loss']:.4f} "
                         f"train acc {row['train_acc']:.4f} test acc {row['test_acc']:.4f}"
                         + (f" val acc {row['val_acc']:.4f}" if "val_acc" in row else "")
                         + f" lr {lr:.4g} {row['seconds']:.1f}s ({row['samples_per_second']:.0f} samples/s)")
                if on_epoch is not None:
                    on_epoch(row)
        return state

    def _save_weights(self, path: Path) -> None:
        save_checkpoint({"format": CHECKPOINT_FORMAT, "model": self.model.state_dict(), "meta": self.meta,
                      "logits": None if self.logits_param is None else self.logits_param.detach().clone()}, path)

    def train_epoch(self, epoch: int) -> dict:
        """One pass over the training set (at most ``max_batches``), its batches drawn from ``epoch``'s seed: the
        mean loss, accuracy, samples and seconds. No checkpoint, no scheduler step (``run`` does those)."""
        self.model.train()
        loader = self._loader(self.train_set, shuffle=True, epoch=epoch)
        if self.options.device_data:
            from lightsnn.data.device import device_batches_of

            on_device = device_batches_of(self.train_set, self.options.batch_size, self.device,
                                          self.seed * 100_003 + epoch)
            if on_device is not None:
                loader = on_device
            elif epoch == 1:
                self.log("training batches are made on the host: train.device_data applies to CIFAR-style images "
                         "and cached event frames in memory, not to this training set")
        total = len(loader) if self.options.max_batches is None else min(len(loader), self.options.max_batches)
        seen = correct = 0
        loss_sum = 0.0
        start = time.perf_counter()
        bar = tqdm(total=total, desc=f"epoch {epoch}", leave=False,
                   disable=None if self.progress is None else not self.progress, file=sys.stderr)
        with sequences(self.model) as run:
            for index, (x, y) in enumerate(loader):
                if index >= total:
                    break
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
                if self.options.channels_last and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.options.bf16):
                    out = run(x)
                loss = self.loss(out.float(), y)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.logits_param is not None:  # no gradient reaches the logits: only weight decay acts
                    self.logits_param.grad = torch.zeros_like(self.logits_param)
                self.optimizer.step()
                self._sync_logits()
                batch_loss = float(loss.detach())
                if not math.isfinite(batch_loss):
                    raise RuntimeError(f"training diverged at epoch {epoch}, batch {index}: loss {batch_loss}")
                seen += len(y)
                loss_sum += batch_loss * len(y)
                correct += int((out.detach().argmax(1) == y).sum())
                bar.update()
                bar.set_postfix(loss=f"{batch_loss:.3f}")
        bar.close()
        return {"loss": loss_sum / max(seen, 1), "acc": correct / max(seen, 1), "samples": seen,
                "seconds": max(time.perf_counter() - start, 1e-9)}
