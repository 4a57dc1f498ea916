"""Search quality on a tabular NAS benchmark: each method's pick on the benchmark's space, looked up in its
table, paired by seed with random, and the top-by-score curve (the best of n architectures ranked by a proxy).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lightsnn.nasbench.benchmark_options import BenchmarkOptions
from lightsnn.pipeline.targets import BENCHMARK_OUTPUTS
from lightsnn.studies.nasbench import open_from, read_scores, require_ids_of


def benchmark_search_config(bench, options: BenchmarkOptions, config: dict, method: str) -> tuple[dict, dict]:
    """The job config and method overrides that search the benchmark's space with its network at
    ``options.width`` on its images: its ops, cell type and pooling, as the benchmark trained them."""
    bench_net = bench.network(options.width).to_dict()  # the benchmark's own network, whatever the images' preset
    job = {**config, "network": {}, "networks": {**(config.get("networks") or {}), options.scoring_images(): bench_net}}
    overrides = {"space": bench.space_name, "cell_type": bench.space.cell_type, "pooling": bench.pooling,
                 **(options.search.get(method) or {})}
    return job, overrides


def search_on_benchmark(config: dict, method: str, seed: int, overrides: dict | None = None,
                        progress: bool | None = None) -> dict:
    """One search of ``method`` on the benchmark's space; its pick's benchmark record beside the search's."""
    from lightsnn.pipeline.jobs import run_search
    from lightsnn.space.genotype import Genotype

    options = BenchmarkOptions.from_config(config.get("benchmark"), overrides)
    bench = open_from(options, config)
    job, method_overrides = benchmark_search_config(bench, options, config, method)
    result = run_search(method, options.scoring_images(), seed, job, method_overrides, progress,
                        flags=["--width"] if (overrides or {}).get("width") else None)
    genotype = Genotype.from_json(result["genotype"]["json"])
    arch_id = bench.id_of(genotype)
    record = bench.table.loc[arch_id]
    return {"kind": "benchmark-search", "benchmark": options.name, "method": method, "seed": seed,
            "width": options.width, "id": int(arch_id), "genotype": result["genotype"]["str"],
            "valid": bool(record["valid"]), "test_acc": float(record["test_acc"]),
            "percentile": bench.percentile(float(record["test_acc"])), "params": int(record["params"]),
            "search_seconds": result["times"]["search_seconds"], "num_scorings": result["num_scorings"],
            "score": result["score"], "proxy": result["options"].get("proxy"), "options": result["options"]}


def pick_label(pick: dict) -> str:
    """The row a pick belongs to in the quality table: the method, with its proxy when not the paper's SAHD."""
    proxy = pick.get("proxy")  # absent (or NaN in a table) for older picks and for random
    return f"{pick['method']}[{proxy}]" if isinstance(proxy, str) and proxy != "sahd" else pick["method"]


def search_quality(picks: pd.DataFrame, baseline: str = "random") -> pd.DataFrame:
    """Per method (and proxy, when not SAHD: ``snasnet[patterns]``): the benchmark accuracy of its picks over
    seeds, and paired by seed with ``baseline``."""
    from lightsnn.core.stats import paired_comparison

    picks = picks.assign(label=[pick_label(p) for p in picks.to_dict("records")])
    base = picks[picks["label"] == baseline].set_index("seed")["test_acc"]
    rows = []
    for method, group in picks.groupby("label", sort=False):
        acc = group.set_index("seed")["test_acc"]
        row = {"method": method, "seeds": int(len(group)), "acc_mean": float(acc.mean()), "acc_std": float(acc.std()),
               "percentile_mean": float(group["percentile"].mean()), "valid_picks": int(group["valid"].sum()),
               "search_s_mean": float(group["search_seconds"].mean()),
               "scorings_mean": float(group["num_scorings"].mean())}
        if method != baseline:
            common = acc.index.intersection(base.index)
            paired = paired_comparison(acc.loc[common].to_numpy(), base.loc[common].to_numpy())
            row.update({f"vs_{baseline}_{k}": v for k, v in paired.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def top_by_score(scores: pd.DataFrame, bench, proxies: list[str], counts: list[int], draws: int = 2000,
                 seed: int = 0) -> pd.DataFrame:
    """The benchmark accuracy of the best-scored of N candidates drawn from the scored valid architectures,
    mean and 2.5/97.5 percentiles over ``draws`` draws per N: does scoring more candidates pick better ones?"""
    table = scores.merge(bench.table[["id", "valid", "test_acc"]], on="id")
    table = table[table["valid"]].reset_index(drop=True)
    acc = table["test_acc"].to_numpy()
    rng = np.random.default_rng(seed)
    rows = []
    for n in counts:
        if n > len(table):
            continue
        picks = np.stack([rng.choice(len(table), size=n, replace=False) for _ in range(draws)])
        for name in ["random", *proxies]:
            if name == "random":
                chosen = picks[:, 0]
            else:
                values = table[name].to_numpy()[picks]
                values = np.where(np.isfinite(values), values, -np.inf)
                chosen = picks[np.arange(draws), values.argmax(1)]
            got = acc[chosen]
            rows.append({"score": name, "n": n, "acc_mean": float(got.mean()), "acc_low": float(np.percentile(got, 2.5)),
                         "acc_high": float(np.percentile(got, 97.5))})
    return pd.DataFrame(rows)


def write_search_quality(pick_files: list[str], score_files: list[str], config: dict, out_dir,
                         overrides: dict | None = None) -> dict:
    """``search_quality.csv``/``.md``, ``top_by_score.csv`` and ``search_quality.png`` in ``out_dir``."""
    from lightsnn.core.atomic import write_text_atomic

    from lightsnn.pipeline.results import read_result

    options = BenchmarkOptions.from_config(config.get("benchmark"), overrides)
    picks = pd.DataFrame([read_result(f, "benchmark-search") for f in pick_files])
    scores = read_scores(score_files) if score_files else None  # every input checked before the benchmark is read
    bench = open_from(options, config)
    if scores is not None:
        require_ids_of(scores, bench, score_files)
    quality = search_quality(picks)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    markdown, csv, top_csv, plot = BENCHMARK_OUTPUTS["quality"]
    write_text_atomic(out / csv, quality.to_csv(index=False))
    write_text_atomic(out / markdown, quality_markdown(quality, bench))
    curve = top_by_score(scores, bench, options.proxy_names(), options.top_n,
                         seed=options.sample_seed) if scores is not None else pd.DataFrame()
    write_text_atomic(out / top_csv, curve.to_csv(index=False))
    plot_search_quality(picks, curve, out / plot)
    return {"kind": "benchmark-search-quality", "methods": quality.to_dict("records")}


def quality_markdown(quality: pd.DataFrame, bench) -> str:
    valid = bench.table.loc[bench.table["valid"], "test_acc"]
    lines = [f"Benchmark test accuracy of each method's pick (valid architectures: median {valid.median():.2f} %, "
             f"best {valid.max():.2f} %).", "",
             "| method | seeds | accuracy (%) | percentile | valid picks | vs random: mean diff (pp) | wins/losses | "
             "Wilcoxon p | search s |", "|---|---|---|---|---|---|---|---|---|"]
    for row in quality.to_dict("records"):
        vs = ("-", "-", "-") if "vs_random_mean_diff" not in row or pd.isna(row.get("vs_random_mean_diff")) else (
            f"{row['vs_random_mean_diff']:+.2f}", f"{row['vs_random_wins']:.0f}/{row['vs_random_losses']:.0f}",
            f"{row['vs_random_wilcoxon_p']:.3g}")
        lines.append(f"| {row['method']} | {row['seeds']} | {row['acc_mean']:.2f} ± {row['acc_std']:.2f} | "
                     f"{row['percentile_mean']:.0f} | {row['valid_picks']}/{row['seeds']} | {vs[0]} | {vs[1]} | "
                     f"{vs[2]} | {row['search_s_mean']:.1f} |")
    return "\n".join(lines) + "\n"


def plot_search_quality(picks: pd.DataFrame, curve: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lightsnn.core.atomic import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = [pick_label(p) for p in picks.to_dict("records")]
    for method, group in picks.assign(label=labels).groupby("label", sort=False):
        axes[0].scatter(group["search_seconds"], group["test_acc"], label=method, s=14)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("search time (s)")
    axes[0].set_ylabel("benchmark test accuracy of the pick (%)")
    axes[0].legend(fontsize=8)
    if len(curve):
        for name, group in curve.groupby("score", sort=False):
            axes[1].plot(group["n"], group["acc_mean"], marker="o", label=name)
        axes[1].set_xscale("log")
        axes[1].set_xlabel("candidates scored (N)")
        axes[1].set_ylabel("accuracy of the best-scored (%)")
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
