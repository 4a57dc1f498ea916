"""Command line: ``python -m lightsnn <verb> ...``."""
from __future__ import annotations

import argparse
import os
import sys
import types
import typing
from dataclasses import fields

import yaml

from lightsnn.core.options import field_default
from lightsnn.core.runtime import keep_freed_memory
from lightsnn.data import DATASET_NAMES
from lightsnn.search import COMPAT_FLAGS, METHODS


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _int_in(low: int, high: int | None = None, what: str = "an integer"):
    """An argparse type: an integer in [low, high], with a one-line message naming the bad value."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"expected {what} {bound}, got {text!r}")
        return value
    return parse


_positive = _int_in(1)


def _seed(text: str) -> int:
    from lightsnn.pipeline.config import MAX_SEED
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"seed must be a non-negative integer up to {MAX_SEED}, got {text!r}")
    return value


def _yaml_value(text: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError(f"cannot read {text!r}; give a YAML value such as [zero, skip]") from None


def _flag_type(f, hint):
    """The argparse type of an option field, from its type hint and limits (lists and unions take YAML)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        hint = args[0]  # X | None: a flag given always means X
    low, high = f.metadata.get("min"), f.metadata.get("max")
    if hint is bool:
        return _bool
    if hint is int:
        return _int_in(int(low), high) if low is not None else int
    if hint is float or hint is str:
        return hint
    return _yaml_value


def _help(f) -> str:
    choices = f.metadata.get("choices")
    return f.metadata.get("help", "") + (f" {{{', '.join(map(str, choices))}}}" if choices else "")


def _option_flags(p, cls, names: tuple[str, ...] | None = None, title: str | None = None,
                  default_note: str = "") -> None:
    """A ``--<option>`` flag (default None: "not given") per field of an options dataclass, its type, limits
    and help generated from the field; ``args.<option>`` then overrides the config section."""
    hints = typing.get_type_hints(cls)
    group = p.add_argument_group(title) if title else p
    for f in fields(cls):
        if names is not None and f.name not in names:
            continue
        note = default_note.format(section=cls.section, name=f.name, default=field_default(f))
        group.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=_flag_type(f, hints[f.name]),
                           default=None, help=_help(f) + note, metavar=f.name.upper())


def _given(args, cls, names: tuple[str, ...] | None = None) -> dict:
    """The option flags of ``cls`` given on the command line."""
    return {f.name: getattr(args, f.name) for f in fields(cls)
            if (names is None or f.name in names) and getattr(args, f.name, None) is not None}


def _method_option_fields() -> dict[str, dict]:
    """Every method option by name: its type converter, and which methods use it with which default."""
    table: dict[str, dict] = {}
    for method in METHODS.values():
        hints = typing.get_type_hints(method.options)
        for f in fields(method.options):
            entry = table.setdefault(f.name, {"help": _help(f), "defaults": {},
                                              "type": _flag_type(f, hints[f.name])})
            entry["defaults"][method.name] = field_default(f)
    return table


def _search_parser(sub) -> tuple[argparse.ArgumentParser, dict]:
    p = sub.add_parser(
        "search", help="run one architecture search and write its result JSON",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run one training-free architecture search.\n\nMethods:\n"
        + "\n".join(f"  {m.name:9s} {m.description}" for m in METHODS.values())
        + "\n\nreference_compat flags (released-code behaviours, methods.md §7):\n"
        + "\n".join(f"  {k:16s} {v}" for k, v in COMPAT_FLAGS.items()),
        epilog="Method options override the config file's search.<method> section. Values that are lists "
               "take YAML, e.g. --space '[zero, conv3x3, skip]' or --reference-compat '[carry_state]'.")
    p.add_argument("--method", required=True, choices=list(METHODS), help="search method")
    p.add_argument("--dataset", required=True, help=f"dataset name ({', '.join(DATASET_NAMES)})")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default 0); same seed, same device: "
                                                       "same genotype and score")
    p.add_argument("--out", required=True, help="path of the result JSON (written atomically)")
    _common_job_flags(p)
    table = _method_option_flags(p)
    p.set_defaults(func=lambda args: _cmd_search(args, table))
    return p, table


def _method_option_flags(p) -> dict:
    """A ``--<option>`` flag per method option; returns the table :func:`_method_overrides` reads."""
    table = _method_option_fields()
    group = p.add_argument_group("method options (default per method in brackets)")
    for name, entry in table.items():
        defaults = ", ".join(f"{m}: {v}" for m, v in entry["defaults"].items())
        group.add_argument("--" + name.replace("_", "-"), dest=f"opt_{name}", type=entry["type"], default=None,
                           help=f"{entry['help']} [{defaults}]", metavar=name.upper())
    return table


def _method_overrides(args, table: dict) -> dict:
    overrides = {}
    for name, entry in table.items():
        value = getattr(args, f"opt_{name}")
        if value is None:
            continue
        if args.method not in entry["defaults"]:
            raise ValueError(f"--{name.replace('_', '-')} is not an option of method {args.method!r} "
                             f"(it belongs to {', '.join(entry['defaults'])})")
        overrides[name] = value
    return overrides


def _track(result: dict, config: dict, path, args, metrics: dict | None = None) -> None:
    if getattr(args, "no_tracking", False):
        return
    from lightsnn.pipeline.tracking import track, tracking_uri

    run_id = track(result, config, path, metrics)
    if run_id:
        print(f"MLflow run {run_id} in {tracking_uri(config)}", file=sys.stderr)


def _live_run(args, config: dict, kind: str, identity: dict):
    """The job's MLflow run (inactive with --no-tracking), opened by the caller when the job starts."""
    from lightsnn.pipeline.tracking import LiveRun

    run = LiveRun(config, kind, identity, group=getattr(args, "group", None))
    if getattr(args, "no_tracking", False):
        run.active = False
    return run


def _announce(run) -> None:
    if run.key and run.active:
        print(f"MLflow run {run.run_id or '(job key ' + run.key + ')'} in {run.where}", file=sys.stderr)


#: Set by the workflow: the config's ``name`` and ``tracking`` sections as JSON, merged before --config-json.
TRACKING_ENV = "LIGHTSNN_TRACKING"

#: Flags several verbs share, declared once: name -> (flag, argparse keywords).
SHARED_FLAGS: dict[str, tuple[str, dict]] = {
    "config": ("--config", {"action": "append", "default": None,
                            "help": "YAML config file (see config/README.md); repeat to merge several, later ones win"}),
    "config_json": ("--config-json", {"action": "append", "default": None, "metavar": "JSON",
                                      "help": "config sections as inline JSON, merged over the --config files "
                                              "(the workflow passes each job the sections it depends on)"}),
    "device": ("--device", {"default": None, "help": "auto, cpu, cuda or cuda:N (overrides the config's device)"}),
    "no_progress": ("--no-progress", {"action": "store_true", "help": "no progress bar, even on a terminal"}),
    "no_tracking": ("--no-tracking", {"action": "store_true", "help": "do not log this run to MLflow"}),
    "threads": ("--threads", {"type": _positive, "default": None,
                              "help": "CPU threads for torch (default: torch's choice)"}),
    "group": ("--group", {"default": None, "help": "MLflow parent run this job's run nests under (the workflow "
                                                   "passes DATASET/RUN/seedS)"}),
}
JOB_FLAGS = tuple(SHARED_FLAGS)


def _common_job_flags(p, names: tuple[str, ...] = JOB_FLAGS) -> None:
    for name in names:
        flag, kwargs = SHARED_FLAGS[name]
        p.add_argument(flag, **kwargs)


def _evaluate_options(args, config: dict):
    from lightsnn.training.metrics import EvaluateOptions

    return EvaluateOptions.from_config(config.get("evaluate"), _given(args, EvaluateOptions))


def _evaluate_flags(p) -> None:
    from lightsnn.training.metrics import EvaluateOptions

    _option_flags(p, EvaluateOptions, default_note=" (default: the config's {section}.{name}, else {default})")


def _config(args) -> dict:
    """The merged config files of ``--config`` and ``--config-json``, with ``--device`` applied: one place for
    every verb."""
    from lightsnn.pipeline.config import job_config

    inline = list(getattr(args, "config_json", None) or [])
    if os.environ.get(TRACKING_ENV):  # the workflow's name and tracking sections (no result depends on them)
        inline.insert(0, os.environ[TRACKING_ENV])
    config = job_config(getattr(args, "config", None), inline)
    if getattr(args, "device", None):
        config["device"] = args.device
    return config


TRAIN_FLAGS = ("recipe", "epochs", "batch_size", "lr", "max_batches")


def _train_parser(sub) -> None:
    from lightsnn.training.train import TrainOptions

    p = sub.add_parser("train", help="train a found architecture from scratch and write its checkpoint",
                       description="Train the discrete network of a search result (or a genotype) with surrogate "
                                   "gradients. A checkpoint is written every epoch; running the same command again "
                                   "after a kill resumes from it. A checkpoint of another setup (genotype, options, "
                                   "seed, dataset, network) or of a finished training is never resumed: the run "
                                   "trains from scratch and says why. Writes OUT/train.json, OUT/checkpoint.pt, "
                                   "OUT/best.pt.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--search", help="search result JSON (its genotype and network are trained)")
    src.add_argument("--genotype", help="a genotype string, e.g. '0302 0030 3003 0000'")
    p.add_argument("--dataset", required=True, help="dataset name")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    p.add_argument("--out", required=True, help="output folder")
    _option_flags(p, TrainOptions, TRAIN_FLAGS, "training options (override the config's train section)")
    p.add_argument("--fresh", action="store_true",
                   help="train from scratch even when OUT holds a resumable checkpoint of this very training")
    p.add_argument("--allow-disconnected", action="store_true",
                   help="train a cell with no path from its input to its output (its output ignores the input)")
    _common_job_flags(p)
    p.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    from pathlib import Path

    from lightsnn.pipeline.jobs import run_train
    from lightsnn.pipeline.results import read_result, write_json_atomic
    from lightsnn.training.train import TrainOptions

    config = _config(args)
    search = read_result(args.search, "search") if args.search else None
    overrides = _given(args, TrainOptions, TRAIN_FLAGS)
    run = _live_run(args, config, "train", {"method": (search or {}).get("method"), "dataset": args.dataset,
                                            "seed": args.seed})

    def on_start(extra: dict | None, epoch: int) -> dict:
        """Open the run (a resumed training reopens its own) before the first epoch; keep its job key."""
        key = run.start((extra or {}).get("tracking_key"))
        _announce(run)
        return {"tracking_key": key} if key else {}

    with run:
        result = run_train(args.dataset, args.seed, config, args.out, search=search, genotype=args.genotype,
                           overrides=overrides, progress=False if args.no_progress else None, fresh=args.fresh,
                           allow_disconnected=args.allow_disconnected, on_epoch=run.log_epoch, on_start=on_start)
        path = write_json_atomic(Path(args.out) / "train.json", result)
        run.finish(result, path)
    print(f"trained {result['genotype']['str']} on {args.dataset}: final test acc {result['final_test_acc']:.4f}, "
          f"best epoch {result['best_epoch']} ({result['selection']}), "
          f"{result['seconds_per_epoch']:.1f}s/epoch -> {path}")
    return 0


def _evaluate_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="measure a trained checkpoint: accuracy, SAR, params, SynOps, energy",
                       description="Evaluate a checkpoint on its test set: top-1/top-5, spiking activity rate over "
                                   "the whole test set, parameters and weight memory, synaptic operations and an "
                                   "energy estimate (spikingjelly op_counter; 0.9 pJ per AC, 4.6 pJ per MAC, "
                                   "Horowitz ISSCC 2014, 45 nm), and inference latency per sample.")
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt or best.pt written by 'train'")
    p.add_argument("--out", default=None, help="result JSON (default: evaluate.json beside the checkpoint)")
    _evaluate_flags(p)
    _common_job_flags(p)
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args) -> int:
    from pathlib import Path

    from lightsnn.pipeline.jobs import run_evaluate
    from lightsnn.pipeline.results import write_json_atomic

    config = _config(args)
    evaluate = _evaluate_options(args, config)
    run = _live_run(args, config, "evaluate", {})
    with run:
        result = run_evaluate(args.checkpoint, config, bits=evaluate.bits, energy_samples=evaluate.energy_samples,
                              progress=False if args.no_progress else None)
        path = write_json_atomic(args.out or Path(args.checkpoint).with_name("evaluate.json"), result)
        run.tags.update({k: str(result.get(k)) for k in ("method", "dataset", "seed")})
        run.start()
        _announce(run)
        run.finish(result, path)
    top5 = f"{result['top5']:.4f}" if result["top5"] is not None else "n/a"
    print(f"{result['dataset']} {result['genotype']}: top-1 {result['top1']:.4f} top-5 {top5} "
          f"SAR {result['sar']:.4f} params {result['parameters']} "
          f"({result['bytes_fp32'] / 1e6:.3f} MB fp32, {result[f'bytes_{evaluate.bits}bit'] / 1e6:.3f} MB {evaluate.bits}-bit) "
          f"stored {result['model_size_bytes'] / 1e3:.2f} KB "
          f"SynOps/sample {result['synops_per_sample']:.3g} bit-SynOps/sample {result['bit_synops_per_sample']:.3g} "
          f"MACs/sample {result['macs_per_sample']:.3g} "
          f"energy/sample {result['energy_pj_per_sample'] / 1e6:.3f} uJ "
          f"latency {result['latency_seconds_per_sample'] * 1e3:.2f} ms -> {path}")
    return 0


def _cmd_search(args, table) -> int:
    from pathlib import Path

    from lightsnn.pipeline.jobs import run_search
    from lightsnn.pipeline.results import write_json_atomic

    overrides = _method_overrides(args, table)
    config = _config(args)
    run = _live_run(args, config, "search", {"method": args.method, "dataset": args.dataset, "seed": args.seed})
    with run:
        run.start()
        _announce(run)
        result = run_search(args.method, args.dataset, args.seed, config, overrides,
                            progress=False if args.no_progress else None,
                            checkpoint=Path(args.out).with_suffix(".ckpt.pt"), on_epoch=run.log_epoch)
        path = write_json_atomic(args.out, result)
        run.finish(result, path, table=("candidates", result["candidates"]))
    times = result["times"]
    score = result["score"]
    print(f"{args.method} on {args.dataset} (seed {args.seed}): genotype {result['genotype']['str']} "
          f"score {score if score is None else format(score, '.4f')} "
          f"scorings {result['num_scorings']} search {times['search_seconds']:.2f}s "
          f"(compute {times['compute_seconds']:.2f}s, data {times['data_seconds']:.2f}s) -> {path}")
    return 0


def _prepare_parser(sub) -> None:
    p = sub.add_parser("prepare", help="check a dataset's files; frame and cache event datasets once",
                       description="Load a dataset as searches and trainings will. Event datasets (ndigits, "
                                   "dvs128_gesture) are framed into T frames once and cached under data.cache; "
                                   "static ones are checked and counted. Prints what was done.")
    p.add_argument("--dataset", required=True, help=f"dataset name ({', '.join(DATASET_NAMES)})")
    p.add_argument("--timesteps", type=_positive, default=None, help="frames per sample (default: the network's T)")
    p.add_argument("--report", default=None, help="also write the report as JSON to this path")
    _common_job_flags(p, ("config", "config_json", "no_progress", "threads"))
    p.set_defaults(func=_cmd_prepare)


def _cmd_prepare(args) -> int:
    import json

    from lightsnn.data import prepare
    from lightsnn.pipeline.config import net_config
    from lightsnn.pipeline.results import write_json_atomic

    config = _config(args)
    timesteps = args.timesteps or net_config(args.dataset, config).timesteps
    report = prepare(args.dataset, config.get("data"), timesteps, progress=False if args.no_progress else None)
    if args.report:
        write_json_atomic(args.report, report)
    print(f"{args.dataset}: prepared in {report['seconds']:.1f}s")
    for split in ("train", "test"):
        info = report[split]
        print(f"  {split}: {info['samples']} samples of shape {info['input_shape']}; per class {info['per_class']}")
    for split, cache in (report.get("cache") or {}).items():
        print(f"  {split} cache: {cache['path']} ({cache['bytes'] / 1e6:.1f} MB, "
              f"{'built' if cache['built'] else 'reused'} in {cache['seconds']:.1f}s"
              + (f", events per sample {cache['events_mean']:.0f} [{cache['events_min']}..{cache['events_max']}])"
                 if "events_mean" in cache else ")"))
    if not report.get("cache"):
        print("  " + json.dumps({k: v for k, v in report.items() if k in ("root", "path")}))
    return 0


def _report_parser(sub) -> None:
    p = sub.add_parser("report", help="aggregate run folders into tables (csv, md, tex) and plots",
                       description="Each run folder holds search.json, train/train.json and evaluate.json of one "
                                   "dataset, run and seed (the workflow's layout). Writes table2.*, runs.csv, "
                                   "accuracy_vs_sar.png, search_time.png and, with --table1, table1.*.")
    p.add_argument("--runs", nargs="+", required=True, help="run folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--table1", nargs=3, metavar=("DATASET", "RANDOM_RUN", "PRUNING_RUN"), default=None,
                   help="also write table 1: random search vs pruning on one dataset")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args) -> int:
    from lightsnn.pipeline.report import build_report

    spec = dict(zip(("dataset", "random", "pruning"), args.table1)) if args.table1 else None
    written = build_report(args.runs, args.out, spec)
    print(f"aggregated {len(args.runs)} runs -> " + ", ".join(written.values()))
    return 0


def _bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="measure search and training speed against plain conv2d throughput",
                       description="Runs a LightSNN search, a short SNASNet search and training steps at the sizes "
                                   "of the config's bench section (or the flags), counts their FLOPs analytically "
                                   "and compares them with plain torch conv2d calls of the same shapes.")
    _common_job_flags(p, ("config", "config_json", "device", "threads"))
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    from lightsnn.studies.bench import BenchOptions

    _option_flags(p, BenchOptions, title="sizes (override the config's bench section)",
                  default_note=" [{default}]")
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args) -> int:
    from lightsnn.pipeline.config import resolve_device
    from lightsnn.pipeline.results import write_json_atomic
    from lightsnn.studies.bench import BenchOptions, run_bench

    config = _config(args)
    opts = BenchOptions.from_config(config.get("bench"), _given(args, BenchOptions))
    figures = run_bench(opts, resolve_device(config.get("device")))
    if args.json:
        write_json_atomic(args.json, figures)
    return 0


def _correlate_parser(sub) -> None:
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
    p.set_defaults(func=_cmd_correlate)


def _cmd_correlate(args) -> int:
    from lightsnn.studies.evidence import run_correlate

    config = _config(args)
    overrides = {"space": args.space, "num_archs": args.n, "train_epochs": args.epochs}
    out = args.out or f"results/evidence/{args.dataset}"
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


def _replicate_parser(sub) -> dict:
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
    p.set_defaults(func=lambda args: _cmd_replicate(args, table))
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


def _evidence_parser(sub) -> None:
    p = sub.add_parser("evidence", help="tables and plots of the evidence study from correlate/replicate outputs",
                       description="Writes correlation.*, comparison.* (every method vs the baseline, paired by "
                                   "seed: mean difference, t-test and Wilcoxon p), ablation.* (LightSNN vs each "
                                   "reference_compat switch) and comparison.png.")
    p.add_argument("--correlate", nargs="*", default=[], help="correlate.json files")
    p.add_argument("--replicate", nargs="*", default=[], help="replicate.json files")
    p.add_argument("--baseline", default="random", help="run every method is paired with (default random)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=_cmd_evidence)


def _cmd_evidence(args) -> int:
    from lightsnn.studies.evidence import write_evidence_tables

    written = write_evidence_tables(args.correlate, args.replicate, args.out, args.baseline)
    print("evidence tables -> " + ", ".join(written.values()))
    return 0


def _schema_parser(sub) -> None:
    p = sub.add_parser("schema", help="print the workflow config schema, or check config files against it",
                       description="Print the workflow config schema generated from the registries, or with "
                                   "--check validate config files merged in order (as Snakemake merges "
                                   "--configfile over config/config.yaml), naming the file and line of a YAML "
                                   "error, which Snakemake's own message does not.")
    p.add_argument("--out", default=None, help="write it to this file instead of printing")
    p.add_argument("--check", nargs="+", default=None, metavar="CONFIG",
                   help="config files to merge in order and validate, e.g. config/config.yaml my.yaml")
    p.add_argument("--docs", default=None, metavar="README",
                   help="regenerate the option tables of this file (config/README.md) in place")
    p.set_defaults(func=_cmd_schema)


def _cmd_schema(args) -> int:
    from pathlib import Path

    from lightsnn.core.atomic import write_text_atomic
    from lightsnn.schema import check_config_files, render_config_readme, schema_yaml

    if args.docs:
        text = Path(args.docs).read_text()
        write_text_atomic(args.docs, render_config_readme(text))
        print(f"option tables regenerated in {args.docs}")
        return 0
    if args.check:
        check_config_files(args.check)
        print(f"valid: {' + '.join(args.check)}")
        return 0
    text = schema_yaml()
    if args.out:
        write_text_atomic(args.out, text)
    else:
        sys.stdout.write(text)
    return 0


def _benchmark_parser(sub) -> None:
    from lightsnn.nasbench.options import BenchmarkOptions

    p = sub.add_parser("benchmark", help="score, correlate and search on a tabular NAS benchmark (no training)",
                       description="Evidence from a NAS benchmark of trained SNNs (default SpikeNAS-Bench: 15,625 "
                                   "architectures trained on CIFAR-10): 'score' computes every registered proxy for a "
                                   "shard of a seeded sample of its valid architectures, 'correlate' rank-correlates "
                                   "the scores with the benchmark's test accuracy beside its early-stopping "
                                   "baselines, 'agree' compares scores at two widths, 'search' runs a search method "
                                   "on the benchmark's space and looks its pick up, 'quality' tabulates the picks. "
                                   "Defaults come from the config's benchmark section (config/README.md).")
    verbs = p.add_subparsers(dest="benchmark_command", required=True, metavar="STEP")

    def step(name: str, help: str, func, flags=True):
        q = verbs.add_parser(name, help=help, description=help)
        _common_job_flags(q, ("config", "config_json", "device", "no_progress", "no_tracking", "threads"))
        if flags:
            _option_flags(q, BenchmarkOptions, title="benchmark options (override the config's benchmark section)",
                          default_note=" (default: the config's {section}.{name}, else {default})")
        q.set_defaults(func=func)
        return q

    q = step("score", "score one shard of the sample with every proxy; writes OUT/scores-C<width>-<hash>/shard-*.csv "
                      "(resumable: a killed run continues)", _cmd_benchmark_score)
    q.add_argument("--shard", type=int, default=0, help="shard index, 0..shards-1 (default 0)")
    q.add_argument("--out", default="results/benchmark", help="output folder (default results/benchmark)")
    q.add_argument("--csv", default=None, help="write the shard here instead (the workflow names its files)")
    q = step("correlate", "Kendall tau / Spearman rho of every score with test accuracy, with intervals; writes "
                          "correlation.{csv,md,json} and scatter.png", _cmd_benchmark_correlate)
    q.add_argument("--scores", nargs="+", required=True, help="shard CSVs written by 'score'")
    q.add_argument("--out", required=True, help="output folder")
    q = step("agree", "rank agreement of each proxy between scores at a reduced width and at a reference width",
             _cmd_benchmark_agree, flags=False)
    q.add_argument("--scores", nargs="+", required=True, help="shard CSVs at the reduced width")
    q.add_argument("--reference", nargs="+", required=True, help="shard CSVs at the reference width (same ids)")
    q.add_argument("--out", required=True, help="output CSV")
    q = step("search", "run a search method on the benchmark's space (forward cells, its 5 ops, its network at "
                       "benchmark.width) and look its pick up; writes a JSON record", _cmd_benchmark_search)
    q.add_argument("--method", required=True, help="search method (snasnet, lightsnn, random; spikenas searches two "
                                                   "cells, which the benchmark never trained)")
    q.add_argument("--seed", type=_seed, default=0, help="search seed (default 0)")
    q.add_argument("--out", required=True, help="output JSON")
    q = step("quality", "tabulate search picks (paired by seed with random) and the top-by-score curve",
             _cmd_benchmark_quality)
    q.add_argument("--picks", nargs="+", required=True, help="JSON records written by 'search'")
    q.add_argument("--scores", nargs="*", default=[], help="shard CSVs for the top-by-score curve")
    q.add_argument("--out", required=True, help="output folder")


def _benchmark_overrides(args) -> dict:
    from lightsnn.nasbench.options import BenchmarkOptions

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
    from lightsnn.studies.nasbench import search_on_benchmark

    record = search_on_benchmark(_config(args), args.method, args.seed, _benchmark_overrides(args),
                                 progress=False if args.no_progress else None)
    write_json_atomic(args.out, record)
    print(f"{args.method} seed {args.seed}: id {record['id']} test acc {record['test_acc']:.2f} % "
          f"(percentile {record['percentile']:.0f} of valid), {record['search_seconds']:.1f} s -> {args.out}")
    return 0


def _cmd_benchmark_quality(args) -> int:
    from lightsnn.studies.nasbench import write_search_quality

    config = _config(args)
    result = write_search_quality(args.picks, args.scores, config, args.out, _benchmark_overrides(args))
    means = {f"acc.{row['method']}": row["acc_mean"] for row in result["methods"]}
    _track(result, config, f"{args.out}/search_quality.csv", args, means)
    for row in result["methods"]:
        print(f"  {row['method']:9s} {row['acc_mean']:.2f} ± {row['acc_std']:.2f} % over {row['seeds']} seeds")
    print(f"-> {args.out}")
    return 0


def _relay_parser(sub) -> None:
    p = sub.add_parser("relay", help="write the workflow's tracking journal to MLflow as jobs append to it",
                       description="The workflow starts one relay when it starts and stops it when it ends: jobs "
                                   "append their MLflow runs (start, one line per epoch, finish) to JOURNAL/*.jsonl "
                                   "and the relay writes them to the store of the config's tracking section (or "
                                   "MLFLOW_TRACKING_URI). Progress is kept in JOURNAL/relay-state.json: run it "
                                   "with --once to write what a stopped relay left.")
    p.add_argument("--journal", required=True, help="journal folder (the workflow's RESULTS/tracking/journal)")
    p.add_argument("--once", action="store_true", help="write what is there, then stop")
    p.add_argument("--stop-file", default=None, help="stop (after writing what is left) once this file exists")
    p.add_argument("--watch-pid", type=int, default=None, help="stop (after writing what is left) once this "
                                                                 "process is gone (the workflow passes its own)")
    p.add_argument("--poll", type=float, default=0.5, help="seconds between looks at the journal (default 0.5)")
    _common_job_flags(p, ("config", "config_json"))
    p.set_defaults(func=_cmd_relay)


def _cmd_relay(args) -> int:
    from pathlib import Path

    from lightsnn.pipeline.tracking import relay, tracking_uri

    config = _config(args)
    if args.poll <= 0:
        raise ValueError(f"--poll must be > 0 seconds, got {args.poll}")

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def should_stop() -> bool:
        return (args.once or (args.stop_file is not None and Path(args.stop_file).exists())
                or (args.watch_pid is not None and gone(args.watch_pid)))

    uri = tracking_uri(config)
    print(f"relaying {args.journal} to {uri}", file=sys.stderr, flush=True)
    try:
        written = relay(Path(args.journal), uri, should_stop, poll=args.poll)
    except Exception:  # relay() has said what failed in one line; the journal keeps the events
        return 1
    print(f"relay stopped: {written} event(s) written to {uri}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Every verb's parser; each sets ``func``, the function that runs it."""
    parser = argparse.ArgumentParser(prog="python -m lightsnn",
                                     description="Training-free architecture search for spiking networks.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_search_parser, _prepare_parser, _train_parser, _evaluate_parser, _schema_parser, _report_parser,
                _bench_parser, _correlate_parser, _replicate_parser, _evidence_parser, _benchmark_parser, _relay_parser):
        add(sub)
    return parser


def _stop_on_sigterm() -> None:
    """SIGTERM (Snakemake or SLURM cancelling a job) unwinds like Ctrl-C: checkpoints stay whole and the
    job's MLflow run ends as KILLED instead of hanging in RUNNING."""
    import signal
    import threading

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _stop_on_sigterm()
    keep_freed_memory()
    if getattr(args, "threads", None):
        import torch
        torch.set_num_threads(args.threads)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
