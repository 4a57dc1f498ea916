"""The config sections each kind of job depends on, written once: the workflow gives each job exactly these
(resolved, as one JSON parameter), so Snakemake reruns a job when, and only when, one of them changes.
Light to import (the workflow imports it)."""
from __future__ import annotations

#: job kind (a CLI verb) -> top-level config sections it reads
JOB_SECTIONS: dict[str, tuple[str, ...]] = {
    "prepare": ("data", "network", "networks"),
    "search": ("device", "data", "network", "networks", "search"),
    "train": ("device", "data", "train"),
    "evaluate": ("device", "evaluate"),
    "correlate": ("device", "data", "network", "networks", "train", "evidence"),
    "replicate": ("device", "data", "network", "networks", "search", "train", "evaluate"),
}

#: job kind -> the only network keys it reads, where it reads few: ``prepare`` frames an event dataset into
#: ``timesteps`` frames and reads nothing of the network for a static one (the workflow then passes none)
NETWORK_KEYS: dict[str, tuple[str, ...]] = {"prepare": ("timesteps",)}
