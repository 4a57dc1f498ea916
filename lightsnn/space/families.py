"""Architecture families in a registry keyed by name: everything that differs between the kinds of architecture a
search can find, written once.

A family says how its genotype is read (string or JSON), how its network config is read back from a result
file, how the network to train is built, how it is described in the tables, and which method's options size a
bare genotype given on the command line. A search method names the family it finds (``MethodOptions.family``);
training, evaluation and the report look the family up here and never compare family names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from lightsnn.space.genotype import Genotype
from lightsnn.space.litesnn_genotype import LiteGenotype
from lightsnn.space.litesnn_net import LiteNet, LiteNetConfig
from lightsnn.space.network import NetConfig, SNASNetwork, SuperNet
from lightsnn.space.spaces import SearchSpace


@dataclass(frozen=True)
class Family:
    name: str
    description: str
    genotype: type  # from_str, from_json, to_str, to_json, short_hash, canonical, require_connected
    read_network: Callable[[dict], object]  # a result file's "network" dict -> the family's network config
    build: Callable[[object, object, dict | None], tuple[torch.nn.Module, torch.nn.Parameter | None]]
    describe: Callable[[dict], str]  # a search result -> its search space in words, as the papers' tables say
    table_fields: Callable[[dict], dict]  # a search result -> row fields that differ from the defaults
    prefix: str | None = None  # what a genotype string of this family starts with (None: the default family)
    sized_by: str | None = None  # the method whose options size the network of a bare genotype (None: the preset)

    def parse(self, genotype: str | dict):
        """A genotype of this family from its string or JSON form."""
        return self.genotype.from_str(genotype) if isinstance(genotype, str) else self.genotype.from_json(genotype)

    def load(self, genotype: str | dict, network: dict):
        """An architecture and its network config, as a result file or checkpoint stores them."""
        return self.parse(genotype), self.read_network(network)


def _snasnet_network(network: dict) -> NetConfig:
    return NetConfig.from_dict(network)


def _snasnet_build(net_config: NetConfig, genotype: Genotype, search: dict | None):
    """The discrete network; the search's compat flags carry over: ``dead_backward`` trains LightSNN's dead-edge
    cell, ``trained_logits`` trains its supernet with the logits in the optimiser (methods.md §3.3)."""
    flags = set((search or {}).get("compat_flags", []))
    dead = "dead_backward" in flags
    if "trained_logits" not in flags:
        return SNASNetwork.from_genotype(net_config, genotype, dead_backward=dead), None
    options = search["options"]
    model = SuperNet(net_config, SearchSpace.of(options["space"], options["cell_type"]),
                     shared=not options["separate_cell_alphas"], threshold=options["threshold"], dead_backward=dead)
    logits = torch.nn.Parameter(torch.tensor(search["details"]["final_logits"], dtype=torch.float32))
    model.set_logits(logits.detach())
    return model, logits


def _snasnet_describe(search: dict) -> str:
    cells = len(search["genotype"]["json"]["cells"])
    return f"2 cells {len(search['options']['space'])} ops" + (" (separate)" if cells == 2 else "")


def _lite_build(net_config: LiteNetConfig, genotype: LiteGenotype, search: dict | None):
    flags = set((search or {}).get("compat_flags", []))
    return LiteNet(net_config, genotype, conv_skip="conv_skip" in flags), None


def _lite_describe(search: dict) -> str:
    network = search["network"]
    return (f"{len(network['level_path'])} cells {network['steps']} nodes 2 ops, "
            f"{len(search['options']['bit_widths'])} bit widths")


def _lite_table_fields(search: dict) -> dict:
    """T is searched per seed: the table groups the seeds by the range searched and keeps each seed's T apart."""
    return {"searched_T": search["network"]["timesteps"],
            "timesteps": f"searched 1-{search['details']['search_network']['timesteps']}"}


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family(Genotype.family, "the SNASNet cell (forward and backward edges) in SNASNet's macro network",
               Genotype, _snasnet_network, _snasnet_build, _snasnet_describe, lambda search: {}),
        Family(LiteGenotype.family, "LitE-SNN's cells on a level path, with per-cell weight bits, pruning and T",
               LiteGenotype, LiteNetConfig.from_dict, _lite_build, _lite_describe, _lite_table_fields,
               prefix=LiteGenotype.PREFIX, sized_by="litesnn"),
    ]
}

#: The family of result files written before families were recorded.
DEFAULT_FAMILY = Genotype.family


def get_family(name: str | None) -> Family:
    name = DEFAULT_FAMILY if name is None else name
    if name not in FAMILIES:
        raise ValueError(f"unknown architecture family {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def family_of_text(genotype: str) -> Family:
    """The family a genotype string given on the command line belongs to: the one whose prefix it starts with,
    else the default family."""
    text = genotype.strip()
    return next((f for f in FAMILIES.values() if f.prefix and text.startswith(f.prefix)), FAMILIES[DEFAULT_FAMILY])
