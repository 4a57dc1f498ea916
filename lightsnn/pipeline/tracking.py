"""MLflow tracking: every search, training and evaluation becomes a run.

The store is ``MLFLOW_TRACKING_URI`` if set, else the config's ``tracking.uri``,
else MLflow's SQL store in ``results/mlflow.db``. Runs are grouped in one
experiment per config name and tagged with kind, method, dataset and seed.
The result files are the source of truth and are written before tracking: a
tracking failure (a read-only or damaged store, an unreachable server) is one
warning line and the job still succeeds, unless ``tracking.required`` is true.
SQLite allows one writer at a time, so with a SQLite store every MLflow write of
every process goes through an exclusive file lock beside the database, held only
while it writes: parallel Snakemake jobs then neither lose runs nor fail on
'database is locked', and a long training never blocks the others. A run is
opened when its job starts (:class:`LiveRun`) and a training logs every epoch as
it ends.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Iterator

DEFAULT_DB = "results/mlflow.db"


def tracking_uri(config: dict | None) -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    uri = ((config or {}).get("tracking") or {}).get("uri")
    if uri:
        return uri
    return f"sqlite:///{Path(DEFAULT_DB).resolve()}"


def enabled(config: dict | None) -> bool:
    return bool(((config or {}).get("tracking") or {}).get("enabled", True))


def required(config: dict | None) -> bool:
    return bool(((config or {}).get("tracking") or {}).get("required", False))


class TrackingError(RuntimeError):
    """Logging to MLflow failed while ``tracking.required`` is true."""


def track(result: dict, config: dict | None, artifact: str | Path | None = None, extra_metrics: dict | None = None,
          warn=None) -> str | None:
    """:func:`log_result`, but a failure costs no finished work: one warning line, or with
    ``tracking.required: true`` a :class:`TrackingError`."""
    return _log_once(LiveRun(config, result.get("kind", "job"), result, warn=warn), result, artifact, extra_metrics)


def _log_once(run: "LiveRun", result: dict, artifact, extra_metrics) -> str | None:
    run.start()
    for row in result.get("history", []):
        run.log_epoch(row)
    return run.finish(result, artifact, extra_metrics)  # raises a pending TrackingError


def _warn_line(line: str) -> None:
    import sys

    print(line, file=sys.stderr, flush=True)


class LiveRun:
    """One job's MLflow run, opened when the job starts and written as it goes: a training's epochs appear
    in the UI as they end (step = epoch, real timestamps), a killed job's run ends as KILLED, a failed one as
    FAILED. A resumed training reopens its run (the id is kept in the checkpoint). Runs of one
    dataset x run x seed (``group``) nest under a parent run of that name.

    Tracking never costs finished work: the first failure prints one warning line and turns tracking off
    for the rest of the job, unless ``tracking.required`` is true (then :class:`TrackingError`). With a
    SQLite store the file lock is held only while a call writes.
    """

    def __init__(self, config: dict | None, kind: str, identity: dict | None = None, group: str | None = None,
                 warn=None):
        self.config = config or {}
        self.kind = kind
        identity = identity or {}
        self.tags = {"kind": kind, **{k: str(identity.get(k)) for k in ("method", "dataset", "seed")}}
        if group:
            self.tags["group"] = group
        self.group = group
        self.uri = tracking_uri(config)
        self.warn = warn or _warn_line
        self.run_id: str | None = None
        self.active = enabled(config)
        self.pending: TrackingError | None = None
        self._client = None

    # --- failure policy -------------------------------------------------------------------------------
    def _guard(self, action, *args):
        if not self.active:
            return None
        try:
            return action(*args)
        except Exception as err:  # any store or server failure: the result files are written regardless
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            message = f"MLflow tracking to {self.uri} failed ({type(err).__name__}: {first})"
            self.active = False
            if required(self.config):  # raised by finish(), once the job's result file is written
                self.pending = TrackingError(f"{message}; the result file is written, tracking.required is true")
                return None
            self.warn(f"warning: {message}; the result file is written (set tracking.required: true to make "
                      "this an error)")
            return None

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    # --- the run's life -------------------------------------------------------------------------------
    def start(self, run_id: str | None = None) -> str | None:
        """Open the run (or reopen ``run_id``, a resumed job's); returns its id, or None when not tracking."""
        self.run_id = self._guard(self._start, run_id)
        return self.run_id

    def _start(self, run_id: str | None) -> str:
        from lightsnn.pipeline.config import check_name

        name = check_name(self.config.get("name") or "lightsnn")
        with _store_lock(self.uri):
            if run_id is not None:
                try:
                    run = self.client.get_run(run_id)
                except Exception:
                    run = None
                if run is not None:
                    self.client.update_run(run_id, status="RUNNING")
                    return run_id
            experiment_id = self._experiment(name)
            tags = dict(self.tags)
            if self.group:
                tags["mlflow.parentRunId"] = self._parent(experiment_id)
            label = self.group or f"{self.tags['method']}-{self.tags['dataset']}-s{self.tags['seed']}"
            return self.client.create_run(experiment_id, tags=tags, run_name=f"{label} {self.kind}").info.run_id

    def _experiment(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        db = _sqlite_path(self.uri)
        location = (db.parent / "mlartifacts" / name).resolve().as_uri() if db else None
        return self.client.create_experiment(name, artifact_location=location)

    def _parent(self, experiment_id: str) -> str:
        """The group's parent run, created by its first job (the group's jobs run one after another)."""
        found = self.client.search_runs([experiment_id], f"tags.group = '{self.group}' and tags.kind = 'group'",
                                        max_results=1)
        if found:
            return found[0].info.run_id
        parent = self.client.create_run(experiment_id, run_name=self.group,
                                        tags={"kind": "group", "group": self.group,
                                              **{k: self.tags[k] for k in ("dataset", "seed")}})
        self.client.set_terminated(parent.info.run_id)
        return parent.info.run_id

    def log_epoch(self, row: dict) -> None:
        """One finished epoch: its metrics at step = epoch, stamped now."""
        if self.run_id is not None:
            self._guard(self._log_epoch, row)

    def _log_epoch(self, row: dict) -> None:
        import time

        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), int(row["epoch"])
        metrics = [Metric(f"epoch.{k}", float(v), now, step) for k, v in row.items()
                   if k != "epoch" and isinstance(v, (int, float)) and v == v]
        with _store_lock(self.uri):
            self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, result: dict, artifact: str | Path | None = None, extra_metrics: dict | None = None,
               table: tuple[str, list[dict]] | None = None) -> str | None:
        """Log the job's result (params, final metrics, the result file, ``table`` = (name, rows) as a table
        artifact) and end the run as FINISHED; returns the run id."""
        if self.run_id is not None:
            self._guard(self._finish, result, artifact, extra_metrics, table)
        if self.pending is not None:
            raise self.pending
        return self.run_id if self.active else None

    def _finish(self, result, artifact, extra_metrics, table) -> None:
        import time

        from mlflow.entities import Metric, Param

        params: dict = {}
        for key in ("method", "dataset", "seed", "config_hash", "device", "compat_flags"):
            if key in result:
                params[key] = result[key]
        params["genotype"] = _genotype_str(result)
        _flat("options", result.get("options", {}), params)
        _flat("versions", result.get("versions", {}), params)
        metrics = {k: float(v) for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                   and k not in ("seed", "schema_version")}
        for name, value in (result.get("times") or {}).items():
            metrics[f"time.{name}"] = float(value)
        metrics.update(extra_metrics or {})
        now = int(time.time() * 1000)
        batch_metrics = [Metric(k, v, now, 0) for k, v in metrics.items() if v == v]
        with _store_lock(self.uri):
            existing = self.client.get_run(self.run_id).data.params
            batch_params = [Param(k, str(v)[:6000]) for k, v in params.items() if k not in existing]
            self.client.set_tag(self.run_id, "genotype", str(_genotype_str(result)))
            for start in range(0, max(len(batch_params), len(batch_metrics)), 100):
                self.client.log_batch(self.run_id, metrics=batch_metrics[start:start + 100],
                                      params=batch_params[start:start + 100])
            if artifact is not None and Path(artifact).is_file():
                self.client.log_artifact(self.run_id, str(artifact))
            if table is not None and table[1]:
                import pandas as pd

                self.client.log_table(self.run_id, pd.DataFrame(table[1]), f"{table[0]}.json")
            self.client.set_terminated(self.run_id, "FINISHED")

    def end(self, status: str) -> None:
        """End an unfinished run: ``FAILED`` (an error) or ``KILLED`` (a signal, Ctrl-C)."""
        if self.run_id is not None:
            self._guard(self._end, status)

    def _end(self, status: str) -> None:
        with _store_lock(self.uri):
            if self.client.get_run(self.run_id).info.status == "RUNNING":
                self.client.set_terminated(self.run_id, status)

    def __enter__(self) -> "LiveRun":
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            return
        self.end("KILLED" if issubclass(kind, (KeyboardInterrupt, SystemExit)) else "FAILED")


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


def _flat(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, (list, tuple)) else value


def log_result(result: dict, config: dict | None, artifact: str | Path | None = None,
               extra_metrics: dict | None = None) -> str | None:
    """Log one finished job's result dict (search, train or evaluate) as an MLflow run; returns the run id.
    Errors propagate (see :func:`track` for the forgiving form)."""
    return _log_once(LiveRun(config, result.get("kind", "job"), result, warn=_raise), result, artifact, extra_metrics)


def _raise(line: str) -> None:
    raise RuntimeError(line)


def _genotype_str(result: dict) -> str:
    g = result.get("genotype")
    return g.get("str") if isinstance(g, dict) else str(g)
