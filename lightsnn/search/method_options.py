"""The options every search method takes, as frozen dataclasses (the CLI flags, the schema and the config docs
are generated from them), and the released-code behaviours ``reference_compat`` switches on."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from lightsnn.core.options import Options, opt
from lightsnn.proxies.registry import PROXIES
from lightsnn.space.genotype import CELL_TYPES, Genotype
from lightsnn.space.network import POOLINGS, NetConfig
from lightsnn.space.ops import SPACES, parse_space
from lightsnn.space.spaces import SearchSpace

BN_MODES = ("train", "eval")

#: Released-code behaviours that ``reference_compat`` can switch on one by one (methods.md §7).
COMPAT_FLAGS: dict[str, str] = {
    "dead_backward": "LightSNN's backward edges run but never reach the next timestep (methods.md §7.1)",
    "carry_state": "neuron state is not reset between scorings; it carries over (methods.md §7.3, 7.12)",
    "count_normalize": "K is divided by the number of LIF calls, as both codes do (methods.md §1.5.1)",
    "fresh_batches": "every repeat of every scoring draws a new random batch (methods.md §7.5)",
    "trained_logits": "architecture logits sit in the optimiser and weight decay revives pruned ops "
                      "(methods.md §7.2; used by training)",
    "arch_on_train_batch": "LitE-SNN: the architecture step uses the weights' training batch (methods.md §7.15)",
    "released_decode": "LitE-SNN: decode 3 nodes, rank edges by the conv op alone, T = 5 (methods.md §5.4, 7.17)",
    "conv_skip": "LitE-SNN: skip_connect is a 3x3 conv on every edge of the retrained network (methods.md §7.18)",
    "node_sum": "LitE-SNN: a searched node's LIF sums its inputs (saturates; the default averages them)",
}


@dataclass(frozen=True)
class MethodOptions(Options):
    """Options every method takes; each method's subclass names its config section ``search.<method>``."""

    section: ClassVar[str] = "search"
    reference_compat: bool | str | list[str] = opt(False, "true, false or a list of released-code behaviours to "
                                                   "reproduce: " + ", ".join(COMPAT_FLAGS))

    #: compat flags this method understands; ``reference_compat: true`` turns all of them on
    compat_flags: ClassVar[tuple[str, ...]] = ()
    #: the architecture family the method finds (what trains and evaluates its result)
    family: ClassVar[str] = Genotype.family

    def check(self) -> None:
        self.compat()  # raises on unknown flags

    def for_dataset(self, dataset: str) -> "MethodOptions":
        """The options a search on ``dataset`` runs with (a method with per-dataset presets fills them in)."""
        return self

    def planned_work(self, train_samples: int) -> tuple[str, int]:
        """What a search with these options does, for ``plan``: the bench suite's workload that prices it
        (``lightsnn_search``, ``snasnet_search``, ``litesnn_step``) and how many units (scorings, steps); a
        method that scores nothing says ``("none", 0)``."""
        return "none", 0

    def search_network(self, preset: NetConfig):
        """The network this method searches: the dataset's preset (with the config's overrides) as it is, or
        the method's own network sized from it."""
        return preset

    def network_to_train(self, searched, genotype):
        """The network a bare genotype of this method's family trains on, from :meth:`search_network`'s."""
        return searched

    def compat(self) -> set[str]:
        value = self.reference_compat
        if value is True:
            return set(self.compat_flags)
        if value in (False, None):
            return set()
        flags = [value] if isinstance(value, str) else list(value)
        unknown = [f for f in flags if f not in self.compat_flags]
        if unknown:
            raise ValueError(f"reference_compat flag(s) {unknown} do not apply here; "
                             f"allowed: {list(self.compat_flags) or 'none'}")
        return set(flags)


@dataclass(frozen=True)
class BaseOptions(MethodOptions):
    """Options of the methods that search the SNASNet cell."""

    space: str | list[str] = opt("snasnet-ops", "op space: a named space (" + ", ".join(SPACES) + ") or a list of ops")
    cell_type: str = opt("backward", "cell type: backward (with next-timestep edges) or forward", CELL_TYPES)
    pooling: str = opt("avg", "resdown pooling of the macro network", POOLINGS)

    def search_network(self, preset: NetConfig) -> NetConfig:
        return replace(preset, pooling=self.pooling)

    def search_space(self) -> SearchSpace:
        """The space this method searches: the ``space`` ops on ``cell_type`` cells."""
        return SearchSpace(tuple(self.space), self.cell_type)

    def check(self) -> None:
        self._normalise("space", list(parse_space(self.space)))
        super().check()


#: The scores a search can rank candidates by: every proxy of the registry but the counts (PROXY_KINDS). The
#: kernel proxies (SAHD and its variants) run on the search's hooks, also stacked; the others score one
#: candidate at a time.
SEARCH_PROXIES = tuple(name for name, proxy in PROXIES.items() if proxy.kind != "count")
#: compat flags whose semantics only the kernel scoring loop implements
_KERNEL_ONLY_FLAGS = ("carry_state", "count_normalize", "fresh_batches")


@dataclass(frozen=True)
class ScoringOptions(BaseOptions):
    batch_size: int = opt(64, "search batch size (samples per SAHD kernel)", min=2)
    repeat: int = opt(2, "forward passes per scoring; the score is their mean", min=1)
    bn_mode: str = opt("train", "BatchNorm/Dropout mode while scoring", BN_MODES)
    proxy: str = opt("sahd", "training-free score the candidates are ranked by (docs/evidence.md); sahd is the "
                             "papers'", SEARCH_PROXIES)
    bf16: bool = opt(False, "score under bf16 autocast (tensor cores on a GPU); spikes near a threshold can differ "
                            "from fp32's, so ranks can too (measured in docs/bench.md); kernel proxies only")

    def check(self) -> None:
        super().check()
        kernel = PROXIES[self.proxy].kernel
        if self.bf16 and PROXIES[self.proxy].kind != "kernel":
            raise ValueError(f"{self.section}.bf16 applies to the kernel proxies only, not to proxy {self.proxy!r}")
        if PROXIES[self.proxy].kind != "kernel" and self.compat() & set(_KERNEL_ONLY_FLAGS):
            raise ValueError(f"{self.section}: reference_compat {sorted(self.compat() & set(_KERNEL_ONLY_FLAGS))} "
                             f"applies to the kernel proxies only, not to proxy {self.proxy!r}")
        if "count_normalize" in self.compat() and kernel[1] != "none":
            raise ValueError(f"{self.section}: reference_compat count_normalize divides the plain kernel sum; proxy "
                             f"{self.proxy!r} normalises its own way (choose sahd or hamming, or drop the flag)")

    def kernel(self) -> tuple[bool, str] | None:
        """(sparsity_aware, normalize) of a kernel proxy (``count_normalize`` makes the sum a mean over LIF
        calls); None for the other proxies."""
        if PROXIES[self.proxy].kind != "kernel":
            return None
        aware, normalize = PROXIES[self.proxy].kernel
        return aware, "count" if "count_normalize" in self.compat() else normalize
