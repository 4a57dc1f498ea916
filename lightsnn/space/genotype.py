"""The one architecture type: an op per edge of the 4-node SNASNet cell.

A cell is a 4x4 connection matrix ``m``: ``m[r][c]`` with r < c is a forward
edge r->c; with r > c it is a backward edge that acts one timestep later
(methods.md §2.1). The matrix string form is SNASNet's (``0302 0030 3003 0000``, one
row per group, digits are op codes, see :data:`lightsnn.space.ops.OPS`); the JSON
form names ops, so it also holds ops without a code (``conv3x3(th=0.5)``).
One cell means cell1 and cell2 share it; two cells give each its own.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import ClassVar, Sequence

from lightsnn.space.ops import CODE_TO_OP, OpError, OpSpec, canonical_op

NUM_NODES = 4
#: Forward edges in SNASNet's build order (column order).
FORWARD_EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
#: Backward edges (src > dst, next timestep) in SNASNet's build order.
BACKWARD_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (3, 0), (2, 1), (3, 1), (3, 2))
ALL_EDGES = FORWARD_EDGES + BACKWARD_EDGES
CELL_TYPES = ("backward", "forward")


class GenotypeError(ValueError):
    """A malformed genotype string or an architecture that breaks a rule."""


def edges_of(cell_type: str) -> tuple[tuple[int, int], ...]:
    if cell_type not in CELL_TYPES:
        raise GenotypeError(f"unknown cell type {cell_type!r}; allowed: {', '.join(CELL_TYPES)}")
    return ALL_EDGES if cell_type == "backward" else FORWARD_EDGES


def edge_key(edge: tuple[int, int]) -> str:
    return f"{edge[0]}->{edge[1]}"


@dataclass(frozen=True)
class CellGenotype:
    """Op names on the edges of one cell; absent edges are ``zero``."""

    ops: tuple[tuple[tuple[int, int], str], ...]  # sorted (edge, op) pairs, zero edges left out

    @classmethod
    def from_edges(cls, mapping: dict[tuple[int, int], str]) -> "CellGenotype":
        items = []
        for edge, op in mapping.items():
            src, dst = edge
            if not (0 <= src < NUM_NODES and 0 <= dst < NUM_NODES):
                raise GenotypeError(f"edge {src}->{dst} names a node outside 0..{NUM_NODES - 1}")
            if src == dst:
                raise GenotypeError(f"edge {src}->{dst} is a self-loop; the diagonal must be 0")
            try:
                op = canonical_op(op)
            except OpError as err:
                raise GenotypeError(f"edge {src}->{dst}: {err}") from None
            if op != "zero":
                items.append(((src, dst), op))
        return cls(tuple(sorted(items)))

    @classmethod
    def from_matrix(cls, matrix: Sequence[Sequence[int]]) -> "CellGenotype":
        mapping = {}
        for r in range(NUM_NODES):
            for c in range(NUM_NODES):
                code = int(matrix[r][c])
                if r == c:
                    if code:
                        raise GenotypeError(f"diagonal entry [{r}][{c}] is {code}; self-loops are not allowed")
                    continue
                if code not in CODE_TO_OP:
                    raise GenotypeError(f"op code {code} at [{r}][{c}] is unknown; codes: "
                                        + ", ".join(f"{k}={v}" for k, v in sorted(CODE_TO_OP.items())))
                mapping[(r, c)] = CODE_TO_OP[code]
        return cls.from_edges(mapping)

    @classmethod
    def from_matrix_str(cls, text: str) -> "CellGenotype":
        rows = text.split()
        if len(rows) != NUM_NODES or any(len(r) != NUM_NODES or not r.isdigit() for r in rows):
            raise GenotypeError(
                f"bad cell {text.strip()!r}: expected {NUM_NODES} groups of {NUM_NODES} digits, "
                "one per matrix row, e.g. '0302 0030 3003 0000'")
        return cls.from_matrix([[int(ch) for ch in row] for row in rows])

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> "CellGenotype":
        mapping = {}
        for key, op in data.items():
            src, sep, dst = str(key).partition("->")
            if not sep or not src.strip().isdigit() or not dst.strip().isdigit():
                raise GenotypeError(f"bad edge key {key!r}: expected 'src->dst', e.g. '0->3'")
            mapping[(int(src), int(dst))] = op
        return cls.from_edges(mapping)

    # --- views -----------------------------------------------------------
    def op(self, edge: tuple[int, int]) -> str:
        return dict(self.ops).get(edge, "zero")

    def matrix(self) -> list[list[str]]:
        m = [["zero"] * NUM_NODES for _ in range(NUM_NODES)]
        for (r, c), op in self.ops:
            m[r][c] = op
        return m

    def to_matrix_str(self) -> str:
        rows = []
        for row in self.matrix():
            codes = [OpSpec.parse(op).code for op in row]
            if any(code is None for code in codes):
                bad = next(op for op, code in zip(row, codes) if code is None)
                raise GenotypeError(f"op {bad!r} has no code in SNASNet's matrix strings; use the JSON form")
            rows.append("".join(str(code) for code in codes))
        return " ".join(rows)

    def to_dict(self) -> dict[str, str]:
        return {edge_key(e): op for e, op in self.ops}

    @property
    def has_backward(self) -> bool:
        return any(r > c for (r, c), _ in self.ops)

    def count(self, op_kind: str) -> int:
        return sum(OpSpec.parse(op).kind == op_kind for _, op in self.ops)

    # --- SNASNet's validity rule (methods.md §2.1) --------------------------------
    def pruned(self) -> "CellGenotype":
        """Drop nodes that cannot reach the output or be reached from the input.

        Reachability counts backward edges too and is computed once, as the
        reference code does (g = A + A^2 + A^3 + A^4 of the unpruned matrix).
        """
        n = NUM_NODES
        adj = [[1 if op != "zero" else 0 for op in row] for row in self.matrix()]
        reach = [row[:] for row in adj]
        power = [row[:] for row in adj]
        for _ in range(n - 1):
            power = [[sum(power[i][k] * adj[k][j] for k in range(n)) for j in range(n)] for i in range(n)]
            reach = [[reach[i][j] + power[i][j] for j in range(n)] for i in range(n)]
        dropped = {node for node in range(n - 1) if reach[node][n - 1] == 0}
        dropped |= {node for node in range(1, n) if reach[0][node] == 0}
        return CellGenotype(tuple((e, op) for e, op in self.ops if e[0] not in dropped and e[1] not in dropped))

    def is_valid(self) -> bool:
        """SNASNet's acceptance test: after pruning, the direct input->output edge remains."""
        return self.pruned().op((0, NUM_NODES - 1)) != "zero"

    def connects_input_to_output(self) -> bool:
        """Whether a chain of non-zero edges (forward or backward) leads from the input node to the output.

        Weaker than :meth:`is_valid`: LightSNN's pruning may end without the direct 0->3 edge, and such a
        cell still trains; a cell without any path outputs zeros whatever its input.
        """
        seen, frontier = {0}, [0]
        while frontier:
            node = frontier.pop()
            for (src, dst), _ in self.ops:
                if src == node and dst not in seen:
                    seen.add(dst)
                    frontier.append(dst)
        return NUM_NODES - 1 in seen


@dataclass(frozen=True)
class Genotype:
    """Cells of a network: one shared by cell1 and cell2, or one each."""

    cells: tuple[CellGenotype, ...]
    family: ClassVar[str] = "snasnet"  # LitE-SNN's architectures are lightsnn.space.litesnn_genotype.LiteGenotype

    def __post_init__(self):
        if len(self.cells) not in (1, 2):
            raise GenotypeError(f"a genotype has 1 (shared) or 2 cells, got {len(self.cells)}")

    @classmethod
    def shared(cls, cell: CellGenotype) -> "Genotype":
        return cls((cell,))

    @classmethod
    def from_str(cls, text: str, require_valid: bool = False) -> "Genotype":
        """Read a matrix string (``'0302 0030 3003 0000'``, two cells joined by ``|``) or the JSON form."""
        text = str(text).strip()
        if not text:
            raise GenotypeError("empty genotype string")
        if text.startswith("{"):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as err:
                raise GenotypeError(f"genotype JSON does not parse: {err}") from None
            genotype = cls.from_json(data)
        else:
            genotype = cls(tuple(CellGenotype.from_matrix_str(part) for part in text.split("|")))
        if require_valid:
            genotype.require_valid()
        return genotype

    @classmethod
    def from_json(cls, data: dict) -> "Genotype":
        if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
            raise GenotypeError("genotype JSON must be an object with a list 'cells' of {'src->dst': op} objects")
        return cls(tuple(CellGenotype.from_dict(cell) for cell in data["cells"]))

    def to_json(self) -> dict:
        return {"cells": [cell.to_dict() for cell in self.cells]}

    def to_str(self) -> str:
        """The matrix string when every op has a code, else the compact JSON form."""
        try:
            return " | ".join(cell.to_matrix_str() for cell in self.cells)
        except GenotypeError:
            return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    def __str__(self) -> str:
        return self.to_str()

    def cell_for(self, index: int) -> CellGenotype:
        """The genotype of cell ``index`` (0 = cell1, 1 = cell2)."""
        return self.cells[index] if len(self.cells) > 1 else self.cells[0]

    def canonical(self) -> "Genotype":
        cells = tuple(cell.pruned() for cell in self.cells)
        if len(cells) == 2 and cells[0] == cells[1]:
            cells = cells[:1]
        return Genotype(cells)

    def short_hash(self) -> str:
        """Stable 10-hex-digit hash of the canonical form, for file names."""
        text = json.dumps(self.canonical().to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    @property
    def has_backward(self) -> bool:
        return any(cell.has_backward for cell in self.cells)

    def require_valid(self) -> None:
        for index, cell in enumerate(self.cells, start=1):
            if not cell.is_valid():
                raise GenotypeError(
                    f"cell {index} ({cell.to_dict() or 'empty'}) has no input->output edge after pruning "
                    "unconnected nodes; SNASNet's validity rule requires a non-zero 0->3 edge")

    def require_connected(self) -> None:
        """Refuse a network whose output cannot depend on its input (trained, it sits at chance)."""
        for index, cell in enumerate(self.cells, start=1):
            if not cell.connects_input_to_output():
                raise GenotypeError(
                    f"cell {index} ({cell.to_dict() or 'all zero'}) has no path of non-zero "
                    f"edges from the input node 0 to the output node {NUM_NODES - 1}: the network's output "
                    "cannot depend on its input")

    def ops_used(self) -> set[str]:
        return {op for cell in self.cells for _, op in cell.ops}
