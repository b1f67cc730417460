"""Drives `chimera serve` with the real `openai` Python package; prints one JSON object of what
it saw, for tests/serve.rs to check. usage: python3 openai_client.py URL MODEL"""
import json
import sys

import openai

url, model = sys.argv[1], sys.argv[2]
c = openai.OpenAI(base_url=url + "/v1", api_key="unused")
out = {}
msgs = [{"role": "user", "content": "Write one word."}]

r = c.chat.completions.create(model=model, messages=msgs, max_tokens=8, temperature=0)
out["chat"] = {"content": r.choices[0].message.content, "role": r.choices[0].message.role,
               "finish_reason": r.choices[0].finish_reason, "usage": [r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens]}
chunks = list(c.chat.completions.create(model=model, messages=msgs, max_tokens=8, temperature=0, stream=True,
                                        stream_options={"include_usage": True}))
out["chat_stream"] = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
out["chat_stream_finish"] = [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1]
out["chat_stream_usage"] = [ch.usage.completion_tokens for ch in chunks if ch.usage]
r = c.chat.completions.create(model=model, messages=[{"role": "user", "content": "A cat as JSON:"}], max_tokens=48,
                              temperature=0, response_format={"type": "json_object"})
out["json_object"] = r.choices[0].message.content
r = c.completions.create(model=model, prompt="The capital of France is", max_tokens=6, temperature=0)
out["completion"] = r.choices[0].text
out["models"] = [m.id for m in c.models.list().data]
try:
    c.chat.completions.create(model="no-such-model:1b", messages=msgs)
    out["missing"] = None
except openai.NotFoundError as e:
    out["missing"] = e.status_code
print(json.dumps(out))
