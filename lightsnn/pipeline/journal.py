"""The tracking journal and its relay: in the workflow a job appends its MLflow events (start, one per epoch,
finish or end) as JSON lines to a journal file, and one relay process writes them to the store as they come
(:mod:`lightsnn.pipeline.tracking` says why). Also the MLflow writer both paths share, and the lock that keeps a
SQLite store to one writer at a time."""
from __future__ import annotations

import contextlib
import fcntl
import json
import time
from pathlib import Path
from typing import Callable, Iterator


#: Tags of the experiments we create: MLflow 3 opens an experiment in the view its kind names.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development",
                   "mlflow.note.content": "lightsnn: one parent run per dataset x run x seed (its summary: method, "
                                          "accuracy, SAR, energy, search time), its search, train and evaluate "
                                          "jobs nested under it."}


def _warn_line(line: str) -> None:
    import sys

    print(line, file=sys.stderr, flush=True)


def _now_ms() -> int:
    return int(time.time() * 1000)


def append_event(path: Path, event: dict) -> None:
    """One JSON line, written with a single ``write`` to a file opened for appending, so a reader sees
    whole lines only (it ignores a last line without its newline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(event, default=str, allow_nan=False) + "\n"
    with open(path, "a") as handle:
        handle.write(line)


class MlflowWriter:
    """Applies a job's events to MLflow: the one place that writes runs (used by a job writing directly
    and by the relay). ``runs`` maps job keys to MLflow run ids."""

    def __init__(self, uri: str, runs: dict[str, str] | None = None, parents: dict[str, str] | None = None):
        self.uri = uri
        self.runs: dict[str, str] = dict(runs or {})
        self.parents: dict[str, str] = dict(parents or {})  # job key -> its group's parent run
        self._client = None

    @property
    def client(self):
        if self._client is None:
            import logging

            from mlflow.tracking import MlflowClient

            # a new store announces its table migrations at INFO in every job's output; warnings still show
            for name in ("mlflow", "alembic"):
                logging.getLogger(name).setLevel(logging.WARNING)
            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def apply(self, key: str, event: dict) -> str:
        """Write one event of job ``key``; returns the job's run id."""
        kind = event.get("event")
        handlers = {"start": self._start, "epoch": self._epoch, "finish": self._finish, "end": self._end,
                    "stale": self._stale}
        if kind not in handlers:
            raise ValueError(f"unknown tracking event {kind!r}; known: {', '.join(handlers)}")
        if kind not in ("start", "stale") and key not in self.runs:
            raise ValueError(f"tracking event {kind!r} of job {key} before its start event")
        try:
            with _store_lock(self.uri):
                handlers[kind](key, event)
        except Exception as err:  # the store refused this event's content (a bad name, a too long value)
            if getattr(err, "error_code", None) != "INVALID_PARAMETER_VALUE":
                raise
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            raise ValueError(f"MLflow refused the {kind} event: {first}") from None
        return self.runs.get(key)

    def _start(self, key: str, event: dict) -> None:
        experiment_id = self._experiment(event["experiment"])
        run_id = self.runs.get(key)
        if run_id is None and event.get("resume"):
            found = self.client.search_runs([experiment_id], f"tags.job_key = '{key}'", max_results=1)
            run_id = found[0].info.run_id if found else None
        if event.get("group"):  # the parent first: it spans its jobs, so it starts no later than this one
            parent = self._parent(experiment_id, event["group"], event["tags"], event["time"])
            self.parents[key] = parent
            self.client.update_run(parent, status="RUNNING")
        if run_id is not None:  # a resumed job continues its run
            self.client.update_run(run_id, status="RUNNING")
            self.runs[key] = run_id
            return
        tags = {**event["tags"], "job_key": key}
        if event.get("group"):
            tags["mlflow.parentRunId"] = self.parents[key]
        run = self.client.create_run(experiment_id, start_time=event["time"], tags=tags, run_name=event["run_name"])
        self.runs[key] = run.info.run_id

    def _experiment(self, name: str) -> str:
        """Our experiment, created as a model-training one (MLflow 3 would open it in its GenAI view); the store's
        empty "Default" experiment is moved to the trash, so the list shows only what this pipeline wrote."""
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        db = _sqlite_path(self.uri)
        location = (db.parent / "mlartifacts" / name).resolve().as_uri() if db else None
        experiment_id = self.client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
        default = self.client.get_experiment_by_name("Default")
        if (name != "Default" and default is not None and default.lifecycle_stage == "active"
                and not self.client.search_runs([default.experiment_id], max_results=1)):
            self.client.delete_experiment(default.experiment_id)
        return experiment_id

    def _parent(self, experiment_id: str, group: str, tags: dict, start: int) -> str:
        """The group's parent run (one dataset x run x seed), created by its first job at that job's start; the
        group's jobs run one after another, each ending the parent again when it ends."""
        found = self.client.search_runs([experiment_id], f"tags.group = '{group}' and tags.kind = 'group'",
                                        max_results=1)
        if found:
            return found[0].info.run_id
        from mlflow.entities import Param

        identity = {k: tags[k] for k in ("method", "dataset", "seed")}
        parent = self.client.create_run(experiment_id, run_name=group, start_time=start,
                                        tags={"kind": "group", "group": group, **identity})
        self.client.log_batch(parent.info.run_id, params=[Param(k, str(v)) for k, v in identity.items()])
        return parent.info.run_id

    def _epoch(self, key: str, event: dict) -> None:
        from mlflow.entities import Metric

        metrics = [Metric(k, v, event["time"], event["step"]) for k, v in event["metrics"].items()]
        self.client.log_batch(self.runs[key], metrics=metrics)

    def _finish(self, key: str, event: dict) -> None:
        from mlflow.entities import Metric, Param

        run_id = self.runs[key]
        run = self.client.get_run(run_id)
        existing = run.data.params
        params = [Param(k, v) for k, v in event["params"].items() if k not in existing]
        metrics = [Metric(k, v, event["time"], 0) for k, v in event["metrics"].items()]
        if event.get("genotype"):
            self.client.set_tag(run_id, "genotype", event["genotype"])
        for start in range(0, max(len(params), len(metrics)), 100):
            self.client.log_batch(run_id, metrics=metrics[start:start + 100], params=params[start:start + 100])
        artifact = event.get("artifact")
        if artifact is not None and Path(artifact).is_file():
            self.client.log_artifact(run_id, artifact)
        if event.get("table"):
            import pandas as pd

            name, rows = event["table"]
            self.client.log_table(run_id, pd.DataFrame(rows), f"{name}.json")
        self.client.set_terminated(run_id, "FINISHED", end_time=event["time"])
        parent = self.parents.get(key)
        if parent is not None:  # the run's summary, on the row a reader sees first
            summary = [Metric(k, v, event["time"], 0) for k, v in (event.get("summary") or {}).items()]
            # the work its jobs did (their runs' spans), beside the parent's wall-clock span, which also counts
            # the time its jobs waited for a free CPU or GPU between one another
            parent_run = self.client.get_run(parent)
            work = parent_run.data.metrics.get("work_s", 0.0) + (event["time"] - run.info.start_time) / 1000
            summary.append(Metric("work_s", float(f"{work:.4g}"), event["time"], 0))
            self.client.log_batch(parent, metrics=summary)
            if event.get("genotype"):
                self.client.set_tag(parent, "genotype", event["genotype"])
                if "genotype" not in parent_run.data.params:
                    self.client.log_param(parent, "genotype", event["genotype"])
            self.client.set_terminated(parent, "FINISHED", end_time=event["time"])

    def _end(self, key: str, event: dict) -> None:
        run_id = self.runs[key]
        if self.client.get_run(run_id).info.status == "RUNNING":
            self.client.set_terminated(run_id, event["status"], end_time=event["time"])
        parent = self.parents.get(key)
        if parent is not None and self.client.get_run(parent).info.status == "RUNNING":
            self.client.set_terminated(parent, event["status"], end_time=event["time"])

    def _stale(self, key: str, event: dict) -> None:
        """The run of an earlier attempt of a job that died without a word (SIGKILL before its first
        checkpoint): ended as KILLED if it is still RUNNING; nothing if it never reached the store."""
        experiment = self.client.get_experiment_by_name(event["experiment"])
        if experiment is None:
            return
        found = self.client.search_runs([experiment.experiment_id], f"tags.job_key = '{key}'", max_results=1)
        if found and found[0].info.status == "RUNNING":
            self.client.set_terminated(found[0].info.run_id, "KILLED", end_time=event["time"])

    def end_open_runs(self, keys, status: str = "KILLED") -> None:
        """End the runs of jobs that stopped without a word (SIGKILL, a lost node)."""
        for key in keys:
            if key in self.runs:
                self._end(key, {"status": status, "time": _now_ms()})


RELAY_STATE = "relay-state.json"
RELAY_LOCK = "relay.lock"


def relay(journal: Path, uri: str, should_stop: Callable[[], bool], poll: float = 0.5, log=_warn_line) -> int:
    """Write the events appended to ``journal/*.jsonl`` to MLflow as they come, until ``should_stop()``;
    then write what is left and end as KILLED the runs of jobs that stopped without a word (SIGKILL).

    One relay per journal at a time (an exclusive lock; a second one waits). Byte offsets and run ids are
    kept in ``relay-state.json``, so a relay started later continues exactly where the last one stopped.
    Returns the number of events written; a store failure raises after one log line, leaving the unwritten
    events in the journal for the next relay."""
    from lightsnn.core.atomic import write_text_atomic

    journal = Path(journal)
    journal.mkdir(parents=True, exist_ok=True)
    with open(journal / RELAY_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = _relay_state(journal)
        writer = MlflowWriter(uri, state["runs"], state["parents"])
        written = 0

        def save():
            state["runs"], state["parents"] = writer.runs, writer.parents
            write_text_atomic(journal / RELAY_STATE, json.dumps(state, indent=1, sort_keys=True))

        try:
            while True:
                stopping = should_stop()
                count = _drain(journal, writer, state, log, save)
                written += count
                if stopping:
                    break
                if not count:
                    time.sleep(poll)
            silent = sorted(k for k, is_open in state["open"].items() if is_open)
            if silent:
                writer.end_open_runs(silent, "KILLED")
                log(f"ended {len(silent)} run(s) of jobs that stopped without a word as KILLED")
                state["open"] = {k: False for k in state["open"]}
                save()
        except Exception as err:
            save()  # what was written stays written
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            log(f"error: MLflow relay to {uri} stopped ({type(err).__name__}: {first}); the journal keeps the "
                f"unwritten events: 'python -m lightsnn relay --journal {journal} --once' writes them later")
            raise
    return written


def _relay_state(journal: Path) -> dict:
    path = journal / RELAY_STATE
    state = json.loads(path.read_text()) if path.exists() else {}
    return {"offsets": state.get("offsets", {}), "runs": state.get("runs", {}), "open": state.get("open", {}),
            "parents": state.get("parents", {})}


def _drain(journal: Path, writer: MlflowWriter, state: dict, log, save) -> int:
    """Write every whole line appended since the last drain; returns how many events were written."""
    written = 0
    for path in sorted(journal.glob("*.jsonl")):
        offset = state["offsets"].get(path.name, 0)
        if path.stat().st_size <= offset:
            continue
        with open(path, "rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
        whole = chunk[:chunk.rfind(b"\n") + 1]  # a line still being written waits for the next drain
        for number, line in enumerate(whole.splitlines(keepends=True)):
            try:
                event = json.loads(line)
                kind = event["event"]
            except (ValueError, KeyError, TypeError):
                log(f"warning: {path}: skipped a line that is not a tracking event: {line[:120]!r}")
            else:
                try:
                    writer.apply(path.stem, event)  # a store failure propagates: this event stays unwritten
                except ValueError as err:  # an event the writer cannot place: reported, not retried
                    log(f"warning: {path}: skipped event {number} ({err})")
                else:
                    written += 1
                    state["open"][path.stem] = kind in ("start", "epoch")
            offset += len(line)
            state["offsets"][path.name] = offset
            save()
    return written


def _sqlite_path(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):])
    return None


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    db = _sqlite_path(uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{db}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

