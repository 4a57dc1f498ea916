"""What a good spiking network costs, on a tabular benchmark: training-free searches against training-based ones
at equal GPU-hours (the anytime table), with how close each comes to the accuracy-energy front
(:mod:`.nasbench_front` draws the plane).

The training-based searches are replayed on the benchmark's own curves and timings (:mod:`.budgeted`); the
training-free ones are the picks of ``benchmark search`` (their cost: the search's own seconds, on whatever
device ran it, which is far below every budget here). The energy of a trained network comes from its logged
firing rates (the benchmark reader's ``trained_costs``).
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from lightsnn.nasbench.benchmark_options import BenchmarkOptions
from lightsnn.pipeline.targets import BENCHMARK_OUTPUTS
from lightsnn.studies import budgeted
from lightsnn.studies.nasbench import open_from
from lightsnn.studies.nasbench_search import pick_label

#: Hyperparameters of the simulated searches (the budgets and the seed count are options). A step is a hundredth of
#: a network's own schedule (budgeted.CurveTable.steps).
ETA = 3  # successive halving and Hyperband: rungs at 1, 3, 9, 27, 81 steps, then the full 100
EVOLUTION = {"population": 20, "sample": 5, "steps": 10}
EARLY_STOPS = (1, 5, 20)  # random candidates trained this many steps each; "full" trains them to the end
PREFILTER = 0.1  # a hybrid keeps this share of the candidates by the training-free score, then halves
NEAR_FRONT_PP = 0.5  # a pick within this many points of the front's accuracy at its energy is "near" it
FRONT_BUDGET = 10.0  # GPU-hours at which the training-based searches' picks join the plane (else the largest)
ENERGY_LIMIT_UJ = 1000.0  # the energy-aware searches' stated limit per inference (1 mJ; the median is 1.11 mJ)
TPE_SHARE, SHORT_TRAIN = 0.3, 5  # TPE over edge ops: the top 30 % by parameter count, 5 steps each
SHORT_STEPS = 10  # the two-objective search trains every candidate this many steps (no pruner serves it)


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
    energy = None
    if "trained_firing_rates" in bench.fields:
        energy = bench.trained_costs().loc[ids, "energy_pj"].to_numpy(dtype=np.float64) / 1e6
    return budgeted.CurveTable(ids=ids, val=bench.val_curves(ids), hours_per_epoch=bench.hours_per_epoch(ids),
                               test=table.loc[valid, "test_acc"].to_numpy(dtype=np.float64),
                               epochs=table.loc[valid, "epochs"].to_numpy(), neighbours=neighbours,
                               extra={"params": table.loc[valid, "params"].to_numpy(dtype=np.float64)},
                               energy_uj=energy,
                               cells=[tuple(bench.genotype(int(i)).cells[0].op(e) for e in FORWARD_EDGES) for i in ids])


def training_searches(table: budgeted.CurveTable, budget: float, scores: dict[str, np.ndarray] | None = None
                      ) -> dict:
    """Every simulated training-based search by name: a function of a seed's generator giving its events up to
    ``budget`` GPU-hours. The multi-fidelity ones run the budgeted search's own Optuna loop."""
    from lightsnn.search.optuna_study import StudyPlan

    def optuna(plan: StudyPlan, ranked_by: np.ndarray | None = None, share: float = PREFILTER,
               by_edges: bool = False):
        def run(rng):
            pool = None if ranked_by is None else table.ranked(ranked_by, share, rng)
            return budgeted.optuna_search(table, rng, plan, budget, pool, by_edges=by_edges)
        return run

    halving = StudyPlan(trials=None, budget=budget, steps=table.steps, pruner="successive_halving",
                        sampler="random", reduction_factor=ETA)
    searches = {}
    for k in EARLY_STOPS:
        searches[f"random, {k} step{'s' if k > 1 else ''} each"] = \
            lambda rng, k=k: budgeted.random_epochs(table, rng, k)
    searches["random, full training each"] = lambda rng: budgeted.random_epochs(table, rng, table.steps)
    searches["successive halving (Optuna)"] = optuna(halving)
    searches["Hyperband (Optuna)"] = optuna(replace(halving, pruner="hyperband"))
    searches[f"evolution ({EVOLUTION['steps']}-step fitness)"] = lambda rng: budgeted.regularized_evolution(
        table, rng, EVOLUTION["steps"], EVOLUTION["population"], EVOLUTION["sample"])
    for name, values in {"params": table.extra["params"], **(scores or {})}.items():
        searches[f"{name} top {PREFILTER:.0%} + successive halving"] = optuna(halving, values)
    # chosen on seeds 1000-1099 (never those of the table) among 3, 5, 10 steps x top 10, 20, 30 % x TPE or random
    short = StudyPlan(trials=None, budget=budget, steps=SHORT_TRAIN, pruner="none", sampler="tpe")
    tpe_name = f"params top {TPE_SHARE:.0%}, TPE over edge ops, {SHORT_TRAIN} steps each"
    if table.cells is not None:
        searches[tpe_name] = optuna(short, table.extra["params"], TPE_SHARE, by_edges=True)
    searches[f"params top {TPE_SHARE:.0%}, random, {SHORT_TRAIN} steps each"] = optuna(
        replace(short, sampler="random"), table.extra["params"], TPE_SHARE)
    if table.energy_uj is not None:  # the energy-aware variants, at a stated limit
        limit = f"energy <= {ENERGY_LIMIT_UJ / 1000:g} mJ"
        constrained = replace(halving, max_energy_uj=ENERGY_LIMIT_UJ)
        searches[f"successive halving, {limit} (constraint)"] = optuna(constrained)
        searches[f"two objectives at {SHORT_STEPS} steps, {limit}"] = optuna(
            replace(constrained, steps=SHORT_STEPS, objective="accuracy_energy"))
        if table.cells is not None:
            searches[f"{tpe_name}, {limit} (constraint)"] = optuna(
                replace(short, max_energy_uj=ENERGY_LIMIT_UJ), table.extra["params"], TPE_SHARE, by_edges=True)
    return searches


def anytime(bench, pick_records: list[dict], budgets: list[float], seeds: int,
            scores: dict[str, np.ndarray] | None = None, log=None) -> pd.DataFrame:
    """Per method and budget (GPU-hours): the test accuracy of its pick over seeds (mean, 95 % t-interval), its
    regret to the best valid network, the hours it spent (finishing its pick's training included), its pick's
    energy per inference (µJ), and how
    close it came to the accuracy-energy front: the share of seeds whose pick lies within
    :data:`NEAR_FRONT_PP` of the front, and the hypervolume of every network it trained as a share of the true
    front's. A random pick is given by its exact expectation over all valid networks."""
    from scipy import stats

    table = curve_table(bench)
    best = float(table.test.max())
    energy = table.energy_uj
    if energy is not None:
        front = budgeted.pareto_front(table.test, energy)
        gap = np.asarray([budgeted.front_accuracy(table.test, energy, front, e) - a for a, e in zip(table.test, energy)])
        reference = (float(table.test[front].min()), float(energy[front].max()))  # the front's nadir
        true_volume = budgeted.hypervolume(table.test[front], energy[front], reference)
    rows = []

    def front_quality(event) -> tuple[float, float, float]:
        if energy is None:
            return math.nan, math.nan, math.nan
        seen = np.asarray(event.evaluated(), dtype=int)
        volume = budgeted.hypervolume(table.test[seen], energy[seen], reference) / true_volume
        return float(gap[event.pick] <= NEAR_FRONT_PP), volume, float(energy[event.pick])

    def summarise(method: str, kind: str, per_budget: list[list[tuple]]):
        for budget, got in zip(budgets, per_budget):
            acc = np.asarray([g[0] for g in got])
            n = len(acc)
            half = float(stats.t.ppf(0.975, n - 1) * acc.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
            rows.append({"method": method, "kind": kind, "budget_gpu_hours": budget, "seeds": n,
                         "acc_mean": float(acc.mean()) if n else math.nan,
                         "acc_low": float(acc.mean()) - half if n else math.nan,
                         "acc_high": float(acc.mean()) + half if n else math.nan,
                         "regret_mean": best - float(acc.mean()) if n else math.nan,
                         "hours_mean": float(np.mean([g[1] for g in got])) if n else math.nan,
                         "near_front_share": float(np.mean([g[2] for g in got])) if n else math.nan,
                         "hypervolume_share": float(np.mean([g[3] for g in got])) if n else math.nan,
                         "energy_uj_mean": _mean_known([g[4] for g in got])})  # an invalid pick has none

    budgets = sorted(budgets)
    for method, run in training_searches(table, budgets[-1], scores).items():
        started = time.perf_counter()
        per_budget: list[list[tuple]] = [[] for _ in budgets]
        for seed in range(seeds):
            picks = budgeted.incumbent_at(run(np.random.default_rng(seed)), budgets)
            for b, event in enumerate(picks):
                if event is not None:
                    per_budget[b].append((float(table.test[event.pick]), event.hours + event.unpaid,
                                          *front_quality(event)))
        summarise(method, "training", per_budget)
        if log is not None:
            log(f"anytime: {method}: {seeds} seeds in {time.perf_counter() - started:.1f} s")
    # training-free: a random valid pick costs nothing; its expectation is exact (every valid network, once)
    near = float(np.mean(gap <= NEAR_FRONT_PP)) if energy is not None else math.nan
    single = (np.mean([budgeted.hypervolume(table.test[[i]], energy[[i]], reference) for i in range(len(gap))])
              / true_volume) if energy is not None else math.nan
    for budget in budgets:
        rows.append({"method": "random pick (no training; exact expectation)", "kind": "training-free",
                     "budget_gpu_hours": budget, "seeds": len(table.ids), "acc_mean": float(table.test.mean()),
                     "acc_low": math.nan, "acc_high": math.nan, "regret_mean": best - float(table.test.mean()),
                     "hours_mean": 0.0, "near_front_share": near, "hypervolume_share": float(single),
                     "energy_uj_mean": float(energy.mean()) if energy is not None else math.nan})
    by_label: dict[str, list[dict]] = {}
    for record in pick_records:
        by_label.setdefault(pick_label(record), []).append(record)
    where = {int(i): p for p, i in enumerate(table.ids)}
    for label, records in by_label.items():
        if label == "random":
            continue
        per_budget = []
        for budget in budgets:
            got = []
            for r in records:
                if r["search_seconds"] / 3600 > budget:
                    continue
                p = where.get(int(r["id"]))  # an invalid pick has no energy: it is on no front
                near_it = float(p is not None and energy is not None and gap[p] <= NEAR_FRONT_PP)
                volume = (budgeted.hypervolume(table.test[[p]], energy[[p]], reference) / true_volume
                          if p is not None and energy is not None else 0.0)
                got.append((float(r["test_acc"]), r["search_seconds"] / 3600, near_it, volume,
                            float(energy[p]) if p is not None and energy is not None else math.nan))
            per_budget.append(got)
        summarise(f"{label} (training-free)", "training-free", per_budget)
    return pd.DataFrame(rows)


def _mean_known(values: list[float]) -> float:
    known = [v for v in values if math.isfinite(v)]
    return float(np.mean(known)) if known else math.nan


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
    result = anytime(bench, records, list(options.budgets), options.budget_seeds, proxy_scores, log)
    out = Path(out_dir)
    markdown, csv, plot = BENCHMARK_OUTPUTS["anytime"]
    write_text_atomic(out / csv, result.to_csv(index=False))
    write_text_atomic(out / markdown, anytime_markdown(result, bench, options))
    plot_anytime(result, float(bench.table.loc[bench.table["valid"], "test_acc"].max()), out / plot)
    return result


def anytime_markdown(result: pd.DataFrame, bench, options: BenchmarkOptions) -> str:
    best = float(bench.table.loc[bench.table["valid"], "test_acc"].max())
    budgets = sorted(options.budgets)
    header = ["| method | " + " | ".join(f"{b:g} h" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    lines = [f"Test accuracy (%) of each method's pick on {bench.name} against the GPU-hours it spent: mean [95 % "
             f"t-interval] over {options.budget_seeds} seeds; best valid network {best:.2f} %. Training-based "
             "searches are replayed on the benchmark's own curves and timings and pay for their pick's full "
             "training; '-' where the budget does not pay for one; (n = k) where only k seeds had a pick within "
             "the budget; the random pick is its exact expectation.", "", *header]
    quality = [f"Front quality: the share of seeds whose pick lies within {NEAR_FRONT_PP} pp of the "
               "accuracy-energy front / the hypervolume of every network the method trained, as a share of the "
               "true front's (reference: the front's nadir, its lowest accuracy and highest energy).", "",
               *header]
    for method, group in result.groupby("method", sort=False):
        cells, fronts = [], []
        for budget in budgets:
            row = group[group["budget_gpu_hours"] == budget]
            if row.empty or not row["seeds"].item():
                cells.append("-")
                fronts.append("-")
                continue
            r = row.iloc[0]
            spread = "" if not math.isfinite(r["acc_low"]) else f" [{r['acc_low']:.2f}, {r['acc_high']:.2f}]"
            fewer = f" (n = {int(r['seeds'])})" if r["seeds"] < options.budget_seeds else ""
            cells.append(f"{r['acc_mean']:.2f}{spread}{fewer}")
            fronts.append("-" if not math.isfinite(r["near_front_share"]) else
                          f"{100 * r['near_front_share']:.0f} % / {100 * r['hypervolume_share']:.1f} %")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
        quality.append(f"| {method} | " + " | ".join(fronts) + " |")
    has_energy = result["near_front_share"].notna().any()
    return "\n".join(lines + ([""] + quality if has_energy else [])) + "\n"


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
