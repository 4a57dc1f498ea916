"""Command line: ``python -m lightsnn <verb> ...``. Each verb's parser and command live in
:mod:`lightsnn.cli.pipeline_verbs` (the pipeline) or :mod:`lightsnn.cli.study_verbs`; :mod:`lightsnn.cli.flags` holds what
they share."""
from __future__ import annotations

import argparse
import sys

from lightsnn.cli.flags import config_inputs
from lightsnn.cli.pipeline_verbs import add_evaluate, add_prepare, add_relay, add_report, add_schema, add_search, add_train
from lightsnn.cli.study_verbs import add_bench, add_benchmark, add_correlate, add_evidence, add_plan, add_replicate
from lightsnn.core.paths import check_paths
from lightsnn.core.runtime import keep_freed_memory


class _Parser(argparse.ArgumentParser):
    """A bad flag is one line (what is wrong, where the help is), not the whole usage before it."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Every verb's parser; each sets ``func``, the function that runs it, and ``paths``, its flags that name
    files or folders and what kind each is (checked before any work, :mod:`lightsnn.core.paths`)."""
    parser = _Parser(prog="python -m lightsnn", description="Training-free architecture search for spiking networks.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (add_search, add_prepare, add_train, add_evaluate, add_schema, add_report, add_bench, add_plan,
                add_correlate,
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
    if "threads" in vars(args):  # the verbs that compute: --threads, else the idle CPUs (README, "Threads")
        import torch

        from lightsnn.core.runtime import default_threads
        torch.set_num_threads(args.threads or default_threads())
    try:
        check_paths({"--" + dest.replace("_", "-"): (kind, getattr(args, dest))
                     for dest, kind in getattr(args, "paths", {}).items()},
                    inputs=config_inputs(args))
        return args.func(args)
    except MemoryError as err:
        print(f"error: {_out_of_memory(err)}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {_out_of_memory(err) if _is_out_of_memory(err) else err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a quota, a read-only file system, a name too long: one line
        print(f"error: {_os_error(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback, and the shell's code for SIGINT
        print(f"interrupted{_resume_hint(args)}", file=sys.stderr)
        return 130


def _os_error(err: OSError) -> str:
    """What the system refused, and on which path (the result that could not be written is not left half-written:
    :mod:`lightsnn.core.atomic` removes its temporary file)."""
    import errno

    text = err.strerror or str(err)
    if err.filename:
        text += f": {str(err.filename)!r}"
    advice = {errno.ENOSPC: "free space there or write elsewhere", errno.EDQUOT: "free space there or write elsewhere",
              errno.EROFS: "write elsewhere", errno.ENAMETOOLONG: "give a shorter name"}.get(err.errno)
    return f"{text}; {advice}" if advice else text


def _is_out_of_memory(err: BaseException) -> bool:
    """torch's allocation failures: ``torch.OutOfMemoryError`` on CUDA, a RuntimeError from the CPU allocator."""
    text = str(err)
    return type(err).__name__ == "OutOfMemoryError" or "can't allocate memory" in text or "out of memory" in text


def _out_of_memory(err: BaseException) -> str:
    """One line for an allocation that failed past the checks of :mod:`lightsnn.core.budget` (which see only a
    floor of a run's memory): how much was asked, and which sizes to lower."""
    import re

    from lightsnn.core.budget import format_bytes

    asked = re.search(r"allocate (\d+) bytes|allocate ([\d.]+) ([KMGT]i?B)", str(err))
    size = ""
    if asked and asked.group(1):
        size = f" (an allocation of {format_bytes(int(asked.group(1)))})"
    elif asked:
        size = f" (an allocation of {asked.group(2)} {asked.group(3)})"
    return (f"out of memory{size}: this run's sizes do not fit; lower the timesteps (network.timesteps, "
            "--max-timesteps, a genotype's T), the channels (network.channels) or the batch size, or free memory")


def _resume_hint(args) -> str:
    """Where the same command picks up again, for the verbs that checkpoint."""
    from pathlib import Path

    from lightsnn.core.layout import CHECKPOINT_FILE, file_name

    if args.command == "train":
        checkpoint = Path(args.out) / file_name(CHECKPOINT_FILE)
        if not checkpoint.is_file():  # stopped before its first epoch ended: nothing to resume
            return "; no epoch had finished, so the same command starts the training anew"
        return f"; the same command resumes from {checkpoint} (its last epoch)"
    if args.command == "benchmark" and getattr(args, "benchmark_command", None) == "score":
        return "; the same command resumes the shard where it stopped"
    return ""
