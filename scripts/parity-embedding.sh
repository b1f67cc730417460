#!/usr/bin/env bash
# Embedding parity against llama.cpp's llama-embedding (from the pinned llama-cpp-python sdist,
# built outside the repository as scripts/llamacpp-build.sh builds llama-bench): the same inputs
# through `llama-embedding --pooling mean --embd-normalize 2` and through `chimera serve`'s
# /api/embed; prints the cosine of each pair and the worst one. The two are the same vector up to
# rounding when the cosine is ≥ 0.999.
#
# usage: scripts/parity-embedding.sh [MODEL (path or registry name, default gemma3:270m; an
#        EmbeddingGemma GGUF too, e.g. the synthetic one `chimera bench --synthetic embeddinggemma
#        --quant Q8_0 -p 16 -n 0` writes under ~/.cache/chimera/synthetic)]
# env:   LLAMA_CPP_PYTHON=0.3.36  CHIMERA_LLAMACPP=<cache dir>
set -euo pipefail
MODEL=${1:-gemma3:270m}
root=$(cd "$(dirname "$0")/.." && pwd)
LLAMACPP_CPU=0 . "$root/scripts/llamacpp-build.sh"
llamacpp_source
embd="$CACHE/build-embd/bin/llama-embedding"
if [ ! -x "$embd" ]; then
  echo "building llama-embedding (CPU) in $CACHE/build-embd" >&2
  cmake -S "$LLAMA_SRC" -B "$CACHE/build-embd" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF >&2
  cmake --build "$CACHE/build-embd" --target llama-embedding -j"$(nproc)" >&2
fi
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
chimera="$root/target/release/chimera"
if [ -f "$MODEL" ]; then file=$MODEL; else file=$("$chimera" pull "$MODEL"); fi
out=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$out"' EXIT
inputs=("The sky is blue because of Rayleigh scattering."
  "Le ciel est bleu."
  "def add(a, b):\n    return a + b"
  "A much longer input that runs on for a while, so that the mean pools over many positions: $(printf 'word %.0s' $(seq 1 200))")
# llama-embedding reads one prompt with inputs separated by --embd-separator
sep='<#sep#>'
joined=$(printf "%s$sep" "${inputs[@]}")
joined=${joined%"$sep"}
"$embd" -m "$file" -p "$(printf '%b' "$joined")" --embd-separator "$sep" --pooling mean --embd-normalize 2 \
  --embd-output-format json -c 2048 -b 2048 -ub 2048 2>"$out/llama.log" > "$out/llama.json"
"$chimera" serve --allow-paths --port 0 --quiet 2>"$out/serve.log" &
pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$out/serve.log" && break; sleep 0.1; done
url=$(grep -o 'http://[^ ]*' "$out/serve.log" | head -1)
python3 - "$url" "$file" "$out/llama.json" "${inputs[@]}" <<'PY'
import json, math, sys, urllib.request
url, model, ref = sys.argv[1], sys.argv[2], sys.argv[3]
inputs = [s.encode().decode("unicode_escape") for s in sys.argv[4:]]
req = urllib.request.Request(url + "/api/embed", data=json.dumps({"model": model, "input": inputs}).encode())
ours = json.load(urllib.request.urlopen(req))["embeddings"]
theirs = [d["embedding"] for d in json.load(open(ref))["data"]]
assert len(ours) == len(theirs), (len(ours), len(theirs))
worst = 1.0
for i, (a, b) in enumerate(zip(ours, theirs)):
    cos = sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
    worst = min(worst, cos)
    print(f"input {i}: dims {len(a)}/{len(b)} cosine {cos:.6f}")
print(f"worst cosine {worst:.6f} ({'≥' if worst >= 0.999 else '<'} 0.999)")
sys.exit(0 if worst >= 0.999 else 1)
PY
