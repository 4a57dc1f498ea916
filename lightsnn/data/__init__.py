"""Dataset registry: a name gives train/test splits, the network preset, and a prepare step.

Items are ``(input, label)`` with input ``[C, H, W]`` for static images and
``[T, C, H, W]`` for event frames; batching makes them ``[B, C, H, W]`` and
``[T, B, C, H, W]`` (see :mod:`lightsnn.space.network`). Nothing downloads at run
time unless the config says ``data.download: true`` (CIFAR only).

May import: :mod:`lightsnn.core`, torch, torchvision, tonic.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

from torch.utils.data import Dataset

from lightsnn.core.options import Options, opt

DEFAULT_SUBSETS = "data/cifar-subsets"


@dataclass
class Splits:
    train: Dataset
    test: Dataset
    events: bool = False  # items are [T, C, H, W] frames
    info: dict = field(default_factory=dict)  # what preparing did: cache paths, sizes, times


def collate(events: bool):
    """A DataLoader collate: static items to ``[B, C, H, W]``, event frames to ``[T, B, C, H, W]``."""
    import torch

    def fn(batch):
        x = torch.stack([item[0] for item in batch])
        y = torch.as_tensor([int(item[1]) for item in batch])
        return (x.transpose(0, 1).contiguous() if events else x), y
    return fn


@dataclass(frozen=True)
class DataOptions(Options):
    """The config's ``data`` section."""

    section: ClassVar[str] = "data"
    root: str = opt("data", "folder of cifar-10-batches-py/, cifar-100-python/, DVSGesture/")
    cache: str | None = opt(None, "frame cache folder of event datasets (default <root>/cache)")
    download: bool = opt(False, "let torchvision download CIFAR (needs a network)")
    subsets: str = opt(DEFAULT_SUBSETS, "folder of cifar10_subset.npz and cifar100_subset.npz")
    ndigits: dict = opt({}, "event-camera emulator settings (EmulatorConfig fields), max_samples, seed")

    #: Settings that choose where files are read or written and whether the network is used: they come from the
    #: user's config and flags only, never from a checkpoint or a result file (which records what the data was).
    MACHINE_KEYS: ClassVar[tuple[str, ...]] = ("root", "cache", "download", "subsets")

    @property
    def cache_dir(self) -> Path:
        return Path(self.cache) if self.cache else Path(self.root) / "cache"

    @classmethod
    def recorded_on_this_machine(cls, recorded: dict | None, user: dict | None) -> dict:
        """A recorded ``data`` section (a checkpoint's) with its paths and network access replaced by the
        user's: what the data was comes from the record, where it lives from this machine's config."""
        kept = {k: v for k, v in (recorded or {}).items() if k not in cls.MACHINE_KEYS}
        return kept | {k: v for k, v in (user or {}).items() if k in cls.MACHINE_KEYS}


#: Losses a dataset can train with by default (``train.loss: auto``).
LOSSES = ("ce", "mse")
#: How large a dataset is: ``tiny`` (offline, seconds on a CPU) or ``paper`` (the papers' benchmarks); presets
#: sized per dataset (LitE-SNN's ``preset: auto``) follow it.
SCALES = ("tiny", "paper")


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the code knows of a dataset by its name, in one place."""

    name: str
    description: str
    preset: str  # key of lightsnn.space.network.PRESETS
    events: bool  # items are event frames [T, C, H, W] (T from the network), else static images
    load: Callable[[DataOptions, int, bool | None], Splits]  # (options, timesteps, progress)
    loss: str = "ce"  # what training minimises under train.loss: auto (LightSNN: MSE on one-hot for DVS128)
    scale: str = "paper"
    #: The files it reads, as templates over the data section ({root}, {subsets}): the workflow makes them the
    #: prepare job's inputs, so a dry run stops before scheduling anything when one is missing.
    files: tuple[str, ...] = ()
    downloadable: bool = False  # data.download: true fetches the files instead (torchvision)
    sizes: tuple[int, int] | None = None  # training and test samples, for 'plan' to cost a config before it runs

    def __post_init__(self):
        if self.loss not in LOSSES or self.scale not in SCALES:
            raise ValueError(f"dataset {self.name!r}: loss {self.loss!r} (allowed {LOSSES}), scale {self.scale!r} "
                             f"(allowed {SCALES})")


def _lazy(module: str, function: str, *args) -> Callable[[DataOptions, int, bool | None], Splits]:
    """A loader imported on first use: naming a dataset never imports torchvision or tonic."""
    def load(options: DataOptions, timesteps: int, progress: bool | None) -> Splits:
        import importlib

        loader = getattr(importlib.import_module(f"lightsnn.data.{module}"), function)
        return (loader(*args) if args else loader)(options, timesteps, progress)
    return load


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in [
        DatasetSpec("digits", "scikit-learn load_digits: 1,797 real 8x8 grey digits, offline", "digits", False,
                    _lazy("static", "load_digits"), scale="tiny", sizes=(1437, 360)),
        DatasetSpec("ndigits", "neuromorphic digits: load_digits through an event-camera emulator, framed",
                    "ndigits", True, _lazy("dvs", "load_ndigits"), scale="tiny", sizes=(1437, 360)),
        DatasetSpec("cifar10", "CIFAR-10 from local files through torchvision", "cifar10", False,
                    _lazy("static", "cifar_loader", "cifar10"), downloadable=True, sizes=(50000, 10000),
                    files=tuple(f"{{root}}/cifar-10-batches-py/{name}" for name in
                                ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                                 "test_batch", "batches.meta"))),
        DatasetSpec("cifar100", "CIFAR-100 from local files through torchvision", "cifar100", False,
                    _lazy("static", "cifar_loader", "cifar100"), downloadable=True, sizes=(50000, 10000),
                    files=tuple(f"{{root}}/cifar-100-python/{name}" for name in ("train", "test", "meta"))),
        DatasetSpec("cifar10-subset", "real CIFAR-10 subset (.npz, about 5k train / 1k test), paper preprocessing",
                    "cifar10", False, _lazy("static", "subset_loader", "cifar10"),
                    files=("{subsets}/cifar10_subset.npz",), sizes=(5170, 1017)),
        DatasetSpec("cifar100-subset", "real CIFAR-100 subset (.npz, 486 train / 916 test), paper preprocessing",
                    "cifar100", False, _lazy("static", "subset_loader", "cifar100"),
                    files=("{subsets}/cifar100_subset.npz",), sizes=(486, 916)),
        DatasetSpec("dvs128_gesture", "DVS128 Gesture from local files through tonic, framed into T frames",
                    "dvs128_gesture", True, _lazy("dvs", "load_dvs_gesture"), loss="mse",
                    files=("{root}/DVSGesture/ibmGestureTrain.tar.gz", "{root}/DVSGesture/ibmGestureTest.tar.gz"),
                    sizes=(1077, 264)),
    ]
}
DATASET_NAMES = tuple(DATASETS)


def get_dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASET_NAMES)}")
    return DATASETS[name]


def load_splits(name: str, data: dict | DataOptions | None = None, timesteps: int = 1,
                progress: bool | None = None) -> Splits:
    options = data if isinstance(data, DataOptions) else DataOptions.from_config(data)
    return get_dataset_spec(name).load(options, timesteps, progress)


def labels_of(dataset: Dataset) -> list[int]:
    for attr in ("labels", "targets"):
        values = getattr(dataset, attr, None)
        if values is not None:
            return [int(v) for v in values]
    tensors = getattr(dataset, "tensors", None)
    if tensors is not None:
        return [int(v) for v in tensors[1]]
    return [int(dataset[i][1]) for i in range(len(dataset))]


def prepare(name: str, data: dict | DataOptions | None, timesteps: int, progress: bool | None = None) -> dict:
    """Load (and for event data, frame and cache) a dataset; report what was done."""
    start = time.perf_counter()
    splits = load_splits(name, data, timesteps, progress)
    report = {"dataset": name, "events": splits.events, "timesteps": timesteps if splits.events else None,
              "seconds": 0.0, **splits.info}
    for split_name, ds in (("train", splits.train), ("test", splits.test)):
        item = ds[0][0]
        counts = Counter(labels_of(ds))
        report[split_name] = {"samples": len(ds), "input_shape": list(item.shape),
                              "per_class": {str(k): counts[k] for k in sorted(counts)}}
    report["seconds"] = time.perf_counter() - start
    return report
