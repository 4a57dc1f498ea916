"""Dataset registry: a name gives train/test splits and the network preset.

Items are ``(input, label)`` with input ``[C, H, W]`` for static images and
``[T, C, H, W]`` for event frames; batching makes them ``[B, C, H, W]`` and
``[T, B, C, H, W]`` (see :mod:`lightsnn.network`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset


@dataclass
class Splits:
    train: Dataset
    test: Dataset
    events: bool = False  # items are [T, C, H, W] frames


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    preset: str  # key of lightsnn.network.PRESETS
    load: Callable[[dict], Splits]


def _load_digits(options: dict) -> Splits:
    """scikit-learn's 1,797 real 8x8 handwritten digits; fixed stratified 80/20 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.images.astype(np.float32) / 16.0)[:, None]  # [N, 1, 8, 8] in [0, 1]
    y = data.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    mean, std = float(x_train.mean()), float(x_train.std())
    norm = lambda a: torch.from_numpy((a - mean) / std)  # noqa: E731
    return Splits(TensorDataset(norm(x_train), torch.from_numpy(y_train)),
                  TensorDataset(norm(x_test), torch.from_numpy(y_test)))


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec("digits", "scikit-learn load_digits: 1,797 real 8x8 grey digits, offline", "digits",
                    _load_digits),
    ]
}


def get_dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return DATASETS[name]


def load_splits(name: str, options: dict | None = None) -> Splits:
    return get_dataset_spec(name).load(options or {})
