"""One place per concept: the registries everything else reads, and the recipes of docs/extending.md, followed
for real in a copy of the package (a new proxy and a new search method, each one new file)."""
import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lightsnn.data import DATASET_NAMES, DATASETS, get_dataset_spec
from lightsnn.proxies.registry import PROXIES, PROXY_KINDS, register
from lightsnn.search import METHODS
from lightsnn.space.families import FAMILIES, family_of_text, get_family
from lightsnn.space.genotype import Genotype
from lightsnn.space.litesnn_genotype import LiteGenotype
from lightsnn.training.train import TrainOptions, loss_kind

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lightsnn"


def test_every_method_finds_a_registered_family_and_family_names_are_compared_nowhere():
    assert {m.family for m in METHODS.values()} <= set(FAMILIES)
    assert family_of_text("0302 0030 3003 0000") is FAMILIES[Genotype.family]
    assert family_of_text(" lite:0s1b/b44/k0.5/T2").name == LiteGenotype.family
    assert get_family(None) is FAMILIES[Genotype.family]  # result files written before families were recorded
    with pytest.raises(ValueError, match="unknown architecture family 'resnet'; known: snasnet, litesnn"):
        get_family("resnet")
    compared = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                names = [c.value for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)]
                if set(names) & set(FAMILIES):
                    compared.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not compared, compared


def test_the_dataset_registry_is_the_only_source_of_dataset_names_and_facts():
    assert DATASET_NAMES == tuple(DATASETS)
    assert loss_kind(TrainOptions.from_config({}), "dvs128_gesture") == "mse" == get_dataset_spec("dvs128_gesture").loss
    assert loss_kind(TrainOptions.from_config({}), "cifar10") == "ce"
    assert loss_kind(TrainOptions.from_config({"loss": "mse"}), "digits") == "mse"
    from lightsnn.search.litesnn import LiteSNNOptions

    tiny = [n for n, s in DATASETS.items() if s.scale == "tiny"]
    assert tiny == ["digits", "ndigits"]
    assert LiteSNNOptions().for_dataset("digits").epochs == 8 and LiteSNNOptions().for_dataset("cifar10").epochs == 50
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; known datasets: digits, ndigits"):
        get_dataset_spec("mnist")


def test_every_proxy_declares_a_kind_and_a_wrong_declaration_is_refused():
    assert {p.kind for p in PROXIES.values()} == set(PROXY_KINDS)
    assert all((p.kind == "kernel") == (p.kernel is not None) for p in PROXIES.values())
    with pytest.raises(ValueError, match="kind 'gradient' is not one of"):
        register("x_bad_kind", "x", kind="gradient")(lambda net, genotype, batches: 0.0)
    with pytest.raises(ValueError, match="a kernel proxy \\(only\\) gives kernel="):
        register("x_no_kernel", "x", kind="kernel")(lambda net, genotype, batches: 0.0)
    assert "x_bad_kind" not in PROXIES and "x_no_kernel" not in PROXIES


def test_the_workflow_reads_the_layout_sections_and_methods_from_the_library():
    """The jobs and outputs are the library's (lightsnn.pipeline.targets, lightsnn.core.layout): no rule file spells
    an output's file name, a job list or the config sections a job reads."""
    common = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    assert "from lightsnn.core.layout import" in common and "from lightsnn.pipeline.targets import Targets" in common
    owned = ("/runs", "search.json", "train.json", "evaluate.json", "checkpoint.pt", "table1.csv", "table2.csv",
             "table2.md", "runs.csv", "accuracy_vs_sar.png", "search_time.png", "correlate.json", "replicate.json", "architectures.csv", "correlation.",
             "search_quality", "anytime.md", "front.md", "plane.csv", "scores/shard-", "picks/", "prepared/")
    for rules in [*(ROOT / "workflow" / "rules").glob("*.smk"), ROOT / "workflow" / "Snakefile"]:
        text = rules.read_text()
        spelled = [name for name in owned if name in text]
        assert not spelled, (rules, spelled)
        assert "JOB_SECTIONS" not in text and "BM_KEYS = {" not in text and "subprocess" not in text, rules


PROXY_FILE = '''
import torch

from lightsnn.proxies.registry import register
from lightsnn.space.neurons import sequences


@register("out_energy", "mean |output| over the batches", kind="activity")
@torch.inference_mode()
def out_energy(net, genotype, batches) -> float:
    values = []
    with sequences(net) as run:
        for batch in batches:
            values.append(float(run(batch).abs().mean()))
    return sum(values) / len(values)
'''

METHOD_FILE = '''
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lightsnn.core.options import opt
from lightsnn.search.method_options import ScoringOptions
from lightsnn.search.protocol import Method, SearchContext, SearchRecord, SearchResult, timed
from lightsnn.search.scoring import Scorer, best_index
from lightsnn.space.genotype import Genotype
from lightsnn.space.network import SNASNetwork


@dataclass(frozen=True)
class FirstOfOptions(ScoringOptions):
    section: ClassVar[str] = "search.firstof"
    candidates: int = opt(3, "candidates sampled and scored", min=1)


@timed
def run_firstof(options: FirstOfOptions, ctx: SearchContext) -> SearchResult:
    rng = np.random.default_rng(ctx.seed)
    record = SearchRecord()
    scorer = Scorer(options, ctx.batches(options), record)
    genotypes, scores = [], []
    for _ in range(options.candidates):
        genotype = Genotype.shared(options.search_space().sample_uniform(rng))
        net = SNASNetwork.from_genotype(ctx.net_config, genotype).to(ctx.device)
        scores.append(scorer(net))
        record.add(scores[-1], genotype=genotype.to_str())
        genotypes.append(genotype)
    best = best_index(scores)
    return SearchResult(genotypes[best], scores[best], record, ctx.net_config)


METHOD = Method("firstof", "best of a few sampled cells (a recipe test)", FirstOfOptions, run_firstof,
                position=50)
'''


def test_a_new_proxy_and_a_new_method_are_each_one_file(tmp_path):
    """docs/extending.md's recipes in a copy of the package: the new names reach the registries, the CLI, the
    generated schema, and a search with the new method ranks by the new proxy."""
    shutil.copytree(PACKAGE, tmp_path / "lightsnn", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "lightsnn" / "proxies" / "out_energy.py").write_text(PROXY_FILE)
    (tmp_path / "lightsnn" / "search" / "firstof.py").write_text(METHOD_FILE)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}

    def run(*args):
        proc = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    listed = json.loads(run("-c", "import json, lightsnn; from lightsnn.search import METHODS; "
                                  "from lightsnn.proxies.registry import PROXIES; "
                                  "print(json.dumps([lightsnn.__file__, list(METHODS), PROXIES['out_energy'].kind]))"))
    assert listed[0].startswith(str(tmp_path))
    assert listed[1] == ["snasnet", "lightsnn", "spikenas", "litesnn", "firstof", "random"]
    assert listed[2] == "activity"
    schema = run("-m", "lightsnn", "schema")
    assert "firstof" in schema and "out_energy" in schema
    out = tmp_path / "search.json"
    run("-m", "lightsnn", "search", "--method", "firstof", "--dataset", "digits", "--out", str(out), "--no-progress",
        "--no-tracking", "--config-json", json.dumps({"device": "cpu", "search": {"firstof": {
            "proxy": "out_energy", "batch_size": 8, "candidates": 2}},
            "networks": {"digits": {"channels": 4, "timesteps": 2}}}))
    result = json.loads(out.read_text())
    assert result["method"] == "firstof" and result["family"] == "snasnet" and result["num_scorings"] == 2
    assert result["options"]["proxy"] == "out_energy" and result["score"] > 0
