"""Drives `chimera serve`'s model management with the real `ollama` Python package (create from a
model and from an uploaded blob, a quantization, a LoRA adapter, a safetensors folder uploaded
file by file, show, copy, delete, push); prints one JSON object of what it saw, for
tests/clients.rs to check.
usage: python3 ollama_manage.py URL MODEL GGUF ADAPTER_GGUF HF_FOLDER"""
import json
import os
import sys

import ollama

url, model, gguf, adapter, folder = sys.argv[1:6]
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
# a TEMPLATE (Ollama's Go template) and MESSAGEs: the prompt is the template's text, token for token
TURNS = ('{{- range .Messages }}<start_of_turn>{{ if eq .Role "assistant" }}model{{ else }}{{ .Role }}{{ end }}\n'
         '{{ .Content }}<end_of_turn>\n{{ end }}<start_of_turn>model\n')
out["templated"] = c.create(model="turns", from_=model, template=TURNS, stream=False,
                            messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]).status
greedy = {"num_predict": 2, "temperature": 0}
made = c.generate(model="turns", prompt="Bye", options=greedy)
text = ("<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n")
out["templated_same"] = made.context == c.generate(model=model, prompt=text, raw=True, options=greedy).context
s = c.show("turns")
out["templated_show"] = {"template": s.template, "modelfile": s.modelfile}
TOOLS = ('{{ range .Tools }}T:{{ .Function.Name }}\n{{ end }}{{ range .Messages }}{{ .Role }}:'
         '{{ if .ToolCalls }}{{ range .ToolCalls }}{{ .Function.Name }}{{ .Function.Arguments }}{{ end }}'
         '{{ else }}{{ .Content }}{{ end }}\n{{ end }}')
c.create(model="tooled", from_=model, template=TOOLS, stream=False)
add = {"type": "function", "function": {"name": "add", "description": "Adds.", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}
# the text given raw first, then unloaded, so that the chat evaluates its whole prompt
raw = c.generate(model=model, prompt='T:add\nuser:Hi\nassistant:add{"a":1}\ntool:2\n', raw=True,
                 options=greedy, keep_alive=0)
turns = [{"role": "user", "content": "Hi"},
         {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "add", "arguments": {"a": 1}}}]},
         {"role": "tool", "content": "2", "tool_name": "add"}]
r = c.chat(model="tooled", messages=turns, tools=[add], options=greedy)
out["tools_in_template"] = [r.prompt_eval_count, len(raw.context) - raw.eval_count]
# a template whose calls are "<tool_call>" and an object with "parameters": the model calls in that
# format (the raw answer, read back from the logprobs' tokens, starts with the tag)
OWN = ('{{ range .Tools }}T:{{ .Function.Name }}\n{{ end }}{{ range .Messages }}{{ .Role }}:'
       '{{ if .ToolCalls }}{{ range .ToolCalls }}<tool_call>\n{"name": "{{ .Function.Name }}", "parameters": '
       '{{ json .Function.Arguments }}}\n</tool_call>{{ end }}{{ else }}{{ .Content }}{{ end }}\n{{ end }}assistant:')
c.create(model="ownfmt", from_=model, template=OWN, stream=False)
import openai
o = openai.OpenAI(base_url=url + "/v1", api_key="unused")
weather = [{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
r = o.chat.completions.create(model="ownfmt", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=weather,
                              tool_choice="required", max_tokens=48, temperature=0, logprobs=True)
tc = r.choices[0].message.tool_calls or []
out["own_format"] = {"finish": r.choices[0].finish_reason, "calls": [[t.function.name, json.loads(t.function.arguments)] for t in tc],
                     "raw": "".join(t.token for t in r.choices[0].logprobs.content)}
out["template"] = err(lambda: c.create(model="bad", from_=model, template="{{ .Prompt ", stream=False))
out["message_role"] = err(lambda: c.create(model="bad", from_=model, messages=[{"role": "robot", "content": "x"}], stream=False))
out["bad_parameter"] = err(lambda: c.create(model="bad", from_=model, parameters={"top_p": 7}, stream=False))
out["missing_blob"] = err(lambda: c.create(model="bad", files={"x.gguf": "sha256:" + "0" * 64}, stream=False))
# a LoRA adapter uploaded as a blob, as Ollama's CLI sends a Modelfile's ADAPTER
ad = c.create_blob(adapter)
out["lora_create"] = c.create(model="tuned", from_=model, adapters={"adapter.gguf": ad}, stream=False).status
g6 = {"num_predict": 6, "temperature": 0}
out["lora_response"] = c.generate(model="tuned", prompt="The capital of France is", raw=True, options=g6).response
out["base_response"] = c.generate(model=model, prompt="The capital of France is", raw=True, options=g6).response
out["lora_show"] = c.show("tuned").modelfile
out["lora_not_adapter"] = err(lambda: c.create(model="bad", from_=model, adapters={"m.gguf": digest}, stream=False))
# a Hugging Face folder uploaded file by file, as Ollama's CLI imports safetensors
files = {n: c.create_blob(os.path.join(folder, n)) for n in sorted(os.listdir(folder))}
no_tok = {k: v for k, v in files.items() if k != "tokenizer.json"}
out["import_missing"] = err(lambda: c.create(model="bad", files=no_tok, stream=False))
no_spm = {k: v for k, v in files.items() if k != "tokenizer.model"}
out["import_quantize_no_spm"] = err(lambda: c.create(model="bad", files=no_spm, quantize="q8_0", stream=False))
out["import_quantize"] = c.create(model="q8import", files=files, quantize="q8_0", stream=False).status
d = c.show("q8import").details
out["import_quantize_details"] = [d.format, d.quantization_level]
out["import_quantize_response"] = c.generate(model="q8import", prompt="hi ab", raw=True,
                                             options={"num_predict": 3, "temperature": 0}).response
out["import"] = c.create(model="imported", files=files, stream=False).status
g3 = {"num_predict": 3, "temperature": 0}
out["import_response"] = c.generate(model="imported", prompt="hi ab", raw=True, options=g3).response
d = c.show("imported").details
out["import_details"] = [d.format, d.quantization_level]
out["import_listed"] = "imported:latest" in [m.model for m in c.list().models]
for name in ["terse", "fromblob", "q8", "turns", "tooled", "tuned", "ownfmt", "imported", "q8import"]:
    c.delete(name)
out["final"] = sorted(m.model for m in c.list().models)
print(json.dumps(out))
