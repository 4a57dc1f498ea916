"""Checkpoints every long job shares (training, differentiable search): written atomically, read as weights
only, with every RNG state, and never torn apart from their log line by a signal."""
from __future__ import annotations

import contextlib
import random
import signal
import threading
from pathlib import Path

import numpy as np
import torch

from lightsnn.core.atomic import atomic_path


def save_checkpoint(obj: dict, path: Path) -> None:
    """Serialised in memory, then written as plain bytes: a full disk is then an ``OSError`` naming the file
    (torch's own writer reports it as ``enforce fail at inline_container.cc ... unexpected pos``)."""
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(buffer.getbuffer())


def rng_state() -> dict:
    """Every RNG state as tensors and plain types, so the checkpoint loads with ``weights_only=True``."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CheckpointError(ValueError):
    """A checkpoint that cannot be read safely (damaged, foreign, or holding pickled code)."""


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read a lightsnn checkpoint with ``weights_only=True``: a crafted pickle is refused, never run."""
    import pickle

    path = Path(path)
    try:
        saved = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:  # torch's message would advise the unsafe load; we never do
        raise CheckpointError(f"checkpoint {str(path)!r} is not a lightsnn checkpoint: it holds Python objects "
                              "other than weights and plain data, which lightsnn never loads (they could run "
                              "code); give a checkpoint.pt or best.pt written by 'train'") from None
    except Exception as err:  # RuntimeError/EOFError/KeyError for damaged or foreign files
        raise CheckpointError(f"checkpoint {str(path)!r} is not a lightsnn checkpoint or is damaged (torch cannot "
                              f"read it: {type(err).__name__}); give a checkpoint.pt or best.pt written by "
                              "'train'") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("meta"), dict) or "model" not in saved:
        raise CheckpointError(f"checkpoint {str(path)!r} is not a lightsnn checkpoint (no model weights and meta)")
    return saved


@contextlib.contextmanager
def signals_deferred():
    """SIGTERM and SIGINT arriving inside take effect when it ends: a kill between an epoch's checkpoint and
    its MLflow log would otherwise leave the resumed run without that epoch (it is never trained again).

    Deferred where Python handles them: while inside, their handlers only note the signal, and the block's end
    restores the handlers and raises what was noted. (Blocking them with ``pthread_sigmask`` held only the main
    thread: the kernel hands a process's signal to a thread that does not block it, one of torch's workers, and
    Python then ran the handler inside the block.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []
    held = (signal.SIGTERM, signal.SIGINT)
    previous = {signum: signal.signal(signum, lambda signum, frame: noted.append(signum)) for signum in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        for signum in dict.fromkeys(noted):
            signal.raise_signal(signum)  # now the job's own handler: SIGTERM's SystemExit, Ctrl-C's KeyboardInterrupt
