"""Drives `chimera serve` with the real `openai` Python package; prints one JSON object of what
it saw, for tests/serve.rs to check. usage: python3 openai_client.py URL MODEL"""
import base64
import json
import struct
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
r = c.chat.completions.create(model=model, messages=msgs, max_tokens=6, temperature=1, seed=7, n=2)
out["n2"] = {"indexes": [ch.index for ch in r.choices], "completion_tokens": r.usage.completion_tokens,
             "distinct": len({ch.message.content for ch in r.choices})}
chunks = list(c.chat.completions.create(model=model, messages=msgs, max_tokens=6, temperature=1, seed=7, n=2, stream=True))
out["n2_stream"] = sorted({ch.choices[0].index for ch in chunks if ch.choices})
r = c.chat.completions.create(model=model, messages=msgs, max_tokens=3, temperature=0, logprobs=True, top_logprobs=2)
out["logprobs"] = [{"token": t.token, "logprob": t.logprob, "top": len(t.top_logprobs)} for t in r.choices[0].logprobs.content]
out["logprobs_text"] = r.choices[0].message.content
parts = [ch for ch in c.chat.completions.create(model=model, messages=msgs, max_tokens=3, temperature=0, logprobs=True,
                                                  top_logprobs=2, stream=True) if ch.choices and ch.choices[0].delta.content]
out["logprobs_stream"] = [[t.token for t in p.choices[0].logprobs.content] for p in parts]
out["logprobs_stream_text"] = [p.choices[0].delta.content for p in parts]
r = c.completions.create(model=model, prompt="The capital of France is", max_tokens=3, temperature=0, echo=True, logprobs=2)
out["echo"] = {"text": r.choices[0].text, "tokens": r.choices[0].logprobs.tokens}
# the same streamed: the scored prompt comes first, then the pieces; joined, they are the whole
def joined(chunks):
    got = {"text": "", "tokens": [], "logprobs": []}
    for ch in chunks:
        if not ch.choices:
            continue
        got["text"] += ch.choices[0].text
        lp = ch.choices[0].logprobs
        if lp and lp.tokens:
            got["tokens"] += lp.tokens
            got["logprobs"] += lp.token_logprobs
    return got
out["echo_stream"] = [
    [{"text": w.choices[0].text, "tokens": w.choices[0].logprobs.tokens, "logprobs": w.choices[0].logprobs.token_logprobs},
     joined(c.completions.create(model=model, prompt="The capital of France is", max_tokens=k, temperature=0,
                                 echo=True, logprobs=1, stream=True))]
    for k in (3, 0)
    for w in [c.completions.create(model=model, prompt="The capital of France is", max_tokens=k, temperature=0,
                                   echo=True, logprobs=1)]]
# lm-evaluation-harness's loglikelihood: token ids, echo, logprobs, max_tokens 0; the prompt's
# scores agree with the scores the same tokens had when generated
g = c.completions.create(model=model, prompt="The capital of France is", max_tokens=3, temperature=0, logprobs=1)
scored = c.completions.create(model=model, prompt="The capital of France is" + g.choices[0].text, max_tokens=0,
                              temperature=0, echo=True, logprobs=1)
ids = c.completions.create(model=model, prompt=[2, 818, 5279, 529, 7001, 563], max_tokens=0, echo=True, logprobs=1)
out["score"] = {"generated": g.choices[0].logprobs.token_logprobs, "gen_tokens": g.choices[0].logprobs.tokens,
                "scored": scored.choices[0].logprobs.token_logprobs, "tokens": scored.choices[0].logprobs.tokens,
                "text": scored.choices[0].text, "completion_tokens": scored.usage.completion_tokens,
                "ids_text": ids.choices[0].text, "ids_logprobs": ids.choices[0].logprobs.token_logprobs}
weather = [{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
ask = [{"role": "developer", "content": "Answer briefly."}, {"role": "user", "content": "What is the weather in Paris?"}]
r = c.chat.completions.create(model=model, messages=ask, tools=weather, tool_choice="required", max_tokens=48, temperature=0)
tc = r.choices[0].message.tool_calls or []
out["tools"] = {"finish": r.choices[0].finish_reason, "calls": [[t.function.name, json.loads(t.function.arguments)] for t in tc]}
if tc:
    back = ask + [r.choices[0].message, {"role": "tool", "tool_call_id": tc[0].id, "content": "sunny, 21 C"}]
    r2 = c.chat.completions.create(model=model, messages=back, tools=weather, tool_choice="none", max_tokens=8, temperature=0)
    out["after_tool"] = {"finish": r2.choices[0].finish_reason, "text": r2.choices[0].message.content}
chunks = list(c.chat.completions.create(model=model, messages=ask, tools=weather, tool_choice={"type": "function", "function": {"name": "get_weather"}},
                                        max_tokens=48, temperature=0, stream=True))
out["tools_stream"] = {"names": [t.function.name for ch in chunks if ch.choices for t in (ch.choices[0].delta.tool_calls or [])],
                       "finish": [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1]}
e = c.embeddings.create(model=model, input=["The sky is blue.", "Grass is green."])
out["embeddings"] = {"n": len(e.data), "dims": len(e.data[0].embedding), "prompt_tokens": e.usage.prompt_tokens}
f = c.embeddings.create(model=model, input="The sky is blue.", encoding_format="float").data[0].embedding
b = c.embeddings.with_raw_response.create(model=model, input="The sky is blue.", encoding_format="base64").parse()
raw = b.data[0].embedding
vals = list(struct.unpack("<%df" % (len(base64.b64decode(raw)) // 4), base64.b64decode(raw))) if isinstance(raw, str) else raw
out["embeddings_base64_equal"] = max(abs(x - y) for x, y in zip(f, vals)) < 1e-6 and len(vals) == len(f)
out["embeddings_dims"] = len(c.embeddings.create(model=model, input="The sky is blue.", dimensions=32).data[0].embedding)
out["retrieve"] = c.models.retrieve(model).id
try:
    c.models.retrieve("no-such-model:1b")
    out["retrieve_missing"] = None
except openai.NotFoundError as e:
    out["retrieve_missing"] = [e.status_code, e.body.get("message") if isinstance(e.body, dict) else str(e.body)]
try:
    c.chat.completions.create(model=model, messages=msgs, n=9)
    out["bad_n"] = None
except openai.BadRequestError as e:
    out["bad_n"] = [e.status_code, e.body.get("message") if isinstance(e.body, dict) else str(e.body)]
r = c.responses.create(model=model, input="The capital of France is", max_output_tokens=8, temperature=0)
out["responses"] = {"text": r.output_text, "status": r.status, "output_tokens": r.usage.output_tokens}
with c.responses.stream(model=model, instructions="Be brief.", input=[{"role": "user", "content": "The capital of France is"}],
                        max_output_tokens=8, temperature=0) as st:
    kinds = [e.type for e in st]
    final = st.get_final_response()
out["responses_stream"] = {"first": kinds[0], "last": kinds[-1], "deltas": kinds.count("response.output_text.delta"),
                           "text": final.output_text}
print(json.dumps(out))
