import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from waiting import next_millisecond, wait_for

from lightsnn.pipeline.tracking import DEFAULT_EXPERIMENT, log_result, tracking_uri

RESULT = {"kind": "search", "method": "lightsnn", "dataset": "digits", "seed": 3, "score": 12.5,
          "num_scorings": 60, "genotype": {"str": "0302 0030 3003 0000"}, "config_hash": "abc",
          "options": {"batch_size": 32, "space": ["zero", "conv3x3", "skip"]}, "times": {"search_seconds": 1.5},
          "versions": {"torch": "x"}}


def _runs(uri, experiment=DEFAULT_EXPERIMENT):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=1000) if exp else [], client


def test_sqlite_store_holds_params_metrics_tags_and_the_artifact(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    artifact = tmp_path / "result.json"
    artifact.write_text(json.dumps(RESULT))
    train = {"kind": "train", "method": "lightsnn", "dataset": "digits", "seed": 3, "final_test_acc": 0.9,
             "history": [{"epoch": 1, "train_loss": 1.0, "test_acc": 0.5}, {"epoch": 2, "train_loss": 0.5,
                                                                           "test_acc": 0.9}]}
    config = {"name": "unit", "tracking": {"uri": uri}}
    run_id = log_result(RESULT, config, artifact)
    log_result(train, config)
    runs, client = _runs(uri, "unit")
    assert len(runs) == 2
    run = client.get_run(run_id)
    assert run.data.params["genotype"] == "0302 0030 3003 0000" and run.data.params["options.batch_size"] == "32"
    assert run.data.metrics["score"] == 12.5 and run.data.metrics["time.search_seconds"] == 1.5
    assert run.data.tags["method"] == "lightsnn" and run.data.tags["kind"] == "search"
    assert [a.path for a in client.list_artifacts(run_id)] == ["result.json"]
    train_run = next(r for r in runs if r.info.run_id != run_id)
    history = client.get_metric_history(train_run.info.run_id, "epoch.test_acc")
    assert [(m.step, m.value) for m in history] == [(1, 50.0), (2, 90.0)]  # accuracy in %, as Table 2 prints it
    assert log_result(RESULT, {"tracking": {"enabled": False}}) is None


def test_environment_variable_wins(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    assert tracking_uri({"tracking": {"uri": "sqlite:///x.db"}}) == "http://127.0.0.1:1"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking_uri({}).startswith("sqlite:///") and tracking_uri({}).endswith("results/mlflow.db")


WRITER = """
import sys
from lightsnn.pipeline.tracking import log_result
uri, worker = sys.argv[1], int(sys.argv[2])
for i in range(3):
    log_result({"kind": "search", "method": "snasnet", "dataset": "digits", "seed": worker * 10 + i,
                "score": float(i)}, {"name": "parallel", "tracking": {"uri": uri}})
"""


def test_parallel_jobs_lose_no_run_on_one_sqlite_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # a fresh store: the processes also race to create it
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, uri, str(w)], env=env, stderr=subprocess.PIPE,
                              text=True) for w in range(4)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    runs, _ = _runs(uri, "parallel")
    assert sorted(int(r.data.tags["seed"]) for r in runs) == sorted(w * 10 + i for w in range(4) for i in range(3))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_a_real_mlflow_server_on_localhost(tmp_path, monkeypatch):
    port = _free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    server = subprocess.Popen([str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port),
                               "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                               "--default-artifact-root", str(tmp_path / "artifacts"), "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for(lambda: _healthy(url), "answer from the mlflow server", timeout=120, process=server)
        except AssertionError as err:
            pytest.fail(f"{err}: {server.stderr.read()[-2000:] if server.poll() is not None else ''}")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        artifact = tmp_path / "result.json"
        artifact.write_text(json.dumps(RESULT))
        run_id = log_result(RESULT, {"name": "served"}, artifact)
        runs, client = _runs(url, "served")
        assert [r.info.run_id for r in runs] == [run_id]
        assert client.get_run(run_id).data.metrics["num_scorings"] == 60
        _live_through_a_relay(tmp_path, url, client)
        assert not list(tmp_path.rglob("*.db.lock"))  # a server needs no store lock (the relay has its own)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def _live_through_a_relay(tmp_path, url, client):
    """A training's epochs reach the server while the job still runs: job -> journal -> relay -> server."""
    from lightsnn.pipeline.tracking import LiveRun

    journal, stop = tmp_path / "journal", tmp_path / "relay.stop"
    env = {**os.environ, "MLFLOW_TRACKING_URI": url}
    relay = subprocess.Popen([sys.executable, "-m", "lightsnn", "relay", "--journal", str(journal), "--stop-file",
                              str(stop), "--poll", "0.1"], env=env, stderr=subprocess.PIPE, text=True)
    os.environ["LIGHTSNN_JOURNAL"] = str(journal)
    try:
        run = LiveRun({"name": "served"}, "train", {"method": "random", "dataset": "digits", "seed": 0})
        key = run.start()
    finally:
        del os.environ["LIGHTSNN_JOURNAL"]
    experiment = None
    def relayed(epoch: int):
        nonlocal experiment
        experiment = experiment or client.get_experiment_by_name("served")
        found = client.search_runs([experiment.experiment_id], f"tags.job_key = '{key}'") if experiment else []
        history = client.get_metric_history(found[0].info.run_id, "epoch.test_acc") if found else []
        return found if len(history) == epoch else None

    for epoch in (1, 2):
        run.log_epoch({"epoch": epoch, "test_acc": epoch / 2})
        # the relay polls every 0.1 s: the epoch shows up while the run is RUNNING
        found = wait_for(lambda: relayed(epoch), f"epoch {epoch} on the server", timeout=60, process=relay)
        assert found[0].info.status == "RUNNING"
    run.finish({"kind": "train", "final_test_acc": 1.0})
    stop.touch()
    assert relay.wait(timeout=120) == 0, relay.stderr.read()
    assert "relay stopped: 4 event(s) written" in relay.stderr.read()
    assert client.get_run(found[0].info.run_id).info.status == "FINISHED"


@pytest.mark.parametrize("required", [False, True])
def test_a_broken_store_costs_no_finished_work(tmp_path, required):
    bad = tmp_path / "damaged.db"
    bad.write_text("not an SQLite database " * 20)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"tracking": {"uri": f"sqlite:///{bad}", "required": required}}))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    out = tmp_path / "search.json"
    proc = subprocess.run([sys.executable, "-m", "lightsnn", "search", "--method", "random", "--dataset", "digits",
                           "--config", str(config), "--out", str(out), "--no-progress"],
                          capture_output=True, text=True, cwd=tmp_path, env=env)
    assert json.loads(out.read_text())["kind"] == "search"  # the result file is written either way
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "MLflow tracking to" in line]
    assert len(lines) == 1 and "file is not a database" in lines[0], proc.stderr
    if required:
        assert proc.returncode == 2 and lines[0].startswith("error: ")
    else:
        assert proc.returncode == 0 and lines[0].startswith("warning: ")


def _journal_run(monkeypatch, journal, config, kind="train", key=None, group="digits/random/seed0"):
    from lightsnn.pipeline.tracking import LiveRun

    monkeypatch.setenv("LIGHTSNN_JOURNAL", str(journal))
    run = LiveRun(config, kind, {"method": "random", "dataset": "digits", "seed": 0}, group=group)
    return run, run.start(key)


def test_relayed_runs_reach_mlflow_once_with_the_jobs_times_and_resume_the_same_run(tmp_path, monkeypatch):
    from lightsnn.pipeline.journal import relay

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config, journal = {"name": "relayed", "tracking": {"uri": uri}}, tmp_path / "journal"
    finished, key = _journal_run(monkeypatch, journal, config)
    assert finished.run_id is None and (journal / f"{key}.jsonl").exists()  # the job itself never touched MLflow
    assert not (tmp_path / "mlflow.db").exists()
    for epoch in (1, 2):
        finished.log_epoch({"epoch": epoch, "test_acc": epoch / 4})
        next_millisecond()  # each epoch stamped in its own millisecond
    killed, _ = _journal_run(monkeypatch, journal, config, group="digits/random/seed1")
    killed.end("KILLED")
    silent, silent_key = _journal_run(monkeypatch, journal, config, group="digits/random/seed2")  # a SIGKILLed job
    silent.log_epoch({"epoch": 1, "test_acc": 0.1})
    lines = []
    assert relay(journal, uri, lambda: True, log=lines.append) == 7  # 3 starts, 3 epochs, 1 end
    runs, client = _runs(uri, "relayed")
    status = {r.data.tags["group"]: r.info.status for r in runs if r.data.tags["kind"] == "train"}
    # a relay that stops (its workflow ended) ends the runs of jobs that never said they ended
    assert status == dict.fromkeys(("digits/random/seed0", "digits/random/seed1", "digits/random/seed2"), "KILLED")
    assert lines == ["ended 2 run(s) of jobs that stopped without a word as KILLED"]
    # the job goes on (a resumed training passes the key its checkpoint kept); a second relay continues
    resumed, same = _journal_run(monkeypatch, journal, config, key=key)
    assert same == key
    resumed.log_epoch({"epoch": 3, "test_acc": 0.8})
    (tmp_path / "train.json").write_text("{}")
    resumed.finish({"kind": "train", "final_test_acc": 0.8}, tmp_path / "train.json")
    lines = []
    assert relay(journal, uri, lambda: True, log=lines.append) == 3 and lines == []  # the rest, once
    runs, client = _runs(uri, "relayed")
    train = [r for r in runs if r.data.tags.get("job_key") == key]
    assert len(train) == 1 and train[0].info.status == "FINISHED"
    history = client.get_metric_history(train[0].info.run_id, "epoch.test_acc")
    assert [(m.step, m.value) for m in history] == [(1, 25.0), (2, 50.0), (3, 80.0)]  # each once, in %
    assert history[0].timestamp < history[1].timestamp < history[2].timestamp  # stamped when the job wrote them
    assert train[0].data.metrics["final_test_acc"] == 80.0
    assert [a.path for a in client.list_artifacts(train[0].info.run_id)] == ["train.json"]
    groups = [r for r in runs if r.data.tags["kind"] == "group"]
    assert len(groups) == 3 and train[0].data.tags["mlflow.parentRunId"] in {g.info.run_id for g in groups}


def test_the_relay_skips_a_damaged_line_and_waits_for_a_half_written_one(tmp_path, monkeypatch):
    from lightsnn.pipeline.journal import relay

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    journal = tmp_path / "journal"
    run, key = _journal_run(monkeypatch, journal, {"name": "relayed", "tracking": {"uri": uri}}, kind="search")
    with open(journal / f"{key}.jsonl", "a") as handle:
        handle.write("not json\n" + '{"event": "epoch", "time": 1, "step": 1, "metrics": {"a": 1.0}}')  # no newline
    lines = []
    assert relay(journal, uri, lambda: True, log=lines.append) == 1  # the start only
    assert len(lines) == 2 and "skipped a line that is not a tracking event" in lines[0] and "KILLED" in lines[1]
    with open(journal / f"{key}.jsonl", "a") as handle:  # the line is whole now; then one MLflow refuses
        handle.write("\n" + '{"event": "epoch", "time": 2, "step": 2, "metrics": {"tau.val@5": 1.0}}\n'
                     + '{"event": "epoch", "time": 3, "step": 3, "metrics": {"a": 3.0}}\n')
    lines.clear()
    assert relay(journal, uri, lambda: True, log=lines.append) == 2  # the refused event is skipped, not retried
    assert len(lines) == 2 and "skipped event 1 (MLflow refused the epoch event" in lines[0]
    runs, client = _runs(uri, "relayed")
    run_id = next(r.info.run_id for r in runs if r.data.tags.get("job_key") == key)
    assert [m.value for m in client.get_metric_history(run_id, "a")] == [1.0, 3.0]


def test_a_training_killed_and_resumed_continues_its_run_through_the_journal(tmp_path):
    """SIGTERM mid-training ends the run as KILLED; the rerun resumes the checkpoint and, with the job key the
    checkpoint kept, the same run: one run, every epoch once, FINISHED."""
    import signal

    from lightsnn.pipeline.journal import relay

    uri, journal, out = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "journal", tmp_path / "train"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(LIGHTSNN_JOURNAL=str(journal), LIGHTSNN_TRACKING=json.dumps({"name": "resumed",
                                                                          "tracking": {"uri": uri}}))
    command = [sys.executable, "-m", "lightsnn", "train", "--genotype", "0302 0030 3003 0000", "--dataset", "digits",
               "--out", str(out), "--epochs", "30", "--max-batches", "2", "--no-progress",
               "--config-json", '{"network": {"channels": 4, "timesteps": 2}}']
    first = subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    wait_for((out / "checkpoint.pt").exists, "first epoch's checkpoint", process=first)
    # at once: 29 epochs are left. The epoch's journal line is written before a SIGTERM takes effect
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 143, first.stderr.read()[-2000:]
    files = list(journal.glob("*.jsonl"))
    events = [json.loads(line)["event"] for line in files[0].read_text().splitlines()]
    assert len(files) == 1 and events[0] == "start" and events[-1] == "end" and "epoch" in events
    again = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0 and "resuming from" in again.stdout + again.stderr, again.stderr[-2000:]
    assert list(journal.glob("*.jsonl")) == files  # the same job key, the same journal file
    relay(journal, uri, lambda: True)
    runs, client = _runs(uri, "resumed")
    train = [r for r in runs if r.data.tags["kind"] == "train"]
    assert len(train) == 1 and train[0].info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(train[0].info.run_id, "epoch.train_loss")]
    assert steps == list(range(1, 31))


def test_a_training_killed_before_its_first_checkpoint_leaves_no_run_running(tmp_path):
    """SIGKILL gives a job no chance to end its run; the next attempt in the same folder finds the key the dead
    one left and ends that run as KILLED (before, it stayed RUNNING forever)."""
    import signal

    uri, out = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "train"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "LIGHTSNN_JOURNAL")}
    env["LIGHTSNN_TRACKING"] = json.dumps({"name": "killed", "tracking": {"uri": uri}})
    command = [sys.executable, "-m", "lightsnn", "train", "--genotype", "0302 0030 3003 0000", "--dataset", "digits",
               "--out", str(out), "--no-progress", "--config-json", '{"network": {"channels": 16, "timesteps": 4}}']
    first = subprocess.Popen(command + ["--epochs", "3", "--batch-size", "8"], env=env, cwd=tmp_path,
                             stderr=subprocess.PIPE, text=True)
    wait_for((out / ".tracking-key").exists, "the run's job key", process=first)
    first.send_signal(signal.SIGKILL)  # at once: about 180 batches before the first checkpoint
    first.wait(timeout=60)
    assert not (out / "checkpoint.pt").exists(), "the first epoch ended before the kill; this test needs it not to"
    stale = (out / ".tracking-key").read_text().strip()
    runs, _ = _runs(uri, "killed")
    assert [r.info.status for r in runs] == ["RUNNING"]
    again = subprocess.run(command + ["--epochs", "1", "--max-batches", "1"], env=env, cwd=tmp_path,
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    runs, _ = _runs(uri, "killed")
    status = {r.data.tags["job_key"]: r.info.status for r in runs}
    assert status.pop(stale) == "KILLED" and list(status.values()) == ["FINISHED"], status
    assert not (out / ".tracking-key").exists()  # a finished training leaves no open key


def test_a_job_on_a_new_store_prints_no_mlflow_info_lines(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "LIGHTSNN_JOURNAL")}
    env["LIGHTSNN_TRACKING"] = json.dumps({"tracking": {"uri": f"sqlite:///{tmp_path / 'new.db'}"}})
    proc = subprocess.run([sys.executable, "-m", "lightsnn", "search", "--method", "random", "--dataset", "digits",
                           "--out", str(tmp_path / "s.json")], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("MLflow run "), lines  # not the store's table migrations


def test_mlflow_opens_as_a_training_experiment_with_parents_that_summarise_and_span_their_jobs(tmp_path, monkeypatch):
    """A new user's first look: no stray "Default" experiment, the model-training view, parent runs that carry
    the run's Table 2 columns and span their jobs, runs as long as their jobs, the candidates ranked."""
    from lightsnn.pipeline.tracking import LiveRun, ranked_candidates

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("LIGHTSNN_JOURNAL", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config, group = {"name": "readable", "tracking": {"uri": uri}}, "digits/snasnet/seed0"
    identity = {"method": "snasnet", "dataset": "digits", "seed": 0}
    search = {"kind": "search", "method": "snasnet", "genotype": {"str": "0012 0000 0001 0000"},
              "times": {"search_seconds": 12.5},
              "candidates": [{"index": 0, "genotype": "0001 0000 1000 0040", "score": 386.5},
                             {"index": 1, "genotype": "0004 0000 0000 0000", "score": float("nan")},
                             {"index": 2, "genotype": "0012 0000 0001 0000", "score": 569.0}]}
    job = LiveRun(config, "search", identity, group=group)
    job.start()
    job.finish(search, table=("candidates", ranked_candidates(search)))
    evaluate = LiveRun(config, "evaluate", identity, group=group)  # opened when the job starts...
    deadline = evaluate.created_ms + 50
    while int(time.time() * 1000) < deadline:  # ...the evaluation's work (50 ms)...
        pass
    evaluate.start()  # ...and started after it, as the evaluate verb does
    evaluate.finish({"kind": "evaluate", "top1": 0.5625, "sar": 0.125, "energy_pj_per_sample": 2.5e6,
                     "parameters": 1000})
    runs, client = _runs(uri, "readable")
    experiment = client.get_experiment_by_name("readable")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert [e.name for e in client.search_experiments()] == ["readable"]  # "Default" is in the trash
    by_kind = {r.data.tags["kind"]: r for r in runs}
    parent = by_kind["group"]
    assert parent.data.tags["method"] == "snasnet" and parent.data.tags["genotype"] == "0012 0000 0001 0000"
    work = parent.data.metrics.pop("work_s")  # the jobs' own spans, beside the parent's wall-clock one
    assert parent.data.metrics == {"search_s": 12.5, "acc": 56.25, "sar": 0.125, "energy_uj": 2.5, "params": 1000.0}
    assert parent.data.params == {"method": "snasnet", "dataset": "digits", "seed": "0",
                                  "genotype": "0012 0000 0001 0000"}
    spans = sum(r.info.end_time - r.info.start_time for r in (by_kind["search"], by_kind["evaluate"])) / 1000
    assert work == pytest.approx(spans, rel=1e-3) and work >= 0.05  # to 4 significant digits
    assert by_kind["search"].info.run_name == "search digits/snasnet/seed0"  # what the run is, first
    assert by_kind["evaluate"].info.run_name == "evaluate digits/snasnet/seed0"
    assert parent.info.status == "FINISHED"
    for child in (by_kind["search"], by_kind["evaluate"]):
        assert parent.info.start_time <= child.info.start_time and child.info.end_time <= parent.info.end_time
    assert by_kind["evaluate"].info.end_time - by_kind["evaluate"].info.start_time >= 50  # ms: the whole job
    table = ranked_candidates(search)
    assert [(row["index"], row["rank"], row["picked"]) for row in table] == [(0, 2, False), (1, 3, False),
                                                                             (2, 1, True)]
