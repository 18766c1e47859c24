#!/usr/bin/env bash
# The README's run command: installs dependencies, builds, starts sympow-server on the bundled
# model (models/sympow-tiny, CPU backend unless built with CUDA), streams a demo completion through
# sympow-cli, and keeps serving until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
listen=${SYMPOW_LISTEN:-127.0.0.1:50051}
metrics=${SYMPOW_METRICS_LISTEN:-127.0.0.1:9400}
build/server/sympow-server --model models/sympow-tiny --listen "$listen" --metrics_listen "$metrics" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server' INT TERM EXIT
for _ in $(seq 100); do
  build/clients/cli/sympow-cli tokenize --server "$listen" ping >/dev/null 2>&1 && break
  sleep 0.1
done
build/clients/cli/sympow-cli generate --server "$listen" --prompt "And God said" --max_new_tokens 80 \
  --temperature 0.8 --top_p 0.95 --repetition_penalty 1.1 --seed 7
cat <<EOT

sympow-server is serving on $listen (metrics: http://$metrics/metrics). Try:
  build/clients/cli/sympow-cli chat --server $listen
  build/clients/cli/sympow-cli sessions list --server $listen
Ctrl-C stops the server.
EOT
wait $server
