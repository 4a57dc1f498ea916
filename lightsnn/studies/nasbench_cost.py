"""What a good spiking network costs, on a tabular benchmark: training-free searches against training-based ones
at equal GPU-hours (the anytime table), and the accuracy-energy plane of the trained networks.

The training-based searches are replayed on the benchmark's own curves and timings (:mod:`.budgeted`); the
training-free ones are the picks of ``benchmark search`` (their cost: the search's own seconds, on whatever
device ran it, which is far below every budget here). The energy of a trained network comes from its logged
firing rates (the benchmark reader's ``trained_costs``).
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
from lightsnn.studies.nasbench import open_from
from lightsnn.studies.nasbench_search import pick_label

#: Hyperparameters of the simulated searches (the budgets and the seed count are options).
ETA = 3
MAX_EPOCHS = 81  # successive halving and Hyperband: rungs 1, 3, 9, 27, 81 epochs
SH_CANDIDATES = 81
EVOLUTION = {"population": 20, "sample": 5, "epochs": 10}
EARLY_STOPS = (1, 5, 20)  # random candidates trained this many epochs each; "full" trains them to the end
PREFILTER = 0.1  # a hybrid keeps this share of the candidates by the training-free score, then halves
NEAR_FRONT_PP = 0.5  # a pick within this many points of the front's accuracy at its energy is "near" it
FRONT_BUDGET = 10.0  # GPU-hours at which the training-based searches' picks join the plane (else the largest)


def curve_table(bench) -> budgeted.CurveTable:
    """The benchmark's valid architectures as candidates: curves, cost per epoch, test accuracy, and
    neighbours one edge-op change away that stay valid (evolution's mutations)."""
    from lightsnn.space.genotype import FORWARD_EDGES, CellGenotype, Genotype

    table = bench.table
    valid = table["valid"].to_numpy()
    ids = table.loc[valid, "id"].to_numpy()
    position = {int(i): p for p, i in enumerate(ids)}
    ops = list(bench.space.ops)
    cache: dict[int, list[int]] = {}

    def neighbours(p: int) -> list[int]:
        if p not in cache:
            cell = bench.genotype(int(ids[p])).cells[0]
            edges = {edge: cell.op(edge) for edge in FORWARD_EDGES}
            found = []
            for edge, current in edges.items():
                for op in ops:
                    if op != current:
                        mutant = {e: (op if e == edge else o) for e, o in edges.items()}
                        arch = bench.id_of(Genotype.shared(CellGenotype.from_edges(mutant)))
                        if arch in position:
                            found.append(position[arch])
            cache[p] = found
        return cache[p]

    bench.require("val_curve", "the anytime table's training-based searches")
    bench.require("cost_per_epoch", "the anytime table's budgets")
    return budgeted.CurveTable(ids=ids, val=bench.val_curves(ids), hours_per_epoch=bench.hours_per_epoch(ids),
                               test=table.loc[valid, "test_acc"].to_numpy(dtype=np.float64),
                               epochs=table.loc[valid, "epochs"].to_numpy(), neighbours=neighbours,
                               extra={"params": table.loc[valid, "params"].to_numpy(dtype=np.float64)})


def training_searches(table: budgeted.CurveTable, scores: dict[str, np.ndarray] | None = None) -> dict:
    """Every simulated training-based search by name: a function of a seed's generator giving its events."""
    searches = {}
    for k in EARLY_STOPS:
        searches[f"random, {k} epoch{'s' if k > 1 else ''} each"] = \
            lambda rng, k=k: budgeted.random_epochs(table, rng, k)
    searches["random, full training each"] = lambda rng: budgeted.random_epochs(table, rng, 10 ** 6)
    searches["successive halving"] = lambda rng: budgeted.repeated(
        lambda ledger: budgeted.successive_halving(table, rng, SH_CANDIDATES, 1, MAX_EPOCHS, ETA, ledger=ledger),
        table)
    searches["Hyperband"] = lambda rng: budgeted.hyperband(table, rng, MAX_EPOCHS, ETA)
    searches[f"evolution ({EVOLUTION['epochs']} epochs fitness)"] = lambda rng: budgeted.regularized_evolution(
        table, rng, EVOLUTION["epochs"], EVOLUTION["population"], EVOLUTION["sample"])
    for name, values in {"params": table.extra["params"], **(scores or {})}.items():
        scored = np.flatnonzero(np.isfinite(values))  # a proxy scored on a sample prefilters that sample
        top = max(1, int(round(PREFILTER * len(scored))))
        pool = scored[np.argsort(-values[scored], kind="stable")[:top]]
        searches[f"{name} top {PREFILTER:.0%} + successive halving"] = lambda rng, pool=pool: budgeted.repeated(
            lambda ledger: budgeted.successive_halving(table, rng, SH_CANDIDATES, 1, MAX_EPOCHS, ETA, pool=pool,
                                                       ledger=ledger), table)
    return searches


def anytime(bench, pick_records: list[dict], budgets: list[float], seeds: int,
            scores: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Per method and budget (GPU-hours): the test accuracy of its pick over seeds (mean, 95 % t-interval), its
    regret to the best valid network, and the hours it actually spent."""
    from scipy import stats

    table = curve_table(bench)
    best = float(table.test.max())
    rows = []

    def summarise(method: str, kind: str, per_budget: list[list[tuple[float, float]]]):
        for budget, got in zip(sorted(budgets), per_budget):
            acc = np.asarray([a for a, _ in got])
            n = len(acc)
            half = float(stats.t.ppf(0.975, n - 1) * acc.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
            rows.append({"method": method, "kind": kind, "budget_gpu_hours": budget, "seeds": n,
                         "acc_mean": float(acc.mean()) if n else math.nan,
                         "acc_low": float(acc.mean()) - half if n else math.nan,
                         "acc_high": float(acc.mean()) + half if n else math.nan,
                         "regret_mean": best - float(acc.mean()) if n else math.nan,
                         "hours_mean": float(np.mean([h for _, h in got])) if n else math.nan})

    for method, run in training_searches(table, scores).items():
        per_budget: list[list[tuple[float, float]]] = [[] for _ in budgets]
        for seed in range(seeds):
            picks = budgeted.incumbent_at(run(np.random.default_rng(seed)), budgets)
            for b, event in enumerate(picks):
                if event is not None:
                    per_budget[b].append((float(table.test[event.pick]), event.hours))
        summarise(method, "training", per_budget)
    # training-free: a random valid pick costs nothing; each search's pick costs its own search time
    rng = np.random.default_rng(0)
    free = [(float(table.test[int(rng.integers(len(table.ids)))]), 0.0) for _ in range(seeds)]
    summarise("random pick (no training)", "training-free", [free for _ in budgets])
    by_label: dict[str, list[dict]] = {}
    for record in pick_records:
        by_label.setdefault(pick_label(record), []).append(record)
    for label, records in by_label.items():
        if label == "random":
            continue
        per_budget = [[(float(r["test_acc"]), r["search_seconds"] / 3600) for r in records
                       if r["search_seconds"] / 3600 <= budget] for budget in sorted(budgets)]
        summarise(f"{label} (training-free)", "training-free", per_budget)
    return pd.DataFrame(rows)


def pareto_front(acc: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """A mask of the networks no other network beats on both axes (higher accuracy, lower energy)."""
    order = np.lexsort((-acc, energy))  # by energy, the more accurate first among equal energies
    front = np.zeros(len(acc), dtype=bool)
    best = -np.inf
    for i in order:
        if acc[i] > best:
            front[i] = True
            best = acc[i]
    return front


def front_accuracy(acc: np.ndarray, energy: np.ndarray, front: np.ndarray, at: float) -> float:
    """The best accuracy reachable at energy ``at`` or less (the front's step function)."""
    within = front & (energy <= at)
    return float(acc[within].max()) if within.any() else -math.inf


def training_picks(bench, budget: float, seeds: int) -> list[dict]:
    """The pick of every replayed training-based search at ``budget`` GPU-hours, per seed, as pick records."""
    table = curve_table(bench)
    records = []
    for method, run in training_searches(table).items():
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


def write_anytime(pick_files: list[str], score_files: list[str], config: dict, out_dir,
                  overrides: dict | None = None, log=print) -> pd.DataFrame:
    """``anytime.csv``/``.md`` and ``anytime.png`` in ``out_dir``."""
    from lightsnn.core.atomic import write_text_atomic
    from lightsnn.pipeline.results import read_result
    from lightsnn.studies.nasbench import read_scores, require_ids_of

    options = BenchmarkOptions.from_config(config.get("benchmark"), overrides)
    records = [read_result(f, "benchmark-search") for f in pick_files]
    scores = read_scores(score_files) if score_files else None
    bench = open_from(options, config)
    if scores is not None:
        require_ids_of(scores, bench, score_files)
    proxy_scores = None
    if scores is not None:  # a hybrid per proxy: its pool is drawn from the scored architectures only
        table = curve_table(bench)
        at = scores.set_index("id")
        proxy_scores = {name: np.asarray([at[name].get(int(i), np.nan) for i in table.ids], dtype=np.float64)
                        for name in ("sahd",) if name in at.columns}
    result = anytime(bench, records, list(options.budgets), options.budget_seeds, proxy_scores)
    out = Path(out_dir)
    markdown, csv, plot = BENCHMARK_OUTPUTS["anytime"]
    write_text_atomic(out / csv, result.to_csv(index=False))
    write_text_atomic(out / markdown, anytime_markdown(result, bench, options))
    plot_anytime(result, float(bench.table.loc[bench.table["valid"], "test_acc"].max()), out / plot)
    return result


def anytime_markdown(result: pd.DataFrame, bench, options: BenchmarkOptions) -> str:
    best = float(bench.table.loc[bench.table["valid"], "test_acc"].max())
    budgets = sorted(options.budgets)
    lines = [f"Test accuracy (%) of each method's pick on {bench.name} against the GPU-hours it spent: mean [95 % "
             f"t-interval] over {options.budget_seeds} seeds; best valid network {best:.2f} %. Training-based "
             "searches are replayed on the benchmark's own curves and timings; '-' where the budget does not pay "
             "for one evaluation; (n = k) where only k seeds had a pick within the budget.", "",
             "| method | " + " | ".join(f"{b:g} h" for b in budgets) + " |",
             "|---|" + "---|" * len(budgets)]
    for method, group in result.groupby("method", sort=False):
        cells = []
        for budget in budgets:
            row = group[group["budget_gpu_hours"] == budget]
            if row.empty or not row["seeds"].item():
                cells.append("-")
            else:
                r = row.iloc[0]
                spread = "" if not math.isfinite(r["acc_low"]) else f" [{r['acc_low']:.2f}, {r['acc_high']:.2f}]"
                fewer = f" (n = {int(r['seeds'])})" if r["seeds"] < options.budget_seeds else ""
                cells.append(f"{r['acc_mean']:.2f}{spread}{fewer}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_anytime(result: pd.DataFrame, best: float, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lightsnn.pipeline.report import save_figure

    fig, ax = plt.subplots(figsize=(8, 5))
    for index, (method, group) in enumerate(result.groupby("method", sort=False)):
        group = group[group["seeds"] > 0]
        if group.empty:
            continue
        training = group["kind"].iloc[0] == "training"
        color = plt.cm.tab20(index % 20)  # one colour per method: training-based solid, training-free dashed
        ax.plot(group["budget_gpu_hours"], group["acc_mean"], "-" if training else "--",
                marker="o" if training else "s", color=color, label=method)
        ax.fill_between(group["budget_gpu_hours"], group["acc_low"], group["acc_high"], color=color, alpha=0.1)
    ax.axhline(best, color="black", linewidth=1, linestyle=":", label=f"best valid ({best:.2f} %)")
    ax.set_xscale("log")
    ax.set_xlabel("GPU-hours spent (log scale)")
    ax.set_ylabel("test accuracy of the pick (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)


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
