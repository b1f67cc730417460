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
print(json.dumps(out))
