"""MLflow tracking: every search, training and evaluation becomes a run.

The store is ``MLFLOW_TRACKING_URI`` if set, else the config's ``tracking.uri``,
else MLflow's SQL store in ``results/mlflow.db``. Runs are grouped in one
experiment per config name, tagged with kind, method, dataset and seed, and
nested under a parent run per dataset x run x seed.

A job describes its run as a few events (start, one per epoch, finish or end)
and they reach MLflow one of two ways, with the same result:

- **direct**: the job writes them itself (a command run by hand, or
  ``tracking.relay: false``, or ``tracking.required: true``);
- **relay**: in the workflow (``LIGHTSNN_JOURNAL`` names a folder) the job
  appends each event as one JSON line to its journal file there, and one relay
  process (:func:`lightsnn.pipeline.journal.relay`, started by the workflow) writes them to MLflow as they
  come. The job never imports MLflow, whose SQL store costs about 3 s of
  start-up (SQLAlchemy, Alembic), and the store has a single writer.

The result files are the source of truth and are written before tracking: a
tracking failure (a read-only or damaged store, an unreachable server) is one
warning line and the job still succeeds, unless ``tracking.required`` is true.
SQLite allows one writer at a time, so every write to a SQLite store goes
through an exclusive file lock beside the database, held only while it writes.
"""
from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from lightsnn.core.options import Options, opt
from lightsnn.pipeline.journal import MlflowWriter, _now_ms, _warn_line, append_event

DEFAULT_DB = "results/mlflow.db"
#: Set by the workflow: the folder of the journal files its relay writes to MLflow.
JOURNAL_ENV = "LIGHTSNN_JOURNAL"


@dataclass(frozen=True)
class TrackingOptions(Options):
    """The config's ``tracking`` section."""

    section: ClassVar[str] = "tracking"
    uri: str | None = opt(None, "MLflow tracking URI (default sqlite:///results/mlflow.db)")
    enabled: bool = opt(True, "log runs to MLflow")
    required: bool = opt(False, "a tracking failure fails the job (default: one warning line); jobs then write "
                                "to MLflow themselves")
    relay: bool = opt(True, "in the workflow, jobs append their runs to a journal that one relay process writes "
                            "to MLflow (no MLflow start-up per job, one writer); false: each job writes itself")


#: The experiment of a config without a name (and of a command run without a config): not "Default", MLflow's own.
DEFAULT_EXPERIMENT = "lightsnn-default"


def _options(config: dict | None) -> TrackingOptions:
    return TrackingOptions.from_config((config or {}).get("tracking"))


def tracking_uri(config: dict | None) -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    uri = ((config or {}).get("tracking") or {}).get("uri")
    if uri:
        return uri
    return f"sqlite:///{Path(DEFAULT_DB).resolve()}"


def enabled(config: dict | None) -> bool:
    return _options(config).enabled


def required(config: dict | None) -> bool:
    return _options(config).required


def journal_dir(config: dict | None) -> Path | None:
    """The journal folder this job appends to, or None when it writes to MLflow itself."""
    folder = os.environ.get(JOURNAL_ENV)
    options = _options(config)
    if not folder or not options.relay or options.required:
        return None
    return Path(folder)


#: MLflow 3 opens an experiment on its GenAI page (traces) unless the address asks for the model-training view:
#: its UI keeps the choice in the browser (local storage, default "genai") and reads ``workflowType`` from the
#: address; the experiment's ``mlflow.experimentKind`` tag does not decide it.
RUNS_VIEW = "runs?workflowType=machine_learning"


def runs_table_link(config: dict | None, ui: str = "http://127.0.0.1:5000") -> str | None:
    """The address that opens the config's experiment on its runs table in ``mlflow ui`` (``ui``: where it serves;
    a tracking server serves its own UI), or None when the experiment does not exist yet."""
    from mlflow.tracking import MlflowClient

    from lightsnn.pipeline.config import check_name

    from lightsnn.pipeline.journal import _sqlite_path

    uri = tracking_uri(config)
    db = _sqlite_path(uri)
    if db is not None and not db.is_file():  # no store yet: opening one would create it (with a "Default")
        return None
    experiment = MlflowClient(tracking_uri=uri).get_experiment_by_name(
        check_name((config or {}).get("name") or DEFAULT_EXPERIMENT))
    if experiment is None:
        return None
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else ui
    return f"{base}/#/experiments/{experiment.experiment_id}/{RUNS_VIEW}"


def print_runs_table_link(config: dict | None) -> None:
    """Where to look after a workflow: MLflow 3 opens an experiment on its GenAI page; this address opens the runs
    table (with how to serve a local store)."""
    if not enabled(config):
        return
    try:
        link = runs_table_link(config)
    except Exception as err:  # a store that cannot be read: the run itself succeeded
        print(f"warning: the MLflow store could not be read for its link ({type(err).__name__})", flush=True)
        return
    if link:
        uri = tracking_uri(config)
        serve = "" if uri.startswith("http") else f"mlflow ui --backend-store-uri {uri}, then "
        print(f"MLflow: {serve}open {link}", flush=True)


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


class LiveRun:
    """One job's MLflow run, opened when the job starts and written as it goes: a training's epochs appear
    in the UI as they end (step = epoch, real timestamps), a killed job's run ends as KILLED, a failed one as
    FAILED. The run is found again by its job key (tag ``job_key``): a resumed training passes the key its
    checkpoint kept and continues the same run. Runs of one dataset x run x seed (``group``) nest under a
    parent run of that name. Events go to MLflow directly or through the workflow's journal (module doc).

    Tracking never costs finished work: the first failure prints one warning line and turns tracking off
    for the rest of the job, unless ``tracking.required`` is true (then :class:`TrackingError`).
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
        self.key: str | None = None
        self.run_id: str | None = None  # known when writing directly; the relay assigns it otherwise
        self.active = enabled(config)
        self.journal = journal_dir(config) if self.active else None
        self.pending: TrackingError | None = None
        self._writer: MlflowWriter | None = None
        self.created_ms = _now_ms()  # the job's start: a run opened after the work (evaluate's) still spans it

    @property
    def where(self) -> str:
        """Where the run goes, for the job's log line."""
        if self.journal is not None:
            return f"{self.uri} through the journal {self.journal / (str(self.key) + '.jsonl')}"
        return self.uri

    # --- failure policy -------------------------------------------------------------------------------
    def _guard(self, action, *args):
        if not self.active:
            return None
        try:
            return action(*args)
        except Exception as err:  # any store or server failure: the result files are written regardless
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            message = f"MLflow tracking to {self.where} failed ({type(err).__name__}: {first})"
            self.active = False
            if required(self.config):  # raised by finish(), once the job's result file is written
                self.pending = TrackingError(f"{message}; the result file is written, tracking.required is true")
                return None
            self.warn(f"warning: {message}; the result file is written (set tracking.required: true to make "
                      "this an error)")
            return None

    def _emit(self, event: dict, key: str | None = None) -> None:
        event = {"time": _now_ms(), **event}
        key = key or self.key
        if self.journal is not None:
            append_event(self.journal / f"{key}.jsonl", event)
            return
        if self._writer is None:
            self._writer = MlflowWriter(self.uri)
        run_id = self._writer.apply(key, event)
        if key == self.key:
            self.run_id = run_id

    def close_stale(self, key: str) -> None:
        """End the run an earlier attempt of this job left RUNNING (killed before it could say so) as KILLED."""
        from lightsnn.pipeline.config import check_name

        if key and key != self.key:
            experiment = check_name(self.config.get("name") or DEFAULT_EXPERIMENT)
            self._guard(self._emit, {"event": "stale", "experiment": experiment}, key)

    # --- the run's life -------------------------------------------------------------------------------
    def start(self, key: str | None = None) -> str | None:
        """Open the run, or reopen the run of ``key`` (a resumed job's); returns the job key, or None when
        not tracking."""
        from lightsnn.pipeline.config import check_name

        if not self.active:
            return None
        self.key = key or uuid.uuid4().hex
        label = self.group or f"{self.tags['method']}-{self.tags['dataset']}-s{self.tags['seed']}"
        experiment = check_name(self.config.get("name") or DEFAULT_EXPERIMENT)
        self._guard(self._emit, {"event": "start", "experiment": experiment, "tags": self.tags, "group": self.group,
                                 "run_name": f"{self.kind} {label}", "resume": key is not None,
                                 "time": self.created_ms})
        return self.key if self.active else None

    def log_epoch(self, row: dict) -> None:
        """One finished epoch: its metrics at step = epoch, stamped now."""
        if self.key is None:
            return
        metrics = {f"epoch.{k}": in_table_units(k, v) for k, v in row.items()
                   if k != "epoch" and isinstance(v, (int, float)) and v == v}
        self._guard(self._emit, {"event": "epoch", "step": int(row["epoch"]), "metrics": metrics})

    def finish(self, result: dict, artifact: str | Path | None = None, extra_metrics: dict | None = None,
               table: tuple[str, list[dict]] | None = None) -> str | None:
        """Log the job's result (params, final metrics, the result file, ``table`` = (name, rows) as a table
        artifact) and end the run as FINISHED; returns the run id (the job key when relayed)."""
        if self.key is not None:
            params: dict = {}
            for key in ("method", "dataset", "seed", "config_hash", "device", "compat_flags"):
                if key in result:
                    params[key] = result[key]
            params["genotype"] = _genotype_str(result)
            _flat("options", result.get("options", {}), params)
            _flat("versions", result.get("versions", {}), params)
            metrics = {k: in_table_units(k, v) for k, v in result.items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("seed", "schema_version")}
            for name, value in (result.get("times") or {}).items():
                metrics[f"time.{name}"] = float(value)
            metrics.update(extra_metrics or {})
            self._guard(self._emit, {
                "event": "finish", "genotype": _genotype_str(result),
                "params": {k: str(v)[:6000] for k, v in params.items()},
                "metrics": {k: v for k, v in metrics.items() if v == v},
                "artifact": str(Path(artifact).resolve()) if artifact is not None else None,
                "table": list(table) if table is not None and table[1] else None,
                "summary": group_summary(self.kind, result) if self.group else {}})
        if self.pending is not None:
            raise self.pending
        if not self.active:
            return None
        return self.run_id or self.key

    def end(self, status: str) -> None:
        """End an unfinished run: ``FAILED`` (an error) or ``KILLED`` (a signal, Ctrl-C)."""
        if self.key is not None:
            self._guard(self._emit, {"event": "end", "status": status})

    def __enter__(self) -> "LiveRun":
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            return
        self.end("KILLED" if issubclass(kind, (KeyboardInterrupt, SystemExit)) else "FAILED")


def in_table_units(name: str, value) -> float:
    """A metric in the unit Table 2 prints it in: accuracies (``*acc*``, ``top1``, ``top5``; fractions in the
    result files) in %, everything else as it is, so MLflow's columns and curves read like the table."""
    value = float(value)
    return 100.0 * value if "acc" in name or name in ("top1", "top5") else value


def group_summary(kind: str, result: dict) -> dict:
    """What a job adds to its group's parent run: Table 2's columns from this kind of result, in Table 2's
    units (accuracy in %, energy in µJ) to 4 significant digits, so the runs list reads like the table."""
    from lightsnn.pipeline.report import METRICS, SCALE, _get

    summary = {}
    for column, (source, key) in METRICS.items():
        value = _get(result, key) if source == kind else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            summary[column] = float(f"{float(value) * SCALE.get(column, 1.0):.4g}")  # 46.67, not 46.666666…
    return summary


def ranked_candidates(result: dict) -> list[dict]:
    """A search's candidates for MLflow's table: ranked by score (1 = best; non-finite scores last) and, where a
    candidate is a genotype, the search's pick marked."""
    import math

    rows = [dict(row) for row in result.get("candidates", [])]

    def score(row) -> float:
        value = row.get("score")
        return value if isinstance(value, (int, float)) and math.isfinite(value) else -math.inf

    for rank, row in enumerate(sorted(rows, key=score, reverse=True), 1):
        row["rank"] = rank
    picked = (result.get("genotype") or {}).get("str")
    if any("genotype" in row for row in rows):
        for row in rows:
            row["picked"] = row.get("genotype") == picked
    return rows


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
    if g is None:
        return None
    return g.get("str") if isinstance(g, dict) else str(g)
