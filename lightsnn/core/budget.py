"""Sizes that cannot fit, refused before anything is allocated.

A network of ``T = 100000`` timesteps or ``channels = 1e9``, or a frame cache of 1 TiB, would otherwise be killed by
the OOM killer or fail with torch's ``tried to allocate 26214400000 bytes``, naming no option. Each check here
compares a floor of what a job will hold (the bytes it certainly needs, not a guess of its peak) with the memory
the device has free, and names the options that set the size.
"""
from __future__ import annotations

import os


#: The most timesteps any network may run. The papers use 5-16 (SNASNet 5-8, LitE-SNN at most 6, DVS128 Gesture
#: 16); a T of 1,000 already costs 60-200 times their compute, and larger values are typing mistakes that would
#: run for days without using more memory (a training-free search keeps one timestep at a time).
MAX_TIMESTEPS = 1000


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.3g} TB"


def available_bytes(device=None, unknown: int = 1 << 62) -> int:
    """Memory a job can still take: free CUDA memory on a CUDA device, else the host's MemAvailable; ``unknown``
    where neither can be asked (by default so large that nothing is refused)."""
    if device is not None and getattr(device, "type", str(device)) == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return unknown


def require_memory(needed: int, what: str, lower: str, device=None) -> None:
    """Refuse in one line when ``needed`` bytes (a floor) exceed what ``device`` has free; ``what`` says what
    needs them with the sizes that set it, ``lower`` which options make it smaller."""
    free = available_bytes(device)
    if needed > free:
        where = "this GPU" if device is not None and getattr(device, "type", "") == "cuda" else "this machine"
        raise ValueError(f"{what} needs at least {format_bytes(needed)}, more than the {format_bytes(free)} "
                         f"{where} has free; lower {lower}")


def max_threads() -> int:
    """The most CPU threads a run may ask torch for: this machine's CPUs (more only slow it down, and a huge
    count crashes OpenMP with no message)."""
    return os.cpu_count() or 1
