"""What every verb's parser shares: flag types, option flags generated from the options dataclasses, the
config and tracking flags."""
from __future__ import annotations

import argparse
import os
import sys
import types
import typing
from dataclasses import fields

import yaml

from lightsnn.core.budget import max_threads
from lightsnn.core.options import field_default
from lightsnn.search import METHODS


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
    if not text.strip():  # YAML reads '' as null, which would silently mean the default
        raise argparse.ArgumentTypeError("got an empty value; give a YAML value such as [zero, skip], or leave the "
                                         "flag out for the default")
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
    "threads": ("--threads", {"type": _int_in(1, max_threads(), "a thread count (at most this machine's CPUs)"),
                              "default": None, "help": "CPU threads for torch (default: the idle CPUs, those of this "
                                                               "process's CPU set less the load average)"}),
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


def config_inputs(args) -> list[tuple[str, str]]:
    """The ``--config`` files a command reads, as ``(flag, path)``: no output may overwrite one."""
    return [("--config", path) for path in getattr(args, "config", None) or []]


def _config(args) -> dict:
    """The merged config files of ``--config`` and ``--config-json``, with ``--device`` applied: one place for
    every verb."""
    from lightsnn.pipeline.config import job_config

    inline = list(getattr(args, "config_json", None) or [])
    if os.environ.get(TRACKING_ENV):  # the workflow's name and tracking sections (no result depends on them)
        inline.insert(0, (f"the environment variable {TRACKING_ENV}", os.environ[TRACKING_ENV]))
    config = job_config(getattr(args, "config", None), inline)
    if getattr(args, "device", None):
        config["device"] = args.device
    return config
