"""The SNASNet macro network (methods.md §1.3), discrete or as a supernet.

Shapes, once for the whole package: a network takes either a static image
batch ``[B, C, H, W]`` (direct encoding: the same analog image is the input
at every timestep, the stem runs once) or event frames ``[T, B, C, H, W]``;
it returns the time-averaged boosted class scores ``[B, num_classes]``.
Every LIF runs single-step inside the timestep loop, so state lives in the
neurons; run it through :func:`lightsnn.space.neurons.sequences`, which resets them before each sequence.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Sequence

import torch
import torch.nn as nn
from spikingjelly.activation_based import layer

from lightsnn.core.options import check_field, check_known, check_types, from_section, opt
from lightsnn.space.cell import Cell
from lightsnn.space.genotype import CellGenotype, Genotype, GenotypeError, edge_key
from lightsnn.space.neurons import LIFConfig, make_lif, spiking_modules
from lightsnn.space.ops import OpSpec
from lightsnn.space.pooling import AvgPool2d, MaxPool2d
from lightsnn.space.spaces import SearchSpace

from lightsnn.core.budget import MAX_TIMESTEPS

POOLINGS = ("avg", "max")


@dataclass(frozen=True)
class NetConfig:
    """Sizes of the macro network; presets per dataset in :data:`PRESETS`, every field overridable."""

    in_channels: int = opt(3, "input channels (2 for event polarities)", min=1)
    image_size: int = opt(32, "input height = width", min=1)
    num_classes: int = opt(10, "classes", min=1)
    channels: int = opt(256, "C: channels of cell1 (cell2 has 2C)", min=1)
    timesteps: int = opt(5, "T: timesteps (frames for event data)", min=1, max=MAX_TIMESTEPS)
    pooling: str = opt("avg", "resdown pooling (set by the method)", POOLINGS)  # SNASNet avg, LightSNN max
    second_pool: int = opt(2, "kernel of the pool after cell2", min=1)  # SNASNet's --second_avgpooling
    classifier_width: int = opt(1024, "hidden width of the classifier", min=1)
    num_cluster: int = opt(10, "boost: output neurons per class", min=1)
    input_pool: bool = opt(False, "max-pool after the stem (DVS)")  # LightSNN on DVS
    dropout: float = opt(0.5, "classifier dropout (in [0, 1))", min=0.0)
    # papers' N(0, 0.01); tiny classifiers need more to let their LIF fire
    linear_init_std: float = opt(0.01, "std of the N(0, s) init of Linear layers")
    lif: LIFConfig = field(default_factory=LIFConfig)

    def __post_init__(self):
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        for name in ("in_channels", "image_size", "num_classes", "channels", "timesteps", "second_pool",
                     "classifier_width", "num_cluster"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"network.{name} must be a positive integer, got {value!r}")
        if self.timesteps > MAX_TIMESTEPS:
            raise ValueError(f"network.timesteps must be <= {MAX_TIMESTEPS}, got {self.timesteps} (the papers use 5-16)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"network.dropout must be in [0, 1), got {self.dropout!r}")

    def with_overrides(self, overrides: dict | None, where: str = "network") -> "NetConfig":
        """These sizes with ``overrides`` (a config section, named ``where`` in every message) applied."""
        if not overrides:
            return self
        values = self._checked(overrides, where)
        if isinstance(values.get("lif"), dict):
            values["lif"] = from_section(LIFConfig, {**asdict(self.lif), **values["lif"]}, where="network.lif")
        return replace(self, **values)

    @classmethod
    def from_dict(cls, network: dict, where: str = "network") -> "NetConfig":
        """The network config a result file or checkpoint stores: known keys, right types, or one line naming
        the bad key or value (never a ``TypeError`` from ``__init__``)."""
        values = cls._checked(network, where)
        values["lif"] = from_section(LIFConfig, values.get("lif") if "lif" in values else {}, where=f"{where}.lif")
        return cls(**values)

    @classmethod
    def _checked(cls, values: dict, where: str) -> dict:
        if not isinstance(values, dict):
            raise ValueError(f"{where} must be a mapping of network options, got {values!r}"[:300])
        check_known(cls, values, f"{where} option(s)")
        values = check_types(cls, dict(values), where)
        for f in fields(cls):
            if f.name in values:
                check_field(f, values[f.name], where)
        if "lif" in values and not isinstance(values["lif"], (dict, LIFConfig)):
            raise ValueError(f"{where}.lif must be a mapping, got {values['lif']!r}")
        return values

    def to_dict(self) -> dict:
        return asdict(self)

    #: The options that set :meth:`memory_floor`, for the message that refuses a size.
    SIZE_OPTIONS = "network.timesteps, network.channels"

    def memory_floor(self, batch_size: int, training: bool) -> int:
        """Bytes a batch certainly needs (a floor, not the peak), in fp32: the input and the stem's conv and BN
        (once: a static image is stemmed once); per sample and timestep the tensors every
        genotype computes, whatever its cells hold (the resdown's BN, LIF, conv and BN, its pool, the last BN
        and LIF), held for every timestep when training (backpropagation through time) and for one otherwise;
        and the resdown conv's C x 2C x 3 x 3 weights (with gradients and momentum when training). The cells'
        own tensors depend on the genotype and are left out (measured against a training step's saved tensors:
        0.14-0.72 of them, tests/test_faults.py)."""
        c, area = self.channels, self.image_size ** 2
        inner = area // 4 if self.input_pool else area  # cell1's area
        stem = 2 * c * area
        per_step = 2 * c * inner + 2 * (2 * c) * inner + 2 * c * (inner // 4) + 2 * (2 * c) * (inner // 4)
        kept = self.timesteps if training else 1
        activations = stem + kept * per_step
        inputs = self.in_channels * area
        weights = 18 * c ** 2 * (3 if training else 1)
        return 4 * (batch_size * (inputs + activations) + weights)


#: Network presets of the papers (methods.md §1.2-1.3) and of the offline datasets.
PRESETS: dict[str, NetConfig] = {
    "cifar10": NetConfig(in_channels=3, image_size=32, num_classes=10, channels=256, num_cluster=10),
    "cifar100": NetConfig(in_channels=3, image_size=32, num_classes=100, channels=128, num_cluster=5),
    # SpikeNAS-Bench's network: SNASNet's CIFAR-10 skeleton at C = 128 (cell2 256), T = 5, avg pools
    "spikenas-bench": NetConfig(in_channels=3, image_size=32, num_classes=10, channels=128, timesteps=5,
                                num_cluster=10),
    # its CIFAR-100 logs: the same skeleton with SNASNet's CIFAR-100 classifier (100 classes x 5 clusters)
    "spikenas-bench-cifar100": NetConfig(in_channels=3, image_size=32, num_classes=100, channels=128, timesteps=5,
                                         num_cluster=5),
    "dvs128_gesture": NetConfig(in_channels=2, image_size=128, num_classes=11, channels=128, timesteps=16,
                                num_cluster=10, input_pool=True),
    # small offline presets: a fan-in of ~100 instead of 32768 needs a larger init std for the classifier
    # LIF to fire at all (measured: with 0.01 it stays silent and training sits at chance)
    "digits": NetConfig(in_channels=1, image_size=8, num_classes=10, channels=16, classifier_width=128,
                        num_cluster=10, linear_init_std=0.5),
    "ndigits": NetConfig(in_channels=2, image_size=32, num_classes=10, channels=16, classifier_width=128,
                         num_cluster=10, input_pool=True, linear_init_std=0.25),
}


def _init_weights(module: nn.Module, linear_std: float = 0.01) -> None:
    """SNASNet/LightSNN initialisation (methods.md §1.4)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_uniform_(m.weight, a=2)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
            m.reset_running_stats()
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, linear_std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class SNASNetwork(nn.Module):
    """stem -> [input pool] -> cell1 -> downconv -> pool -> cell2 -> BN+LIF -> pool -> classifier -> boost."""

    def __init__(self, config: NetConfig, cell_ops: Sequence[dict[tuple[int, int], Sequence[str]]],
                 dead_backward: bool = False):
        super().__init__()
        if len(cell_ops) != 2:
            raise ValueError("cell_ops needs the edge ops of cell1 and cell2")
        self.config = config
        c = config.channels
        pool = AvgPool2d if config.pooling == "avg" else MaxPool2d
        self.stem = nn.Sequential(nn.Conv2d(config.in_channels, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        self.input_pool = MaxPool2d(2, 2) if config.input_pool else nn.Identity()
        self.cell1 = Cell(c, cell_ops[0], config.lif, dead_backward)
        self.downconv = nn.Sequential(nn.BatchNorm2d(c), make_lif(config.lif),
                                      nn.Conv2d(c, 2 * c, 3, 1, 1, bias=False), nn.BatchNorm2d(2 * c))
        self.pool1 = pool(2, 2)
        self.cell2 = Cell(2 * c, cell_ops[1], config.lif, dead_backward)
        self.last_act = nn.Sequential(nn.BatchNorm2d(2 * c), make_lif(config.lif))
        self.pool2 = pool(config.second_pool, config.second_pool)
        self.in_features = 2 * c * self._feature_area()
        self.classifier = nn.Sequential(
            layer.Dropout(config.dropout),
            nn.Linear(self.in_features, config.classifier_width, bias=False),
            make_lif(config.lif),
            nn.Linear(config.classifier_width, config.num_classes * config.num_cluster, bias=True),
        )
        self.boost = nn.AvgPool1d(config.num_cluster, config.num_cluster)
        _init_weights(self, config.linear_init_std)

    def _feature_area(self) -> int:
        """Spatial size of the real feature map at the classifier (the released LightSNN hard-codes it wrongly)."""
        with torch.no_grad():
            probe = torch.zeros(1, self.config.in_channels, self.config.image_size, self.config.image_size,
                                device=self.stem[0].weight.device, dtype=self.stem[0].weight.dtype)
            h = self.pool2(self.pool1(self.input_pool(self.stem[0](probe))))
        if h.shape[-1] < 1 or h.shape[-2] < 1:
            raise ValueError(f"image_size {self.config.image_size} is too small for the network's pools")
        return int(h.shape[-2] * h.shape[-1])

    @classmethod
    def from_genotype(cls, config: NetConfig, genotype: Genotype, dead_backward: bool = False) -> "SNASNetwork":
        cell_ops = [{e: [op] for e, op in genotype.cell_for(i).ops} for i in range(2)]
        return cls(config, cell_ops, dead_backward)  # one op per edge: weight 1.0

    def reinitialize(self) -> None:
        _init_weights(self, self.config.linear_init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = self.config.timesteps
        static = x.dim() == 4
        if not static and (x.dim() != 5 or x.shape[0] != steps):
            raise ValueError(f"expected [B,C,H,W] or [T={steps},B,C,H,W] input, got shape {tuple(x.shape)}")
        stem_out = self.stem(x) if static else None
        state1 = state2 = None
        total = None
        for t in range(steps):
            h = stem_out if static else self.stem(x[t])
            h = self.input_pool(h)
            h, state1 = self.cell1(h, state1)
            h = self.pool1(self.downconv(h))
            h, state2 = self.cell2(h, state2)
            h = self.pool2(self.last_act(h))
            h = self.classifier(h.flatten(1))
            h = self.boost(h.unsqueeze(1)).squeeze(1)
            total = h if total is None else total + h
        return total / steps


class SuperNet(SNASNetwork):
    """Every op of the space on every edge, mixed by softmax over per-edge logits.

    Ops whose weight is at most ``threshold`` do not run (LightSNN's rule, methods.md §3.1).
    Logits are plain tensors on the host, never parameters: they are not trained.
    """

    def __init__(self, config: NetConfig, space: "SearchSpace | str | Sequence[str]", shared: bool = True,
                 threshold: float = 0.01, dead_backward: bool = False):
        """``space``: a SearchSpace, or a named space / list of ops with backward cells."""
        self.search_space = SearchSpace.of(space)
        self.space = self.search_space.ops
        self.edges = self.search_space.edges
        edge_ops = {e: list(self.space) for e in self.edges}
        super().__init__(config, [edge_ops, edge_ops], dead_backward)
        self.cell_type = self.search_space.cell_type
        self.shared = shared
        self.threshold = threshold
        self.logits = torch.zeros(1 if shared else 2, len(self.edges), len(self.space), dtype=torch.float64)
        self.set_logits(self.logits)

    def weights(self, logits: torch.Tensor | None = None) -> torch.Tensor:
        return torch.softmax((self.logits if logits is None else logits).to(torch.float64), dim=-1)

    def active_mask(self, logits: torch.Tensor | None = None) -> torch.Tensor:
        return self.weights(logits) > self.threshold

    def set_logits(self, logits: torch.Tensor) -> None:
        logits = self._checked(logits)
        self.logits = logits.clone()
        self._set_cells([self.logits])

    def set_candidate_logits(self, candidates: Sequence[torch.Tensor]) -> None:
        """Run R logit sets at once on R candidate blocks of the batch (see :class:`~lightsnn.space.cell.Cell`).

        Only meaningful with eval-mode BatchNorm (a fixed affine map, so blocks do not mix); :meth:`set_logits`
        returns to one candidate.
        """
        if not candidates:
            raise ValueError("set_candidate_logits needs at least one candidate")
        self._set_cells([self._checked(c) for c in candidates])

    def candidate_lif_rows(self) -> list[tuple[nn.Module, torch.Tensor | None]]:
        """Every spiking module that runs, with the candidate blocks it runs on (None: all of them)."""
        in_cells = {id(m) for cell in (self.cell1, self.cell2) for m in cell.modules()}
        outside = [(m, None) for m in spiking_modules(self) if id(m) not in in_cells]
        return outside + self.cell1.lif_rows() + self.cell2.lif_rows()

    def _checked(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.detach().to("cpu", torch.float64)
        if logits.shape != self.logits.shape:
            raise ValueError(f"logits must have shape {tuple(self.logits.shape)}, got {tuple(logits.shape)}")
        return logits

    def _set_cells(self, candidates: list[torch.Tensor]) -> None:
        weights = [self.weights(logits).tolist() for logits in candidates]
        for index, cell in enumerate((self.cell1, self.cell2)):
            cell.set_candidates([
                {edge_key(e): {op: w for op, w in zip(self.space, row) if w > self.threshold}
                 for e, row in zip(self.edges, per_cell[0 if self.shared else index])}
                for per_cell in weights])

    def mask_logits(self, genotype: Genotype) -> torch.Tensor:
        """Logits that select exactly the genotype's op on every edge (weight 1.0, others 0)."""
        cells = range(1 if self.shared else 2)
        if self.shared and len(genotype.cells) == 2 and genotype.cells[0] != genotype.cells[1]:
            raise GenotypeError("this supernet shares one cell genotype; the genotype has two different cells")
        logits = torch.full_like(self.logits, -1000.0)
        for c in cells:
            cell = genotype.cell_for(c)
            for (src, dst), _ in cell.ops:
                if (src, dst) not in self.edges:
                    raise GenotypeError(f"edge {src}->{dst} is not in a {self.cell_type} cell")
            for e_index, edge in enumerate(self.edges):
                op = cell.op(edge)
                if op not in self.space:
                    raise GenotypeError(f"op {op!r} on edge {edge_key(edge)} is not in the space {list(self.space)}")
                logits[c, e_index, self.space.index(op)] = 0.0
        return logits

    def set_genotype(self, genotype: Genotype) -> None:
        self.set_logits(self.mask_logits(genotype))

    def reinitialize(self) -> None:
        """Fresh weights for the modules that run now; ops that do not run are left as they are."""
        for name, child in self.named_children():
            if name not in ("cell1", "cell2"):
                _init_weights(child, self.config.linear_init_std)
        for cell in (self.cell1, self.cell2):
            for key, runs in cell.active.items():
                for run in runs:
                    _init_weights(cell.edge_ops[key][run.module_key])

    def genotype(self) -> Genotype:
        """The argmax op of every edge."""
        best = self.weights().argmax(-1).tolist()
        cells = [CellGenotype.from_edges({e: self.space[o] for e, o in zip(self.edges, row)}) for row in best]
        return Genotype(tuple(cells))

    def discrete_state_dict(self, genotype: Genotype) -> dict[str, torch.Tensor]:
        """The supernet's weights restricted to the modules of ``SNASNetwork.from_genotype(genotype)``."""
        keep = {}
        for name, tensor in self.state_dict().items():
            parts = name.split(".")
            if parts[0] in ("cell1", "cell2") and parts[1] == "edge_ops":
                cell = genotype.cell_for(0 if parts[0] == "cell1" else 1)
                src, dst = (int(v) for v in parts[2].split("->"))
                op = cell.op((src, dst))
                if op == "zero" or OpSpec.parse(op).module_key() != parts[3]:
                    continue
            keep[name] = tensor
        return keep


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
