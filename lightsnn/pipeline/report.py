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
from lightsnn.core.layout import RUN_FILES, RUNS_TABLE, RUNS_TABLE_HTML
from lightsnn.pipeline.paper import TABLE1, TABLE2
from lightsnn.pipeline.results import read_result
from lightsnn.pipeline.targets import ACCURACY_VS_SAR_PLOT, SEARCH_TIME_PLOT, table_files
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
               "structure": structure(search), "genotype": search["genotype"]["str"],
               "classes": search["network"].get("num_classes"), "epochs": files["train"].get("epochs"),
               "max_batches": (files["train"].get("options") or {}).get("max_batches"),
               "test_samples": files["evaluate"].get("test_samples")}
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
#: Table 2's displayed columns, in order: metric -> heading (with its unit). The CSV keeps every metric.
SHOWN = {"acc": "accuracy (%)", "best_epoch_acc": "best-epoch acc. (%)", "search_s": "search (s)", "sar": "SAR",
         "params": "params", "synops": "SynOps/sample", "energy_uj": "energy (µJ/sample)",
         "size_kb": "size (KB, as stored)"}
BASELINE = "random"


def _paired_with_baseline(part: pd.DataFrame, base: pd.DataFrame | None) -> dict:
    """Accuracy of one run against the baseline run of its dataset, matched by seed (percentage points)."""
    from lightsnn.core.stats import paired_comparison

    if base is None:
        return {}
    ours, theirs = part.set_index("seed")["acc"], base.set_index("seed")["acc"]
    common = sorted(set(ours.index) & set(theirs.index))
    return paired_comparison(ours.loc[common].to_numpy(), theirs.loc[common].to_numpy())


#: Fewest paired seeds whose 95 % t-interval is shown: at 2 seeds it spans +-12.7 standard deviations of the
#: differences (t on 1 degree of freedom), wider than any accuracy range, so only the mean difference is printed.
MIN_SEEDS_FOR_INTERVAL = 3


def verdict(paired: dict, alpha: float = 0.05) -> str:
    """The paired comparison in few words (one or two lines in a table cell): the interval and p decide, never the
    means alone; below :data:`MIN_SEEDS_FOR_INTERVAL` seeds only the mean difference, saying what would give more."""
    n = paired.get("n", 0)
    if n < 2:
        return f"no test ({n} seed{'s' if n != 1 else ''} paired)"
    diff, low, high, p = (paired[k] for k in ("mean_diff", "diff_low", "diff_high", "t_p"))
    if not math.isfinite(p):
        return f"{diff:+.1f}, identical on every seed" if diff == 0 else f"{diff:+.1f} on every seed"
    if n < MIN_SEEDS_FOR_INTERVAL:
        return f"{diff:+.1f} (no interval at {n} seeds)"  # the caption says what gives one
    shown = f"{diff:+.1f} [{low:+.1f}, {high:+.1f}]"
    if p < alpha:
        return f"{shown} {'better' if diff > 0 else 'worse'}, p = {p:.3f}"
    return f"{shown} n.s., p = {p:.2f}"


def seeds_text(seeds) -> str:
    """Seeds as a reader writes them: ``0``, ``0 and 1``, ``0, 1 and 4``, ``0-9``."""
    seeds = sorted(int(s) for s in set(seeds))
    if len(seeds) > 3 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    if len(seeds) == 1:
        return str(seeds[0])
    return ", ".join(map(str, seeds[:-1])) + f" and {seeds[-1]}"


def _paper_values(base: dict, part: pd.DataFrame):
    """The paper's row for this run, only where the run is the paper's setup: its dataset and method, its T, and
    its training budget (whole epochs, as many as the paper's); otherwise None (nothing to compare with)."""
    from lightsnn.pipeline.paper import PAPER_EPOCHS

    paper = TABLE2.get((base["dataset"], base["run"]))
    if paper is None or base["run"] != base["method"] or paper[1] != base["timesteps"]:
        return None
    if part["epochs"].min() < PAPER_EPOCHS or part["max_batches"].notna().any():
        return None
    return paper


def table2(frame: pd.DataFrame, baseline: str = BASELINE) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Numeric (mean, std per metric; the paired comparison with ``baseline``) and display tables, one row per
    dataset and run. The paper's values appear only for runs at the paper's setup (:func:`_paper_values`)."""
    keys = ["dataset", "run", "method", "structure", "timesteps"]
    numeric, display = [], []
    same_names = bool((frame["run"] == frame["method"]).all())
    for group, part in frame.groupby(keys, sort=False):
        base = dict(zip(keys, group))
        baseline_rows = frame[(frame["dataset"] == base["dataset"]) & (frame["run"] == baseline)]
        budget = {"epochs": int(part["epochs"].max()) if part["epochs"].notna().any() else None,
                  "max_batches": part["max_batches"].dropna().max() if part["max_batches"].notna().any() else None}
        num = {**base, "seeds": len(part), **budget}
        shown = {k: v for k, v in base.items() if not (k == "method" and same_names)}
        shown.update({"T": shown.pop("timesteps"), "seeds": len(part), "epochs": budget["epochs"]})
        for column in METRICS:
            num[f"{column}_mean"] = part[column].mean()
            num[f"{column}_std"] = part[column].std(ddof=1) if len(part) > 1 else np.nan
        for column, heading in SHOWN.items():
            shown[heading] = mean_std(part[column], digits=DIGITS[column])
            if column == "acc":
                if base["run"] == baseline:
                    shown[f"vs {baseline} (pp, 95% CI)"] = "baseline"
                else:
                    paired = _paired_with_baseline(part, None if baseline_rows.empty else baseline_rows)
                    num.update({f"acc_vs_{baseline}_{k}": v for k, v in paired.items()})
                    shown[f"vs {baseline} (pp, 95% CI)"] = verdict(paired) if paired else f"no {baseline} run"
        paper = _paper_values(base, part)
        num.update(paper_acc=paper[2] if paper else None, paper_search_s=paper[3] if paper else None,
                   paper_sar=paper[4] if paper else None)
        if paper:
            shown.update({"paper acc. (%)": paper[2], "paper search (s)": paper[3], "paper SAR": paper[4]})
        numeric.append(num)
        display.append(shown)
    return pd.DataFrame(numeric), pd.DataFrame(display)


def table2_caption(frame: pd.DataFrame, baseline: str = BASELINE, numeric: pd.DataFrame | None = None) -> str:
    """What a reader needs to read Table 2: the budget, the units, what the comparison is, and what the paper
    columns are only where the table prints them."""
    from lightsnn.pipeline.paper import PAPER_EPOCHS

    seeds = sorted(set(frame["seed"]))
    numeric = table2(frame, baseline)[0] if numeric is None else numeric  # the table it is the caption of
    paper_shown = bool(numeric["paper_acc"].notna().any())
    fewest = int(frame.groupby(["dataset", "run"])["seed"].nunique().min())
    epochs = sorted(set(frame["epochs"].dropna().astype(int)))
    capped = sorted(set(frame["max_batches"].dropna().astype(int)))
    tests = {d: int(n) for d, n in frame.groupby("dataset")["test_samples"].max().items() if n == n}
    budget = (f"trained {', '.join(map(str, epochs))} epoch(s)"
              + (f" of at most {', '.join(map(str, capped))} batches" if capped else " of the whole training set"))
    interval = ("with its 95 % t-interval and the paired t-test's p (n.s.: not significant at 5 %); with few seeds "
                "only large, steady differences are significant"
                if fewest >= MIN_SEEDS_FOR_INTERVAL else
                f"without an interval: {fewest} seeds give none worth printing (at 2 the 95 % t-interval spans "
                f"±12.7 standard deviations); {MIN_SEEDS_FOR_INTERVAL} or more seeds (workflow.seeds) give one")
    paper = (f" The LightSNN paper's values (A40 GPU) are printed for its own methods at its setup (its T, "
             f"{PAPER_EPOCHS} whole epochs)." if paper_shown else "")
    return (f"Table 2: one row per dataset and search run; mean ± std over seeds {seeds_text(seeds)}, {budget}; test "
            "samples: " + ", ".join(f"{d} {n}" for d, n in tests.items()) + ". Accuracy: final-epoch top-1 on the "
            f"test set (%). vs {baseline}: accuracy minus the {baseline} run's on the same seed, the mean difference "
            f"in percentage points {interval}. SAR: spikes per neuron and timestep over the test set. Energy per "
            "sample: 0.9 pJ per accumulate, 4.6 pJ per multiply-accumulate (45 nm). Size: the weights as stored "
            "(fp32; LitE-SNN's at its searched bit widths and pruning)." + paper)


def write_table(numeric: pd.DataFrame, display: pd.DataFrame, stem: Path, caption: str | None = None) -> None:
    """The table in every format of :data:`~lightsnn.pipeline.targets.TABLE_FORMATS`: CSV (every number),
    Markdown, LaTeX and HTML (the displayed columns, the caption under them)."""
    shown = display.fillna("-")
    note = f"\n{caption}\n" if caption else ""
    text = {"csv": lambda: numeric.to_csv(index=False),
            "md": lambda: shown.to_markdown(index=False) + "\n" + note,
            "tex": lambda: shown.to_latex(index=False, escape=True),
            "html": lambda: html_page(shown, caption)}
    for name in table_files(stem.name):
        write_text_atomic(stem.with_name(name), text[name.rsplit(".", 1)[1]]())


def html_page(shown: pd.DataFrame, caption: str | None = None) -> str:
    """A table as a small self-contained HTML page (what the Snakemake report shows inline), its caption under it."""
    import html

    head = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    table = shown.to_html(index=False, escape=True, border=0, classes="lightsnn-table")
    table = table.replace(">\n  <thead>", ">" + head + "\n  <thead>", 1)
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\"><style>"
            "table{border-collapse:collapse;font:13px sans-serif}th,td{padding:3px 8px;"
            "border-bottom:1px solid #ddd;text-align:right}caption{caption-side:bottom;text-align:left;"
            "padding-top:6px;max-width:60em}</style></head><body>\n" + table + "\n</body></html>\n")


RUNS_CAPTION = ("Every run of Table 2, one row per dataset, run and seed, unaveraged: its genotype, its training budget "
                "(epochs, batch cap) and every metric (acc: final-epoch test accuracy, %; search_s: seconds; sar: spikes "
                "per neuron and timestep; energy_uj: µJ per sample; size_kb: the weights as stored). runs.csv holds "
                "the same numbers unrounded.")


TABLE1_CAPTION = ("Table 1: random search (SNASNet's sampler) against pruning-by-importance (LightSNN) on SNASNet's "
                  "5-op space, mean ± std over seeds: final-epoch test accuracy (%) and search time (s). The "
                  "paper_*_cifar10 columns are the LightSNN paper's CIFAR-10 figures (300 epochs, A40 GPU), printed "
                  "for reference whatever this run's dataset and budget.")


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


def accuracy_vs_sar_figure(frame: pd.DataFrame):
    """One panel per dataset: every run's seeds (dots) and mean (star), each panel's axes from its own data so no
    point falls outside (a shared x-axis took the first panel's range and hid LitE-SNN's points on the other), the
    legend below the panels, off the data."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    datasets = list(dict.fromkeys(frame["dataset"]))
    runs = list(dict.fromkeys(frame["run"]))  # one colour per run across every panel
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        part = frame[frame["dataset"] == dataset]
        classes = part["classes"].dropna()
        if len(classes):  # what a network that guesses scores: the floor every accuracy is read against
            chance = 100.0 / classes.iloc[0]
            ax.axhline(chance, color="grey", linestyle="--", linewidth=1)
            ax.annotate(f"chance {chance:.1f} %", (0.01, chance), xycoords=("axes fraction", "data"),
                        textcoords="offset points", xytext=(0, 3), fontsize=8, color="grey")
        for run, rows in part.groupby("run", sort=False):
            color = f"C{runs.index(run) % 10}"
            ax.scatter(rows["sar"], rows["acc"], color=color, alpha=0.5, s=25)
            ax.scatter(rows["sar"].mean(), rows["acc"].mean(), color=color, marker="*", s=200, edgecolor="black")
        sar = part["sar"].dropna()
        ax.set_xlim(0, 1.12 * float(sar.max()) if len(sar) and sar.max() > 0 else 1.0)
        ax.set_ylim(0, 100)
        ax.set_title(dataset)
        ax.set_xlabel("spiking activity rate (spikes per neuron and timestep)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], marker="*", color=f"C{i % 10}", markeredgecolor="black", markersize=12, linestyle="",
                      label=run) for i, run in enumerate(runs)]
    handles.append(Line2D([], [], marker="o", color="grey", alpha=0.5, linestyle="", label="one seed"))
    handles.append(Line2D([], [], marker="*", color="white", markeredgecolor="black", markersize=12, linestyle="",
                          label="mean over seeds"))
    rows = -(-len(handles) // 8)
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 * rows + 0.02, 1, 1))
    return fig


def plot_accuracy_vs_sar(frame: pd.DataFrame, path: Path) -> None:
    save_figure(accuracy_vs_sar_figure(frame), path)


def search_time_figure(frame: pd.DataFrame):
    """Mean search time per run and dataset (log scale, std as error bars), the legend beside the bars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = frame.groupby(["dataset", "run"], sort=False)["search_s"].agg(["mean", "std"]).reset_index()
    datasets = list(dict.fromkeys(summary["dataset"]))
    runs = list(dict.fromkeys(summary["run"]))
    width = 0.8 / max(len(datasets), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.5 * len(runs)) + 1.5, 4))
    for i, dataset in enumerate(datasets):
        part = summary[summary["dataset"] == dataset].set_index("run").reindex(runs)
        means = part["mean"].clip(lower=1e-3)
        ax.bar(np.arange(len(runs)) + i * width, means, width, yerr=part["std"].fillna(0), label=dataset)
    ax.set_xticks(np.arange(len(runs)) + width * (len(datasets) - 1) / 2, runs)
    ax.set_xlabel("search run")
    ax.set_yscale("log")
    ax.set_ylabel("search time (s, log scale)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="dataset", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def plot_search_time(frame: pd.DataFrame, path: Path) -> None:
    save_figure(search_time_figure(frame), path)


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
    write_text_atomic(out / RUNS_TABLE, frame.to_csv(index=False))
    write_text_atomic(out / RUNS_TABLE_HTML, html_page(frame.round(4).fillna("-"), RUNS_CAPTION))
    write_table(numeric, display, out / "table2", table2_caption(main, numeric=numeric))
    written = {"table2": str(out / "table2.csv"), "runs": str(out / RUNS_TABLE)}
    if first is not None:
        write_table(*first, out / "table1", TABLE1_CAPTION)
        written["table1"] = str(out / "table1.csv")
    plot_accuracy_vs_sar(main, out / ACCURACY_VS_SAR_PLOT)
    plot_search_time(frame, out / SEARCH_TIME_PLOT)
    return written
