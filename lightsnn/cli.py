"""Command line: ``python -m lightsnn <verb> ...``."""
from __future__ import annotations

import argparse
import sys
from dataclasses import MISSING, fields

import yaml

from .data import DATASET_NAMES
from .search import COMPAT_FLAGS, METHODS


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _yaml_value(text: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError(f"cannot read {text!r}; give a YAML value such as [zero, skip]") from None


def _method_option_fields() -> dict[str, dict]:
    """Every method option by name: its type converter, and which methods use it with which default."""
    table: dict[str, dict] = {}
    for method in METHODS.values():
        for f in fields(method.options):
            default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
            entry = table.setdefault(f.name, {"help": f.metadata.get("help", ""), "defaults": {},
                                              "choices": f.metadata.get("choices")})
            entry["defaults"][method.name] = default
            if isinstance(default, bool):
                entry["type"] = _bool
            elif isinstance(default, int):
                entry["type"] = int
            elif isinstance(default, float):
                entry["type"] = float
            elif isinstance(default, str) and f.name not in ("space", "reference_compat"):
                entry["type"] = str
            else:
                entry.setdefault("type", _yaml_value)
    return table


def _search_parser(sub) -> tuple[argparse.ArgumentParser, dict]:
    p = sub.add_parser(
        "search", help="run one architecture search and write its result JSON",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run one training-free architecture search.\n\nMethods:\n"
        + "\n".join(f"  {m.name:9s} {m.description}" for m in METHODS.values())
        + "\n\nreference_compat flags (released-code behaviours, spec 7):\n"
        + "\n".join(f"  {k:16s} {v}" for k, v in COMPAT_FLAGS.items()),
        epilog="Method options override the config file's search.<method> section. Values that are lists "
               "take YAML, e.g. --space '[zero, conv3x3, skip]' or --reference-compat '[carry_state]'.")
    p.add_argument("--method", required=True, choices=list(METHODS), help="search method")
    p.add_argument("--dataset", required=True, help=f"dataset name ({', '.join(DATASET_NAMES)})")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same device: "
                                                       "same genotype and score")
    p.add_argument("--config", default=None, help="YAML config file (see config/README.md); optional")
    p.add_argument("--out", required=True, help="path of the result JSON (written atomically)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (overrides the config's device)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")
    table = _method_option_fields()
    group = p.add_argument_group("method options (default per method in brackets)")
    for name, entry in table.items():
        defaults = ", ".join(f"{m}: {v}" for m, v in entry["defaults"].items())
        choices = f" {{{', '.join(entry['choices'])}}}" if entry["choices"] else ""
        group.add_argument("--" + name.replace("_", "-"), dest=f"opt_{name}", type=entry["type"], default=None,
                           help=f"{entry['help']}{choices} [{defaults}]", metavar=name.upper())
    return p, table


def _cmd_search(args, table) -> int:
    from .config import load_config
    from .jobs import run_search
    from .results import write_json_atomic

    overrides = {}
    for name, entry in table.items():
        value = getattr(args, f"opt_{name}")
        if value is None:
            continue
        if args.method not in entry["defaults"]:
            raise ValueError(f"--{name.replace('_', '-')} is not an option of method {args.method!r} "
                             f"(it belongs to {', '.join(entry['defaults'])})")
        overrides[name] = value
    config = load_config(args.config)
    if args.device:
        config["device"] = args.device
    result = run_search(args.method, args.dataset, args.seed, config, overrides,
                        progress=False if args.no_progress else None)
    path = write_json_atomic(args.out, result)
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
    p.add_argument("--config", default=None, help="YAML config file (data and network sections)")
    p.add_argument("--timesteps", type=int, default=None, help="frames per sample (default: the network's T)")
    p.add_argument("--report", default=None, help="also write the report as JSON to this path")
    p.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")


def _cmd_prepare(args) -> int:
    import json

    from .config import load_config, net_config
    from .data import prepare
    from .results import write_json_atomic

    config = load_config(args.config)
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
              f"{'built' if cache['built'] else 'reused'} in {cache['seconds']:.1f}s, "
              f"events per sample {cache.get('events_mean', 0):.0f} "
              f"[{cache.get('events_min', 0)}..{cache.get('events_max', 0)}])")
    if not report.get("cache"):
        print("  " + json.dumps({k: v for k, v in report.items() if k in ("root", "path")}))
    return 0


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(prog="python -m lightsnn",
                                     description="Training-free architecture search for spiking networks.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _, table = _search_parser(sub)
    _prepare_parser(sub)
    return parser, table


def main(argv: list[str] | None = None) -> int:
    parser, table = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "search":
            return _cmd_search(args, table)
        if args.command == "prepare":
            return _cmd_prepare(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command!r}")
    return 2
