#!/usr/bin/env bash
# Same-run comparison of `chimera bench` with llama.cpp's llama-bench (CPU) on one GGUF.
#
# Builds llama-bench from the llama.cpp source that the PyPI sdist of llama-cpp-python carries
# (vendor/llama.cpp), pinned in scripts/llamacpp-build.sh, with cmake from pip, outside the repository in a cache that
# later runs reuse. Then runs the two benches alternately ROUNDS times and prints, per test and
# thread count, the median of the per-round mean t/s of each and the ratio chimera / llama.cpp.
# Nothing from llama.cpp is committed.
#
# usage: scripts/compare-llamacpp.sh [MODEL (path or registry name, default gemma3:270m)]
# env:   THREADS="1 2"  ROUNDS=3  REPS=5  LLAMA_CPP_PYTHON=0.3.36  CHIMERA_LLAMACPP=<cache dir>
set -euo pipefail
MODEL=${1:-gemma3:270m}
THREADS=${THREADS:-"1 2"}
ROUNDS=${ROUNDS:-3}
REPS=${REPS:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/llamacpp-build.sh"

cargo build --release --quiet --manifest-path "$root/Cargo.toml"
chimera="$root/target/release/chimera"
if [ -f "$MODEL" ]; then file=$MODEL; else file=$("$chimera" pull "$MODEL"); fi
out=$(mktemp -d)
for r in $(seq "$ROUNDS"); do
  for t in $THREADS; do
    echo "round $r, $t thread(s)" >&2
    "$chimera" bench -m "$file" -t "$t" -r "$REPS" -o json > "$out/chimera-$r-$t.json"
    "$bench" -m "$file" -t "$t" -r "$REPS" -o json > "$out/llama-$r-$t.json"
  done
done
python3 - "$out" <<'PY'
import json, glob, os, statistics, sys
d = sys.argv[1]
rows = {}
for path in glob.glob(os.path.join(d, "*.json")):
    tool = os.path.basename(path).split("-")[0]
    for rec in json.load(open(path)):
        test = rec.get("test") or (f"pp{rec['n_prompt']}" if rec["n_gen"] == 0 else f"tg{rec['n_gen']}")
        rows.setdefault((test, rec["n_threads"]), {}).setdefault(tool, []).append(rec["avg_ts"])
print("| test | threads | chimera t/s | llama.cpp t/s | ratio |")
print("|---|---|---|---|---|")
for (test, t), v in sorted(rows.items(), key=lambda x: (x[0][1], x[0][0])):
    c, l = statistics.median(v.get("chimera", [0])), statistics.median(v.get("llama", [0]))
    print(f"| {test} | {t} | {c:.2f} | {l:.2f} | {c / l if l else float('nan'):.2f}x |")
PY
rm -rf "$out"
