# Run from the repository root: .venv/bin/python docs/evidence/bf16-scoring/rank_agreement.py [N] [C] [SUBSETS]
"""Do bf16 SNASNet scores rank candidates as fp32 scores do? The same search twice (same seed: the same
candidates, weights and batches), once under bf16 autocast; Kendall tau between the two candidate score lists."""
import json
import sys
import time

import torch
from scipy import stats

from lightsnn.pipeline.jobs import run_search

n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
channels = int(sys.argv[2]) if len(sys.argv) > 2 else 32
subsets = sys.argv[3] if len(sys.argv) > 3 else "data/cifar-subsets"  # the folder of cifar10_subset.npz
torch.set_num_threads(2)
config = {"device": "cpu", "data": {"subsets": subsets},
          "networks": {"cifar10-subset": {"channels": channels}}}
runs = {}
for bf16 in (False, True):
    start = time.perf_counter()
    result = run_search("snasnet", "cifar10-subset", 0, config,
                        {"num_search": n, "batch_size": 64, "repeat": 2, "bf16": bf16}, progress=False)
    runs[bf16] = {"scores": [c["score"] for c in result["candidates"]],
                  "genotypes": [c["genotype"] for c in result["candidates"]],
                  "pick": result["genotype"]["str"], "seconds": time.perf_counter() - start}
assert runs[False]["genotypes"] == runs[True]["genotypes"]
fp32, bf16 = runs[False]["scores"], runs[True]["scores"]
tau = stats.kendalltau(fp32, bf16)
top = sorted(range(n), key=lambda i: -fp32[i])[:10]
out = {"candidates": n, "channels": channels, "tau": tau.statistic, "p": tau.pvalue,
       "same_pick": runs[False]["pick"] == runs[True]["pick"],
       "bf16_rank_of_fp32_pick": 1 + sorted(range(n), key=lambda i: -bf16[i]).index(top[0]),
       "seconds_fp32": runs[False]["seconds"], "seconds_bf16": runs[True]["seconds"],
       "max_abs_diff": max(abs(a - b) for a, b in zip(fp32, bf16)), "fp32": fp32, "bf16": bf16}
json.dump(out, open(f"docs/evidence/bf16-scoring/rank-C{channels}-n{n}.json", "w"), indent=1)
print({k: v for k, v in out.items() if k not in ("fp32", "bf16")})
