"""Event datasets: DVS128 Gesture (tonic) and ndigits (emulated), framed once and cached."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from lightsnn.core.options import check_known
from lightsnn.data import DataOptions, Splits
from lightsnn.data.events import EmulatorConfig, ToFramesByCount, cache_key, cached_split, emulate_batch, frame_all

NDIGITS_EXTRA = ("max_samples", "seed")


def _emulator_options(options: DataOptions) -> tuple[EmulatorConfig, int | None, int]:
    values = dict(options.ndigits or {})
    check_known(EmulatorConfig, values, "data.ndigits option(s)", NDIGITS_EXTRA)
    max_samples = values.pop("max_samples", None)
    seed = int(values.pop("seed", 0))
    return EmulatorConfig(**values), max_samples, seed


def load_ndigits(options: DataOptions, timesteps: int, progress) -> Splits:
    """load_digits images through the emulator, framed into ``timesteps`` frames and cached."""
    from lightsnn.data.static import digits_split

    config, max_samples, seed = _emulator_options(options)
    framer = ToFramesByCount(config.sensor_size(), timesteps)
    key = cache_key({"dataset": "ndigits", "emulator": asdict(config), "timesteps": timesteps,
                     "max_samples": max_samples, "seed": seed, "version": 1})
    folder = options.cache_dir / f"ndigits-T{timesteps}-{key}"
    prepared = {}
    for split in ("train", "test"):

        def build(split=split):  # only without a cache: a job that reads the frames skips digits and emulator
            x_train, x_test, y_train, y_test = digits_split(options.cache_dir)
            images, labels = (x_train, y_train) if split == "train" else (x_test, y_test)
            count = len(labels) if max_samples is None else min(len(labels), int(max_samples))
            split_seed = (seed, 0 if split == "train" else 1)
            chunk: dict[int, np.ndarray] = {}

            def read(i):
                if i not in chunk:  # emulate 256 digits at a time: one vectorised simulation
                    chunk.clear()
                    stop = min(count, i + 256)
                    chunk.update(zip(range(i, stop), emulate_batch(images[i:stop], config,
                                                                   [(*split_seed, j) for j in range(i, stop)])))
                return chunk.pop(i), int(labels[i])

            frames, labs, stats = frame_all(read, count, framer, f"ndigits {split}", progress)
            return frames, labs, {**stats, "emulator": asdict(config), "timesteps": timesteps}

        prepared[split] = cached_split(folder / f"{split}.npz", build)
    return _splits(prepared)


def _splits(prepared: dict) -> Splits:
    info = {"cache": {split: {"path": str(p.path), "bytes": p.path.stat().st_size, "built": p.built,
                              "seconds": p.seconds, **{k: v for k, v in p.meta.items() if k.startswith("events")}}
                      for split, p in prepared.items()}}
    return Splits(prepared["train"].dataset, prepared["test"].dataset, events=True, info=info)


GESTURE_LAYOUT = ("{root}/DVSGesture/ibmGesture{Split}.tar.gz and the extracted folder "
                  "{root}/DVSGesture/ibmGesture{Split}/user<NN>_<lighting>/<label>.npy (tonic's preprocessed "
                  "archives; tonic wants at least 100 .npy files per split)")


def _check_gesture_files(root: Path) -> None:
    from tonic.datasets import DVSGesture

    for split in ("Train", "Test"):
        location = root / DVSGesture.__name__
        archive = location / f"ibmGesture{split}.tar.gz"
        folder = location / f"ibmGesture{split}"
        count = sum(1 for _ in folder.glob("**/*.npy")) if folder.is_dir() else 0
        if not archive.is_file() or count < 100:
            raise FileNotFoundError(
                f"dvs128_gesture: {split.lower()} split not found under data.root={str(root)!r} "
                f"(archive {'present' if archive.is_file() else 'missing'}, {count} .npy files); expected "
                + GESTURE_LAYOUT.format(root=root, Split=split)
                + ". Fetch them with tonic.datasets.DVSGesture on a machine with a network and copy the folder here")


def load_dvs_gesture(options: DataOptions, timesteps: int, progress) -> Splits:
    from tonic.datasets import DVSGesture

    root = Path(options.root)
    framer = ToFramesByCount(DVSGesture.sensor_size, timesteps)
    prepared = {}
    for split, train in (("train", True), ("test", False)):
        folder = root / "DVSGesture" / f"ibmGesture{'Train' if train else 'Test'}"
        files = sorted(str(p.relative_to(folder)) for p in folder.glob("**/*.npy")) if folder.is_dir() else []
        key = cache_key({"dataset": "dvs128_gesture", "timesteps": timesteps, "files": files, "version": 1})
        cache = options.cache_dir / f"dvs128_gesture-T{timesteps}-{key}" / f"{split}.npz"

        def build(train=train, split=split):
            _check_gesture_files(root)  # before tonic: it would try to download
            dataset = DVSGesture(str(root), train=train)

            def read(i):
                try:
                    return dataset[i]
                except Exception as err:
                    raise ValueError(f"dvs128_gesture: cannot read {dataset.data[i]}: "
                                     f"{type(err).__name__}: {err}") from None

            frames, labels, stats = frame_all(read, len(dataset), framer, f"dvs128_gesture {split}", progress)
            return frames, labels, {**stats, "timesteps": timesteps}

        if not cache.exists():
            _check_gesture_files(root)
        prepared[split] = cached_split(cache, build)
    return _splits(prepared)
