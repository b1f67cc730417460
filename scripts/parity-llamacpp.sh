#!/usr/bin/env bash
# Teacher-forced parity against tests/data/goldens/goldens-greedy.json, for chimera and, as a
# control, for llama.cpp itself at the pinned llama-cpp-python version (flash attention auto and
# off). Builds llama.cpp as scripts/compare-llamacpp.sh does, compiles scripts/llamacpp-probe.cpp
# against its static libraries, and prints per prompt and engine: the worst top-10 |Δlogprob|,
# the steps over 0.3, the worst first-position probability difference, and the arg-max
# mismatches at steps that are not near ties. Also prints chimera against that llama.cpp.
#
# With AVX2=1 it also builds that llama.cpp for AVX2/FMA/F16C only (no AVX-512, like the Zen 3
# machine the goldens came from) and adds it as a fourth engine.
#
# usage: scripts/parity-llamacpp.sh [MODEL (path or registry name, default gemma3:270m)]
# env:   GOLDENS=tests/data/goldens  AVX2=0|1  LLAMA_CPP_PYTHON=0.3.36  CHIMERA_LLAMACPP=<cache dir>
set -euo pipefail
MODEL=${1:-gemma3:270m}
root=$(cd "$(dirname "$0")/.." && pwd)
GOLDENS=${GOLDENS:-$root/tests/data/goldens}
. "$root/scripts/llamacpp-build.sh"

# probe BUILD_DIR OUT: links the probe against one llama.cpp build
link_probe() {
  if [ ! -x "$2" ] || [ "$root/scripts/llamacpp-probe.cpp" -nt "$2" ]; then
    g++ -O2 -std=c++17 "$root/scripts/llamacpp-probe.cpp" -I"$LLAMA_SRC/include" -I"$LLAMA_SRC/ggml/include" \
      "$1/src/libllama.a" "$1/ggml/src/libggml.a" "$1/ggml/src/libggml-cpu.a" \
      "$1/ggml/src/libggml-base.a" -fopenmp -lpthread -ldl -o "$2"
  fi
}
probe="$CACHE/llamacpp-probe"
link_probe "$LLAMA_BUILD" "$probe"
engines="chimera llama.cpp-fa-auto llama.cpp-fa-off"
if [ "${AVX2:-0}" = 1 ]; then
  if [ ! -f "$CACHE/build-avx2/src/libllama.a" ]; then
    cmake -S "$LLAMA_SRC" -B "$CACHE/build-avx2" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF \
      -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_BMI2=ON \
      -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
      -DLLAMA_BUILD_TOOLS=OFF -DBUILD_SHARED_LIBS=OFF >&2
    cmake --build "$CACHE/build-avx2" --target llama -j"$(nproc)" >&2
  fi
  link_probe "$CACHE/build-avx2" "$CACHE/llamacpp-probe-avx2"
  engines="$engines llama.cpp-avx2-fa-auto"
fi
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --example teacher_forced
chimera="$root/target/release/chimera"
if [ -f "$MODEL" ]; then file=$MODEL; else file=$("$chimera" pull "$MODEL"); fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
python3 - "$GOLDENS/goldens-greedy.json" > "$out/ids.txt" <<'PY'
import json, sys
for p in json.load(open(sys.argv[1]))["prompts"]:
    print(p["name"], ",".join(map(str, p["prompt_ids"])) + ";" + ",".join(map(str, p["generated_ids"])))
PY
"$probe" "$file" "$out/ids.txt" -1 > "$out/llama.cpp-fa-auto.json" 2>/dev/null
"$probe" "$file" "$out/ids.txt" 0 > "$out/llama.cpp-fa-off.json" 2>/dev/null
if [ "${AVX2:-0}" = 1 ]; then
  "$CACHE/llamacpp-probe-avx2" "$file" "$out/ids.txt" -1 > "$out/llama.cpp-avx2-fa-auto.json" 2>/dev/null
fi
"$root/target/release/examples/teacher_forced" "$file" "$GOLDENS/goldens-greedy.json" > "$out/chimera.json"
python3 - "$GOLDENS/goldens-greedy.json" "$out" "$PIN" $engines <<'PY'
import json, math, os, sys
golden = json.load(open(sys.argv[1]))["prompts"]
runs = {e: {p["name"]: p["steps"] for p in json.load(open(os.path.join(sys.argv[2], e + ".json")))}
        for e in sys.argv[4:]}
print(f"against the goldens (llama.cpp e95dae18); llama.cpp here is llama-cpp-python {sys.argv[3]}'s")
print("| prompt | engine | worst top-10 Δlogprob | steps > 0.3 | worst first-position Δprob | arg-max mismatches |")
print("|---|---|---|---|---|---|")
for p in golden:
    ties = {t["pos"] for t in p["near_ties"]}
    for e, r in runs.items():
        steps = r[p["name"]]
        worst, over, mism = 0.0, 0, 0
        for k, pp in enumerate(p["per_position"]):
            ours = dict((i, l) for i, l in steps[k])
            w = max(abs(ours.get(i, -1e9) - l) for i, l in pp["top10"])
            worst, over = max(worst, w), over + (w > 0.3)
            mism += steps[k][0][0] != p["generated_ids"][k] and k not in ties
        first = dict((i, l) for i, l in steps[0])
        fp = max(abs(math.exp(first.get(t["id"], -1e9)) - t["prob"]) for t in p["first_position_top10"])
        print(f"| {p['name']} | {e} | {worst:.3f} | {over}/{len(steps)} | {fp:.4f} | {mism} |")
print()
print("chimera against llama.cpp (fa auto), worst top-10 Δlogprob per prompt:",
      ", ".join(f"{n} {max(abs(dict((i, l) for i, l in a)[i] - l) for a, b in zip(runs['chimera'][n], s) for i, l in b[:10] if i in dict((i, l) for i, l in a)):.3f}"
                for n, s in runs["llama.cpp-fa-auto"].items()))
PY
