"""The studies' verbs: bench, plan, correlate, replicate, evidence, benchmark."""
from __future__ import annotations

import sys

from lightsnn.cli.flags import (
    _common_job_flags,
    _config,
    _evaluate_flags,
    _given,
    _method_option_flags,
    _method_overrides,
    _option_flags,
    _positive,
    _seed,
    _track,
)
from lightsnn.data import DATASET_NAMES
from lightsnn.search import METHODS


def add_bench(sub) -> None:
    p = sub.add_parser("bench", help="measure search and training speed against plain conv2d throughput",
                       description="Runs a LightSNN search, a short SNASNet search and training steps at the sizes "
                                   "of the config's bench section (or the flags), counts their FLOPs analytically "
                                   "and compares them with plain torch conv2d calls of the same shapes.")
    _common_job_flags(p, ("config", "config_json", "device", "threads"))
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    p.add_argument("--suite", default=None, choices=["paper", "smoke"],
                   help="instead, the five workloads of a paper-size run (LightSNN and SNASNet searches, benchmark "
                        "scoring, training, LitE-SNN steps) at fixed sizes: 'paper' on a GPU (minutes), 'smoke' the "
                        "same code at tiny sizes; its JSON feeds 'plan'")
    from lightsnn.studies.bench import BenchOptions

    _option_flags(p, BenchOptions, title="sizes (override the config's bench section)",
                  default_note=" [{default}]")
    p.set_defaults(func=_cmd_bench, paths={"json": "output_file"})


def _cmd_bench(args) -> int:
    from lightsnn.pipeline.config import resolve_device
    from lightsnn.pipeline.jobs import given_flags
    from lightsnn.pipeline.results import write_json_atomic
    from lightsnn.studies.bench import BenchOptions, run_bench

    config = _config(args)
    if args.suite:
        from lightsnn.studies.bench import run_suite

        figures = run_suite(args.suite, resolve_device(config.get("device")))
        if args.json:
            write_json_atomic(args.json, figures)
        return 0
    given = _given(args, BenchOptions)
    opts = BenchOptions.from_config(config.get("bench"), given)
    figures = run_bench(opts, resolve_device(config.get("device")), flags=given_flags(given))
    if args.json:
        write_json_atomic(args.json, figures)
    return 0


def add_plan(sub) -> None:
    p = sub.add_parser("plan", help="what a config will cost: the workflow's jobs with an estimated time each",
                       description="Lists the jobs of the workflow's default target (search, train, evaluate per "
                                   "dataset, run and seed) with an estimated time each and the total, from a bench "
                                   "JSON of the device that will run them ('python -m lightsnn bench --suite paper "
                                   "--json bench.json'). Give the config files as Snakemake merges them, e.g. "
                                   "--config config/config.yaml --config config/paper.yaml. Estimates count each "
                                   "job's FLOPs at the config's sizes over the rate the bench measured: +/- 50 %.")
    _common_job_flags(p, ("config", "config_json"))
    p.add_argument("--bench", required=True, help="bench JSON written by 'bench --suite'")
    p.add_argument("--out", default=None, help="also write every job's estimate to this CSV")
    p.add_argument("--profile", default=None,
                   help="a Snakemake profile folder (e.g. workflow/profiles/slurm): name every job whose estimate "
                        "(or 1.5 x it, the estimates' error) exceeds the runtime it grants the job's rule; exit 1 "
                        "if an estimate itself does")
    p.set_defaults(func=_cmd_plan, paths={"bench": "input_file", "out": "output_file", "profile": "input_folder"})


def _cmd_plan(args) -> int:
    import json
    from pathlib import Path

    from lightsnn.core.atomic import write_text_atomic
    from lightsnn.studies.plan import MARGIN, job_estimates, largest, over_runtime, profile_runtimes, summarise

    try:
        bench = json.loads(Path(args.bench).read_text())
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"--bench {args.bench!r} is not a JSON file; write one with 'python -m lightsnn bench "
                         "--suite paper --json bench.json'") from None
    from lightsnn.schema import with_defaults

    jobs = job_estimates(with_defaults(_config(args)), bench)
    table = summarise(jobs)
    print(f"estimated on {bench.get('device_name', '?')} (bench suite {bench.get('suite')}, torch "
          f"{bench.get('torch', '?')}), one job at a time:")
    for row in table.to_dict("records"):
        per = "" if row["rule"] == "total" else f"{row['mean'] / 60:10.1f} min per job"
        print(f"  {row['rule']:9s} {row['jobs']:5d} jobs {per:>24s} {row['hours']:10.1f} h")
    print("where the time goes:")
    for row in largest(jobs).to_dict("records"):
        each = (f"{row['longest'] / 3600:.2f} h each" if row["shortest"] == row["longest"] else
                f"{row['shortest'] / 3600:.2f}-{row['longest'] / 3600:.2f} h each")
        print(f"  {row['rule']:9s} {row['dataset']:16s} {row['jobs']:5d} jobs {each:>24s} {row['hours']:10.1f} h")
    if args.out:
        write_text_atomic(args.out, jobs.to_csv(index=False))
        print(f"-> {args.out}")
    if args.profile:
        over = over_runtime(jobs, profile_runtimes(args.profile))
        for row in over.to_dict("records"):
            print(f"{'over' if row['over'] else 'within the estimate error (x' + str(MARGIN) + ') of'} the "
                  f"profile's runtime: {row['rule']} {row['dataset']} {row['run']}: about {row['estimate_min']:.0f} "
                  f"min estimated, {row['runtime_min']:.0f} min granted; raise set-resources.{row['rule']}.runtime "
                  f"in {args.profile}/config.yaml")
        if over["over"].any():
            return 1
        if not len(over):
            print(f"every job fits the runtimes of {args.profile} (with a margin of x{MARGIN})")
    return 0


def add_correlate(sub) -> None:
    p = sub.add_parser("correlate", help="rank-correlate SAHD (and its variants and baselines) with trained accuracy",
                       description="Sample N distinct architectures uniformly over canonical cells of a space, score "
                                   "each at initialisation (several weight seeds; SAHD variants; plain Hamming, "
                                   "#params, #conv edges), train each for a short fixed budget and report Kendall's "
                                   "tau and Spearman's rho with bootstrap 95% intervals. Writes OUT/correlate.json, "
                                   "architectures.csv, correlation.{csv,md,tex} and scatter.png. Defaults come from "
                                   "the config's evidence section.")
    p.add_argument("--dataset", required=True, help=f"dataset name ({', '.join(DATASET_NAMES)})")
    p.add_argument("--space", default=None, help="op space (default: the config's evidence.space)")
    p.add_argument("--n", type=_positive, default=None, help="architectures (default: the config's evidence.num_archs)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the sample, the batches, the weights and training")
    p.add_argument("--epochs", type=_positive, default=None, help="epochs of each short training")
    p.add_argument("--out", default=None, help="output folder (default results/evidence/<dataset>)")
    _common_job_flags(p)
    p.set_defaults(func=_cmd_correlate, paths={})  # --out: checked in the command, with its default


def _cmd_correlate(args) -> int:
    from lightsnn.studies.evidence import run_correlate

    from lightsnn.core.paths import output_folder

    config = _config(args)
    overrides = {"space": args.space, "num_archs": args.n, "train_epochs": args.epochs}
    out = str(output_folder(args.out or f"results/evidence/{args.dataset}", "--out"))
    result = run_correlate(args.dataset, config, out, args.seed, overrides,
                           progress=False if args.no_progress else None)
    taus = {f"tau.{row['score']}": row["tau"] for row in result["correlations"]}
    _track({k: v for k, v in result.items() if k != "architectures"}, config, f"{out}/correlate.json", args, taus)
    print(f"{args.dataset}: {len(result['architectures'])} architectures in {result['seconds']:.0f}s "
          f"(training {result['train_seconds']:.0f}s); accuracy {100 * result['accuracy']['mean']:.1f} "
          f"± {100 * result['accuracy']['std']:.1f}%")
    for row in result["correlations"]:
        print(f"  {row['score']:13s} tau {row['tau']:+.3f} [{row['tau_low']:+.3f}, {row['tau_high']:+.3f}]  "
              f"rho {row['rho']:+.3f} [{row['rho_low']:+.3f}, {row['rho_high']:+.3f}]")
    noise = result["accuracy_noise"]
    if noise["n"]:
        print(f"  accuracy vs itself retrained ({noise['n']} architectures): tau {noise['tau']:+.3f} "
              f"[{noise['tau_low']:+.3f}, {noise['tau_high']:+.3f}], mean |difference| {100 * noise['mean_abs_diff']:.1f} pp")
    print(f"-> {out}")
    return 0


def add_replicate(sub) -> dict:
    p = sub.add_parser("replicate", help="search, train and evaluate one method over several seeds",
                       description="For every seed: search, train (config train section), evaluate; each seed's "
                                   "folder OUT/seed<S>/ has the workflow's run layout and OUT/replicate.json "
                                   "lists them. Seeds already evaluated are read back (a killed job resumes).")
    p.add_argument("--method", required=True, choices=list(METHODS), help="search method")
    p.add_argument("--name", default=None, help="name of this run in the tables (default: the method)")
    p.add_argument("--dataset", required=True, help=f"dataset name ({', '.join(DATASET_NAMES)})")
    p.add_argument("--seeds", type=_seed, nargs="+", required=True, help="seeds, e.g. 0 1 2 3 4")
    p.add_argument("--out", required=True, help="output folder")
    _evaluate_flags(p)
    _common_job_flags(p)
    table = _method_option_flags(p)
    p.set_defaults(func=lambda args: _cmd_replicate(args, table), paths={"out": "output_folder"})
    return table


def _cmd_replicate(args, table) -> int:
    from lightsnn.studies.evidence import run_replicate

    overrides = _method_overrides(args, table)
    config = _config(args)
    result = run_replicate(args.method, args.dataset, args.seeds, config, args.out, args.name, overrides,
                           args.bits, args.energy_samples, progress=False if args.no_progress else None,
                           track=lambda job, path: _track(job, config, path, args))
    accs = [r["acc"] for r in result["runs"]]
    print(f"{result['name']} on {args.dataset}: accuracy over seeds {args.seeds}: "
          + ", ".join(f"{100 * a:.1f}" for a in accs) + f" -> {args.out}")
    return 0


def add_evidence(sub) -> None:
    p = sub.add_parser("evidence", help="tables and plots of the evidence study from correlate/replicate outputs",
                       description="Writes correlation.*, comparison.* (every method vs the baseline, paired by "
                                   "seed: mean difference, t-test and Wilcoxon p), ablation.* (LightSNN vs each "
                                   "reference_compat switch) and comparison.png.")
    p.add_argument("--correlate", nargs="*", default=[], help="correlate.json files")
    p.add_argument("--replicate", nargs="*", default=[], help="replicate.json files")
    p.add_argument("--baseline", default="random", help="run every method is paired with (default random)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=_cmd_evidence, paths={"correlate": "input_file", "replicate": "input_file", "out": "output_folder"})


def _cmd_evidence(args) -> int:
    from lightsnn.studies.evidence_tables import write_evidence_tables

    if not args.correlate and not args.replicate:
        raise ValueError("nothing to tabulate: give correlate.json files (--correlate) or replicate.json files "
                         "(--replicate), as written by 'correlate' and 'replicate'")
    written = write_evidence_tables(args.correlate, args.replicate, args.out, args.baseline)
    print("evidence tables -> " + ", ".join(written.values()))
    return 0


def add_benchmark(sub) -> None:
    from lightsnn.nasbench.benchmark_options import BenchmarkOptions

    p = sub.add_parser("benchmark", help="score, correlate and search on a tabular NAS benchmark (no training)",
                       description="Evidence from a NAS benchmark of trained SNNs (default SpikeNAS-Bench: 15,625 "
                                   "architectures trained on CIFAR-10): 'score' computes every registered proxy for a "
                                   "shard of a seeded sample of its valid architectures, 'correlate' rank-correlates "
                                   "the scores with the benchmark's test accuracy beside its early-stopping "
                                   "baselines, 'agree' compares scores at two widths, 'search' runs a search method "
                                   "on the benchmark's space and looks its pick up, 'quality' tabulates the picks, 'anytime' "
                                   "sets them against training-based searches at equal GPU-hours, 'front' places "
                                   "them on the accuracy-energy plane. "
                                   "Defaults come from the config's benchmark section (config/README.md).")
    verbs = p.add_subparsers(dest="benchmark_command", required=True, metavar="STEP")

    def step(name: str, help: str, func, paths: dict, flags=True):
        q = verbs.add_parser(name, help=help, description=help)
        _common_job_flags(q, ("config", "config_json", "device", "no_progress", "no_tracking", "threads"))
        if flags:
            _option_flags(q, BenchmarkOptions, title="benchmark options (override the config's benchmark section)",
                          default_note=" (default: the config's {section}.{name}, else {default})")
        q.set_defaults(func=func, paths=paths)
        return q

    q = step("score", "score one shard of the sample with every proxy; writes OUT/scores-C<width>-<hash>/shard-*.csv "
                      "(resumable: a killed run continues)", _cmd_benchmark_score,
             {"out": "output_folder", "csv": "output_file"})
    q.add_argument("--shard", type=int, default=0, help="shard index, 0..shards-1 (default 0)")
    q.add_argument("--out", default="results/benchmark", help="output folder (default results/benchmark)")
    q.add_argument("--csv", default=None, help="write the shard here instead (the workflow names its files)")
    q = step("correlate", "Kendall tau / Spearman rho of every score with test accuracy, with intervals; writes "
                          "correlation.{csv,md,json} and scatter.png", _cmd_benchmark_correlate,
             {"scores": "input_file", "out": "output_folder"})
    q.add_argument("--scores", nargs="+", required=True, help="shard CSVs written by 'score'")
    q.add_argument("--out", required=True, help="output folder")
    q = step("agree", "rank agreement of each proxy between scores at a reduced width and at a reference width",
             _cmd_benchmark_agree, {"scores": "input_file", "reference": "input_file", "out": "output_file"},
             flags=False)
    q.add_argument("--scores", nargs="+", required=True, help="shard CSVs at the reduced width")
    q.add_argument("--reference", nargs="+", required=True, help="shard CSVs at the reference width (same ids)")
    q.add_argument("--out", required=True, help="output CSV")
    q = step("search", "run a search method on the benchmark's space (forward cells, its 5 ops, its network at "
                       "benchmark.width) and look its pick up; writes a JSON record", _cmd_benchmark_search,
             {"out": "output_file"})
    q.add_argument("--method", required=True, help="search method (snasnet, lightsnn, random; spikenas searches two "
                                                   "cells, which the benchmark never trained)")
    q.add_argument("--seed", type=_seed, default=0, help="search seed (default 0)")
    q.add_argument("--out", required=True, help="output JSON")
    q = step("quality", "tabulate search picks (paired by seed with random) and the top-by-score curve",
             _cmd_benchmark_quality, {"picks": "input_file", "scores": "input_file", "out": "output_folder"})
    q.add_argument("--picks", nargs="+", required=True, help="JSON records written by 'search'")
    q.add_argument("--scores", nargs="*", default=[], help="shard CSVs for the top-by-score curve")
    q.add_argument("--out", required=True, help="output folder")
    q = step("anytime", "the anytime table at equal GPU-hours: training-based searches (early stopping, successive "
                        "halving, Hyperband, regularised evolution, a parameter-count prefilter) replayed on the "
                        "benchmark's curves and timings, beside the training-free picks; writes anytime.{csv,md,png}",
             _cmd_benchmark_anytime, {"picks": "input_file", "scores": "input_file", "out": "output_folder"})
    q.add_argument("--picks", nargs="*", default=[], help="JSON records written by 'search' (the training-free "
                                                          "searches, at their own search time)")
    q.add_argument("--scores", nargs="*", default=[], help="shard CSVs: adds a SAHD-prefilter hybrid on the scored "
                                                           "architectures")
    q.add_argument("--out", required=True, help="output folder")
    q = step("front", "the accuracy-energy plane of the trained networks (energy from their logged firing rates), "
                      "its Pareto front and where each method's picks lie; writes plane.csv, front_picks.csv, "
                      "front.md, front.png", _cmd_benchmark_front, {"picks": "input_file", "out": "output_folder"})
    q.add_argument("--picks", nargs="*", default=[], help="JSON records written by 'search'")
    q.add_argument("--out", required=True, help="output folder")


def _benchmark_overrides(args) -> dict:
    from lightsnn.nasbench.benchmark_options import BenchmarkOptions

    return _given(args, BenchmarkOptions)


def _cmd_benchmark_score(args) -> int:
    from lightsnn.studies.nasbench import score_shard

    path = score_shard(_config(args), args.shard, args.out, _benchmark_overrides(args),
                       progress=False if args.no_progress else None, log=lambda line: print(line, file=sys.stderr),
                       csv=args.csv)
    print(f"scores -> {path}")
    return 0


def _cmd_benchmark_correlate(args) -> int:
    from lightsnn.studies.nasbench import write_correlation

    config = _config(args)
    result = write_correlation(args.scores, config, args.out, _benchmark_overrides(args))
    taus = {f"tau.{row['score']}": row["tau"] for row in result["correlations"]}
    _track(result, config, f"{args.out}/correlation.json", args, taus)
    print(f"{result['benchmark']}: {result['architectures']} scored architectures")
    for row in result["correlations"]:
        print(f"  {row['score']:12s} n {row['n']:5d}  tau {row['tau']:+.3f} [{row['tau_low']:+.3f}, "
              f"{row['tau_high']:+.3f}]  rho {row['rho']:+.3f} [{row['rho_low']:+.3f}, {row['rho_high']:+.3f}]")
    print(f"-> {args.out}")
    return 0


def _cmd_benchmark_agree(args) -> int:
    from lightsnn.studies.nasbench import write_width_agreement

    table = write_width_agreement(args.scores, args.reference, args.out)
    for row in table.to_dict("records"):
        print(f"  {row['score']:12s} C={row['width']} vs C={row['reference_width']}: n {row['n']} tau {row['tau']:+.3f} "
              f"[{row['tau_low']:+.3f}, {row['tau_high']:+.3f}]; {row['seconds_per_arch']:.1f} s vs "
              f"{row['reference_seconds_per_arch']:.1f} s per architecture")
    print(f"-> {args.out}")
    return 0


def _cmd_benchmark_search(args) -> int:
    from lightsnn.pipeline.results import write_json_atomic
    from lightsnn.studies.nasbench_search import search_on_benchmark

    record = search_on_benchmark(_config(args), args.method, args.seed, _benchmark_overrides(args),
                                 progress=False if args.no_progress else None)
    write_json_atomic(args.out, record)
    print(f"{args.method} seed {args.seed}: id {record['id']} test acc {record['test_acc']:.2f} % "
          f"(percentile {record['percentile']:.0f} of valid), {record['search_seconds']:.1f} s -> {args.out}")
    return 0


def _cmd_benchmark_quality(args) -> int:
    from lightsnn.studies.nasbench_search import write_search_quality

    config = _config(args)
    result = write_search_quality(args.picks, args.scores, config, args.out, _benchmark_overrides(args))
    means = {f"acc.{row['method']}": row["acc_mean"] for row in result["methods"]}
    _track(result, config, f"{args.out}/search_quality.csv", args, means)
    for row in result["methods"]:
        print(f"  {row['method']:9s} {row['acc_mean']:.2f} ± {row['acc_std']:.2f} % over {row['seeds']} seeds")
    print(f"-> {args.out}")
    return 0


def _cmd_benchmark_anytime(args) -> int:
    from lightsnn.studies.nasbench_cost import write_anytime

    config = _config(args)
    result = write_anytime(args.picks, args.scores, config, args.out, _benchmark_overrides(args))
    largest = result[result["budget_gpu_hours"] == result["budget_gpu_hours"].max()]
    _track({"kind": "benchmark-anytime", "rows": len(result)}, config, f"{args.out}/anytime.csv", args,
           {f"acc.{r['method']}": r["acc_mean"] for r in largest.to_dict("records") if r["seeds"]})
    for row in largest.to_dict("records"):
        if row["seeds"]:
            print(f"  {row['method']:45s} {row['acc_mean']:.2f} % at {row['budget_gpu_hours']:g} GPU-hours "
                  f"(spent {row['hours_mean']:.1f})")
    print(f"-> {args.out}")
    return 0


def _cmd_benchmark_front(args) -> int:
    from lightsnn.studies.nasbench_front import write_energy_plane

    config = _config(args)
    result = write_energy_plane(args.picks, config, args.out, _benchmark_overrides(args))
    front = result["front"]
    _track({"kind": "benchmark-front", **front}, config, f"{args.out}/front.md", args,
           {f"on_front.{r['method']}": r["on_front"] / r["picks"] for r in result["summary"].to_dict("records")})
    print(f"{front['networks']} valid networks, {front['front_size']} on the Pareto front")
    for row in result["summary"].to_dict("records"):
        print(f"  {row['method']:9s} {row['on_front']}/{row['picks']} picks on the front, {row['near_front']} within "
              f"0.5 pp; firing {row['firing_mean']:.4f}")
    print(f"-> {args.out}")
    return 0
