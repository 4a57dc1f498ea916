"""Option fields and their checks: one unknown-key check, one type check, one way to read a config section.

A config file is YAML: ``num_search: "two"`` or ``epochs: 2.5`` would otherwise travel into the code and
fail deep inside it with a traceback. Every options dataclass read from a config section goes through
:func:`check_types` first: ints must be ints (not bools), floats may be written as ints but must be
finite, strings strings, ``X | None`` takes None, ``Any`` takes anything.
"""
from __future__ import annotations

import math
import types
import typing
from dataclasses import field, fields
from typing import Any


def opt(default: Any, help: str, choices: tuple | None = None):
    """An option field: its default, help text and allowed values feed the CLI, the schema and the docs."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, "choices": choices})
    return field(default=default, metadata={"help": help, "choices": choices})


def check_known(cls, values: dict, what: str, extra: tuple[str, ...] = ()) -> None:
    """The one unknown-key check: every key of ``values`` must be a field of ``cls`` (or in ``extra``)."""
    known = {f.name for f in fields(cls)} | set(extra)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; allowed: {sorted(known)}")


def from_section(cls, section: dict | None, overrides: dict | None = None, *, where: str, what: str | None = None):
    """An options dataclass from a config section (``where``, e.g. ``search.snasnet``), overridden by the
    non-None values of ``overrides``: a mapping, known keys, values of the right types, or one-line errors."""
    if section is not None and not isinstance(section, dict):
        raise ValueError(f"config section {where} must be a mapping, got {section!r}")
    values = dict(section or {})
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    check_known(cls, values, what or f"{where} option(s)")
    return cls(**check_types(cls, values, where))


class _Mismatch(Exception):
    pass


def _describe(hint) -> str:
    if hint is type(None):
        return "null"
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if typing.get_origin(hint) in (list, tuple):
        return f"a list of {_describe(args[0])}s" if args else "a list"
    names = {int: "an integer", float: "a finite number", str: "a string", bool: "true or false", dict: "a mapping"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _convert(value, hint):
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(hint):
            try:
                return _convert(value, arm)
            except _Mismatch:
                continue
        raise _Mismatch
    if hint is type(None):
        if value is None:
            return None
        raise _Mismatch
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        arm = (typing.get_args(hint) or (Any,))[0]
        return [_convert(v, arm) for v in value]
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise _Mismatch
    if hint is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if isinstance(hint, type):
        if isinstance(value, hint) or isinstance(value, dict):  # nested option dataclasses come as mappings
            return value
        raise _Mismatch
    return value


def check_types(cls, values: dict, section: str) -> dict:
    """``values`` with ints widened to floats where the field is a float; one-line ValueError on a wrong type."""
    hints = typing.get_type_hints(cls)
    checked = {}
    for name, value in values.items():
        hint = hints.get(name, Any)
        try:
            checked[name] = _convert(value, hint)
        except _Mismatch:
            raise ValueError(f"{section}.{name} must be {_describe(hint)}, got {value!r}") from None
    return checked
