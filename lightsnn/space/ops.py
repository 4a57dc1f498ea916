"""Cell operations, in a registry keyed by name.

An op is written ``name`` or ``name(key=value, ...)``; the keys set the LIF of
the op (``th`` = threshold, ``tau`` = membrane time constant), for example
``conv3x3(th=0.5,tau=2)``. Ops without a LIF accept no parameters. The search
space of a run is a list of such strings, so a new space needs no code.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable

import torch.nn as nn

from lightsnn.core.names import current
from lightsnn.space.neurons import LIFConfig, make_lif
from lightsnn.space.pooling import AvgPool2d, MaxPool2d


class OpError(ValueError):
    """A malformed or unknown op name."""


@dataclass(frozen=True)
class OpKind:
    name: str
    code: int | None  # digit in SNASNet's connection-matrix strings
    build: Callable[[int, LIFConfig], nn.Module] | None  # None: the op contributes nothing
    has_lif: bool
    description: str


def _conv(kernel: int) -> Callable[[int, LIFConfig], nn.Module]:
    def build(channels: int, lif: LIFConfig) -> nn.Module:
        return nn.Sequential(
            make_lif(lif),
            nn.Conv2d(channels, channels, kernel, stride=1, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(channels),
        )

    return build


OPS: dict[str, OpKind] = {
    kind.name: kind
    for kind in [
        OpKind("zero", 0, None, False, "zeroize: the edge carries nothing (no edge)"),
        OpKind("skip", 1, lambda c, lif: nn.Identity(), False, "identity on analog values"),
        OpKind("conv1x1", 2, _conv(1), True, "LIF -> Conv1x1 (no bias) -> BatchNorm"),
        OpKind("conv3x3", 3, _conv(3), True, "LIF -> Conv3x3 (no bias) -> BatchNorm"),
        OpKind("avgpool3x3", 4, lambda c, lif: AvgPool2d(3, 1, 1), False,
               "AvgPool2d(3, stride 1, pad 1) on analog values (SNASNet)"),
        OpKind("maxpool3x3", 5, lambda c, lif: MaxPool2d(3, 1, 1), False,
               "MaxPool2d(3, stride 1, pad 1) on analog values (LightSNN's pool_3x3)"),
    ]
}
CODE_TO_OP: dict[int, str] = {k.code: k.name for k in OPS.values() if k.code is not None}

#: Named op spaces of the papers.
SPACES: dict[str, tuple[str, ...]] = {
    "snasnet-ops": ("zero", "skip", "conv1x1", "conv3x3", "avgpool3x3"),
    "lightsnn-ops": ("zero", "conv3x3", "skip"),
    "spikenas-ops": ("zero", "skip", "conv3x3"),
    # SpikeNAS-Bench's op codes 0-4 (forward cells): conv3x3 with three LIF thresholds
    "spikenas-bench-ops": ("zero", "skip", "conv3x3(th=0.5)", "conv3x3(th=1)", "conv3x3(th=1.5)"),
}

_PARAM_KEYS = {"th": "v_threshold", "tau": "tau"}
_OP_RE = re.compile(r"^\s*([a-z0-9_]+)\s*(?:\((.*)\))?\s*$")


@dataclass(frozen=True)
class OpSpec:
    """A parsed op: its kind and LIF parameter overrides, with a canonical spelling."""

    kind: str
    params: tuple[tuple[str, float], ...] = field(default=())

    @classmethod
    def parse(cls, text: str) -> "OpSpec":
        match = _OP_RE.match(str(text))
        if not match:
            raise OpError(f"bad op {text!r}: expected name or name(key=value,...), e.g. conv3x3(th=0.5)")
        name, args = match.group(1), match.group(2)
        if name not in OPS:
            raise OpError(f"unknown op {name!r}; known ops: {', '.join(OPS)}")
        params: dict[str, float] = {}
        if args is not None and args.strip():
            if not OPS[name].has_lif:
                raise OpError(f"op {name!r} has no LIF and takes no parameters (got {text!r})")
            for item in args.split(","):
                key, sep, value = item.partition("=")
                key = key.strip()
                if not sep or key not in _PARAM_KEYS:
                    raise OpError(f"bad parameter {item.strip()!r} in op {text!r}; allowed: th=<float>, tau=<float>")
                try:
                    params[key] = float(value)
                except ValueError:
                    raise OpError(f"parameter {key} of op {text!r} is not a number: {value.strip()!r}") from None
                if key == "th" and not (math.isfinite(params[key]) and params[key] > 0):
                    raise OpError(f"threshold th={value.strip()} of op {text!r} must be a finite number > 0")
                if key == "tau" and not (math.isfinite(params[key]) and params[key] > 1):
                    raise OpError(f"time constant tau={value.strip()} of op {text!r} must be a finite number > 1 "
                                  "(the LIF decays by 1/tau per step)")
        return cls(name, tuple(sorted(params.items())))

    def __str__(self) -> str:
        if not self.params:
            return self.kind
        return f"{self.kind}(" + ",".join(f"{k}={v:g}" for k, v in self.params) + ")"

    @property
    def code(self) -> int | None:
        return OPS[self.kind].code if not self.params else None

    def module_key(self) -> str:
        """A name usable as a torch module key (no dots)."""
        return str(self).replace(".", "p").replace("=", "_").replace(",", "__").replace("(", "_").replace(")", "")

    def build(self, channels: int, lif: LIFConfig) -> nn.Module | None:
        kind = OPS[self.kind]
        if kind.build is None:
            return None
        overrides = {_PARAM_KEYS[k]: v for k, v in self.params}
        return kind.build(channels, lif.replace(**overrides) if overrides else lif)


def canonical_op(text: str) -> str:
    return str(OpSpec.parse(text))


def parse_space(space: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """A space given by name ("lightsnn-ops"; an old name such as "lightsnn" says its new one) or as a list of
    ops, in canonical spelling."""
    if isinstance(space, str):
        space = current("op space", space)
        if space not in SPACES:
            raise OpError(f"unknown op space {space!r}; named spaces: {', '.join(SPACES)} (or give a list of ops)")
        space = SPACES[space]
    ops = tuple(canonical_op(op) for op in space)
    if len(ops) < 2:
        raise OpError(f"an op space needs at least 2 ops, got {list(ops)}")
    if len(set(ops)) != len(ops):
        raise OpError(f"op space lists an op twice: {list(ops)}")
    return ops
