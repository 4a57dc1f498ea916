"""Cell samplers: SNASNet's (methods.md §2.1) and a uniform one over canonical valid cells."""
from __future__ import annotations

import numpy as np

from lightsnn.space.genotype import FORWARD_EDGES, CellGenotype, edges_of

MAX_DRAWS = 1_000_000


def snasnet_draw(rng: np.random.Generator, space: list[str], cell_type: str) -> CellGenotype:
    """One raw draw of SNASNet's sampler: per node pair a forward or a backward op (p=1/2), op uniform."""
    n = len(space)
    upper = np.triu(rng.integers(0, n, (4, 4)), 1)
    if cell_type == "forward":
        matrix = upper
    else:
        lower = np.tril(rng.integers(0, n, (4, 4)), -1)
        mask = np.triu(rng.integers(0, 2, (4, 4)), 1)
        matrix = mask * upper + (1 - mask.T) * lower
    return CellGenotype.from_edges({(r, c): space[matrix[r, c]] for r in range(4) for c in range(4) if r != c})


def sample_valid(rng: np.random.Generator, space: list[str], cell_type: str) -> tuple[CellGenotype, int]:
    """SNASNet's rejection loop: draw until valid; returns the pruned cell and the number of draws."""
    for draws in range(1, MAX_DRAWS + 1):
        cell = snasnet_draw(rng, space, cell_type).pruned()
        if cell.is_valid():
            return cell, draws
    raise RuntimeError(f"no valid cell in {MAX_DRAWS} draws from space {space}: does it contain a non-zero op?")


def raw_cell_count(space: list[str], cell_type: str) -> int:
    """How many raw cells :func:`sample_uniform_canonical` draws from: an upper bound on the distinct valid
    cells of a space (so a request for more is refused at once, not after millions of draws)."""
    nonzero = len([op for op in space if op != "zero"])
    per_pair = int("zero" in space) + nonzero * (2 if cell_type == "backward" else 1)
    return per_pair ** len(FORWARD_EDGES)


def sample_uniform_canonical(rng: np.random.Generator, space: list[str], cell_type: str) -> CellGenotype:
    """Uniform over distinct valid pruned cells: draw a raw cell uniformly, keep it only if already canonical.

    Each canonical cell is exactly one raw matrix, so acceptance gives a uniform draw.
    Per node pair the raw choices are: no edge (if ``zero`` is in the space), or one non-zero op
    forward, or (backward cells) one non-zero op backward.
    """
    nonzero = [op for op in space if op != "zero"]
    if not nonzero:
        raise ValueError(f"space {space} has no non-zero op")
    choices: list[tuple[str, str | None]] = [("none", None)] if "zero" in space else []
    choices += [("fwd", op) for op in nonzero]
    if cell_type == "backward":
        choices += [("bwd", op) for op in nonzero]
    edges_of(cell_type)
    for _ in range(MAX_DRAWS):
        mapping = {}
        for fwd in FORWARD_EDGES:
            kind, op = choices[rng.integers(len(choices))]
            if kind == "fwd":
                mapping[fwd] = op
            elif kind == "bwd":
                mapping[(fwd[1], fwd[0])] = op
        cell = CellGenotype.from_edges(mapping)
        if cell.is_valid() and cell.pruned() == cell:
            return cell
    raise RuntimeError(f"no valid canonical cell in {MAX_DRAWS} draws from space {space}")

