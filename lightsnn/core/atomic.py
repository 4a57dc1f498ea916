"""Atomic file writes: nothing half-written is ever left under a result's name.

Every result, table, plot, cache and checkpoint is written to a temporary file
beside its destination and renamed onto it only when complete. The file gets
the permissions a plain ``open()`` would give (``0666 & ~umask``), not
``mkstemp``'s private 0600, so others in a shared project folder can read it.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path``, renamed onto it when the block ends; removed if the block raises.

    ``suffix`` matters to writers that pick a format from the name (matplotlib).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(path)) from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as err:  # a full disk while writing: named by the result's path, not the temporary one
        Path(tmp).unlink(missing_ok=True)
        if err.filename not in (None, tmp):
            raise
        raise OSError(err.errno, err.strerror, str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


class ClaimError(ValueError):
    """An output another run is writing right now."""


@contextlib.contextmanager
def claimed(path: str | Path, folder: bool = False) -> Iterator[Path]:
    """Hold ``path`` (a result file, or a folder when ``folder``) for this run: a second run that would write it
    at the same time is refused in one line naming the holder, instead of both 'succeeding' into one place.

    The claim is an exclusive ``flock`` on a small file beside the result (``.<name>.claim``; a folder is not
    created for it), released when the block ends or the process dies; the file itself stays (unlinking it
    would let two runs hold two inodes), except after a failed run that had to create the folders it lies in.
    """
    path = Path(path)
    lock = path.with_name(f".{path.name}.claim")
    created = [made for made in [lock.parent, *lock.parent.parents] if not made.exists()]
    lock.parent.mkdir(parents=True, exist_ok=True)
    with _held(lock, folder, path):
        try:
            yield path
        except BaseException:
            _remove_if_only_claims(lock, path, created)
            raise


def _remove_if_only_claims(lock: Path, path: Path, created: list[Path]) -> None:
    """A run that failed leaves nothing behind where it made the folders: its claim and the empty folders
    it created go (a folder that holds anything else stays)."""
    if not created:
        return
    lock.unlink(missing_ok=True)
    for folder in [path] + created if path.is_dir() else created:
        try:
            folder.rmdir()
        except OSError:  # not empty (another writer, or results), or already gone
            if folder.exists():
                return


@contextlib.contextmanager
def _held(lock: Path, folder: bool, path: Path) -> Iterator[None]:
    import fcntl
    import sys

    # unbuffered: a full disk fails at the write below, named, not again (unnamed) when the file closes
    with open(lock, "a+b", buffering=0) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().decode(errors="replace").strip() or "another process"
            raise ClaimError(f"{'folder' if folder else 'output'} {str(path)!r} is being written by another run "
                             f"({holder}); wait for it to end or choose another output") from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}: {' '.join(sys.argv)[:300]}\n".encode())
        except OSError as err:  # a full disk: named by the output it guards
            raise OSError(err.errno, err.strerror, str(path)) from None
        yield
