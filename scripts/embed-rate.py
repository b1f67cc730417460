#!/usr/bin/env python3
"""Embedding throughput of a running Ollama-compatible server (chimera serve, ollama serve):
N inputs in one /api/embed request against the same N inputs as N single requests sent one
after another, alternating the two REPS times; prints one JSON line per input length with the
median seconds of each, the ratio, and the worst cosine between a batched and a single vector
(the same inputs must give the same vectors either way).

usage: embed-rate.py URL MODEL [--inputs 32] [--reps 5] [--words 4,20 | --tokens 7,23]
--tokens sends token ids through /v1/embeddings instead (BOS then distinct ids), so that a model
whose vocabulary is not the real one (a synthetic file) sees inputs as long as the real
tokenizer makes them (4 and 20 words are 7 and 23 tokens with gemma3's).
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


def post(url, body, path="/api/embed"):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def embed(url, model, inp, ids):
    """The vectors of one request and its prompt tokens: /api/embed for text, /v1/embeddings
    for token ids."""
    if not ids:
        r = post(url, {"model": model, "input": inp})
        return r["embeddings"], r.get("prompt_eval_count", 0)
    r = post(url, {"model": model, "input": inp}, "/v1/embeddings")
    return [d["embedding"] for d in r["data"]], r["usage"]["prompt_tokens"]


def token_inputs(n, tokens):
    # BOS (2), then ids no two inputs share at the same place
    return [[2] + [1000 + (i * 131 + j * 17) % 50000 for j in range(tokens - 1)] for i in range(n)]


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
    ap.add_argument("--tokens", help="token-id inputs of these lengths instead of words")
    a = ap.parse_args()
    post(a.url, {"model": a.model, "input": "warm up"})  # the load is not timed
    sizes = a.tokens or a.words
    for size in (int(w) for w in sizes.split(",")):
        texts = token_inputs(a.inputs, size) if a.tokens else inputs(a.inputs, size)
        batched, single, worst, tokens = [], [], 1.0, 0
        for _ in range(a.reps):
            t0 = time.perf_counter()
            one, tokens = embed(a.url, a.model, texts, a.tokens)
            batched.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            each = [embed(a.url, a.model, [t] if a.tokens else t, a.tokens)[0][0] for t in texts]
            single.append(time.perf_counter() - t0)
            worst = min([worst] + [cosine(x, y) for x, y in zip(one, each)])
        b, s = statistics.median(batched), statistics.median(single)
        print(json.dumps({"model": a.model, "inputs": a.inputs,
                          ("tokens" if a.tokens else "words"): size,
                          "prompt_tokens": tokens, "batched_s": round(b, 4),
                          "single_s": round(s, 4), "ratio": round(s / b, 2),
                          "worst_cosine": round(worst, 6), "reps": a.reps}), flush=True)


if __name__ == "__main__":
    main()
