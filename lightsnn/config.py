"""Run configuration: a YAML file resolved against the registries' defaults.

Layout (every section optional; see config/README.md)::

    device: auto            # auto | cpu | cuda | cuda:N
    data: {}                # dataset options (paths), by dataset name
    network: {}             # NetConfig overrides for every dataset
    networks: {digits: {}}  # NetConfig overrides for one dataset
    search: {lightsnn: {}}  # method options, by method name
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import fields, replace
from pathlib import Path

import torch
import yaml

from .data import get_dataset_spec
from .network import PRESETS, NetConfig
from .search import get_method
from .search.common import BaseOptions

#: A config ``name`` becomes an MLflow experiment and a folder name: no path separators, no leading dot.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
#: Paths the workflow puts on command lines: no shell metacharacters (rules quote them as well).
RESULTS_PATTERN = r"^[\w./ +,=@:-]+$"

TOP_LEVEL_KEYS = ("name", "device", "data", "network", "networks", "search", "train", "evaluate", "tracking",
                  "workflow", "bench", "evidence")


def merge(base: dict, update: dict) -> dict:
    """Deep merge as Snakemake merges --configfile over a workflow's configfile: mappings merge, the rest replaces."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(path: str | Path | list | None) -> dict:
    """One config file, or several merged in order (later files override earlier ones)."""
    if isinstance(path, (list, tuple)):
        config: dict = {}
        for item in path:
            config = merge(config, load_config(item))
        return config
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"config file {str(path)!r} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping at the top level")
    unknown = sorted(set(data) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown} in {str(path)!r}; allowed: {list(TOP_LEVEL_KEYS)}")
    if "name" in data:
        check_name(data["name"], f"in {str(path)!r}")
    return data


def check_name(name, where: str = "") -> str:
    if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
        place = f" {where}" if where else ""
        raise ValueError(f"config name {name!r}{place} is not allowed: it names an MLflow experiment and a folder, "
                         "so it takes letters, digits and _ . - and starts with a letter or digit")
    return name


def resolve_device(spec: str | None) -> torch.device:
    spec = spec or "auto"
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} asked for, but no CUDA device is available here; use cpu or auto")
    return device


def options_from(cls, section: dict | None, overrides: dict | None, what: str):
    """An options dataclass from a config section, overridden by the non-None values of ``overrides``."""
    values = dict(section or {})
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; allowed: {sorted(known)}")
    return cls(**values)


def method_options(method: str, config: dict, overrides: dict | None = None) -> BaseOptions:
    section = (config.get("search") or {}).get(method)
    options = options_from(get_method(method).options, section, overrides, f"option(s) for method {method!r}")
    options.validate()
    return options


def net_config(dataset: str, config: dict, options: BaseOptions | None = None) -> NetConfig:
    spec = get_dataset_spec(dataset)
    cfg = PRESETS[spec.preset].with_overrides(config.get("network"))
    cfg = cfg.with_overrides((config.get("networks") or {}).get(dataset))
    if options is not None:
        cfg = replace(cfg, pooling=options.pooling)
    return cfg


def stable_hash(obj) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
