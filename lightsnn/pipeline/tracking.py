"""MLflow tracking: every search, training and evaluation becomes a run.

The store is ``MLFLOW_TRACKING_URI`` if set, else the config's ``tracking.uri``,
else MLflow's SQL store in ``results/mlflow.db``. Runs are grouped in one
experiment per config name and tagged with kind, method, dataset and seed.
The result files are the source of truth and are written before tracking: a
tracking failure (a read-only or damaged store, an unreachable server) is one
warning line and the job still succeeds, unless ``tracking.required`` is true.
SQLite allows one writer at a time, so with a SQLite store every MLflow call of
every process goes through an exclusive file lock beside the database: parallel
Snakemake jobs then neither lose runs nor fail on 'database is locked'.
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
    import sys

    try:
        return log_result(result, config, artifact, extra_metrics)
    except Exception as err:  # any store or server failure: the result file is already written
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        message = f"MLflow tracking to {tracking_uri(config)} failed ({type(err).__name__}: {first})"
        if required(config):
            raise TrackingError(f"{message}; the result file is written, tracking.required is true") from None
        (warn or (lambda line: print(line, file=sys.stderr)))(
            f"warning: {message}; the result file is written (set tracking.required: true to make this an error)")
        return None


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
    """Log one job's result dict (search, train or evaluate) as an MLflow run; returns the run id."""
    if not enabled(config):
        return None
    import time

    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from lightsnn.pipeline.config import check_name

    uri = tracking_uri(config)
    experiment_name = check_name((config or {}).get("name") or "lightsnn")
    kind = result.get("kind", "job")
    tags = {"kind": kind, "method": str(result.get("method")), "dataset": str(result.get("dataset")),
            "seed": str(result.get("seed")), "genotype": str(_genotype_str(result))}
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
    with _store_lock(uri):
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        else:
            db = _sqlite_path(uri)
            location = (db.parent / "mlartifacts" / experiment_name).resolve().as_uri() if db else None
            experiment_id = client.create_experiment(experiment_name, artifact_location=location)
        run = client.create_run(experiment_id, tags=tags, run_name=f"{kind}-{tags['method']}-{tags['dataset']}"
                                                                      f"-s{tags['seed']}")
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        batch_metrics = [Metric(k, v, now, 0) for k, v in metrics.items() if v == v]
        for row in result.get("history", []):
            for key in ("train_loss", "train_acc", "test_loss", "test_acc", "val_acc", "lr"):
                if key in row:
                    batch_metrics.append(Metric(f"epoch.{key}", float(row[key]), now, int(row["epoch"])))
        batch_params = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for start in range(0, max(len(batch_params), len(batch_metrics)), 100):
            client.log_batch(run_id, metrics=batch_metrics[start:start + 100], params=batch_params[start:start + 100])
        if artifact is not None and Path(artifact).is_file():
            client.log_artifact(run_id, str(artifact))
        client.set_terminated(run_id)
    return run_id


def _genotype_str(result: dict) -> str:
    g = result.get("genotype")
    return g.get("str") if isinstance(g, dict) else str(g)
