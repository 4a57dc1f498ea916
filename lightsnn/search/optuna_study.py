"""The Optuna study of a budgeted search, whatever trains its candidates: the real search trains networks on this
machine (its budget in wall-clock seconds), the replay on a tabular benchmark reads their logged curves (its
budget in GPU-hours). Both run this one loop, so what the replay measures is what the search does.

A trial picks a candidate of the pool (the categorical parameter ``cell``), trains it step by step (an epoch, or
a share of its schedule), reports the validation accuracy after each step to the pruner, and on completion
records the candidate's energy per inference and what had been spent (``spent``). With an energy limit on a
pruned study, the energy is also measured once after ``min_steps`` and a candidate over the limit stops there
(the pruner judges accuracy only); the completed network's energy is the constraint Optuna's sampler reads. A revisit of a candidate
trained before trains nothing and pays nothing; once every candidate has been tried the study stops.

May import: optuna, :mod:`lightsnn.core`.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Callable, Protocol

PRUNERS = ("successive_halving", "hyperband", "median", "none")
SAMPLERS = ("tpe", "random")
OBJECTIVES = ("accuracy", "accuracy_energy")
IDLE_TRIALS = 500  # trials in a row that train nothing before a study stops (a converged sampler)


@dataclass(frozen=True)
class StudyPlan:
    """How a study spends its budget. ``steps``: the full fidelity (a candidate never pruned trains this many
    steps); ``budget``: in the unit of the candidates' ``spent()`` (None: ``trials`` alone ends it)."""

    trials: int | None
    budget: float | None
    steps: int
    min_steps: int = 1
    pruner: str = "successive_halving"
    sampler: str = "tpe"
    objective: str = "accuracy"
    max_energy_uj: float | None = None
    reduction_factor: int = 3
    bootstrap_count: int = 0  # successive halving: trials a rung needs before it promotes any (Optuna's option)

    @property
    def multi(self) -> bool:
        return self.objective == "accuracy_energy"


class CandidateRun(Protocol):
    def step(self) -> float:
        """Train one more step; the validation accuracy after it (a fraction or %, as the caller measures)."""

    def energy_uj(self) -> float:
        """Energy per inference of the trained candidate (µJ)."""


class Candidates(Protocol):
    size: int

    def start(self, index: int, number: int) -> CandidateRun:
        """Start training candidate ``index`` for trial ``number`` (which seeds its initialisation)."""

    def describe(self, index: int) -> dict:
        """User attributes naming the candidate in the study (e.g. its genotype or benchmark id). Optional:
        ``key(index)``, the candidate's identity for every worker (default: the index), and ``suggest(trial)``,
        which proposes a candidate from parameters of its own (None: no candidate of the pool)."""

    def spent(self) -> float:
        """What the search has spent so far, in the budget's unit."""


def make_sampler(name: str, seed: int):
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)  # it reads the trials' constraints (Trial.set_constraint)


def make_pruner(plan: StudyPlan):
    import optuna

    if plan.multi or plan.pruner == "none":  # Optuna's pruners serve single-objective studies only
        return optuna.pruners.NopPruner()
    if plan.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=plan.min_steps,
                                                      reduction_factor=plan.reduction_factor,
                                                      bootstrap_count=plan.bootstrap_count)
    if plan.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=plan.min_steps, max_resource=plan.steps,
                                              reduction_factor=plan.reduction_factor)
    return optuna.pruners.MedianPruner(n_warmup_steps=plan.min_steps)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_study(plan: StudyPlan, candidates: Candidates, study, on_step: Callable[[dict], None] | None = None) -> None:
    """Run trials on ``study`` until ``plan.trials`` trials (every worker's) are complete or pruned, the budget
    is spent, or every candidate has been tried. ``on_step`` hears each step and each trial's end."""
    import optuna

    counted = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    tried: dict[int, int] = {}  # trial number -> cell, of trials that trained (any worker's), read incrementally
    paid = {"steps": 0}

    def over_budget() -> bool:
        return plan.budget is not None and candidates.spent() > plan.budget

    idle = {"trials": 0}  # trials in a row that trained nothing (revisits, cells outside the pool)

    def tried_cells(number: int) -> set[int]:
        for t in study.get_trials(deepcopy=False):
            if t.number not in tried and t.number != number and "cell" in t.user_attrs \
                    and not t.user_attrs.get("revisit") and t.state != optuna.trial.TrialState.FAIL:
                tried[t.number] = t.user_attrs["cell"]  # a killed worker's (failed) trial is retried, not revisited
        return set(tried.values())

    def trains_nothing(trial, why: str):
        trial.set_user_attr(why, True)
        idle["trials"] += 1
        if idle["trials"] >= IDLE_TRIALS:  # the sampler keeps proposing what was tried: the search has converged
            trial.study.stop()
        return optuna.TrialPruned()

    def report(row: dict) -> None:
        if on_step is not None:
            on_step(row)

    def objective(trial):
        suggest = getattr(candidates, "suggest", None)  # a candidate set may name its own parameters
        index = suggest(trial) if suggest is not None else trial.suggest_categorical("cell", list(range(candidates.size)))
        if index is None:  # parameters that name no candidate of the pool: nothing to train
            raise trains_nothing(trial, "outside_pool")
        cell = candidates.key(index) if hasattr(candidates, "key") else index  # the same for every worker
        for key, value in {**candidates.describe(index), "cell": cell, "worker": worker_name()}.items():
            trial.set_user_attr(key, value)
        seen = tried_cells(trial.number)
        if cell in seen:  # a revisit trains nothing and pays nothing
            if len(seen) >= candidates.size:  # the pool's end ends the search
                trial.study.stop()
            raise trains_nothing(trial, "revisit")
        idle["trials"] = 0
        run = candidates.start(index, trial.number)
        curve = []
        for step in range(1, plan.steps + 1):
            curve.append(float(run.step()))
            paid["steps"] += 1
            trial.set_user_attr("val_acc", curve)
            report({"trial": trial.number, "step": step, "val_acc": curve[-1], "paid_steps": paid["steps"]})
            if not plan.multi:
                trial.report(curve[-1], step)
                budget_cut = over_budget() and step < plan.steps
                early_energy = (run.energy_uj() if plan.max_energy_uj is not None and step == plan.min_steps < plan.steps
                                else None)  # measured once, early: a candidate over the limit is cheap to stop
                too_costly = early_energy is not None and early_energy > plan.max_energy_uj
                if too_costly:  # the sampler learns the limit from stopped trials too
                    trial.set_constraint("energy", early_energy - plan.max_energy_uj)
                if budget_cut or too_costly or trial.should_prune():
                    trial.set_user_attr("stopped_by", "budget" if budget_cut else "energy" if too_costly
                                        else "pruner")
                    trial.set_user_attr("spent", candidates.spent())
                    report({"trial": trial.number, "step": step, "state": "pruned", "paid_steps": paid["steps"]})
                    raise optuna.TrialPruned()
        energy = float(run.energy_uj())
        trial.set_user_attr("energy_uj", energy)
        trial.set_user_attr("spent", candidates.spent())
        report({"trial": trial.number, "step": plan.steps, "state": "complete", "energy_uj": energy,
                "paid_steps": paid["steps"]})
        if plan.max_energy_uj is not None and not plan.multi:  # <= 0 is feasible
            trial.set_constraint("energy", energy - plan.max_energy_uj)
        return (curve[-1], energy) if plan.multi else curve[-1]

    def stop_at_budget(study, trial):
        if over_budget():
            study.stop()

    # trials counts every worker's: the last one started ends the study for all of them, and a job that comes
    # after the workers (the workflow's) trains nothing and reads the result from the study
    callbacks = [stop_at_budget]
    left = None
    if plan.trials is not None:
        left = plan.trials - len(study.get_trials(deepcopy=False, states=counted))
        callbacks.append(optuna.study.MaxTrialsCallback(plan.trials, states=counted))
        if left <= 0:
            return
    if over_budget():
        return
    study.optimize(objective, n_trials=left, callbacks=callbacks, catch=())


def chosen_trial(trials: list, plan: StudyPlan, spent_within: float | None = None):
    """The network a study returns: among its complete trials (those done within ``spent_within`` if given), the
    most accurate on validation within the energy limit (none within it: the most accurate of all); with two
    objectives, the most accurate of the Pareto set of those within the limit. Ties: the lower energy, then the
    earlier trial. None when no trial is complete."""
    import optuna

    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE
                and (spent_within is None or t.user_attrs["spent"] <= spent_within)]
    if not complete:
        return None
    feasible = [t for t in complete if plan.max_energy_uj is None or t.user_attrs["energy_uj"] <= plan.max_energy_uj]
    candidates = feasible or complete
    key = lambda t: (t.user_attrs["val_acc"][-1], -t.user_attrs["energy_uj"], -t.number)  # noqa: E731
    return max(candidates, key=key)


def front_numbers(trials: list) -> list[int]:
    """The complete trials no other complete trial beats on both validation accuracy and energy."""
    import optuna

    points = [(t.user_attrs["val_acc"][-1], t.user_attrs["energy_uj"], t.number) for t in trials
              if t.state == optuna.trial.TrialState.COMPLETE]
    front = []
    for acc, energy, number in points:
        if not any(a >= acc and e <= energy and (a > acc or e < energy) for a, e, _ in points):
            front.append(number)
    return sorted(front)
