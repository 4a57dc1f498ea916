#!/usr/bin/env bash
# Everything a GPU decides in one bounded run (each step has its own time limit; about 5 minutes on an H200 by
# the H200 figures of 2026-12-04 in docs/bench.md, not yet run there):
#   1. the paper bench suite (LightSNN and SNASNet searches, SNASNet in bf16, SpikeNAS-Bench scoring, training in
#      three variants, LitE-SNN steps)                                   -> OUT/bench.json, OUT/bench.log
#   2. the plan of config/paper.yaml from that bench, against the SLURM profile's runtimes -> OUT/plan.txt, .csv
#   3. bf16 against fp32 SNASNet scores: 200 candidates at C=256, batch 256 -> OUT/rank-agreement.json
#   4. bf16 + channels-last against fp32 training, same seeds, CIFAR-10 subset at C=64 -> OUT/bf16-training.json
# Usage, from the project's root: scripts/gpu-check.sh OUT [DEVICE]   (make bench-gpu runs it in the venv)
# Steps 3 and 4 read SUBSETS/cifar10_subset.npz (default data/cifar-subsets; see README: Data). The sizes can be
# shrunk to try the same commands on a CPU first (tests/test_bench.py does):
#   SUITE=smoke CANDIDATES=6 SCORE_C=4 SCORE_BATCH=8 TRAIN_C=4 SEEDS=2 EPOCHS=1 MAX_BATCHES=2 scripts/gpu-check.sh OUT cpu
set -uo pipefail
out=${1:?usage: scripts/gpu-check.sh OUT [DEVICE]}; device=${2:-cuda}
py=${PYTHON:-python3}; subsets=${SUBSETS:-data/cifar-subsets}
mkdir -p "$out"
step() {  # step NAME SECONDS COMMAND...: runs it under a limit, logs to OUT/NAME.log, goes on if it fails
  local name=$1 limit=$2; shift 2
  echo "== $name (at most ${limit} s)"
  local start=$SECONDS
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  tail -n 20 "$out/$name.log"
  echo "== $name: exit $rc after $((SECONDS - start)) s"
}
step bench 240 "$py" -m lightsnn bench --suite "${SUITE:-paper}" --device "$device" --json "$out/bench.json"
step plan 60 "$py" -m lightsnn plan --bench "$out/bench.json" --config config/config.yaml \
  --config config/paper.yaml --profile workflow/profiles/slurm --out "$out/plan.csv"
cp "$out/plan.log" "$out/plan.txt" 2>/dev/null
step rank-agreement 150 "$py" docs/evidence/bf16-scoring/rank_agreement.py "${CANDIDATES:-200}" "${SCORE_C:-256}" \
  "$subsets" "$device" "${SCORE_BATCH:-256}" "$out/rank-agreement.json"
step bf16-training 150 "$py" docs/evidence/bf16-training/compare.py --device "$device" --datasets cifar10-subset \
  --subsets "$subsets" --channels "${TRAIN_C:-64}" --seeds "${SEEDS:-3}" ${EPOCHS:+--epochs "$EPOCHS"} \
  ${MAX_BATCHES:+--max-batches "$MAX_BATCHES"} --channels-last --out "$out/bf16-training.json"
ls "$out"/*.json
