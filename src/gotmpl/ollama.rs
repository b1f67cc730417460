//! How Ollama runs a prompt template (its `template.Execute`): a template that reads
//! `.Messages` gets the whole conversation (consecutive turns of one role merged, the system
//! messages joined as `.System`) and the tools; an older template that reads `.System`,
//! `.Prompt` and `.Response` runs once per exchange, and the last run stops where the model's
//! answer would be printed.

use super::{Arg, Node, Pipe, Template};
use crate::error::Result;
use serde_json::{json, Value};

/// Stands where the last exchange's answer goes: the text is cut there (Ollama cuts the
/// template's nodes after `{{ .Response }}` instead; the two differ only for a template that
/// tests `.Response` before printing it).
const CUT: &str = "\u{e000}chimera-response\u{e000}";

/// The prompt for `messages` (`{"role", "content", …}` objects, Ollama's message fields) and
/// `tools` (Ollama's tool objects) under `t`.
pub fn render(t: &Template, messages: &[Value], tools: Option<&Value>) -> Result<String> {
    let (system, msgs) = collate(messages);
    if t.uses("messages") || t.uses("document") {
        return t.render(&json!({
            "System": system, "Messages": msgs, "Tools": tools.cloned().unwrap_or(Value::Null),
            "Response": "", "Think": false, "IsThinkSet": false,
            "Query": "", "Document": "", "Instruction": "",
        }));
    }
    let mut out = String::new();
    let (mut system, mut prompt, mut response) = (String::new(), String::new(), String::new());
    for m in &msgs {
        let content = text(m, "content").to_string();
        let due = match text(m, "role") {
            "system" => !prompt.is_empty() || !response.is_empty(),
            "user" => !response.is_empty(),
            _ => false,
        };
        if due {
            out.push_str(&exchange(t, &system, &prompt, &response)?);
            (system, prompt, response) = Default::default();
        }
        match text(m, "role") {
            "system" => system = content,
            "user" => prompt = content,
            "assistant" => response = content,
            _ => {}
        }
    }
    let last = exchange(t, &system, &prompt, &(response + CUT))?;
    out.push_str(last.split(CUT).next().unwrap_or(""));
    Ok(out)
}

/// One run of an older template; one that never prints `.Response` gets it appended (Ollama
/// appends `{{ .Response }}` to such templates).
fn exchange(t: &Template, system: &str, prompt: &str, response: &str) -> Result<String> {
    let mut s = t.render(&json!({
        "System": system, "Prompt": prompt, "Response": response,
        "Think": false, "IsThinkSet": false,
    }))?;
    if !t.uses("response") {
        s.push_str(response);
    }
    Ok(s)
}

fn text<'a>(m: &'a Value, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Consecutive messages of one role merged (tool results kept apart), and the system
/// messages joined.
fn collate(messages: &[Value]) -> (String, Vec<Value>) {
    let mut system = vec![];
    let mut out: Vec<Value> = vec![];
    for m in messages {
        let role = text(m, "role");
        if role == "system" {
            system.push(text(m, "content").to_string());
        }
        match out.last_mut() {
            Some(prev) if text(prev, "role") == role && role != "tool" => {
                let merged = format!("{}\n\n{}", text(prev, "content"), text(m, "content"));
                prev["content"] = Value::String(merged);
            }
            _ => out.push(m.clone()),
        }
    }
    (system.join("\n\n"), out)
}

/// Ollama's tool-call tag of a template (its tools/template.go `parseTag`): the first text that
/// is not only whitespace inside the first `{{ if }}` whose pipeline reads a `.ToolCalls` field,
/// cut before any `{` and trimmed; `{` when that leaves nothing. None when the template has no
/// such block (Ollama then looks for bare JSON objects; chimera keeps its own call format).
pub fn tool_call_tag(t: &Template) -> Option<String> {
    let block = tool_calls_if(&t.root)?;
    let text = first_text(block).unwrap_or("");
    let tag = text.replace("\r\n", "\n");
    let tag = tag.split('{').next().unwrap_or("").trim();
    Some(if tag.is_empty() { "{".to_string() } else { tag.to_string() })
}

/// The body of the first `if` reading `.ToolCalls` (depth first through if, range and with).
fn tool_calls_if(nodes: &[Node]) -> Option<&[Node]> {
    let reads = |p: &Pipe| {
        p.cmds
            .iter()
            .flatten()
            .any(|a| matches!(a, Arg::Field(f) if f.iter().any(|x| x == "ToolCalls")))
    };
    for n in nodes {
        match n {
            Node::If(p, body, _) if reads(p) => return Some(body),
            Node::If(_, body, other) | Node::Range(_, body, other) | Node::With(_, body, other) => {
                if let Some(b) = tool_calls_if(body).or_else(|| tool_calls_if(other)) {
                    return Some(b);
                }
            }
            _ => {}
        }
    }
    None
}

/// The first text that is not only whitespace, not looking past a block that has none.
fn first_text(nodes: &[Node]) -> Option<&str> {
    for n in nodes {
        match n {
            Node::Text(s) if s.trim().is_empty() => {}
            Node::Text(s) => return Some(s),
            Node::If(_, body, other) | Node::Range(_, body, other) | Node::With(_, body, other) => {
                return first_text(body).or_else(|| first_text(other));
            }
            _ => {}
        }
    }
    None
}
