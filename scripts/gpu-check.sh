#!/usr/bin/env bash
# The one-call GPU check: build here, run on a GPU machine that has no Rust and no network.
#
#   scripts/gpu-check.sh build    on a machine with nvcc (CUDA 13) on PATH: builds the CUDA
#                                 chimera binary, its CUDA test binary and a CUDA llama-bench
#                                 (llama.cpp from the llama-cpp-python sdist, sm_90), stripped and
#                                 xz-compressed into $CARRY (default gpu-carry/, git-ignored; with
#                                 the working tree it must stay under one call's 64 MiB: gzip gave
#                                 75 MiB, xz -9e gives 57 MiB, llama-bench's CUDA kernels 39 of it).
#   scripts/gpu-check.sh device   on the GPU machine, from the repository root, with $CARRY
#                                 beside it: writes synthetic gemma3 GGUFs (270M with the real
#                                 file's shapes and tensor types; 1B, 4B, 12B Q4_K_M; a Q8_0
#                                 EmbeddingGemma), measures embeddings (32 inputs in one request
#                                 against 32 single requests, scripts/embed-rate.py, on the GPU
#                                 and on its CPU), runs the CUDA
#                                 tests (kernels against their CPU references, CUDA against the CPU
#                                 backend teacher-forced on the golden prompts, graph replay against
#                                 eager steps), then chimera bench and llama-bench pp512/tg128 on the
#                                 270M at num_gpu 0, 9, 18, 19 and on 1B, 4B, 12B at full offload
#                                 (both engines read the same files), and prints one table with
#                                 ratios. Results go to $OUT (default ./gpu-check-out). Every
#                                 stage has a time limit and all of them DEVICE_LIMIT seconds
#                                 (540): a stage that hangs leaves the others' results.
#
# env: CARRY, OUT, REPS (5), SIZES ("1b 4b 12b"), BENCH (1; 0 skips the speed stages),
#      DEVICE_LIMIT (540), LLAMA_CPP_PYTHON, CHIMERA_CUDA_TARGET,
#      CUDA_COMPUTE_CAP (90).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
CARRY=${CARRY:-$root/gpu-carry}
cap=${CUDA_COMPUTE_CAP:-90}

build() {
  command -v nvcc >/dev/null || { echo "gpu-check: nvcc is not on PATH (CUDA 13 toolkit)" >&2; exit 2; }
  local target=${CHIMERA_CUDA_TARGET:-$root/target-cuda} t0=$SECONDS
  mkdir -p "$CARRY"
  rm -f "$CARRY"/*.gz "$CARRY"/*.xz
  (cd "$root" && CARGO_TARGET_DIR=$target CUDA_COMPUTE_CAP=$cap cargo build --release --locked --features cuda)
  local tests
  tests=$(cd "$root" && CARGO_TARGET_DIR=$target CUDA_COMPUTE_CAP=$cap cargo test --release --locked --features cuda \
    --no-run --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "integration" and m.get("executable"):
        print(m["executable"])')
  [ -n "$tests" ] || { echo "gpu-check: no integration test binary was built" >&2; exit 1; }
  echo "gpu-check: chimera built in $((SECONDS - t0)) s" >&2
  strip -o "$CARRY/chimera" "$target/release/chimera" && xz -9e -T0 -f "$CARRY/chimera"
  strip -o "$CARRY/integration" "$tests" && xz -9e -T0 -f "$CARRY/integration"

  # llama.cpp with its CUDA backend, static, for this compute capability only
  LLAMACPP_CPU=0 . "$root/scripts/llamacpp-build.sh"
  llamacpp_source
  local lb="$CACHE/build-cuda-sm$cap" cuda_home
  cuda_home=$(dirname "$(dirname "$(command -v nvcc)")")
  # a toolkit from pip wheels keeps its libraries in lib/, where nvcc does not look, and may
  # lack cuBLAS's headers: they come from the cuBLAS wheel of the same CUDA, through pip
  [ -d "$cuda_home/lib64" ] || export NVCC_APPEND_FLAGS="-L$cuda_home/lib${NVCC_APPEND_FLAGS:+ $NVCC_APPEND_FLAGS}"
  local inc="$CACHE/cublas-include"
  if [ ! -f "$cuda_home/include/cublas_v2.h" ] && [ ! -f "$inc/cublas_v2.h" ]; then
    local major
    major=$(nvcc --version | grep -oP 'release \K[0-9]+\.[0-9]+')
    python3 -m pip download -q --no-deps -d "$CACHE/wheels" "nvidia-cublas>=$major,<${major%.*}.$(( ${major#*.} + 1 ))"
    mkdir -p "$inc" && unzip -q -j -o "$CACHE"/wheels/nvidia_cublas-*.whl 'nvidia/*/include/*' -d "$inc"
  fi
  t0=$SECONDS
  cmake -S "$LLAMA_SRC" -B "$lb" -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$cap" \
    -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" -DCUDAToolkit_ROOT="$cuda_home" \
    -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DBUILD_SHARED_LIBS=OFF -DCMAKE_CUDA_FLAGS="-I$inc" -DCMAKE_CXX_FLAGS="-I$inc" >&2
  cmake --build "$lb" --target llama-bench -j"$(nproc)" >&2
  echo "gpu-check: llama-bench (CUDA) built in $((SECONDS - t0)) s" >&2
  strip -o "$CARRY/llama-bench" "$lb/bin/llama-bench" && xz -9e -T0 -f "$CARRY/llama-bench"
  git -C "$root" rev-parse --short=8 HEAD > "$CARRY/commit"
  ls -l "$CARRY" >&2
  local total tree
  total=$(du -cb "$CARRY"/* | tail -1 | cut -f1)
  # the working tree travels with it (tracked and untracked-not-ignored files)
  tree=$(cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
  if [ $((total + tree)) -gt $((64 * 1024 * 1024)) ]; then
    echo "gpu-check: $CARRY ($total bytes) and the working tree ($tree) are more than one device call carries (64 MiB)" >&2
    exit 1
  fi
  echo "gpu-check: $CARRY ready ($total bytes, working tree $tree); on the device: scripts/gpu-check.sh device" >&2
}

device() {
  local out=${OUT:-$root/gpu-check-out} reps=${REPS:-5} sizes=${SIZES-"1b 4b 12b"} bin
  mkdir -p "$out"
  bin=$(mktemp -d)
  for f in chimera integration llama-bench; do
    # Python's lzma, since the device may have no xz binary; a missing file is reported, not fatal
    [ -f "$CARRY/$f.xz" ] || { echo "gpu-check: no $CARRY/$f.xz" | tee -a "$out/machine.txt"; continue; }
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
      "$CARRY/$f.xz" "$bin/$f" && chmod +x "$bin/$f"
  done
  # the CUDA 13 runtime, cuBLAS and cuRAND from the Python wheels; libcuda from the driver
  local nv
  nv=$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__file__))' 2>/dev/null || true)
  for d in "$nv"/cu13/lib "$nv"/*/lib; do
    [ -d "$d" ] && LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  done
  export LD_LIBRARY_PATH
  {
    echo "chimera commit $(cat "$CARRY/commit" 2>/dev/null || echo unknown)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    nproc
  } | tee "$out/machine.txt"
  # Each stage has a time limit, so that one stage that hangs leaves the others' results in $out.
  local deadline=$((SECONDS + ${DEVICE_LIMIT:-540}))
  stage() {
    local name=$1 limit=$2 t0=$SECONDS st=0 left=$((deadline - SECONDS))
    shift 2
    if [ "$left" -lt 10 ]; then
      echo "stage $name: skipped, the device limit is spent" | tee -a "$out/machine.txt"
      return 0
    fi
    [ "$limit" -le "$left" ] || limit=$left
    timeout -k 5 "$limit" "$@" || st=$?
    echo "stage $name: exit $st in $((SECONDS - t0)) s" | tee -a "$out/machine.txt"
  }

  # synthetic models, written once by chimera (the 270M: the real file's shapes and type mix)
  stage synthetic 240 sh -c '"$1" bench --synthetic "270m$2" -p 1 -n 1 -r 1 --no-warmup --num-gpu 0 -o json > "$3/synthetic.json"' \
    _ "$bin/chimera" "${sizes:+,${sizes// /,}}" "$out"
  stage synthetic-embedding 120 sh -c '"$1" bench --synthetic embeddinggemma --quant Q8_0 -p 16 -n 0 -r 1 --no-warmup --num-gpu 0 -o json > "$2/synthetic-embedding.json"' \
    _ "$bin/chimera" "$out"
  local m270 memb
  m270=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["model_filename"])' "$out/synthetic.json" || true)
  memb=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["model_filename"])' "$out/synthetic-embedding.json" || true)

  # embeddings: 32 inputs in one request against 32 single requests (MODEL NUM_GPU PARALLEL REPS),
  # as token ids as long as the real tokenizer makes 4 and 20 words (the synthetic vocabulary
  # makes them 5 to 8 times longer)
  local port=18434 n=0
  embed_rate() {
    local model=$m270
    [ "$1" = embeddinggemma ] && model=$memb
    [ -n "$model" ] && [ $((deadline - SECONDS)) -gt 30 ] || return 0
    n=$((n + 1))
    "$bin/chimera" serve --allow-paths --port $((port + n)) --num-gpu "$2" --parallel "$3" --quiet \
      > "$out/embed-serve-$n.log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do
      python3 -c 'import urllib.request,sys; urllib.request.urlopen(sys.argv[1])' "http://127.0.0.1:$((port + n))/api/version" 2>/dev/null && break
      sleep 0.2
    done
    echo "embed: $1 num_gpu $2 parallel $3" >> "$out/embed-rate.txt"
    stage "embed-$1-ngl$2-np$3" 60 python3 "$root/scripts/embed-rate.py" "http://127.0.0.1:$((port + n))" "$model" \
      --inputs 32 --reps "$4" --tokens 7,23 >> "$out/embed-rate.txt" 2>&1
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  }
  embed_rate 270m 999 4 5

  # parity and graphs: the CUDA tests, each reporting its figures
  stage cuda-tests 150 sh -c '"$1" cuda:: --test-threads 1 --nocapture > "$2/cuda-tests.txt" 2>&1' _ "$bin/integration" "$out"
  tail -n 30 "$out/cuda-tests.txt" || true

  # speed: chimera bench and llama-bench on the same files, alternating by model (BENCH=0: not)
  local file
  [ "${BENCH:-1}" = 0 ] && sizes=""
  [ "${BENCH:-1}" = 0 ] || stage bench-270m 60 sh -c '"$1" bench -m "$2" --num-gpu 0,9,18,19 -r "$3" -o json > "$4/chimera-270m.json"' _ "$bin/chimera" "$m270" "$reps" "$out"
  [ "${BENCH:-1}" = 0 ] || stage llama-270m 60 sh -c '"$1" -m "$2" -ngl 0,9,18,19 -r "$3" -o json > "$4/llama-270m.json"' _ "$bin/llama-bench" "$m270" "$reps" "$out"
  for s in $sizes; do
    file=$(python3 -c 'import json,sys; print([r["model_filename"] for r in json.load(open(sys.argv[1])) if "-'"$s"'-" in r["model_filename"]][0])' "$out/synthetic.json") || continue
    # full offload: every block and the head (both clamp a larger count)
    stage "bench-$s" 45 sh -c '"$1" bench -m "$2" --num-gpu 999 -r "$3" -o json > "$4/chimera-$5.json"' _ "$bin/chimera" "$file" "$reps" "$out" "$s"
    stage "llama-$s" 45 sh -c '"$1" -m "$2" -ngl 999 -r "$3" -o json > "$4/llama-$5.json"' _ "$bin/llama-bench" "$file" "$reps" "$out" "$s"
  done
  # the rest of the embedding figures: more slots, this machine's CPU, a bidirectional model
  embed_rate 270m 999 32 5
  embed_rate embeddinggemma 999 4 5
  embed_rate 270m 0 4 3
  cat "$out/embed-rate.txt"
  python3 "$root/scripts/gpu-table.py" "$out" | tee "$out/table.md"
}

case "${1:-}" in
  build) build ;;
  device) device ;;
  *) echo "usage: scripts/gpu-check.sh build|device" >&2; exit 2 ;;
esac
