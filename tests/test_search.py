import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lightsnn.pipeline.config import method_options, net_config
from lightsnn.pipeline.jobs import run_search
from lightsnn.search.lightsnn import expected_scorings
from lightsnn.search.scoring import best_index
from lightsnn.search.spikenas import analytic_parameters, memory_bytes
from lightsnn.space.genotype import Genotype
from lightsnn.space.network import SNASNetwork, count_parameters
from lightsnn.space.sampling import sample_uniform_canonical, sample_valid, snasnet_draw

ROOT = Path(__file__).resolve().parents[1]


def test_lightsnn_scores_60_times_on_3_ops_and_168_on_5(tiny_config):
    assert expected_scorings(12, 3) == 60 and expected_scorings(12, 5) == 168
    three = run_search("lightsnn", "digits", 0, tiny_config, {"repeat": 1})
    assert three["num_scorings"] == 60
    assert [r["round"] for r in three["details"]["rounds"]] == [0, 1]
    five = run_search("lightsnn", "digits", 0, tiny_config, {"repeat": 1, "space": "snasnet-ops"})
    assert five["num_scorings"] == 168
    for result, space in ((three, {"zero", "conv3x3", "skip"}), (five, None)):
        g = Genotype.from_str(result["genotype"]["str"])
        assert len(g.cells) == 1
        if space:
            assert g.ops_used() <= space
    # each edge lost exactly one op per round
    assert all(len(r["pruned"]) == 12 for r in three["details"]["rounds"])


def test_snasnet_sampler_accepts_40_percent_and_returns_valid_pruned_cells():
    rng = np.random.default_rng(0)
    space = ["zero", "skip", "conv1x1", "conv3x3", "avgpool3x3"]
    draws = [sample_valid(rng, space, "backward") for _ in range(1500)]
    acceptance = len(draws) / sum(n for _, n in draws)
    assert 0.37 < acceptance < 0.43  # methods.md §2.1: exactly 0.5 * 0.8
    for cell, _ in draws[:200]:
        assert cell.is_valid() and cell.pruned() == cell
    # each node pair gets a forward or a backward op, never both
    for _ in range(200):
        m = snasnet_draw(rng, space, "backward").matrix()
        assert all(m[r][c] == "zero" or m[c][r] == "zero" for r in range(4) for c in range(r + 1, 4))
    fwd = snasnet_draw(rng, space, "forward")
    assert not fwd.has_backward


def test_uniform_sampler_is_uniform_over_canonical_cells():
    from itertools import product

    from scipy.stats import chisquare

    from lightsnn.space.genotype import FORWARD_EDGES, CellGenotype

    space = ["zero", "skip", "conv3x3"]
    canonical = {c for ops in product(space, repeat=6)
                 if (c := CellGenotype.from_edges(dict(zip(FORWARD_EDGES, ops)))).is_valid() and c.pruned() == c}

    def counts(draw):
        rng = np.random.default_rng(1)
        seen = {cell: 0 for cell in canonical}
        for _ in range(4000):
            seen[draw(rng)] += 1
        return np.array(list(seen.values()))

    uniform = counts(lambda rng: sample_uniform_canonical(rng, space, "forward"))
    assert (uniform > 0).all()  # every canonical cell is reachable
    assert chisquare(uniform).pvalue > 1e-4
    # SNASNet's own sampler is far from uniform over canonical cells (methods.md §2.1): the test can tell
    snasnet = counts(lambda rng: sample_valid(rng, space, "forward")[0])
    assert chisquare(snasnet).pvalue < 1e-6


def test_memory_model_counts_the_discrete_network_and_filters_before_scoring(tiny_config):
    cfg = net_config("digits", tiny_config)
    g = Genotype.from_str("0303 0030 0003 0000 | 0001 0000 0000 0000")
    assert analytic_parameters(cfg, g) == count_parameters(SNASNetwork.from_genotype(cfg, g))
    assert memory_bytes(cfg, g, 8) == analytic_parameters(cfg, g)
    small = Genotype.from_str("0001 0000 0000 0000")
    budget_mb = memory_bytes(cfg, small, 32) / 1e6 * 1.01  # only skip-only cells fit
    result = run_search("spikenas", "digits", 0, tiny_config, {"mem_budget_mb": budget_mb, "repeat": 1})
    phases = result["details"]["phases"]
    assert sum(p["filtered_by_memory"] for p in phases) > 0
    assert all(c["memory_bytes"] <= budget_mb * 1e6 for c in result["candidates"])
    for phase in (0, 1):  # duplicates skipped within each cell's search
        scored = [c["genotype"] for c in result["candidates"] if c["cell"] == phase]
        assert len(scored) == len(set(scored))
    g = Genotype.from_str(result["genotype"]["str"])
    assert len(g.cells) == 2 and "conv3x3" not in g.ops_used()


@pytest.mark.parametrize("method", ["snasnet", "lightsnn", "spikenas", "random"])
def test_same_seed_gives_the_same_genotype_and_score(tiny_config, method):
    a = run_search(method, "digits", 3, tiny_config, {"repeat": 1} if method != "random" else None)
    b = run_search(method, "digits", 3, tiny_config, {"repeat": 1} if method != "random" else None)
    assert a["genotype"] == b["genotype"] and a["score"] == b["score"]
    assert [c["score"] for c in a["candidates"]] == [c["score"] for c in b["candidates"]]
    Genotype.from_str(a["genotype"]["str"])  # the written string reads back
    if method in ("snasnet", "spikenas"):
        assert Genotype.from_str(a["genotype"]["str"]).cells[0].is_valid()


def test_snasnet_different_seeds_explore_different_candidates(tiny_config):
    a = run_search("snasnet", "digits", 1, tiny_config)
    b = run_search("snasnet", "digits", 2, tiny_config)
    assert [c["genotype"] for c in a["candidates"]] != [c["genotype"] for c in b["candidates"]]
    assert a["num_scorings"] == 6 and a["details"]["accepted"] == 6


def test_nan_and_infinite_scores_are_never_chosen():
    assert best_index([float("nan"), 1.0, float("inf"), 0.5]) == 1
    assert best_index([-1.0, float("-inf"), -0.5]) == 2
    with pytest.raises(RuntimeError, match="all 2 candidates scored NaN"):
        best_index([math.nan, math.nan])


def test_reference_compat_flags_are_checked_per_method(tiny_config):
    opts = method_options("lightsnn", tiny_config, {"reference_compat": True})
    assert opts.compat() == {"dead_backward", "carry_state", "count_normalize", "fresh_batches", "trained_logits"}
    with pytest.raises(ValueError, match="do not apply here"):
        method_options("snasnet", tiny_config, {"reference_compat": ["dead_backward"]})
    with pytest.raises(ValueError, match="unknown option"):
        method_options("snasnet", tiny_config, {"num_serch": 3})
    with pytest.raises(ValueError, match="bn_mode='test' is not allowed"):
        method_options("snasnet", tiny_config, {"bn_mode": "test"})


def test_reference_compat_changes_the_lightsnn_scores(tiny_config):
    paper = run_search("lightsnn", "digits", 0, tiny_config, {"repeat": 1})
    compat = run_search("lightsnn", "digits", 0, tiny_config, {"repeat": 1, "reference_compat": True})
    assert compat["compat_flags"] == ["carry_state", "count_normalize", "dead_backward", "fresh_batches",
                                      "trained_logits"]
    assert [c["score"] for c in paper["candidates"]] != [c["score"] for c in compat["candidates"]]


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "lightsnn", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_cli_writes_a_result_json(tmp_path, tiny_config):
    import yaml
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_config))
    out = tmp_path / "out" / "result.json"
    proc = _cli("search", "--method", "snasnet", "--dataset", "digits", "--seed", "5", "--config", str(config),
                "--out", str(out), "--num-search", "3", "--repeat", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["method"] == "snasnet" and data["num_scorings"] == 3 and data["seed"] == 5
    assert data["options"]["num_search"] == 3
    assert set(data["times"]) == {"search_seconds", "compute_seconds", "data_seconds", "dataset_load_seconds"}
    assert Genotype.from_json(data["genotype"]["json"]).to_str() == data["genotype"]["str"]
    assert len(data["genotype"]["hash"]) == 10 and len(data["config_hash"]) == 12
    assert "spikingjelly" in data["versions"]
    assert not list(out.parent.glob(".*.tmp"))


def test_cli_errors_are_one_clear_line(tmp_path):
    proc = _cli("search", "--method", "lightsnn", "--dataset", "digits", "--out", "x.json", "--num-search", "3",
                cwd=tmp_path)
    assert proc.returncode == 2 and "--num-search is not an option of method 'lightsnn'" in proc.stderr
    proc = _cli("search", "--method", "lightsnn", "--dataset", "cifar1000", "--out", "x.json", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown dataset 'cifar1000'; known datasets: digits" in proc.stderr
    proc = _cli("search", "--method", "random", "--dataset", "digits", "--seed", "-1", "--out", "x.json",
                cwd=tmp_path)
    assert proc.returncode == 2 and "seed must be a non-negative integer" in proc.stderr
    assert not (tmp_path / "x.json").exists()
    proc = _cli("search", "--help", cwd=tmp_path)
    assert proc.returncode == 0 and "--num-search" in proc.stdout and "dead_backward" in proc.stdout


@pytest.mark.parametrize("extra", [{}, {"space": "snasnet-ops", "max_chunk": 7},
                                   {"separate_cell_alphas": True, "reference_compat": ["count_normalize"]},
                                   {"proxy": "sahd_layer"}, {"proxy": "hamming"}])
def test_lightsnn_stacked_scoring_gives_the_one_at_a_time_scores(tiny_config, extra):
    alone = run_search("lightsnn", "digits", 0, tiny_config, {"stacked": False, **extra})
    stacked = run_search("lightsnn", "digits", 0, tiny_config, extra)
    assert alone["details"]["scoring"] == "one at a time" and stacked["details"]["scoring"] == "stacked"
    if "max_chunk" in extra:
        assert stacked["details"]["chunk"] == extra["max_chunk"]
    assert [c["score"] for c in stacked["candidates"]] == pytest.approx([c["score"] for c in alone["candidates"]],
                                                                        rel=1e-9)
    assert stacked["genotype"]["str"] == alone["genotype"]["str"]
    assert stacked["score"] == pytest.approx(alone["score"], rel=1e-9)


@pytest.mark.parametrize("extra", [{"bn_mode": "train"}, {"reference_compat": ["carry_state"]},
                                   {"reference_compat": ["fresh_batches"]}])
def test_lightsnn_scores_one_at_a_time_where_stacking_would_change_the_scores(tiny_config, extra):
    result = run_search("lightsnn", "digits", 0, tiny_config, {"repeat": 1, **extra})
    assert result["details"]["scoring"] == "one at a time"


def test_a_search_space_is_one_object_that_samples_and_checks():
    from lightsnn.space.spaces import SearchSpace

    space = SearchSpace.of("lightsnn-ops")
    assert space.ops == ("zero", "conv3x3", "skip") and space.cell_type == "backward" and len(space.edges) == 12
    assert SearchSpace.of(space) is space
    forward = SearchSpace(("zero", "skip", "conv3x3"), "forward")
    assert len(forward.edges) == 6
    # its samplers are the tested ones, same draws for the same generator
    assert forward.sample_uniform(np.random.default_rng(3)) == \
        sample_uniform_canonical(np.random.default_rng(3), ["zero", "skip", "conv3x3"], "forward")
    assert space.sample_valid(np.random.default_rng(4)) == \
        sample_valid(np.random.default_rng(4), ["zero", "conv3x3", "skip"], "backward")
    space.check(Genotype.from_str("0301 0030 3003 0000"))
    with pytest.raises(ValueError, match=r"op 'conv1x1' is not in the space \['zero', 'conv3x3', 'skip'\]"):
        space.check(Genotype.from_str("0302 0000 0000 0000"))
    with pytest.raises(ValueError, match="edge 2->0 is not in a forward cell"):
        forward.check(Genotype.from_str("0301 0000 1000 0000"))
    with pytest.raises(ValueError, match="unknown cell type 'sideways'"):
        SearchSpace(("zero", "skip"), "sideways")


def test_the_proxy_option_ranks_candidates_by_another_registered_score(tiny_config):
    """``proxy: sahd_count`` is the released codes' normalisation (the count_normalize switch) under another
    name: the same candidates get the same scores; another kernel proxy scores the same candidates differently."""
    options = {"num_search": 4, "batch_size": 8, "repeat": 1}
    counted = run_search("snasnet", "digits", 0, tiny_config, {**options, "proxy": "sahd_count"})
    switched = run_search("snasnet", "digits", 0, tiny_config, {**options, "reference_compat": ["count_normalize"]})
    plain = run_search("snasnet", "digits", 0, tiny_config, options)
    hamming = run_search("snasnet", "digits", 0, tiny_config, {**options, "proxy": "hamming_layer"})
    genotypes = [c["genotype"] for c in plain["candidates"]]
    assert [c["genotype"] for c in hamming["candidates"]] == genotypes == [c["genotype"] for c in counted["candidates"]]
    assert [c["score"] for c in counted["candidates"]] == [c["score"] for c in switched["candidates"]]
    assert all(a["score"] != b["score"] for a, b in zip(plain["candidates"], hamming["candidates"]))
    assert plain["options"]["proxy"] == "sahd" and hamming["options"]["proxy"] == "hamming_layer"
    with pytest.raises(ValueError, match="count_normalize divides the plain kernel sum"):
        run_search("snasnet", "digits", 0, tiny_config, {"proxy": "sahd_layer", "reference_compat": True})
    with pytest.raises(ValueError, match="proxy='params' is not allowed"):
        run_search("snasnet", "digits", 0, tiny_config, {"proxy": "params"})


def test_searches_rank_by_proxies_outside_the_kernel_family_one_candidate_at_a_time(tiny_config):
    """Any data proxy of the registry can rank candidates: the same candidates as with SAHD, scored by the proxy
    (gradients through the surrogates for grad_norm, with the batches' labels), the best one picked, the same
    scores when run again; LightSNN then scores one at a time; the kernel loop's compat flags are refused."""
    options = {"num_search": 4, "batch_size": 8, "repeat": 2}
    plain = run_search("snasnet", "digits", 0, tiny_config, options)
    for proxy in ("grad_norm", "patterns"):
        result = run_search("snasnet", "digits", 0, tiny_config, {**options, "proxy": proxy})
        assert [c["genotype"] for c in result["candidates"]] == [c["genotype"] for c in plain["candidates"]]
        scores = [c["score"] for c in result["candidates"]]
        assert all(isinstance(s, float) and s > 0 for s in scores) and scores != [c["score"] for c in plain["candidates"]]
        assert result["score"] == max(scores) and result["options"]["proxy"] == proxy
        if proxy == "patterns":
            assert all(s <= 1.0 for s in scores)  # a share of distinct spike codes
        again = run_search("snasnet", "digits", 0, tiny_config, {**options, "proxy": proxy})
        assert [c["score"] for c in again["candidates"]] == scores
    light = run_search("lightsnn", "digits", 0, tiny_config, {"repeat": 1, "proxy": "jacob_cov"})
    assert light["details"]["scoring"] == "one at a time" and light["options"]["proxy"] == "jacob_cov"
    with pytest.raises(ValueError, match=r"reference_compat \['carry_state'\] applies to the kernel proxies only, "
                                         "not to proxy 'grad_norm'"):
        run_search("snasnet", "digits", 0, tiny_config, {"proxy": "grad_norm", "reference_compat": ["carry_state"]})
