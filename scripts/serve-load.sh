#!/usr/bin/env bash
# Load benchmark of `chimera serve` beside llama.cpp's llama-server (-np 4), same machine, model
# and run: C concurrent clients (1, 2, 4, 8) each stream completions of 128 tokens back to back
# through the OpenAI-compatible /v1/completions of each server; aggregate decode tok/s and
# p50/p95 time to first token, alternating the servers ROUNDS times, medians printed with the
# ratio. Then a soak: 1,000 requests from 16 clients against chimera, errors and RSS before and
# after. llama-server is built from the llama-cpp-python sdist (scripts/llamacpp-build.sh)
# outside the repository; the clients need httpx (the ollama/openai packages bring it).
#
# usage: scripts/serve-load.sh [MODEL (registry name, default gemma3:270m)]
# env:   ROUNDS=3  LEVELS=1,2,4,8  PARALLEL=4  THREADS=<all>  SOAK=1000
set -euo pipefail
MODEL=${1:-gemma3:270m}
ROUNDS=${ROUNDS:-3}
LEVELS=${LEVELS:-1,2,4,8}
PARALLEL=${PARALLEL:-4}
SOAK=${SOAK:-1000}
root=$(cd "$(dirname "$0")/.." && pwd)
LLAMACPP_CPU=0 . "$root/scripts/llamacpp-build.sh"
llamacpp_source
server="$CACHE/build-server/bin/llama-server"
if [ ! -x "$server" ]; then
  cmake -S "$LLAMA_SRC" -B "$CACHE/build-server" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF >&2
  cmake --build "$CACHE/build-server" --target llama-server -j"$(nproc)" >&2
fi
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
chimera="$root/target/release/chimera"
file=$("$chimera" pull "$MODEL")
py="$root/target/pyclients"
PYTHONPATH="$py" python3 -c 'import httpx' 2>/dev/null || python3 -m pip install -q --target "$py" ollama openai
threads=${THREADS:-$(nproc)}
out=$(mktemp -d)
wait_up() { for _ in $(seq 600); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "server at $1 did not start" >&2; return 1; }
load() { PYTHONPATH="$py" python3 "$root/scripts/serve-load.py" "$1" "$2" --levels "$LEVELS"; }
for r in $(seq "$ROUNDS"); do
  echo "round $r: chimera" >&2
  "$chimera" serve --port 11601 --parallel "$PARALLEL" --num-thread "$threads" 2>"$out/chimera.log" & pid=$!
  wait_up http://127.0.0.1:11601/ && curl -s http://127.0.0.1:11601/api/generate -d "{\"model\":\"$MODEL\"}" >/dev/null
  load http://127.0.0.1:11601 "$MODEL" > "$out/chimera-$r.jsonl"
  kill -TERM "$pid"; wait "$pid" || true
  echo "round $r: llama-server" >&2
  "$server" -m "$file" --port 11602 -np "$PARALLEL" -c $((4096 * PARALLEL)) -t "$threads" --no-webui 2>"$out/llama.log" >&2 & pid=$!
  wait_up http://127.0.0.1:11602/health
  load http://127.0.0.1:11602 "$MODEL" > "$out/llama-$r.jsonl"
  kill -TERM "$pid"; wait "$pid" || true
done
python3 - "$out" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def rows(name):
    return [[json.loads(l) for l in open(f"{out}/{name}-{r}.jsonl")] for r in range(1, rounds + 1)]
c, l = rows("chimera"), rows("llama")
single = statistics.median(r[0]["agg_tok_s"] for r in c)
print("| streams | chimera tok/s | llama-server tok/s | ratio | chimera TTFT p50/p95 ms | llama-server TTFT p50/p95 ms | chimera vs 1 stream |")
print("|---:|---:|---:|---:|---|---|---:|")
for i, lv in enumerate(c[0]):
    med = lambda rs, k: statistics.median(r[i][k] for r in rs)
    ct, lt = med(c, "agg_tok_s"), med(l, "agg_tok_s")
    print(f"| {lv['clients']} | {ct:.1f} | {lt:.1f} | {ct / lt:.2f}x | {med(c, 'ttft_p50_ms'):.0f} / {med(c, 'ttft_p95_ms'):.0f} | "
          f"{med(l, 'ttft_p50_ms'):.0f} / {med(l, 'ttft_p95_ms'):.0f} | {ct / single:.2f}x |")
errs = lambda rs: sum(lv["errors"] for r in rs for lv in r)
print(f"\nerrors across all levels and rounds: chimera {errs(c)}, llama-server {errs(l)}")
PY
echo "soak: $SOAK requests from 16 clients" >&2
"$chimera" serve --port 11601 --parallel "$PARALLEL" --num-thread "$threads" 2>"$out/chimera.log" & pid=$!
wait_up http://127.0.0.1:11601/ && curl -s http://127.0.0.1:11601/api/generate -d "{\"model\":\"$MODEL\"}" >/dev/null
rss0=$(ps -o rss= -p "$pid")
PYTHONPATH="$py" python3 "$root/scripts/serve-load.py" http://127.0.0.1:11601 "$MODEL" --soak "$SOAK" --clients 16 | tee "$out/soak.json"
rss1=$(ps -o rss= -p "$pid")
PYTHONPATH="$py" python3 "$root/scripts/serve-load.py" http://127.0.0.1:11601 "$MODEL" --soak "$SOAK" --clients 16 > "$out/soak2.json"
rss2=$(ps -o rss= -p "$pid")
kill -TERM "$pid"; wait "$pid" || true
echo "RSS: ${rss0} KiB loaded, ${rss1} KiB after $SOAK requests, ${rss2} KiB after $((2 * SOAK)); second soak: $(cat "$out/soak2.json")"
