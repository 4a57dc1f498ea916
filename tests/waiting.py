"""Tests synchronise on events they observe (a file, a checkpoint's epoch, a line), never on a sleep.

A test that interrupts work waits for the work to reach a point (say, the first epoch's checkpoint) and sends
its signal at once; the work left after that point is many whole units (epochs), so the signal lands before the
work can finish on any machine, fast or loaded. The poll interval below only bounds how late an event is seen.
"""
from __future__ import annotations

import subprocess
import time
from typing import Callable

POLL_SECONDS = 0.005


def wait_for(condition: Callable[[], object], what: str, timeout: float = 300.0,
             process: subprocess.Popen | None = None) -> object:
    """Poll ``condition`` until it returns something truthy, and return that. Fail naming ``what`` was awaited
    when ``process`` exits first (a crash would otherwise be waited out) or after ``timeout`` seconds, a limit
    only a broken run reaches."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f} s")
        time.sleep(POLL_SECONDS)


def next_millisecond() -> int:
    """Wait until the wall clock's millisecond (MLflow's timestamp unit) has moved on, and return it: events
    stamped before and after the call then carry distinct timestamps."""
    start = int(time.time() * 1000)
    return wait_for(lambda: (now := int(time.time() * 1000)) > start and now, "new millisecond", timeout=10)
