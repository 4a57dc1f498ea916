# Helpers and input functions; every rule file reads from here. What the library owns (the run-folder layout,
# the config sections each job reads, the benchmark keys of each step, the method names) is imported from it.
import json
import os
import shlex
import subprocess
import sys

import yaml

try:
    import lightsnn  # noqa: F401  (installed beside Snakemake: make setup, environment.yml)
except ImportError:  # a Snakemake of its own: the modules read here need only the standard library
    sys.path.append(os.path.dirname(workflow.basedir))
from lightsnn.core.layout import (CHECKPOINT_FILE, EVALUATE_FILE, RUNS, RUNS_TABLE, RUNS_TABLE_HTML, SEARCH_FILE,
                                   TRAIN_DIR, TRAIN_FILE, run_id)
from lightsnn.nasbench.options import STEP_KEYS as BM_KEYS
from lightsnn.pipeline.sections import JOB_SECTIONS, NETWORK_KEYS

WF = config["workflow"]
RESULTS = WF["results"]
RUNS_DIR = f"{RESULTS}/{RUNS}"
#: A run folder's path with wildcards: ``{RUN}/{SEARCH_FILE}`` and so on.
RUN_ID = run_id("{dataset}", "{run}", "{seed}")
RUN = f"{RUNS_DIR}/{RUN_ID}"
LOGS = f"{RESULTS}/logs"
BENCH = f"{RESULTS}/benchmarks"
TABLES = f"{RESULTS}/tables"
VARIANTS = WF["variants"]
#: Torch threads of every compute job (Snakemake caps them at --cores; profiles may set-threads per rule).
THREADS = WF["threads"]
# Where runs are logged reaches the jobs through the environment, never as a param: pointing the workflow
# at another MLflow store (or renaming the run set) reruns nothing. Local jobs inherit it; SLURM jobs both
# inherit it (sbatch exports the environment) and set it again when their Snakemake reads this file.
TRACKING = {"name": config["name"], "tracking": config["tracking"]}
os.environ.update(LIGHTSNN_TRACKING=json.dumps(TRACKING, sort_keys=True))
# With the relay (the default), jobs append their MLflow runs to journal files and one relay process, started
# and stopped by the Snakefile's handlers, writes them to the store: no job pays MLflow's start-up.
JOURNAL = f"{RESULTS}/tracking/journal"
RELAYED = all(config["tracking"][k] for k in ("enabled", "relay")) and not config["tracking"]["required"]
if RELAYED:
    os.environ.update(LIGHTSNN_JOURNAL=JOURNAL)
KNOWN_RUNS = list(WF["methods"]) + list(VARIANTS)


def _schema():
    """The schema generated from the library's registries (importing the registries themselves would cost every
    Snakemake start torch's import)."""
    with open(os.path.join(workflow.basedir, "schemas", "config.schema.yaml")) as handle:
        return yaml.safe_load(handle)


METHOD_NAMES = _schema()["properties"]["workflow"]["properties"]["methods"]["items"]["enum"]
#: Datasets framed into T frames per sample (their prepare depends on the network's timesteps).
EVENT_DATASETS = _schema()["properties"]["networks"]["x-event-datasets"]
_DATA = _schema()["properties"]["data"]


def data_files(wildcards):
    """The files a dataset's prepare job reads (its inputs): a dry run names the missing ones before scheduling
    anything. None where ``data.download`` fetches them."""
    dataset = wildcards.dataset
    data = {k: (config.get("data") or {}).get(k, prop.get("default")) for k, prop in _DATA["properties"].items()}
    if data["download"] and dataset in _DATA["x-downloadable"]:
        return []
    return [t.format(root=data["root"], subsets=data["subsets"]) for t in _DATA["x-dataset-files"].get(dataset, [])]


def _check_table1():
    spec = WF["table1"]
    if spec is None:
        return
    for key in ("random", "pruning"):
        if spec[key] not in KNOWN_RUNS and spec[key] not in METHOD_NAMES:
            raise ValueError(f"workflow.table1.{key}={spec[key]!r} is neither a method nor a variant; "
                             f"known: {KNOWN_RUNS}")


_check_table1()


def run_pairs():
    """(dataset, run) pairs: table 2's methods on every dataset, plus table 1's two runs."""
    pairs = [(d, m) for d in WF["datasets"] for m in WF["methods"]]
    if WF["table1"]:
        spec = WF["table1"]
        pairs += [(spec["dataset"], spec["random"]), (spec["dataset"], spec["pruning"])]
    return list(dict.fromkeys(pairs))


def run_dirs():
    return [f"{RUNS_DIR}/{run_id(d, r, s)}" for d, r in run_pairs() for s in WF["seeds"]]


def table_outputs():
    outputs = [f"{TABLES}/table2.{ext}" for ext in ("csv", "md", "tex")]
    outputs += [f"{TABLES}/accuracy_vs_sar.png", f"{TABLES}/search_time.png"]
    if WF["table1"]:
        outputs += [f"{TABLES}/table1.{ext}" for ext in ("csv", "md", "tex")]
    return outputs


def evaluations():
    return [f"{d}/{EVALUATE_FILE}" for d in run_dirs()]


def searches():
    return [f"{d}/{SEARCH_FILE}" for d in run_dirs()]


def method_of(wildcards):
    return VARIANTS[wildcards.run]["method"] if wildcards.run in VARIANTS else wildcards.run


def job_settings(kind):
    """A params function: the config sections a ``kind`` job depends on, narrowed to its dataset and
    method (a variant's options merged over its method's), as sorted JSON for ``--config-json``."""

    def settings(wildcards):
        dataset = wildcards.get("dataset") or wildcards.get("edataset")
        values = {}
        for section in JOB_SECTIONS[kind]:
            if section in ("network", "networks") and kind in NETWORK_KEYS:
                if kind == "prepare" and dataset not in EVENT_DATASETS:
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
                method = evidence_method(wildcards) if kind == "replicate" else method_of(wildcards)
                options = dict((config.get("search") or {}).get(method) or {})
                if kind == "search":
                    options.update(VARIANTS.get(wildcards.run, {}).get("options", {}))
                values["search"] = {method: options}
            elif config.get(section) is not None:
                values[section] = config[section]
        return json.dumps(values, sort_keys=True, separators=(",", ":"))

    return settings


BM = config["benchmark"]
BM_DIR = f"{RESULTS}/benchmark"
def benchmark_settings(step):
    """A params function: the device, data and benchmark keys a benchmark ``step`` depends on, as JSON."""
    def settings(wildcards):
        section = {k: v for k, v in BM.items() if step not in BM_KEYS or k in BM_KEYS[step]}
        if step == "search":
            section["search"] = {wildcards.bmethod: (BM.get("search") or {}).get(wildcards.bmethod) or {}}
        values = {"device": config.get("device"), "data": config.get("data") or {}, "benchmark": section}
        return json.dumps(values, sort_keys=True, separators=(",", ":"))
    return settings


def benchmark_shards():
    return [f"{BM_DIR}/scores/shard-{i}.csv" for i in range(BM["shards"])]


def benchmark_picks():
    return [f"{BM_DIR}/picks/{m}/seed{s}.json" for m in BM["methods"] for s in range(BM["seeds"])]


def group_of(wildcards):
    """The MLflow parent run of a dataset x run x seed: its search, train and evaluate runs nest under it."""
    return run_id(wildcards.dataset, wildcards.run, wildcards.seed)


def train_dir(wildcards):
    return f"{RUNS_DIR}/{group_of(wildcards)}/{TRAIN_DIR}"


def checkpoint_of(wildcards):
    return f"{RUNS_DIR}/{group_of(wildcards)}/{CHECKPOINT_FILE}"


def folder_of_first_output(wildcards, output):
    return os.path.dirname(output[0])


def table1_flags(wildcards):
    spec = WF["table1"]
    return "--table1 " + " ".join(shlex.quote(spec[k]) for k in ("dataset", "random", "pruning")) if spec else ""


EV = config["evidence"]
EVIDENCE = f"{RESULTS}/evidence"
EVIDENCE_PAPER_RUN = "lightsnn"  # the ablation of methods.md §7 turns LightSNN's reference_compat switches on one by one


def evidence_runs():
    """Run name -> (method, reference_compat flags): the compared methods, the baseline and the ablation."""
    runs = {m: (m, []) for m in [*EV["methods"], EV["baseline"]]}
    if EV["ablation"]:
        runs.setdefault(EVIDENCE_PAPER_RUN, (EVIDENCE_PAPER_RUN, []))
    for flag in EV["ablation"]:
        runs[f"{EVIDENCE_PAPER_RUN}-{flag.replace('_', '-')}"] = (EVIDENCE_PAPER_RUN, [flag])
    return runs


EVIDENCE_RUNS = evidence_runs()


def evidence_correlations():
    return [f"{EVIDENCE}/{d}/correlate.json" for d in EV["datasets"]]


def evidence_replicates():
    return [f"{EVIDENCE}/{d}/{RUNS}/{r}/replicate.json" for d in EV["datasets"] for r in EVIDENCE_RUNS]


def evidence_outputs():
    outputs = [f"{EVIDENCE}/{stem}.{ext}" for stem in ("correlation", "noise", "comparison", "ablation")
               for ext in ("csv", "md", "tex")]
    outputs += [f"{EVIDENCE}/comparison.png"]
    outputs += [f"{EVIDENCE}/{d}/{name}" for d in EV["datasets"] for name in ("scatter.png", "architectures.csv")]
    return outputs


def evidence_method(wildcards):
    return EVIDENCE_RUNS[wildcards.erun][0]


def evidence_flags(wildcards):
    flags = EVIDENCE_RUNS[wildcards.erun][1]
    return f"--reference-compat {shlex.quote(json.dumps(flags))}" if flags else ""


def evidence_seeds(wildcards):
    return [str(s) for s in EV["seeds"]]


wildcard_constraints:
    dataset="|".join(sorted(set(d for d, _ in run_pairs()) | set(EV["datasets"]))),
    edataset="|".join(sorted(EV["datasets"])),
    erun="|".join(sorted(EVIDENCE_RUNS, key=len, reverse=True)),
    run="|".join(sorted(set(r for _, r in run_pairs()), key=len, reverse=True)),
    seed=r"\d+",
    shard=r"\d+",
    bmethod="|".join(BM["methods"]),


# --- the MLflow relay (Snakefile: onstart, onsuccess, onerror) ---------------------------------------------
_RELAY = {}


def start_relay():
    """Check the results folder can be written (one line and exit 1 if not: an immutable or read-only folder
    would fail here with a traceback), then start the run's relay in the background; it stops by itself if
    this Snakemake dies."""
    from lightsnn.core.paths import output_folder

    try:
        output_folder(RESULTS, "workflow.results")
    except ValueError as err:
        sys.exit(f"error: {err}")
    if not RELAYED:
        return
    os.makedirs(JOURNAL, exist_ok=True)
    os.makedirs(LOGS, exist_ok=True)
    stop = f"{JOURNAL}/relay.stop"
    if os.path.exists(stop):
        os.remove(stop)
    log = open(f"{LOGS}/mlflow-relay.log", "a")
    command = ["python", "-m", "lightsnn", "relay", "--journal", JOURNAL, "--stop-file", stop,
               "--watch-pid", str(os.getpid())]
    _RELAY.update(process=subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True),
                  stop=stop, log=log)


def print_runs_table_link():
    """Where to look: MLflow 3 opens an experiment on its GenAI page; this address opens the runs table."""
    if not config["tracking"]["enabled"]:
        return
    from lightsnn.pipeline.tracking import runs_table_link, tracking_uri

    try:
        link = runs_table_link(TRACKING)
    except Exception as err:  # a store that cannot be read: the run itself succeeded
        print(f"warning: the MLflow store could not be read for its link ({type(err).__name__})", flush=True)
        return
    if link:
        serve = "" if tracking_uri(TRACKING).startswith("http") else \
            f"mlflow ui --backend-store-uri {tracking_uri(TRACKING)}, then "
        print(f"MLflow: {serve}open {link}", flush=True)


def stop_relay():
    """Let the relay write what is left, so MLflow is complete when Snakemake returns."""
    process = _RELAY.get("process")
    if process is None:
        return
    open(_RELAY["stop"], "w").close()
    try:
        code = process.wait(timeout=600)
    except subprocess.TimeoutExpired:
        process.kill()
        code = "killed after 600 s"
    _RELAY["log"].close()
    if code != 0:
        print(f"warning: the MLflow relay failed ({code}; see {LOGS}/mlflow-relay.log); the runs wait in {JOURNAL}: "
              f"'python -m lightsnn relay --journal {JOURNAL} --once' writes them", flush=True)
