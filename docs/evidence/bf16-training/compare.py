# Run from the repository root: .venv/bin/python docs/evidence/bf16-training/compare.py [--device cuda] [...]
"""Does bf16 autocast train to the same accuracy as fp32? The same trainings (same genotype, seed, weights at
start, batch order) once in fp32 and once under bf16 autocast, for several seeds; the paired difference of their
test accuracies against the seed-to-seed spread. On a CPU with avx512-bf16 the format, its rounding and the fp32
accumulation of the convolutions are those of a GPU's tensor cores; the LIF membrane is bf16 on both."""
import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from lightsnn.core.stats import paired_comparison
from lightsnn.pipeline.jobs import run_train

GENOTYPE = "0302 0030 3003 0000"  # forward edges only: trains quickly at small width
STUDIES = {  # dataset -> (network, train section, seeds)
    "digits": ({"channels": 16, "classifier_width": 64, "timesteps": 4, "linear_init_std": 0.7},
               {"recipe": "quick", "epochs": 4, "batch_size": 64}, 8),
    "cifar10-subset": ({"channels": 8, "classifier_width": 128, "timesteps": 5, "linear_init_std": 0.3},
                       {"recipe": "quick", "epochs": 6, "batch_size": 64}, 3),
}

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--subsets", default="data/cifar-subsets", help="the folder of cifar10_subset.npz")
parser.add_argument("--device", default="cpu")
parser.add_argument("--datasets", nargs="+", default=list(STUDIES), choices=list(STUDIES))
parser.add_argument("--channels", type=int, default=None, help="C of the cifar10-subset network (default 8)")
parser.add_argument("--seeds", type=int, default=None, help="seeds per dataset (default 8 digits, 3 cifar)")
parser.add_argument("--epochs", type=int, default=None, help="epochs of each training (default 4 digits, 6 cifar)")
parser.add_argument("--max-batches", type=int, default=None, help="cap batches per epoch (tries at tiny sizes)")
parser.add_argument("--channels-last", action="store_true", help="the bf16 runs also channels-last (as on a GPU)")
parser.add_argument("--out", default="docs/evidence/bf16-training/results.json")
args = parser.parse_args()
if args.device == "cpu":
    torch.set_num_threads(2)
out: dict = {"genotype": GENOTYPE, "device": args.device, "device_name": torch.cuda.get_device_name(args.device)
             if args.device.startswith("cuda") else "cpu", "torch": torch.__version__, "channels_last": args.channels_last, "studies": {}}
for dataset in args.datasets:
    network, train, seeds = STUDIES[dataset]
    if args.channels and dataset == "cifar10-subset":
        network = {**network, "channels": args.channels}
    train = {**train, **({"epochs": args.epochs} if args.epochs else {}),
             **({"max_batches": args.max_batches} if args.max_batches else {})}
    rows = []
    for seed in range(args.seeds or seeds):
        row = {"seed": seed}
        for bf16 in (False, True):
            config = {"device": args.device, "data": {"subsets": args.subsets}, "networks": {dataset: network},
                      "train": {**train, "bf16": bf16, "channels_last": bf16 and args.channels_last}}
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
Path(args.out).parent.mkdir(parents=True, exist_ok=True)
Path(args.out).write_text(json.dumps(out, indent=1))
