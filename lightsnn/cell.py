"""The SNASNet cell: 4 nodes, forward edges, backward (next-timestep) edges.

One module serves the discrete network and the supernet: every edge holds a
``ModuleDict`` of candidate ops keyed by op, and :meth:`Cell.set_active`
says which ops run with which weight. A discrete net has one op per edge at
weight 1, so a supernet masked to a single path computes exactly the same.

Backward-edge state is explicit: ``forward(x, state)`` returns ``(out, state)``
and the network starts every sample sequence with ``state=None`` (spec 2.1:
``b`` is reset at each forward).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from .genotype import NUM_NODES, edge_key
from .neurons import LIFConfig
from .ops import OpSpec

Edge = tuple[int, int]
#: For each edge key, the (op module key, weight) pairs that run.
ActiveOps = dict[str, list[tuple[str, float]]]


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
        self.set_active({edge_key(e): {op: 1.0 / len(ops) for op in ops} for e, ops in edge_ops.items()})

    def set_active(self, weights: dict[str, dict[str, float]]) -> None:
        """Run, on each edge, the given ops (by op string) with the given weights; zero ops never run."""
        active: ActiveOps = {}
        for key, op_weights in weights.items():
            modules = self.edge_ops[key]
            runs = [(self.op_keys[key][op], w) for op, w in op_weights.items() if w > 0]
            runs = [(mk, w) for mk, w in runs if mk in modules]  # zero has no module: contributes nothing
            if runs:
                active[key] = runs
        self.active = active

    def _edge(self, edge: Edge, value: torch.Tensor) -> torch.Tensor | None:
        runs = self.active.get(edge_key(edge))
        if not runs:
            return None
        modules = self.edge_ops[edge_key(edge)]
        out = None
        for module_key, weight in runs:
            y = modules[module_key](value)
            if out is None:
                out = y if weight == 1.0 else y * weight
            else:
                out = torch.add(out, y, alpha=weight)  # one fused kernel instead of a multiply and an add
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
            if self.dead_backward:  # LightSNN's released code: computed, never read (spec 3.1)
                new_back = [None] * NUM_NODES
        return nodes[-1], new_back
