#!/usr/bin/env bash
# Trains models/sympow-tiny on the GPU machine (torch at /opt/torch/.venv) inside one device call:
# a 30-step probe measures tokens/s, then the run takes as many steps as fit in BUDGET_S
# (at most MAX_STEPS). Expects build/corpus/{train.bin,heldout.bin,tokenizer.json} (carried).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PY:-/opt/torch/.venv/bin/python}
export PYTHONUNBUFFERED=1
BUDGET_S=${BUDGET_S:-400}
MAX_STEPS=${MAX_STEPS:-1500}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
"$PY" train.py --data ../../build/corpus --out /tmp/probe --steps 30 --warmup 5 --eval_every 1000 \
  --eval_windows 8 | tee "$OUT/probe.log"
rate=$(grep -o '[0-9,]* tokens/s' "$OUT/probe.log" | tail -1 | tr -d ', tokens/')
steps=$(( rate * BUDGET_S / 32768 ))
steps=$(( steps > MAX_STEPS ? MAX_STEPS : steps ))
echo "probe: $rate tokens/s -> $steps steps"
"$PY" train.py --data ../../build/corpus --out /tmp/run --steps "$steps" 2>&1 | tee "$OUT/train.log"
cp /tmp/run/model.safetensors /tmp/run/config.json /tmp/run/train_log.json "$OUT/"
