"""The evidence study's parts on tiny settings: sampling, correlate, replicate (with resume), the tables."""
import json
import math

import pandas as pd
import pytest

from lightsnn.space.spaces import SearchSpace
from lightsnn.studies.evidence import (
    BASELINES,
    EvidenceOptions,
    run_correlate,
    run_replicate,
    sample_architectures,
    score_variants,
)
from lightsnn.studies.evidence_tables import ablation_table, comparison_table, write_evidence_tables

STUDY = {"num_archs": 4, "weight_seeds": 2, "batch_size": 8, "other_batch_sizes": [16], "repeat": 1,
         "train_epochs": 1, "retrain_archs": 3, "bootstrap": 100}


def test_sampled_architectures_are_distinct_valid_and_canonical():
    archs = sample_architectures(SearchSpace(("zero", "skip", "conv3x3")), 25, seed=1)
    assert len(set(archs)) == 25
    for genotype in archs:
        cell = genotype.cell_for(0)
        assert cell.is_valid() and cell.pruned() == cell and genotype.cell_for(1) == cell
    assert archs == sample_architectures(SearchSpace(("zero", "skip", "conv3x3")), 25, seed=1)
    with pytest.raises(ValueError, match="500 architectures .* is more than the 64 cells of space"):
        sample_architectures(SearchSpace(("zero", "skip"), "forward"), 500, seed=0)


def test_variants_are_fixed_with_the_paper_score_first():
    names = [v.name for v in score_variants(EvidenceOptions())]
    assert names == ["sahd", "sahd_count", "sahd_bn_eval", "sahd_b32", "sahd_b256", "hamming"]
    base = score_variants(EvidenceOptions())[0]
    assert (base.proxy, base.bn_mode, base.batch_size) == ("sahd", "train", None)  # sahd: plain sum, sparsity-aware
    assert [v.proxy for v in score_variants(EvidenceOptions())][1::4] == ["sahd_count", "hamming"]


@pytest.mark.parametrize("change, message", [
    ({"num_archs": 2}, "num_archs must be >= 3"),
    ({"methods": ["darts"]}, "evidence.methods has unknown value"),
    ({"ablation": ["fresh_weights"]}, "evidence.ablation has unknown value"),
    ({"seeds": [0]}, "at least 2 distinct"),
    ({"weight_seed": 3}, "unknown evidence option"),
])
def test_bad_study_options_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        EvidenceOptions.from_config(change)


def test_correlate_writes_the_table_the_statistics_and_the_plot(tmp_path, tiny_config):
    tiny_config["evidence"] = STUDY
    tiny_config["train"] = {"recipe": "quick", "batch_size": 64, "max_batches": 3}
    result = run_correlate("digits", tiny_config, tmp_path, seed=0)
    table = pd.read_csv(tmp_path / "architectures.csv")
    assert len(table) == 4 and table["genotype"].nunique() == 4
    scores = ["sahd", "sahd_count", "sahd_bn_eval", "sahd_b16", "hamming", "sahd_w0", *BASELINES]
    assert [row["score"] for row in result["correlations"]] == scores
    assert set(scores) | {"acc", "sahd_w1"} <= set(table.columns)
    # the base score is the mean over the weight seeds
    assert table["sahd"].to_numpy() == pytest.approx(((table["sahd_w0"] + table["sahd_w1"]) / 2).to_numpy())
    for row in result["correlations"]:
        assert row["n"] == 4
        if math.isfinite(row["tau"]):
            assert -1 <= row["tau_low"] <= row["tau"] <= row["tau_high"] <= 1
    assert (tmp_path / "scatter.png").read_bytes()[:4] == b"\x89PNG"
    assert "Kendall tau" in (tmp_path / "correlation.md").read_text()
    saved = json.loads((tmp_path / "correlate.json").read_text())
    assert saved["noise"]["weight_seeds"] == 2
    assert table["acc_retrain"].notna().sum() == 3 and saved["accuracy_noise"]["n"] == 3


def test_replicate_runs_each_seed_once_and_resumes(tmp_path, tiny_config):
    tiny_config["train"] = {"recipe": "quick", "epochs": 1, "batch_size": 64, "max_batches": 2}
    lines = []
    first = run_replicate("random", "digits", [0, 1], tiny_config, tmp_path, energy_samples=4, log=lines.append)
    assert [r["seed"] for r in first["runs"]] == [0, 1]
    for seed in (0, 1):
        assert (tmp_path / f"seed{seed}" / "evaluate.json").is_file()
    mtime = (tmp_path / "seed0" / "evaluate.json").stat().st_mtime_ns
    lines.clear()
    again = run_replicate("random", "digits", [0, 1], tiny_config, tmp_path, energy_samples=4, log=lines.append)
    assert again["runs"] == first["runs"]
    assert sum("read back" in line for line in lines) == 2
    assert (tmp_path / "seed0" / "evaluate.json").stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="distinct non-negative"):
        run_replicate("random", "digits", [1, 1], tiny_config, tmp_path)


def _run(name, method, accs, genotypes=None, compat=()):
    return {"name": name, "method": method, "dataset": "digits", "runs": [
        {"seed": s, "acc": a, "sar": 0.1, "score": 1.0, "search_seconds": 1.0, "compat_flags": list(compat),
         "genotype": (genotypes or ["g"] * len(accs))[i]} for i, (s, a) in enumerate(zip(range(len(accs)), accs))]}


def test_comparison_pairs_each_method_with_random_by_seed():
    runs = [_run("random", "random", [0.5, 0.6, 0.7, 0.6, 0.5]),
            _run("snasnet", "snasnet", [0.6, 0.7, 0.7, 0.8, 0.5]),
            _run("lightsnn-carry-state", "lightsnn", [0.1] * 5, compat=["carry_state"])]
    numeric, display = comparison_table(runs, "random")
    assert list(numeric["method"]) == ["random", "snasnet"]  # the compat variant belongs to the ablation
    row = numeric.set_index("method").loc["snasnet"]
    assert row["vs_random_mean_diff"] == pytest.approx(0.08)
    assert (row["vs_random_wins"], row["vs_random_losses"]) == (3, 0)
    assert 0 < row["vs_random_t_p"] < 1
    assert display.set_index("method").loc["snasnet", "minus random (pp)"].startswith("+8.00")


def test_ablation_counts_genotypes_shared_with_the_paper_semantics():
    runs = [_run("lightsnn", "lightsnn", [0.5, 0.5, 0.5], ["a", "b", "c"]),
            _run("lightsnn-dead-backward", "lightsnn", [0.4, 0.5, 0.3], ["a", "x", "c"], ["dead_backward"])]
    numeric, _ = ablation_table(runs)
    row = numeric.set_index("run").loc["lightsnn-dead-backward"]
    assert row["same_genotype_as_paper"] == 2 and row["compat"] == "dead_backward"
    assert row["vs_lightsnn_mean_diff"] == pytest.approx(-0.1)


def test_summarize_writes_every_table(tmp_path):
    files = []
    for run in (_run("random", "random", [0.5, 0.6]), _run("lightsnn", "lightsnn", [0.4, 0.7])):
        path = tmp_path / f"{run['name']}.json"
        path.write_text(json.dumps({"kind": "replicate", "schema_version": 1, **run}))  # as replicate writes it
        files.append(str(path))
    study = {"kind": "correlate", "schema_version": 1, "dataset": "digits", "architectures": [{}] * 4, "accuracy": {"mean": 0.5, "std": 0.1, "min": 0.3, "max": 0.6},
             "noise": {"weight_seeds": 2, "mean_within_arch_std": 1.0, "between_arch_std": 9.0,
                       "seed0_vs_seed1_tau": 0.9},
             "accuracy_noise": {"n": 3, "tau": "nan", "tau_low": "nan", "tau_high": "nan", "rho": 1.0,
                                "rho_low": 1.0, "rho_high": 1.0, "mean_abs_diff": 0.01},
             "correlations": [{"dataset": "digits", "score": "sahd", "n": 4, "tau": "nan", "tau_low": "nan",
                               "tau_high": "nan", "rho": 0.5, "rho_low": -0.5, "rho_high": 1.0}]}
    corr_file = tmp_path / "correlate.json"
    corr_file.write_text(json.dumps(study))  # NaN spelt as JSON results spell it
    written = write_evidence_tables([str(corr_file)], files, tmp_path / "out")
    assert "n/a" in (tmp_path / "out" / "correlation.md").read_text()
    assert "1.00 / 9.00" in (tmp_path / "out" / "noise.md").read_text()
    for stem in ("comparison", "ablation"):
        for ext in ("csv", "md", "tex"):
            assert (tmp_path / "out" / f"{stem}.{ext}").is_file()
    assert (tmp_path / "out" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    assert set(written) == {"correlation", "noise", "comparison", "ablation", "plot"}
