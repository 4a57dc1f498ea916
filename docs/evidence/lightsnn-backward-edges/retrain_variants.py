# Run from the repository root: .venv/bin/python docs/evidence/lightsnn-backward-edges/retrain_variants.py digits
"""Why does LightSNN's pick train worst in the default run? Variants of the training of each pick on digits."""
import copy
import json
import sys
import time

import torch
from lightsnn.pipeline.config import load_config
from lightsnn.pipeline.jobs import run_search, run_train

torch.set_num_threads(1)
config = load_config("config/config.yaml")
config["device"] = "cpu"
dataset = sys.argv[1] if len(sys.argv) > 1 else "digits"
rows = []
def train(label, search, seed, epochs=4, out="/tmp/lightsnn-probe/t"):
    cfg = copy.deepcopy(config)
    cfg["train"] = {**cfg["train"], "epochs": epochs}
    t = time.perf_counter()
    r = run_train(dataset, seed, cfg, f"{out}-{label}-{seed}", search=search, progress=False, log=lambda _: None, fresh=True)
    rows.append({"variant": label, "seed": seed, "genotype": r["genotype"]["str"], "acc": round(100 * r["final_test_acc"], 2),
                 "curve": [round(100 * h["test_acc"], 1) for h in r["history"]], "params": r["parameters"],
                 "s": round(time.perf_counter() - t, 1)})
    print(rows[-1], flush=True)

for seed in (0, 1):
    light = run_search("lightsnn", dataset, seed, config)
    rand = run_search("random", dataset, seed, config)
    train("lightsnn", light, seed)
    train("random", rand, seed)
    avg = copy.deepcopy(light)
    avg["network"]["pooling"] = "avg"
    train("lightsnn-avgpool", avg, seed)
    mx = copy.deepcopy(rand)
    mx["network"]["pooling"] = "max"
    train("random-maxpool", mx, seed)
    train("lightsnn-16ep", light, seed, epochs=16)
    train("random-16ep", rand, seed, epochs=16)
json.dump(rows, open(f"docs/evidence/lightsnn-backward-edges/variants-{dataset}.json", "w"), indent=1)
