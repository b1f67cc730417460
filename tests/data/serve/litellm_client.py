"""Drives `chimera serve` with LiteLLM's Ollama providers (completion, streaming, embedding);
prints one JSON object of what it saw, for tests/serve.rs to check.
usage: python3 litellm_client.py URL MODEL"""
import json
import os
import sys

# offline: LiteLLM's bundled catalogs, no fetches of its own, no telemetry
os.environ["LITELLM_OFFLINE_MODE"] = "true"
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["LITELLM_TELEMETRY"] = "False"
import litellm  # noqa: E402

url, model = sys.argv[1], sys.argv[2]
out = {}
msgs = [{"role": "user", "content": "The capital of France is"}]

r = litellm.completion(model="ollama_chat/" + model, api_base=url, messages=msgs, max_tokens=8, temperature=0)
out["chat"] = {"content": r.choices[0].message.content, "finish_reason": r.choices[0].finish_reason,
               "completion_tokens": r.usage.completion_tokens}
parts = litellm.completion(model="ollama_chat/" + model, api_base=url, messages=msgs, max_tokens=8, temperature=0, stream=True)
out["chat_stream"] = "".join((p.choices[0].delta.content or "") for p in parts)
r = litellm.completion(model="ollama/" + model, api_base=url, messages=msgs, max_tokens=8, temperature=0)
out["generate"] = r.choices[0].message.content
r = litellm.completion(model="openai/" + model, api_base=url + "/v1", api_key="unused", messages=msgs, max_tokens=8, temperature=0)
out["openai"] = r.choices[0].message.content
e = litellm.embedding(model="ollama/" + model, api_base=url, input=["The sky is blue.", "Grass is green."])
out["embedding"] = {"n": len(e.data), "dims": len(e.data[0]["embedding"])}
e = litellm.embedding(model="openai/" + model, api_base=url + "/v1", api_key="unused", input=["The sky is blue."])
out["embedding_openai"] = {"n": len(e.data), "dims": len(e.data[0]["embedding"])}
print(json.dumps(out))
