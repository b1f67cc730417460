"""Drives `chimera serve` with the real `ollama` Python package; prints one JSON object of what
it saw, for tests/serve.rs to check. usage: python3 ollama_client.py URL MODEL"""
import json
import sys

import ollama

url, model = sys.argv[1], sys.argv[2]
c = ollama.Client(host=url)
out = {}
opts = {"temperature": 0, "num_predict": 12}

r = c.generate(model=model, prompt="The capital of France is", options=opts)
out["generate"] = {"response": r.response, "done": r.done, "done_reason": r.done_reason,
                   "eval_count": r.eval_count, "prompt_eval_count": r.prompt_eval_count,
                   "total_duration": r.total_duration, "eval_duration": r.eval_duration,
                   "context": len(r.context or [])}
parts = [p.response for p in c.generate(model=model, prompt="The capital of France is", options=opts, stream=True)]
out["generate_stream"] = "".join(parts)
out["generate_stream_pieces"] = len(parts)

msgs = [{"role": "user", "content": "Write one word."}]
r = c.chat(model=model, messages=msgs, options=opts)
out["chat"] = {"role": r.message.role, "content": r.message.content, "done_reason": r.done_reason}
out["chat_stream"] = "".join(p.message.content for p in c.chat(model=model, messages=msgs, options=opts, stream=True))

r = c.generate(model=model, prompt="A JSON object describing a cat:", format="json", options={"temperature": 0, "num_predict": 64})
out["format_json"] = r.response
schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer", "maximum": 30}},
          "required": ["name", "age"], "additionalProperties": False}
r = c.generate(model=model, prompt="A cat as JSON:", format=schema, options={"temperature": 0, "num_predict": 96})
out["format_schema"] = r.response

out["list"] = [m.model for m in c.list().models]
s = c.show(model)
out["show"] = {"family": s.details.family, "format": s.details.format, "arch": (s.modelinfo or {}).get("general.architecture")}
out["ps"] = [m.model for m in c.ps().models]
try:
    c.generate(model="no-such-model:1b", prompt="x")
    out["missing"] = None
except ollama.ResponseError as e:
    out["missing"] = [e.status_code, e.error]
try:
    c.generate(model=model, prompt="x", options={"top_p": 7})
    out["bad_option"] = None
except ollama.ResponseError as e:
    out["bad_option"] = [e.status_code, e.error]
r = c.generate(model=model, prompt="The capital of France is", options={"temperature": 0, "num_predict": 3},
               logprobs=True, top_logprobs=2)
out["logprobs"] = [{"token": lp.token, "logprob": lp.logprob, "top": [t.token for t in lp.top_logprobs or []]}
                   for lp in r.logprobs or []]
out["logprobs_text"] = r.response
# streamed: each piece carries its own tokens' log-probabilities
parts = list(c.generate(model=model, prompt="The capital of France is", options={"temperature": 0, "num_predict": 3},
                        logprobs=True, top_logprobs=2, stream=True))
out["logprobs_stream"] = [[lp.token for lp in p.logprobs or []] for p in parts if not p.done]
out["logprobs_stream_text"] = [p.response for p in parts if not p.done]


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


# A base model answers as the conversation before it did: one earlier call shows it how.
shot = [{"role": "user", "content": "What is 1 plus 2?"},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "add", "arguments": {"a": 1, "b": 2}}}]},
        {"role": "user", "content": "What is 3 plus 4?"}]
r = c.chat(model=model, messages=shot, tools=[add], options={"temperature": 0, "num_predict": 40})
calls = r.message.tool_calls or []
out["tool_calls"] = [{"name": t.function.name, "arguments": dict(t.function.arguments)} for t in calls]
if calls:
    result = add(**calls[0].function.arguments)
    msgs = shot + [r.message, {"role": "tool", "content": str(result), "tool_name": "add"}]
    r2 = c.chat(model=model, messages=msgs, tools=[add], options={"temperature": 0, "num_predict": 16})
    out["after_tool"] = {"done": r2.done, "prompt_eval_count": r2.prompt_eval_count}
parts = list(c.chat(model=model, messages=shot, tools=[add], options={"temperature": 0, "num_predict": 40}, stream=True))
out["tool_calls_stream"] = [t.function.name for p in parts for t in (p.message.tool_calls or [])]
out["tool_calls_stream_text"] = "".join(p.message.content or "" for p in parts)

e = c.embed(model=model, input=["The sky is blue.", "Grass is green."])
out["embed"] = {"n": len(e.embeddings), "dims": len(e.embeddings[0]), "prompt_eval_count": e.prompt_eval_count,
                "norm": sum(x * x for x in e.embeddings[0])}
e = c.embed(model=model, input="The sky is blue.", dimensions=64)
out["embed_64"] = len(e.embeddings[0])
out["embeddings_legacy"] = len(c.embeddings(model=model, prompt="The sky is blue.").embedding)
try:
    c.embed(model=model, input="word " * 5000, truncate=False, options={"num_ctx": 512})
    out["embed_too_long"] = None
except ollama.ResponseError as e:
    out["embed_too_long"] = [e.status_code, e.error]
try:
    c.chat(model=model, messages=[{"role": "user", "content": "Hi"}], think=True)
    out["think"] = None
except ollama.ResponseError as e:
    out["think"] = [e.status_code, e.error]
out["version"] = c._client.get("/api/version").json()
print(json.dumps(out))
