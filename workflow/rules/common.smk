# Helpers and input functions; every rule file reads from here. What the library owns (every job and output a
# config makes, the run-folder layout, the config sections each job reads, the relay) is imported from it.
import json
import os
import shlex
import sys

import yaml

try:
    import lightsnn  # noqa: F401  (installed beside Snakemake: make setup, environment.yml)
except ImportError:  # a Snakemake of its own: the modules read here need only the standard library
    sys.path.append(os.path.dirname(workflow.basedir))
from lightsnn.core.layout import CHECKPOINT_FILE, EVALUATE_FILE, SEARCH_FILE, TRAIN_DIR, TRAIN_FILE, run_id
from lightsnn.nasbench.benchmark_options import STEP_KEYS as BM_KEYS
from lightsnn.pipeline.relay import WorkflowRelay
from lightsnn.pipeline.targets import Targets


def _schema():
    """The schema generated from the library's registries (importing the registries themselves would cost every
    Snakemake start torch's import)."""
    with open(os.path.join(workflow.basedir, "schemas", "config.schema.yaml")) as handle:
        return yaml.safe_load(handle)


METHOD_NAMES = _schema()["properties"]["workflow"]["properties"]["methods"]["items"]["enum"]
_DATA = _schema()["properties"]["data"]
#: Every job and output of this config (the library's one list of them).
TARGETS = Targets(config, event_datasets=_schema()["properties"]["networks"]["x-event-datasets"])
TARGETS.check_table1(METHOD_NAMES)
WF = config["workflow"]
RESULTS = TARGETS.results
RUNS_DIR = TARGETS.runs_dir
#: A run folder's id and path with wildcards: ``{RUN}/{SEARCH_FILE}`` and so on.
RUN_ID = run_id("{dataset}", "{run}", "{seed}")
RUN = f"{RUNS_DIR}/{RUN_ID}"
PREPARED = TARGETS.prepared("{dataset}")
LOGS = TARGETS.logs
TIMINGS = TARGETS.timings
TABLES = TARGETS.tables
#: Torch threads of every compute job (Snakemake caps them at --cores; profiles may set-threads per rule).
THREADS = WF["threads"]
# Where runs are logged reaches the jobs through the environment, never as a param: pointing the workflow
# at another MLflow store (or renaming the run set) reruns nothing. Local jobs inherit it; SLURM jobs both
# inherit it (sbatch exports the environment) and set it again when their Snakemake reads this file.
os.environ.update(LIGHTSNN_TRACKING=json.dumps(TARGETS.tracking, sort_keys=True))
# With the relay (the default), jobs append their MLflow runs to journal files and one relay process, started
# and stopped by the Snakefile's handlers, writes them to the store: no job pays MLflow's start-up.
RELAYED = all(config["tracking"][k] for k in ("enabled", "relay")) and not config["tracking"]["required"]
if RELAYED:
    os.environ.update(LIGHTSNN_JOURNAL=TARGETS.journal)
RELAY = WorkflowRelay(RESULTS, TARGETS.journal, LOGS, enabled=RELAYED, tracking=TARGETS.tracking)


#: The Snakemake report's caption and category of each kind of output (what a reader opens in it).
REPORT_CAPTIONS = {"table2": ("table2.rst", "Tables", "Table 2"), "table1": ("table1.rst", "Tables", "Table 1"),
                   "every run": ("every_run.rst", "Tables", "Every run")}
BENCHMARK_CAPTIONS = {"correlate": "benchmark.rst", "quality": "benchmark.rst", "anytime": "benchmark_cost.rst",
                      "front": "benchmark_cost.rst"}


def report_outputs():
    """The report job's outputs (Targets.report_outputs), each marked for Snakemake's report."""
    outputs = []
    for kind, paths in TARGETS.report_outputs().items():
        for path in paths:
            if kind == "plots":
                stem = os.path.splitext(os.path.basename(path))[0]
                outputs.append(report(path, caption=f"../report/{stem}.rst", category="Plots"))
            else:
                caption, category, subcategory = REPORT_CAPTIONS[kind]
                outputs.append(report(path, caption=f"../report/{caption}", category=category,
                                      subcategory=subcategory))
    return outputs


def _readable(path, caption, category):
    """Markdown tables and plots go into Snakemake's report; CSV and LaTeX files are for other tools."""
    return report(path, caption=f"../report/{caption}", category=category) if path.endswith((".md", ".png")) else path


def evidence_table_outputs():
    return [_readable(path, "evidence.rst", "Evidence") for path in TARGETS.evidence_tables()]


def benchmark_outputs(step):
    return [_readable(path, BENCHMARK_CAPTIONS[step], "Benchmark") for path in TARGETS.benchmark_outputs(step)]


def data_files(wildcards):
    """The files a dataset's prepare job reads (its inputs): a dry run names the missing ones before scheduling
    anything. None where ``data.download`` fetches them."""
    dataset = wildcards.dataset
    data = {k: (config.get("data") or {}).get(k, prop.get("default")) for k, prop in _DATA["properties"].items()}
    if data["download"] and dataset in _DATA["x-downloadable"]:
        return []
    return [t.format(root=data["root"], subsets=data["subsets"]) for t in _DATA["x-dataset-files"].get(dataset, [])]


def job_settings(kind):
    """A params function: the config sections a ``kind`` job depends on (Targets.job_settings)."""

    def settings(wildcards):
        dataset = wildcards.get("dataset") or wildcards.get("edataset")
        if kind == "replicate":
            return TARGETS.job_settings(kind, dataset, method=evidence_method(wildcards))
        return TARGETS.job_settings(kind, dataset, run=wildcards.get("run"))

    return settings


BM = config["benchmark"]
BM_DIR = TARGETS.benchmark_dir


def benchmark_settings(step):
    """A params function: the device, data and benchmark keys a benchmark ``step`` depends on, as JSON."""
    return lambda wildcards: TARGETS.benchmark_settings(step, wildcards.get("bmethod"), BM_KEYS)


def group_of(wildcards):
    """The MLflow parent run of a dataset x run x seed: its search, train and evaluate runs nest under it."""
    return run_id(wildcards.dataset, wildcards.run, wildcards.seed)


def train_dir(wildcards):
    return f"{RUNS_DIR}/{group_of(wildcards)}/{TRAIN_DIR}"


def checkpoint_of(wildcards):
    return f"{RUNS_DIR}/{group_of(wildcards)}/{CHECKPOINT_FILE}"


def folder_of_first_output(wildcards, output):
    return os.path.dirname(output[0])


EV = config["evidence"]
EVIDENCE = TARGETS.evidence_dir
EVIDENCE_RUNS = TARGETS.evidence_runs()


def evidence_method(wildcards):
    return EVIDENCE_RUNS[wildcards.erun][0]


def evidence_flags(wildcards):
    flags = EVIDENCE_RUNS[wildcards.erun][1]
    return f"--reference-compat {shlex.quote(json.dumps(flags))}" if flags else ""


def evidence_seeds(wildcards):
    return [str(s) for s in EV["seeds"]]


wildcard_constraints:
    dataset="|".join(sorted(set(d for d, _ in TARGETS.run_pairs()) | set(EV["datasets"]))),
    edataset="|".join(sorted(EV["datasets"])),
    erun="|".join(sorted(EVIDENCE_RUNS, key=len, reverse=True)),
    run="|".join(sorted(set(r for _, r in TARGETS.run_pairs()), key=len, reverse=True)),
    seed=r"\d+",
    worker=r"\d+",
    shard=r"\d+",
    bmethod="|".join(BM["methods"]),
