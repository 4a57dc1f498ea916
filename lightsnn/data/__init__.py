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

    @property
    def cache_dir(self) -> Path:
        return Path(self.cache) if self.cache else Path(self.root) / "cache"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    preset: str  # key of lightsnn.space.network.PRESETS
    events: bool
    load: Callable[[DataOptions, int, bool | None], Splits]  # (options, timesteps, progress)


def _registry() -> dict[str, DatasetSpec]:
    from lightsnn.data import dvs, static

    specs = [
        DatasetSpec("digits", "scikit-learn load_digits: 1,797 real 8x8 grey digits, offline", "digits", False,
                    static.load_digits),
        DatasetSpec("ndigits", "neuromorphic digits: load_digits through an event-camera emulator, framed",
                    "ndigits", True, dvs.load_ndigits),
        DatasetSpec("cifar10", "CIFAR-10 from local files through torchvision", "cifar10", False,
                    static.cifar_loader("cifar10")),
        DatasetSpec("cifar100", "CIFAR-100 from local files through torchvision", "cifar100", False,
                    static.cifar_loader("cifar100")),
        DatasetSpec("cifar10-subset", "real CIFAR-10 subset (.npz, about 5k train / 1k test), paper preprocessing",
                    "cifar10", False, static.subset_loader("cifar10")),
        DatasetSpec("cifar100-subset", "real CIFAR-100 subset (.npz, 486 train / 916 test), paper preprocessing",
                    "cifar100", False, static.subset_loader("cifar100")),
        DatasetSpec("dvs128_gesture", "DVS128 Gesture from local files through tonic, framed into T frames",
                    "dvs128_gesture", True, dvs.load_dvs_gesture),
    ]
    return {s.name: s for s in specs}


DATASET_NAMES = ("digits", "ndigits", "cifar10", "cifar100", "cifar10-subset", "cifar100-subset", "dvs128_gesture")
_SPECS: dict[str, DatasetSpec] | None = None


def get_dataset_spec(name: str) -> DatasetSpec:
    global _SPECS
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASET_NAMES)}")
    if _SPECS is None:
        _SPECS = _registry()
    return _SPECS[name]


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
