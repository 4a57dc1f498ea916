"""Training-based searches simulated exactly on a benchmark's training curves, at the GPU-hours they would cost.

A tabular benchmark logs, per architecture, the validation accuracy after every epoch of one training and the
time that training took. A search that trains candidates for some epochs and keeps the best by validation
accuracy can therefore be replayed without training anything: what it would have seen after ``k`` epochs is
the logged ``val[id, k]``, and what it would have paid is ``k`` epochs of that architecture's logged time. A
promoted candidate (successive halving) continues its training, so it pays only the extra epochs.

Every search here is anytime: it yields its incumbent (the candidate it would return if stopped now) after
each evaluation, with the cost spent so far, and :func:`incumbent_at` reads the incumbent at a budget. Which
candidate a search returns is decided by what it saw (validation accuracy, at the highest fidelity it reached);
how good that choice is, by the benchmark's test accuracy, which no search sees.

May import: numpy, pandas, :mod:`lightsnn.core.stats`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np


@dataclass(frozen=True)
class CurveTable:
    """The candidates a search may train: per candidate its validation curve, its cost per epoch and its test
    accuracy (seen only when scoring the pick). ``val[i, e - 1]`` is the validation accuracy after ``e`` epochs
    (NaN beyond ``epochs[i]``); ``neighbours(i)`` lists the candidates one mutation away (evolution)."""

    ids: np.ndarray  # benchmark ids, position i -> id
    val: np.ndarray  # [n, max_epochs]
    hours_per_epoch: np.ndarray  # [n]
    test: np.ndarray  # [n]
    epochs: np.ndarray  # [n] epochs each candidate was trained for
    neighbours: Callable[[int], list[int]] | None = None
    extra: dict = field(default_factory=dict)  # per-candidate scores for prefilters (name -> [n])

    def __post_init__(self):
        n = len(self.ids)
        if self.val.shape[0] != n or len(self.hours_per_epoch) != n or len(self.test) != n or len(self.epochs) != n:
            raise ValueError("a curve table needs one curve, cost, test accuracy and epoch count per candidate")

    def seen(self, i: int, epochs: int) -> float:
        """The validation accuracy a run sees after training candidate ``i`` for ``epochs`` epochs (its last
        logged value when asked for more epochs than were logged)."""
        e = min(int(epochs), int(self.epochs[i]))
        return float(self.val[i, e - 1])


@dataclass
class Event:
    hours: float  # GPU-hours spent when this incumbent was known
    pick: int  # position in the curve table
    epochs_trained: int  # total epochs trained so far (all candidates)


class _Ledger:
    """What a search has paid and seen: epochs trained per candidate, and its incumbent (best validation
    accuracy at the highest fidelity it has reached)."""

    def __init__(self, table: CurveTable):
        self.table = table
        self.trained: dict[int, int] = {}
        self.hours = 0.0
        self.epochs = 0
        self.best: tuple[int, float, int] | None = None  # (fidelity, val, position)

    def train(self, i: int, epochs: int) -> float:
        """Train candidate ``i`` up to ``epochs`` epochs (resuming its training; at most the epochs it was
        logged for); pay the extra epochs. The incumbent ranks by the epochs asked for, then what was seen."""
        asked = int(epochs)
        epochs = min(asked, int(self.table.epochs[i]))
        done = self.trained.get(i, 0)
        if epochs > done:
            self.hours += (epochs - done) * float(self.table.hours_per_epoch[i])
            self.epochs += epochs - done
            self.trained[i] = epochs
        seen = self.table.seen(i, epochs)
        key = (asked, seen if math.isfinite(seen) else -math.inf, i)
        if self.best is None or key[:2] > self.best[:2]:
            self.best = key
        return seen

    def event(self) -> Event:
        return Event(self.hours, self.best[2], self.epochs)


def random_epochs(table: CurveTable, rng: np.random.Generator, epochs: int, pool: np.ndarray | None = None
                  ) -> Iterator[Event]:
    """Train random candidates (without replacement) for ``epochs`` epochs each; keep the best seen."""
    ledger = _Ledger(table)
    order = rng.permutation(len(table.ids) if pool is None else pool)
    for i in order:
        ledger.train(int(i), epochs)
        yield ledger.event()


def successive_halving(table: CurveTable, rng: np.random.Generator, n: int, min_epochs: int, max_epochs: int,
                       eta: int = 3, pool: np.ndarray | None = None, ledger: _Ledger | None = None
                       ) -> Iterator[Event]:
    """One bracket of successive halving: ``n`` random candidates at ``min_epochs``, the best 1/eta promoted
    to eta times the epochs, up to ``max_epochs``; promoted candidates resume their training."""
    ledger = ledger or _Ledger(table)
    candidates = [int(i) for i in rng.choice(len(table.ids) if pool is None else pool,
                                             size=min(n, len(table.ids) if pool is None else len(pool)),
                                             replace=False)]
    epochs = min_epochs
    while True:
        seen = []
        for i in candidates:
            seen.append((ledger.train(i, epochs), i))
            yield ledger.event()
        if epochs >= max_epochs:  # the last survivor still trains to the full budget
            return
        keep = max(1, len(candidates) // eta)
        ranked = sorted(seen, key=lambda pair: (-pair[0] if math.isfinite(pair[0]) else math.inf, pair[1]))
        candidates = [i for _, i in ranked[:keep]]
        epochs = min(max_epochs, epochs * eta)


def repeated(bracket: Callable[[_Ledger], Iterator[Event]], table: CurveTable) -> Iterator[Event]:
    """Brackets one after another on one ledger (the incumbent is the best over all of them)."""
    ledger = _Ledger(table)
    while True:
        before = ledger.epochs
        yield from bracket(ledger)
        if ledger.epochs == before:  # nothing left to train
            return


def hyperband(table: CurveTable, rng: np.random.Generator, max_epochs: int, eta: int = 3,
              pool: np.ndarray | None = None) -> Iterator[Event]:
    """Hyperband (Li et al., 2018): successive-halving brackets from many short to few long trainings, cycled
    until the budget ends."""
    s_max = int(math.floor(math.log(max_epochs) / math.log(eta) + 1e-9))
    brackets = []
    for s in range(s_max, -1, -1):
        n = int(math.ceil((s_max + 1) / (s + 1) * eta ** s))
        brackets.append((n, max(1, int(round(max_epochs * eta ** -s)))))
    state = {"b": 0}

    def bracket(ledger: _Ledger) -> Iterator[Event]:
        n, r = brackets[state["b"] % len(brackets)]
        state["b"] += 1
        yield from successive_halving(table, rng, n, r, max_epochs, eta, pool, ledger)

    return repeated(bracket, table)


def regularized_evolution(table: CurveTable, rng: np.random.Generator, epochs: int, population: int = 20,
                          sample: int = 5) -> Iterator[Event]:
    """Regularised (ageing) evolution (Real et al., 2019) with the validation accuracy after ``epochs`` epochs as
    fitness: a random population, then tournaments of ``sample``: the winner's mutant joins, the oldest leaves."""
    if table.neighbours is None:
        raise ValueError("regularised evolution needs the candidates' neighbours (one mutation away)")
    ledger = _Ledger(table)
    alive: list[tuple[int, float]] = []
    for i in rng.choice(len(table.ids), size=min(population, len(table.ids)), replace=False):
        alive.append((int(i), ledger.train(int(i), epochs)))
        yield ledger.event()
    while True:
        contenders = [alive[j] for j in rng.choice(len(alive), size=min(sample, len(alive)), replace=False)]
        parent = max(contenders, key=lambda pair: pair[1] if math.isfinite(pair[1]) else -math.inf)[0]
        options = table.neighbours(parent)
        if not options:
            return
        child = int(options[int(rng.integers(len(options)))])
        alive.append((child, ledger.train(child, epochs)))
        alive.pop(0)
        yield ledger.event()


def incumbent_at(events: Iterator[Event], budgets: list[float]) -> list[Event | None]:
    """The incumbent at each budget (GPU-hours, ascending): the last event whose cost fits it; None where the
    first evaluation does not fit. Consumes ``events`` only as far as the largest budget."""
    budgets = sorted(budgets)
    picks: list[Event | None] = [None] * len(budgets)
    last: Event | None = None
    b = 0
    for event in events:
        while b < len(budgets) and event.hours > budgets[b]:
            picks[b] = last
            b += 1
        if b == len(budgets):
            return picks
        last = event
    while b < len(budgets):  # the search ran out of candidates within the budget
        picks[b] = last
        b += 1
    return picks
