"""The evidence study's summary (:func:`write_evidence_tables`): every method paired with the baseline by seed,
every LightSNN compat switch with the paper semantics, the noise of scores and accuracies; tables and plots
from the outputs of :func:`lightsnn.studies.evidence.run_correlate` and
:func:`lightsnn.studies.evidence.run_replicate`."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from lightsnn.core.jsonfloats import decode_non_finite
from lightsnn.core.stats import paired_comparison
from lightsnn.pipeline.report import mean_std, save_figure, write_table
from lightsnn.pipeline.targets import EVIDENCE_PLOT
from lightsnn.pipeline.results import read_result
from lightsnn.studies.evidence import correlation_display, interval_text


def _by_seed(run: dict, key: str) -> dict[int, float]:
    return {r["seed"]: (r[key] if r[key] is not None else math.nan) for r in run["runs"]}


def _paired(run: dict, reference: dict, key: str = "acc") -> dict:
    a, b = _by_seed(run, key), _by_seed(reference, key)
    common = sorted(set(a) & set(b))
    return paired_comparison([a[s] for s in common], [b[s] for s in common])


def comparison_table(runs: list[dict], baseline: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every run against the baseline run of its dataset, paired by seed."""
    numeric, display = [], []
    for run in runs:
        if run["name"] != run["method"]:
            continue  # variants belong to the ablation
        ref = next((r for r in runs if r["dataset"] == run["dataset"] and r["name"] == baseline), None)
        accs = [r["acc"] for r in run["runs"]]
        test = _paired(run, ref) if ref is not None and run["name"] != baseline else None
        numeric.append({"dataset": run["dataset"], "method": run["name"], "seeds": len(accs),
                        "acc_mean": float(np.mean(accs)), "acc_std": float(np.std(accs, ddof=1)) if len(accs) > 1 else math.nan,
                        "sar_mean": float(np.mean([r["sar"] for r in run["runs"]])),
                        "search_s_mean": float(np.mean([r["search_seconds"] for r in run["runs"]])),
                        **({f"vs_{baseline}_{k}": v for k, v in test.items()} if test else {})})
        display.append({"dataset": run["dataset"], "method": run["name"], "seeds": len(accs),
                        "accuracy (%)": mean_std(accs, 100, missing="n/a"),
                        f"minus {baseline} (pp)": f"{100 * test['mean_diff']:+.2f} ± {100 * test['std_diff']:.2f}"
                        if test else "-",
                        "wins/losses": f"{test['wins']}/{test['losses']}" if test else "-",
                        "t-test p": _p(test["t_p"]) if test else "-",
                        "Wilcoxon p": _p(test["wilcoxon_p"]) if test else "-",
                        "SAR": mean_std([r["sar"] for r in run["runs"]], 1, 3, missing="n/a"),
                        "search (s)": mean_std([r["search_seconds"] for r in run["runs"]], 1, 1, missing="n/a")})
    return pd.DataFrame(numeric), pd.DataFrame(display)


def _p(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.3f}"


def ablation_table(runs: list[dict], paper: str = "lightsnn") -> tuple[pd.DataFrame, pd.DataFrame]:
    """LightSNN with its paper semantics and with each reference-compat switch, paired by seed."""
    numeric, display = [], []
    for run in runs:
        if run["method"] != paper:
            continue
        ref = next((r for r in runs if r["dataset"] == run["dataset"] and r["name"] == paper), None)
        test = _paired(run, ref) if ref is not None and run["name"] != paper else None
        genotypes = pd.Series([r["genotype"] for r in run["runs"]])
        ref_genotypes = _by_seed(ref, "genotype") if ref is not None else {}
        same = sum(ref_genotypes.get(r["seed"]) == r["genotype"] for r in run["runs"])
        scores = [r["score"] for r in run["runs"]]
        accs = [r["acc"] for r in run["runs"]]
        numeric.append({"dataset": run["dataset"], "run": run["name"],
                        "compat": ",".join(run["runs"][0]["compat_flags"]) or "none", "seeds": len(accs),
                        "distinct_genotypes": int(genotypes.nunique()), "most_common_genotype": genotypes.mode()[0],
                        "same_genotype_as_paper": same, "score_mean": float(np.nanmean(scores)),
                        "acc_mean": float(np.mean(accs)), "sar_mean": float(np.mean([r["sar"] for r in run["runs"]])),
                        **({f"vs_{paper}_{k}": v for k, v in test.items()} if test else {})})
        display.append({"dataset": run["dataset"], "run": run["name"],
                        "compat": numeric[-1]["compat"],
                        "genotype (most common)": genotypes.mode()[0],
                        "distinct": int(genotypes.nunique()),
                        "same as paper": f"{same}/{len(accs)}" if test else "-",
                        "score": mean_std(scores, 1, 1, missing="n/a"),
                        "accuracy (%)": mean_std(accs, 100, missing="n/a"),
                        f"minus {paper} (pp)": f"{100 * test['mean_diff']:+.2f}" if test else "-",
                        "t-test p": _p(test["t_p"]) if test else "-",
                        "SAR": mean_std([r["sar"] for r in run["runs"]], 1, 3, missing="n/a")})
    return pd.DataFrame(numeric), pd.DataFrame(display)


def plot_comparison(runs: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in runs))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        mine = [r for r in runs if r["dataset"] == dataset]
        for i, run in enumerate(mine):
            accs = [100 * r["acc"] for r in run["runs"]]
            ax.scatter([i] * len(accs), accs, s=14, alpha=0.7)
            ax.errorbar(i + 0.2, np.mean(accs), yerr=np.std(accs, ddof=1) if len(accs) > 1 else 0, fmt="o",
                        color="black", capsize=3, markersize=4)
        ax.set_xticks(range(len(mine)))
        ax.set_xticklabels([r["name"] for r in mine], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{dataset}: one point per seed, mean ± std", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def noise_table(studies: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per dataset: how noisy the score is across weight draws and the accuracy across training seeds."""
    numeric, display = [], []
    for study in studies:
        score, acc, accuracy = study["noise"], study["accuracy_noise"], study["accuracy"]
        numeric.append({"dataset": study["dataset"], "archs": len(study["architectures"]),
                        **{f"sahd_{k}": v for k, v in score.items()},
                        **{f"retrain_{k}": v for k, v in acc.items()},
                        **{f"acc_{k}": v for k, v in accuracy.items()}})
        display.append({
            "dataset": study["dataset"], "architectures": len(study["architectures"]),
            "accuracy (%) mean ± std [min, max]": f"{100 * accuracy['mean']:.1f} ± {100 * accuracy['std']:.1f} "
                                                  f"[{100 * accuracy['min']:.1f}, {100 * accuracy['max']:.1f}]",
            "SAHD std within / between architectures": f"{score.get('mean_within_arch_std', math.nan):.2f} / "
                                                       f"{score.get('between_arch_std', math.nan):.2f}",
            "SAHD tau, weight seed 0 vs 1": f"{score.get('seed0_vs_seed1_tau', math.nan):+.2f}",
            "accuracy tau, training seed s vs s+1 [95% CI]":
                interval_text(acc["tau"], acc["tau_low"], acc["tau_high"]) + f" (n={acc['n']})" if acc["n"] else "n/a",
            "mean |retrain difference| (pp)": f"{100 * acc['mean_abs_diff']:.1f}" if acc["n"] else "n/a"})
    return pd.DataFrame(numeric), pd.DataFrame(display)


def write_evidence_tables(correlate_files: list[str], replicate_files: list[str], out_dir, baseline: str = "random",
              paper: str = "lightsnn") -> dict:
    """Tables and plots of the whole study from the verbs' JSON outputs."""
    out = Path(out_dir)
    written = {}
    studies = [decode_non_finite(read_result(path, "correlate")) for path in correlate_files]
    if studies:
        corr = pd.DataFrame([row for study in studies for row in study["correlations"]])
        write_table(corr, correlation_display(corr), out / "correlation")
        numeric, display = noise_table(studies)
        write_table(numeric, display, out / "noise")
        written.update(correlation=str(out / "correlation.md"), noise=str(out / "noise.md"))
    runs = [decode_non_finite(read_result(path, "replicate")) for path in replicate_files]
    if runs:
        numeric, display = comparison_table(runs, baseline)
        write_table(numeric, display, out / "comparison")
        numeric, display = ablation_table(runs, paper)
        write_table(numeric, display, out / "ablation")
        plot_comparison(runs, out / EVIDENCE_PLOT)
        written.update(comparison=str(out / "comparison.md"), ablation=str(out / "ablation.md"),
                       plot=str(out / EVIDENCE_PLOT))
    return written
