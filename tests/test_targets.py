"""The library's one list of a config's jobs and outputs (lightsnn.pipeline.targets), which the workflow's rules,
plan and the verbs that write the outputs read."""
import json
from pathlib import Path

from lightsnn.pipeline.config import load_config
from lightsnn.pipeline.targets import BENCHMARK_OUTPUTS, Targets, report_files
from lightsnn.schema import with_defaults

ROOT = Path(__file__).resolve().parents[1]


def _targets(**workflow):
    config = with_defaults({"workflow": workflow, "search": {"lightsnn": {"batch_size": 16}}})
    return Targets(config, event_datasets=["ndigits"])


def test_table1_runs_join_table2s_once_with_their_variant_options():
    targets = _targets(datasets=["digits", "ndigits"], methods=["snasnet", "lightsnn"], seeds=[0, 3],
                       variants={"lightsnn-5op": {"method": "lightsnn", "options": {"space": "snasnet-ops"}}},
                       table1={"dataset": "digits", "random": "snasnet", "pruning": "lightsnn-5op"})
    assert targets.run_pairs() == [("digits", "snasnet"), ("digits", "lightsnn"), ("ndigits", "snasnet"),
                                   ("ndigits", "lightsnn"), ("digits", "lightsnn-5op")]  # snasnet on digits once
    runs = targets.runs()
    assert len(runs) == 5 * 2 and runs[-1].id == "digits/lightsnn-5op/seed3"
    assert (runs[-1].method, runs[-1].options) == ("lightsnn", {"space": "snasnet-ops"})
    assert targets.searches()[0] == "results/runs/digits/snasnet/seed0/search.json"
    assert targets.evaluations()[-1] == "results/runs/digits/lightsnn-5op/seed3/evaluate.json"
    assert targets.table1_flags() == "--table1 digits snasnet lightsnn-5op"
    assert "results/tables/table1.md" in targets.table_outputs()


def test_a_jobs_settings_hold_its_method_with_the_variants_options_over_it():
    targets = _targets(variants={"lightsnn-5op": {"method": "lightsnn", "options": {"space": "snasnet-ops"}}})
    search = json.loads(targets.job_settings("search", "digits", run="lightsnn-5op"))
    assert list(search["search"]) == ["lightsnn"]  # the variant's method only
    assert search["search"]["lightsnn"]["space"] == "snasnet-ops" and search["search"]["lightsnn"]["batch_size"] == 16
    plain = json.loads(targets.job_settings("search", "digits", run="lightsnn"))
    assert plain["search"]["lightsnn"]["space"] == "lightsnn-ops"
    assert "train" not in search
    train = json.loads(targets.job_settings("train", "digits", run="lightsnn-5op"))
    assert "search" not in train and train["device"] == "auto"
    # prepare reads the timesteps of an event dataset only
    assert "networks" not in json.loads(targets.job_settings("prepare", "digits"))


def test_the_report_and_benchmark_files_are_named_once():
    assert report_files(False) == {"table2": ["table2.html", "table2.csv", "table2.md", "table2.tex"],
                                   "every run": ["runs.html", "runs.csv"],
                                   "plots": ["accuracy_vs_sar.png", "search_time.png"]}
    assert report_files(True)["table1"][0] == "table1.html"
    targets = Targets(with_defaults(load_config(ROOT / "config" / "config.yaml")))
    assert targets.benchmark_outputs("front") == [f"results/benchmark/{n}" for n in BENCHMARK_OUTPUTS["front"]]
    assert len(targets.benchmark_picks()) == len(targets.bm["methods"]) * targets.bm["seeds"]
    assert targets.evidence_tables()[-1] == "results/evidence/comparison.png"
