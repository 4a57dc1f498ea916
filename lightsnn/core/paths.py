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


#: Bytes a run adds to an output's name for the files it writes beside it (``.NAME.XXXXXXXX.tmp`` while writing,
#: ``.NAME.claim``, a search's ``NAME.ckpt.pt`` and its temporary file).
NAME_RESERVE = 24


#: Folders of devices and processes: an output there (``/dev/stdout``, ``/proc/self/fd/1``) would be replaced.
SYSTEM_FOLDERS = ("/dev", "/proc", "/sys")


def _in_system_folder(path: Path) -> str | None:
    """The first place under :data:`SYSTEM_FOLDERS` that ``path`` or a link it leads through names (``/dev/stdout``
    leads to ``/proc/self/fd/1``, whose own target may be an ordinary file), else None."""
    place = os.path.abspath(path)
    for _ in range(40):  # the kernel's own limit on links followed
        if any(place == root or place.startswith(root + os.sep) for root in SYSTEM_FOLDERS):
            return place
        if not os.path.islink(place):
            break
        place = os.path.normpath(os.path.join(os.path.dirname(place), os.readlink(place)))
    real = os.path.realpath(path)
    return real if any(real.startswith(root + os.sep) for root in SYSTEM_FOLDERS) else None


def _special_kind(path: Path) -> str | None:
    """What a path that exists but is neither a regular file nor a folder is (after following links)."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return None


def _check_name_lengths(path: Path, what: str, reserve: int) -> None:
    """Every name on the path fits the file system (with ``reserve`` bytes to spare for the last), and so does
    the whole path: an over-long name is refused here, not as ENAMETOOLONG after the work."""
    base = Path(os.path.abspath(path)).parent
    while not os.path.isdir(base) and base != base.parent:  # isdir is False (no error) for an over-long name
        base = base.parent
    try:
        name_max, path_max = os.pathconf(base, "PC_NAME_MAX"), os.pathconf(base, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    parts = path.parts
    for index, part in enumerate(parts):
        size = len(os.fsencode(part))
        limit = name_max - (reserve if index == len(parts) - 1 else 0)
        if size > limit:
            extra = f" less {reserve} for the files written beside it" if index == len(parts) - 1 and reserve else ""
            raise PathError(f"{what} {str(path)[:80]!r}... has a name of {size} bytes ({part[:40]!r}...); this file "
                            f"system allows {name_max}{extra}, so at most {limit}")
    if len(os.fsencode(str(path.absolute()))) + reserve > path_max:
        raise PathError(f"{what} {str(path)[:80]!r}... is a path of {len(os.fsencode(str(path.absolute())))} bytes; "
                        f"this system allows {path_max}")


def output_file(path: str | Path, what: str = "output") -> Path:
    """A result file this run may write (replacing it if it exists): never a folder, a device, a FIFO or a
    socket (writing would replace it by a regular file), never a name the file system cannot hold."""
    path = Path(path)
    _check_name_lengths(path, what, NAME_RESERVE)  # first: a name too long makes every look at it fail
    if path.is_dir():
        raise PathError(f"{what} {str(path)!r} is a folder; give the path of a file in it, e.g. "
                        f"{str(path / 'result.json')!r}")
    if str(path).endswith(os.sep) or path.name in ("", ".", ".."):
        raise PathError(f"{what} {str(path)!r} names a folder; give the path of a file")
    system = _in_system_folder(path)
    if system:
        link = f" (through a link to {system!r})" if system != os.path.abspath(path) else ""
        raise PathError(f"{what} {str(path)!r} lies in the system's {system.split(os.sep)[1]!r} folder{link}; "
                        "results are written to a new file and renamed onto the output, which would replace it: "
                        "give a file path")
    special = _special_kind(path)
    if special:
        link = f" (a link to {os.path.realpath(path)!r})" if path.is_symlink() else ""
        raise PathError(f"{what} {str(path)!r} is {special}{link}, not a regular file; results are written to a "
                        "new file and renamed onto the output, which would replace it: give a file path")
    _check_creatable_folder(path.parent, what, path)
    return path


def output_folder(path: str | Path, what: str = "output folder") -> Path:
    """A folder this run writes its results into (created if missing)."""
    path = Path(path)
    _check_name_lengths(path, what, NAME_RESERVE)  # first: a name too long makes every look at it fail
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


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def spare_inputs(output: tuple[str, str | Path], inputs: list[tuple[str, str | Path]]) -> None:
    """Refuse an output that is one of the run's own inputs (``(flag, path)`` each): writing the result would
    destroy what the run reads, e.g. ``evaluate --checkpoint best.pt --out best.pt``."""
    flag, out = output
    if not Path(out).exists():
        return
    for in_flag, path in inputs:
        if path is not None and Path(path).exists() and _same(Path(out), Path(path)):
            same = "the same path" if str(out) == str(path) else f"the same file as {str(path)!r}"
            raise PathError(f"{flag} {str(out)!r} is an input of this run ({in_flag}: {same}); writing the result "
                            "would destroy it: give another output path")


def check_paths(values: dict[str, tuple[str, object]], inputs: list[tuple[str, object]] | None = None) -> None:
    """Check each ``flag -> (kind, value or list of values)``; ``None`` values are flags not given. Then no
    output file may be one of the input files, nor one of ``inputs`` (``(flag, path)``: files read but checked
    elsewhere, such as the config files)."""
    inputs, outputs = list(inputs or []), []
    for flag, (kind, value) in values.items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item is not None:
                PATH_KINDS[kind](item, flag)
                if kind == "output_file":
                    outputs.append((flag, item))
                elif kind == "input_file":
                    inputs.append((flag, item))
    for output in outputs:
        spare_inputs(output, inputs)
