"""Result files: written atomically (temp file, then rename) so nothing half-written is left."""
from __future__ import annotations

import json
import math
import os
import platform
import tempfile
from pathlib import Path


def versions() -> dict:
    import numpy
    import spikingjelly
    import torch

    from . import __version__
    return {"lightsnn": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "spikingjelly": getattr(spikingjelly, "__version__", _dist_version("spikingjelly")),
            "python": platform.python_version()}


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json_atomic(path: str | Path, data: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(_clean(data), handle, indent=2, allow_nan=False)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
