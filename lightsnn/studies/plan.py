"""What a config will cost before it runs: the workflow's jobs with an estimated time each, from a bench JSON of
the user's own device (``python -m lightsnn bench --suite paper --json bench.json``).

Each estimate is the job's work counted analytically (FLOPs of its network's convs and linears at the config's
sizes, times the samples, passes and scorings the job makes) divided by the rate the bench measured for that kind
of work on that device (search scoring, training); LitE-SNN's bi-level steps are timed directly and scaled by
their input size. Estimates assume the bench's device, one job at a time; they ignore data loading and start-up,
and a searched genotype's own size (a typical genotype stands in for it), so read them as +/- 50 %.
"""
from __future__ import annotations

import math

import pandas as pd

from lightsnn.data import get_dataset_spec
from lightsnn.pipeline.config import method_options, net_config
from lightsnn.pipeline.targets import Targets
from lightsnn.studies.flops import forward_flops

def job_estimates(config: dict, bench: dict) -> pd.DataFrame:
    """One row per job of the workflow's default target (search, train, evaluate per dataset, run and seed):
    its rule, dataset, run, the work it does and its estimated seconds. ``config`` as the workflow reads it, its
    schema defaults filled in (:func:`lightsnn.schema.with_defaults`)."""
    from lightsnn.training.train import TrainOptions

    work = bench.get("workloads")
    if not isinstance(work, dict) or not {"lightsnn_search", "snasnet_search", "training", "litesnn_step"} <= set(work):
        raise ValueError("the bench JSON is not a suite's (it has no 'workloads'); write one with "
                         "'python -m lightsnn bench --suite paper --json bench.json' on the device that will run")
    targets = Targets(config)
    train = TrainOptions.from_config(config.get("train"))
    bench_flops = forward_flops(_bench_net(bench), bench["options"]["genotype"])
    train_rate, variant = training_rate(work, train, bench.get("device", "cpu"))
    flops_cache: dict = {}
    rows = []
    costs: dict[tuple[str, str], tuple] = {}  # (dataset, run) -> its jobs' seconds and work
    for job in targets.runs():
        key = (job.dataset, job.run)
        if key not in costs:
            costs[key] = _run_costs(job, config, train, bench, bench_flops, train_rate, variant, flops_cache)
        (search_s, what), (train_s, train_what), (evaluate_s, evaluate_what) = costs[key]
        common = {"dataset": job.dataset, "run": job.run, "seed": job.seed}
        rows.append({"rule": "search", **common, "work": what, "seconds": search_s})
        rows.append({"rule": "train", **common, "work": train_what, "seconds": train_s})
        rows.append({"rule": "evaluate", **common, "work": evaluate_what, "seconds": evaluate_s})
    return pd.DataFrame(rows)


def _run_costs(job, config: dict, train, bench: dict, bench_flops: float, train_rate: float, variant: str,
               flops_cache: dict) -> tuple:
    """(seconds, work) of one run's search, training and evaluation on its dataset."""
    spec = get_dataset_spec(job.dataset)
    if spec.sizes is None:
        raise ValueError(f"dataset {job.dataset!r} has no recorded size; plan cannot cost it")
    n_train, n_test = spec.sizes
    options = method_options(job.method, config, job.options, job.dataset)
    searched = net_config(job.dataset, config, options)
    search = _search_seconds(options, searched, n_train, bench, bench_flops, flops_cache, spec.events)
    # the network trained: a searched genotype's own size is unknown until the search ends, so the dataset's
    # SNASNet-family network with a typical genotype stands in for every method's (LitE-SNN's included)
    trained = net_config(job.dataset, config, None)
    key = (job.dataset, trained.channels, trained.timesteps, trained.image_size)
    if key not in flops_cache:
        flops_cache[key] = forward_flops(trained, events=spec.events)
    fwd = flops_cache[key]
    samples = n_train * (1 - train.val_fraction)
    if train.max_batches is not None:
        samples = min(samples, train.max_batches * train.batch_size)
    train_s = train.epochs * (3 * samples + n_test) * fwd / train_rate
    return (search,
            (train_s, f"{train.epochs} epochs x {int(samples)} samples, {fwd / 1e9:.1f} GFLOP per forward, at the "
                      f"bench's {variant} rate"),
            (3 * n_test * fwd / train_rate, f"{n_test} test samples, about 3 passes"))


def training_rate(work: dict, train, device: str) -> tuple[float, str]:
    """FLOP/s of the bench's training variant with the config's speed options (bf16, channels-last, device data,
    those left null decided for the bench's ``device``), and its name; a bench without that variant (an older
    suite JSON) gives its plain training rate."""
    resolved = train.on(device)
    wanted = {key: getattr(resolved, key) for key in train.SPEED_OPTIONS}
    for name, figures in (work.get("training_variants") or {}).items():
        if figures.get("options") == wanted:
            return figures["flops_per_second"], name
    on = [key for key, value in wanted.items() if value]
    return work["training"]["flops_per_second"], "fp32" + (f" (it measured none with {', '.join(on)})" if on else "")


def _bench_net(bench: dict):
    from lightsnn.studies.bench import BenchOptions, bench_network

    return bench_network(BenchOptions(**bench["options"]), "avg")


def _search_seconds(options, netcfg, n_train: int, bench: dict, bench_flops: float, cache: dict,
                    events: bool = False) -> tuple[float, str]:
    """A search job's time: the work its method declares (``planned_work``) at the rate the bench measured for
    that kind of work, scaled from the bench's sizes to the config's."""
    work, sizes = bench["workloads"], bench["options"]
    kind, units = options.planned_work(n_train)
    if kind == "none":
        return 1.0, "no scoring"
    if kind == "training":  # a search that trains its candidates: samples trained, at the bench's training rate
        key = (netcfg.channels, netcfg.timesteps, netcfg.image_size, netcfg.in_channels, netcfg.pooling, events)
        if key not in cache:
            cache[key] = forward_flops(netcfg, events=events)
        return 3 * units * cache[key] / work["training"]["flops_per_second"], f"{units} samples trained"
    if kind not in work:  # a method declares the work it does; the bench prices the kinds it measured
        raise ValueError(f"{options.section} declares its search work as {kind!r}, which the bench JSON does not "
                         f"price (it measured: {', '.join(sorted(work))}); add that workload to the bench suite "
                         "(lightsnn.studies.bench) and rerun 'python -m lightsnn bench --suite paper'")
    if kind == "litesnn_step":
        step = work[kind]
        scale = (options.batch_size / step["batch_size"]) * (netcfg.image_size / 32) ** 2
        scale *= netcfg.timesteps / 6 * (options.filter_multiplier / 12)  # the paper preset the bench steps
        return units * step["seconds_per_step"] * scale, f"{units} bi-level steps"
    key = (netcfg.channels, netcfg.timesteps, netcfg.image_size, netcfg.in_channels, netcfg.pooling, events)
    if key not in cache:
        cache[key] = forward_flops(netcfg, events=events)
    fwd = cache[key]
    what = f"{units} scorings (batch {options.batch_size}, repeat {options.repeat})"
    if kind == "lightsnn_search":  # the bench's seconds per scoring of the 3-op supernet, scaled
        per = work[kind]["seconds_per_scoring"] * (fwd / bench_flops) * (options.batch_size / sizes["batch_size"])
        per *= options.repeat / sizes["repeat"] * len(options.space) / 3
        return units * per, what
    return units * options.repeat * options.batch_size * fwd / work[kind]["flops_per_second"], what


def largest(jobs: pd.DataFrame, count: int = 5) -> pd.DataFrame:
    """The ``count`` (rule, dataset) groups that cost the most, most first: jobs, the shortest and longest job
    and the hours in all; where a config's time goes."""
    grouped = jobs.groupby(["rule", "dataset"], sort=False)["seconds"].agg(jobs="count", shortest="min",
                                                                           longest="max", total="sum").reset_index()
    grouped["hours"] = grouped["total"] / 3600
    return grouped.sort_values("total", ascending=False, kind="stable").head(count).reset_index(drop=True)


def summarise(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule: jobs, seconds per job (mean) and hours in all; the last row is the total."""
    table = jobs.groupby("rule", sort=False)["seconds"].agg(jobs="count", mean="mean", total="sum").reset_index()
    table["hours"] = table["total"] / 3600
    total = pd.DataFrame([{"rule": "total", "jobs": int(table["jobs"].sum()), "mean": math.nan,
                           "total": float(table["total"].sum()), "hours": float(table["total"].sum()) / 3600}])
    return pd.concat([table, total], ignore_index=True)


_UNITS = {"s": 1 / 60, "m": 1, "min": 1, "h": 60, "d": 1440}


def profile_runtimes(folder) -> dict[str, float]:
    """Minutes of ``runtime`` a Snakemake profile grants each rule: its ``set-resources``, else its
    ``default-resources`` (key ``"*"``). Runtimes are minutes, or strings such as ``"4h"`` or ``"90m"``."""
    from pathlib import Path

    import yaml

    path = Path(folder) / "config.yaml"
    if not path.is_file():
        raise ValueError(f"--profile {str(folder)!r} has no config.yaml; give a Snakemake profile folder such as "
                         "workflow/profiles/slurm")
    data = yaml.safe_load(path.read_text()) or {}

    def resources(value) -> dict:  # a mapping, or Snakemake's list of "key=value" strings
        if isinstance(value, list):
            return dict(item.split("=", 1) for item in value if isinstance(item, str) and "=" in item)
        return value if isinstance(value, dict) else {}

    limits = {}
    if "runtime" in resources(data.get("default-resources")):
        limits["*"] = _minutes(resources(data["default-resources"])["runtime"], path)
    for rule, res in (data.get("set-resources") or {}).items():
        if "runtime" in resources(res):
            limits[rule] = _minutes(resources(res)["runtime"], path)
    return limits


def _minutes(value, path) -> float:
    import re

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = re.fullmatch(r"\s*([\d.]+)\s*(s|m|min|h|d)?\s*", str(value))
    if not match:
        raise ValueError(f"{path}: runtime {value!r} is neither minutes nor a time like '4h' or '90m'")
    return float(match.group(1)) * _UNITS[match.group(2) or "m"]


#: The estimates' error: a job whose estimate is within this factor of its runtime limit may still exceed it.
MARGIN = 1.5


def over_runtime(jobs: pd.DataFrame, limits: dict[str, float]) -> pd.DataFrame:
    """The distinct (rule, dataset, run) jobs whose estimate, or the estimate times :data:`MARGIN`, exceeds the
    runtime the profile grants their rule (column ``over``: True for the estimate itself). On a cluster such a
    job is killed at its limit; searches and trainings resume when rerun, at the cost of a queue slot."""
    limit = jobs["rule"].map(lambda rule: limits.get(rule, limits.get("*", math.inf)))
    minutes = jobs["seconds"] / 60
    flagged = jobs.assign(estimate_min=minutes, runtime_min=limit, over=minutes > limit)[minutes * MARGIN > limit]
    return flagged.drop_duplicates(["rule", "dataset", "run"])[["rule", "dataset", "run", "estimate_min",
                                                                 "runtime_min", "over"]]
