"""Budgeted search on Optuna: candidates are trained for real, epoch by epoch, on a training split and judged on
validation accuracy (a held-out part of the training set, never test); Optuna's pruner stops the unpromising
ones, its sampler picks the next, and the search stops inside a stated budget of trials and seconds.

- Prefilter (optional): a pool of distinct valid cells, the top ``prefilter_keep`` of it by a registered proxy
  (the parameter count is the one that helped on SpikeNAS-Bench, docs/evidence.md); ties are broken by the
  seed's random stream, not by position.
- Energy: each completed candidate's energy per inference is measured as ``evaluate`` measures it (SynOps and
  MACs at the trained network's firing rates, on validation samples). ``objective: accuracy`` with
  ``max_energy_uj`` makes it a constraint (Optuna's trial constraints; the pruner still acts);
  ``objective: accuracy_energy`` makes it a second objective (the result records the Pareto set; Optuna's pruners
  serve single-objective studies only, so every candidate trains its full ``epochs``).
- ``storage`` (an Optuna journal file, or a database URL) shares one study between processes.
"""
from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from lightsnn.core.options import opt
from lightsnn.proxies.engine import score_proxies
from lightsnn.proxies.registry import PROXIES, get_proxy
from lightsnn.search.method_options import BaseOptions
from lightsnn.search.optuna_study import (OBJECTIVES, PRUNERS, SAMPLERS, StudyPlan, chosen_trial, front_numbers,
                                          make_pruner, make_sampler, run_study)
from lightsnn.search.protocol import Method, SearchContext, SearchRecord, SearchResult, timed
from lightsnn.space.genotype import CellGenotype, Genotype
from lightsnn.space.network import SNASNetwork
from lightsnn.space.sampling import raw_cell_count



PROPOSALS = ("pool", "edges")


@dataclass(frozen=True)
class BudgetedOptions(BaseOptions):
    section: ClassVar[str] = "search.budgeted"
    space: str | list[str] = opt("lightsnn-ops", "op space: a named space or a list of ops")
    trials: int = opt(12, "most candidates trained (pruned ones count)", min=1)
    budget_seconds: float | None = opt(None, "wall-clock budget: no trial starts after it, a running one stops "
                                             "at its next epoch (null: trials only)", above=0.0)
    epochs: int = opt(3, "epochs a candidate that is never pruned trains (the full fidelity)", min=1)
    min_epochs: int = opt(1, "epochs every candidate trains before the pruner may stop it", min=1)
    pruner: str = opt("successive_halving", "Optuna pruner (single-objective studies only)", PRUNERS)
    sampler: str = opt("tpe", "Optuna sampler", SAMPLERS)
    prefilter: str | None = opt("params", "registered proxy ranking the pool before any training (null: none)")
    pool: int = opt(60, "distinct valid cells drawn for the pool", min=2)
    prefilter_keep: float = opt(0.5, "share of the pool the prefilter keeps (its top by the proxy)", above=0.0,
                                max=1.0)
    propose: str = opt("pool", "what the sampler proposes: pool (a cell of the pool, by position) or edges (an op "
                               "per edge of the space, so TPE learns which op helps where; a proposal is trained "
                               "if valid and, with a prefilter, scored at least the kept pool's lowest score)",
                       PROPOSALS)
    objective: str = opt("accuracy", "accuracy (with max_energy_uj: a constraint) or accuracy_energy (two "
                                     "objectives: the Pareto set)", OBJECTIVES)
    max_energy_uj: float | None = opt(None, "energy per inference a chosen network may cost (µJ)", above=0.0)
    energy_val_samples: int = opt(64, "validation samples the energy is counted on", min=1)
    val_fraction: float = opt(0.2, "share of the training set held out for validation", above=0.0, max=0.9)
    batch_size: int = opt(64, "training batch of the candidates", min=1)
    lr: float = opt(0.1, "SGD learning rate of the candidates (cosine over epochs)", above=0.0)
    max_batches: int | None = opt(None, "cap training batches per epoch (null: whole epochs)", min=1)
    storage: str | None = opt(None, "Optuna storage shared by parallel workers: a journal file path or a database "
                                    "URL (null: in memory; the workflow gives each run a journal file)")
    workers: int = opt(1, "worker jobs the workflow runs on one study per dataset and seed (each its own GPU on "
                          "SLURM), then one job that writes the result from the study", min=1)

    def check(self) -> None:
        super().check()
        if self.prefilter is not None and self.prefilter not in PROXIES:
            raise ValueError(f"search.budgeted.prefilter={self.prefilter!r} is not a registered proxy; known: "
                             f"{', '.join(PROXIES)}")
        if self.min_epochs > self.epochs:
            raise ValueError(f"search.budgeted.min_epochs={self.min_epochs} exceeds epochs={self.epochs}")

    def planned_work(self, train_samples: int) -> tuple[str, int]:
        per_epoch = train_samples * (1 - self.val_fraction)
        if self.max_batches is not None:
            per_epoch = min(per_epoch, self.max_batches * self.batch_size)
        return "training", int(self.trials * self.epochs * per_epoch)

    def train_options(self):
        from lightsnn.training.train import TrainOptions

        return TrainOptions.from_config({"recipe": "quick", "epochs": self.epochs, "batch_size": self.batch_size,
                                         "lr": self.lr, "val_fraction": self.val_fraction,
                                         "max_batches": self.max_batches, "bf16": False, "channels_last": False})


def candidate_pool(options: BudgetedOptions, ctx: SearchContext, rng: np.random.Generator) -> tuple[list, dict]:
    """Distinct valid shared cells, in the seed's random order; with a prefilter, its top share by the proxy
    (stable sort: equal scores keep the random order)."""
    space = options.search_space()
    pool, seen, draws = [], set(), 0
    while len(pool) < options.pool and draws < 50 * options.pool:
        cell, n = space.sample_valid(rng)
        draws += n
        if cell not in seen:
            seen.add(cell)
            pool.append(Genotype.shared(cell))
    info = {"pool": len(pool), "draws": draws}
    if options.prefilter is None:
        return pool, info
    proxy = get_proxy(options.prefilter)
    batches = [ctx.splits.train[i][0] for i in rng.permutation(len(ctx.splits.train))[:32]]
    batch = [torch.stack(batches).to(ctx.device)] if proxy.needs_data else []
    if proxy.needs_data and ctx.splits.events:
        batch = [batch[0].transpose(0, 1).contiguous()]
    scores = [_score(proxy.name, genotype, ctx, batch) for genotype in pool]
    order = sorted(range(len(pool)), key=lambda i: -scores[i] if math.isfinite(scores[i]) else math.inf)
    kept = order[:max(1, int(round(options.prefilter_keep * len(pool))))]
    info.update(prefilter=proxy.name, kept=len(kept), kept_scores=[scores[i] for i in kept], batch=batch)
    return [pool[i] for i in kept], info


def _score(proxy: str, genotype: Genotype, ctx: SearchContext, batch: list) -> float:
    net = SNASNetwork.from_genotype(ctx.net_config, genotype).to(ctx.device).eval()
    return score_proxies(net, genotype, batch, [proxy])[proxy]


def study_plan(options: BudgetedOptions) -> StudyPlan:
    """The options as the shared Optuna loop reads them (the budget in wall-clock seconds, a step an epoch)."""
    return StudyPlan(trials=options.trials, budget=options.budget_seconds, steps=options.epochs,
                     min_steps=options.min_epochs, pruner=options.pruner, sampler=options.sampler,
                     objective=options.objective, max_energy_uj=options.max_energy_uj)


def _pruner(options: BudgetedOptions):
    return make_pruner(study_plan(options))


def _storage(options: BudgetedOptions):
    if options.storage is None:
        return None
    if "://" in options.storage:
        return options.storage
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    Path(options.storage).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(options.storage))


def _alive(worker: str | None) -> bool:
    """Whether the process a trial's ``worker`` attribute names ("host:pid") still runs. A worker on another
    host cannot be asked: it counts as alive (its trial is left to it)."""
    host, _, pid = (worker or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_orphans(study) -> list[int]:
    """Trials left RUNNING by a worker that was killed (SIGKILL, a cluster's preemption) are marked failed and
    their cell is queued again, so a later worker (or this rerun) trains it; a failed trial counts toward neither
    the budget nor the result. Returns the numbers of the trials retried."""
    import optuna

    retried = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if _alive(trial.user_attrs.get("worker")):
            continue
        # the storage's own call: Optuna offers no public one for another process's trial (_storage, _trial_id)
        study._storage.set_trial_state_values(trial._trial_id, state=optuna.trial.TrialState.FAIL)
        if trial.params:  # the same cell again
            study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})
        retried.append(trial.number)
    return retried


class _TrainedCandidates:
    """The pool's cells, trained for real on this machine: a step is an epoch; the budget is wall-clock."""

    def __init__(self, options: BudgetedOptions, ctx: SearchContext, pool: list, pool_info: dict, batch: list):
        from lightsnn.training.train import loss_kind

        self.options, self.ctx, self.pool, self.size = options, ctx, list(pool), len(pool)
        self.scores = list(pool_info.get("kept_scores", []))  # the prefilter's score of each pool cell
        self.train_options = options.train_options()
        self.loss = loss_kind(self.train_options, ctx.dataset) if ctx.dataset else "ce"
        self.started = time.perf_counter()
        if options.propose == "edges":  # the whole space, proposals judged as they come
            self.space = options.search_space()
            self.size = raw_cell_count(list(self.space.ops), self.space.cell_type)
            self.lowest = min(pool_info["kept_scores"]) if options.prefilter is not None else None
            self.batch, self.verdicts = batch, {}
            self.suggest = self._suggest_edges

    def _suggest_edges(self, trial) -> int | None:
        edges = {edge: trial.suggest_categorical(f"{edge[0]}->{edge[1]}", list(self.space.ops))
                 for edge in self.space.edges}
        cell = CellGenotype.from_edges(edges).pruned()
        if cell not in self.verdicts:
            genotype = Genotype.shared(cell)
            fits, score = cell.is_valid(), None
            if fits and self.lowest is not None:
                score = _score(self.options.prefilter, genotype, self.ctx, self.batch)
                fits = score >= self.lowest
            self.verdicts[cell] = fits
            if fits:
                self.pool.append(genotype)
                self.scores.append(score)
        if not self.verdicts[cell]:
            return None
        return next(i for i, g in enumerate(self.pool) if g.cells[0] == cell)

    def key(self, index: int) -> str:
        return self.pool[index].to_str()

    def describe(self, index: int) -> dict:
        score = self.scores[index] if index < len(self.scores) else None
        return {"genotype": self.pool[index].to_str(), "prefilter_score": score}

    def spent(self) -> float:
        return time.perf_counter() - self.started

    def start(self, index: int, number: int):
        from lightsnn.training.metrics import operation_counts
        from lightsnn.training.train import Trainer

        ctx = self.ctx
        torch.manual_seed(ctx.seed * 100_003 + number)
        net = SNASNetwork.from_genotype(ctx.net_config, self.pool[index])
        unused = Path("budgeted-trials")  # a Trainer writes only from run(); its epochs here write nothing
        trainer = Trainer(net, self.train_options, ctx.splits, ctx.device, ctx.seed, unused,
                          ctx.net_config.num_classes, self.loss, progress=False, log=lambda line: None)
        samples = self.options.energy_val_samples

        class Run:
            epoch = 0

            def step(self) -> float:
                self.epoch += 1
                trainer.train_epoch(self.epoch)
                trainer.scheduler.step()
                return trainer.validate()["top1"]  # a fraction, as every accuracy in a result file

            def energy_uj(self) -> float:
                counts = operation_counts(trainer.model, trainer.val_loader(), ctx.device, samples)
                return counts["energy_pj_per_sample"] / 1e6

        return Run()


@timed
def run_budgeted(options: BudgetedOptions, ctx: SearchContext) -> SearchResult:
    """Train candidates from the (prefiltered) pool, epoch by epoch, under Optuna's sampler and pruner, within the
    budget (the shared loop of :mod:`.optuna_study`); the chosen network is the most accurate on validation among
    those within the energy limit."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = np.random.default_rng(ctx.seed)
    torch.manual_seed(ctx.seed)
    pool, pool_info = candidate_pool(options, ctx, rng)
    plan = study_plan(options)
    storage = _storage(options)
    study = optuna.create_study(directions=["maximize", "minimize"] if plan.multi else ["maximize"],
                                sampler=make_sampler(options.sampler, ctx.seed), pruner=make_pruner(plan),
                                storage=storage, study_name=f"budgeted-{ctx.dataset}-seed{ctx.seed}",
                                load_if_exists=True)
    retried = recover_orphans(study) if storage is not None else []
    candidates = _TrainedCandidates(options, ctx, pool, pool_info, pool_info.pop("batch", []))
    paid = {"epochs": 0}

    def on_step(row: dict) -> None:
        paid["epochs"] = row["paid_steps"]
        if ctx.on_epoch is None:
            return
        metrics = {"epoch": row["paid_steps"], "trial": row["trial"]}  # MLflow's step: this worker's epochs
        if "val_acc" in row:
            metrics.update(trial_epoch=row["step"], val_acc=row["val_acc"])
        else:  # the trial's end, at its last epoch's step
            metrics["pruned"] = 1.0 if row["state"] == "pruned" else 0.0
            if "energy_uj" in row:
                metrics["energy_uj"] = row["energy_uj"]
        ctx.on_epoch(metrics)

    run_study(plan, candidates, study, on_step)
    record = SearchRecord()
    trials = study.get_trials(deepcopy=False)
    for t in trials:
        val = t.user_attrs.get("val_acc") or []
        record.add(val[-1] if val else math.nan, trial=t.number, genotype=t.user_attrs.get("genotype"),
                   state=t.state.name.lower(), epochs=len(val), val_acc=val, energy_uj=t.user_attrs.get("energy_uj"),
                   revisit=bool(t.user_attrs.get("revisit")), stopped_by=t.user_attrs.get("stopped_by"),
                   outside_pool=bool(t.user_attrs.get("outside_pool")),
                   prefilter_score=t.user_attrs.get("prefilter_score"),
                   worker=t.user_attrs.get("worker"))
    chosen = chosen_trial(trials, plan)
    if chosen is None:
        raise RuntimeError(f"no candidate finished training within the budget ({len(trials)} trials, "
                           f"{candidates.spent():.0f} s); raise budget_seconds or trials")
    record.details = {
        **pool_info, "trials": len(trials),
        "complete": sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in trials),
        "revisits": sum(bool(t.user_attrs.get("revisit")) for t in trials), "paid_epochs": paid["epochs"],
        "outside_pool": sum(bool(t.user_attrs.get("outside_pool")) for t in trials), "propose": options.propose,
        "seconds": candidates.spent(), "chosen_trial": chosen.number,
        "chosen_energy_uj": chosen.user_attrs["energy_uj"],
        "within_energy_limit": options.max_energy_uj is None or chosen.user_attrs["energy_uj"] <= options.max_energy_uj,
        "front": front_numbers(trials) if plan.multi else None, "sampler": options.sampler,
        "pruner": type(study.pruner).__name__, "retried_after_a_killed_worker": retried,
    }
    return SearchResult(Genotype.from_str(chosen.user_attrs["genotype"]), chosen.user_attrs["val_acc"][-1], record,
                        ctx.net_config)


METHOD = Method("budgeted", "budgeted search on Optuna: candidates trained epoch by epoch, pruned on validation "
                            "accuracy, energy as a constraint or an objective", BudgetedOptions, run_budgeted,
                position=50)
