#!/usr/bin/env bash
# Teacher-forced parity against ../shared/goldens/goldens-greedy.json, for chimera and, as a
# control, for llama.cpp itself at the pinned llama-cpp-python version (flash attention auto and
# off). Builds llama.cpp as scripts/compare-llamacpp.sh does, compiles scripts/llamacpp-probe.cpp
# against its static libraries, and prints per prompt and engine: the worst top-10 |Δlogprob|,
# the steps over 0.3, the worst first-position probability difference, and the arg-max
# mismatches at steps that are not near ties. Also prints chimera against that llama.cpp.
#
# usage: scripts/parity-llamacpp.sh [MODEL (path or registry name, default gemma3:270m)]
# env:   GOLDENS=../shared/goldens  LLAMA_CPP_PYTHON=0.3.36  CHIMERA_LLAMACPP=<cache dir>
set -euo pipefail
MODEL=${1:-gemma3:270m}
root=$(cd "$(dirname "$0")/.." && pwd)
GOLDENS=${GOLDENS:-$root/../shared/goldens}
. "$root/scripts/llamacpp-build.sh"

probe="$CACHE/llamacpp-probe"
if [ ! -x "$probe" ] || [ "$root/scripts/llamacpp-probe.cpp" -nt "$probe" ]; then
  g++ -O2 -std=c++17 "$root/scripts/llamacpp-probe.cpp" -I"$LLAMA_SRC/include" -I"$LLAMA_SRC/ggml/include" \
    "$LLAMA_BUILD/src/libllama.a" "$LLAMA_BUILD/ggml/src/libggml.a" "$LLAMA_BUILD/ggml/src/libggml-cpu.a" \
    "$LLAMA_BUILD/ggml/src/libggml-base.a" -fopenmp -lpthread -ldl -o "$probe"
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
"$root/target/release/examples/teacher_forced" "$file" "$GOLDENS/goldens-greedy.json" > "$out/chimera.json"
python3 - "$GOLDENS/goldens-greedy.json" "$out" "$PIN" <<'PY'
import json, math, os, sys
golden = json.load(open(sys.argv[1]))["prompts"]
runs = {e: {p["name"]: p["steps"] for p in json.load(open(os.path.join(sys.argv[2], e + ".json")))}
        for e in ("chimera", "llama.cpp-fa-auto", "llama.cpp-fa-off")}
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
