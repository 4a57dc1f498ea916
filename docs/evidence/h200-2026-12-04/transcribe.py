# Run from the repository root: .venv/bin/python docs/evidence/h200-2026-12-04/transcribe.py
"""A bench JSON for 'plan' from the first H200 figures (2026-12-04, one H200, torch 2.11 + CUDA 13, the code of that
day, paper sizes; docs/benchmarks.md, section GPU), until 'scripts/gpu-check.sh' measures a GPU itself. Each rate is one quoted
figure; FLOP rates are those figures times the FLOPs this repository counts for the same network, so 'plan'
gives back exactly the quoted times at the quoted sizes (checked below)."""
import json
from pathlib import Path

from lightsnn.studies.bench import SUITES, BenchOptions, _net_config
from lightsnn.studies.plan import TYPICAL, forward_flops

options = BenchOptions(**SUITES["paper"]["bench"])
fwd = forward_flops(_net_config(options, "max"), TYPICAL)  # the LightSNN pick the issue trained: 10 convs per cell
quoted = {
    "lightsnn_search": (60, 16.7),  # scorings, seconds: C=256, batch 32, repeat 2, T=5, 3 ops
    "snasnet_search": (100, 14.8),  # candidates, seconds: batch 256, repeat 2
    "training": 340,  # samples/s with the real loader (331-342), batch 64, fp32
    "litesnn_step": 1.45,  # seconds per bi-level step (12 steps in 17.4 s), paper preset, batch 120
}
scorings, seconds = quoted["snasnet_search"]
bench = {
    "suite": "paper, transcribed from the H200 figures of 2026-12-04 (docs/benchmarks.md)", "device": "cuda",
    "device_name": "NVIDIA H200", "torch": "2.11 + CUDA 13",
    "options": {**options.__dict__, "genotype": TYPICAL},
    "workloads": {
        "lightsnn_search": {"scorings": 60, "seconds": 16.7, "seconds_per_scoring": 16.7 / 60},
        # plan prices a candidate at a typical genotype's FLOPs; the same FLOPs here give back 0.148 s each
        "snasnet_search": {"scorings": scorings, "seconds": seconds, "seconds_per_scoring": seconds / scorings,
                           "batch_size": 256, "flops_per_second": scorings * 2 * 256 * fwd / seconds},
        "training": {"samples_per_second": quoted["training"], "flops_per_second": 3 * fwd * quoted["training"],
                     "options": {}},
        "litesnn_step": {"steps": 12, "seconds": 17.4, "seconds_per_step": quoted["litesnn_step"],
                         "batch_size": 120, "preset": "paper"},
    },
}
target = Path("docs/evidence/h200-2026-12-04/bench.json")
target.write_text(json.dumps(bench, indent=1))
print(f"-> {target}; forward {fwd / 1e9:.1f} GFLOP per sample at C=256, T=5")
