"""Process-wide settings that decide CPU speed more than any kernel does.

glibc serves every allocation above its mmap threshold (at most 32 MiB by
default) with a fresh ``mmap`` and returns it with ``munmap`` on free, and it
trims the heap top above 128 KiB. A spiking network allocates a new tensor per
op, per timestep, so each of those allocations is a run of page faults that
zero the memory again. Measured on this project's 2-core VM (LIF on a
[320, 32, 32, 32] batch): 290 ms per call with the defaults, 53 ms with the
heap kept; conv2d of the same shape 100 ms -> 40 ms. We keep freed memory in
the heap instead: the process's resident size then stays at its peak.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_KEEP_BYTES = 1 << 30  # trim the heap only when more than this is free at its top

OPT_OUT_ENV = "LIGHTSNN_DEFAULT_MALLOC"


def keep_freed_memory() -> bool:
    """Serve allocations from the heap and keep it (glibc only); ``False`` where nothing was changed.

    Set ``LIGHTSNN_DEFAULT_MALLOC=1`` to keep glibc's defaults (for example when memory is tight).
    """
    if os.environ.get(OPT_OUT_ENV) or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc: nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))


def default_threads() -> int:
    """Torch threads for a command run by hand without ``--threads``: the CPUs this process may use that are
    idle now (its CPU set less the 1-minute load average), at least 1. Torch's own default takes every CPU
    however busy: on a loaded 2-core machine a digits epoch then took 29 s against 4.3 s on one thread, as the
    threads wait for each other. The workflow always passes ``--threads`` (a rule's ``threads:``)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        busy = 0.0
    return max(1, min(cpus, int(cpus - busy + 0.5)))
