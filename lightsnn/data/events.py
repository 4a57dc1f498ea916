"""Event streams to frames, the event-camera emulator, and the on-disk frame cache.

Frames follow the papers (methods.md §1.2, spikingjelly ``split_by='number'``): the N
events of a recording are cut into T slices of N // T consecutive events, the
last slice taking the remainder, and each frame holds per-pixel, per-polarity
event counts: float32 ``[T, P, H, W]``. tonic's own ``ToFrame(n_event_bins=T)``
drops the remainder instead, so slicing uses tonic's ``SliceAtIndices`` at the
papers' indices.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from lightsnn.core.atomic import atomic_path

#: tonic's event layout: structured array with these fields (t in microseconds).
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])


def split_indices_by_count(num_events: int, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Start/end event indices of the papers' frames: N // T each, the last takes the remainder."""
    if num_frames < 1:
        raise ValueError(f"number of frames must be >= 1, got {num_frames}")
    step = num_events // num_frames
    starts = np.arange(num_frames) * step
    ends = starts + step
    ends[-1] = num_events
    return starts, ends


@dataclass(frozen=True)
class ToFramesByCount:
    """Frame an event stream into ``n_frames`` count frames, float32 [T, P, H, W].

    ``sensor_size`` is tonic's (W, H, P).
    """

    sensor_size: tuple[int, int, int]
    n_frames: int

    def __call__(self, events: np.ndarray) -> np.ndarray:
        from tonic.slicers import SliceAtIndices  # here: only building a frame cache needs tonic (0.2-0.6 s)

        width, height, polarities = self.sensor_size
        starts, ends = split_indices_by_count(len(events), self.n_frames)
        slices, _ = SliceAtIndices(start_indices=starts, end_indices=ends).slice(events, None)
        frames = np.zeros((self.n_frames, polarities, height, width), dtype=np.float32)
        for index, chunk in enumerate(slices):
            if len(chunk):
                x, y, p = chunk["x"].astype(np.intp), chunk["y"].astype(np.intp), chunk["p"].astype(np.intp)
                if x.max() >= width or y.max() >= height or p.max() >= polarities or min(x.min(), y.min()) < 0:
                    raise ValueError(f"events outside the sensor {self.sensor_size}: x<={x.max()}, "
                                     f"y<={y.max()}, p<={p.max()}")
                np.add.at(frames[index], (p, y, x), 1.0)
        return frames


# --- the event-camera emulator (ndigits) -------------------------------------------------------

@dataclass(frozen=True)
class EmulatorConfig:
    """An N-MNIST-like recording of a static image (Orchard et al. 2015 moved an ATIS camera in three
    100 ms saccades over MNIST digits on a screen). Here the image moves along a triangle in front of
    a simulated sensor; each pixel emits an ON/OFF event when its log intensity has changed by more
    than ``contrast`` since its last event, at most one event per ``refractory_us``."""

    sensor: int = 32  # sensor width = height in pixels
    digit_size: int = 24  # the image is scaled to this many pixels
    saccade_px: float = 2.0  # triangle side (pixels): (0,0) -> (s,s) -> (2s,0) -> (0,0)
    saccade_ms: float = 100.0  # duration of each of the three saccades
    step_us: int = 1000  # simulation time step
    contrast: float = 0.3  # log-intensity change per event; 0.3 gives ~4.2k events per digit, as N-MNIST
    refractory_us: int = 1000
    background: float = 0.05  # screen intensity behind the digit (intensity range 0..1)
    noise_hz: float = 0.2  # background-activity events per pixel per second

    def sensor_size(self) -> tuple[int, int, int]:
        return (self.sensor, self.sensor, 2)


def _trajectory(config: EmulatorConfig) -> tuple[np.ndarray, np.ndarray]:
    """Times (us) and (dx, dy) offsets of the image at each simulation step."""
    s = config.saccade_px
    corners = np.array([(0.0, 0.0), (s, s), (2 * s, 0.0), (0.0, 0.0)])
    steps = int(round(config.saccade_ms * 1000 / config.step_us))
    offsets = [corners[i] + (corners[i + 1] - corners[i]) * (k / steps) for i in range(3) for k in range(steps)]
    offsets.append(corners[-1])
    times = np.arange(len(offsets), dtype=np.int64) * config.step_us
    return times, np.array(offsets)


def _sensor_frames(images: np.ndarray, config: EmulatorConfig) -> np.ndarray:
    """Intensity seen by each pixel at each step: [S, N, sensor, sensor], bilinear motion of every image."""
    import torch.nn.functional as F

    images = torch.from_numpy(np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0))[:, None]
    digits = F.interpolate(images, size=(config.digit_size,) * 2, mode="bilinear", align_corners=False)
    pad = config.sensor - config.digit_size - int(np.ceil(2 * config.saccade_px))
    if pad < 0:
        raise ValueError(f"digit_size {config.digit_size} plus the saccades does not fit a {config.sensor} sensor")
    canvas = F.pad(digits, (pad // 2, config.sensor - config.digit_size - pad // 2) * 2)
    _, offsets = _trajectory(config)
    frames = []
    n = canvas.shape[0]
    for dx, dy in offsets:  # translate by (dx, dy) pixels: sample the canvas at (x - dx, y - dy)
        theta = torch.tensor([[[1.0, 0.0, -2 * dx / config.sensor], [0.0, 1.0, -2 * dy / config.sensor]]],
                             dtype=torch.float32)
        # one image's grid, shared by all: the same values as a grid per image, without n times the work
        grid = F.affine_grid(theta, [1, *canvas.shape[1:]], align_corners=False).expand(n, -1, -1, -1)
        frames.append(F.grid_sample(canvas, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0])
    return torch.stack(frames).numpy()


def emulate_batch(images: np.ndarray, config: EmulatorConfig, seeds: list) -> list[np.ndarray]:
    """Events of each grey image (values in [0, 1]) as tonic structured arrays (t in us, sorted).

    Pixels are simulated independently, so a sample's events depend only on its image and its seed,
    never on the other images of the batch.
    """
    times, _ = _trajectory(config)
    log_frames = np.log(config.background + (1 - config.background) * _sensor_frames(images, config))
    log_ref = log_frames[0].copy()
    refractory_until = np.zeros(log_ref.shape, dtype=np.int64)
    found = []  # (sample, y, x, step, polarity) per step
    flat_ref, flat_refractory = log_ref.reshape(-1), refractory_until.reshape(-1)  # views
    for step in range(1, len(times)):
        t = times[step]
        diff = log_frames[step] - log_ref
        ready = refractory_until <= t
        for polarity, fired in ((1, (diff >= config.contrast) & ready), (0, (diff <= -config.contrast) & ready)):
            # flat indices of the few pixels that fire: C order, as np.nonzero gives them, at a fraction of
            # the cost of nonzero and boolean-mask updates on the whole [N, sensor, sensor] array
            where = np.flatnonzero(fired)
            if len(where):
                found.append((*np.unravel_index(where, fired.shape), np.full(len(where), t - config.step_us),
                              np.full(len(where), polarity)))
                flat_ref[where] += config.contrast if polarity else -config.contrast
                flat_refractory[where] = t + config.refractory_us
    cols = [np.concatenate(c) for c in zip(*found)] if found else [np.zeros(0, np.int64)] * 5
    order = np.argsort(cols[0], kind="stable")
    sample, y, x, t0, p = (c[order] for c in cols)
    bounds = np.searchsorted(sample, np.arange(len(images) + 1))
    duration = int(times[-1])
    results = []
    for i, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        lo, hi = bounds[i], bounds[i + 1]
        n_noise = rng.poisson(config.noise_hz * duration / 1e6 * config.sensor ** 2)
        events = np.zeros(hi - lo + n_noise, dtype=EVENT_DTYPE)
        events["x"] = np.concatenate([x[lo:hi], rng.integers(0, config.sensor, n_noise)])
        events["y"] = np.concatenate([y[lo:hi], rng.integers(0, config.sensor, n_noise)])
        events["t"] = np.concatenate([t0[lo:hi] + rng.integers(0, config.step_us, hi - lo),
                                      rng.integers(0, duration, n_noise)])
        events["p"] = np.concatenate([p[lo:hi], rng.integers(0, 2, n_noise)])
        results.append(events[np.argsort(events["t"], kind="stable")])
    return results



# --- frame cache -------------------------------------------------------------------------------

class FramesDataset(Dataset):
    """Cached count frames ([N, T, P, H, W], stored compactly) served as float32 tensors."""

    def __init__(self, frames: np.ndarray, labels: np.ndarray):
        self.frames = frames
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return torch.from_numpy(np.asarray(self.frames[index], dtype=np.float32)), int(self.labels[index])


def cache_key(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def write_frames_atomic(path: Path, frames: np.ndarray, labels: np.ndarray, meta: dict) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, frames=frames, labels=labels, meta=np.array(json.dumps(meta)))


def read_frames(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return data["frames"], data["labels"], json.loads(str(data["meta"]))
    except Exception as err:  # zip, key or decode errors of a damaged file
        raise ValueError(f"frame cache {str(path)!r} is damaged ({type(err).__name__}: {err}); delete it and run "
                         "'python -m lightsnn prepare' again") from None


def compact(frames: np.ndarray) -> np.ndarray:
    """Counts stored as uint8 when they fit (exactly), else uint16/float32."""
    peak = float(frames.max()) if frames.size else 0.0
    for dtype in (np.uint8, np.uint16):
        if peak <= np.iinfo(dtype).max:
            return frames.astype(dtype)
    return frames


def frame_all(read: Callable[[int], tuple[np.ndarray, int]], count: int, framer: ToFramesByCount,
              desc: str, progress: bool | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Frame every recording ``read(i)``; returns frames, labels and statistics."""
    from tqdm.auto import tqdm

    from lightsnn.core.budget import require_memory

    width, height, polarities = framer.sensor_size
    require_memory(2 * 4 * count * framer.n_frames * polarities * height * width,  # float32 frames, then stacked
                   f"framing {count} recordings into T={framer.n_frames} frames of {polarities}x{height}x{width}",
                   "the timesteps (prepare --timesteps, network.timesteps)")
    frames, labels, n_events = [], [], []
    for i in tqdm(range(count), desc=desc, disable=None if progress is None else not progress, leave=False):
        events, label = read(i)
        frames.append(framer(events))
        labels.append(label)
        n_events.append(len(events))
    stacked = compact(np.stack(frames)) if frames else np.zeros((0,), np.uint8)
    stats = {"samples": count, "events_mean": float(np.mean(n_events)) if n_events else 0.0,
             "events_min": int(min(n_events)) if n_events else 0, "events_max": int(max(n_events)) if n_events else 0}
    return stacked, np.asarray(labels, dtype=np.int64), stats


@dataclass
class PreparedSplit:
    path: Path
    dataset: FramesDataset
    meta: dict
    built: bool
    seconds: float


def cached_split(path: Path, build: Callable[[], tuple[np.ndarray, np.ndarray, dict]]) -> PreparedSplit:
    """Load frames from ``path``, building and writing them first when the cache is absent."""
    start = time.perf_counter()
    built = False
    if not path.exists():
        frames, labels, meta = build()
        write_frames_atomic(path, frames, labels, meta)
        built = True
    frames, labels, meta = read_frames(path)
    return PreparedSplit(path, FramesDataset(frames, labels), meta, built, time.perf_counter() - start)

