#!/usr/bin/env python3
"""One table from scripts/gpu-check.sh's results: chimera bench against llama-bench on the same
files, per model, num_gpu and test, with the ratio; then the CUDA tests' figures and the targets
(tg128 >= 1.2x llama.cpp at full offload for 270M, 1B, 4B; pp512 >= 1.0x; throughput rising with
num_gpu)."""
import glob
import json
import os
import sys

out = sys.argv[1]


def load(pattern):
    rows = []
    for f in sorted(glob.glob(os.path.join(out, pattern))):
        try:
            rows.extend(json.load(open(f)))
        except (OSError, ValueError) as e:
            print(f"(could not read {f}: {e})")
    return rows


def test_name(r):
    return r.get("test") or (f"pp{r['n_prompt']}" if r.get("n_gen", 0) == 0 else f"tg{r['n_gen']}")


def size(path):
    for s in ("270m", "1b", "4b", "12b", "27b"):
        if f"-{s}-" in os.path.basename(path):
            return s
    return os.path.basename(path)


def key(r):
    return (size(r["model_filename"]), int(r["n_gpu_layers"]), test_name(r))


chimera = {key(r): r["avg_ts"] for r in load("chimera-*.json")}
llama = {key(r): r["avg_ts"] for r in load("llama-*.json")}
order = {"270m": 0, "1b": 1, "4b": 2, "12b": 3}
print("| model (synthetic Q4_K_M) | num_gpu | test | chimera t/s | llama.cpp t/s | chimera / llama.cpp |")
print("|---|---:|---|---:|---:|---:|")
ratios = {}
for k in sorted(set(chimera) | set(llama), key=lambda k: (order.get(k[0], 9), k[1], k[2])):
    c, l = chimera.get(k), llama.get(k)
    ratio = c / l if c and l else None
    ratios[k] = ratio
    fmt = lambda v: f"{v:,.1f}" if v else "–"
    print(f"| {k[0]} | {'all' if k[1] >= 99 else k[1]} | {k[2]} | {fmt(c)} | {fmt(l)} | {f'{ratio:.2f}x' if ratio else '–'} |")

print()
tests = os.path.join(out, "cuda-tests.txt")
if os.path.exists(tests):
    for line in open(tests):
        if line.startswith(("parity cuda", "graphs:", "test result", "test cuda::")):
            print(line.rstrip())
print()
full = lambda s: [k for k in ratios if k[0] == s and (k[1] >= 99 or (s == "270m" and k[1] == 19))]
for s in ("270m", "1b", "4b"):
    for t, target in (("tg128", 1.2), ("pp512", 1.0)):
        ks = [k for k in full(s) if k[2] == t]
        for k in ks:
            r = ratios[k]
            print(f"target {s} {t} full offload >= {target}x: {'met' if r and r >= target else 'NOT met'} ({r and round(r, 2)})")
for t in ("pp512", "tg128"):
    seq = [chimera.get(("270m", n, t)) for n in (0, 9, 18, 19)]
    rising = all(a is not None and b is not None and b >= a for a, b in zip(seq, seq[1:]))
    print(f"270m {t} rising with num_gpu 0, 9, 18, 19: {'yes' if rising else 'NO'} ({', '.join(f'{v:.0f}' if v else '–' for v in seq)})")
