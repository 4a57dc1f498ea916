"""Training batches made on the device: CIFAR's images stay there as uint8 and each batch is cropped, flipped and
normalised there in a few tensor ops, instead of per image on the host (PIL or numpy, ``num_workers=0``); cached
event frames stay there in their compact dtype and each batch is only indexed and cast.

The transform is the papers' (:func:`lightsnn.data.static.cifar_transforms`): ToTensor, RandomCrop(32,
padding=4) with zero fill, RandomHorizontalFlip, Normalize. Given the same draws (crop offsets and flips) it gives
torchvision's output exactly (tested); the draws come from one generator per epoch, so a run is reproducible but
not draw-for-draw the host path's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class CropFlipNormalize:
    """Random crop with zero padding, horizontal flip and normalisation, batch-wise."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    size: int = 32
    padding: int = 4

    def draw(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Per image: the crop's top-left corner in the padded image, and whether it is flipped."""
        span = self.size + 2 * self.padding - self.size + 1
        offsets = torch.randint(0, span, (n, 2), generator=generator)
        flips = torch.rand(n, generator=generator) < 0.5
        return offsets, flips

    def __call__(self, images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
        """uint8 [B, H, W, C] images -> normalised float [B, C, size, size], on the images' device."""
        device = images.device
        x = images.permute(0, 3, 1, 2).float().div_(255.0)
        x = F.pad(x, (self.padding,) * 4)  # zeros, as RandomCrop's fill after ToTensor
        steps = torch.arange(self.size, device=device)
        rows = (offsets[:, 0].to(device)[:, None] + steps)[:, None, :, None]
        cols = (offsets[:, 1].to(device)[:, None] + steps)[:, None, None, :]
        batch = torch.arange(len(x), device=device)[:, None, None, None]
        channel = torch.arange(x.shape[1], device=device)[None, :, None, None]
        x = x[batch, channel, rows, cols]
        x = torch.where(flips.to(device)[:, None, None, None], x.flip(-1), x)
        mean = torch.tensor(self.mean, device=device)[None, :, None, None]
        std = torch.tensor(self.std, device=device)[None, :, None, None]
        return (x - mean) / std


@dataclass(frozen=True)
class FramesToFloat:
    """Cached event frames ``[B, T, P, H, W]`` (any compact dtype) -> float32 ``[T, B, P, H, W]``, the host
    loader's layout; nothing random to draw."""

    def draw(self, n: int, generator: torch.Generator) -> tuple:
        return ()

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        return frames.float().transpose(0, 1).contiguous()


class DeviceBatches:
    """An epoch's training batches of samples held on ``device`` as stored (uint8 images, compact frames):
    shuffled by a seeded generator, each batch turned into the model's input by ``transform`` there (its random
    draws made once per epoch). Iterates like a DataLoader of (inputs, labels)."""

    def __init__(self, samples, labels, transform, batch_size: int, device: torch.device, seed: int):
        self.samples = torch.as_tensor(samples).to(device)
        self.labels = torch.as_tensor(labels, dtype=torch.long).to(device)
        self.transform = transform
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return (len(self.labels) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        order = torch.randperm(len(self.labels), generator=self.generator)
        draws = self.transform.draw(len(order), self.generator)
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            picked = index.to(self.samples.device)
            part = slice(start, start + len(index))
            yield self.transform(self.samples[picked], *(d[part] for d in draws)), self.labels[picked]


def device_batches_of(dataset, batch_size: int, device: torch.device, seed: int):
    """Device batches for a CIFAR-style training set (uint8 HWC images and labels in memory, the papers'
    augmentation) or for cached event frames; None where the dataset is of another kind (digits, a validation
    subset)."""
    from lightsnn.data.events import FramesDataset
    from lightsnn.data.static import ArrayImageDataset

    if isinstance(dataset, FramesDataset):
        return DeviceBatches(dataset.frames, dataset.labels, FramesToFloat(), batch_size, device, seed)

    images = getattr(dataset, "images", None) if isinstance(dataset, ArrayImageDataset) else getattr(dataset, "data", None)
    labels = getattr(dataset, "labels", None) if isinstance(dataset, ArrayImageDataset) else getattr(dataset, "targets", None)
    stats = _normalisation(getattr(dataset, "transform", None))
    if images is None or labels is None or stats is None or getattr(images, "ndim", 0) != 4 or images.shape[1:] != (32, 32, 3):
        return None
    return DeviceBatches(images, labels, CropFlipNormalize(*stats), batch_size, device, seed)


def _normalisation(transform) -> tuple | None:
    """The mean and std of a transform that is exactly the papers' CIFAR training augmentation, else None."""
    from torchvision import transforms as T

    steps = getattr(transform, "transforms", None)
    kinds = [type(t) for t in steps or []]
    if kinds != [T.ToTensor, T.RandomCrop, T.RandomHorizontalFlip, T.Normalize]:
        return None
    crop, flip, norm = steps[1], steps[2], steps[3]
    if tuple(crop.size) != (32, 32) or crop.padding != 4 or crop.fill != 0 or flip.p != 0.5:
        return None
    return tuple(float(v) for v in norm.mean), tuple(float(v) for v in norm.std)
