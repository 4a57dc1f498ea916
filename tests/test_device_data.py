"""CIFAR batches made on the device equal torchvision's transform on the same draws, and train."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF

from lightsnn.data.device import CropFlipNormalize, DeviceBatches, device_batches_of
from lightsnn.data.static import CIFAR_STATS, ArrayImageDataset, cifar_transforms


def test_the_batch_transform_is_torchvisions_on_the_same_draws():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    mean, std = CIFAR_STATS["cifar10"]
    transform = CropFlipNormalize(mean, std)
    torch.manual_seed(3)
    offsets, flips = [], []
    expected = []
    for image in images:  # torchvision's own draws: RandomCrop.get_params on the padded image, then a coin
        tensor = TF.pad(TF.to_tensor(image), [4])
        i, j, _, _ = T.RandomCrop.get_params(tensor, (32, 32))
        flip = bool(torch.rand(1) < 0.5)
        out = TF.crop(tensor, i, j, 32, 32)
        expected.append(TF.normalize(TF.hflip(out) if flip else out, mean, std))
        offsets.append((i, j))
        flips.append(flip)
    got = transform(torch.from_numpy(images), torch.tensor(offsets), torch.tensor(flips))
    assert any(flips) and not all(flips) and len({o for o in offsets}) > 1
    assert torch.allclose(got, torch.stack(expected), atol=1e-6)
    draws, coins = transform.draw(1000, torch.Generator().manual_seed(0))
    assert draws.min() == 0 and draws.max() == 8 and 0.4 < coins.float().mean() < 0.6  # torchvision's ranges


def test_device_batches_cover_the_epoch_once_and_only_for_the_papers_cifar_transform():
    images = np.zeros((10, 32, 32, 3), np.uint8)
    train_tf, test_tf = cifar_transforms("cifar10")
    dataset = ArrayImageDataset(images, np.arange(10) % 3, train_tf)
    batches = device_batches_of(dataset, 4, torch.device("cpu"), seed=1)
    assert isinstance(batches, DeviceBatches) and isinstance(batches.transform, CropFlipNormalize)
    assert len(batches) == 3
    seen = [y for _, y in batches]
    assert sorted(torch.cat(seen).tolist()) == sorted((np.arange(10) % 3).tolist())
    x, _ = next(iter(batches))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    assert device_batches_of(ArrayImageDataset(images, np.zeros(10), test_tf), 4, torch.device("cpu"), 1) is None


SUBSETS = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar-subsets"


@pytest.mark.skipif(not SUBSETS.is_dir(), reason="../shared/data/cifar-subsets is not beside the repo")
def test_a_training_runs_on_device_batches(tmp_path):
    from lightsnn.pipeline.jobs import run_train

    subsets = SUBSETS
    config = {"device": "cpu", "data": {"subsets": str(subsets)},
              "networks": {"cifar10-subset": {"channels": 4, "timesteps": 1, "classifier_width": 16}},
              "train": {"recipe": "quick", "epochs": 1, "batch_size": 16, "max_batches": 2, "device_data": True}}
    lines = []
    result = run_train("cifar10-subset", 0, config, tmp_path / "t", genotype="0302 0030 3003 0000", progress=False,
                       log=lines.append)
    assert result["history"][0]["samples_per_second"] > 0 and result["options"]["device_data"] is True
    assert not any("made on the host" in line for line in lines)


def test_device_frame_batches_are_the_host_loaders_frames_in_its_layout():
    from lightsnn.data import collate
    from lightsnn.data.device import FramesToFloat
    from lightsnn.data.events import FramesDataset

    frames = np.random.default_rng(0).integers(0, 5, (7, 3, 2, 4, 4)).astype(np.uint8)  # [N, T, P, H, W]
    dataset = FramesDataset(frames, np.arange(7))  # labels = indices: each batch says which samples it holds
    batches = device_batches_of(dataset, 3, torch.device("cpu"), seed=0)
    assert isinstance(batches, DeviceBatches) and isinstance(batches.transform, FramesToFloat)
    assert len(batches) == 3
    seen = []
    for x, y in batches:
        host, _ = collate(True)([dataset[int(i)] for i in y])
        assert x.dtype == torch.float32 and x.shape == (3, len(y), 2, 4, 4) and torch.equal(x, host)
        seen += y.tolist()
    assert sorted(seen) == list(range(7))


def test_an_event_training_runs_on_device_frames(tmp_path):
    from lightsnn.pipeline.jobs import run_train

    config = {"device": "cpu", "data": {"cache": str(tmp_path / "cache"), "ndigits": {"max_samples": 40}},
              "networks": {"ndigits": {"channels": 4, "timesteps": 2, "classifier_width": 16}},
              "train": {"recipe": "quick", "epochs": 1, "batch_size": 8, "max_batches": 2, "device_data": True}}
    lines = []
    result = run_train("ndigits", 0, config, tmp_path / "t", genotype="0302 0030 3003 0000", progress=False,
                       log=lines.append)
    assert result["history"][0]["samples_per_second"] > 0
    assert not any("made on the host" in line for line in lines)
