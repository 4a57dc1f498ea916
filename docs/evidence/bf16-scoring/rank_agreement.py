# Run from the repository root: .venv/bin/python docs/evidence/bf16-scoring/rank_agreement.py [N] [C] [SUBSETS]
#   [DEVICE] [BATCH] [OUT]
"""Do bf16 SNASNet scores rank candidates as fp32 scores do? The same search twice (same seed: the same
candidates, weights and batches), once under bf16 autocast; Kendall tau between the two candidate score lists."""
import json
import sys
import time
from pathlib import Path

import torch
from scipy import stats

from lightsnn.pipeline.jobs import run_search

n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
channels = int(sys.argv[2]) if len(sys.argv) > 2 else 32
subsets = sys.argv[3] if len(sys.argv) > 3 else "data/cifar-subsets"  # the folder of cifar10_subset.npz
device = sys.argv[4] if len(sys.argv) > 4 else "cpu"
batch = int(sys.argv[5]) if len(sys.argv) > 5 else 64
target = Path(sys.argv[6] if len(sys.argv) > 6 else f"docs/evidence/bf16-scoring/rank-C{channels}-n{n}.json")
if device == "cpu":
    torch.set_num_threads(2)
config = {"device": device, "data": {"subsets": subsets},
          "networks": {"cifar10-subset": {"channels": channels}}}
run_search("snasnet", "cifar10-subset", 0, config, {"num_search": 2, "batch_size": batch, "repeat": 2},
           progress=False)  # untimed warm-up: the data's first load, kernels, the allocator
runs = {}
for bf16 in (False, True):
    start = time.perf_counter()
    result = run_search("snasnet", "cifar10-subset", 0, config,
                        {"num_search": n, "batch_size": batch, "repeat": 2, "bf16": bf16}, progress=False)
    runs[bf16] = {"scores": [c["score"] for c in result["candidates"]],
                  "genotypes": [c["genotype"] for c in result["candidates"]],
                  "pick": result["genotype"]["str"], "seconds": time.perf_counter() - start}
assert runs[False]["genotypes"] == runs[True]["genotypes"]
fp32, bf16 = runs[False]["scores"], runs[True]["scores"]
tau = stats.kendalltau(fp32, bf16)
top = sorted(range(n), key=lambda i: -fp32[i])[:10]
out = {"candidates": n, "channels": channels, "batch_size": batch, "device": device, "torch": torch.__version__,
       "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
       "tau": float(tau.statistic), "p": float(tau.pvalue),
       "same_pick": runs[False]["pick"] == runs[True]["pick"],
       "bf16_rank_of_fp32_pick": 1 + sorted(range(n), key=lambda i: -bf16[i]).index(top[0]),
       "seconds_fp32": runs[False]["seconds"], "seconds_bf16": runs[True]["seconds"],
       "max_abs_diff": float(max(abs(a - b) for a, b in zip(fp32, bf16))), "fp32": fp32, "bf16": bf16}
target.parent.mkdir(parents=True, exist_ok=True)
target.write_text(json.dumps(out, indent=1))
print({k: v for k, v in out.items() if k not in ("fp32", "bf16")})
