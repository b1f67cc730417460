#!/usr/bin/env python3
"""Load generator for OpenAI-compatible servers (chimera serve, llama-server): C concurrent
clients each stream completions of N tokens back to back; prints one JSON line per level with
aggregate decode tok/s, p50/p95 time to first token and errors.

usage: serve-load.py URL MODEL --levels 1,2,4,8 [--requests-per-client 3] [--tokens 128]
       serve-load.py URL MODEL --soak 1000 --clients 16   (many requests; errors counted)
Needs httpx (installed with the ollama/openai packages)."""
import argparse
import asyncio
import json
import statistics
import time

import httpx

PROMPTS = [
    "The history of the lighthouse on the northern cape begins",
    "In the quiet village at the edge of the forest, the baker",
    "Benchmark results are only as good as the method behind them, because",
    "The old map showed a river where there was now a road, and",
    "Every morning the train left the station at seven, carrying",
    "She opened the letter slowly, knowing that the news inside",
    "The committee met on Tuesday to discuss the budget for",
    "Far below the surface of the ocean, strange creatures",
]


async def one(client, url, model, prompt, tokens, seed):
    body = {"model": model, "prompt": prompt, "max_tokens": tokens, "temperature": 0.8, "seed": seed,
            "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    ttft, chunks, usage = None, 0, None
    async with client.stream("POST", url + "/v1/completions", json=body, timeout=600) as r:
        if r.status_code != 200:
            await r.aread()
            raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            c = json.loads(line[6:])
            if c.get("usage"):
                usage = c["usage"].get("completion_tokens")
            for ch in c.get("choices") or []:
                if ch.get("text"):
                    chunks += 1
                    if ttft is None:
                        ttft = time.perf_counter() - t0
    return ttft or 0.0, usage if usage is not None else chunks, time.perf_counter() - t0


async def level(url, model, clients, per_client, tokens, total=None):
    """`clients` workers; each sends `per_client` requests, or `total` requests are shared out."""
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(limits=limits) as client:
        results, errors = [], []

        async def worker(w):
            n = per_client if total is None else total // clients + (w < total % clients)
            for k in range(n):
                try:
                    results.append(await one(client, url, model, PROMPTS[(w + k) % len(PROMPTS)], tokens, 1000 * w + k))
                except Exception as e:  # counted, not fatal
                    errors.append(str(e))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(clients)))
        wall = time.perf_counter() - t0
    toks = sum(r[1] for r in results)
    ttfts = sorted(r[0] for r in results) or [0.0]
    p95 = ttfts[min(len(ttfts) - 1, int(round(0.95 * (len(ttfts) - 1))))]
    return {"clients": clients, "requests": len(results), "errors": len(errors), "tokens": toks, "wall_s": round(wall, 3),
            "agg_tok_s": round(toks / wall, 2), "ttft_p50_ms": round(statistics.median(ttfts) * 1e3, 1), "ttft_p95_ms": round(p95 * 1e3, 1),
            "first_error": errors[0] if errors else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("model")
    ap.add_argument("--levels", default="1,2,4,8")
    ap.add_argument("--requests-per-client", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--soak", type=int, default=0)
    ap.add_argument("--clients", type=int, default=16)
    a = ap.parse_args()
    if a.soak:
        print(json.dumps(asyncio.run(level(a.url, a.model, a.clients, 0, 16, total=a.soak))), flush=True)
        return
    for c in [int(x) for x in a.levels.split(",")]:
        print(json.dumps(asyncio.run(level(a.url, a.model, c, a.requests_per_client, a.tokens))), flush=True)


if __name__ == "__main__":
    main()
