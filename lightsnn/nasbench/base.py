"""What every tabular benchmark shares: a reader subclasses :class:`BenchmarkBase`, reads its table, names its
space, network and dataset, lists the ``fields`` it records, and implements the lookups of those fields. A study
that needs a field the benchmark lacks is refused in one line naming it (docs/extending.md)."""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

#: Per-architecture facts a benchmark may record, and what needs each.
FIELDS = {
    "test_acc": "test accuracy after training",
    "params": "parameter count",
    "val_curve": "validation accuracy per training epoch (val_curves, val_acc_at)",
    "cost_per_epoch": "GPU-hours of one training epoch (hours_per_epoch)",
    "trained_firing_rates": "firing rates of the trained network, which price its energy (trained_costs)",
}


class BenchmarkBase:
    """A tabular benchmark (:class:`lightsnn.nasbench.TabularBenchmark`) whose ``table`` (one row per architecture
    it holds, indexed by id: id, valid, params, test_acc, epochs, seconds) is set by the reader."""

    name: ClassVar[str]
    space_name: ClassVar[str]  # lightsnn.space.ops.SPACES key
    space: ClassVar[object]  # lightsnn.space.spaces.SearchSpace
    space_size: ClassVar[int]
    pooling: ClassVar[str] = "avg"
    fields: ClassVar[frozenset] = frozenset({"test_acc", "params"})
    dataset: str
    preset: str  # lightsnn.space.network.PRESETS key of the network it trained
    table: pd.DataFrame

    @property
    def coverage(self) -> str:
        return f"{len(self.table):,} of the space's {self.space_size:,} architectures"

    def network(self, width: int | None = None):
        """The network the benchmark trained (at C = ``width`` when given): every study builds it from here."""
        from lightsnn.space.network import PRESETS

        net = PRESETS[self.preset]
        return net if width is None else net.with_overrides({"channels": width})

    def require(self, field: str, study: str) -> None:
        if field not in self.fields:
            raise ValueError(f"{study} needs each architecture's {field}, which benchmark {self.name!r} does not "
                             f"record (it has {', '.join(sorted(self.fields))})")

    def valid_ids(self) -> np.ndarray:
        return self.table.loc[self.table["valid"], "id"].to_numpy()

    def percentile(self, test_acc: float) -> float:
        """Share (%) of valid architectures whose test accuracy is at most ``test_acc``."""
        valid = self.table.loc[self.table["valid"], "test_acc"].to_numpy()
        return float(100.0 * np.mean(valid <= test_acc))

    # --- the fields a benchmark may lack: a reader that records one overrides its lookup -------------------
    def val_curves(self, ids) -> np.ndarray:
        self.require("val_curve", "reading validation curves")
        raise NotImplementedError

    def val_acc_at(self, epochs: int) -> np.ndarray:
        self.require("val_curve", "reading validation accuracy")
        raise NotImplementedError

    def hours_per_epoch(self, ids) -> np.ndarray:
        self.require("cost_per_epoch", "reading training costs")
        raise NotImplementedError

    def trained_costs(self) -> pd.DataFrame:
        self.require("trained_firing_rates", "pricing trained networks")
        raise NotImplementedError
