"""Drives `chimera serve` with LangChain's `langchain-ollama` (ChatOllama, OllamaEmbeddings);
prints one JSON object of what it saw, for tests/serve.rs to check.
usage: python3 langchain_client.py URL MODEL"""
import json
import sys

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_ollama import ChatOllama, OllamaEmbeddings

url, model = sys.argv[1], sys.argv[2]
out = {}
llm = ChatOllama(model=model, base_url=url, temperature=0, num_predict=12)

r = llm.invoke("The capital of France is")
out["invoke"] = {"content": r.content, "done_reason": r.response_metadata.get("done_reason"),
                 "output_tokens": (r.usage_metadata or {}).get("output_tokens")}
out["stream"] = "".join(ch.content for ch in llm.stream("The capital of France is"))

j = ChatOllama(model=model, base_url=url, temperature=0, num_predict=64, format="json")
out["json_mode"] = j.invoke("A cat as JSON:").content

schema = {"title": "Cat", "description": "A cat.", "type": "object",
          "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer", "maximum": 30}},
          "required": ["name", "age"]}
s = ChatOllama(model=model, base_url=url, temperature=0, num_predict=96).with_structured_output(schema, method="json_schema")
out["structured"] = s.invoke("A cat:")


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


# A base model answers as the conversation before it did: one earlier call shows it how.
shot = [HumanMessage("What is 1 plus 2?"),
        AIMessage("", tool_calls=[{"name": "add", "args": {"a": 1, "b": 2}, "id": "call_1"}])]
bound = ChatOllama(model=model, base_url=url, temperature=0, num_predict=40).bind_tools([add])
msgs = shot + [HumanMessage("What is 3 plus 4?")]
r = bound.invoke(msgs)
out["tool_calls"] = [{"name": c["name"], "args": c["args"]} for c in r.tool_calls]
if r.tool_calls:
    call = r.tool_calls[0]
    result = add.invoke(call["args"])
    r2 = bound.invoke(msgs + [r, ToolMessage(str(result), tool_call_id=call.get("id") or "call_2")])
    out["after_tool"] = {"content": r2.content, "tool_calls": len(r2.tool_calls),
                         "prompt_tokens": (r2.usage_metadata or {}).get("input_tokens")}

e = OllamaEmbeddings(model=model, base_url=url)
docs = e.embed_documents(["The sky is blue.", "Grass is green."])
q = e.embed_query("What colour is the sky?")
out["embeddings"] = {"docs": len(docs), "dims": len(q), "norm": sum(x * x for x in q)}
print(json.dumps(out))
