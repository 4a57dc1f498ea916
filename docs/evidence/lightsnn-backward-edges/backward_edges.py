# Run from the repository root: .venv/bin/python docs/evidence/lightsnn-backward-edges/backward_edges.py digits
"""Backward edges: the LightSNN pick without them, with them dead (the released code), and random picks by their
number of live backward edges."""
import copy
import json
import sys
import time

import torch
from lightsnn.pipeline.config import load_config
from lightsnn.pipeline.jobs import run_search, run_train
from lightsnn.space.genotype import Genotype

torch.set_num_threads(1)
config = load_config("config/config.yaml")
config["device"] = "cpu"
dataset = sys.argv[1] if len(sys.argv) > 1 else "digits"
rows = []

def backward_edges(text):
    cells = text.split()
    return sum(1 for r, row in enumerate(cells) for c, op in enumerate(row) if c < r and op != "0")

def forward_only(text):
    return " ".join("".join(op if c > r else "0" for c, op in enumerate(row)) for r, row in enumerate(text.split()))

def train(label, search, seed, genotype=None, epochs=4):
    t = time.perf_counter()
    cfg = copy.deepcopy(config)
    if genotype is not None:
        search = None
        cfg["networks"] = copy.deepcopy(cfg["networks"])
    r = run_train(dataset, seed, cfg, f"/tmp/lightsnn-probe/u-{label}-{seed}", search=search, genotype=genotype, progress=False,
                  log=lambda _: None, fresh=True, allow_disconnected=True)
    g = r["genotype"]["str"]
    rows.append({"variant": label, "seed": seed, "genotype": g, "backward": backward_edges(g),
                 "acc": round(100 * r["final_test_acc"], 2), "s": round(time.perf_counter() - t, 1)})
    print(rows[-1], flush=True)

for seed in (0, 1):
    light = run_search("lightsnn", dataset, seed, config)
    g = light["genotype"]["str"]
    dead = copy.deepcopy(light)
    dead["compat_flags"] = sorted(set(dead["compat_flags"]) | {"dead_backward"})
    train("lightsnn-dead-backward", dead, seed)
    fwd = copy.deepcopy(light)
    fg = Genotype.from_str(forward_only(g))
    fwd["genotype"] = {**fwd["genotype"], "str": fg.to_str(), "json": fg.to_json()}
    train("lightsnn-forward-only", fwd, seed)
for seed in range(2, 14):
    rand = run_search("random", dataset, seed, config)
    train("random", rand, 0)
json.dump(rows, open(f"docs/evidence/lightsnn-backward-edges/backward-{dataset}.json", "w"), indent=1)
