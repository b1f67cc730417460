"""Drives `chimera serve`'s model management with the real `ollama` Python package (create from a
model and from an uploaded blob, a quantization, show, copy, delete, push); prints one JSON object
of what it saw, for tests/clients.rs to check. usage: python3 ollama_manage.py URL MODEL GGUF"""
import json
import sys

import ollama

url, model, gguf = sys.argv[1], sys.argv[2], sys.argv[3]
c = ollama.Client(host=url)
out = {}


def err(f):
    try:
        f()
        return None
    except ollama.ResponseError as e:
        return [e.status_code, e.error]


out["create"] = c.create(model="terse", from_=model, parameters={"num_predict": 3, "temperature": 0},
                         system="You are terse.", stream=False).status
out["list"] = sorted(m.model for m in c.list().models)
s = c.show("terse")
out["show"] = {"modelfile": s.modelfile, "parameters": s.parameters}
r = c.generate(model="terse", prompt="The capital of France is")
out["defaults"] = r.eval_count
out["override"] = c.generate(model="terse", prompt="The capital of France is", options={"num_predict": 5}).eval_count
out["copy"] = c.copy("terse", "terse2").status
out["after_copy"] = sorted(m.model for m in c.list().models)
out["delete"] = c.delete("terse2").status
out["delete_missing"] = err(lambda: c.delete("no-such-model"))
digest = c.create_blob(gguf)
out["blob"] = digest
out["from_blob"] = c.create(model="fromblob", files={"model.gguf": digest}, stream=False).status
out["from_blob_generates"] = c.generate(model="fromblob", prompt="Hi", options={"num_predict": 2}).done
out["quantize"] = [p.status for p in c.create(model="q8", from_=model, quantize="q8_0", stream=True)]
out["quantized_generates"] = c.generate(model="q8", prompt="Hi", options={"num_predict": 2}).done
out["push"] = err(lambda: c.push("terse"))
out["template"] = err(lambda: c.create(model="bad", from_=model, template="{{ .Prompt }}", stream=False))
out["bad_parameter"] = err(lambda: c.create(model="bad", from_=model, parameters={"top_p": 7}, stream=False))
out["missing_blob"] = err(lambda: c.create(model="bad", files={"x.gguf": "sha256:" + "0" * 64}, stream=False))
for name in ["terse", "fromblob", "q8"]:
    c.delete(name)
out["final"] = sorted(m.model for m in c.list().models)
print(json.dumps(out))
