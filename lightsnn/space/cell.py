"""The SNASNet cell: 4 nodes, forward edges, backward (next-timestep) edges.

One module serves the discrete network and the supernet: every edge holds a
``ModuleDict`` of candidate ops keyed by op, and :meth:`Cell.set_active`
says which ops run with which weight. A discrete net has one op per edge at
weight 1, so a supernet masked to a single path computes exactly the same.

:meth:`Cell.set_candidates` runs R weightings of the same supernet in one pass
(batched scoring): the batch is then R candidate blocks of B samples,
``[R*B, ...]``, and each op runs only on the blocks of the candidates that
give it a weight above zero, so its LIFs see exactly what they would see in a
one-candidate pass.

Backward-edge state is explicit: ``forward(x, state)`` returns ``(out, state)``
and the network starts every sample sequence with ``state=None`` (methods.md §2.1:
``b`` is reset at each forward).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn

from lightsnn.space.genotype import NUM_NODES, edge_key
from lightsnn.space.neurons import LIFConfig, spiking_modules
from lightsnn.space.ops import OpSpec

Edge = tuple[int, int]


@dataclass(frozen=True)
class OpRun:
    """One op that runs on an edge: on all candidate blocks (``rows`` None) or on the listed ones.

    ``weight`` is a float shared by those blocks or a [len(rows) or R] tensor, one weight per block.
    """

    module_key: str
    rows: torch.Tensor | None
    weight: float | torch.Tensor


#: For each edge key, the ops that run.
ActiveOps = dict[str, list[OpRun]]


class Cell(nn.Module):
    def __init__(self, channels: int, edge_ops: dict[Edge, Sequence[str]], lif: LIFConfig,
                 dead_backward: bool = False):
        super().__init__()
        self.channels = channels
        self.dead_backward = dead_backward
        self.edge_ops = nn.ModuleDict()
        self.op_keys: dict[str, dict[str, str]] = {}  # edge key -> op string -> module key (None for zero)
        for edge, ops in edge_ops.items():
            key = edge_key(edge)
            modules = nn.ModuleDict()
            self.op_keys[key] = {}
            for op in ops:
                spec = OpSpec.parse(op)
                module = spec.build(channels, lif)
                self.op_keys[key][str(spec)] = spec.module_key()
                if module is not None:
                    modules[spec.module_key()] = module
            self.edge_ops[key] = modules
        self.forward_edges = [e for e in edge_ops if e[0] < e[1]]
        self.backward_edges = [e for e in edge_ops if e[0] > e[1]]
        self.active: ActiveOps = {}
        self.num_candidates = 1
        self.set_active({edge_key(e): {op: 1.0 / len(ops) for op in ops} for e, ops in edge_ops.items()})

    def set_active(self, weights: dict[str, dict[str, float]]) -> None:
        """Run, on each edge, the given ops (by op string) with the given weights; zero ops never run."""
        self.set_candidates([weights])

    def set_candidates(self, candidates: Sequence[dict[str, dict[str, float]]]) -> None:
        """Run R candidate weightings at once; the input batch is then R blocks of equal size."""
        count = len(candidates)
        active: ActiveOps = {}
        for key, modules in self.edge_ops.items():
            runs = []
            for op, module_key in self.op_keys[key].items():
                if module_key not in modules:  # zero has no module: contributes nothing
                    continue
                weights = [(r, cand.get(key, {}).get(op, 0.0)) for r, cand in enumerate(candidates)]
                weights = [(r, w) for r, w in weights if w > 0]
                if not weights:
                    continue
                rows = None if len(weights) == count else torch.tensor([r for r, _ in weights])
                values = [w for _, w in weights]
                weight = values[0] if len(set(values)) == 1 else torch.tensor(values)
                runs.append(OpRun(module_key, rows, weight))
            if runs:
                active[key] = runs
        self.active = active
        self.num_candidates = count

    def lif_rows(self) -> list[tuple[nn.Module, torch.Tensor | None]]:
        """Every spiking module that runs, with the candidate blocks it runs on."""
        return [(lif, run.rows) for key, runs in self.active.items() for run in runs
                for lif in spiking_modules(self.edge_ops[key][run.module_key])]

    def _edge(self, edge: Edge, value: torch.Tensor) -> torch.Tensor | None:
        runs = self.active.get(edge_key(edge))
        if not runs:
            return None
        modules = self.edge_ops[edge_key(edge)]
        count = self.num_candidates
        out, owned = None, False  # owned: ``out`` is our own tensor (never a module's input) and may change in place
        for run in runs:
            module = modules[run.module_key]
            if run.rows is None:
                y = module(value)
                if isinstance(run.weight, torch.Tensor):  # one weight per candidate block
                    weight = run.weight.to(y.device, y.dtype).view(count, *([1] * y.dim()))
                    if out is None:
                        out = (y.unflatten(0, (count, -1)) * weight).flatten(0, 1)
                    else:
                        out = out if owned else out.clone()
                        out.unflatten(0, (count, -1)).addcmul_(y.unflatten(0, (count, -1)), weight)
                elif out is None:
                    out = y if run.weight == 1.0 else y * run.weight
                    owned = run.weight != 1.0
                    continue
                else:
                    out = torch.add(out, y, alpha=run.weight)  # one fused kernel instead of a multiply and an add
                owned = True
                continue
            rows = run.rows.to(value.device)
            blocks = value.unflatten(0, (count, -1))
            y = module(blocks.index_select(0, rows).flatten(0, 1)).unflatten(0, (len(rows), -1))
            if isinstance(run.weight, torch.Tensor):
                y = y * run.weight.to(y.device, y.dtype).view(-1, *([1] * (y.dim() - 1)))
            elif run.weight != 1.0:
                y = y * run.weight
            if out is None:
                out = y.new_zeros((count, *y.shape[1:])).index_copy_(0, rows, y).flatten(0, 1)
            else:
                out = out if owned else out.clone()
                out.unflatten(0, (count, -1)).index_add_(0, rows, y)
            owned = True
        return out

    def forward(self, x: torch.Tensor, state: list | None = None) -> tuple[torch.Tensor, list]:
        """One timestep. ``state[j]`` is node j's backward input from the previous timestep."""
        back = state if state is not None else [None] * NUM_NODES
        inputs: dict[int, torch.Tensor] = {}

        def node_input(j: int) -> torch.Tensor:
            """Node j's value plus its backward state, computed once per timestep."""
            if j not in inputs:
                inputs[j] = nodes[j] if back[j] is None else nodes[j] + back[j]
            return inputs[j]

        nodes = [x]
        for i in range(1, NUM_NODES):
            total = None
            for j in range(i):
                if edge_key((j, i)) in self.active:
                    y = self._edge((j, i), node_input(j))
                    total = y if total is None else total + y
            nodes.append(total if total is not None else torch.zeros_like(x))
        new_back: list = [None] * NUM_NODES
        if self.backward_edges:
            for dst in range(NUM_NODES - 1):
                for src in range(dst + 1, NUM_NODES):
                    if edge_key((src, dst)) not in self.active:
                        continue
                    y = self._edge((src, dst), node_input(src))
                    new_back[dst] = y if new_back[dst] is None else new_back[dst] + y
            if self.dead_backward:  # LightSNN's released code: computed, never read (methods.md §3.1)
                new_back = [None] * NUM_NODES
        return nodes[-1], new_back
