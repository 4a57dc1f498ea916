"""Where a pipeline's results live, written once: the library's verbs and the Snakemake workflow both read this
module (the workflow imports it, so it imports nothing but the standard library).

Layout under a results folder::

    runs/<dataset>/<run>/seed<seed>/   one run folder: a method or a named variant of one, on one dataset and seed
        search.json                    the search result
        train/train.json               the training result; train/checkpoint.pt, train/best.pt beside it
        evaluate.json                  the evaluation of the trained checkpoint

The evidence study's replicate folders hold the same files under ``<run>/seed<seed>/``.
"""
from __future__ import annotations

RUNS = "runs"
SEARCH_FILE = "search.json"
TRAIN_DIR = "train"
TRAIN_FILE = f"{TRAIN_DIR}/train.json"
CHECKPOINT_FILE = f"{TRAIN_DIR}/checkpoint.pt"
BEST_FILE = f"{TRAIN_DIR}/best.pt"
EVALUATE_FILE = "evaluate.json"
#: The MLflow job key of a training that has not finished yet (gone once it has).
TRACKING_KEY_FILE = f"{TRAIN_DIR}/.tracking-key"
#: The report's table of every run (one row per dataset, run and seed), beside table2.*.
RUNS_TABLE = "runs.csv"
#: The same table for reading in a browser (the report shows it inline; a CSV only downloads).
RUNS_TABLE_HTML = "runs.html"
#: The result file of each job kind in a run folder.
RUN_FILES = {"search": SEARCH_FILE, "train": TRAIN_FILE, "evaluate": EVALUATE_FILE}


def file_name(relative: str) -> str:
    """The bare name of a run folder's file (a training's out folder holds ``train.json`` and
    ``checkpoint.pt``)."""
    return relative.rsplit("/", 1)[-1]


def seed_folder(seed) -> str:
    return f"seed{seed}"


def run_id(dataset, run, seed) -> str:
    """``<dataset>/<run>/seed<seed>``: a run folder below ``runs/``, its logs' names and its MLflow group.
    Snakemake passes ``"{dataset}"``-style wildcards to get a pattern."""
    return f"{dataset}/{run}/{seed_folder(seed)}"
