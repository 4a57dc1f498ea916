# Run from the repository root: .venv/bin/python docs/evidence/bf16-training/compare.py [SUBSETS]
"""Does bf16 autocast train to the same accuracy as fp32? The same trainings (same genotype, seed, weights at
start, batch order) once in fp32 and once under bf16 autocast, for several seeds; the paired difference of their
test accuracies against the seed-to-seed spread. Runs on whatever device the config resolves (here the CPU:
avx512-bf16 runs the same bf16 format, rounding and fp32 accumulation as a GPU's tensor cores; the LIF membrane
is bf16 on both)."""
import json
import statistics
import sys
import tempfile
import time

import torch

from lightsnn.core.stats import paired_comparison
from lightsnn.pipeline.jobs import run_train

subsets = sys.argv[1] if len(sys.argv) > 1 else "data/cifar-subsets"  # the folder of cifar10_subset.npz
torch.set_num_threads(2)
GENOTYPE = "0302 0030 3003 0000"  # forward edges only: trains quickly at small width
STUDIES = {  # dataset -> (network, train section, seeds)
    "digits": ({"channels": 16, "classifier_width": 64, "timesteps": 4, "linear_init_std": 0.7},
               {"recipe": "quick", "epochs": 4, "batch_size": 64}, range(8)),
    "cifar10-subset": ({"channels": 8, "classifier_width": 128, "timesteps": 5, "linear_init_std": 0.3},
                       {"recipe": "quick", "epochs": 6, "batch_size": 64}, range(3)),
}
out: dict = {"genotype": GENOTYPE, "device": "cpu", "torch": torch.__version__, "studies": {}}
for dataset, (network, train, seeds) in STUDIES.items():
    rows = []
    for seed in seeds:
        row = {"seed": seed}
        for bf16 in (False, True):
            config = {"device": "cpu", "data": {"subsets": subsets}, "networks": {dataset: network},
                      "train": {**train, "bf16": bf16}}
            with tempfile.TemporaryDirectory() as folder:
                start = time.perf_counter()
                result = run_train(dataset, seed, config, folder, genotype=GENOTYPE, progress=False,
                                   log=lambda _: None)
            key = "bf16" if bf16 else "fp32"
            row[key] = result["final_test_acc"]
            row[f"{key}_seconds"] = time.perf_counter() - start
        rows.append(row)
        print(dataset, row, flush=True)
    fp32, bf16 = [r["fp32"] for r in rows], [r["bf16"] for r in rows]
    out["studies"][dataset] = {"network": network, "train": train, "runs": rows,
                               "fp32_seed_std": statistics.stdev(fp32), "bf16_seed_std": statistics.stdev(bf16),
                               "bf16_minus_fp32": paired_comparison(bf16, fp32)}
    print(dataset, out["studies"][dataset]["bf16_minus_fp32"], flush=True)
with open("docs/evidence/bf16-training/results.json", "w") as f:
    json.dump(out, f, indent=1)
