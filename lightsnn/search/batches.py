"""Search batches: the one narrow interface through which scoring sees data.

A provider hands out the batch of repeat ``r`` already on the device. With
``fresh=False`` (default) the ``repeat`` batches are drawn once and shared by
every candidate, so candidates are compared on the same samples; ``fresh=True``
draws new random samples per request as the reference code's new
``iter(DataLoader)`` does.
"""
from __future__ import annotations

import time
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import Dataset


class SearchBatches(Protocol):
    batch_size: int
    data_seconds: float

    def get(self, repeat_index: int) -> torch.Tensor: ...

    def labels(self, repeat_index: int) -> torch.Tensor: ...


class DatasetSearchBatches:
    def __init__(self, dataset: Dataset, batch_size: int, repeat: int, device: torch.device | str,
                 seed: int, fresh: bool = False, events: bool = False):
        if batch_size < 2:
            raise ValueError(f"search batch size must be at least 2 (SAHD compares samples), got {batch_size}")
        if batch_size > len(dataset):
            raise ValueError(f"search batch size {batch_size} exceeds the {len(dataset)} training samples")
        self.dataset = dataset
        self.batch_size = batch_size
        self.repeat = repeat
        self.device = torch.device(device)
        self.fresh = fresh
        self.events = events
        self.rng = np.random.default_rng(seed)
        self.data_seconds = 0.0
        self._fixed = None if fresh else [self._draw() for _ in range(repeat)]

    def _draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        start = time.perf_counter()
        indices = self.rng.choice(len(self.dataset), size=self.batch_size, replace=False)
        samples = [self.dataset[int(i)] for i in indices]
        x = torch.stack([s[0] for s in samples]).to(self.device, non_blocking=True)
        y = torch.as_tensor([int(s[1]) for s in samples], dtype=torch.long, device=self.device)
        if self.events:  # [B, T, C, H, W] -> [T, B, C, H, W]
            x = x.transpose(0, 1).contiguous()
        self.data_seconds += time.perf_counter() - start
        return x, y

    def get(self, repeat_index: int) -> torch.Tensor:
        if self._fixed is not None:
            return self._fixed[repeat_index % len(self._fixed)][0]
        return self._draw()[0]

    def labels(self, repeat_index: int) -> torch.Tensor:
        """The labels of :meth:`get`'s batch ``repeat_index`` (fixed batches only: fresh ones are never drawn
        twice)."""
        if self._fixed is None:
            raise RuntimeError("labels() needs fixed batches (fresh=False)")
        return self._fixed[repeat_index % len(self._fixed)][1]
