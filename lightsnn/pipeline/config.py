"""Run configuration: a YAML file resolved against the registries' defaults.

Layout (every section optional; see config/README.md)::

    device: auto            # auto | cpu | cuda | cuda:N
    data: {}                # dataset options (paths), by dataset name
    network: {}             # NetConfig overrides for every dataset
    networks: {digits: {}}  # NetConfig overrides for one dataset
    search: {lightsnn: {}}  # method options, by method name
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
import yaml

from lightsnn.core.options import from_section
from lightsnn.data import DATASET_NAMES, get_dataset_spec
from lightsnn.search import METHODS, get_method
from lightsnn.search.method_options import MethodOptions
from lightsnn.space.network import PRESETS

#: A config ``name`` becomes an MLflow experiment and a folder name: no path separators, no leading dot.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
#: Paths the workflow puts on command lines: no shell metacharacters (rules quote them as well).
RESULTS_PATTERN = r"^[\w./ +,=@:-]+$"

#: Devices a config or --device may name.
DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?)$"
#: Seeds feed torch, numpy (32 bits) and derived generator seeds: keep them in numpy's range.
MAX_SEED = 2**32 - 1

TOP_LEVEL_KEYS = ("name", "device", "data", "network", "networks", "search", "train", "evaluate", "tracking",
                  "workflow", "bench", "evidence", "benchmark")


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
    if path.is_dir():
        raise ValueError(f"config file {str(path)!r} is a directory; give a YAML file such as config/config.yaml")
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"config file {str(path)!r} is not a text file (byte {err.start} is not UTF-8); give a "
                         "YAML file such as config/config.yaml") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"config file {str(path)!r} is not valid YAML{where}: {problem}") from None
    return check_config(data, f"config file {str(path)!r}", f"in {str(path)!r}")


def check_config(data, what: str, where: str) -> dict:
    """The checks every config source passes before use: a mapping of known sections, known method and
    dataset names, a valid ``name``. ``what`` names the source, ``where`` says where in messages."""
    if not isinstance(data, dict):
        raise ValueError(f"{what} must hold a mapping at the top level")
    unknown = sorted(set(data) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown} {where}; allowed: {list(TOP_LEVEL_KEYS)}")
    if "name" in data:
        check_name(data["name"], where)
    for section in set(TOP_LEVEL_KEYS) - {"name", "device"}:
        if data.get(section) is not None and not isinstance(data[section], dict):
            raise ValueError(f"config section {section!r} {where} must be a mapping of its options, got "
                             f"{data[section]!r}"[:300])
    for section, allowed, kind in (("search", METHODS, "method"), ("networks", DATASET_NAMES, "dataset")):
        value = data.get(section)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ValueError(f"config section {section!r} {where} must be a mapping by {kind} name")
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise ValueError(f"unknown {kind}(s) {unknown} under {section!r} {where}; allowed: {list(allowed)}")
    return data


def config_from_json(text: str, source: str = "--config-json") -> dict:
    """A config given inline as JSON (the workflow passes each job exactly the sections it depends on);
    ``source`` names where it came from (the flag, or the environment variable) in every message."""
    import json

    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{source} is not valid JSON ({err.msg} at character {err.pos}): {text[:80]!r}") from None
    return check_config(data, source, f"in {source}")


def job_config(files: list | None, inline: list | None = None) -> dict:
    """Config files merged in order, then inline JSON configs merged over them in order; an inline config is
    its text, or ``(source, text)`` where it did not come from ``--config-json`` (an environment variable)."""
    config = load_config(list(files or []))
    for item in inline or []:
        source, text = item if isinstance(item, tuple) else ("--config-json", item)
        config = merge(config, config_from_json(text, source))
    return config


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed {seed!r} is not allowed; seeds are integers from 0 to {MAX_SEED}")
    return seed


def check_name(name, where: str = "") -> str:
    if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
        place = f" {where}" if where else ""
        raise ValueError(f"config name {name!r}{place} is not allowed: it names an MLflow experiment and a folder, "
                         "so it takes letters, digits and _ . - and starts with a letter or digit")
    return name


def resolve_device(spec: str | None) -> torch.device:
    spec = spec or "auto"
    if not isinstance(spec, str) or not re.match(DEVICE_PATTERN, spec):
        raise ValueError(f"device {spec!r} is not allowed; use auto, cpu, cuda or cuda:N")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} asked for, but no CUDA device is available here; use cpu or auto")
    return device


def method_options(method: str, config: dict, overrides: dict | None = None,
                   dataset: str | None = None) -> MethodOptions:
    """A method's options from the config's ``search.<method>`` and ``overrides``; with ``dataset``, resolved for
    it (LitE-SNN's null sizes from its preset)."""
    section = (config.get("search") or {}).get(method)
    options = from_section(get_method(method).options, section, overrides, where=f"search.{method}",
                           what=f"option(s) for method {method!r}")
    return options if dataset is None else options.for_dataset(dataset)


def net_config(dataset: str, config: dict, options: MethodOptions | None = None):
    """The network a method searches on ``dataset``: the dataset's preset with the config's ``network`` and
    ``networks.<dataset>`` overrides; for LitE-SNN its own search network, sized by the method's options, with
    the dataset's input and class counts."""
    spec = get_dataset_spec(dataset)
    cfg = PRESETS[spec.preset].with_overrides(config.get("network"))
    cfg = cfg.with_overrides((config.get("networks") or {}).get(dataset), where=f"networks.{dataset}")
    return cfg if options is None else options.search_network(cfg)
