"""Where the trained networks and each method's picks lie on the accuracy-energy plane of a tabular benchmark:
its Pareto front, the picks on it or near it, and whether the picks fire less than random ones.

The energy of a trained network comes from its logged firing rates (the benchmark reader's ``trained_costs``);
the training-based searches' picks are those of the replay (:mod:`.nasbench_cost`) at :data:`FRONT_BUDGET`.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from lightsnn.core.stats import paired_comparison
from lightsnn.nasbench.benchmark_options import BenchmarkOptions
from lightsnn.pipeline.targets import BENCHMARK_OUTPUTS
from lightsnn.studies import budgeted
from lightsnn.studies.budgeted import front_accuracy, pareto_front
from lightsnn.studies.nasbench import open_from
from lightsnn.studies.nasbench_cost import FRONT_BUDGET, NEAR_FRONT_PP, curve_table, training_searches
from lightsnn.studies.nasbench_search import pick_label


def training_picks(bench, budget: float, seeds: int) -> list[dict]:
    """The pick of every replayed training-based search at ``budget`` GPU-hours, per seed, as pick records."""
    table = curve_table(bench)
    records = []
    for method, run in training_searches(table, budget).items():
        for seed in range(seeds):
            event = budgeted.incumbent_at(run(np.random.default_rng(seed)), [budget])[0]
            if event is not None:
                records.append({"method": f"{method} ({budget:g} h)", "seed": seed, "id": int(table.ids[event.pick]),
                                "test_acc": float(table.test[event.pick])})
    return records


def energy_plane(bench, pick_records: list[dict]) -> dict:
    """All valid trained networks on the accuracy-energy plane, its Pareto front, where each method's picks lie
    (on the front, within :data:`NEAR_FRONT_PP` of it), and whether SAHD's picks fire less than random picks
    after training (paired by seed)."""
    bench.require("trained_firing_rates", "the accuracy-energy plane")
    table = bench.table
    costs = bench.trained_costs()
    valid = table[table["valid"]].set_index("id")
    plane = pd.DataFrame({"id": valid.index, "test_acc": valid["test_acc"].to_numpy(),
                          "energy_uj": costs.loc[valid.index, "energy_pj"].to_numpy() / 1e6,
                          "synops": costs.loc[valid.index, "synops"].to_numpy(),
                          "firing_rate": costs.loc[valid.index, "firing_rate"].to_numpy(),
                          "params": valid["params"].to_numpy()})
    acc, energy = plane["test_acc"].to_numpy(), plane["energy_uj"].to_numpy()
    plane["on_front"] = pareto_front(acc, energy)
    front = plane["on_front"].to_numpy()
    plane["gap_pp"] = [front_accuracy(acc, energy, front, e) - a for a, e in zip(acc, energy)]
    picks = []
    where = plane.set_index("id")
    for record in pick_records:
        row = where.loc[int(record["id"])] if int(record["id"]) in where.index else None
        picks.append({"method": pick_label(record), "seed": record["seed"], "id": int(record["id"]),
                      "valid": row is not None, "test_acc": float(record["test_acc"]),
                      "energy_uj": float(row["energy_uj"]) if row is not None else math.nan,
                      "firing_rate": float(row["firing_rate"]) if row is not None else math.nan,
                      "on_front": bool(row["on_front"]) if row is not None else False,
                      "gap_pp": float(row["gap_pp"]) if row is not None else math.nan})
    picks = pd.DataFrame(picks)
    summary = []
    if len(picks):
        base = picks[picks["method"] == "random"].set_index("seed")
        for method, group in picks.groupby("method", sort=False):
            row = {"method": method, "picks": int(len(group)), "on_front": int(group["on_front"].sum()),
                   "near_front": int((group["gap_pp"] <= NEAR_FRONT_PP).sum()),
                   "acc_mean": float(group["test_acc"].mean()), "energy_uj_mean": float(group["energy_uj"].mean()),
                   "firing_mean": float(group["firing_rate"].mean())}
            if method != "random" and len(base):
                mine = group.set_index("seed")
                common = sorted(set(mine.index) & set(base.index))
                paired = paired_comparison(mine.loc[common, "firing_rate"].to_numpy(),
                                           base.loc[common, "firing_rate"].to_numpy())
                row.update({f"firing_vs_random_{k}": v for k, v in paired.items()})
            summary.append(row)
    valid_share = {"front_size": int(front.sum()), "networks": int(len(plane)),
                   "near_share": float(np.mean(plane["gap_pp"] <= NEAR_FRONT_PP))}
    return {"plane": plane, "picks": picks, "summary": pd.DataFrame(summary), "front": valid_share}


def write_energy_plane(pick_files: list[str], config: dict, out_dir, overrides: dict | None = None) -> dict:
    """``plane.csv`` (every valid network), ``front_picks.csv``, ``front.md`` and ``front.png`` in ``out_dir``."""
    from lightsnn.core.atomic import write_text_atomic
    from lightsnn.pipeline.results import read_result

    options = BenchmarkOptions.from_config(config.get("benchmark"), overrides)
    records = [read_result(f, "benchmark-search") for f in pick_files]
    bench = open_from(options, config)
    budget = FRONT_BUDGET if FRONT_BUDGET in options.budgets else max(options.budgets)
    result = energy_plane(bench, records + training_picks(bench, budget, options.budget_seeds))
    out = Path(out_dir)
    markdown, plane_csv, picks_csv, plot = BENCHMARK_OUTPUTS["front"]
    write_text_atomic(out / plane_csv, result["plane"].to_csv(index=False))
    write_text_atomic(out / picks_csv, result["picks"].to_csv(index=False))
    write_text_atomic(out / markdown, front_markdown(result))
    plot_plane(result, out / plot)
    return result


def front_markdown(result: dict) -> str:
    front = result["front"]
    lines = [f"Accuracy-energy plane of the {front['networks']} valid trained networks: {front['front_size']} on "
             f"the Pareto front; {100 * front['near_share']:.1f} % of all networks lie within {NEAR_FRONT_PP} "
             "points of it. Energy per inference from each trained network's logged firing rates (0.9 pJ per "
             "accumulate, 4.6 pJ per MAC). Firing: the mean rate over all LIFs after training; 'vs random' pairs "
             "each method's pick with random's on the same seed.", "",
             "| method | picks | on the front | within 0.5 pp | accuracy (%) | energy (µJ) | firing | firing vs "
             "random: mean diff [95 % CI], p |", "|---|---|---|---|---|---|---|---|"]
    for row in result["summary"].to_dict("records"):
        versus = "-"
        if "firing_vs_random_n" in row and row["firing_vs_random_n"] == row["firing_vs_random_n"]:
            versus = (f"{row['firing_vs_random_mean_diff']:+.4f} [{row['firing_vs_random_diff_low']:+.4f}, "
                      f"{row['firing_vs_random_diff_high']:+.4f}], "
                      + (f"p = {row['firing_vs_random_t_p']:.3f}" if row["firing_vs_random_t_p"] >= 0.001 else "p < 0.001"))
        lines.append(f"| {row['method']} | {row['picks']} | {row['on_front']} | {row['near_front']} | "
                     f"{row['acc_mean']:.2f} | {row['energy_uj_mean']:.0f} | {row['firing_mean']:.4f} | {versus} |")
    return "\n".join(lines) + "\n"


def plot_plane(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lightsnn.pipeline.report import save_figure

    plane, picks = result["plane"], result["picks"]
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.scatter(plane["energy_uj"], plane["test_acc"], s=3, color="lightgrey", label="valid networks")
    front = plane[plane["on_front"]].sort_values("energy_uj")
    ax.step(front["energy_uj"], front["test_acc"], where="post", color="black", linewidth=1, label="Pareto front")
    if len(picks):
        for index, (method, group) in enumerate(picks.groupby("method", sort=False)):
            ax.scatter(group["energy_uj"], group["test_acc"], s=25, color=plt.cm.tab20(index % 20),
                       label=f"{method} picks", edgecolor="black", linewidth=0.4)
    ax.set_xlabel("energy per inference of the trained network (µJ)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(bottom=max(80.0, float(plane["test_acc"].min()) - 0.5))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)
