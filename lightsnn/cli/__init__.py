"""Command line: ``python -m lightsnn <verb> ...``. Each verb's parser and command live in
:mod:`lightsnn.cli.jobs` (the pipeline) or :mod:`lightsnn.cli.studies`; :mod:`lightsnn.cli.flags` holds what
they share."""
from __future__ import annotations

import argparse
import sys

from lightsnn.cli.jobs import add_evaluate, add_prepare, add_relay, add_report, add_schema, add_search, add_train
from lightsnn.cli.studies import add_bench, add_benchmark, add_correlate, add_evidence, add_replicate
from lightsnn.core.runtime import keep_freed_memory


def build_parser() -> argparse.ArgumentParser:
    """Every verb's parser; each sets ``func``, the function that runs it."""
    parser = argparse.ArgumentParser(prog="python -m lightsnn",
                                     description="Training-free architecture search for spiking networks.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (add_search, add_prepare, add_train, add_evaluate, add_schema, add_report, add_bench, add_correlate,
                add_replicate, add_evidence, add_benchmark, add_relay):
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
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback, and the shell's code for SIGINT
        print(f"interrupted{_resume_hint(args)}", file=sys.stderr)
        return 130


def _resume_hint(args) -> str:
    """Where the same command picks up again, for the verbs that checkpoint."""
    from pathlib import Path

    from lightsnn.core.layout import CHECKPOINT_FILE, file_name

    if args.command == "train":
        return f"; the same command resumes from {Path(args.out) / file_name(CHECKPOINT_FILE)} (its last epoch)"
    if args.command == "benchmark" and getattr(args, "benchmark_command", None) == "score":
        return "; the same command resumes the shard where it stopped"
    return ""
