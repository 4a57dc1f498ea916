"""Search methods, in a registry keyed by name (the CLI and the workflow schema read it), and the scoring
protocol they share (options, reference-compat flags, the scoring loop, the search record, the search batches
every scoring reads its data through).

A method is one module of this package that declares ``METHOD = Method(...)`` (docs/extending.md): the
registry finds it, so adding a method edits no list.

May import: :mod:`lightsnn.core`, :mod:`lightsnn.data`, :mod:`lightsnn.space`, :mod:`lightsnn.proxies`,
:mod:`lightsnn.training` (a search that trains its candidates trains them as `train` does).
"""
from __future__ import annotations

import importlib
import pkgutil

from lightsnn.search.method_options import COMPAT_FLAGS, MethodOptions
from lightsnn.search.protocol import Method, SearchContext, SearchResult
from lightsnn.space.genotype import Genotype


def _discover() -> dict[str, Method]:
    """Every ``METHOD`` declared by a module of this package, in their declared positions."""
    found = []
    for module in pkgutil.iter_modules(__path__):
        method = getattr(importlib.import_module(f"{__name__}.{module.name}"), "METHOD", None)
        if isinstance(method, Method):
            found.append(method)
    names = [m.name for m in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ImportError(f"search method(s) {twice} are declared by more than one module")
    return {m.name: m for m in sorted(found, key=lambda m: (m.position, m.name))}


METHODS: dict[str, Method] = _discover()


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    return METHODS[name]


#: Methods that search the SNASNet cell (the evidence study and the NAS benchmark take only these).
SNASNET_METHODS = [name for name, m in METHODS.items() if m.family == Genotype.family]

__all__ = ["METHODS", "SNASNET_METHODS", "COMPAT_FLAGS", "Method", "MethodOptions", "SearchContext", "SearchResult",
           "get_method"]
