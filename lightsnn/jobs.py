"""Jobs the CLI (and the workflow) run: each resolves its config, runs, and returns a JSON-ready dict."""
from __future__ import annotations

import time
from dataclasses import asdict

import torch

from .config import method_options, net_config, resolve_device, stable_hash
from .data import load_splits
from .results import versions
from .search import SearchContext, get_method

SEARCH_SCHEMA_VERSION = 1


def run_search(method: str, dataset: str, seed: int, config: dict, overrides: dict | None = None,
               progress: bool | None = None) -> dict:
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    options = method_options(method, config, overrides)
    netcfg = net_config(dataset, config, options)
    device = resolve_device(config.get("device"))
    start = time.perf_counter()
    splits = load_splits(dataset, config.get("data"), netcfg.timesteps, progress)
    load_seconds = time.perf_counter() - start
    context = SearchContext(net_config=netcfg, splits=splits, device=device, seed=seed, progress=progress)
    result = get_method(method).run(options, context)
    record = result.record
    resolved = {"method": method, "dataset": dataset, "options": asdict(options), "network": netcfg.to_dict()}
    genotype = result.genotype
    return {
        "schema_version": SEARCH_SCHEMA_VERSION,
        "kind": "search",
        "method": method,
        "dataset": dataset,
        "seed": seed,
        "genotype": {"str": genotype.to_str(), "json": genotype.to_json(), "hash": genotype.short_hash(),
                     "canonical": genotype.canonical().to_str()},
        "score": result.score,
        "num_scorings": record.num_scorings,
        "nonfinite_scores": record.nonfinite_scores,
        "times": {"search_seconds": record.total_seconds, "compute_seconds": record.compute_seconds,
                  "data_seconds": record.data_seconds, "dataset_load_seconds": load_seconds},
        "compat_flags": sorted(options.compat()),
        "options": asdict(options),
        "network": netcfg.to_dict(),
        "config_hash": stable_hash(resolved),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "versions": versions(),
        "details": record.details,
        "data": splits.info,
        "candidates": record.candidates,
    }
