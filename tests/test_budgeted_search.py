"""The budgeted search on Optuna: candidates trained epoch by epoch on a training split and judged on validation,
pruned by Optuna's pruner, chosen within an energy limit or on the accuracy-energy front, one study shared by
worker processes."""
import json
import subprocess
import sys

import pytest

from lightsnn.pipeline.jobs import run_search
from lightsnn.search.budgeted_search import BudgetedOptions, _pruner

TINY = {"device": "cpu", "networks": {"digits": {"channels": 4, "timesteps": 2, "classifier_width": 32}}}
BASE = {"trials": 5, "epochs": 3, "pool": 12, "max_batches": 3, "batch_size": 32, "energy_val_samples": 16}


def _search(**options):
    return run_search("budgeted", "digits", 0, TINY, {**BASE, **options}, progress=False)


def test_trials_train_are_pruned_and_the_most_accurate_complete_one_is_chosen():
    result = _search()
    trials, details = result["candidates"], result["details"]
    assert len(trials) == details["trials"] <= BASE["trials"]
    complete = [t for t in trials if t["state"] == "complete"]
    assert complete and all(t["epochs"] == 3 and t["energy_uj"] > 0 for t in complete)
    assert all(t["epochs"] < 3 for t in trials if t["state"] == "pruned")
    assert details["paid_epochs"] == sum(t["epochs"] for t in trials)  # a revisit pays nothing
    assert all(t["epochs"] == 0 for t in trials if t["revisit"])
    best = max(complete, key=lambda t: (t["val_acc"][-1], -t["energy_uj"], -t["trial"]))
    assert details["chosen_trial"] == best["trial"] and result["genotype"]["str"] == best["genotype"]
    assert result["score"] == best["val_acc"][-1]
    again = _search()  # a seed makes it reproducible
    assert [(t["genotype"], t["state"], t["epochs"]) for t in again["candidates"]] == \
        [(t["genotype"], t["state"], t["epochs"]) for t in trials]


def test_an_energy_limit_is_respected():
    free = _search(sampler="random", pruner="none")  # the random sampler's draws do not depend on the limit
    energies = sorted(t["energy_uj"] for t in free["candidates"] if t["state"] == "complete")
    assert len(energies) >= 2 and energies[0] < energies[-1]
    limit = energies[0] * 1.0001  # only the cheapest network fits
    limited = _search(sampler="random", pruner="none", max_energy_uj=limit)
    assert limited["details"]["chosen_energy_uj"] <= limit and limited["details"]["within_energy_limit"]
    assert limited["details"]["chosen_energy_uj"] == energies[0]


def test_two_objectives_give_the_front_and_no_trial_is_pruned_by_the_pruner():
    result = _search(objective="accuracy_energy")
    front = result["details"]["front"]
    assert front and result["details"]["chosen_trial"] in front
    assert all(t["stopped_by"] is None and (t["state"] == "complete" or t["revisit"]) for t in result["candidates"])


def test_successive_halving_stops_the_worst_curves_and_never_the_best():
    """The pruner as configured (min_epochs 1, a third promoted per rung) on a hand-made table of first epochs."""
    import optuna

    study = optuna.create_study(direction="maximize", pruner=_pruner(BudgetedOptions(epochs=9, min_epochs=1)))
    decisions = {}
    for value in (50.0, 90.0, 10.0, 80.0, 20.0, 70.0, 30.0, 60.0, 40.0):
        trial = study.ask()
        trial.report(value, 1)
        decisions[value] = trial.should_prune()
        study.tell(trial, state=optuna.trial.TrialState.PRUNED if decisions[value] else None,
                   values=None if decisions[value] else value)
    assert decisions[90.0] is False and decisions[10.0] and decisions[20.0]


def test_proposals_over_edge_ops_train_only_valid_cells_that_pass_the_prefilter():
    from lightsnn.space.genotype import Genotype

    result = _search(propose="edges", trials=6)
    trials, details = result["candidates"], result["details"]
    lowest = min(details["kept_scores"])  # the kept pool's lowest parameter count
    trained = [t for t in trials if t["epochs"] > 0]
    assert trained and all(Genotype.from_str(t["genotype"]).cells[0].is_valid() for t in trained)
    assert all(t["prefilter_score"] >= lowest for t in trained)
    assert all(t["epochs"] == 0 and t["genotype"] is None for t in trials if t["outside_pool"])
    assert details["outside_pool"] == sum(t["outside_pool"] for t in trials) and details["propose"] == "edges"
    assert result["genotype"]["str"] in {t["genotype"] for t in trained}


def test_bad_options_are_one_line():
    with pytest.raises(ValueError, match="search.budgeted.prefilter='nope' is not a registered proxy"):
        _search(prefilter="nope")
    with pytest.raises(ValueError, match="min_epochs=4 exceeds epochs=3"):
        _search(min_epochs=4)


def test_two_worker_processes_share_one_study(tmp_path):
    """Two real processes on one journal file: the trials of both are in the study, numbered once, and the
    search's trial count covers both workers (trials is a budget for all of them)."""
    journal = tmp_path / "study.log"
    code = (f"from lightsnn.pipeline.jobs import run_search; import json; "
            f"r = run_search('budgeted', 'digits', 0, {TINY!r}, {{**{BASE!r}, 'trials': 6, 'storage': {str(journal)!r}}}, "
            f"progress=False); print(json.dumps([t['worker'] for t in r['candidates']]))")
    workers = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    outs = [w.communicate(timeout=600) for w in workers]
    assert all(w.returncode == 0 for w in workers), [err[-2000:] for _, err in outs]
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="budgeted-digits-seed0", storage=JournalStorage(JournalFileBackend(str(journal))))
    trials = study.get_trials()
    assert len({t.number for t in trials}) == len(trials) and 6 <= len(trials) <= 7  # a running one may end it
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    seen = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert len(seen[-1]) >= len(trials) - 1  # each worker's result lists the study's trials, the other's included


def test_a_killed_workers_trial_is_retried_by_the_next_worker_and_not_counted_twice(tmp_path):
    """SIGKILL a worker in the middle of a trial: the next worker on the study marks that trial failed, trains
    its cell again (the retry says which trial it replaces), and the failed one counts toward neither the budget
    nor the choice."""
    import os
    import signal
    import time

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = tmp_path / "study.log"
    slow = {"device": "cpu", "networks": {"digits": {"channels": 16, "timesteps": 4}}}  # seconds per epoch
    options = {"trials": 3, "epochs": 3, "pool": 12, "batch_size": 16, "energy_val_samples": 16,
               "pruner": "none", "storage": str(journal)}
    code = (f"from lightsnn.pipeline.jobs import run_search; "
            f"run_search('budgeted', 'digits', 0, {slow!r}, {options!r}, progress=False)")
    worker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    storage = lambda: JournalStorage(JournalFileBackend(str(journal)))  # noqa: E731
    deadline = time.monotonic() + 300
    running = []
    while not running and time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.2)
        if journal.exists():
            try:
                study = optuna.load_study(study_name="budgeted-digits-seed0", storage=storage())
            except KeyError:  # the study is not written yet
                continue
            running = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.RUNNING
                       and t.user_attrs.get("val_acc")]  # its first epoch done, two more to go: mid-trial
    assert running, "the first worker never got through a trial's first epoch"
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=60)
    study = optuna.load_study(study_name="budgeted-digits-seed0", storage=storage())
    orphans = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.RUNNING]
    assert len(orphans) == 1 and orphans[0].user_attrs["worker"].endswith(f":{worker.pid}")
    killed = orphans[0]
    result = run_search("budgeted", "digits", 0, slow, {**options, "trials": 2}, progress=False)
    study = optuna.load_study(study_name="budgeted-digits-seed0", storage=storage())
    by_number = {t.number: t for t in study.get_trials()}
    assert by_number[killed.number].state == optuna.trial.TrialState.FAIL
    retries = [t for t in by_number.values() if t.user_attrs.get("retry_of") == killed.number]
    assert len(retries) == 1 and retries[0].params["cell"] == killed.params["cell"]
    assert retries[0].state == optuna.trial.TrialState.COMPLETE
    assert result["details"]["retried_after_a_killed_worker"] == [killed.number]
    counted = [t for t in by_number.values() if t.state in (optuna.trial.TrialState.COMPLETE,
                                                              optuna.trial.TrialState.PRUNED)]
    assert killed.number not in {t.number for t in counted} and len(counted) >= 2
