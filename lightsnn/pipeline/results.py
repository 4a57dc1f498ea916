"""Result files: written atomically (temp file, then rename) so nothing half-written is left."""
from __future__ import annotations

import json
import platform
from pathlib import Path

from lightsnn.core.atomic import write_text_atomic
from lightsnn.core.jsonfloats import encode_non_finite

#: The schema version of each result kind this code writes and reads (docs/results.md).
SCHEMA_VERSIONS = {"search": 1, "train": 1, "evaluate": 1, "correlate": 1, "replicate": 1,
                   "benchmark-search": None}  # None: records that carry no version
#: Keys a result of each kind must hold for the verbs that read it.
REQUIRED_KEYS = {"search": ("method", "dataset", "seed", "genotype", "network", "options"),
                 "train": ("dataset", "seed", "genotype", "history"),
                 "evaluate": ("dataset", "seed", "top1"),
                 "correlate": ("dataset", "correlations", "architectures"),
                 "replicate": ("name", "method", "dataset", "runs"),
                 "benchmark-search": ("method", "seed", "id", "valid", "test_acc", "percentile", "search_seconds",
                                      "num_scorings")}


def read_result(path: str | Path, kind: str) -> dict:
    """A result file of one kind, checked: its kind, schema version and keys, or a one-line error."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{kind} result {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read {kind} result {str(path)!r}: {err}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{kind} result {str(path)!r} is not valid JSON ({err})") from None
    found = data.get("kind") if isinstance(data, dict) else f"a JSON {type(data).__name__}"
    if found != kind:
        raise ValueError(f"{str(path)!r} is not a {kind} result (it holds {found!r}); "
                         f"give the {kind} JSON written by 'python -m lightsnn {kind.replace('-', ' ')}'")
    if SCHEMA_VERSIONS[kind] is not None and data.get("schema_version") != SCHEMA_VERSIONS[kind]:
        raise ValueError(f"{kind} result {str(path)!r} has schema_version {data.get('schema_version')!r}; "
                         f"this lightsnn reads version {SCHEMA_VERSIONS[kind]}")
    missing = [key for key in REQUIRED_KEYS[kind] if key not in data]
    if missing:
        raise ValueError(f"{kind} result {str(path)!r} lacks {missing}")
    return data


def versions() -> dict:
    import numpy
    import spikingjelly
    import torch

    from lightsnn import __version__
    return {"lightsnn": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "spikingjelly": getattr(spikingjelly, "__version__", _dist_version("spikingjelly")),
            "python": platform.python_version()}


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def write_json_atomic(path: str | Path, data: dict) -> Path:
    text = json.dumps(encode_non_finite(data), indent=2, allow_nan=False) + "\n"
    return write_text_atomic(path, text)
