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
                            neighbours=lambda i: {0: [1], 1: [2], 2: [0], 3: [0]}[i])


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


def test_random_with_early_stopping_reads_epoch_k_and_pays_k_epochs():
    events = list(budgeted.random_epochs(TABLE, _Order([0, 1, 2, 3]), epochs=2))
    assert [(e.hours, e.pick, e.epochs_trained) for e in events] == [(2.0, 0, 2), (6.0, 0, 4), (7.0, 0, 6),
                                                                    (9.0, 0, 8)]
    # after 2 epochs candidate 0 looks best (60) although 1 ends best: what early stopping costs
    full = list(budgeted.random_epochs(TABLE, _Order([3, 1]), epochs=9))
    # candidate 3 was logged for 3 epochs only: it costs 3, and is read at its last epoch (59)
    assert [(e.hours, e.pick) for e in full] == [(3.0, 3), (21.0, 1)]


def test_successive_halving_promotes_and_resumes_paying_only_the_extra_epochs():
    events = list(budgeted.successive_halving(TABLE, _Order([0, 1, 2]), n=3, min_epochs=1, max_epochs=9, eta=3))
    # rung 1: 3 candidates x 1 epoch = 1 + 2 + 0.5 h; the best at epoch 1 is 0 (50); it alone goes on to 3 epochs
    # (2 more: 2 h) and to 9 (6 more: 6 h). The incumbent is the best at the highest epochs reached.
    assert [(e.hours, e.pick) for e in events] == [(1.0, 0), (3.0, 0), (3.5, 0), (5.5, 0), (11.5, 0)]
    assert events[-1].epochs_trained == 1 + 1 + 1 + 2 + 6


def test_hyperband_cycles_brackets_from_many_short_to_few_long():
    events = budgeted.hyperband(TABLE, _Order([1, 2, 0, 3]), max_epochs=9, eta=3)
    picks = budgeted.incumbent_at(events, [0.5, 2.0, 1000.0])
    # first bracket (s = 2): 9 candidates asked, 4 exist, at 1 epoch: 1 (2 h) first, so nothing fits 0.5 h
    assert picks[0] is None and picks[1].pick == 1 and picks[1].hours == 2.0
    assert picks[2].pick == 1  # in the end candidate 1, trained longest, wins: 85 at 9 epochs


def test_regularised_evolution_mutates_the_tournament_winner_and_ages_out():
    events = list(zip(range(4), budgeted.regularized_evolution(TABLE, _Order([0, 2, 1, 3]), epochs=1, population=2,
                                                               sample=2)))
    # population: 0 (50 at epoch 1, 1 h), 2 (40, 0.5 h); the tournament picks 0, its mutant is 1 (2 h, 10 at
    # epoch 1): the incumbent stays 0; then 0 ages out and the winner of {2, 1} is 2, whose mutant is 0 again
    assert [(e.hours, e.pick) for _, e in events] == [(1.0, 0), (1.5, 0), (3.5, 0), (3.5, 0)]


def test_the_incumbent_at_a_budget_is_the_last_one_paid_for():
    events = [budgeted.Event(1.0, 2, 1), budgeted.Event(3.0, 0, 2), budgeted.Event(10.0, 1, 9)]
    picks = budgeted.incumbent_at(iter(events), [0.5, 1.0, 2.9, 3.0, 100.0])
    assert [p and p.pick for p in picks] == [None, 2, 2, 0, 1]


def test_the_pareto_front_and_the_gap_to_it():
    from lightsnn.studies.nasbench_cost import front_accuracy, pareto_front

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
