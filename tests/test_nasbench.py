"""SpikeNAS-Bench: the reader on the real logs, our network's fidelity to the benchmark's, scores in shards,
correlation and search lookups (small samples, genuine CIFAR-10 images)."""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lightsnn.nasbench import open_benchmark
from lightsnn.nasbench.spikenas_bench import NUM_ARCHS, OPS, genotype_of, id_of, is_valid, read_log
from lightsnn.space.genotype import Genotype, GenotypeError
from lightsnn.space.network import PRESETS, SNASNetwork, count_parameters

SHARED = Path(__file__).resolve().parents[2] / "shared"
BENCH_ROOT = SHARED / "benchmarks" / "spikenas-bench"
pytestmark = pytest.mark.skipif(not (BENCH_ROOT / "CIFAR10").is_dir(),
                                reason="../shared/benchmarks/spikenas-bench is not beside the repo")


@pytest.fixture(scope="module")
def bench_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def bench(bench_cache):
    return open_benchmark("spikenas-bench", str(BENCH_ROOT), bench_cache)


def _config(tmp_path, **benchmark):
    return {"device": "cpu", "data": {"subsets": str(SHARED / "data" / "cifar-subsets"), "cache": str(tmp_path)},
            "benchmark": {"root": str(BENCH_ROOT), "sample": 6, "width": 4, "weight_seeds": 1, "batch_size": 8,
                          "batches": 1, "shards": 2, **benchmark}}


def test_ids_and_genotypes_map_one_to_one_as_the_benchmark_writes_them():
    assert genotype_of(10).cells[0].to_dict() == {"0->2": "conv3x3(th=0.5)"}  # the README's example
    cell = genotype_of(777).cells[0].to_dict()  # 777 = 1*5^5... digits 2,0,1,1,1,0
    assert cell == {"0->1": "conv3x3(th=0.5)", "0->3": "skip", "1->2": "skip", "1->3": "skip"}
    assert all(id_of(genotype_of(i)) == i for i in range(NUM_ARCHS))
    assert sum(is_valid(i) for i in range(NUM_ARCHS)) == 7424
    with pytest.raises(GenotypeError, match="op 'conv1x1' is not in SpikeNAS-Bench's space"):
        id_of(Genotype.from_str("0203 0000 0000 0000"))
    with pytest.raises(GenotypeError, match="not a forward edge"):
        id_of(Genotype.from_str("0001 0000 0000 1000"))
    with pytest.raises(ValueError, match="integer in 0..15624, got 15625"):
        genotype_of(15625)


def test_the_table_holds_the_logs_facts(bench):
    table = bench.table
    valid = table[table["valid"]]
    assert len(table) == NUM_ARCHS and len(valid) == 7424
    assert valid["test_acc"].min() == pytest.approx(81.17) and valid["test_acc"].max() == pytest.approx(89.21)
    assert table.loc[10, "params"] == 17917668 and table.loc[10, "test_acc"] == pytest.approx(10.0)
    assert set(table["epochs"]) == {100, 200}
    first = read_log(BENCH_ROOT / "CIFAR10" / "777" / "train_process.txt")
    assert first["curves"][0] == [19.932, 2.123, 28.772, 1.949]  # the first epoch line, as written
    assert bench.val_acc_at(1)[777] == pytest.approx(28.772, abs=1e-4)
    assert bench.percentile(valid["test_acc"].max()) == 100.0


def test_our_network_has_the_benchmarks_parameter_count(bench):
    rng = np.random.default_rng(0)
    ids = [10, 777, *rng.choice(NUM_ARCHS, size=30, replace=False)]
    ids += [int(i) for i in rng.choice(bench.valid_ids(), size=10, replace=False)]
    with torch.device("meta"):  # shapes only: C=128 networks without allocating 18M weights each
        for arch_id in ids:
            net = SNASNetwork.from_genotype(PRESETS["spikenas-bench"], genotype_of(int(arch_id)))
            assert count_parameters(net) == bench.table.loc[arch_id, "params"], arch_id


def test_malformed_or_missing_files_get_one_line_naming_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="SpikeNAS-Bench not found: .*CIFAR10.* is not a folder"):
        open_benchmark("spikenas-bench", str(tmp_path))
    log = tmp_path / "train_process.txt"
    text = (BENCH_ROOT / "CIFAR10" / "777" / "train_process.txt").read_text()
    log.write_text(text.replace("3.000, 58.476", "3.000, 58..476"))
    with pytest.raises(ValueError, match=r"train_process.txt.*line 7 does not parse"):
        read_log(log)
    log.write_text(text.split("test accuracy")[0])
    with pytest.raises(ValueError, match="lacks test_acc, firing, seconds"):
        read_log(log)
    with pytest.raises(ValueError, match="unknown benchmark 'nas-bench-201'"):
        open_benchmark("nas-bench-201")


def test_scores_in_resumable_shards_then_correlation_and_top_by_score(tmp_path, bench):
    from lightsnn.studies.nasbench import BenchmarkOptions, read_scores, sample_ids, score_shard, write_correlation
    from lightsnn.studies.nasbench_search import top_by_score

    config = _config(tmp_path)
    options = BenchmarkOptions.from_config(config["benchmark"])
    ids = sample_ids(bench, options)
    assert len(ids) == 6 and all(bench.table.loc[i, "valid"] for i in ids)
    first = score_shard(config, 0, tmp_path / "out", log=lambda line: None)
    table = read_scores([first])
    assert list(table["id"]) == ids[0::2]
    assert {"sahd", "sahd_count", "hamming", "params", "conv_edges", "sahd_w0"} <= set(table.columns)
    # a killed shard resumes: an architecture already in the partial file is not scored again
    second_csv = first.with_name(first.name.replace("shard-0", "shard-1"))
    partial = second_csv.with_suffix(".partial.jsonl")
    planted = {"id": ids[1], "sahd": 123.0, "score_seconds": 0.0}
    partial.write_text(json.dumps(planted) + "\n" + '{"id": 99')  # and a line cut by the kill
    from lightsnn.core.atomic import ClaimError, claimed

    with claimed(second_csv), pytest.raises(ClaimError, match="is being written by another run"):
        score_shard(config, 1, tmp_path / "out", log=lambda line: None)  # two jobs on one shard: one is refused
    lines = []
    second = score_shard(config, 1, tmp_path / "out", log=lines.append)
    assert second == second_csv and not partial.exists()
    assert lines == [f"resuming {second.name}: 1 of 3 architectures already scored"]
    scores = read_scores([first, second])
    assert scores.set_index("id").loc[ids[1], "sahd"] == 123.0 and len(scores) == 6
    # the same settings give the same scores
    again = score_shard(config, 0, tmp_path / "again", log=lambda line: None)
    assert read_scores([again]).drop(columns="score_seconds").equals(table.drop(columns="score_seconds"))
    result = write_correlation([first, second], config, tmp_path / "corr")
    rows = {r["score"]: r for r in result["correlations"]}
    assert rows["sahd"]["n"] == 6 and rows["params"]["n"] == 5  # the planted row has no parameter count
    assert rows["val_acc_ep40"]["n"] == 6 and rows["val_acc_ep40"]["kind"] == "training"
    assert 0.0 < rows["val_acc_ep40"]["gpu_hours_per_arch"] < rows["val_acc_ep60"]["gpu_hours_per_arch"]
    assert rows["params+sahd"]["kind"] == "combination" and rows["params+sahd"]["n"] == 6  # params' gap ranks last
    assert "params+conv_edges" not in rows  # by default: params with each data proxy
    assert (tmp_path / "corr" / "scatter.png").read_bytes()[:4] == b"\x89PNG"
    curve = top_by_score(scores, bench, ["params"], [1, 6], draws=50)
    best = bench.table.loc[scores["id"]].sort_values("params").iloc[-1]["test_acc"]
    top = curve[(curve["score"] == "params") & (curve["n"] == 6)]
    assert top["acc_mean"].item() == pytest.approx(best)  # all 6 candidates: always the most parameters
    with pytest.raises(ValueError, match="shard must be in 0..1"):
        score_shard(config, 2, tmp_path / "out")
    # the same shard at another width: the agreement of the two rankings, widths read from settings.json
    from lightsnn.studies.nasbench import write_width_agreement

    wider = score_shard(_config(tmp_path, width=8), 0, tmp_path / "wide", log=lambda line: None)
    agree = write_width_agreement([first], [wider], tmp_path / "agree.csv").set_index("score")
    from lightsnn.proxies.registry import PROXIES

    assert set(agree.index) == {name for name, proxy in PROXIES.items() if proxy.needs_data}
    assert {"sahd", "hamming", "grad_norm", "synflow", "jacob_cov"} <= set(agree.index)
    assert (agree["width"] == 4).all() and (agree["reference_width"] == 8).all() and (agree["n"] == 3).all()
    with pytest.raises(ValueError, match="both at width 4"):
        write_width_agreement([first], [again], tmp_path / "same.csv")


def test_a_test_sample_disjoint_from_the_development_sample_and_rank_aggregation(bench):
    import pandas as pd

    from lightsnn.studies.nasbench import BenchmarkOptions, rank_aggregate, sample_ids

    dev = sample_ids(bench, BenchmarkOptions(sample=200, sample_seed=0))
    test = sample_ids(bench, BenchmarkOptions(sample=200, sample_seed=1, exclude_seed=0))
    plain = sample_ids(bench, BenchmarkOptions(sample=200, sample_seed=1))
    assert len(test) == 200 and not set(test) & set(dev) and set(plain) & set(dev)  # seed 1 alone overlaps
    assert all(bench.table.loc[i, "valid"] for i in test)
    assert sample_ids(bench, BenchmarkOptions(sample=200, sample_seed=1, exclude_seed=0)) == test  # seeded
    with pytest.raises(ValueError, match="exclude_seed=1 equals sample_seed"):
        BenchmarkOptions(sample_seed=1, exclude_seed=1)
    # ranks within the table, ties averaged, a missing value lowest: a = 1, 2, 3, nan -> 0.5, 0.75, 1.0, 0.25
    table = pd.DataFrame({"a": [1.0, 2.0, 3.0, float("nan")], "b": [4.0, 4.0, 1.0, 2.0]})
    assert rank_aggregate(table, ["a", "b"]).tolist() == pytest.approx([(0.5 + 0.875) / 2, (0.75 + 0.875) / 2,
                                                                        (1.0 + 0.25) / 2, (0.25 + 0.5) / 2])
    with pytest.raises(ValueError, match=r"benchmark.combine: 'params\+nope' not allowed"):
        BenchmarkOptions(combine=["params+nope"]).combinations()


def test_a_search_on_the_benchmark_looks_its_pick_up(tmp_path, bench):
    from lightsnn.studies.nasbench_search import search_on_benchmark

    config = _config(tmp_path, search={"snasnet": {"num_search": 3, "batch_size": 8}})
    record = search_on_benchmark(config, "snasnet", 0, progress=False)
    genotype = Genotype.from_str(record["genotype"])
    assert record["id"] == id_of(genotype) and set(op for _, op in genotype.cells[0].ops) <= set(OPS)
    assert record["test_acc"] == bench.table.loc[record["id"], "test_acc"]
    assert record["num_scorings"] == 3 and record["options"]["cell_type"] == "forward"
    assert record["proxy"] == "sahd"
    # a search by another proxy gets its own row in the quality table, paired by seed with random
    import pandas as pd

    from lightsnn.studies.nasbench_search import search_quality

    other = search_on_benchmark(_config(tmp_path, search={"snasnet": {"num_search": 3, "batch_size": 8,
                                                                      "proxy": "patterns"}}), "snasnet", 0)
    assert other["proxy"] == "patterns"
    picks = [dict(record, test_acc=88.0), dict(other, test_acc=87.0)]
    for seed, acc in enumerate([86.5, 87.5]):
        picks.append({"method": "random", "seed": seed, "test_acc": acc, "percentile": 50.0, "valid": True,
                      "search_seconds": 0.0, "num_scorings": 0})
    picks.append(dict(record, seed=1, test_acc=88.5))
    picks.append(dict(other, seed=1, test_acc=86.5))
    quality = search_quality(pd.DataFrame(picks)).set_index("method")
    assert list(quality.index) == ["snasnet", "snasnet[patterns]", "random"]
    assert quality.loc["snasnet", "vs_random_mean_diff"] == pytest.approx(1.25)
    assert quality.loc["snasnet[patterns]", "vs_random_mean_diff"] == pytest.approx(-0.25)
    with pytest.raises(ValueError, match="spikenas is not allowed"):
        search_on_benchmark(_config(tmp_path, methods=["spikenas", "random"]), "random", 0)
    with pytest.raises(ValueError, match=r"\['litesnn'\] not allowed: they search another space"):
        search_on_benchmark(_config(tmp_path, methods=["litesnn", "random"]), "random", 0)


def test_the_cache_of_the_table_is_read_back_equal(tmp_path, bench, bench_cache):
    cached = list(bench_cache.glob("spikenas-bench-*.npz"))
    assert len(cached) == 1
    again = open_benchmark("spikenas-bench", str(BENCH_ROOT), bench_cache)
    ids = bench.table["id"]
    assert again.table.equals(bench.table) and np.array_equal(again.val_curves(ids), bench.val_curves(ids),
                                                              equal_nan=True)
    # a partial benchmark is a benchmark: it holds the ids its folder holds, and says so
    shutil.copytree(BENCH_ROOT / "CIFAR10" / "10", tmp_path / "one" / "CIFAR10" / "10")
    one = open_benchmark("spikenas-bench", str(tmp_path / "one"), tmp_path / "cache")
    assert list(one.table["id"]) == [10] and one.coverage == "1 of the space's 15,625 architectures"
    assert one.val_curves([10])[0, 0] == bench.val_curves([10])[0, 0] and np.isnan(one.val_acc_at(1)[11])
    with pytest.raises(ValueError, match="architecture 11 is not in this benchmark \\(1 of the space's"):
        one.val_curves([11])
    (tmp_path / "one" / "CIFAR10" / "12").mkdir()  # a folder without its log
    with pytest.raises(FileNotFoundError, match="log .*CIFAR10/12/train_process.txt' is missing"):
        open_benchmark("spikenas-bench", str(tmp_path / "one"))


def _write_log(path: Path, arch_id: int, test_acc: float, epochs: int, rates: list[float]) -> None:
    """A log in SpikeNAS-Bench's format (the repository's train_process.txt), with made-up numbers."""
    lines = [f"architecture id: {arch_id}", "model parameters: 12345", "epoch, train_acc, train_loss, val_acc, val_loss"]
    lines += [f"{e}.000, {10 + e:.3f}, 2.000, {5 + e:.3f}, 2.500" for e in range(1, epochs + 1)]
    lines += [f"test accuracy: {test_acc}", "firing rate of layers: " + ",".join(f"{r}" for r in rates),
              "Elapsed time: 1.0hour30.0minute0.0second"]
    path.mkdir(parents=True)
    (path / "train_process.txt").write_text("\n".join(lines) + "\n")


def test_the_cifar100_logs_open_as_a_benchmark_of_their_own(tmp_path):
    """SpikeNAS-Bench's CIFAR-100 logs (a few, in its format, written here) are a benchmark of CIFAR-100: its
    dataset named by the folder, its network the CIFAR-100 classifier (500 outputs) that prices its energy."""
    from lightsnn.nasbench.spikenas_bench import trained_cost
    from lightsnn.nasbench.benchmark_options import BenchmarkOptions

    rates = [0.1] * 15 + [0.2]
    for arch_id, acc in ((3906, 61.5), (7811, 58.25), (10, 1.0)):
        _write_log(tmp_path / "bench" / "CIFAR100" / str(arch_id), arch_id, acc, 4, rates)
    bench = open_benchmark("spikenas-bench", str(tmp_path / "bench"), dataset="cifar100")
    assert bench.dataset == "cifar100" and bench.coverage == "3 of the space's 15,625 architectures"
    assert list(bench.table["id"]) == [10, 3906, 7811] and list(bench.valid_ids()) == [3906, 7811]
    assert bench.network().num_classes * bench.network().num_cluster == 500
    assert bench.network(8).channels == 8
    # the folder itself names the dataset
    assert open_benchmark("spikenas-bench", str(tmp_path / "bench" / "CIFAR100")).dataset == "cifar100"
    np.testing.assert_array_equal(bench.val_curves([7811])[0, :5], [6.0, 7.0, 8.0, 9.0, np.nan])
    assert bench.hours_per_epoch([3906]) == pytest.approx([1.5 / 4])
    costs = bench.trained_costs()
    priced = trained_cost(3906, rates, outputs=500)
    assert costs.loc[3906, "energy_pj"] == pytest.approx(priced["energy_pj"])
    assert costs.loc[3906, "energy_pj"] > trained_cost(3906, rates, outputs=100)["energy_pj"]  # the real output size
    assert costs.loc[3906, "firing_rate"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="no dataset 'dvs128_gesture'; it has cifar10, cifar100"):
        open_benchmark("spikenas-bench", str(tmp_path / "bench"), dataset="dvs128_gesture")
    with pytest.raises(FileNotFoundError, match="CIFAR10' is not a folder"):
        open_benchmark("spikenas-bench", str(tmp_path / "bench"))  # CIFAR-10 logs are not there
    # the studies read the benchmark's own dataset, and images of it, unless told otherwise
    options = BenchmarkOptions(dataset="cifar100")
    assert options.scoring_images() == "cifar100-subset" and BenchmarkOptions().scoring_images() == "cifar10-subset"
    assert "dataset" in options.score_settings() and "dataset" not in BenchmarkOptions().score_settings()
    from lightsnn.nasbench.base import BenchmarkBase

    bare = type("Bare", (BenchmarkBase,), {"name": "bare"})()  # records test accuracy and parameters only
    with pytest.raises(ValueError, match="pricing trained networks needs each architecture's trained_firing_rates, "
                                         "which benchmark 'bare' does not record \\(it has params, test_acc\\)"):
        bare.trained_costs()


def test_score_files_cut_off_or_of_another_kind_are_refused_in_one_line(tmp_path, bench):
    from lightsnn.cli import main
    from lightsnn.studies.nasbench import BenchmarkOptions, read_score_file, sample_ids, score_shard

    good = "id,sahd,params,score_seconds\n3,1.5,100,0.2\n17,2.25,300,0.1\n"
    cases = {
        "cut.csv": (good[:-6], "is cut off or damaged at line 3 (a row with 3 of 4 fields, or no final newline)"),
        "cutnumber.csv": (good[:-3], "is cut off or damaged at line 3"),  # every field there, the last one short
        "noid.csv": ("sahd,score_seconds\n1.5,0.2\n", "has no 'id' and 'score_seconds' columns"),
        "empty.csv": ("", "header missing: the file is empty"),
        "floatid.csv": ("id,score_seconds\n3.5,0.2\n", "has a non-integer id '3.5' at line 2"),
        "textid.csv": ("id,score_seconds\nabc,0.2\n", "has a non-integer id 'abc'"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=re.escape(message)):
            read_score_file(tmp_path / name)
    (tmp_path / "good.csv").write_text(good)
    assert list(read_score_file(tmp_path / "good.csv")["id"]) == [3, 17]
    # agree reads each file's width from its score folder: a CSV outside one is named
    code = main(["benchmark", "agree", "--scores", str(tmp_path / "good.csv"), "--reference", str(tmp_path / "good.csv"),
                 "--out", str(tmp_path / "agree.csv")])
    assert code == 2 and not (tmp_path / "agree.csv").exists()
    # a sample larger than the valid architectures is refused, not written as 'sample100000' holding 7,424
    with pytest.raises(ValueError, match="benchmark.sample=100000 is more than the 7424 valid architectures; give "
                                         "at most 7424, or 0 for all of them"):
        sample_ids(bench, BenchmarkOptions(sample=100000))
    assert len(sample_ids(bench, BenchmarkOptions(sample=7424))) == 7424
    # a shard that fails before scoring (no such image dataset) leaves no score folder behind
    config = _config(tmp_path, images="nosuch")
    with pytest.raises(ValueError, match="unknown dataset 'nosuch'"):
        score_shard(config, 0, tmp_path / "out", log=lambda line: None)
    assert not (tmp_path / "out").exists()
