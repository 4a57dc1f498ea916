"""Training-based searches replayed on a hand-made curve table: the epochs each reads, the cost it charges, its
pick; and the energy of a trained SpikeNAS-Bench network from its logged firing rates, worked by hand."""
import math
from pathlib import Path

import numpy as np
import pytest

from lightsnn.studies import budgeted

NAN = math.nan
# 4 candidates, 9 epochs logged (candidate 3 only 3): a fast starter (0), a slow one that ends best (1), a
# steady middle one (2) and a short log (3). Costs per epoch in GPU-hours.
VAL = np.array([
    [50, 60, 65, 66, 67, 67, 68, 68, 68],
    [10, 20, 30, 45, 60, 70, 75, 80, 85],
    [40, 50, 55, 60, 62, 64, 66, 68, 70],
    [55, 58, 59, NAN, NAN, NAN, NAN, NAN, NAN],
], dtype=float)
TABLE = budgeted.CurveTable(ids=np.array([100, 101, 102, 103]), val=VAL,
                            hours_per_epoch=np.array([1.0, 2.0, 0.5, 1.0]), test=np.array([70.0, 90.0, 75.0, 60.0]),
                            epochs=np.array([9, 9, 9, 3]),
                            neighbours=lambda i: {0: [1], 1: [2], 2: [0], 3: [0]}[i], steps=9)


class _Order:
    """A generator stand-in that draws the candidates in a fixed order (so the test knows what is trained)."""

    def __init__(self, order):
        self.order = list(order)

    def permutation(self, n):
        return np.array(self.order)

    def choice(self, n, size, replace=False):
        return np.array([i for i in self.order if i < n][:size])

    def integers(self, n):
        return 0


def test_random_with_early_stopping_reads_step_k_pays_k_epochs_and_owes_the_rest():
    events = list(budgeted.random_epochs(TABLE, _Order([0, 1, 2, 3]), steps=2))
    # step 2 of 9 is epoch 2 of a 9-epoch schedule and epoch 1 of candidate 3's 3-epoch one (ceil(2 * 3 / 9))
    assert [(e.hours, e.pick, e.epochs_trained) for e in events] == [(2.0, 0, 2), (6.0, 0, 4), (7.0, 0, 6),
                                                                    (8.0, 0, 7)]
    # after 2 steps candidate 0 looks best (60) although 1 ends best: what early stopping costs; finishing
    # candidate 0's training (7 more epochs at 1 h) is still owed
    assert events[-1].unpaid == 7.0 and events[-1].evaluated() == [0, 1, 2, 3]
    full = list(budgeted.random_epochs(TABLE, _Order([3, 1]), steps=9))
    # candidate 3's schedule is 3 epochs: 9 steps train all 3 (3 h), read at its last epoch (59), nothing owed
    assert [(e.hours, e.pick, e.unpaid) for e in full] == [(3.0, 3, 0.0), (21.0, 1, 0.0)]


def _replay(plan, budget):
    """The budgeted search's Optuna loop on TABLE, its trials enqueued in a known order (0, 1, 2, 3)."""
    import optuna

    from lightsnn.search.optuna_study import make_pruner

    study = optuna.create_study(direction="maximize", pruner=make_pruner(plan),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    for cell in range(4):
        study.enqueue_trial({"cell": cell})
    events = budgeted.optuna_search(TABLE, np.random.default_rng(0), plan, budget, study=study)
    return events, study


def test_the_replay_runs_the_searchs_optuna_loop_as_worked_by_hand():
    """Successive halving (rungs at 1, 3, 9 steps, a third promoted). Trial 0 (candidate 0) is alone at every rung:
    promoted to the end, 9 epochs, 9 h, validation 68. Trial 1: 10 at step 1 against 50: pruned (2 h). Trial 2:
    40 against {50, 10}: pruned (0.5 h). Trial 3 (a 3-epoch schedule, epoch 1 at steps 1-3): 55, the best of
    four at rung 1 step: promoted; at step 3 still 55 against trial 0's 65: pruned (1 h). Then every candidate
    was tried: the study stops."""
    from lightsnn.search.optuna_study import StudyPlan

    plan = StudyPlan(trials=None, budget=None, steps=9, pruner="successive_halving", sampler="random")
    events, study = _replay(plan, budget=100.0)
    states = [(t.user_attrs["cell"], t.state.name, len(t.user_attrs["val_acc"]), t.user_attrs["spent"])
              for t in study.trials if not t.user_attrs.get("revisit")]
    assert states == [(0, "COMPLETE", 9, 9.0), (1, "PRUNED", 1, 11.0), (2, "PRUNED", 1, 11.5),
                      (3, "PRUNED", 3, 12.5)]
    assert [(e.hours, e.pick, e.unpaid, e.tried) for e in events] == [(9.0, 0, 0.0, 1)]
    assert [p and p.pick for p in budgeted.incumbent_at(events, [8.0, 9.0])] == [None, 0]
    # a budget cuts the running trial at its next step: at 10 h trial 1 stops after its first epoch (11 h)
    cut, study = _replay(plan, budget=10.0)
    ran = [t for t in study.trials if t.state.name != "WAITING"]  # the enqueued trials after it never run
    assert [t.user_attrs.get("stopped_by") for t in ran] == [None, "budget"]
    assert [(e.hours, e.pick) for e in cut] == [(9.0, 0)]


def test_an_energy_limit_stops_a_costly_candidate_after_its_first_rung_and_is_the_pick_rule():
    from dataclasses import replace

    from lightsnn.search.optuna_study import StudyPlan

    table = replace(TABLE, energy_uj=np.array([5.0, 1.0, 1.0, 1.0]))  # candidate 0 over a 2 µJ limit
    plan = StudyPlan(trials=None, budget=None, steps=9, pruner="none", sampler="random", max_energy_uj=2.0)
    events, study = _replay_on(table, plan)
    stopped = {t.user_attrs["cell"]: t.user_attrs.get("stopped_by") for t in study.trials}
    assert stopped[0] == "energy" and len(study.trials[0].user_attrs["val_acc"]) == 1
    # the stopped trial tells the sampler by how much it broke the limit (5 - 2 µJ), so TPE learns it
    assert [v for k, v in study.trials[0].system_attrs.items() if k.endswith(":energy")] == [3.0]
    assert events[-1].pick == 1  # the most accurate of those within the limit (85 at 9 epochs)


def _replay_on(table, plan):
    import optuna

    from lightsnn.search.optuna_study import make_pruner

    study = optuna.create_study(direction="maximize", pruner=make_pruner(plan),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    for cell in range(4):
        study.enqueue_trial({"cell": cell})
    return budgeted.optuna_search(table, np.random.default_rng(0), plan, 100.0, study=study), study


def test_regularised_evolution_mutates_the_tournament_winner_ages_out_and_ends_on_revisits():
    events = list(budgeted.regularized_evolution(TABLE, _Order([0, 2, 1, 3]), steps=1, population=2, sample=2))
    # population: 0 (50 at step 1, 1 h), 2 (40, 0.5 h); the tournament picks 0, its mutant is 1 (2 h, 10 at
    # step 1): the incumbent stays 0; then every mutant (of 2: 0; of 0: 1; ...) was trained before: they pay
    # nothing and, after 2 (the population) revisits in a row, the search ends
    assert [(e.hours, e.pick) for e in events] == [(1.0, 0), (1.5, 0), (3.5, 0)]


def test_the_incumbent_at_a_budget_is_the_last_one_paid_for_and_finished():
    events = [budgeted.Event(1.0, 2, 1), budgeted.Event(3.0, 0, 2), budgeted.Event(10.0, 1, 9)]
    picks = budgeted.incumbent_at(iter(events), [0.5, 1.0, 2.9, 3.0, 100.0])
    assert [p and p.pick for p in picks] == [None, 2, 2, 0, 1]
    owed = [budgeted.Event(1.0, 2, 1, unpaid=5.0), budgeted.Event(3.0, 0, 2, unpaid=0.5)]
    assert [p and p.pick for p in budgeted.incumbent_at(owed, [3.0, 3.5, 6.0])] == [None, 0, 0]


def test_prefilter_ties_follow_the_seeds_random_stream():
    values = np.array([1.0, 5.0, 5.0, 5.0, np.nan, 0.0])
    tops = {tuple(TABLE_6.ranked(values, 0.4, np.random.default_rng(seed))) for seed in range(20)}
    assert all(len(t) == 2 and set(t) <= {1, 2, 3} for t in tops) and len(tops) > 1  # 2 of the tied, varied


TABLE_6 = budgeted.CurveTable(ids=np.arange(6), val=np.zeros((6, 1)), hours_per_epoch=np.ones(6), test=np.zeros(6),
                              epochs=np.ones(6, dtype=int), steps=1)


def test_the_hypervolume_by_hand():
    acc, energy = np.array([90.0, 85.0, 80.0]), np.array([4.0, 2.0, 3.0])  # 80 at 3 is dominated by 85 at 2
    # reference (80, 5): 85 over energies [2, 4) -> 5 x 2 = 10; 90 over [4, 5) -> 10 x 1 = 10
    assert budgeted.hypervolume(acc, energy, (80.0, 5.0)) == 20.0
    assert budgeted.hypervolume(acc[:1], energy[:1], (80.0, 5.0)) == 10.0


def test_the_pareto_front_and_the_gap_to_it():
    from lightsnn.studies.budgeted import front_accuracy, pareto_front

    acc = np.array([80.0, 85.0, 84.0, 90.0, 89.0])
    energy = np.array([1.0, 2.0, 3.0, 4.0, 4.0])
    front = pareto_front(acc, energy)
    assert list(front) == [True, True, False, True, False]  # 84 at 3 is beaten by 85 at 2; 89 by 90 at 4
    assert front_accuracy(acc, energy, front, 3.0) == 85.0 and front_accuracy(acc, energy, front, 0.5) == -math.inf


def test_the_energy_of_a_trained_benchmark_network_by_hand():
    """Architecture 777: only edge 0->1 is a conv (threshold 0.5) in both cells. Its log: rates 0.249 (cell1 0->1),
    0.148 (cell2 0->1), 0.062 (downconv), 0.096 (after cell2), 0.216 (classifier), 0.145 (all)."""
    from lightsnn.nasbench.spikenas_bench import FIRING_LAYERS, trained_cost

    rates = [0.249, -1, -1, -1, -1, -1, 0.148, -1, -1, -1, -1, -1, 0.062, 0.096, 0.216, 0.145]
    cost = trained_cost(777, rates)
    T = 5
    conv_cell1 = 9 * 128 * 128 * 32 * 32  # 150,994,944 per timestep
    conv_cell2 = 9 * 256 * 256 * 16 * 16  # the same count at half the resolution and twice the channels
    downconv = 9 * 128 * 256 * 32 * 32
    synops = T * (0.249 * conv_cell1 + 0.148 * conv_cell2 + 0.062 * downconv + 0.216 * 1024 * 100)
    assert cost["synops"] == pytest.approx(synops) and round(synops) == 393_452_421
    macs = (9 * 3 * 128 * 1024 + 128 * 1024  # stem conv and BN, once
            + T * (128 * 1024 + 256 * 256  # the BN of each conv edge
                   + 128 * 1024 + 256 * 1024 + 256 * 256  # downconv's BNs, the BN after cell2
                   + 16384 * 1024))  # Linear(256 x 8 x 8 -> 1024) fed by pooled spikes: MACs
    assert cost["macs"] == macs == 90_832_896
    assert cost["energy_pj"] == pytest.approx(0.9 * synops + 4.6 * macs)
    assert FIRING_LAYERS[2] == "cell1 1->2" and FIRING_LAYERS[12:] == ("downconv", "last_act", "classifier", "all")


SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "spikenas-bench"


@pytest.mark.skipif(not (SHARED / "CIFAR10").is_dir(), reason="../shared/benchmarks/spikenas-bench is not beside the repo")
def test_the_logged_rates_sit_where_the_benchmarks_code_put_them(tmp_path):
    """Architecture 276 has its one conv on edge 1->2: the benchmark logs it third (its cells build edges column by
    column), not fourth as the id's digits order them."""
    from lightsnn.nasbench.spikenas_bench import read_log

    rates = read_log(SHARED / "CIFAR10" / "276" / "train_process.txt")["firing"]
    assert [k for k, r in enumerate(rates[:12]) if r >= 0] == [2, 8]


def test_a_sampler_over_edge_ops_trains_only_the_pools_cells():
    """With ``by_edges`` the sampler proposes one op per edge (TPE can learn which op helps on which edge); a
    proposal naming no cell of the pool trains nothing and costs nothing."""
    from dataclasses import replace

    import optuna

    from lightsnn.search.optuna_study import StudyPlan, make_pruner

    table = replace(TABLE, cells=[("a", "x"), ("b", "x"), ("a", "y"), ("b", "y")])
    plan = StudyPlan(trials=3, budget=None, steps=9, pruner="none", sampler="tpe")
    study = optuna.create_study(direction="maximize", pruner=make_pruner(plan))
    for ops in (("a", "y"), ("b", "y"), ("a", "x")):  # candidate 2 (outside the pool), then 3, then 0
        study.enqueue_trial({"edge0": ops[0], "edge1": ops[1]})
    events = budgeted.optuna_search(table, np.random.default_rng(0), plan, 1000.0, pool=np.array([0, 3]),
                                    study=study, by_edges=True)
    first = study.trials[:3]
    assert [t.user_attrs.get("outside_pool", False) for t in first] == [True, False, False]
    assert [t.user_attrs.get("cell") for t in first] == [None, 1, 0]  # indices into the pool
    assert study.trials[-1].user_attrs.get("revisit")  # the replay runs on until the pool is used up
    assert [(e.hours, e.pick) for e in events] == [(3.0, 3), (12.0, 0)]  # 3 epochs at 1 h, then 9 at 1 h
    with pytest.raises(ValueError, match="needs the table's cells"):
        budgeted.optuna_search(TABLE, np.random.default_rng(0), plan, 10.0, by_edges=True)


def test_a_seeds_replay_is_reproducible_with_hyperband():
    """Optuna's Hyperband pruner assigns trials to brackets by a hash of the study's name: the replay names its
    study, so the same seed gives the same search."""
    from lightsnn.search.optuna_study import StudyPlan

    plan = StudyPlan(trials=None, budget=None, steps=9, pruner="hyperband", sampler="random")
    runs = [[(e.hours, e.pick) for e in budgeted.optuna_search(TABLE, np.random.default_rng(3), plan, 30.0)]
            for _ in range(3)]
    assert runs[0] and runs[0] == runs[1] == runs[2]
