"""One place per concept: the registries everything else reads, and the five recipes of docs/extending.md,
followed for real in a copy of the package (a proxy, a search method, a dataset, a tabular benchmark and an
architecture family)."""
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
             "search_quality", "anytime.md", "front.md", "plane.csv", "scores/shard-", "picks/", "prepared/",
             "workers/", "study.journal")
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
    assert listed[1] == ["snasnet", "lightsnn", "spikenas", "litesnn", "budgeted", "firstof", "random"]
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


def _copy_of_the_package(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "lightsnn", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}

    def run(*args, code=0):
        proc = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert proc.returncode == code, proc.stderr[-3000:]
        return proc.stdout if code == 0 else proc.stderr

    return tmp_path / "lightsnn", run


def _add_entry(registry: Path, entry: str) -> None:
    """The recipe's 'one entry': a line added at the end of the registry's list."""
    text = registry.read_text()
    end = text.index("    ]\n}\n")
    registry.write_text(text[:end] + entry + text[end:])


DATASET_FILE = '''
"""corners: 8x8 grey images, a bright 3x3 square in one of four corners (the class), read from one .npz."""
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from lightsnn.data import DataOptions, Splits


def load(options: DataOptions, timesteps: int, progress) -> Splits:
    path = Path(options.root) / "corners.npz"
    if not path.is_file():
        raise FileNotFoundError(f"corners: {path} is missing; put corners.npz (x_train, y_train, x_test, y_test) "
                                "in data.root")
    with np.load(path) as data:
        def split(x, y):
            return TensorDataset(torch.from_numpy(x[:, None].astype(np.float32)), torch.from_numpy(y.astype(np.int64)))
        return Splits(split(data["x_train"], data["y_train"]), split(data["x_test"], data["y_test"]))
'''

DATASET_ENTRY = '''        DatasetSpec("corners", "8x8 squares in one of four corners (a recipe test)", "digits", False,
                    _lazy("corners", "load"), scale="tiny", files=("{root}/corners.npz",), sizes=(64, 32)),
'''


def test_a_new_dataset_is_a_loader_module_and_one_entry(tmp_path):
    """docs/extending.md's dataset recipe in a copy of the package: the CLI, the schema, a search and a training
    take the new name; a missing file is one line naming it."""
    import numpy as np

    package, run = _copy_of_the_package(tmp_path)
    (package / "data" / "corners.py").write_text(DATASET_FILE)
    _add_entry(package / "data" / "__init__.py", DATASET_ENTRY)
    rng = np.random.default_rng(0)

    def images(n):
        labels = rng.integers(0, 4, n)
        x = rng.random((n, 8, 8)) * 0.2
        for i, c in enumerate(labels):
            r, k = (0, 5)[c // 2], (0, 5)[c % 2]
            x[i, r:r + 3, k:k + 3] += 1.0
        return x, labels

    config = {"device": "cpu", "data": {"root": str(tmp_path / "data")}, "search": {"snasnet": {
        "num_search": 2, "batch_size": 8}}, "networks": {"corners": {"channels": 4, "timesteps": 2}}}
    search = ["-m", "lightsnn", "search", "--method", "snasnet", "--dataset", "corners", "--out",
              str(tmp_path / "search.json"), "--no-progress", "--no-tracking", "--config-json", json.dumps(config)]
    missing = run(*search, code=2)
    assert "corners.npz is missing; put corners.npz" in missing and len(missing.strip().splitlines()) == 1
    (tmp_path / "data").mkdir()
    (x_train, y_train), (x_test, y_test) = images(64), images(32)
    np.savez(tmp_path / "data" / "corners.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    assert "corners" in run("-m", "lightsnn", "schema")
    run(*search)
    assert json.loads((tmp_path / "search.json").read_text())["dataset"] == "corners"
    run("-m", "lightsnn", "train", "--search", str(tmp_path / "search.json"), "--dataset", "corners",
        "--out", str(tmp_path / "train"), "--no-progress", "--no-tracking", "--config-json",
        json.dumps({**config, "train": {"recipe": "quick", "epochs": 1, "batch_size": 16}}))
    trained = json.loads((tmp_path / "train" / "train.json").read_text())
    assert trained["dataset"] == "corners" and trained["loss"] == "ce" and 0 <= trained["final_test_acc"] <= 1


BENCHMARK_FILE = '''
"""toybench: a few cells of SpikeNAS-Bench's space with their test accuracy and parameters only, from one JSON
file (a recipe test: a benchmark that records no curves, costs or firing rates)."""
import json
from pathlib import Path

import pandas as pd

from lightsnn.nasbench.base import BenchmarkBase
from lightsnn.nasbench.spikenas_bench import NUM_ARCHS, OPS, SPACE_NAME, genotype_of, id_of, is_valid
from lightsnn.space.spaces import SearchSpace


class ToyBench(BenchmarkBase):
    name = "toybench"
    space_name = SPACE_NAME
    space = SearchSpace(OPS, "forward")
    space_size = NUM_ARCHS

    def __init__(self, table: pd.DataFrame, dataset: str):
        self.table = table.set_axis(table["id"].to_numpy(), axis=0)
        self.dataset, self.preset = dataset, "spikenas-bench"

    @classmethod
    def open(cls, root, cache_dir=None, dataset="cifar10"):
        path = Path(root) / "toybench.json"
        if not path.is_file():
            raise FileNotFoundError(f"toybench: {path} is missing")
        table = pd.DataFrame(json.loads(path.read_text()))
        table["valid"] = [is_valid(int(i)) for i in table["id"]]
        return cls(table, dataset)

    def genotype(self, arch_id):
        return genotype_of(arch_id)

    def id_of(self, genotype):
        return id_of(genotype)
'''

BENCHMARK_ENTRY = '''        BenchmarkSpec("toybench", "a few cells with test accuracy and parameters (a recipe test)", "data/toybench",
                      "toybench", "ToyBench"),
'''


@pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "cifar-subsets").is_dir(),
                    reason="../shared/data/cifar-subsets (the scoring images) is not beside the repo")
def test_a_new_tabular_benchmark_is_a_reader_module_and_one_entry(tmp_path):
    """docs/extending.md's benchmark recipe in a copy of the package: the benchmark scores and correlates by its
    name, and a study that needs a field it does not record is refused in one line naming the field."""
    from lightsnn.nasbench.spikenas_bench import is_valid

    package, run = _copy_of_the_package(tmp_path)
    (package / "nasbench" / "toybench.py").write_text(BENCHMARK_FILE)
    _add_entry(package / "nasbench" / "__init__.py", BENCHMARK_ENTRY)
    ids = [i for i in range(3000, 5000) if is_valid(i)][:6]
    rows = [{"id": i, "test_acc": 80.0 + k, "params": 1000 * (k + 1), "epochs": 10, "seconds": 60.0}
            for k, i in enumerate(ids)]
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "toybench.json").write_text(json.dumps(rows))
    config = {"device": "cpu", "data": {"subsets": str(ROOT.parent / "shared" / "data" / "cifar-subsets"),
                                        "cache": str(tmp_path / "cache")},
              "benchmark": {"name": "toybench", "root": str(tmp_path / "toy"), "sample": 0, "width": 4,
                            "weight_seeds": 1, "batch_size": 8, "batches": 1, "shards": 1,
                            "proxies": ["params", "sahd"], "bootstrap": 100}}
    (tmp_path / "c.yaml").write_text(json.dumps(config))
    scores = tmp_path / "scores" / "shard-0.csv"
    run("-m", "lightsnn", "benchmark", "score", "--config", str(tmp_path / "c.yaml"), "--shard", "0",
        "--csv", str(scores), "--no-progress")
    refused = run("-m", "lightsnn", "benchmark", "correlate", "--config", str(tmp_path / "c.yaml"), "--scores",
                  str(scores), "--out", str(tmp_path / "corr"), code=2)
    assert "the early-stopping baselines (benchmark.epochs; [] leaves them out) needs each architecture's " \
           "val_curve, which benchmark 'toybench' does not record (it has params, test_acc)" in refused
    run("-m", "lightsnn", "benchmark", "correlate", "--config", str(tmp_path / "c.yaml"), "--scores", str(scores),
        "--epochs", "[]", "--out", str(tmp_path / "corr"))
    table = (tmp_path / "corr" / "correlation.csv").read_text()
    assert "params" in table and "sahd" in table  # params rises with accuracy here: tau 1


FAMILY_FILE = '''
"""chain: a plain stack of LIF convs whose widths are searched (a recipe test of a new architecture family)."""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch.nn as nn

from lightsnn.space.neurons import make_lif


@dataclass(frozen=True)
class ChainGenotype:
    widths: tuple[int, ...]
    family: ClassVar[str] = "chain"
    PREFIX: ClassVar[str] = "chain:"

    def to_str(self) -> str:
        return self.PREFIX + "-".join(str(w) for w in self.widths)

    @classmethod
    def from_str(cls, text: str) -> "ChainGenotype":
        text = text.strip()
        if not text.startswith(cls.PREFIX):
            raise ValueError(f"not a chain genotype: {text!r}")
        return cls(tuple(int(w) for w in text[len(cls.PREFIX):].split("-")))

    def to_json(self) -> dict:
        return {"widths": list(self.widths)}

    @classmethod
    def from_json(cls, data: dict) -> "ChainGenotype":
        return cls(tuple(int(w) for w in data["widths"]))

    def short_hash(self) -> str:
        return hashlib.sha256(self.to_str().encode()).hexdigest()[:8]

    def canonical(self) -> "ChainGenotype":
        return self

    def require_connected(self) -> None:
        return None


@dataclass(frozen=True)
class ChainNetConfig:
    in_channels: int
    image_size: int
    num_classes: int
    timesteps: int
    SIZE_OPTIONS: ClassVar[str] = "network.timesteps"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "network") -> "ChainNetConfig":
        return cls(**{k: int(data[k]) for k in ("in_channels", "image_size", "num_classes", "timesteps")})

    def memory_floor(self, batch_size: int, training: bool) -> int:
        return 4 * batch_size * self.in_channels * self.image_size ** 2


class ChainNet(nn.Module):
    """[B, C, H, W] -> the class scores averaged over T timesteps of the same image."""

    def __init__(self, config: ChainNetConfig, genotype: ChainGenotype):
        super().__init__()
        self.config = config
        layers, channels = [], config.in_channels
        for width in genotype.widths:
            layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), make_lif()]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, config.num_classes)

    def forward(self, x):
        out = 0
        for _ in range(self.config.timesteps):
            out = out + self.head(self.features(x).mean((2, 3)))
        return out / self.config.timesteps
'''

FAMILY_IMPORT = "from lightsnn.space.chain import ChainGenotype, ChainNet, ChainNetConfig\n"

FAMILY_ENTRY = '''        Family("chain", "a stack of LIF convs of searched widths (a recipe test)", ChainGenotype,
               ChainNetConfig.from_dict, lambda config, genotype, search: (ChainNet(config, genotype), None),
               lambda search: f"{len(search['genotype']['json']['widths'])} LIF convs", lambda search: {},
               prefix=ChainGenotype.PREFIX),
'''

FAMILY_METHOD_FILE = '''
"""chainsearch: the best of a few sampled chains by their firing rate at initialisation (a recipe test)."""
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from lightsnn.core.options import opt
from lightsnn.proxies.engine import score_proxies
from lightsnn.search.method_options import MethodOptions
from lightsnn.search.protocol import Method, SearchContext, SearchRecord, SearchResult, timed
from lightsnn.search.scoring import best_index
from lightsnn.space.chain import ChainGenotype, ChainNet, ChainNetConfig


@dataclass(frozen=True)
class ChainOptions(MethodOptions):
    section: ClassVar[str] = "search.chainsearch"
    family: ClassVar[str] = "chain"
    candidates: int = opt(3, "chains sampled", min=1)
    batch_size: int = opt(8, "samples each chain is scored on", min=2)

    def search_network(self, preset):
        return ChainNetConfig(preset.in_channels, preset.image_size, preset.num_classes, preset.timesteps)


@timed
def run_chain(options: ChainOptions, ctx: SearchContext) -> SearchResult:
    rng = np.random.default_rng(ctx.seed)
    torch.manual_seed(ctx.seed)
    record = SearchRecord()
    x = torch.stack([ctx.splits.train[i][0] for i in range(options.batch_size)]).to(ctx.device)
    genotypes, scores = [], []
    for _ in range(options.candidates):
        genotype = ChainGenotype(tuple(int(w) for w in rng.choice([4, 8], size=int(rng.integers(1, 4)))))
        net = ChainNet(ctx.net_config, genotype).to(ctx.device)
        scores.append(score_proxies(net, None, [x], ["fire_rate"])["fire_rate"])
        genotypes.append(genotype)
        record.add(scores[-1], genotype=genotype.to_str())
    best = best_index(scores)
    return SearchResult(genotypes[best], scores[best], record, ctx.net_config)


METHOD = Method("chainsearch", "the best of a few chains by firing rate (a recipe test)", ChainOptions, run_chain,
                position=60)
'''


def test_a_new_architecture_family_is_its_module_one_entry_and_its_method(tmp_path):
    """docs/extending.md's family recipe in a copy of the package: a method finding a new kind of architecture
    (not SNASNet cells) searches, trains, evaluates and is described by the family its result records."""
    package, run = _copy_of_the_package(tmp_path)
    (package / "space" / "chain.py").write_text(FAMILY_FILE)
    families = package / "space" / "families.py"
    text = families.read_text().replace("from lightsnn.space.genotype import Genotype\n",
                                        "from lightsnn.space.genotype import Genotype\n" + FAMILY_IMPORT)
    families.write_text(text)
    _add_entry(families, FAMILY_ENTRY)
    (package / "search" / "chainsearch.py").write_text(FAMILY_METHOD_FILE)
    config = {"device": "cpu", "networks": {"digits": {"timesteps": 2}},
              "train": {"recipe": "quick", "epochs": 1, "batch_size": 32, "max_batches": 3}}
    common = ["--no-progress", "--no-tracking", "--config-json", json.dumps(config)]
    run("-m", "lightsnn", "search", "--method", "chainsearch", "--dataset", "digits", "--out",
        str(tmp_path / "search.json"), *common)
    search = json.loads((tmp_path / "search.json").read_text())
    assert search["family"] == "chain" and search["genotype"]["str"].startswith("chain:")
    assert search["network"] == {"in_channels": 1, "image_size": 8, "num_classes": 10, "timesteps": 2}
    run("-m", "lightsnn", "train", "--search", str(tmp_path / "search.json"), "--dataset", "digits",
        "--out", str(tmp_path / "train"), *common)
    run("-m", "lightsnn", "evaluate", "--checkpoint", str(tmp_path / "train" / "checkpoint.pt"),
        "--out", str(tmp_path / "evaluate.json"), *common)
    evaluation = json.loads((tmp_path / "evaluate.json").read_text())
    assert 0 < evaluation["sar"] < 1 and evaluation["parameters"] > 0, evaluation
    # a bare genotype of the family, given on the command line, is read by its prefix
    described = run("-c", "from lightsnn.space.families import family_of_text; "
                          "print(family_of_text('chain:8-4').parse('chain:8-4').widths)")
    assert described.strip() == "(8, 4)"
