"""The one options system: option fields, frozen option dataclasses that check themselves, one unknown-key
check, one type check, one way to read a config section.

An option's default, help text, allowed values and limits live in its field (:func:`opt`); the CLI flags, the
workflow's JSON schema and config/README.md are generated from them. A config file is YAML: ``num_search:
"two"`` or ``epochs: 2.5`` would otherwise travel into the code and fail deep inside it with a traceback, so
every :class:`Options` checks its values when it is built: ints must be ints (not bools), floats may be
written as ints but must be finite, strings strings, ``X | None`` takes None, ``Any`` takes anything; then
choices and limits; then the class's own cross-field :meth:`Options.check`.
"""
from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar


def opt(default: Any, help: str, choices: tuple | None = None, *, min: float | None = None,
        max: float | None = None, above: float | None = None):
    """An option field: its default, help text, allowed values and limits (``min``/``max`` inclusive,
    ``above`` exclusive) feed the checks, the CLI, the schema and the docs."""
    metadata = {"help": help, "choices": choices, "min": min, "max": max, "above": above}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def field_default(f) -> Any:
    """A dataclass field's default value (calling its factory)."""
    from dataclasses import MISSING

    return f.default if f.default is not MISSING else f.default_factory()


@dataclass(frozen=True)
class Options:
    """Base of every options dataclass: frozen, and checked when built (types, choices, limits, then
    :meth:`check`). ``section`` names the config section in error messages (``train``, ``search.snasnet``)."""

    section: ClassVar[str] = "options"

    def __post_init__(self) -> None:
        values = check_types(type(self), {f.name: getattr(self, f.name) for f in fields(self)}, self.section)
        for f in fields(self):
            value = values[f.name]
            object.__setattr__(self, f.name, value)
            check_field(f, value, self.section)
        self.check()

    def check(self) -> None:
        """Checks across fields; one-line ValueError naming the bad value. Override."""

    def _normalise(self, name: str, value: Any) -> None:
        """Replace a field's value by its canonical form while checking (the dataclass is frozen)."""
        object.__setattr__(self, name, value)

    def replace(self, **changes) -> "Options":
        return replace(self, **changes)

    @classmethod
    def from_config(cls, section: dict | None, overrides: dict | None = None):
        """The options of a config section, overridden by the non-None values of ``overrides``."""
        return from_section(cls, section, overrides, where=cls.section)


def check_field(f, value: Any, section: str) -> None:
    """An option's allowed values and limits (None passes limits: it means "not set")."""
    choices, low, high = f.metadata.get("choices"), f.metadata.get("min"), f.metadata.get("max")
    if choices and value not in choices:
        raise ValueError(f"{section}.{f.name}={value!r} is not allowed; choose from {list(choices)}")
    if value is None or isinstance(value, (list, dict, str)):
        return
    if low is not None and value < low:
        raise ValueError(f"{section}.{f.name} must be >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{section}.{f.name} must be <= {high}, got {value!r}")
    above = f.metadata.get("above")
    if above is not None and not value > above:
        raise ValueError(f"{section}.{f.name} must be > {above}, got {value!r}")


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
    return cls(**values)  # an Options checks its types, choices and limits itself


class _Mismatch(Exception):
    pass


def _describe(hint) -> str:
    if hint is type(None):
        return "null"
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if typing.get_origin(hint) in (list, tuple):
        return f"a list of {_plural(args[0])} (YAML: [a, b])" if args else "a list (YAML: [a, b])"
    names = {int: "an integer", float: "a finite number", str: "a string", bool: "true or false", dict: "a mapping"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _plural(hint) -> str:
    names = {int: "integers", float: "finite numbers", str: "strings", bool: "trues or falses"}
    return names.get(hint, _describe(hint))


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


_HINTS: dict[type, dict] = {}


def _hints(cls) -> dict:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def check_types(cls, values: dict, section: str) -> dict:
    """``values`` with ints widened to floats where the field is a float; one-line ValueError on a wrong type."""
    hints = _hints(cls)
    checked = {}
    for name, value in values.items():
        hint = hints.get(name, Any)
        try:
            checked[name] = _convert(value, hint)
        except _Mismatch:
            raise ValueError(f"{section}.{name} must be {_describe(hint)}, got {value!r}") from None
    return checked
