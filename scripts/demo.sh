#!/usr/bin/env bash
# The README's run command: installs dependencies, builds, and streams a demo completion from the bundled model
# (models/sympow-tiny) on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
build/clients/cli/sympow-cli generate --model models/sympow-tiny --prompt "And God said" \
  --max_new_tokens 80 --temperature 0.8 --top_p 0.95 --repetition_penalty 1.1 --seed 7
