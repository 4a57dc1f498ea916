"""Which jobs a config makes and where every output lives, written once: the Snakemake rules, ``plan`` and the
verbs that write the outputs all read this module. It imports nothing but the standard library and
:mod:`lightsnn.core.layout` (the workflow imports it at every start).

A run is one method, or one named variant of a method, on one dataset and seed: Table 2's runs are every
``workflow.methods`` entry on every ``workflow.datasets`` entry, and Table 1 adds its two runs on its dataset.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from lightsnn.core.layout import EVALUATE_FILE, RUNS, RUNS_TABLE, RUNS_TABLE_HTML, SEARCH_FILE, run_id
from lightsnn.pipeline.sections import JOB_SECTIONS, NETWORK_KEYS

#: A run's shared Optuna study (a journal file) and its workers' result files, when its method has workers.
STUDY_FILE = "study.journal"
WORKERS_DIR = "workers"
#: The formats every table is written in (the report shows the HTML one inline; the others download).
TABLE_FORMATS = ("html", "csv", "md", "tex")
#: The report's figures.
ACCURACY_VS_SAR_PLOT = "accuracy_vs_sar.png"
SEARCH_TIME_PLOT = "search_time.png"

#: The evidence study's files: per dataset, the correlation job's three; per run, the replicate's one; and
#: the tables (each in TABLE_FORMATS) and plot the tables job writes from them.
CORRELATE_FILES = ("correlate.json", "architectures.csv", "scatter.png")
REPLICATE_FILE = "replicate.json"
EVIDENCE_TABLES = ("correlation", "noise", "comparison", "ablation")
EVIDENCE_PLOT = "comparison.png"
#: The run the evidence study's ablation switches released-code behaviours on in, one at a time (methods.md §7).
EVIDENCE_PAPER_RUN = "lightsnn"

#: Each benchmark step's outputs, under results/benchmark/ (the first one is what the step is named by).
BENCHMARK_OUTPUTS: dict[str, tuple[str, ...]] = {
    "correlate": ("correlation.md", "correlation.csv", "scatter.png"),
    "quality": ("search_quality.md", "search_quality.csv", "top_by_score.csv", "search_quality.png"),
    "anytime": ("anytime.md", "anytime.csv", "anytime.png"),
    "front": ("front.md", "plane.csv", "front_picks.csv", "front.png"),
}


def table_files(stem: str) -> list[str]:
    return [f"{stem}.{ext}" for ext in TABLE_FORMATS]


def report_files(table1: bool) -> dict[str, list[str]]:
    """The report's files by what they are: Table 2, the every-run table, the plots and (with a Table 1 spec)
    Table 1. ``python -m lightsnn report`` writes exactly these."""
    files = {"table2": table_files("table2"), "every run": [RUNS_TABLE_HTML, RUNS_TABLE],
             "plots": [ACCURACY_VS_SAR_PLOT, SEARCH_TIME_PLOT]}
    if table1:
        files["table1"] = table_files("table1")
    return files


@dataclass(frozen=True)
class Run:
    """One run folder's job chain (search, train, evaluate): ``run`` is a method or a variant's name."""

    dataset: str
    run: str
    seed: int
    method: str
    options: dict = field(default_factory=dict, compare=False, hash=False)  # a variant's options over its method's

    @property
    def id(self) -> str:
        return run_id(self.dataset, self.run, self.seed)


class Targets:
    """Every job and output a config makes, read from its ``workflow``, ``evidence`` and ``benchmark``
    sections (already validated and given their defaults by the schema)."""

    def __init__(self, config: dict, event_datasets=()):
        self.config = config
        self.wf = config["workflow"]
        self.variants = self.wf.get("variants") or {}
        self.event_datasets = set(event_datasets)
        self.results = self.wf["results"]
        self.runs_dir = f"{self.results}/{RUNS}"
        self.logs = f"{self.results}/logs"
        self.timings = f"{self.results}/timings"  # Snakemake's per-job timings (its benchmark: files)
        self.tables = f"{self.results}/tables"
        self.evidence_dir = f"{self.results}/evidence"
        self.benchmark_dir = f"{self.results}/benchmark"
        self.journal = f"{self.results}/tracking/journal"
        self.tracking = {"name": config.get("name"), "tracking": config.get("tracking")}

    def prepared(self, dataset: str) -> str:
        """The prepare job's report of a dataset (its data checked, event frames cached)."""
        return f"{self.results}/prepared/{dataset}.json"

    # --- the main workflow: Table 2 and Table 1 -----------------------------------------------------------
    def method_of(self, run: str) -> str:
        return self.variants[run]["method"] if run in self.variants else run

    def check_table1(self, methods) -> None:
        """One line when a Table 1 run names neither a method nor a variant."""
        spec = self.wf.get("table1")
        if not spec:
            return
        known = list(self.wf["methods"]) + list(self.variants)
        for key in ("random", "pruning"):
            if spec[key] not in known and spec[key] not in methods:
                raise ValueError(f"workflow.table1.{key}={spec[key]!r} is neither a method nor a variant; "
                                 f"known: {known}")

    def run_pairs(self) -> list[tuple[str, str]]:
        """(dataset, run) pairs: Table 2's runs on every dataset, then Table 1's two, each once."""
        pairs = [(d, m) for d in self.wf["datasets"] for m in self.wf["methods"]]
        spec = self.wf.get("table1")
        if spec:
            pairs += [(spec["dataset"], spec["random"]), (spec["dataset"], spec["pruning"])]
        return list(dict.fromkeys(pairs))

    def runs(self) -> list[Run]:
        return [Run(d, r, int(s), self.method_of(r), dict(self.variants.get(r, {}).get("options") or {}))
                for d, r in self.run_pairs() for s in self.wf["seeds"]]

    def run_dirs(self) -> list[str]:
        return [f"{self.runs_dir}/{run.id}" for run in self.runs()]

    def searches(self) -> list[str]:
        return [f"{d}/{SEARCH_FILE}" for d in self.run_dirs()]

    def evaluations(self) -> list[str]:
        return [f"{d}/{EVALUATE_FILE}" for d in self.run_dirs()]

    def workers(self, run: str) -> int:
        """Worker jobs that share one study before the run's search job writes its result (a method's
        ``workers`` option, e.g. the budgeted search's; 1: the search job alone)."""
        method = self.method_of(run)
        options = {**((self.config.get("search") or {}).get(method) or {}),
                   **(self.variants.get(run, {}).get("options") or {})}
        return int(options.get("workers") or 1)

    def study_file(self, dataset: str, run: str, seed) -> str:
        """The journal the workers of a run share (with the run's search job, which reads it last)."""
        return f"{self.runs_dir}/{run_id(dataset, run, seed)}/{STUDY_FILE}"

    def worker_output(self, dataset: str, run: str, seed, worker) -> str:
        return f"{self.runs_dir}/{run_id(dataset, run, seed)}/{WORKERS_DIR}/worker-{worker}.json"

    def worker_outputs(self, dataset: str, run: str, seed) -> list[str]:
        workers = self.workers(run)
        return [self.worker_output(dataset, run, seed, k) for k in range(workers)] if workers > 1 else []

    def storage_flag(self, dataset: str, run: str, seed) -> str:
        """``--storage <journal>`` for a run with workers, else nothing."""
        return f"--storage {shlex.quote(self.study_file(dataset, run, seed))}" if self.workers(run) > 1 else ""

    def report_outputs(self) -> dict[str, list[str]]:
        return {kind: [f"{self.tables}/{name}" for name in names]
                for kind, names in report_files(bool(self.wf.get("table1"))).items()}

    def table_outputs(self) -> list[str]:
        """What ``snakemake`` builds by default: the report's files."""
        return [path for paths in self.report_outputs().values() for path in paths]

    def table1_flags(self) -> str:
        spec = self.wf.get("table1")
        return "--table1 " + " ".join(shlex.quote(spec[k]) for k in ("dataset", "random", "pruning")) if spec else ""

    # --- the evidence study ---------------------------------------------------------------------------------
    @property
    def ev(self) -> dict:
        return self.config["evidence"]

    def evidence_runs(self) -> dict[str, tuple[str, list[str]]]:
        """Run name -> (method, reference_compat flags): the compared methods, the baseline and the ablation."""
        runs = {m: (m, []) for m in [*self.ev["methods"], self.ev["baseline"]]}
        if self.ev["ablation"]:
            runs.setdefault(EVIDENCE_PAPER_RUN, (EVIDENCE_PAPER_RUN, []))
        for flag in self.ev["ablation"]:
            runs[f"{EVIDENCE_PAPER_RUN}-{flag.replace('_', '-')}"] = (EVIDENCE_PAPER_RUN, [flag])
        return runs

    def correlate_outputs(self, dataset: str) -> list[str]:
        return [f"{self.evidence_dir}/{dataset}/{name}" for name in CORRELATE_FILES]

    def replicate_output(self, dataset: str, run: str) -> str:
        return f"{self.evidence_dir}/{dataset}/{RUNS}/{run}/{REPLICATE_FILE}"

    def evidence_correlations(self) -> list[str]:
        return [self.correlate_outputs(d)[0] for d in self.ev["datasets"]]

    def evidence_replicates(self) -> list[str]:
        return [self.replicate_output(d, r) for d in self.ev["datasets"] for r in self.evidence_runs()]

    def evidence_tables(self) -> list[str]:
        """The tables job's outputs: each table in every text format, then the plot."""
        return [f"{self.evidence_dir}/{name}" for stem in EVIDENCE_TABLES for name in table_files(stem)
                ] + [f"{self.evidence_dir}/{EVIDENCE_PLOT}"]

    def evidence_outputs(self) -> list[str]:
        per_dataset = [path for d in self.ev["datasets"] for path in self.correlate_outputs(d)[1:]]
        return self.evidence_tables() + per_dataset

    # --- the tabular benchmark ------------------------------------------------------------------------------
    @property
    def bm(self) -> dict:
        return self.config["benchmark"]

    def benchmark_outputs(self, step: str) -> list[str]:
        return [f"{self.benchmark_dir}/{name}" for name in BENCHMARK_OUTPUTS[step]]

    def benchmark_shard(self, shard) -> str:
        return f"{self.benchmark_dir}/scores/shard-{shard}.csv"

    def benchmark_pick(self, method: str, seed) -> str:
        return f"{self.benchmark_dir}/picks/{method}/seed{seed}.json"

    def benchmark_shards(self) -> list[str]:
        return [self.benchmark_shard(i) for i in range(self.bm["shards"])]

    def benchmark_picks(self) -> list[str]:
        return [self.benchmark_pick(m, s) for m in self.bm["methods"] for s in range(self.bm["seeds"])]

    # --- what each job depends on ---------------------------------------------------------------------------
    def job_settings(self, kind: str, dataset: str, run: str | None = None, method: str | None = None) -> str:
        """The config sections a ``kind`` job depends on, narrowed to its dataset and method (a variant's options
        merged over its method's), as sorted JSON for ``--config-json``: Snakemake reruns a job when, and only
        when, one of them changes."""
        config = self.config
        method = method or (self.method_of(run) if run else None)
        values: dict = {}
        for section in JOB_SECTIONS[kind]:
            if section in ("network", "networks") and kind in NETWORK_KEYS:
                if kind == "prepare" and dataset not in self.event_datasets:
                    continue
                network = (config.get(section) or {}).get(dataset) if section == "networks" else config.get(section)
                narrowed = {k: v for k, v in (network or {}).items() if k in NETWORK_KEYS[kind]}
                if narrowed:
                    values[section] = {dataset: narrowed} if section == "networks" else narrowed
            elif section == "networks":
                per_dataset = (config.get("networks") or {}).get(dataset)
                if per_dataset:
                    values["networks"] = {dataset: per_dataset}
            elif section == "search":
                options = dict((config.get("search") or {}).get(method) or {})
                if kind == "search" and run is not None:
                    options.update(self.variants.get(run, {}).get("options") or {})
                values["search"] = {method: options}
            elif config.get(section) is not None:
                values[section] = config[section]
        return json.dumps(values, sort_keys=True, separators=(",", ":"))

    def benchmark_settings(self, step: str, method: str | None = None, step_keys: dict | None = None) -> str:
        """The device, data and benchmark keys a benchmark ``step`` depends on (``step_keys``: the benchmark
        options' STEP_KEYS), as JSON."""
        keys = step_keys or {}
        section = {k: v for k, v in self.bm.items() if step not in keys or k in keys[step]}
        if step == "search":
            section["search"] = {method: (self.bm.get("search") or {}).get(method) or {}}
        values = {"device": self.config.get("device"), "data": self.config.get("data") or {}, "benchmark": section}
        return json.dumps(values, sort_keys=True, separators=(",", ":"))
