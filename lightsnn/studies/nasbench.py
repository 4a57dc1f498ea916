"""Evidence on a tabular NAS benchmark, without training: proxy scores of its architectures, their rank
correlation with the benchmark's test accuracy (what each search method picks: :mod:`lightsnn.studies.nasbench_search`).

Scores are computed once per architecture and kept in shard files (``score_shard``), so one command scores
200 architectures on a laptop or all valid ones as many cluster jobs. The score folder's name carries a hash of
every setting a score depends on: changing the width or the batch starts a new folder, never mixes.

May import: :mod:`lightsnn.core`, :mod:`lightsnn.data`, :mod:`lightsnn.space`, :mod:`lightsnn.proxies`,
:mod:`lightsnn.nasbench`, :mod:`lightsnn.core.stats`, numpy, pandas, matplotlib.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from lightsnn.core.stats import correlation_summary
from lightsnn.nasbench import open_benchmark
from lightsnn.nasbench.benchmark_options import BenchmarkOptions
from lightsnn.pipeline.targets import BENCHMARK_OUTPUTS
from lightsnn.proxies.registry import PROXIES, get_proxy


def open_from(options: BenchmarkOptions, config: dict):
    from lightsnn.data import DataOptions

    data = DataOptions.from_config(config.get("data"))
    return open_benchmark(options.name, options.root, data.cache_dir, options.dataset)


def sample_ids(bench, options: BenchmarkOptions) -> list[int]:
    """The scored ids: a seeded sample of the valid ones (sorted), or all of them; with ``exclude_seed``, a
    sample of the valid ids outside the same-size sample of that seed (a disjoint test sample)."""
    valid = np.asarray(bench.valid_ids())
    if options.exclude_seed is not None:
        excluded = set(sample_ids(bench, replace(options, sample_seed=options.exclude_seed, exclude_seed=None)))
        valid = np.asarray([i for i in valid if int(i) not in excluded])
    if options.sample > len(valid):  # the files are named by the sample size: never name 7,424 ids "sample100000"
        where = "" if options.exclude_seed is None else f" outside the sample of seed {options.exclude_seed}"
        raise ValueError(f"benchmark.sample={options.sample} is more than the {len(valid)} valid architectures"
                         f"{where}; give at most {len(valid)}, or 0 for all of them")
    if options.sample == 0 or options.sample == len(valid):
        return [int(i) for i in valid]
    rng = np.random.default_rng(options.sample_seed)
    return sorted(int(i) for i in rng.choice(valid, size=options.sample, replace=False))


def _scoring_batches(options: BenchmarkOptions, config: dict, device) -> tuple[list, list]:
    """The scoring images and their labels (for the proxies that need a loss), the same for every architecture."""
    from lightsnn.data import load_splits
    from lightsnn.search.batches import DatasetSearchBatches

    splits = load_splits(options.scoring_images(), config.get("data"), 1, False)
    provider = DatasetSearchBatches(splits.test, options.batch_size, options.batches, device, seed=0)
    return ([provider.get(r) for r in range(options.batches)], [provider.labels(r) for r in range(options.batches)])


def score_architecture(bench, arch_id: int, options: BenchmarkOptions, batches: list, device,
                       labels: list | None = None) -> dict:
    """Every proxy of ``options.proxy_names()`` on ``arch_id`` at ``options.width``, for each weight seed."""
    import torch

    from lightsnn.proxies.engine import score_proxies
    from lightsnn.space.network import SNASNetwork

    netcfg = bench.network(options.width)
    genotype = bench.genotype(arch_id)
    row: dict = {"id": arch_id}
    start = time.perf_counter()
    per_seed: dict[str, list[float]] = {p: [] for p in options.proxy_names()}
    # On a GPU the network is built there (no host initialisation and copy: at C=128 that cost more than its two
    # scoring passes); its weights then come from the GPU's generator. On the CPU nothing changes.
    where = torch.device(device) if torch.device(device).type == "cuda" else contextlib.nullcontext()
    for w in range(options.weight_seeds):
        torch.manual_seed(1_000_003 * w + arch_id)
        with where:
            net = SNASNetwork.from_genotype(netcfg, genotype)
        net = net.to(device)
        net.train(options.bn_mode == "train")
        values = score_proxies(net, genotype, batches, options.proxy_names(),  # the same dropout draws for every proxy
                               before_forward=lambda w=w: torch.manual_seed(7919 * (w + 1) + arch_id), labels=labels)
        for name, value in values.items():
            per_seed[name].append(value)
        del net
    for name, values in per_seed.items():
        finite = [v for v in values if math.isfinite(v)]
        row[name] = float(np.mean(finite)) if finite else math.nan
        if get_proxy(name).needs_data:
            row.update({f"{name}_w{w}": v for w, v in enumerate(values)})
    row["score_seconds"] = time.perf_counter() - start
    return row


def score_shard(config: dict, shard: int, out: str | Path, overrides: dict | None = None,
                progress: bool | None = None, log=print, csv: str | Path | None = None) -> Path:
    """Score shard ``shard`` (of ``benchmark.shards``) of the sample; returns the shard's CSV (``csv``, else a
    file in the score folder :meth:`BenchmarkOptions.score_folder` of ``out``).

    Each scored architecture is appended to ``<csv>.partial.jsonl`` at once, so a killed job resumes where it
    stopped; the CSV appears (atomically) when the shard is complete."""
    from lightsnn.core.atomic import claimed, write_text_atomic

    options = BenchmarkOptions.from_config(config.get("benchmark"), overrides)
    if not 0 <= shard < options.shards:
        raise ValueError(f"shard must be in 0..{options.shards - 1} (benchmark.shards={options.shards}), got {shard}")
    bench = open_from(options, config)
    _require_scoring_memory(bench, options, config, overrides)
    ids = sample_ids(bench, options)[shard::options.shards]
    folder = options.score_folder(out) if csv is None else Path(csv).parent
    target = Path(csv) if csv is not None else (
        folder / f"shard-{shard}-of-{options.shards}-sample{options.sample}-seed{options.sample_seed}"
                 f"{'' if options.exclude_seed is None else f'-minus{options.exclude_seed}'}.csv")
    with claimed(target):  # two jobs on one shard would append to one partial file
        _score_into(target, bench, ids, options, config, progress, log, shard)
    # written once a shard is whole: a run that fails (bad --images, say) leaves no folder that looks scored
    write_text_atomic(folder / "settings.json", json.dumps(options.score_settings(), indent=1))
    return target


def _require_scoring_memory(bench, options: BenchmarkOptions, config: dict, overrides: dict | None) -> None:
    """Refuse a width or batch that cannot fit before a shard's files exist, naming the flags given. Gradient
    proxies backpropagate, so the floor is a training step's."""
    from lightsnn.pipeline.config import resolve_device
    from lightsnn.pipeline.jobs import given_flags, require_network_memory
    netcfg = bench.network(options.width)
    flags = given_flags({name: (overrides or {}).get(name) for name in ("width", "batch_size")})
    require_network_memory(netcfg, options.batch_size, resolve_device(config.get("device")), training=True,
                           batch="benchmark.batch_size", flags=flags, sizes="benchmark.width")


def _score_into(target: Path, bench, ids: list[int], options: BenchmarkOptions, config: dict, progress, log,
                shard: int) -> Path:
    from tqdm.auto import tqdm

    from lightsnn.core.atomic import write_text_atomic
    from lightsnn.pipeline.config import resolve_device

    partial = target.with_suffix(".partial.jsonl")
    done: dict[int, dict] = {}
    if partial.exists():
        for line in partial.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut by a kill: that architecture is scored again
            done[int(row["id"])] = row
    todo = [i for i in ids if i not in done]
    if done:
        log(f"resuming {target.name}: {len(done)} of {len(ids)} architectures already scored")
    device = resolve_device(config.get("device"))
    batches, labels = _scoring_batches(options, config, device) if todo else ([], [])
    with open(partial, "a") as handle:
        for arch_id in tqdm(todo, desc=f"score shard {shard}", disable=None if progress is None else not progress,
                            dynamic_ncols=True):
            row = score_architecture(bench, arch_id, options, batches, device, labels)
            handle.write(json.dumps(row, allow_nan=True) + "\n")
            handle.flush()
            done[arch_id] = row
    table = pd.DataFrame([done[i] for i in ids])
    write_text_atomic(target, table.to_csv(index=False))
    partial.unlink()
    return target


def read_score_file(path: str | Path) -> pd.DataFrame:
    """One shard CSV written by ``benchmark score``, checked whole: a header with ``id`` and ``score_seconds``,
    every row as long as the header (a copy cut off mid-row is refused, never read with a truncated number),
    integer ids."""
    import csv
    import io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"score file {str(path)!r} does not exist; run 'python -m lightsnn benchmark "
                                "score' for its shard first")
    expected = "a shard CSV written by 'python -m lightsnn benchmark score'"
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"score file {str(path)!r} cannot be read ({type(err).__name__}); expected {expected}") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or not {"id", "score_seconds"} <= set(rows[0]):
        raise ValueError(f"score file {str(path)!r} has no 'id' and 'score_seconds' columns (header "
                         f"{rows[0][:6] if rows else 'missing: the file is empty'}); expected {expected}")
    short = next((n for n, row in enumerate(rows[1:], 2) if len(row) != len(rows[0])), None)
    if short is not None or not text.endswith("\n"):
        line = short if short is not None else len(rows)
        raise ValueError(f"score file {str(path)!r} is cut off or damaged at line {line} (a row with "
                         f"{len(rows[line - 1])} of {len(rows[0])} fields, or no final newline); score the shard "
                         "again or restore the file")
    column = rows[0].index("id")
    for n, row in enumerate(rows[1:], 2):
        if not row[column].strip().lstrip("-").isdigit():
            raise ValueError(f"score file {str(path)!r} has a non-integer id {row[column]!r} at line {n}; "
                             f"expected {expected}")
    return pd.read_csv(io.StringIO(text), dtype={"id": int})


def read_scores(files: list[str | Path]) -> pd.DataFrame:
    """The shard CSVs as one table sorted by id; files holding no scored architecture at all are refused (a
    header alone would give a table of NaNs and exit 0)."""
    frames = [read_score_file(path) for path in files]
    if not frames:
        raise ValueError("no score files given")
    table = pd.concat(frames, ignore_index=True)
    if table.empty:
        raise ValueError(f"the score file(s) {[str(f) for f in files]} hold no scored architecture (a header alone); "
                         "score the shards with 'python -m lightsnn benchmark score' first")
    if table["id"].duplicated().any():
        raise ValueError("the score files overlap (an architecture appears twice); give each shard once")
    return table.sort_values("id").reset_index(drop=True)


def require_ids_of(scores: pd.DataFrame, bench, files: list) -> None:
    """Score files of another benchmark (ids it does not hold, or not one valid architecture) are refused in one
    line instead of correlating nothing."""
    known = set(bench.table["id"].tolist())
    foreign = sorted(set(scores["id"].tolist()) - known)
    if foreign:
        raise ValueError(f"the score file(s) {[str(f) for f in files]} hold {len(foreign)} id(s) this benchmark does "
                         f"not have (e.g. {foreign[:5]}; it holds {min(known)}..{max(known)}): they were scored on "
                         "another benchmark or edited")
    valid = set(bench.table.loc[bench.table["valid"], "id"].tolist())
    if not set(scores["id"].tolist()) & valid:
        raise ValueError(f"the score file(s) {[str(f) for f in files]} hold no valid architecture of this benchmark; "
                         "nothing to correlate")


def correlate(scores: pd.DataFrame, bench, options: BenchmarkOptions) -> pd.DataFrame:
    """Kendall tau and Spearman rho (bootstrap 95% intervals) of every score with test accuracy, over the scored
    valid architectures, beside the benchmark's own baselines (early stopping at k epochs)."""
    table = scores.merge(bench.table[["id", "valid", "test_acc", "seconds", "epochs"]], on="id")
    table = table[table["valid"]]
    acc = table["test_acc"].to_numpy()
    rows = []
    for name in [p for p in options.proxy_names() if p in table.columns]:
        proxy = get_proxy(name)
        cost = float(table["score_seconds"].mean()) if proxy.needs_data else 0.0
        rows.append({"score": name, "kind": "proxy" if proxy.needs_data else "count", "definition": proxy.definition,
                     **correlation_summary(table[name].to_numpy(), acc, options.bootstrap, options.sample_seed),
                     "seconds_per_arch": cost, "gpu_hours_per_arch": 0.0})
    for name, parts in options.combinations():
        if all(p in table.columns for p in parts):
            values = rank_aggregate(table, parts)
            cost = float(table["score_seconds"].mean()) if any(get_proxy(p).needs_data for p in parts) else 0.0
            rows.append({"score": name, "kind": "combination" if cost else "count",
                         "definition": "mean of the ranks of " + ", ".join(parts),
                         **correlation_summary(values, acc, options.bootstrap, options.sample_seed),
                         "seconds_per_arch": cost, "gpu_hours_per_arch": 0.0})
    ids = table["id"].to_numpy()
    if options.epochs:
        bench.require("val_curve", "the early-stopping baselines (benchmark.epochs; [] leaves them out)")
    for epochs in options.epochs:
        val = bench.val_acc_at(epochs)[ids]
        hours = float(np.mean(table["seconds"].to_numpy() * np.minimum(epochs / table["epochs"].to_numpy(), 1.0))) / 3600
        rows.append({"score": f"val_acc_ep{epochs}", "kind": "training",
                     "definition": f"validation accuracy after {epochs} epochs of the benchmark's training",
                     **correlation_summary(val, acc, options.bootstrap, options.sample_seed),
                     "seconds_per_arch": hours * 3600, "gpu_hours_per_arch": hours})
    return pd.DataFrame(rows)


def rank_aggregate(table: pd.DataFrame, parts: list[str]) -> np.ndarray:
    """Mean of the scores' fractional ranks within ``table`` (ties averaged; a missing value ranks lowest):
    a combination that needs no scale between its parts."""
    ranks = [table[p].rank(pct=True, na_option="top").to_numpy() for p in parts]
    return np.mean(ranks, axis=0)


def width_agreement(scores: pd.DataFrame, reference: pd.DataFrame, width: int, reference_width: int,
                    resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Rank agreement of each data proxy between scores at ``width`` and at ``reference_width``, on their
    common ids, with the time per architecture of each."""
    both = scores.merge(reference, on="id", suffixes=("", "_ref"))
    rows = []
    for name in [c for c in scores.columns if c in PROXIES and get_proxy(c).needs_data and f"{c}_ref" in both]:
        rows.append({"score": name, "width": width, "reference_width": reference_width,
                     **correlation_summary(both[name].to_numpy(), both[f"{name}_ref"].to_numpy(), resamples, seed),
                     "seconds_per_arch": float(both["score_seconds"].mean()),
                     "reference_seconds_per_arch": float(both["score_seconds_ref"].mean())})
    return pd.DataFrame(rows)


def score_width(files: list[str | Path]) -> int:
    """The width the shard files were scored at (their folder's settings.json); one-line error if mixed."""
    widths = set()
    for f in files:
        settings = Path(f).parent / "settings.json"
        if not settings.is_file():
            raise ValueError(f"score file {str(f)!r} is not in a score folder (no settings.json beside it, which "
                             "says the width it was scored at); give shard CSVs where 'benchmark score' wrote them")
        widths.add(json.loads(settings.read_text())["width"])
    if len(widths) != 1:
        raise ValueError(f"score files of widths {sorted(widths)} given together: {[str(f) for f in files]}")
    return widths.pop()


def write_width_agreement(score_files: list[str], reference_files: list[str], out: str | Path) -> pd.DataFrame:
    """:func:`width_agreement` of two sets of shard files (their widths read from settings.json), as a CSV."""
    from lightsnn.core.atomic import write_text_atomic

    width, reference_width = score_width(score_files), score_width(reference_files)
    if width == reference_width:
        raise ValueError(f"--scores and --reference are both at width {width}; give two widths")
    table = width_agreement(read_scores(score_files), read_scores(reference_files), width, reference_width)
    write_text_atomic(out, table.to_csv(index=False))
    return table


def plot_scores(scores: pd.DataFrame, bench, proxies: list[str], corr: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = scores.merge(bench.table[["id", "valid", "test_acc"]], on="id")
    table = table[table["valid"]]
    shown = [p for p in proxies if p in table.columns]
    fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 3.2), squeeze=False)
    taus = corr.set_index("score")["tau"].to_dict()
    for ax, name in zip(axes[0], shown):
        ax.scatter(table[name], table["test_acc"], s=6, alpha=0.6)
        ax.set_xlabel(name)
        ax.set_title(f"tau {taus.get(name, math.nan):.2f}", fontsize=9)
    axes[0][0].set_ylabel("benchmark test accuracy (%)")
    fig.suptitle(f"{bench.name}: {len(table)} valid architectures", fontsize=10)
    fig.tight_layout()
    from lightsnn.core.atomic import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_correlation(score_files: list[str], config: dict, out_dir, overrides: dict | None = None) -> dict:
    """``correlation.csv``/``.md``, ``scatter.png`` and ``correlation.json`` in ``out_dir``."""
    from lightsnn.core.atomic import write_text_atomic

    options = BenchmarkOptions.from_config(config.get("benchmark"), overrides)
    bench = open_from(options, config)
    scores = read_scores(score_files)
    require_ids_of(scores, bench, score_files)
    corr = correlate(scores, bench, options)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    markdown, csv, scatter = BENCHMARK_OUTPUTS["correlate"]
    write_text_atomic(out / csv, corr.to_csv(index=False))
    write_text_atomic(out / markdown, correlation_markdown(corr))
    plot_scores(scores, bench, options.proxy_names(), corr, out / scatter)
    result = {"kind": "benchmark-correlate", "benchmark": options.name, "options": asdict(options),
              "architectures": int(len(scores)), "valid_architectures": int(bench.table["valid"].sum()),
              "correlations": corr.to_dict("records")}
    write_text_atomic(out / "correlation.json", json.dumps(result, indent=1, default=float))
    return result


def correlation_markdown(corr: pd.DataFrame) -> str:
    def interval(value, low, high) -> str:
        return f"{value:.3f} [{low:.3f}, {high:.3f}]" if math.isfinite(value) else "n/a"

    lines = ["| score | n | Kendall tau [95% CI] | Spearman rho [95% CI] | cost per architecture |",
             "|---|---|---|---|---|"]
    for row in corr.to_dict("records"):
        cost = (f"{row['gpu_hours_per_arch']:.2f} GPU-h" if row["kind"] == "training"
                else f"{row['seconds_per_arch']:.2f} s" if row["kind"] in ("proxy", "combination") else "none")
        lines.append(f"| {row['score']} | {row['n']} | {interval(row['tau'], row['tau_low'], row['tau_high'])} | "
                     f"{interval(row['rho'], row['rho_low'], row['rho_high'])} | {cost} |")
    return "\n".join(lines) + "\n"
