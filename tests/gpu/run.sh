#!/usr/bin/env bash
# GPU correctness tests, kernel benchmarks and a CUDA serving smoke test, in three steps:
#   tests/gpu/run.sh bundle   here: build with CUDA, pack binaries + oracle data into
#                             build/gpu-bundle.tar.xz (carry it to the GPU machine)
#   tests/gpu/run.sh device [PARTS]
#                             on the GPU machine, from the repository root: PARTS, comma-separated,
#                             of tests (GPU tests and the serving smoke test), kernels, engine,
#                             peers, manifest (benchmarks), or all (default); decode (the kernels
#                             bench's decode part alone, ~2 minutes, not in all); logs and JSON in
#                             $OUT/gpu-run.tgz. With $RETENTION_SOURCE (a git
#                             directory of github.com/m-a-n-i-f-e-s-t/retention) at bundle time,
#                             Manifest's Triton kernels travel in the bundle and are benchmarked.
#   tests/gpu/run.sh serving  on the GPU machine: sympow-loadgen against the server on a random
#                             124M-class model at 1-1024 users, $OUT/serving.json
#   tests/gpu/run.sh long-session   on the GPU machine: one session of the bundled model fed
#                             ~1.07M tokens through `sympow-cli append`, then a generation; server
#                             RSS and GPU memory after each piece in $OUT/long_session.csv
#   tests/gpu/run.sh profile  on the GPU machine: Nsight Compute on the kernels that bound decode
#                             and prefill (one launch each: the bf16 stream kernel at 64 sessions,
#                             FinishHeads(Warps), a fold's three kernels at 64 sessions, the
#                             prefill's three kernels at 64k tokens): speed of
#                             light, occupancy, scheduler and warp-state statistics, memory
#                             workload and source counters (their summary); $OUT/profile_*.txt
#   tests/gpu/run.sh variants REF...   here, from a clean work tree after `bundle`: for HEAD and
#                             each REF (an experiment branch), the kernels bench, the GPU tests and
#                             the CUDA module built from HEAD with REF's own commits applied, as
#                             NAME/ in build/variants.tar.xz (carry it with the bundle)
#   tests/gpu/run.sh variant-tests   on the GPU machine: the GPU tests of each variant but HEAD
#                             (~4 minutes each; $GTEST_FILTER narrows them, $VARIANTS names the
#                             variants, $VARIANT_TIMEOUT bounds each, 300 s by default), logs in
#                             $OUT/variant-tests_TIME.tgz, packed again after each variant so that
#                             a call cut short keeps those done
#   tests/gpu/run.sh ab [BENCH FLAGS]   on the GPU machine: two interleaved rounds of the kernels
#                             bench of every variant (or of $VARIANTS) with FLAGS (e.g.
#                             --prefill=false --decode_state_dtypes=bfloat16), logs and JSON in
#                             $OUT/ab_TIME.tgz (one archive a step: steps of one call do not
#                             overwrite each other, and the GPU machine hands back few files)
#   tests/gpu/run.sh report DIR [FLAGS]   here: turn DIR (gpu-run.tgz unpacked) into bench/results/;
#                             FLAGS go to bench/peers/report.py (e.g. --peers_from KERNELS_JSON
#                             for a run without the peers parts, --commit SHA)
set -euo pipefail
cd "$(dirname "$0")/../.."
step=${1:?usage: tests/gpu/run.sh bundle|device|serving|long-session|profile|variants REF...|variant-tests|ab|report DIR}

# Unpacks the bundle on the GPU machine; sets $work and $bundle and the library path.
unpack() {
  : "${OUT:?run on the GPU machine, where \$OUT is set}"
  work=$(mktemp -d)
  tar -C "$work" -xJf build/gpu-bundle.tar.xz
  bundle=$work/gpu-bundle
  export LD_LIBRARY_PATH=$bundle/lib:/usr/local/cuda/lib64
}

# Unpacks the bundle and build/variants.tar.xz (into $work/variant/NAME) on the GPU machine; sets
# $variants ($VARIANTS, or every one built) and $logs, a directory for the step's logs that
# pack_logs turns into $OUT/STEP_TIME.tgz.
unpack_variants() {
  unpack
  tar -C "$work" -xJf build/variants.tar.xz
  variants=${VARIANTS:-$(ls "$work/variant")}
  logs=$work/logs
  mkdir -p "$logs"
}
pack_logs() {
  : "${archive:=$OUT/${step}_$(date +%H%M%S).tgz}"
  tar -C "$logs" -czf "$archive" .
}

case "$step" in
bundle)
  bash scripts/build.sh
  test -x build/tests/gpu/cuda_backend_test || { echo "no CUDA build (nvcc missing?)" >&2; exit 1; }
  /usr/bin/python3 tests/reference/make_models.py build/testdata/oracle
  rm -rf build/gpu-bundle build/gpu-bundle.tar.xz
  ../shared/tools/gpu-bundle build/gpu-bundle build/tests/gpu/cuda_backend_test \
    build/bench/cuda_kernels_bench build/bench/cuda_engine_bench build/model/libsympow_cuda_backend.so \
    build/server/sympow-server build/clients/cli/sympow-cli build/clients/loadgen/sympow-loadgen
  cp -r build/testdata/oracle build/gpu-bundle/oracle
  if [[ -n "${RETENTION_SOURCE:-}" ]]; then
    mkdir -p build/gpu-bundle/retention-src
    git --git-dir="$RETENTION_SOURCE" archive HEAD retention | tar -x -C build/gpu-bundle/retention-src
  fi
  tar -C build -cJf build/gpu-bundle.tar.xz gpu-bundle
  ls -la build/gpu-bundle.tar.xz
  ;;
device)
  unpack
  export SYMPOW_SOURCE_DIR=$PWD SYMPOW_ORACLE_DIR=$bundle/oracle
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
  status=0
  parts=${2:-all}
  wants() { [[ $parts == all || ",$parts," == *",$1,"* ]]; }
  if wants tests; then
    timeout 300 "$bundle/bin/cuda_backend_test" 2>&1 | tee "$OUT/gpu_tests.log" || status=1
    # Serving on the GPU: the server with --device cuda, a streamed completion through gRPC, and
    # the local CLI scoring the held-out text on the GPU.
    "$bundle/bin/sympow-server" --device cuda --model models/sympow-tiny --listen 127.0.0.1:50151 \
      --metrics_listen 127.0.0.1:19391 > "$OUT/server.log" 2>&1 &
    server=$!
    for _ in $(seq 100); do grep -q "serving sympow" "$OUT/server.log" && break; sleep 0.2; done
    "$bundle/bin/sympow-cli" generate --server 127.0.0.1:50151 --prompt "And God said" \
      --max_new_tokens 64 --seed 7 2>&1 | tee "$OUT/cli_generate.log" || status=1
    /opt/torch/.venv/bin/python -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:19391/metrics').read().decode())" \
      > "$OUT/metrics.txt" 2>&1 || status=1
    grep -m3 "^sympow:generation_tokens_total\|^sympow:num_requests_running" "$OUT/metrics.txt" || true
    kill -TERM "$server" 2>/dev/null || true; wait "$server" || true
    "$bundle/bin/sympow-cli" perplexity --device cuda --model models/sympow-tiny \
      --file tests/fixtures/heldout.txt 2>&1 | tail -3 | tee "$OUT/perplexity_cuda.log" || status=1
  fi
  if wants kernels; then
    timeout 260 "$bundle/bin/cuda_kernels_bench" --out "$OUT/kernels_bench.json" 2>&1 | tee "$OUT/kernels_bench.log" || status=1
  fi
  if [[ ",$parts," == *",decode,"* ]]; then
    timeout 200 "$bundle/bin/cuda_kernels_bench" --prefill=false --out "$OUT/kernels_decode.json" 2>&1 | tee "$OUT/kernels_decode.log" || status=1
  fi
  if wants engine; then
    timeout "${ENGINE_TIMEOUT:-150}" "$bundle/bin/cuda_engine_bench" --out "$OUT/engine_bench.json" 2>&1 | tee "$OUT/engine_bench.log" || status=1
  fi
  if wants peers; then
    timeout 150 /opt/torch/.venv/bin/python bench/peers/peers.py "$OUT/peers.json" 2>&1 | tee "$OUT/peers.log" || status=1
  fi
  if wants manifest && [[ -d $bundle/retention-src/retention ]]; then
    timeout "${MANIFEST_TIMEOUT:-300}" /opt/torch/.venv/bin/python bench/peers/manifest.py "$bundle/retention-src" "$OUT/manifest.json" \
      2>&1 | tee "$OUT/manifest.log" || status=1
  fi
  # One archive: the GPU machine hands back only a few files per call.
  tar -C "$OUT" -czf "$work/gpu-run.tgz" . && rm -rf "${OUT:?}"/* && mv "$work/gpu-run.tgz" "$OUT/"
  exit $status
  ;;
serving)
  unpack
  "$bundle/bin/sympow-cli" random-model --preset 124m --state_dtype bfloat16 \
    --tokenizer models/sympow-tiny/tokenizer.json --out "$work/m124"
  # The copy bandwidth the fraction is taken of: COPY_TBPS, measured in the same call, or the
  # committed kernel report's.
  copy=${COPY_TBPS:-$(/opt/torch/.venv/bin/python -c "import json; print(json.load(open('bench/results/kernels.json'))['copy_TBps'])")}
  "$bundle/bin/sympow-server" --device cuda --model "$work/m124" --listen 127.0.0.1:50171 \
    --metrics_listen "" --max_sessions 1100 --state_slots 1100 --max_running_requests 1100 \
    --max_queued_requests 4096 --log_level debug > "$OUT/serving_server.log" 2>&1 &
  server=$!
  for _ in $(seq 300); do grep -q "serving sympow" "$OUT/serving_server.log" && break; sleep 0.2; done
  # LOADGEN_FLAGS narrows a run (e.g. "--levels 1,16 --turns 2") when device time is short.
  "$bundle/bin/sympow-loadgen" --server 127.0.0.1:50171 --levels 1,16,64,256,1024 \
    --copy_tbps "$copy" --commit "${COMMIT:-unknown}" --out "$OUT/serving.json" \
    ${LOADGEN_FLAGS:-} 2>&1 |
    tee "$OUT/serving.log"
  kill -TERM "$server" 2>/dev/null || true; wait "$server" || true
  ;;
profile)
  unpack
  sections="--section SpeedOfLight --section Occupancy --section LaunchStats --section SchedulerStats
    --section WarpStateStats --section MemoryWorkloadAnalysis --section SourceCounters"
  # profile REGEX LAUNCHES NAME [BENCH FLAGS...]: the first LAUNCHES launches of kernels matching
  # REGEX in one run of the kernels bench, into $OUT/profile_NAME.txt
  profile() {
    local regex=$1 launches=$2 name=$3
    shift 3
    timeout 200 /usr/local/cuda/bin/ncu --kernel-name-base demangled --kernel-name "regex:$regex" \
      --launch-count "$launches" --import-source yes $sections \
      "$bundle/bin/cuda_kernels_bench" --out "$work/unused.json" "$@" > "$OUT/profile_$name.txt" 2>&1 ||
      echo "ncu failed for $name: see profile_$name.txt" >&2
  }
  profile "StreamStatesMma<.int.64>|FinishHeads" 2 decode_bf16_64 --prefill=false \
    --decode_shapes=124m --decode_state_dtypes=bfloat16 --decode_sessions=64
  # A fold of the same 64 sessions: the buffers gathered, then the states pass without outputs.
  profile "GatherKernel|Chunk(Values|States)Kernel<.int.64" 3 fold_bf16_64 --prefill=false \
    --decode_shapes=124m --decode_state_dtypes=bfloat16 --decode_sessions=64
  profile "Chunk(Values|States|Output)Kernel<.int.64" 3 prefill_64k --decode=false \
    --min_prefill_context=65536 --max_prefill_context=65536
  grep -h -E "^  [a-zA-Z].*\(|Duration|DRAM Throughput|Achieved Occupancy|Issued Warp" \
    "$OUT"/profile_*.txt || true
  ;;
long-session)
  unpack
  "$bundle/bin/sympow-server" --device cuda --model models/sympow-tiny --listen 127.0.0.1:50181 \
    --metrics_listen "" > "$OUT/long_session_server.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do grep -q "serving sympow" "$OUT/long_session_server.log" && break; sleep 0.2; done
  cli() { "$bundle/bin/sympow-cli" --server 127.0.0.1:50181 "$@"; }
  session=$(cli sessions create | awk '{print $1}')
  # ~10k tokens, ~90k more, then the held-out text (193k tokens) five times: ~1.07M in all.
  head -c 39000 tests/fixtures/heldout.txt > "$work/first.txt"
  head -c 390000 tests/fixtures/heldout.txt | tail -c +39001 > "$work/second.txt"
  echo "session_tokens,server_rss_kib,gpu_mib" > "$OUT/long_session.csv"
  record() {
    local gpu
    gpu=$(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits |
      awk -F', ' -v pid="$server" '$1 == pid {print $2}')
    echo "$1,$(ps -o rss= -p "$server" | tr -d ' '),$gpu" | tee -a "$OUT/long_session.csv"
  }
  for piece in "$work/first.txt" "$work/second.txt" $(printf "tests/fixtures/heldout.txt %.0s" 1 2 3 4 5); do
    record "$(cli append --session "$session" --file "$piece" 2>/dev/null)"
  done
  cli generate --session "$session" --prompt " And" --max_new_tokens 16 --ignore_eos 2>&1 | tail -2
  record "$(cli sessions show "$session" | grep -o 'tokens=[0-9]*' | cut -d= -f2)"
  kill -TERM "$server" 2>/dev/null || true; wait "$server" || true
  ;;
variants)
  shift
  git diff --quiet HEAD || { echo "variants: commit or stash the work tree first" >&2; exit 1; }
  targets=(bench/cuda_kernels_bench tests/gpu/cuda_backend_test model/libsympow_cuda_backend.so)
  # build_into NAME: the targets as the work tree now stands, into build/variant/NAME.
  build_into() {
    ninja -C build "${targets[@]}" > "build/variant-$1.log" 2>&1 ||
      { echo "variant $1 does not build: see build/variant-$1.log" >&2; return 1; }
    mkdir -p "build/variant/$1"
    for target in "${targets[@]}"; do cp "build/$target" "build/variant/$1/"; done
  }
  rm -rf build/variant
  build_into HEAD
  for ref in "$@"; do
    git diff --binary "$(git merge-base HEAD "$ref")" "$ref" > build/variant.patch
    git apply build/variant.patch
    status=0
    build_into "${ref//\//_}" || status=1
    git apply -R build/variant.patch
    [[ $status == 0 ]] || exit 1
  done
  ninja -C build > /dev/null
  tar -C build -cJf build/variants.tar.xz variant
  ls build/variant && ls -la build/variants.tar.xz
  ;;
variant-tests)
  unpack_variants
  export SYMPOW_SOURCE_DIR=$PWD SYMPOW_ORACLE_DIR=$bundle/oracle
  # One after another: run together, each one's CPU reference (OpenBLAS threads on every core)
  # starved the others and none finished in 5 minutes.
  # A variant that fails is reported and the others still run; the step fails at the end.
  status=0
  for v in $variants; do
    [[ $v == HEAD ]] && continue  # tested by `device tests`
    result=0
    timeout "${VARIANT_TIMEOUT:-300}" "$work/variant/$v/cuda_backend_test" > "$logs/tests_$v.log" 2>&1 ||
      result=$?
    [[ $result == 0 ]] || status=1
    [[ $result == 124 ]] && echo "$v: timed out after ${VARIANT_TIMEOUT:-300} s" >> "$logs/tests_$v.log"
    echo "$v: GPU tests $(grep -E '^\[  (PASSED|FAILED) |timed out after' "$logs/tests_$v.log" | tr '\n' ' ')"
    pack_logs
  done
  exit $status
  ;;
ab)
  unpack_variants
  status=0
  for round in 1 2; do
    for v in $variants; do
      timeout 200 "$work/variant/$v/cuda_kernels_bench" --out "$logs/bench_${v}_$round.json" "${@:2}" \
        > "$logs/bench_${v}_$round.log" 2>&1 || { status=1; echo "$v r$round: failed, see bench_${v}_$round.log"; }
      grep -E "\] (decode|prefill|sampling|projections) " "$logs/bench_${v}_$round.log" | sed "s/^.*\] /$v r$round: /" || true
    done
  done
  pack_logs
  exit $status
  ;;
report)
  dir=${2:?usage: tests/gpu/run.sh report DIR [FLAGS]}
  # The plot needs matplotlib, which the build and test dependencies leave out.
  /usr/bin/python3 -c "import matplotlib" 2> /dev/null ||
    { echo "report: needs matplotlib (apt-get install python3-matplotlib)" >&2; exit 1; }
  /usr/bin/python3 bench/peers/report.py "$dir" bench/results "${@:3}"
  ;;
*)
  echo "unknown step '$step' (bundle, device, serving, long-session, profile, variants, variant-tests, ab, report)" >&2
  exit 2
  ;;
esac
