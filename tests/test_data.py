import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from lightsnn.data import DataOptions, load_splits, prepare
from lightsnn.data import static as static_data
from lightsnn.data.events import (
    EVENT_DTYPE,
    EmulatorConfig,
    ToFramesByCount,
    emulate_batch,
    read_frames,
    split_indices_by_count,
)
from lightsnn.pipeline.jobs import run_search

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data (real samples) is not beside the repo")


def _numpy_count(events, sensor, frames):
    """The papers' framing written out directly: N//T events per frame, the last takes the rest."""
    w, h, p = sensor
    n = len(events)
    out = np.zeros((frames, p, h, w), np.float32)
    step = n // frames
    for i, e in enumerate(events):
        f = min(i // step, frames - 1) if step else frames - 1
        out[f, int(e["p"]), e["y"], e["x"]] += 1
    return out


def _random_events(n, w, h, seed):
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EVENT_DTYPE)
    ev["x"], ev["y"] = rng.integers(0, w, n), rng.integers(0, h, n)
    ev["t"], ev["p"] = np.sort(rng.integers(0, 10**6, n)), rng.integers(0, 2, n)
    return ev


def test_framing_equals_a_direct_count_and_keeps_the_remainder():
    ev = _random_events(1003, 16, 12, 0)  # 1003 = 5 * 200 + 3: the last frame takes 203 events
    frames = ToFramesByCount((16, 12, 2), 5)(ev)
    assert frames.shape == (5, 2, 12, 16) and frames.dtype == np.float32
    assert np.array_equal(frames, _numpy_count(ev, (16, 12, 2), 5))
    assert frames.reshape(5, -1).sum(1).tolist() == [200, 200, 200, 200, 203]
    starts, ends = split_indices_by_count(1003, 5)
    assert ends[-1] == 1003 and starts.tolist() == [0, 200, 400, 600, 800]
    # tonic's ToFrame(n_event_bins) drops the remainder instead (why we slice at the papers' indices)
    from tonic.transforms import ToFrame
    tonic_frames = ToFrame(sensor_size=(16, 12, 2), n_event_bins=5)(ev)
    assert tonic_frames.sum() == 1000


@needs_shared
def test_genuine_nmnist_recording_is_read_with_tonic_and_framed():
    import tonic
    from tonic.datasets import NMNIST

    ev = tonic.io.read_mnist_file(str(SHARED / "events" / "sample_nmnist.bin"), dtype=NMNIST.dtype)
    assert len(ev) == 4325
    frames = ToFramesByCount(NMNIST.sensor_size, 5)(ev)
    assert frames.shape == (5, 2, 34, 34) and frames.sum() == 4325
    assert np.array_equal(frames, _numpy_count(ev, NMNIST.sensor_size, 5))


def test_emulator_is_deterministic_per_seed_and_looks_like_nmnist():
    from lightsnn.data.static import digits_split

    images = digits_split()[0][:6]
    config = EmulatorConfig()
    a = emulate_batch(images, config, [(0, i) for i in range(6)])
    b = emulate_batch(images[:2], config, [(0, i) for i in range(2)])
    assert all(np.array_equal(a[i], b[i]) for i in range(2))  # independent of the rest of the batch
    c = emulate_batch(images[:1], config, [(1, 0)])
    assert not np.array_equal(a[0], c[0])  # another seed: other jitter and noise
    for ev in a:
        assert ev.dtype == EVENT_DTYPE and np.all(np.diff(ev["t"]) >= 0)
        assert ev["x"].max() < 32 and ev["y"].max() < 32 and ev["t"].max() <= 300_000
        assert 0.4 < ev["p"].mean() < 0.6
        assert 2500 < len(ev) < 7000  # the genuine N-MNIST recording has 4,325
    # a blank image gives only background noise
    blank = emulate_batch(np.zeros((1, 8, 8)), config, [(0, 0)])[0]
    assert len(blank) < 0.05 * len(a[0])


def test_ndigits_is_framed_once_and_cached_atomically(tmp_path):
    data = {"cache": str(tmp_path / "cache"), "ndigits": {"max_samples": 12}}
    report = prepare("ndigits", data, timesteps=4, progress=False)
    assert report["train"]["samples"] == 12 and report["train"]["input_shape"] == [4, 2, 32, 32]
    cache = report["cache"]["train"]
    assert cache["built"] and 2500 < cache["events_mean"] < 7000
    again = prepare("ndigits", data, timesteps=4, progress=False)
    assert not again["cache"]["train"]["built"]
    splits = load_splits("ndigits", data, 4)
    x, y = splits.train[0]
    assert splits.events and x.dtype == torch.float32 and x.shape == (4, 2, 32, 32) and x.sum() > 1000
    # a half-written cache never counts: only the renamed file is read
    path = Path(cache["path"])
    assert not list(path.parent.glob(".*.tmp"))
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match=f"frame cache '{path}' is damaged"):
        load_splits("ndigits", data, 4)
    # other timesteps or emulator settings get their own cache
    other = prepare("ndigits", {**data, "ndigits": {"max_samples": 12, "contrast": 0.4}}, 4, progress=False)
    assert other["cache"]["train"]["path"] != cache["path"]
    with pytest.raises(ValueError, match="unknown data.ndigits option"):
        load_splits("ndigits", {**data, "ndigits": {"contrst": 1}}, 4)


# --- CIFAR in torchvision's own layout, from genuine images ------------------------------------

def _write_cifar(root: Path, name: str, per_file: int = 20) -> Path:
    """Genuine CIFAR images written as the original python pickles (cifar-10-batches-py / cifar-100-python)."""
    subset = np.load(SHARED / "cifar-subsets" / f"{name}_subset.npz")
    cls = static_data.TORCHVISION_CLASSES[name]
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    label_key = "labels" if name == "cifar10" else "fine_labels"
    x, y = subset["train_x"], subset["train_y"]
    for i, (fname, _) in enumerate(cls.train_list):
        part = slice(i * per_file, (i + 1) * per_file)
        batch = {"data": x[part].transpose(0, 3, 1, 2).reshape(-1, 3072), label_key: y[part].tolist()}
        (folder / fname).write_bytes(pickle.dumps(batch))
    tx, ty = subset["test_x"][:per_file], subset["test_y"][:per_file]
    (folder / cls.test_list[0][0]).write_bytes(pickle.dumps({"data": tx.transpose(0, 3, 1, 2).reshape(-1, 3072),
                                                             label_key: ty.tolist()}))
    names = [f"class{i}" for i in range(10 if name == "cifar10" else 100)]
    (folder / cls.meta["filename"]).write_bytes(pickle.dumps({cls.meta["key"]: names}))
    return folder


def _unchecked(cls):
    """The fixture's files are not the original ones, so only here the md5 check is skipped."""
    return type(f"Unchecked{cls.__name__}", (cls,), {"_check_integrity": lambda self: True,
                                                      "meta": {**cls.meta, "md5": None}})


@needs_shared
@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_loads_real_images_with_torchvision_classes(tmp_path, monkeypatch, name):
    folder = _write_cifar(tmp_path, name)
    real_cls = static_data.TORCHVISION_CLASSES[name]
    # torchvision's own class keeps its md5 check: these are not the original files
    with pytest.raises(ValueError, match="md5 differs from the original file"):
        load_splits(name, {"root": str(tmp_path)})
    monkeypatch.setitem(static_data.TORCHVISION_CLASSES, name, _unchecked(real_cls))
    splits = load_splits(name, {"root": str(tmp_path)})
    assert isinstance(splits.train, real_cls)
    assert len(splits.train) == 20 * len(real_cls.train_list) and len(splits.test) == 20
    x, y = splits.test[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    subset = np.load(SHARED / "cifar-subsets" / f"{name}_subset.npz")
    mean, std = static_data.CIFAR_STATS[name]
    expected = (torch.from_numpy(subset["test_x"][0]).permute(2, 0, 1) / 255 - torch.tensor(mean)[:, None, None]) \
        / torch.tensor(std)[:, None, None]
    assert torch.allclose(x, expected, atol=1e-6) and y == int(subset["test_y"][0])
    # a truncated batch file is named
    bad = folder / real_cls.train_list[-1][0]
    bad.write_bytes(bad.read_bytes()[:500])
    with pytest.raises(ValueError, match=f"cannot read {bad}"):
        load_splits(name, {"root": str(tmp_path)})


def test_missing_cifar_files_say_where_to_put_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar10: missing data_batch_1, .* in .*cifar-10-batches-py"):
        load_splits("cifar10", {"root": str(tmp_path)})


@needs_shared
def test_search_runs_on_real_cifar_in_torchvision_layout(tmp_path, monkeypatch, tiny_config):
    _write_cifar(tmp_path, "cifar10")
    monkeypatch.setitem(static_data.TORCHVISION_CLASSES, "cifar10", _unchecked(torchvision.datasets.CIFAR10))
    tiny_config["data"] = {"root": str(tmp_path)}
    tiny_config["networks"]["cifar10"] = {"channels": 4, "timesteps": 2, "classifier_width": 16, "num_cluster": 2}
    result = run_search("snasnet", "cifar10", 0, tiny_config, {"num_search": 2, "repeat": 1})
    assert result["num_scorings"] == 2 and result["network"]["in_channels"] == 3


@needs_shared
@pytest.mark.parametrize("name, train, test", [("cifar10", 5170, 1017), ("cifar100", 486, 916)])
def test_real_cifar_subsets(name, train, test):
    splits = load_splits(f"{name}-subset", {"subsets": str(SHARED / "cifar-subsets")})
    assert (len(splits.train), len(splits.test)) == (train, test)
    x, _ = splits.train[0]
    assert x.shape == (3, 32, 32)
    with pytest.raises(FileNotFoundError, match="set data.subsets"):
        load_splits(f"{name}-subset", {"subsets": "/nonexistent"})


# --- DVS128 Gesture in tonic's layout ---------------------------------------------------------

def _write_gesture_tree(root: Path, per_split: int = 100) -> Path:
    """A tiny tree in the layout tonic's DVSGesture reads: user<NN>_<lighting>/<label>.npy holding
    x, y, p, t(ms) columns; tonic wants the archive beside it and at least 100 files per split."""
    rng = np.random.default_rng(0)
    base = root / "DVSGesture"
    for split in ("Train", "Test"):
        base.mkdir(parents=True, exist_ok=True)
        (base / f"ibmGesture{split}.tar.gz").write_bytes(b"")
        for i in range(per_split):
            folder = base / f"ibmGesture{split}" / f"user{i // 11 + 1:02d}_fluorescent"
            folder.mkdir(parents=True, exist_ok=True)
            n = int(rng.integers(30, 60))
            ev = np.stack([rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n),
                           np.sort(rng.integers(0, 6000, n))], axis=1).astype(np.float64)
            np.save(folder / f"{i % 11}.npy", ev)
    return base


def test_dvs_gesture_tree_loads_with_tonic_and_frames_like_the_papers(tmp_path):
    from tonic.datasets import DVSGesture

    _write_gesture_tree(tmp_path)
    data = {"root": str(tmp_path)}
    report = prepare("dvs128_gesture", data, timesteps=4, progress=False)
    assert report["train"]["input_shape"] == [4, 2, 128, 128]
    tonic_ds = DVSGesture(str(tmp_path), train=True)
    assert report["train"]["samples"] == len(tonic_ds) >= 100
    splits = load_splits("dvs128_gesture", data, 4)
    events, label = tonic_ds[0]
    x, y = splits.train[0]
    assert y == label
    assert np.array_equal(x.numpy(), _numpy_count(events, DVSGesture.sensor_size, 4))


def test_dvs_gesture_errors_name_the_file_or_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"DVSGesture/ibmGestureTrain.tar.gz"):
        load_splits("dvs128_gesture", {"root": str(tmp_path)}, 4)
    base = _write_gesture_tree(tmp_path)
    bad = sorted((base / "ibmGestureTest").glob("**/*.npy"))[0]
    bad.write_bytes(bad.read_bytes()[:90])
    with pytest.raises(ValueError, match=f"cannot read {bad}"):
        load_splits("dvs128_gesture", {"root": str(tmp_path)}, 4)
    assert not list((tmp_path / "cache").glob("**/test.npz"))  # nothing half-made is left as a cache


@pytest.mark.parametrize("dataset", ["digits", "ndigits", "dvs128_gesture"])
def test_search_runs_on_event_and_offline_datasets(tmp_path, tiny_config, dataset):
    if dataset == "dvs128_gesture":
        _write_gesture_tree(tmp_path)
    tiny_config["data"] = {"root": str(tmp_path), "ndigits": {"max_samples": 20}}
    tiny_config["networks"][dataset] = {"channels": 2, "timesteps": 2, "classifier_width": 8, "num_cluster": 2}
    result = run_search("lightsnn", dataset, 0, tiny_config, {"repeat": 1, "batch_size": 4})
    assert result["num_scorings"] == 60


def test_unknown_data_options_are_rejected():
    with pytest.raises(ValueError, match=r"unknown data option\(s\) \['rot'\]"):
        DataOptions.from_config({"rot": "x"})


def test_cache_reader_rejects_garbage(tmp_path):
    path = tmp_path / "x.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="damaged"):
        read_frames(path)


def test_prepared_digits_and_ndigits_load_without_scikit_learn(tmp_path):
    """prepare caches the digits split; a later job reads it (and ndigits its frames) without importing
    scikit-learn, and gets the very arrays the split gives."""
    import json
    import subprocess
    import sys

    from lightsnn.data.static import digits_split

    cache = tmp_path / "cache"
    options = {"cache": str(cache), "ndigits": {"max_samples": 40}}
    first = digits_split(cache)
    for got, want in zip(first, digits_split(None)):
        assert got.dtype == want.dtype and (got == want).all()
    code = ("import sys, json; from lightsnn.data import load_splits; "
            "s = [load_splits(n, json.loads(sys.argv[1]), 2, False) for n in ('digits', 'ndigits')]; "
            "print(len(s[0].train), len(s[1].train), 'sklearn' in sys.modules)")
    load_splits("ndigits", options, 2, False)  # builds the frames once
    out = subprocess.run([sys.executable, "-c", code, json.dumps(options)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1437", "40", "False"]
    damaged = next(cache.glob("digits-split-*.npz"))
    damaged.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="digits cache .* is damaged .*delete it and run"):
        digits_split(cache)


def test_the_files_a_dry_run_checks_are_the_files_the_loaders_read():
    """The workflow makes each dataset's files the inputs of its prepare job (a dry run then names the missing
    ones): they must be the files the loaders themselves require."""
    import torchvision

    from lightsnn.data import DATASETS
    from lightsnn.data.static import _cifar_files

    for name, cls in (("cifar10", torchvision.datasets.CIFAR10), ("cifar100", torchvision.datasets.CIFAR100)):
        files = [t.format(root="R", subsets="S") for t in DATASETS[name].files]
        assert files == [f"R/{cls.base_folder}/{f}" for f in _cifar_files(cls)] and DATASETS[name].downloadable
    assert DATASETS["cifar10-subset"].files == ("{subsets}/cifar10_subset.npz",)
    assert [t.format(root="R") for t in DATASETS["dvs128_gesture"].files] == [
        "R/DVSGesture/ibmGestureTrain.tar.gz", "R/DVSGesture/ibmGestureTest.tar.gz"]  # dvs.GESTURE_LAYOUT's archives
    assert not DATASETS["digits"].files and not DATASETS["ndigits"].files  # built offline
