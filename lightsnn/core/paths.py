"""Paths checked before the work: an output that cannot be written, or an input that cannot be read, is named in
one line when the command starts, never as a traceback after minutes of computing.

Each check looks only (nothing is created): a missing folder on the way to an output is created when the result is
written, so the check needs the nearest existing folder above it to be a writable folder.
"""
from __future__ import annotations

import os
from pathlib import Path


class PathError(ValueError):
    """A path that cannot serve as the input or output it was given for."""


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        if probe.is_symlink():  # a dangling link: writing through it fails like a file in the way
            return probe
        probe = probe.parent
    return probe


def _check_creatable_folder(folder: Path, what: str, target: Path) -> None:
    """``folder`` exists as a writable folder, or can be created: its nearest existing ancestor is one."""
    base = _nearest_existing(folder)
    if not base.is_dir():
        raise PathError(f"{what} {str(target)!r} cannot be written: {str(base)!r} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        reason = "cannot write into" if base == folder else "cannot create folders in"
        raise PathError(f"{what} {str(target)!r} cannot be written: this user {reason} {str(base)!r} "
                        "(permission denied, immutable or read-only)")


def output_file(path: str | Path, what: str = "output") -> Path:
    """A result file this run may write (replacing it if it exists)."""
    path = Path(path)
    if path.is_dir():
        raise PathError(f"{what} {str(path)!r} is a folder; give the path of a file in it, e.g. "
                        f"{str(path / 'result.json')!r}")
    if str(path).endswith(os.sep) or path.name in ("", ".", ".."):
        raise PathError(f"{what} {str(path)!r} names a folder; give the path of a file")
    _check_creatable_folder(path.parent, what, path)
    return path


def output_folder(path: str | Path, what: str = "output folder") -> Path:
    """A folder this run writes its results into (created if missing)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PathError(f"{what} {str(path)!r} is a file, not a folder; give a folder path")
    _check_creatable_folder(path, what, path)
    return path


def input_file(path: str | Path, what: str = "input") -> Path:
    """A file this run reads."""
    path = Path(path)
    if not path.exists():
        raise PathError(f"{what} {str(path)!r} does not exist")
    if path.is_dir():
        raise PathError(f"{what} {str(path)!r} is a folder; expected a file")
    if not os.access(path, os.R_OK):
        raise PathError(f"{what} {str(path)!r} cannot be read by this user (permission denied)")
    return path


def input_folder(path: str | Path, what: str = "input folder") -> Path:
    """A folder this run reads."""
    path = Path(path)
    if not path.exists():
        raise PathError(f"{what} {str(path)!r} does not exist")
    if not path.is_dir():
        raise PathError(f"{what} {str(path)!r} is a file; expected a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise PathError(f"{what} {str(path)!r} cannot be read by this user (permission denied)")
    return path


#: The kinds of path a command-line flag can name, for :func:`check_paths`.
PATH_KINDS = {"output_file": output_file, "output_folder": output_folder, "input_file": input_file,
              "input_folder": input_folder}


def check_paths(values: dict[str, tuple[str, object]]) -> None:
    """Check each ``flag -> (kind, value or list of values)``; ``None`` values are flags not given."""
    for flag, (kind, value) in values.items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item is not None:
                PATH_KINDS[kind](item, flag)
