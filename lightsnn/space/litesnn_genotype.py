"""LitE-SNN's architectures (methods.md §5.4): a cell of ``steps`` nodes, each node one edge from each of its
inputs with op ``skip_connect`` or ``snn_b3``, the weight bits of each cell, the keep ratio of the pruning and
the number of timesteps T. Input indices: 0 = s0 (the output two cells back), 1 = s1 (the previous output),
2 + j = node j. String form: ``lite:1b0s-2b1b/b2411/k0.2/T5``."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import ClassVar

from lightsnn.core.budget import MAX_TIMESTEPS

FAMILY = "litesnn"
LITE_OPS = ("skip_connect", "snn_b3")
_OP_CODES = {"skip_connect": "s", "snn_b3": "b"}


class LiteGenotypeError(ValueError):
    """A malformed LitE-SNN architecture."""


def edges_per_cell(steps: int) -> int:
    return sum(2 + i for i in range(steps))


def edge_index(node: int, source: int) -> int:
    """Row of the architecture logits of the edge ``source -> node`` (source: 0 = s0, 1 = s1, 2 + j = node j)."""
    return edges_per_cell(node) + source


@dataclass(frozen=True)
class LiteGenotype:
    """A decoded LitE-SNN architecture: the inputs and op of every node, the bit width of every cell, the share
    of weights kept, the number of timesteps.

    String form: ``lite:1b0s-2b1b-3s0b/b24111124/k0.2/T5``: per node its inputs (index, op code s/b), the bits of
    each cell, the keep ratio, T.
    """

    nodes: tuple[tuple[tuple[int, str], ...], ...]
    bits: tuple[int, ...]
    keep: float
    timesteps: int
    family: ClassVar[str] = FAMILY
    PREFIX: ClassVar[str] = "lite:"  # its string form starts so; SNASNet's matrix strings never do

    def __post_init__(self):
        nodes = tuple(tuple(sorted((int(s), str(o)) for s, o in node)) for node in self.nodes)
        if not nodes:
            raise LiteGenotypeError("a LitE-SNN cell needs at least one node")
        for i, node in enumerate(nodes):
            if not node:
                raise LiteGenotypeError(f"node {i} has no input")
            for source, op in node:
                if not 0 <= source < 2 + i:
                    raise LiteGenotypeError(f"node {i} takes input {source}; allowed: 0 (s0), 1 (s1), 2..{1 + i} "
                                            "(earlier nodes)")
                if op not in LITE_OPS:
                    raise LiteGenotypeError(f"op {op!r} on the edge {source} -> node {i} is unknown; "
                                            f"allowed: {', '.join(LITE_OPS)}")
            if len({s for s, _ in node}) != len(node):
                raise LiteGenotypeError(f"node {i} takes the same input twice")
        bits = tuple(int(b) for b in self.bits)
        if not bits or any(b not in (1, 2, 3, 4) for b in bits):
            raise LiteGenotypeError(f"bits {list(self.bits)} are not allowed; one of 1, 2, 3, 4 per cell")
        if not 0.0 < float(self.keep) <= 1.0:
            raise LiteGenotypeError(f"keep ratio {self.keep} must be in (0, 1]")
        if not 1 <= int(self.timesteps) <= MAX_TIMESTEPS:
            raise LiteGenotypeError(f"timesteps {self.timesteps} must be in 1..{MAX_TIMESTEPS}")
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "bits", bits)
        object.__setattr__(self, "keep", float(self.keep))
        object.__setattr__(self, "timesteps", int(self.timesteps))

    @property
    def steps(self) -> int:
        return len(self.nodes)

    def to_str(self) -> str:
        cell = "-".join("".join(f"{s}{_OP_CODES[o]}" for s, o in node) for node in self.nodes)
        return f"{self.PREFIX}{cell}/b{''.join(map(str, self.bits))}/k{self.keep:g}/T{self.timesteps}"

    @classmethod
    def from_str(cls, text: str) -> "LiteGenotype":
        match = re.fullmatch(re.escape(cls.PREFIX) + r"([0-9sb-]+)/b([1-4]+)/k([0-9.eE+-]+)/T([0-9]+)", text.strip())
        if not match:
            raise LiteGenotypeError(f"{text!r} is not a LitE-SNN genotype; expected e.g. lite:1b0s-2b1b/b2411/k0.2/T5")
        decode = {v: k for k, v in _OP_CODES.items()}
        nodes = []
        for part in match.group(1).split("-"):
            pairs = re.findall(r"([0-9]+)([sb])", part)
            if "".join(f"{s}{o}" for s, o in pairs) != part:
                raise LiteGenotypeError(f"node {part!r} of {text!r} is not a list of <input><s|b>")
            nodes.append(tuple((int(s), decode[o]) for s, o in pairs))
        return cls(tuple(nodes), tuple(int(c) for c in match.group(2)), float(match.group(3)), int(match.group(4)))

    def to_json(self) -> dict:
        return {"family": FAMILY, "nodes": [[[s, o] for s, o in node] for node in self.nodes],
                "bits": list(self.bits), "keep": self.keep, "timesteps": self.timesteps}

    @classmethod
    def from_json(cls, data: dict) -> "LiteGenotype":
        try:
            return cls(tuple(tuple((int(s), str(o)) for s, o in node) for node in data["nodes"]),
                       tuple(data["bits"]), float(data["keep"]), int(data["timesteps"]))
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, LiteGenotypeError):
                raise
            raise LiteGenotypeError(f"not a LitE-SNN genotype record ({err}): {json.dumps(data)[:120]}") from None

    def short_hash(self) -> str:
        return hashlib.sha1(self.to_str().encode()).hexdigest()[:10]

    def canonical(self) -> "LiteGenotype":
        return self  # inputs are kept sorted: the form is already unique

    def require_connected(self) -> None:
        """Every node has an input and the output concatenates all nodes: always connected."""
