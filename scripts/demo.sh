#!/usr/bin/env bash
# The README's run command: installs dependencies, builds, and streams a demo generation on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
model=build/models/random-tiny
[ -f "$model/model.safetensors" ] || build/clients/cli/sympow-cli random-model --out "$model" --preset tiny
build/clients/cli/sympow-cli generate --model "$model" --prompt_ids 1,2,3,4,5 --max_new_tokens 32 \
  --temperature 0.8 --top_p 0.95 --seed 7
