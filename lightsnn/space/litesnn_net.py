"""LitE-SNN's space (methods.md §5): SpikeDHS-style cells on a fixed level path, searched as a supernet, and the
decoded network that is retrained.

A cell has two inputs, ``s0`` (the output two cells back) and ``s1`` (the previous output), and ``steps`` nodes;
node ``i`` sums one edge from each of its ``2 + i`` inputs (``s0``, ``s1``, nodes ``0..i-1``), then a node-level
LIF spikes; the cell outputs the concatenated node spikes. Input indices: 0 = s0, 1 = s1, 2 + j = node j.
Ops: ``skip_connect`` and ``snn_b3``. On an edge from a cell input both are a 3x3 spiking conv (channels and
resolution change there); on an edge from a node ``skip_connect`` is the identity.

Shapes as in :mod:`lightsnn.space.network`: a static batch ``[B, C, H, W]`` (the stem runs once) or event frames
``[T, B, C, H, W]``. :class:`LiteSearchNet` returns per-timestep logits ``[T, B, classes]`` (the timestep search
needs them); :class:`LiteNet` their mean over time ``[B, classes]``. Every neuron is a spikingjelly LIF:
:func:`~lightsnn.space.neurons.sequences` resets them before each sequence.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from lightsnn.core.budget import MAX_TIMESTEPS
from lightsnn.core.options import check_field, check_known, check_types, opt
from lightsnn.space.compconv import CompConv, QuantLinear, effective_weights, weights_cached
from lightsnn.space.litesnn_genotype import LITE_OPS, LiteGenotype, LiteGenotypeError, edge_index, edges_per_cell
from lightsnn.space.neurons import make_lite_lif


@dataclass(frozen=True)
class LiteNetConfig:
    """Sizes of a LitE-SNN network (search supernet or retrained network)."""

    in_channels: int = opt(3, "input channels", min=1)
    image_size: int = opt(32, "input height = width", min=1)
    num_classes: int = opt(10, "classes (the released code hard-codes 10, methods.md §7.16)", min=1)
    timesteps: int = opt(6, "T: timesteps (the search's T_max; the retrained network's searched T)", min=1,
                         max=MAX_TIMESTEPS)
    input_pool: bool = opt(False, "max-pool 2x2 after the stem (large event frames: ndigits, DVS128 Gesture)")
    filter_multiplier: int = opt(12, "channels of a node at level 0 (level l: times 2^l)", min=1)
    steps: int = opt(4, "nodes per cell; a cell outputs steps x its node channels", min=1)
    level_path: list[int] = opt([0, 0, 1, 1, 1, 2, 2, 2], "resolution level of every cell (level l: 1/2^l)")
    stem_bits: int | None = opt(None, "bit width of the stem conv (null: analog fp32, as in the search)")
    head_bits: int | None = opt(None, "bit width of the classifier (null: fp32, as in the search)")
    node_input: str = opt("mean", "a searched node's LIF gets the mean or (released code) the sum of its "
                                  "inputs", ("mean", "sum"))
    decay: float = opt(0.2, "LIF decay: u = decay * u * (1 - s) + I", min=0.0, max=0.99)
    threshold: float = opt(0.5, "LIF threshold")
    surrogate_b: float = opt(3.0, "sharpness b of the tanh surrogate", min=0.01)

    def __post_init__(self):
        values = check_types(type(self), {f.name: getattr(self, f.name) for f in fields(self)}, "litesnn network")
        for f in fields(self):  # limits too (T at most MAX_TIMESTEPS), whichever way the config was built
            check_field(f, values[f.name], "litesnn network")
        path = [int(v) for v in values["level_path"]]
        if not path or path[0] != 0 or any(b - a not in (0, 1) for a, b in zip(path, path[1:])):
            raise ValueError(f"litesnn level_path {path} is not allowed: it starts at 0 and each cell stays or "
                             "goes one level down")
        if self.image_size % (2 ** (path[-1] + int(self.input_pool))):
            raise ValueError(f"image_size {self.image_size} is not divisible by 2^{path[-1] + int(self.input_pool)} "
                             "(the level path's last level, and the input pool)")
        object.__setattr__(self, "level_path", tuple(path))

    @property
    def stem_channels(self) -> int:
        return self.filter_multiplier * self.steps

    #: The options that set :meth:`memory_floor`, for the message that refuses a size.
    SIZE_OPTIONS = "the timesteps (max_timesteps, a genotype's T), filter_multiplier, steps"

    def memory_floor(self, batch_size: int, training: bool) -> int:
        """Bytes a batch certainly needs (a floor), in fp32. The network runs all T timesteps of a layer at once
        (``[T, B, ...]``), so every tensor below holds T x B samples: the input, the stem's conv and BN, and per
        cell the spikes of one op on each of its edges and its nodes' outputs. Training keeps all of them for the
        backward pass; inference holds at least the input and the largest of them."""
        area = self.image_size ** 2
        inner = area // 4 if self.input_pool else area
        tensors = [self.stem_channels * area, self.stem_channels * inner]
        for level in self.level_path:
            channels, cell_area = self.filter_multiplier * 2 ** level, inner // 4 ** level
            tensors += [edges_per_cell(self.steps) * channels * cell_area, self.steps * channels * cell_area]
        per_sample = sum(tensors) if training else max(tensors)
        return 4 * self.timesteps * batch_size * (self.in_channels * area + per_sample)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["level_path"] = list(self.level_path)
        return data

    @classmethod
    def from_dict(cls, data: dict, where: str = "network") -> "LiteNetConfig":
        """The config a result file or checkpoint stores: known keys, or one line naming the unknown ones."""
        if not isinstance(data, dict):
            raise ValueError(f"{where} must be a mapping of litesnn network options, got {data!r}"[:300])
        check_known(cls, data, f"{where} option(s) of a litesnn network")
        return cls(**data)


def _cell_inputs(config: LiteNetConfig):
    """Per cell: its level, node channels, and (channels, level) of s0 (None for the first cell) and s1."""
    outputs = [(config.stem_channels, 0)]
    for level in config.level_path:
        channels = config.filter_multiplier * 2 ** level
        yield level, channels, (outputs[-2] if len(outputs) > 1 else None), outputs[-1]
        outputs.append((channels * config.steps, level))


def _seq(module, x: torch.Tensor) -> torch.Tensor:
    """A per-sample module over ``[T, B, ...]``: time folded into the batch (spikingjelly's SeqToANNContainer)."""
    out = module(x.flatten(0, 1))
    return out.view(x.shape[0], x.shape[1], *out.shape[1:])


def _frames(stem, x: torch.Tensor, steps: int) -> torch.Tensor:
    """The stem's output for every timestep ``[T, B, ...]``: a static image is stemmed once and repeated."""
    if x.dim() == 4:
        return stem(x).unsqueeze(0).expand(steps, *([-1] * 4))
    if x.dim() != 5 or x.shape[0] != steps:
        raise ValueError(f"expected [B,C,H,W] or [T={steps},B,C,H,W] input, got shape {tuple(x.shape)}")
    return _seq(stem, x)


def _rates(x: torch.Tensor) -> torch.Tensor:
    """Firing rate of ``[T, B, ...]`` per timestep ``[T]``, over batch and neurons (a count: no gradient)."""
    return x.detach().float().flatten(1).mean(1)


class _SourceConvs(nn.Module):
    """Every spiking conv op that reads one input (the search's ``SNN_2d``: CompConv -> BN -> LIF per op), run
    as one conv over the ops' concatenated weights: BN is per channel and the LIF elementwise, so one
    BatchNorm and one LIF over the concatenated channels are the separate ops exactly. Each op keeps its own
    CompConv (its own quantiser step and top-k mask)."""

    def __init__(self, cin: int, cout: int, stride: int, count: int, bits, keep: float, config: LiteNetConfig):
        super().__init__()
        self.convs = nn.ModuleList(CompConv(cin, cout, 3, stride, 1, tuple(bits), keep) for _ in range(count))
        self.bn = nn.BatchNorm2d(cout * count)
        self.lif = make_lite_lif(config.decay, config.threshold, config.surrogate_b)
        self.stride, self.cout = stride, cout
        self.weight: torch.Tensor | None = None

    def prepare(self, beta: torch.Tensor) -> None:
        """The ops' effective weights at the cell's precision weights, once per forward pass."""
        self.weight = effective_weights(list(self.convs), beta).flatten(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Spikes of every op ``[T, B, ops x cout, H', W']``, ops in order."""
        return self.lif(_seq(lambda v: self.bn(F.conv2d(v, self.weight, None, self.stride, 1)), x))


class _SearchCell(nn.Module):
    def __init__(self, config: LiteNetConfig, level: int, channels: int, s0, s1, bits, keep: float):
        super().__init__()
        self.steps = config.steps
        self.has_s0 = s0 is not None  # the first cell has no s0 (methods.md §5.2)
        #: per source: the (node, op index) of each of its conv ops, in the order of its fused output
        self.consumers: dict[int, list[tuple[int, int]]] = {}
        sources = nn.ModuleDict()
        for source in range(2 + self.steps - 1):
            if source == 0 and not self.has_s0:
                continue
            ops = range(len(LITE_OPS)) if source < 2 else [LITE_OPS.index("snn_b3")]
            pairs = [(node, op) for node in range(max(0, source - 1), self.steps) for op in ops]
            given = s0 if source == 0 else s1
            cin, stride = (channels, 1) if source >= 2 else (given[0], 2 ** (level - given[1]))
            self.consumers[source] = pairs
            sources[str(source)] = _SourceConvs(cin, channels, stride, len(pairs), bits, keep, config)
        self.sources = sources
        self.node_lif = nn.ModuleList(make_lite_lif(config.decay, config.threshold, config.surrogate_b)
                                      for _ in range(self.steps))
        # Summed, the alpha-weighted spikes of 2 + i inputs hold a node's membrane above the surrogate's window
        # (it fired 97 % of the time at initialisation and the search stayed at chance, docs/methods.md)
        self.mean = config.node_input == "mean"
        self.fan_in = [2 + node - (0 if self.has_s0 else 1) for node in range(self.steps)]

    def compconvs(self) -> list[CompConv]:
        return [m for m in self.modules() if isinstance(m, CompConv)]

    def prepare(self, alpha: torch.Tensor, beta: torch.Tensor) -> None:
        """The shared op weights and this cell's precision weights for one forward pass."""
        self.alpha = alpha
        self.expected_bits = self.compconvs()[0].expected_bits(beta)
        self.op_weights = {}
        for key, fused in self.sources.items():
            fused.prepare(beta)
            pairs = self.consumers[int(key)]
            self.op_weights[int(key)] = alpha[[edge_index(node, int(key)) for node, _ in pairs],
                                              [op for _, op in pairs]]

    def forward(self, s0, s1, costs: list) -> torch.Tensor:
        """Node i = LIF(sum over its inputs of sum_op alpha_op op(input)); ``costs`` gets the alpha-weighted
        per-sample bit-SynOps ``[T]`` of the conv ops."""
        skip = LITE_OPS.index("skip_connect")
        nodes: list = [0] * self.steps

        def feed(source: int, x: torch.Tensor) -> None:
            if source >= 2:  # skip_connect from a node: the identity
                for node in range(source - 1, self.steps):
                    nodes[node] = nodes[node] + self.alpha[edge_index(node, source), skip] * x
            if source not in self.consumers:
                return
            fused = self.sources[str(source)]
            weights = self.op_weights[source]
            out = fused(x)  # ops in consumer order: node-major, then op
            t, b, _, h, w = out.shape
            first = max(0, source - 1)
            per_node = len(weights) // (self.steps - first)
            weighted = out.view(t, b, -1, per_node, fused.cout, h, w) * weights.view(1, 1, -1, per_node, 1, 1, 1)
            summed = weighted.sum(3)
            for index in range(self.steps - first):
                nodes[first + index] = nodes[first + index] + summed[:, :, index]
            kept = fused.convs[0].kept()  # every op of a source has the same shape, stride and keep ratio
            costs.append(weights.sum() * (kept * h * w) * _rates(x) * self.expected_bits)

        if self.has_s0:
            feed(0, s0)
        feed(1, s1)
        outputs = []
        for node in range(self.steps):
            spikes = self.node_lif[node](nodes[node] / self.fan_in[node] if self.mean else nodes[node])
            outputs.append(spikes)
            feed(2 + node, spikes)
        return torch.cat(outputs, dim=2)
class LiteSearchNet(nn.Module):
    """LitE-SNN's supernet: analog stem, the cells, average pool and a linear head per timestep.

    Architecture parameters (``alphas`` shared by every cell, ``betas`` one row per cell, ``psi`` over
    T = 1..T_max, and every CompConv's ``popup_scores``) are kept apart from the weights by
    :meth:`architecture_parameters` / :meth:`weight_parameters`.
    """

    def __init__(self, config: LiteNetConfig, bits: tuple[int, ...] = (1, 2, 4), keep: float = 0.2):
        super().__init__()
        self.config = config
        self.bits = tuple(bits)
        self.keep = keep
        self.stem = nn.Sequential(nn.Conv2d(config.in_channels, config.stem_channels, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(config.stem_channels),
                                  nn.MaxPool2d(2) if config.input_pool else nn.Identity())
        self.cells = nn.ModuleList(_SearchCell(config, level, channels, s0, s1, self.bits, keep)
                                   for level, channels, s0, s1 in _cell_inputs(config))
        out_channels = config.filter_multiplier * 2 ** config.level_path[-1] * config.steps
        self.head = nn.Linear(out_channels, config.num_classes)
        self.alphas = nn.Parameter(1e-3 * torch.randn(edges_per_cell(config.steps), len(LITE_OPS)))
        self.betas = nn.Parameter(1e-3 * torch.randn(len(self.cells), len(self.bits)))
        self.psi = nn.Parameter(torch.zeros(config.timesteps))
        self.last_costs: dict[str, torch.Tensor] = {}
        self._cell_convs = [cell.compconvs() for cell in self.cells]  # found once, summed every forward

    def compconvs(self) -> list[CompConv]:
        return [m for m in self.modules() if isinstance(m, CompConv)]

    def architecture_parameters(self) -> dict[str, list[nn.Parameter]]:
        return {"alphas": [self.alphas], "compression": [self.betas] + [c.popup_scores for c in self.compconvs()
                                                                        if c.popup_scores is not None],
                "psi": [self.psi]}

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for group in self.architecture_parameters().values() for p in group}
        return [p for p in self.parameters() if id(p) not in arch]

    def model_size_bits(self) -> torch.Tensor:
        """Sum over every candidate op's conv of kept weights x expected bits (not weighted by alpha, as the
        released code)."""
        beta = torch.softmax(self.betas, dim=-1)
        return sum(conv.size_bits(beta[c]) for c, convs in enumerate(self._cell_convs) for conv in convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-timestep logits ``[T, B, classes]``; ``last_costs`` gets the per-sample ``bit_synops`` of every
        timestep (alpha-weighted, ``[T]``) and ``model_size_bits``."""
        alpha = torch.softmax(self.alphas, dim=-1)
        beta = torch.softmax(self.betas, dim=-1)
        for c, cell in enumerate(self.cells):
            cell.prepare(alpha, beta[c])
        outputs = [_frames(self.stem, x, self.config.timesteps)]  # analog stem: direct encoding
        costs: list = []
        for cell in self.cells:
            outputs.append(cell(outputs[-2] if len(outputs) > 1 else None, outputs[-1], costs))
        logits = self.head(outputs[-1].mean((-2, -1)))
        self.last_costs = {"bit_synops": torch.stack(costs).sum(0), "model_size_bits": self.model_size_bits()}
        return logits


class _RetrainCell(nn.Module):
    """A decoded cell: ops return BN membrane (no op-level LIF), only the node LIFs spike (methods.md §5.5);
    inputs from a finer level are downsampled by nearest interpolation, as the released retrain network."""

    def __init__(self, config: LiteNetConfig, genotype: LiteGenotype, level: int, channels: int, s0, s1,
                 bits: int, conv_skip: bool):
        super().__init__()
        self.nodes = genotype.nodes
        self.scales = {0: 2 ** (level - (s0 or s1)[1]), 1: 2 ** (level - s1[1])}
        self.ops = nn.ModuleDict()
        for node, inputs in enumerate(genotype.nodes):
            for source, op in inputs:
                if source < 2 or op == "snn_b3" or conv_skip:
                    cin = (s0 or s1)[0] if source == 0 else s1[0] if source == 1 else channels
                    self.ops[f"{source}->{node}"] = nn.Sequential(
                        CompConv(cin, channels, 3, 1, 1, (bits,), genotype.keep), nn.BatchNorm2d(channels))
        self.node_lif = nn.ModuleList(make_lite_lif(config.decay, config.threshold, config.surrogate_b)
                                      for _ in genotype.nodes)

    def forward(self, s0, s1):
        states = [s0, s1]
        for source in (0, 1):
            if self.scales[source] > 1:
                states[source] = _seq(lambda v: F.interpolate(v, scale_factor=1 / self.scales[source],
                                                              mode="nearest"), states[source])
        for node, inputs in enumerate(self.nodes):
            total = 0
            for source, _ in inputs:
                key = f"{source}->{node}"
                x = states[source]
                total = total + (_seq(self.ops[key], x) if key in self.ops else x)
            states.append(self.node_lif[node](total))
        return torch.cat(states[2:], dim=2)


class LiteNet(nn.Module):
    """The decoded LitE-SNN network: spiking quantised stem, decoded cells at their searched bit widths with
    top-k pruned weights, pooled LIF, quantised linear head + BN; time-averaged logits ``[B, classes]``.

    The first cell takes the stem as both inputs. ``conv_skip`` makes ``skip_connect`` a conv on every edge, as the
    released retrain code does (methods.md §7.18)."""

    def __init__(self, config: LiteNetConfig, genotype: LiteGenotype, conv_skip: bool = False):
        super().__init__()
        if genotype.steps != config.steps:
            raise LiteGenotypeError(f"the genotype has {genotype.steps} nodes, the network config {config.steps}")
        if len(genotype.bits) != len(config.level_path):
            raise LiteGenotypeError(f"the genotype has bits for {len(genotype.bits)} cells, the level path "
                                    f"{list(config.level_path)} has {len(config.level_path)}")
        self.config = config
        self.genotype = genotype
        stem = config.stem_channels
        conv = (CompConv(config.in_channels, stem, 3, 1, 1, (config.stem_bits,), 1.0)
                if config.stem_bits else nn.Conv2d(config.in_channels, stem, 3, 1, 1, bias=False))
        self.stem = nn.Sequential(conv, nn.BatchNorm2d(stem), nn.MaxPool2d(2) if config.input_pool else nn.Identity())
        self.stem_lif = make_lite_lif(config.decay, config.threshold, config.surrogate_b)
        self.cells = nn.ModuleList(_RetrainCell(config, genotype, level, channels, s0, s1, bits, conv_skip)
                                   for (level, channels, s0, s1), bits in zip(_cell_inputs(config), genotype.bits))
        out_channels = config.filter_multiplier * 2 ** config.level_path[-1] * config.steps
        self.pool_lif = make_lite_lif(config.decay, config.threshold, config.surrogate_b)
        self.head = (QuantLinear(out_channels, config.num_classes, config.head_bits) if config.head_bits
                     else nn.Linear(out_channels, config.num_classes))
        self.head_bn = nn.BatchNorm1d(config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with weights_cached(self):
            outputs = [self.stem_lif(_frames(self.stem, x, self.config.timesteps))]
            for cell in self.cells:
                outputs.append(cell(outputs[-2] if len(outputs) > 1 else outputs[-1], outputs[-1]))
            pooled = self.pool_lif(outputs[-1].mean((-2, -1)))
            return _seq(lambda v: self.head_bn(self.head(v)), pooled).mean(0)
