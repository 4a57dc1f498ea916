"""The evidence study: does SAHD rank architectures, and does searching beat a random pick?

Three parts, each a CLI verb and a workflow rule:

* :func:`run_correlate` samples architectures uniformly over canonical cells, scores each at
  initialisation with SAHD, its variants and simple baselines, trains each for a short fixed budget and
  reports Kendall's tau and Spearman's rho against the trained accuracy with bootstrap intervals.
* :func:`run_replicate` runs one method (or a reference-compat variant of one) over several seeds:
  search, train, evaluate, in one process (a job per seed would cost ~9 s of start-up each).
* :func:`~lightsnn.studies.evidence_tables.write_evidence_tables` pairs every method with ``random`` by seed and every LightSNN compat switch with the
  paper semantics, and writes the tables and plots.

The score variants are fixed here, in :data:`SCORE_VARIANTS`, before any number is measured.
"""
from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from lightsnn.core.atomic import write_text_atomic
from lightsnn.core.layout import EVALUATE_FILE, SEARCH_FILE, TRAIN_DIR, TRAIN_FILE, seed_folder
from lightsnn.core.names import old_names
from lightsnn.core.options import Options, opt
from lightsnn.core.stats import correlation_summary
from lightsnn.data import load_splits
from lightsnn.pipeline.config import check_seed, net_config, resolve_device
from lightsnn.pipeline.report import save_figure, write_table
from lightsnn.pipeline.targets import CORRELATE_FILES, REPLICATE_FILE
from lightsnn.pipeline.results import SCHEMA_VERSIONS, versions, write_json_atomic
from lightsnn.proxies.engine import score_proxies
from lightsnn.proxies.registry import PROXIES, get_proxy
from lightsnn.space.genotype import CELL_TYPES, Genotype
from lightsnn.space.network import SNASNetwork
from lightsnn.space.ops import SPACES, parse_space
from lightsnn.space.spaces import SearchSpace

CORRELATE_SCHEMA_VERSION = SCHEMA_VERSIONS["correlate"]
REPLICATE_SCHEMA_VERSION = SCHEMA_VERSIONS["replicate"]


@dataclass(frozen=True)
class EvidenceOptions(Options):
    """The config's ``evidence`` section."""

    section: ClassVar[str] = "evidence"
    datasets: list[str] = opt(["digits", "ndigits"], "datasets of the study")
    space: str = opt("snasnet-ops", "op space the correlation study samples from (a named space)",
                     tuple(SPACES) + old_names("op space"))
    cell_type: str = opt("backward", "cell type of the sampled architectures", CELL_TYPES)
    num_archs: int = opt(40, "architectures sampled per dataset (distinct canonical cells)", min=3)
    weight_seeds: int = opt(3, "initial-weight seeds each architecture is scored under (the score's own noise)", min=2)
    batch_size: int = opt(64, "search batch of the base SAHD score", min=2)
    other_batch_sizes: list[int] = opt([32, 256], "search batches of the batch-size variants")
    repeat: int = opt(2, "forward passes (fixed batches) per scoring; the score is their mean", min=1)
    train_epochs: int = opt(2, "epochs of the short training of every sampled architecture (train recipe of "
                               "the config's train section)", min=1)
    retrain_archs: int = opt(10, "architectures trained a second time (another seed) to measure the accuracy's "
                                 "own noise: the ceiling of any score's correlation", min=0)
    bootstrap: int = opt(2000, "bootstrap resamples of the 95% intervals", min=1)
    methods: list[str] = opt(["snasnet", "spikenas", "lightsnn"], "methods compared with the baseline")
    baseline: str = opt("random", "the method every other is paired with, seed by seed")
    seeds: list[int] = opt([0, 1, 2, 3, 4], "seeds of the comparison and the ablation (at least 5 for a paired test)")
    ablation: list[str] = opt(["dead_backward", "carry_state", "trained_logits"],
                         "LightSNN reference_compat switches turned on one at a time (methods.md §7)")

    def check(self) -> None:
        from lightsnn.data import DATASET_NAMES
        from lightsnn.search import METHODS
        from lightsnn.search.lightsnn import LightSNNOptions

        for key, allowed in (("datasets", DATASET_NAMES), ("methods", METHODS),
                             ("ablation", LightSNNOptions.compat_flags)):
            bad = [v for v in getattr(self, key) if v not in allowed]
            if bad:
                raise ValueError(f"evidence.{key} has unknown value(s) {bad}; allowed: {list(allowed)}")
        if self.baseline not in METHODS:
            raise ValueError(f"evidence.baseline={self.baseline!r} is not a method; allowed: {list(METHODS)}")
        if len(set(self.seeds)) < 2 or any(s < 0 for s in self.seeds):
            raise ValueError(f"evidence.seeds must hold at least 2 distinct non-negative integers, got {self.seeds}")
        if any(b < 2 for b in self.other_batch_sizes):
            raise ValueError(f"evidence.other_batch_sizes must all be >= 2, got {self.other_batch_sizes}")


@dataclass(frozen=True)
class ScoreVariant:
    """A registered proxy under one scoring protocol (BatchNorm mode, batch size)."""

    name: str
    help: str
    proxy: str = "sahd"  # a name in lightsnn.proxies.registry.PROXIES
    bn_mode: str = "train"
    batch_size: int | None = None  # None: the study's base batch


def score_variants(options: EvidenceOptions) -> list[ScoreVariant]:
    """The base score first: the paper's plain sum, SNASNet's train-mode BatchNorm, the study's batch."""
    variants = [
        ScoreVariant("sahd", "SAHD, paper formula (plain sum over LIF calls), train-mode BN"),
        ScoreVariant("sahd_count", get_proxy("sahd_count").definition, proxy="sahd_count"),
        ScoreVariant("sahd_bn_eval", "eval-mode BatchNorm (LightSNN's search)", bn_mode="eval"),
    ]
    variants += [ScoreVariant(f"sahd_b{b}", f"search batch {b}", batch_size=b) for b in options.other_batch_sizes]
    variants.append(ScoreVariant("hamming", get_proxy("hamming").definition + " (baseline)", proxy="hamming"))
    return variants


#: Proxies that need no forward pass, reported beside the scores.
BASELINES = {name: proxy.definition for name, proxy in PROXIES.items() if proxy.kind == "count"}


def sample_architectures(space: SearchSpace, n: int, seed: int) -> list[Genotype]:
    """``n`` distinct cells, uniform over canonical valid cells (sampling without replacement)."""
    from lightsnn.space.sampling import raw_cell_count

    bound = raw_cell_count(list(space.ops), space.cell_type)
    if n > bound:
        raise ValueError(f"{n} architectures (evidence.num_archs, correlate --n) is more than the {bound} cells of "
                         f"space {list(space.ops)} with {space.cell_type} cells hold; ask for fewer")
    rng = np.random.default_rng(seed)
    seen: dict[Genotype, None] = {}
    for _ in range(100 * n):
        genotype = Genotype.shared(space.sample_uniform(rng))
        seen.setdefault(genotype, None)
        if len(seen) == n:
            return list(seen)
    raise ValueError(f"space {list(space.ops)} with {space.cell_type} cells has fewer than {n} distinct valid cells "
                     f"(found {len(seen)}); ask for fewer architectures")


def _score(net: SNASNetwork, genotype: Genotype, batches: list[torch.Tensor], variant: ScoreVariant) -> float:
    net.train(variant.bn_mode == "train")
    return score_proxies(net, genotype, batches, [variant.proxy])[variant.proxy]


def _search_batches(splits, size: int, repeat: int, device, seed: int) -> list[torch.Tensor]:
    from lightsnn.search.batches import DatasetSearchBatches

    provider = DatasetSearchBatches(splits.train, size, repeat, device, seed=seed, events=splits.events)
    return [provider.get(r) for r in range(repeat)]


def _quiet(line: str) -> None:
    pass


def _short_training(netcfg, genotype: Genotype, config: dict, epochs: int, splits, device, seed: int,
                    dataset: str) -> dict:
    from lightsnn.training.train import Trainer, TrainOptions, build_model, loss_kind

    options = TrainOptions.from_config(config.get("train"), {"epochs": epochs})
    loss = loss_kind(options, dataset)
    torch.manual_seed(seed)
    model, _ = build_model(netcfg, genotype)
    with tempfile.TemporaryDirectory(prefix="lightsnn-evidence-") as tmp:
        trainer = Trainer(model, options, splits, device, seed, Path(tmp), netcfg.num_classes, loss,
                          progress=False, log=_quiet)
        start = time.perf_counter()
        state = trainer.run()
    return {"acc": state["history"][-1]["test_acc"], "train_seconds": time.perf_counter() - start}


def run_correlate(dataset: str, config: dict, out_dir, seed: int = 0, overrides: dict | None = None,
                  progress: bool | None = None) -> dict:
    """Score ``num_archs`` sampled architectures at initialisation, train each briefly, rank-correlate."""
    from lightsnn.pipeline.jobs import require_network_memory
    from lightsnn.training.train import TrainOptions

    options = EvidenceOptions.from_config(config.get("evidence"), overrides)
    check_seed(seed)
    space = list(parse_space(options.space))
    netcfg = net_config(dataset, config)
    device = resolve_device(config.get("device"))
    require_network_memory(netcfg, max(options.batch_size, *options.other_batch_sizes), device, training=False,
                           batch="evidence.batch_size, evidence.other_batch_sizes")  # it scores,
    require_network_memory(netcfg, TrainOptions.from_config(config.get("train")).batch_size, device, training=True,
                           batch="train.batch_size")  # then trains
    splits = load_splits(dataset, config.get("data"), netcfg.timesteps, progress)
    variants = score_variants(options)
    sizes = sorted({options.batch_size, *(v.batch_size for v in variants if v.batch_size)})
    batches = {b: _search_batches(splits, b, options.repeat, device, seed) for b in sizes}
    archs = sample_architectures(SearchSpace(tuple(space), options.cell_type), options.num_archs, seed)
    rows = []
    start = time.perf_counter()
    bar = tqdm(archs, desc=f"correlate {dataset}", disable=None if progress is None else not progress,
               dynamic_ncols=True)
    for index, genotype in enumerate(bar):
        row = {"index": index, "genotype": genotype.to_str()}
        scored = time.perf_counter()
        per_seed = {v.name: [] for v in variants}
        for w in range(options.weight_seeds):
            for variant in variants:
                # the same initial weights for every variant of seed w, built fresh so BN statistics are unused
                torch.manual_seed(1_000_003 * seed + w)
                net = SNASNetwork.from_genotype(netcfg, genotype).to(device)
                for name in BASELINES:
                    row[name] = get_proxy(name).score(net, genotype, [])
                per_seed[variant.name].append(_score(net, genotype, batches[variant.batch_size or options.batch_size],
                                                     variant))
        for name, values in per_seed.items():
            finite = [v for v in values if math.isfinite(v)]
            row[name] = float(np.mean(finite)) if finite else math.nan
        for w, value in enumerate(per_seed["sahd"]):
            row[f"sahd_w{w}"] = value
        row["score_seconds"] = time.perf_counter() - scored
        row.update(_short_training(netcfg, genotype, config, options.train_epochs, splits, device, seed, dataset))
        if index < options.retrain_archs:
            again = _short_training(netcfg, genotype, config, options.train_epochs, splits, device, seed + 1, dataset)
            row["acc_retrain"] = again["acc"]
            row["train_seconds"] += again["train_seconds"]
        rows.append(row)
    total = time.perf_counter() - start
    table = pd.DataFrame(rows)
    scores = [v.name for v in variants] + ["sahd_w0"] + list(BASELINES)
    correlations = []
    for name in scores:
        summary = correlation_summary(table[name].to_numpy(), table["acc"].to_numpy(), options.bootstrap, seed)
        correlations.append({"dataset": dataset, "score": name, **summary})
    helps = {v.name: v.help for v in variants} | BASELINES | {"sahd_w0": "SAHD of one weight draw (seed 0 only)"}
    result = {
        "schema_version": CORRELATE_SCHEMA_VERSION, "kind": "correlate", "dataset": dataset, "seed": seed,
        "options": asdict(options), "space": space, "network": netcfg.to_dict(),
        "target": f"final test accuracy after {options.train_epochs} epochs",
        "scores": helps, "variants": [asdict(v) for v in variants],
        "correlations": correlations, "noise": score_noise(table, options.weight_seeds),
        "accuracy_noise": accuracy_noise(table, options.bootstrap, seed),
        "accuracy": {"mean": float(table["acc"].mean()), "std": float(table["acc"].std()),
                     "min": float(table["acc"].min()), "max": float(table["acc"].max())},
        "seconds": total, "train_seconds": float(table["train_seconds"].sum()),
        "score_seconds": float(table["score_seconds"].sum()), "device": str(device), "versions": versions(),
        "architectures": rows,
    }
    _write_correlate(result, Path(out_dir))
    return result


def score_noise(table: pd.DataFrame, weight_seeds: int) -> dict:
    """How much of SAHD's spread across architectures is the draw of the initial weights."""
    columns = [f"sahd_w{w}" for w in range(weight_seeds)]
    values = table[columns].to_numpy(dtype=float)
    out = {"weight_seeds": weight_seeds}
    if weight_seeds >= 2:
        within = np.nanstd(values, axis=1, ddof=1)
        out["mean_within_arch_std"] = float(np.nanmean(within))
        out["between_arch_std"] = float(np.nanstd(np.nanmean(values, axis=1), ddof=1))
        out["seed0_vs_seed1_tau"] = correlation_summary(values[:, 0], values[:, 1], resamples=1)["tau"]
    return out


def accuracy_noise(table: pd.DataFrame, resamples: int, seed: int) -> dict:
    """The same architectures trained twice (seeds s and s+1): how well accuracy ranks itself."""
    if "acc_retrain" not in table or table["acc_retrain"].notna().sum() < 3:
        return {"n": 0}
    both = table.dropna(subset=["acc_retrain"])
    summary = correlation_summary(both["acc"].to_numpy(), both["acc_retrain"].to_numpy(), resamples, seed)
    return {**summary, "mean_abs_diff": float((both["acc"] - both["acc_retrain"]).abs().mean())}


def _write_correlate(result: dict, out: Path) -> None:
    table = pd.DataFrame(result["architectures"])
    correlate_json, architectures_csv, scatter_png = CORRELATE_FILES
    write_text_atomic(out / architectures_csv, table.to_csv(index=False))
    corr = pd.DataFrame(result["correlations"])
    write_table(corr, correlation_display(corr), out / "correlation")
    plot_scatter(table, [c["score"] for c in result["correlations"]], corr, out / scatter_png,
                 f"{result['dataset']}: {result['target']}")
    write_json_atomic(out / correlate_json, result)


def interval_text(value: float, low: float, high: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:+.2f} [{low:+.2f}, {high:+.2f}]"


def correlation_display(corr: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "dataset": corr["dataset"], "score": corr["score"], "n": corr["n"],
        "Kendall tau [95% CI]": [interval_text(r.tau, r.tau_low, r.tau_high) for r in corr.itertuples()],
        "Spearman rho [95% CI]": [interval_text(r.rho, r.rho_low, r.rho_high) for r in corr.itertuples()],
    })


def plot_scatter(table: pd.DataFrame, scores: list[str], corr: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 4
    rows = math.ceil(len(scores) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    taus = dict(zip(corr["score"], corr["tau"]))
    for ax, name in zip(axes.flat, scores):
        ax.scatter(table[name], 100 * table["acc"], s=12, alpha=0.8)
        ax.set_title(f"{name}: tau {taus[name]:+.2f}", fontsize=9)
        ax.set_xlabel(name, fontsize=8)
        ax.set_ylabel("accuracy (%)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))  # parameter counts overlap otherwise
    for ax in list(axes.flat)[len(scores):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


# --- one method over several seeds -------------------------------------------------------------------


def run_replicate(method: str, dataset: str, seeds: list[int], config: dict, out_dir, name: str | None = None,
                  overrides: dict | None = None, bits: int | None = None, energy_samples: int | None = None,
                  progress: bool | None = None, log=print, track=None) -> dict:
    """Search, train and evaluate one method per seed; each seed's folder has the workflow's run layout.

    A seed whose evaluate.json exists is read back, not rerun, so a killed job resumes. ``track(result, path)``
    is called for every job result written (the CLI logs them to MLflow).
    """
    track = track or (lambda result, path: None)
    from lightsnn.pipeline.jobs import run_evaluate, run_search, run_train
    from lightsnn.training.metrics import EvaluateOptions

    evaluate = EvaluateOptions.from_config(config.get("evaluate"), {"bits": bits, "energy_samples": energy_samples})
    bits, energy_samples = evaluate.bits, evaluate.energy_samples

    if not seeds:
        raise ValueError("give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct non-negative integers, got {seeds}")
    for seed in seeds:
        check_seed(seed)
    out = Path(out_dir)
    rows = []
    for seed in seeds:
        folder = out / seed_folder(seed)
        if (folder / EVALUATE_FILE).is_file():
            search = json.loads((folder / SEARCH_FILE).read_text())
            train = json.loads((folder / TRAIN_FILE).read_text())
            evaluation = json.loads((folder / EVALUATE_FILE).read_text())
            log(f"seed {seed}: read back from {folder}")
        else:
            search = run_search(method, dataset, seed, config, overrides, progress=progress)
            track(search, write_json_atomic(folder / SEARCH_FILE, search))
            train = run_train(dataset, seed, config, folder / TRAIN_DIR, search=search, progress=progress, log=_quiet)
            track(train, write_json_atomic(folder / TRAIN_FILE, train))
            evaluation = run_evaluate(train["checkpoint"], config, bits=bits, energy_samples=energy_samples,
                                      progress=progress)
            track(evaluation, write_json_atomic(folder / EVALUATE_FILE, evaluation))
        row = {"seed": seed, "genotype": search["genotype"]["str"], "score": search["score"],
               "search_seconds": search["times"]["search_seconds"], "acc": evaluation["top1"],
               "sar": evaluation["sar"], "params": evaluation["parameters"],
               "train_seconds": train["seconds_this_run"], "compat_flags": search["compat_flags"]}
        rows.append(row)
        log(f"{name or method} on {dataset}, seed {seed}: {row['genotype']} acc {row['acc']:.4f} "
            f"SAR {row['sar']:.4f}")
    result = {"schema_version": REPLICATE_SCHEMA_VERSION, "kind": "replicate", "name": name or method,
              "method": method, "dataset": dataset, "seeds": seeds, "overrides": overrides or {},
              "runs": rows, "versions": versions()}
    write_json_atomic(out / REPLICATE_FILE, result)
    return result
