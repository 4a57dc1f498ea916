"""Training-based searches simulated exactly on a benchmark's training curves, at the GPU-hours they would cost.

A tabular benchmark logs, per architecture, the validation accuracy after every epoch of one training and the
time that training took. A search that trains candidates for some steps and keeps the best by validation
accuracy can therefore be replayed without training anything. A step is a hundredth of a network's own
schedule (an epoch of a 100-epoch training, two of a 200-epoch one), so every network is judged at the same
point of its learning-rate schedule: what a search sees after ``k`` steps is the logged validation accuracy at
that epoch, what it pays is those epochs of the network's logged time. A promoted candidate resumes its training,
paying only the extra epochs.

The budgeted search's own Optuna loop (:mod:`lightsnn.search.optuna_study`) runs the multi-fidelity searches
here, with :class:`BenchmarkCandidates` in place of training (:func:`optuna_search`); random search with early
stopping and regularised evolution are hand-written (Optuna has neither).

Every search gives its incumbents (the candidate it would return if stopped now) with the cost spent so far and
what finishing the incumbent's training would still cost (``unpaid``): the pick's reported accuracy is its full
training's, so a search at a budget returns the last incumbent it can also finish within it
(:func:`incumbent_at`). Which candidate a search returns is decided by what it saw (validation accuracy, at the
highest fidelity it reached); how good that choice is, by the benchmark's test accuracy, which no search sees.
Ties are broken by the seed's random stream, never by position.

May import: numpy, pandas, :mod:`lightsnn.core.stats`, :mod:`lightsnn.search.optuna_study`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Iterator

import numpy as np


@dataclass(frozen=True)
class CurveTable:
    """The candidates a search may train: per candidate its validation curve, its cost per epoch and its test
    accuracy (seen only when scoring the pick). ``val[i, e - 1]`` is the validation accuracy after ``e`` epochs
    (NaN beyond ``epochs[i]``); ``neighbours(i)`` lists the candidates one mutation away (evolution); ``steps``
    divides every network's schedule (``epochs[i]``) into that many steps; ``energy_uj`` is each trained
    network's energy per inference (NaN where unknown)."""

    ids: np.ndarray  # benchmark ids, position i -> id
    val: np.ndarray  # [n, max_epochs]
    hours_per_epoch: np.ndarray  # [n]
    test: np.ndarray  # [n]
    epochs: np.ndarray  # [n] epochs each candidate was trained for
    neighbours: Callable[[int], list[int]] | None = None
    extra: dict = field(default_factory=dict)  # per-candidate scores for prefilters (name -> [n])
    steps: int = 100
    energy_uj: np.ndarray | None = None  # [n]
    cells: list | None = None  # per candidate, its cell as a tuple of one op per edge (a sampler's parameters)

    def __post_init__(self):
        n = len(self.ids)
        if self.val.shape[0] != n or len(self.hours_per_epoch) != n or len(self.test) != n or len(self.epochs) != n:
            raise ValueError("a curve table needs one curve, cost, test accuracy and epoch count per candidate")

    def epochs_at(self, i: int, steps: int) -> int:
        """The epochs of candidate ``i``'s own schedule that ``steps`` steps train (at least one)."""
        steps = min(int(steps), self.steps)
        return max(1, -(-steps * int(self.epochs[i]) // self.steps))

    def seen(self, i: int, steps: int) -> float:
        """The validation accuracy a run sees after training candidate ``i`` for ``steps`` steps."""
        return float(self.val[i, self.epochs_at(i, steps) - 1])

    def unpaid(self, i: int, epochs_trained: int) -> float:
        """GPU-hours that finishing candidate ``i``'s training (to its own schedule) still costs."""
        return max(0, int(self.epochs[i]) - int(epochs_trained)) * float(self.hours_per_epoch[i])

    def ranked(self, values: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
        """The top ``share`` of the candidates scored by ``values`` (higher first; NaN: unscored), equal scores
        in the seed's random order."""
        scored = np.flatnonzero(np.isfinite(values))
        top = max(1, int(round(share * len(scored))))
        order = np.lexsort((rng.random(len(scored)), -values[scored]))
        return scored[order[:top]]


@dataclass
class Event:
    hours: float  # GPU-hours spent when this incumbent was known
    pick: int  # position in the curve table
    epochs_trained: int  # total epochs trained so far (all candidates)
    unpaid: float = 0.0  # GPU-hours that finishing the pick's training would still cost
    order: list | None = None  # positions in the order they were first trained (shared by a search's events)
    tried: int = 0  # how many of ``order`` had been trained when this incumbent was known

    def evaluated(self) -> list[int]:
        """The candidates the search had trained (at any fidelity) by this event."""
        return [] if self.order is None else self.order[:self.tried]


class _Ledger:
    """What a search has paid and seen: epochs trained per candidate, and its incumbent (best validation
    accuracy at the highest fidelity it has reached)."""

    def __init__(self, table: CurveTable):
        self.table = table
        self.trained: dict[int, int] = {}
        self.hours = 0.0
        self.epochs = 0
        self.best: tuple[int, float, int] | None = None  # (fidelity, val, position)
        self.order: list[int] = []

    def train(self, i: int, steps: int) -> float:
        """Train candidate ``i`` up to ``steps`` steps of its schedule (resuming its training); pay the extra
        epochs. The incumbent ranks by the steps trained, then what was seen (equal: the earlier)."""
        epochs = self.table.epochs_at(i, steps)
        done = self.trained.get(i, 0)
        if epochs > done:
            self.hours += (epochs - done) * float(self.table.hours_per_epoch[i])
            self.epochs += epochs - done
            self.trained[i] = epochs
            if not done:
                self.order.append(i)
        seen = self.table.seen(i, steps)
        key = (min(int(steps), self.table.steps), seen if math.isfinite(seen) else -math.inf, i)
        if self.best is None or key[:2] > self.best[:2]:
            self.best = key
        return seen

    def event(self) -> Event:
        pick = self.best[2]
        return Event(self.hours, pick, self.epochs, self.table.unpaid(pick, self.trained[pick]), self.order,
                     len(self.order))


def random_epochs(table: CurveTable, rng: np.random.Generator, steps: int, pool: np.ndarray | None = None
                  ) -> Iterator[Event]:
    """Train random candidates (without replacement) for ``steps`` steps each; keep the best seen."""
    ledger = _Ledger(table)
    order = rng.permutation(len(table.ids) if pool is None else pool)
    for i in order:
        ledger.train(int(i), steps)
        yield ledger.event()


class BenchmarkCandidates:
    """Candidates of a curve table as the budgeted search's Optuna loop trains them: a step reads the next
    hundredth of the network's logged curve and pays its logged time; the energy is the trained network's."""

    def __init__(self, table: CurveTable, pool: np.ndarray | None = None, by_edges: bool = False):
        self.table = table
        self.pool = np.arange(len(table.ids)) if pool is None else np.asarray(pool)
        self.size = len(self.pool)
        self.ledger = _Ledger(table)
        if by_edges:  # the sampler sees each edge's op (a model of the space), not an unordered index
            if table.cells is None:
                raise ValueError("a search over edge ops needs the table's cells (CurveTable.cells)")
            self.where = {table.cells[int(i)]: index for index, i in enumerate(self.pool)}
            self.choices = [sorted({cell[e] for cell in table.cells}) for e in range(len(table.cells[0]))]
            self.suggest = self._suggest_edges

    def _suggest_edges(self, trial) -> int | None:
        cell = tuple(trial.suggest_categorical(f"edge{e}", ops) for e, ops in enumerate(self.choices))
        return self.where.get(cell)

    def describe(self, index: int) -> dict:
        return {}

    def spent(self) -> float:
        return self.ledger.hours

    def start(self, index: int, number: int):
        i, ledger, table = int(self.pool[index]), self.ledger, self.table

        class Run:
            steps = 0

            def step(self) -> float:
                self.steps += 1
                return ledger.train(i, self.steps)

            def energy_uj(self) -> float:
                return math.nan if table.energy_uj is None else float(table.energy_uj[i])

        return Run()


def optuna_search(table: CurveTable, rng: np.random.Generator, plan, budget: float,
                  pool: np.ndarray | None = None, study=None, by_edges: bool = False) -> list[Event]:
    """The budgeted search's Optuna loop (sampler, pruner, objective and energy limit from ``plan``, a
    :class:`~lightsnn.search.optuna_study.StudyPlan` whose steps are the table's) on the table, run until
    ``budget`` GPU-hours are spent or every candidate was tried; its incumbent after each complete trial, chosen
    as the search chooses (:func:`~lightsnn.search.optuna_study.chosen_trial`). ``study``: one made by the caller
    (e.g. with enqueued trials)."""
    import optuna

    from lightsnn.search.optuna_study import make_pruner, make_sampler, run_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    candidates = BenchmarkCandidates(table, pool, by_edges)
    study = study or optuna.create_study(directions=["maximize", "minimize"] if plan.multi else ["maximize"],
                                         sampler=make_sampler(plan.sampler, int(rng.integers(2 ** 31))),
                                         pruner=make_pruner(plan), study_name="replay")  # Hyperband hashes the
    # study's name into its brackets: a fixed name keeps a seed's replay reproducible
    run_study(replace(plan, budget=budget, trials=None), candidates, study)
    events, best, best_feasible = [], None, None
    complete = optuna.trial.TrialState.COMPLETE
    tried = 0
    for t in study.get_trials(deepcopy=False):  # in the order they ran: what was spent only grows
        if "val_acc" in t.user_attrs:
            tried += 1
        if t.state != complete:
            continue
        energy = t.user_attrs["energy_uj"]
        key = (t.user_attrs["val_acc"][-1], -energy if math.isfinite(energy) else 0.0, -t.number)
        if best is None or key > best[0]:
            best = (key, t)
        if plan.max_energy_uj is not None and energy <= plan.max_energy_uj \
                and (best_feasible is None or key > best_feasible[0]):
            best_feasible = (key, t)
        pick = (best_feasible or best)[1]
        i = int(candidates.pool[pick.user_attrs["cell"]])
        events.append(Event(t.user_attrs["spent"], i, 0, table.unpaid(i, table.epochs_at(i, plan.steps)),
                            candidates.ledger.order, tried))
    return events


def regularized_evolution(table: CurveTable, rng: np.random.Generator, steps: int, population: int = 20,
                          sample: int = 5) -> Iterator[Event]:
    """Regularised (ageing) evolution (Real et al., 2019) with the validation accuracy after ``steps`` steps as
    fitness: a random population, then tournaments of ``sample``: the winner's mutant joins, the oldest leaves.
    A mutant trained before keeps its known fitness and pays nothing (a real search caches it); after
    ``population`` such revisits in a row (the reachable candidates are used up) the search ends."""
    if table.neighbours is None:
        raise ValueError("regularised evolution needs the candidates' neighbours (one mutation away)")
    ledger = _Ledger(table)
    alive: list[tuple[int, float]] = []
    for i in rng.choice(len(table.ids), size=min(population, len(table.ids)), replace=False):
        alive.append((int(i), ledger.train(int(i), steps)))
        yield ledger.event()
    revisits = 0
    while revisits < population:
        contenders = [alive[j] for j in rng.choice(len(alive), size=min(sample, len(alive)), replace=False)]
        parent = max(contenders, key=lambda pair: pair[1] if math.isfinite(pair[1]) else -math.inf)[0]
        options = table.neighbours(parent)
        if not options:
            return
        child = int(options[int(rng.integers(len(options)))])
        revisits = revisits + 1 if child in ledger.trained else 0
        alive.append((child, ledger.train(child, steps)))
        alive.pop(0)
        if not revisits:
            yield ledger.event()


def incumbent_at(events: Iterable[Event], budgets: list[float]) -> list[Event | None]:
    """The incumbent at each budget (GPU-hours): the last one the search can also finish training within it
    (``hours + unpaid``); None where none fits. Consumes ``events`` only as far as the largest budget. In the
    order of ``budgets``."""
    order = sorted(range(len(budgets)), key=lambda b: budgets[b])
    picks: list[Event | None] = [None] * len(budgets)
    largest = budgets[order[-1]]
    for event in events:
        if event.hours > largest:
            break
        for b in order:
            if event.hours + event.unpaid <= budgets[b]:
                picks[b] = event
    return picks


def hypervolume(acc: np.ndarray, energy: np.ndarray, reference: tuple[float, float]) -> float:
    """The area of the accuracy-energy plane the points dominate (higher accuracy, lower energy) up to the
    reference point (lowest accuracy, highest energy): a set's share of the true front's measures how much of
    the front it found."""
    ref_acc, ref_energy = reference
    keep = (acc > ref_acc) & (energy < ref_energy)
    acc, energy = acc[keep], energy[keep]
    if not len(acc):
        return 0.0
    order = np.lexsort((-acc, energy))
    area, best = 0.0, ref_acc
    edges = np.append(energy[order], ref_energy)
    for k, i in enumerate(order):
        best = max(best, acc[i])
        area += (best - ref_acc) * (edges[k + 1] - edges[k])
    return float(area)


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
