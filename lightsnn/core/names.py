"""Names that changed so that each word means one thing (a method, an op space, a training recipe): the old
spellings still work and say once, in one line, what they are now called."""
from __future__ import annotations

import sys

#: kind -> old name -> new name. Methods keep their papers' names; op spaces end in ``-ops``, recipes say whose.
RENAMED: dict[str, dict[str, str]] = {
    "op space": {"snasnet": "snasnet-ops", "lightsnn": "lightsnn-ops", "spikenas": "spikenas-ops",
                 "spikenas-bench": "spikenas-bench-ops"},
    "training recipe": {"snasnet": "snasnet-paper", "lightsnn": "lightsnn-paper"},
}

_told: set[tuple[str, str]] = set()


def current(kind: str, name):
    """``name``, or its new spelling if it is an old one (saying so once per process on stderr)."""
    new = RENAMED[kind].get(name) if isinstance(name, str) else None
    if new is None:
        return name
    if (kind, name) not in _told:
        _told.add((kind, name))
        print(f"note: {kind} {name!r} is now called {new!r}", file=sys.stderr, flush=True)
    return new


def old_names(kind: str) -> tuple[str, ...]:
    return tuple(RENAMED[kind])
