"""SpikeNAS-Bench's training logs (one ``<dataset folder>/<id>/train_process.txt`` per architecture), as our
genotypes: all 15,625 architectures on CIFAR-10 (``CIFAR10/``), and whatever ids a folder holds (the repository's
``CIFAR100/`` holds 276): a partial benchmark is a benchmark, and says how many of the space's ids it holds.

The space: one forward cell of 4 nodes shared by both cell positions; each of the 6 edges takes op code
0-4 = ``zero``, ``skip``, ``conv3x3(th=0.5)``, ``conv3x3(th=1)``, ``conv3x3(th=1.5)`` (LIF -> Conv3x3 -> BN with that
firing threshold). Architecture id = sum of code_k * 5**k over the edges (0,1), (0,2), (0,3), (1,2), (1,3), (2,3).
The network is SNASNet's skeleton with C = 128 (preset ``spikenas-bench``; on CIFAR-100 ``spikenas-bench-cifar100``,
SNASNet's CIFAR-100 classifier of 100 classes x 5 clusters). An architecture is valid
when every node lies on a path from the input to the output and the 0->3 edge is not zero (7,424 of 15,625).
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from lightsnn.nasbench.base import BenchmarkBase
from lightsnn.space.genotype import CellGenotype, Genotype, GenotypeError
from lightsnn.space.ops import SPACES
from lightsnn.space.spaces import SearchSpace

#: The benchmark's datasets: the folder of each under the benchmark's root, and the network preset it trained.
DATASET_FOLDERS = {"cifar10": "CIFAR10", "cifar100": "CIFAR100"}
DATASET_PRESETS = {"cifar10": "spikenas-bench", "cifar100": "spikenas-bench-cifar100"}
LOG_NAME = "train_process.txt"
#: Edge k is digit k (weight 5**k) of an architecture id.
BENCH_EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
SPACE_NAME = "spikenas-bench-ops"  # lightsnn.space.ops.SPACES key
OPS = SPACES[SPACE_NAME]  # op code -> op name
NUM_ARCHS = len(OPS) ** len(BENCH_EDGES)
MAX_EPOCHS = 200
NUM_FIRING_RATES = 16
_TIME = re.compile(r"^Elapsed time:\s*([\d.]+)hour([\d.]+)minute([\d.]+)second\s*$")
_ROW = re.compile(r"^\s*\d+(\.\d*)?\s*,")


def genotype_of(arch_id: int) -> Genotype:
    """The shared forward cell of architecture ``arch_id`` (every edge, before any pruning)."""
    if not (isinstance(arch_id, (int, np.integer)) and 0 <= arch_id < NUM_ARCHS):
        raise ValueError(f"SpikeNAS-Bench architecture id must be an integer in 0..{NUM_ARCHS - 1}, got {arch_id!r}")
    codes = [(int(arch_id) // len(OPS) ** k) % len(OPS) for k in range(len(BENCH_EDGES))]
    return Genotype.shared(CellGenotype.from_edges({e: OPS[c] for e, c in zip(BENCH_EDGES, codes)}))


def id_of(genotype: Genotype) -> int:
    """The architecture id of a genotype of this space (one shared forward cell, ops of :data:`OPS`)."""
    if len(genotype.cells) != 1 and genotype.cells[0] != genotype.cells[1]:
        raise GenotypeError("SpikeNAS-Bench shares one cell between both positions; this genotype has two")
    cell = genotype.cells[0]
    for edge, op in cell.ops:
        if edge not in BENCH_EDGES:
            raise GenotypeError(f"edge {edge[0]}->{edge[1]} is not a forward edge of SpikeNAS-Bench's cell")
        if op not in OPS:
            raise GenotypeError(f"op {op!r} is not in SpikeNAS-Bench's space {list(OPS)}")
    return sum(OPS.index(cell.op(e)) * len(OPS) ** k for k, e in enumerate(BENCH_EDGES))


def is_valid(arch_id: int) -> bool:
    """Every node on a path from the input (0) to the output (3), and the 0->3 edge not zero."""
    cell = genotype_of(arch_id).cells[0]
    edges = [e for e, _ in cell.ops]

    def reaches(src: int, dst: int) -> bool:
        seen, frontier = {src}, [src]
        while frontier:
            node = frontier.pop()
            for a, b in edges:
                if a == node and b not in seen:
                    seen.add(b)
                    frontier.append(b)
        return dst in seen

    return cell.op((0, 3)) != "zero" and all(reaches(0, n) and reaches(n, 3) for n in (1, 2))


class LogError(ValueError):
    """A SpikeNAS-Bench log that does not follow the format; the message names the file."""


def read_log(path: Path) -> dict:
    """One ``train_process.txt``; a :class:`LogError` naming the file and line for anything malformed."""
    def bad(reason: str) -> LogError:
        return LogError(f"SpikeNAS-Bench log {str(path)!r}: {reason}")

    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise LogError(f"SpikeNAS-Bench log {str(path)!r} cannot be read ({err.strerror})") from None
    record: dict = {"curves": []}
    for number, line in enumerate(lines, start=1):
        key, _, value = line.partition(":")
        try:
            if _ROW.match(line):
                values = [float(v) for v in line.split(",")]
                if len(values) != 5:
                    raise bad(f"line {number} has {len(values)} values, expected 5 (epoch, train_acc, train_loss, "
                              "val_acc, val_loss)")
                record["curves"].append(values[1:])
            elif key == "architecture id":
                record["id"] = int(value)
            elif key == "model parameters":
                record["params"] = int(value)
            elif key == "test accuracy":
                record["test_acc"] = float(value)
            elif key == "firing rate of layers":
                record["firing"] = [float(v) for v in value.split(",")]
            elif line.startswith("Elapsed time"):
                match = _TIME.match(line)
                if not match:
                    raise bad(f"line {number} is not 'Elapsed time: <h>hour<m>minute<s>second': {line!r}")
                h, m, s = (float(v) for v in match.groups())
                record["seconds"] = 3600 * h + 60 * m + s
            elif line.strip() and not line.startswith("epoch,"):
                raise bad(f"line {number} is not part of the format: {line[:80]!r}")
        except LogError:
            raise
        except ValueError:  # a number that does not parse
            raise bad(f"line {number} does not parse: {line[:80]!r}") from None
    missing = [k for k in ("id", "params", "test_acc", "firing", "seconds") if k not in record]
    if missing:
        raise bad(f"lacks {', '.join(missing)} (incomplete log?)")
    if not 1 <= len(record["curves"]) <= MAX_EPOCHS:
        raise bad(f"has {len(record['curves'])} epoch lines, expected 1..{MAX_EPOCHS}")
    if len(record["firing"]) != NUM_FIRING_RATES:
        raise bad(f"has {len(record['firing'])} firing rates, expected {NUM_FIRING_RATES}")
    return record


class SpikeNASBench(BenchmarkBase):
    """The architectures a dataset folder holds: ``table`` (one row per id, indexed by id) and, row by row, their
    curves (train_acc, train_loss, val_acc, val_loss per epoch; NaN after a log's last epoch)."""

    name = "spikenas-bench"
    space_name = SPACE_NAME
    space = SearchSpace(OPS, "forward")
    space_size = NUM_ARCHS
    pooling = "avg"
    #: What this benchmark records per architecture (a study that needs another field refuses in one line).
    fields = frozenset({"test_acc", "params", "val_curve", "cost_per_epoch", "trained_firing_rates"})

    def __init__(self, table: pd.DataFrame, curves: np.ndarray, root: Path, dataset: str = "cifar10"):
        self.table = table.set_axis(table["id"].to_numpy(), axis=0)
        self._curves = curves
        self._row = {int(i): r for r, i in enumerate(self.table["id"])}
        self.root = root
        self.dataset = dataset
        self.preset = DATASET_PRESETS[dataset]  # lightsnn.space.network.PRESETS key of the network it trained

    @classmethod
    def open(cls, root: str | Path, cache_dir=None, dataset: str = "cifar10") -> "SpikeNASBench":
        """Read ``root/<CIFAR10 or CIFAR100>/<id>/train_process.txt`` for every id there (about 10 s for all
        15,625), or the .npz cache of an earlier read of the same files in ``cache_dir``. ``root`` may also be the
        dataset folder itself; its name then says the dataset."""
        root = Path(root)
        by_folder = {folder: name for name, folder in DATASET_FOLDERS.items()}
        if root.name in by_folder and not (root / DATASET_FOLDERS[dataset]).is_dir():
            folder, dataset = root, by_folder[root.name]
        else:
            if dataset not in DATASET_FOLDERS:
                raise ValueError(f"SpikeNAS-Bench has no dataset {dataset!r}; it has {', '.join(DATASET_FOLDERS)}")
            folder = root / DATASET_FOLDERS[dataset]
        if not folder.is_dir():
            raise FileNotFoundError(
                f"SpikeNAS-Bench not found: {str(folder)!r} is not a folder; expected "
                f"{root}/{DATASET_FOLDERS[dataset]}/<id>/{LOG_NAME} for ids in 0..{NUM_ARCHS - 1}, the layout of the "
                "tju-sun-lab/SpikeNAS-Bench repository's data/ folder (set benchmark.root to where it is)")
        cache = None
        if cache_dir is not None:  # keyed by the logs' sizes and times: an edited log is read again
            stats = [p.stat() for p in folder.glob(f"*/{LOG_NAME}")]
            fingerprint = {"root": str(folder.resolve()), "version": 3, "count": len(stats),
                           "bytes": sum(s.st_size for s in stats), "mtime": max((s.st_mtime for s in stats), default=0)}
            key = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:12]
            cache = Path(cache_dir) / f"spikenas-bench-{key}.npz"
            if cache.exists():
                with np.load(cache, allow_pickle=False) as data:
                    table = pd.DataFrame({k[2:]: data[k] for k in data.files if k.startswith("t_")})
                    return cls(table, data["curves"], root, dataset)
        table, curves = cls._read_all(folder)
        if cache is not None:
            from lightsnn.core.atomic import atomic_path

            with atomic_path(cache) as tmp, open(tmp, "wb") as handle:
                np.savez(handle, curves=curves, **{f"t_{c}": table[c].to_numpy() for c in table.columns})
        return cls(table, curves, root, dataset)

    @staticmethod
    def _read_all(folder: Path) -> tuple[pd.DataFrame, np.ndarray]:
        ids = []
        for entry in folder.iterdir():
            if not entry.is_dir():
                continue
            if not (entry.name.isdigit() and int(entry.name) < NUM_ARCHS):
                raise ValueError(f"SpikeNAS-Bench folder {str(entry)!r} is not an architecture id in "
                                 f"0..{NUM_ARCHS - 1}")
            ids.append(int(entry.name))
        if not ids:
            raise FileNotFoundError(f"SpikeNAS-Bench folder {str(folder)!r} holds no architecture (expected "
                                    f"<id>/{LOG_NAME} folders)")
        rows, curves = [], np.full((len(ids), MAX_EPOCHS, 4), np.nan, dtype=np.float32)
        for row, arch_id in enumerate(sorted(ids)):
            path = folder / str(arch_id) / LOG_NAME
            if not path.is_file():
                raise FileNotFoundError(f"SpikeNAS-Bench log {str(path)!r} is missing (its folder is there)")
            record = read_log(path)
            if record["id"] != arch_id:
                raise ValueError(f"SpikeNAS-Bench log {str(path)!r} says architecture id {record['id']}, "
                                 f"its folder says {arch_id}")
            curve = np.asarray(record["curves"], dtype=np.float32)
            curves[row, :len(curve)] = curve
            firing = np.asarray(record["firing"])
            rows.append({"id": arch_id, "valid": is_valid(arch_id), "params": record["params"],
                         "test_acc": record["test_acc"], "epochs": len(curve), "seconds": record["seconds"],
                         "final_val_acc": float(curve[-1, 2]),
                         "mean_firing_rate": float(firing[firing >= 0].mean()) if (firing >= 0).any() else np.nan,
                         **{f"fr_{k}": float(rate) for k, rate in enumerate(firing)}})
        return pd.DataFrame(rows), curves

    # --- lookups ----------------------------------------------------------------------------------
    def genotype(self, arch_id: int) -> Genotype:
        return genotype_of(arch_id)

    def id_of(self, genotype: Genotype) -> int:
        return id_of(genotype)

    def rows_of(self, ids) -> np.ndarray:
        try:
            return np.asarray([self._row[int(i)] for i in ids], dtype=np.int64)
        except KeyError as err:
            raise ValueError(f"architecture {err.args[0]} is not in this benchmark ({self.coverage})") from None

    def val_curves(self, ids) -> np.ndarray:
        """Validation accuracy per epoch of each of ``ids`` ([len(ids), 200]; NaN after its last epoch)."""
        return self._curves[self.rows_of(ids), :, 2].astype(np.float64)

    def val_acc_at(self, epochs: int) -> np.ndarray:
        """Validation accuracy after ``epochs`` epochs, indexed by id over the whole space (NaN for an id the
        benchmark does not hold, or whose training stopped earlier): the early-stopping baseline."""
        if not 1 <= epochs <= MAX_EPOCHS:
            raise ValueError(f"epochs must be in 1..{MAX_EPOCHS}, got {epochs}")
        out = np.full(NUM_ARCHS, np.nan)
        out[self.table["id"].to_numpy()] = self._curves[:, epochs - 1, 2]
        return out

    def hours_per_epoch(self, ids) -> np.ndarray:
        """GPU-hours of one epoch of each of ``ids``' training: its logged elapsed time over its epochs (the time
        includes each epoch's validation and the final test, as a real run's would)."""
        rows = self.table.loc[np.asarray(ids)]
        return (rows["seconds"] / rows["epochs"]).to_numpy(dtype=np.float64) / 3600.0

    def trained_costs(self) -> pd.DataFrame:
        """Per id: SynOps, MACs and energy (pJ) of one inference of the trained network (:func:`trained_cost`,
        priced at the benchmark network's own sizes and output count), and its logged mean firing rate."""
        net = self.network()
        sizes = {"timesteps": net.timesteps, "channels": net.channels, "image": net.image_size,
                 "hidden": net.classifier_width, "outputs": net.num_classes * net.num_cluster}
        rates = self.table[[f"fr_{k}" for k in range(NUM_FIRING_RATES)]].to_numpy()
        rows = [trained_cost(int(i), np.maximum(r, 0.0), **sizes) for i, r in zip(self.table["id"], rates)]
        costs = pd.DataFrame(rows, index=self.table["id"].to_numpy())
        costs["firing_rate"] = self.table[f"fr_{NUM_FIRING_RATES - 1}"].to_numpy()  # the mean over every LIF
        return costs


# --- the trained networks' cost -------------------------------------------------------------------------
#: What each of a log's 16 firing rates measures, from the benchmark's training code (Train_all_networks/
#: train_all_networks.py: spikingjelly's Monitor over ``module_name``, then the average over every LIF): the
#: LIF before the conv of each edge of cell1 and then of cell2, in the cell's construction order (for col in
#: 1..3, for row < col: (0,1), (0,2), (1,2), (0,3), (1,3), (2,3); -1 where the edge is no conv), the LIF of the
#: downsampling block, the LIF after cell2, the classifier's hidden LIF, and the mean over all of them. Rates are
#: spikes per neuron and timestep over the test set, measured after training.
LOGGED_EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
FIRING_LAYERS: tuple[str, ...] = (*(f"cell1 {a}->{b}" for a, b in LOGGED_EDGES),
                                  *(f"cell2 {a}->{b}" for a, b in LOGGED_EDGES),
                                  "downconv", "last_act", "classifier", "all")


def trained_cost(arch_id: int, rates, timesteps: int = 5, channels: int = 128, image: int = 32,
                 hidden: int = 1024, outputs: int = 100) -> dict:
    """Synaptic operations, MACs and energy of one inference of the *trained* network ``arch_id``, from its
    logged firing rates, priced as ``evaluate`` prices our networks (spikingjelly's counters: a conv or linear
    fed by spikes costs one accumulate per spike and fan-out, one fed by real values one MAC per weight and
    position, every BatchNorm one MAC per element; E = 0.9 pJ x SynOps + 4.6 pJ x MACs).

    The network (docs/evidence.md): the stem conv and BN run once on the image (the benchmark's code repeats
    their output over T); each conv edge is LIF -> conv3x3 -> BN, C x C at image^2 in cell1, 2C x 2C at
    (image/2)^2 in cell2; downconv BN -> LIF -> conv3x3 C -> 2C -> BN -> AvgPool2; BN -> LIF after cell2,
    AvgPool2, Linear(2C (image/4)^2 -> hidden) on the pooled (real-valued) spikes, LIF, Linear(hidden ->
    outputs). A spike-fed layer's SynOps are its dense MACs times its input's firing rate."""
    from lightsnn.core.energy import energy_pj

    rates = [float(r) for r in rates]
    cell = genotype_of(arch_id).cells[0]
    wide, small = 2 * channels, image // 2
    conv1, conv2 = 9 * channels * channels * image ** 2, 9 * wide * wide * small ** 2
    synops = macs = 0.0
    macs += 9 * 3 * channels * image ** 2 + channels * image ** 2  # stem conv and BN, once
    for position, (conv, bn) in enumerate(((conv1, channels * image ** 2), (conv2, wide * small ** 2))):
        for k, edge in enumerate(LOGGED_EDGES):
            if cell.op(edge).startswith("conv"):
                synops += timesteps * rates[6 * position + k] * conv
                macs += timesteps * bn
    synops += timesteps * rates[12] * 9 * channels * wide * image ** 2  # downconv, at full resolution
    macs += timesteps * (channels * image ** 2 + wide * image ** 2)  # its BN before the LIF and after the conv
    macs += timesteps * wide * small ** 2  # BN after cell2
    macs += timesteps * wide * (image // 4) ** 2 * hidden  # the first linear, fed by pooled spikes
    synops += timesteps * rates[14] * hidden * outputs
    return {"synops": synops, "macs": macs, "energy_pj": energy_pj(synops, macs)}
