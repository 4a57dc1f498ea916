"""Static image datasets: digits, CIFAR-10/100 from local files, and the real CIFAR subsets."""
from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from lightsnn.data import DataOptions, Splits

#: Normalisation of the papers (methods.md §2.3).
CIFAR_STATS = {
    "cifar10": ((0.4913, 0.4821, 0.4465), (0.2470, 0.2434, 0.2615)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2673, 0.2564, 0.2762)),
}
class _TorchvisionClasses(dict):
    """Filled on first use: importing torchvision costs about 1.5 s (it imports torch._dynamo), which every
    job on digits or ndigits would otherwise pay at start-up."""

    def __missing__(self, name: str):
        import torchvision

        known = {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}
        self[name] = known[name]
        return known[name]


#: torchvision classes used to read the files (tests substitute a subclass that skips the md5 check).
TORCHVISION_CLASSES = _TorchvisionClasses()


def load_digits(options: DataOptions, timesteps: int, progress) -> Splits:
    """scikit-learn's 1,797 real 8x8 handwritten digits; fixed stratified 80/20 split."""
    start, path = time.perf_counter(), _digits_cache_path(options.cache_dir)
    built = not path.exists()
    x_train, x_test, y_train, y_test = digits_split(options.cache_dir)
    cache = {"path": str(path), "bytes": path.stat().st_size, "built": built, "seconds": time.perf_counter() - start}
    mean, std = float(x_train.mean()), float(x_train.std())

    def norm(a):
        return torch.from_numpy(((a - mean) / std)[:, None].astype(np.float32))

    return Splits(TensorDataset(norm(x_train), torch.from_numpy(y_train)),
                  TensorDataset(norm(x_test), torch.from_numpy(y_test)),
                  info={"cache": {"split": cache}})


def _digits_cache_path(cache_dir: Path) -> Path:
    from importlib.metadata import version

    from lightsnn.data.events import cache_key

    key = cache_key({"dataset": "digits", "split": "stratified 80/20 random_state=0",
                     "scikit-learn": version("scikit-learn"), "version": 1})
    return Path(cache_dir) / f"digits-split-{key}.npz"


def digits_split(cache_dir: Path | None = None):
    """Images in [0, 1] ([N, 8, 8]) and labels, split 80/20 stratified with a fixed seed.

    With ``cache_dir`` the arrays are read from (or first written to) an .npz there: a job that
    reads the cache skips importing scikit-learn, about 1 s of every digits/ndigits job's start-up."""
    if cache_dir is None:
        return _digits_split_from_sklearn()
    from lightsnn.core.atomic import atomic_path

    path = _digits_cache_path(cache_dir)
    if not path.exists():
        arrays = dict(zip(("x_train", "x_test", "y_train", "y_test"), _digits_split_from_sklearn()))
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    try:
        with np.load(path, allow_pickle=False) as data:
            return [data[k] for k in ("x_train", "x_test", "y_train", "y_test")]
    except Exception as err:  # zip or key errors of a damaged file
        raise ValueError(f"digits cache {str(path)!r} is damaged ({type(err).__name__}: {err}); delete it and run "
                         "'python -m lightsnn prepare' again") from None


def _digits_split_from_sklearn():
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    data = sk_load_digits()
    x = data.images.astype(np.float32) / 16.0
    y = data.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)


def cifar_transforms(name: str) -> tuple:
    from torchvision import transforms as T

    """The papers' training augmentation and the plain test transform."""
    mean, std = CIFAR_STATS[name]
    # ToTensor first, so PIL images (torchvision) and uint8 arrays (subsets) take the same path
    train = T.Compose([T.ToTensor(), T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.Normalize(mean, std)])
    test = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
    return train, test


def _cifar_files(cls) -> list[str]:
    return [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]


def _bad_cifar_file(folder: Path, cls) -> str | None:
    """Name the first file that does not unpickle, or (for torchvision's own classes) fails its md5."""
    import torchvision
    from torchvision.datasets.utils import check_integrity

    md5s = {f: m for f, m in cls.train_list + cls.test_list}
    md5s[cls.meta["filename"]] = cls.meta["md5"]
    for name in _cifar_files(cls):
        path = folder / name
        try:
            with open(path, "rb") as handle:
                pickle.load(handle, encoding="latin1")
        except Exception as err:
            return f"{path} ({type(err).__name__}: the file is truncated or not a CIFAR pickle)"
        if cls in (torchvision.datasets.CIFAR10, torchvision.datasets.CIFAR100) and \
                not check_integrity(str(path), md5s[name]):
            return f"{path} (md5 differs from the original file)"
    return None


def cifar_loader(name: str):
    def load(options: DataOptions, timesteps: int, progress) -> Splits:
        cls = TORCHVISION_CLASSES[name]
        root = Path(options.root)
        folder = root / cls.base_folder
        missing = [f for f in _cifar_files(cls) if not (folder / f).is_file()]
        if missing and not options.download:
            raise FileNotFoundError(
                f"{name}: missing {', '.join(missing)} in {folder}; put the extracted 'python version' archive "
                f"of the dataset there (folder {cls.base_folder}/ under data.root={str(root)!r}), or set "
                "data.download: true on a machine with a network")
        train_tf, test_tf = cifar_transforms(name)
        try:
            train = cls(str(root), train=True, transform=train_tf, download=options.download)
            test = cls(str(root), train=False, transform=test_tf, download=False)
        except Exception as err:
            bad = _bad_cifar_file(folder, cls)
            raise ValueError(f"{name}: cannot read {bad or folder}: {err}") from None
        return Splits(train, test, info={"root": str(folder)})

    return load


class ArrayImageDataset(Dataset):
    """uint8 HWC images with labels, through a torchvision transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images = images
        self.labels = labels.astype(np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.transform(self.images[index]), int(self.labels[index])


def _check_subset_arrays(arrays: dict, path: Path, classes: int) -> None:
    """Images as uint8 [N, 32, 32, 3] beside N integer labels in [0, classes): a file of another shape is named
    here, not as a shape error inside the first batch."""
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if x.ndim != 4 or x.shape[1:] != (32, 32, 3) or x.dtype != np.uint8:
            raise ValueError(f"{path}: {split}_x has shape {list(x.shape)} and dtype {x.dtype}; expected uint8 "
                             "images of shape [N, 32, 32, 3]")
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{path}: {split}_y has shape {list(y.shape)} and dtype {y.dtype}; expected "
                             f"{len(x)} integer labels (one per image of {split}_x)")
        if len(y) and not (0 <= y.min() and y.max() < classes):
            raise ValueError(f"{path}: {split}_y holds labels {int(y.min())}..{int(y.max())}; expected 0..{classes - 1}")


def subset_loader(name: str):
    def load(options: DataOptions, timesteps: int, progress) -> Splits:
        path = Path(options.subsets) / f"{name}_subset.npz"
        if not path.is_file():
            raise FileNotFoundError(f"{name}-subset: {path} not found; set data.subsets to the folder that holds "
                                    f"{name}_subset.npz (default data/cifar-subsets)")
        try:
            with np.load(path) as data:
                arrays = {k: data[k] for k in ("train_x", "train_y", "test_x", "test_y")}
        except Exception as err:
            raise ValueError(f"{name}-subset: cannot read {path}: {err}") from None
        _check_subset_arrays(arrays, path, classes=100 if name == "cifar100" else 10)
        train_tf, test_tf = cifar_transforms(name)
        return Splits(ArrayImageDataset(arrays["train_x"], arrays["train_y"], train_tf),
                      ArrayImageDataset(arrays["test_x"], arrays["test_y"], test_tf), info={"path": str(path)})

    return load
