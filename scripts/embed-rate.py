#!/usr/bin/env python3
"""Embedding throughput of a running Ollama-compatible server (chimera serve, ollama serve):
N inputs in one /api/embed request against the same N inputs as N single requests sent one
after another, alternating the two REPS times; prints one JSON line per input length with the
median seconds of each, the ratio, and the worst cosine between a batched and a single vector
(the same inputs must give the same vectors either way).

usage: embed-rate.py URL MODEL [--inputs 32] [--reps 5] [--words 4,20]
Standard library only (the GPU machine has no httpx)."""
import argparse
import json
import math
import statistics
import time
import urllib.request

WORDS = ("river lamp orange seven quiet engine paper window forest signal copper valley "
         "morning harbor thunder pencil garden silver bridge candle winter market planet "
         "meadow rocket button castle violin desert marble").split()


def post(url, body):
    req = urllib.request.Request(url + "/api/embed", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def inputs(n, words):
    # distinct texts of `words` words each: no two inputs share a prefix cache or a vector
    return [" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(words)) + f" {i}"
            for i in range(n)]


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("model")
    ap.add_argument("--inputs", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--words", default="4,20")
    a = ap.parse_args()
    post(a.url, {"model": a.model, "input": "warm up"})  # the load is not timed
    for words in (int(w) for w in a.words.split(",")):
        texts = inputs(a.inputs, words)
        batched, single, worst, tokens = [], [], 1.0, 0
        for _ in range(a.reps):
            t0 = time.perf_counter()
            one = post(a.url, {"model": a.model, "input": texts})
            batched.append(time.perf_counter() - t0)
            tokens = one.get("prompt_eval_count", 0)
            t0 = time.perf_counter()
            each = [post(a.url, {"model": a.model, "input": t})["embeddings"][0] for t in texts]
            single.append(time.perf_counter() - t0)
            worst = min([worst] + [cosine(x, y) for x, y in zip(one["embeddings"], each)])
        b, s = statistics.median(batched), statistics.median(single)
        print(json.dumps({"model": a.model, "inputs": a.inputs, "words": words,
                          "prompt_tokens": tokens, "batched_s": round(b, 4),
                          "single_s": round(s, 4), "ratio": round(s / b, 2),
                          "worst_cosine": round(worst, 6), "reps": a.reps}), flush=True)


if __name__ == "__main__":
    main()
