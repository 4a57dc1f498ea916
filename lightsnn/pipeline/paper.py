"""Values the LightSNN paper reports (methods.md §3.5, Tables 1 and 2; NVIDIA A40), shown beside ours."""
from __future__ import annotations

# (dataset, method) -> structure, T, accuracy %, search time s, SAR
TABLE2 = {
    ("cifar10", "snasnet"): ("2 cells 5 ops", 5, 91.83, 2 * 3600 + 49 * 60, 0.12),
    ("cifar10", "spikenas"): ("2 cells 2 ops", 5, 93.18, 29, 0.08),
    ("cifar10", "lightsnn"): ("2 cells 3 ops", 5, 93.00, 2 * 60 + 44, 0.09),
    ("cifar100", "snasnet"): ("2 cells 5 ops", 5, 72.36, 2 * 3600 + 2 * 60, 0.12),
    ("cifar100", "spikenas"): ("2 cells 3 ops", 5, 45.77, 3 * 60 + 3, 0.12),
    ("cifar100", "lightsnn"): ("2 cells 3 ops", 5, 70.44, 5 * 60 + 58, 0.13),
    ("dvs128_gesture", "snasnet"): ("2 cells 5 ops", 16, 89.93, 11 * 3600 + 29 * 60, 0.13),
    ("dvs128_gesture", "spikenas"): ("2 cells 3 ops", 16, 87.84, 9 * 60 + 55, 0.05),
    ("dvs128_gesture", "lightsnn"): ("2 cells 3 ops", 16, 94.44, 6 * 60 + 54, 0.07),
}
# CIFAR10, SNASNet 5-op space: search algorithm -> accuracy %, search time s
TABLE1 = {"random": (91.83, 2 * 3600 + 49 * 60), "pruning": (92.59, 2 * 3600 + 16 * 60)}

#: The papers' training budget (whole epochs of the whole training set): their numbers compare with ours only there.
PAPER_EPOCHS = 300
