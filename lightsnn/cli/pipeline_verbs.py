"""The pipeline's verbs: prepare, search, train, evaluate, report, schema, relay."""
from __future__ import annotations

import argparse
import os
import sys

from lightsnn.cli.flags import (
    _announce,
    _common_job_flags,
    _config,
    config_inputs,
    _evaluate_flags,
    _evaluate_options,
    _given,
    _live_run,
    _method_option_flags,
    _method_overrides,
    _option_flags,
    _positive,
    _seed,
)
from lightsnn.core.atomic import claimed, write_text_atomic
from lightsnn.core.layout import EVALUATE_FILE, TRACKING_KEY_FILE, TRAIN_FILE, file_name
from lightsnn.data import DATASET_NAMES
from lightsnn.search import COMPAT_FLAGS, METHODS


def add_search(sub) -> tuple[argparse.ArgumentParser, dict]:
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
    p.set_defaults(func=lambda args: _cmd_search(args, table), paths={"out": "output_file"})
    return p, table


TRAIN_FLAGS = ("recipe", "epochs", "batch_size", "lr", "max_batches")


def add_train(sub) -> None:
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
    p.set_defaults(func=_cmd_train, paths={"search": "input_file", "out": "output_folder"})


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

    open_key = Path(args.out) / file_name(TRACKING_KEY_FILE)

    def on_start(extra: dict | None, epoch: int) -> dict:
        """Open the run (a resumed training reopens its own) before the first epoch; keep its job key, in the
        checkpoint and, until the run finishes, in OUT: an attempt killed before its first checkpoint leaves
        that key, and the next attempt ends its RUNNING run as KILLED instead of leaving it open forever."""
        resumed = (extra or {}).get("tracking_key")
        key = run.start(resumed)
        if key and open_key.is_file():
            run.close_stale(open_key.read_text().strip())
        if key:
            write_text_atomic(open_key, key)
        _announce(run)
        return {"tracking_key": key} if key else {}

    with claimed(args.out, folder=True), run:
        result = run_train(args.dataset, args.seed, config, args.out, search=search, genotype=args.genotype,
                           overrides=overrides, progress=False if args.no_progress else None, fresh=args.fresh,
                           allow_disconnected=args.allow_disconnected, on_epoch=run.log_epoch, on_start=on_start)
        path = write_json_atomic(Path(args.out) / file_name(TRAIN_FILE), result)
        run.finish(result, path)
        open_key.unlink(missing_ok=True)
    print(f"trained {result['genotype']['str']} on {args.dataset}: final test acc {result['final_test_acc']:.4f}, "
          f"best epoch {result['best_epoch']} ({result['selection']}), "
          f"{result['seconds_per_epoch']:.1f}s/epoch -> {path}")
    return 0


def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="measure a trained checkpoint: accuracy, SAR, params, SynOps, energy",
                       description="Evaluate a checkpoint on its test set: top-1/top-5, spiking activity rate over "
                                   "the whole test set, parameters and weight memory, synaptic operations and an "
                                   "energy estimate (spikingjelly op_counter; 0.9 pJ per AC, 4.6 pJ per MAC, "
                                   "Horowitz ISSCC 2014, 45 nm), and inference latency per sample.")
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt or best.pt written by 'train'")
    p.add_argument("--out", default=None, help="result JSON (default: evaluate.json beside the checkpoint)")
    _evaluate_flags(p)
    _common_job_flags(p)
    p.set_defaults(func=_cmd_evaluate, paths={"checkpoint": "input_file"})  # --out: checked with its default


def _cmd_evaluate(args) -> int:
    from pathlib import Path

    from lightsnn.pipeline.jobs import run_evaluate
    from lightsnn.pipeline.results import write_json_atomic

    from lightsnn.core.paths import output_file, spare_inputs

    config = _config(args)
    evaluate = _evaluate_options(args, config)
    out = output_file(args.out or Path(args.checkpoint).with_name(EVALUATE_FILE), "--out")
    spare_inputs(("--out", out), [("--checkpoint", args.checkpoint), *config_inputs(args)])
    run = _live_run(args, config, "evaluate", {})
    with run:
        result = run_evaluate(args.checkpoint, config, bits=evaluate.bits, energy_samples=evaluate.energy_samples,
                              progress=False if args.no_progress else None)
        path = write_json_atomic(out, result)
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

    from lightsnn.pipeline.jobs import given_flags, run_search
    from lightsnn.pipeline.results import write_json_atomic
    from lightsnn.pipeline.tracking import ranked_candidates

    overrides = _method_overrides(args, table)
    config = _config(args)
    run = _live_run(args, config, "search", {"method": args.method, "dataset": args.dataset, "seed": args.seed})
    with claimed(args.out), run:
        run.start()
        _announce(run)
        result = run_search(args.method, args.dataset, args.seed, config, overrides, flags=given_flags(overrides),
                            progress=False if args.no_progress else None,
                            checkpoint=Path(args.out).with_suffix(".ckpt.pt"), on_epoch=run.log_epoch)
        path = write_json_atomic(args.out, result)
        run.finish(result, path, table=("candidates", ranked_candidates(result)))
    times = result["times"]
    score = result["score"]
    print(f"{args.method} on {args.dataset} (seed {args.seed}): genotype {result['genotype']['str']} "
          f"score {score if score is None else format(score, '.4f')} "
          f"scorings {result['num_scorings']} search {times['search_seconds']:.2f}s "
          f"(compute {times['compute_seconds']:.2f}s, data {times['data_seconds']:.2f}s) -> {path}")
    return 0


def add_prepare(sub) -> None:
    p = sub.add_parser("prepare", help="check a dataset's files; frame and cache event datasets once",
                       description="Load a dataset as searches and trainings will. Event datasets (ndigits, "
                                   "dvs128_gesture) are framed into T frames once and cached under data.cache; "
                                   "static ones are checked and counted. Prints what was done.")
    p.add_argument("--dataset", required=True, help=f"dataset name ({', '.join(DATASET_NAMES)})")
    p.add_argument("--timesteps", type=_positive, default=None, help="frames per sample (default: the network's T)")
    p.add_argument("--report", default=None, help="also write the report as JSON to this path")
    _common_job_flags(p, ("config", "config_json", "no_progress", "threads"))
    p.set_defaults(func=_cmd_prepare, paths={"report": "output_file"})


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


def add_report(sub) -> None:
    p = sub.add_parser("report", help="aggregate run folders into tables (csv, md, tex, html) and plots",
                       description="Each run folder holds search.json, train/train.json and evaluate.json of one "
                                   "dataset, run and seed (the workflow's layout). Writes table2.{csv,md,tex,html} "
                                   "(each run against the 'random' run, paired by seed), runs.csv, "
                                   "accuracy_vs_sar.png, search_time.png and, with --table1, table1.*.")
    p.add_argument("--runs", nargs="+", required=True, help="run folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--table1", nargs=3, metavar=("DATASET", "RANDOM_RUN", "PRUNING_RUN"), default=None,
                   help="also write table 1: random search vs pruning on one dataset")
    p.set_defaults(func=_cmd_report, paths={"runs": "input_folder", "out": "output_folder"})


def _cmd_report(args) -> int:
    from lightsnn.pipeline.report import build_report

    spec = dict(zip(("dataset", "random", "pruning"), args.table1)) if args.table1 else None
    written = build_report(args.runs, args.out, spec)
    print(f"aggregated {len(args.runs)} runs -> " + ", ".join(written.values()))
    return 0


def add_schema(sub) -> None:
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
    p.set_defaults(func=_cmd_schema, paths={"out": "output_file", "check": "input_file", "docs": "input_file"})


def _cmd_schema(args) -> int:
    from pathlib import Path

    from lightsnn.core.atomic import write_text_atomic
    from lightsnn.schema import check_config_files, render_config_readme, schema_yaml

    if args.docs:
        try:
            text = Path(args.docs).read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{args.docs!r} is not a text file (byte {err.start} is not UTF-8); give "
                             "config/README.md") from None
        write_text_atomic(args.docs, render_config_readme(text, repr(args.docs)))
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


def add_relay(sub) -> None:
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
    p.set_defaults(func=_cmd_relay, paths={"journal": "input_folder"})


def _cmd_relay(args) -> int:
    from pathlib import Path

    from lightsnn.pipeline.journal import relay
    from lightsnn.pipeline.tracking import tracking_uri

    config = _config(args)
    if not args.poll > 0 or args.poll == float("inf"):  # NaN compares false: refused too
        raise ValueError(f"--poll must be a finite number of seconds > 0, got {args.poll}")

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
