"""Aggregate run folders into the comparison tables (CSV, Markdown, LaTeX) and plots.

A run folder holds the search, training and evaluation results of one (dataset, run, seed)
(:mod:`lightsnn.core.layout`); a run is a method or a named variant of one.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from lightsnn.core.atomic import atomic_path, write_text_atomic
from lightsnn.core.layout import RUN_FILES
from lightsnn.pipeline.paper import TABLE1, TABLE2
from lightsnn.pipeline.results import read_result
from lightsnn.space.families import get_family

METRICS = {  # column -> (source file, key)
    "acc": ("evaluate", "top1"),
    "best_epoch_acc": ("train", "best_epoch_test_acc"),
    "search_s": ("search", "times.search_seconds"),
    "sar": ("evaluate", "sar"),
    "params": ("evaluate", "parameters"),
    "synops": ("evaluate", "synops_per_sample"),
    "energy_uj": ("evaluate", "energy_pj_per_sample"),
    "memory_mb": ("evaluate", "bytes_fp32"),
    "size_kb": ("evaluate", "model_size_bytes"),  # as stored: LitE-SNN's searched bits and pruning, else fp32
    "bit_synops": ("evaluate", "bit_synops_per_sample"),
}
SCALE = {"acc": 100.0, "best_epoch_acc": 100.0, "energy_uj": 1e-6, "memory_mb": 1e-6, "size_kb": 1e-3}


def _get(data: dict, dotted: str):
    for part in dotted.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def load_runs(run_dirs: list[str | Path]) -> pd.DataFrame:
    seen: dict[Path, str] = {}
    for folder in map(str, run_dirs):
        key = Path(folder).resolve()
        if key in seen:
            also = "" if seen[key] == folder else f" (also as {seen[key]!r})"
            raise ValueError(f"run folder {folder!r} is given twice{also}: each run counts once")
        seen[key] = folder
    rows = []
    for folder in map(Path, run_dirs):
        files = {}
        for kind, name in RUN_FILES.items():
            path = folder / name
            if not path.is_file():
                raise FileNotFoundError(f"run folder {folder} has no {name}")
            files[kind] = read_result(path, kind)
        search = files["search"]
        row = {"dataset": search["dataset"], "run": folder.parent.name, "method": search["method"],
               "seed": search["seed"], "timesteps": search["network"]["timesteps"],
               "structure": structure(search), "genotype": search["genotype"]["str"]}
        row.update(get_family(search.get("family")).table_fields(search))
        for column, (kind, key) in METRICS.items():
            value = _get(files[kind], key)
            row[column] = None if value is None else float(value) * SCALE.get(column, 1.0)
        rows.append(row)
    return pd.DataFrame(rows)


def structure(search: dict) -> str:
    """The search space in words, as the papers' tables give it."""
    return get_family(search.get("family")).describe(search)


def mean_std(values, scale: float = 1.0, digits: int = 2, missing: str = "-") -> str:
    """"mean ± std" (sample std) of the finite values times ``scale``; one value alone; ``missing`` for none."""
    finite = [float(v) * scale for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return missing
    if len(finite) == 1:
        return f"{finite[0]:.{digits}f}"
    return f"{np.mean(finite):.{digits}f} ± {np.std(finite, ddof=1):.{digits}f}"


DIGITS = {"acc": 2, "best_epoch_acc": 2, "search_s": 1, "sar": 3, "params": 0, "synops": 0, "energy_uj": 2,
          "memory_mb": 3, "size_kb": 2, "bit_synops": 0}


def table2(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Numeric (mean, std, n per metric) and display ("mean ± std") tables, one row per dataset and run."""
    keys = ["dataset", "run", "method", "structure", "timesteps"]
    numeric, display = [], []
    for group, part in frame.groupby(keys, sort=False):
        base = dict(zip(keys, group))
        num = {**base, "seeds": len(part)}
        shown = {**base, "seeds": len(part)}
        for column in METRICS:
            num[f"{column}_mean"] = part[column].mean()
            num[f"{column}_std"] = part[column].std(ddof=1) if len(part) > 1 else np.nan
            shown[column] = mean_std(part[column], digits=DIGITS[column])
        paper = TABLE2.get((base["dataset"], base["run"]))
        for frame_ in (num, shown):
            frame_["paper_acc"] = paper[2] if paper else None
            frame_["paper_search_s"] = paper[3] if paper else None
            frame_["paper_sar"] = paper[4] if paper else None
        numeric.append(num)
        display.append(shown)
    return pd.DataFrame(numeric), pd.DataFrame(display)


def write_table(numeric: pd.DataFrame, display: pd.DataFrame, stem: Path) -> None:
    write_text_atomic(stem.with_suffix(".csv"), numeric.to_csv(index=False))
    shown = display.fillna("-")
    write_text_atomic(stem.with_suffix(".md"), shown.to_markdown(index=False) + "\n")
    write_text_atomic(stem.with_suffix(".tex"), shown.to_latex(index=False, escape=True))


def table1(frame: pd.DataFrame, dataset: str, random_run: str, pruning_run: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    for run in (random_run, pruning_run):
        if not ((frame["dataset"] == dataset) & (frame["run"] == run)).any():
            known = sorted(set(frame.loc[frame["dataset"] == dataset, "run"]))
            raise ValueError(f"table 1 run {run!r} has no run folder on dataset {dataset!r}; "
                             f"runs there: {known or 'none'}")
    part = frame[(frame["dataset"] == dataset) & frame["run"].isin([random_run, pruning_run])].copy()
    part["algorithm"] = part["run"].map({random_run: "Random search", pruning_run: "Pruning-by-importance"})
    numeric, display = [], []
    for algorithm, rows in part.groupby("algorithm", sort=False):
        paper = TABLE1["random" if algorithm == "Random search" else "pruning"]
        numeric.append({"dataset": dataset, "algorithm": algorithm, "run": rows["run"].iloc[0], "seeds": len(rows),
                        "acc_mean": rows["acc"].mean(), "acc_std": rows["acc"].std(ddof=1),
                        "search_s_mean": rows["search_s"].mean(), "search_s_std": rows["search_s"].std(ddof=1),
                        "paper_acc_cifar10": paper[0], "paper_search_s_cifar10": paper[1]})
        display.append({"dataset": dataset, "algorithm": algorithm, "seeds": len(rows),
                        "acc": mean_std(rows["acc"], digits=2), "search_s": mean_std(rows["search_s"], digits=1),
                        "paper_acc_cifar10": paper[0], "paper_search_s_cifar10": paper[1]})
    return pd.DataFrame(numeric), pd.DataFrame(display)


def plot_accuracy_vs_sar(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(frame["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        part = frame[frame["dataset"] == dataset]
        for index, (run, rows) in enumerate(part.groupby("run", sort=False)):
            color = f"C{index}"
            ax.scatter(rows["sar"], rows["acc"], color=color, alpha=0.5, s=25)
            ax.scatter(rows["sar"].mean(), rows["acc"].mean(), color=color, marker="*", s=200,
                       edgecolor="black", label=f"{run} (mean)")
        ax.set_title(dataset)
        ax.set_xlabel("spiking activity rate")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def plot_search_time(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = frame.groupby(["dataset", "run"], sort=False)["search_s"].agg(["mean", "std"]).reset_index()
    datasets = list(dict.fromkeys(summary["dataset"]))
    runs = list(dict.fromkeys(summary["run"]))
    width = 0.8 / max(len(datasets), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.5 * len(runs)), 4))
    for i, dataset in enumerate(datasets):
        part = summary[summary["dataset"] == dataset].set_index("run").reindex(runs)
        means = part["mean"].clip(lower=1e-3)
        ax.bar(np.arange(len(runs)) + i * width, means, width, yerr=part["std"].fillna(0), label=dataset)
    ax.set_xticks(np.arange(len(runs)) + width * (len(datasets) - 1) / 2, runs)
    ax.set_yscale("log")
    ax.set_ylabel("search time (s, log scale)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path, suffix=path.suffix) as tmp:
            fig.savefig(tmp, dpi=120)
    finally:
        plt.close(fig)


def build_report(run_dirs: list[str], out_dir: str | Path, table1_spec: dict | None = None) -> dict:
    out = Path(out_dir)
    frame = load_runs(run_dirs)
    t1_runs = set()
    if table1_spec:
        t1_runs = {table1_spec["random"], table1_spec["pruning"]}
    main = frame[~frame["run"].isin(t1_runs - set(frame["method"]))] if t1_runs else frame
    numeric, display = table2(main)
    # every table is computed before any is written: a bad --table1 leaves no half of the report behind
    first = table1(frame, table1_spec["dataset"], table1_spec["random"], table1_spec["pruning"]) if table1_spec else None
    write_text_atomic(out / "runs.csv", frame.to_csv(index=False))
    write_table(numeric, display, out / "table2")
    written = {"table2": str(out / "table2.csv"), "runs": str(out / "runs.csv")}
    if first is not None:
        write_table(*first, out / "table1")
        written["table1"] = str(out / "table1.csv")
    plot_accuracy_vs_sar(main, out / "accuracy_vs_sar.png")
    plot_search_time(frame, out / "search_time.png")
    return written
