#!/usr/bin/env bash
# LoRA parity against llama.cpp: a random rank-R adapter for the model, written by llama.cpp's own
# GGUF writer (gguf-py from the pinned llama-cpp-python sdist, as convert_lora_to_gguf.py writes
# adapters: general.type adapter, adapter.type lora, adapter.lora.alpha, blk.N.<proj>.weight.lora_a
# [n_in, R] and .lora_b [R, n_out]), then the golden prompts teacher-forced through llama.cpp
# (scripts/llamacpp-probe.cpp with the adapter) and through chimera (examples/teacher_forced with
# it), with and without the adapter. Prints the worst top-10 |Δlogprob| per prompt: the adapter must
# move both engines the same way (chimera vs llama.cpp with the adapter as small as without it,
# while each engine with the adapter is far from itself without it).
#
# usage: scripts/parity-lora.sh [MODEL (path or registry name, default gemma3:270m)]
# env:   RANK=8 ALPHA=16 AMP=0.02 (the adapter's values are uniform in ±AMP)  LLAMA_CPP_PYTHON=0.3.36
set -euo pipefail
MODEL=${1:-gemma3:270m}
root=$(cd "$(dirname "$0")/.." && pwd)
GOLDENS=$root/tests/data/goldens
LLAMACPP_CPU=0 . "$root/scripts/llamacpp-build.sh"
llamacpp_source
# any CPU build's static libraries will do (llama-bench's or llama-embedding's)
for b in "$CACHE/build" "$CACHE/build-embd"; do [ -f "$b/src/libllama.a" ] && lib=$b && break; done
if [ -z "${lib:-}" ]; then
  lib=$CACHE/build
  cmake -S "$LLAMA_SRC" -B "$lib" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF >&2
  cmake --build "$lib" --target llama -j"$(nproc)" >&2
fi
probe="$CACHE/llamacpp-probe-lora"
if [ ! -x "$probe" ] || [ "$root/scripts/llamacpp-probe.cpp" -nt "$probe" ]; then
  g++ -O2 -std=c++17 "$root/scripts/llamacpp-probe.cpp" -I"$LLAMA_SRC/include" -I"$LLAMA_SRC/ggml/include" \
    "$lib/src/libllama.a" "$lib/ggml/src/libggml.a" "$lib/ggml/src/libggml-cpu.a" \
    "$lib/ggml/src/libggml-base.a" -fopenmp -lpthread -ldl -o "$probe"
fi
NUMPY="$CACHE/pynumpy"
[ -d "$NUMPY/numpy" ] || python3 -m pip install -q --target "$NUMPY" numpy
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --example teacher_forced
chimera="$root/target/release/chimera"
if [ -f "$MODEL" ]; then file=$MODEL; else file=$("$chimera" pull "$MODEL"); fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
PYTHONPATH="$LLAMA_SRC/gguf-py:$NUMPY" python3 - "$file" "$out/adapter.gguf" "${RANK:-8}" "${ALPHA:-16}" "${AMP:-0.02}" <<'PY'
import sys, numpy as np, gguf
model, path, rank, alpha, amp = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
r = gguf.GGUFReader(model)
arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
w = gguf.GGUFWriter(path, arch)
w.add_type(gguf.GGUFType.ADAPTER)
w.add_string("adapter.type", "lora")
w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
rng = np.random.default_rng(7)
projs = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
for t in r.tensors:
    name = t.name
    if not (name.startswith("blk.") and name.split(".")[2] in projs):
        continue
    n_in, n_out = int(t.shape[0]), int(t.shape[1])  # ggml order
    # numpy shape is (rows, cols) = reversed ggml dims
    w.add_tensor(name + ".lora_a", rng.uniform(-amp, amp, (rank, n_in)).astype(np.float32))
    w.add_tensor(name + ".lora_b", rng.uniform(-amp, amp, (n_out, rank)).astype(np.float32))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
PY
python3 - "$GOLDENS/goldens-greedy.json" > "$out/ids.txt" <<'PY'
import json, sys
for p in json.load(open(sys.argv[1]))["prompts"]:
    print(p["name"], ",".join(map(str, p["prompt_ids"])) + ";" + ",".join(map(str, p["generated_ids"])))
PY
"$probe" "$file" "$out/ids.txt" -1 > "$out/llama-base.json" 2>/dev/null
"$probe" "$file" "$out/ids.txt" -1 "$out/adapter.gguf" > "$out/llama-lora.json" 2>"$out/llama-lora.log" \
  || { tail -5 "$out/llama-lora.log"; exit 1; }
tf="$root/target/release/examples/teacher_forced"
"$tf" "$file" "$GOLDENS/goldens-greedy.json" f16 > "$out/chimera-base.json"
"$tf" "$file" "$GOLDENS/goldens-greedy.json" f16 "$out/adapter.gguf" > "$out/chimera-lora.json"
python3 - "$out" <<'PY'
import json, os, sys
d = sys.argv[1]
run = {n: {p["name"]: p["steps"] for p in json.load(open(os.path.join(d, n + ".json")))}
       for n in ("llama-base", "llama-lora", "chimera-base", "chimera-lora")}
def diffs(a, b):
    # |Δlogprob| over b's top 10 at every step, where a has the token
    out = []
    for sa, sb in zip(a, b):
        da = dict((i, l) for i, l in sa)
        out += [abs(da[i] - l) for i, l in sb[:10] if i in da]
    return out
pairs = [("chimera-lora", "llama-lora", "chimera vs llama.cpp, with the adapter"),
         ("chimera-base", "llama-base", "chimera vs llama.cpp, without"),
         ("llama-lora", "llama-base", "llama.cpp with vs without"),
         ("chimera-lora", "chimera-base", "chimera with vs without")]
print("worst (mean) top-10 |Δlogprob| over each prompt's teacher-forced steps")
print("| prompt | " + " | ".join(p[2] for p in pairs) + " |")
print("|---" * (len(pairs) + 1) + "|")
every = {}
for name in run["llama-base"]:
    cells = []
    for a, b, _ in pairs:
        d = diffs(run[a][name], run[b][name])
        every.setdefault((a, b), []).extend(d)
        cells.append(f"{max(d):.3f} ({sum(d) / len(d):.3f})")
    print(f"| {name} | " + " | ".join(cells) + " |")
print("| all | " + " | ".join(f"{max(d):.3f} ({sum(d) / len(d):.3f})" for d in every.values()) + " |")
PY
