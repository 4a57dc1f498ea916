"""The search space as one object: the ops every edge may take and the cell type that gives the edges.

Searches, networks and studies pass a :class:`SearchSpace` instead of a loose ``(ops, cell_type)`` pair; it
samples cells (SNASNet's sampler, or uniformly over canonical valid cells) and says whether a genotype
belongs to it. Named op lists live in :data:`lightsnn.space.ops.SPACES`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from lightsnn.space.genotype import CELL_TYPES, CellGenotype, Genotype, GenotypeError, edges_of
from lightsnn.space.ops import parse_space
from lightsnn.space.sampling import sample_uniform_canonical, sample_valid, snasnet_draw


@dataclass(frozen=True)
class SearchSpace:
    ops: tuple[str, ...]  # canonical op names; their order is the order of supernet logits
    cell_type: str = "backward"  # backward: forward and next-timestep edges; forward: forward edges only

    def __post_init__(self):
        object.__setattr__(self, "ops", parse_space(list(self.ops)))
        if self.cell_type not in CELL_TYPES:
            raise GenotypeError(f"unknown cell type {self.cell_type!r}; allowed: {', '.join(CELL_TYPES)}")

    @classmethod
    def of(cls, space: "SearchSpace | str | Sequence[str]", cell_type: str = "backward") -> "SearchSpace":
        """A space from a name (``"lightsnn"``), a list of ops, or a SearchSpace (returned as it is)."""
        if isinstance(space, SearchSpace):
            return space
        return cls(parse_space(space), cell_type)

    @property
    def edges(self) -> tuple[tuple[int, int], ...]:
        return edges_of(self.cell_type)

    def snasnet_draw(self, rng: np.random.Generator) -> CellGenotype:
        return snasnet_draw(rng, list(self.ops), self.cell_type)

    def sample_valid(self, rng: np.random.Generator) -> tuple[CellGenotype, int]:
        """SNASNet's sampler: the pruned valid cell and the number of draws it took."""
        return sample_valid(rng, list(self.ops), self.cell_type)

    def sample_uniform(self, rng: np.random.Generator) -> CellGenotype:
        """Uniform over distinct canonical valid cells."""
        return sample_uniform_canonical(rng, list(self.ops), self.cell_type)

    def check(self, genotype: Genotype) -> None:
        """One-line error unless every op of ``genotype`` is in the space and every edge in the cell type."""
        allowed = set(self.edges)
        for index, cell in enumerate(genotype.cells, start=1):
            for edge, op in cell.ops:
                if edge not in allowed:
                    raise GenotypeError(f"cell {index}: edge {edge[0]}->{edge[1]} is not in a {self.cell_type} cell")
                if op not in self.ops:
                    raise GenotypeError(f"cell {index}: op {op!r} is not in the space {list(self.ops)}")

    def to_dict(self) -> dict:
        return {"ops": list(self.ops), "cell_type": self.cell_type}
