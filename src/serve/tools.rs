//! Tool calling for a model whose template has no tools (gemma3), as llama.cpp's server does it
//! for such templates: the tools are described in the system turn, and the answer is decoded under
//! a grammar that admits either plain text or one call `{"name": …, "arguments": …}` whose
//! arguments match that tool's JSON schema. A call comes back as Ollama's `message.tool_calls`
//! or OpenAI's `tool_calls`; tool results go back into the prompt as turns.

use super::api::ApiError;
use crate::chat::Message;
use crate::constraint::Grammar;
use serde_json::{json, Map, Value};

/// One function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

/// What the model must do with the tools (OpenAI's `tool_choice`; Ollama's is always auto).
#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    Auto,
    None,
    Required,
    Named(String),
}

/// The tools of a request and the choice.
#[derive(Debug, Clone, PartialEq)]
pub struct Tools {
    pub tools: Vec<Tool>,
    pub choice: Choice,
}

/// A call the model made.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub name: String,
    pub arguments: Value,
}

/// `tools` (Ollama's and OpenAI's shape: `{"type": "function", "function": {name, description,
/// parameters}}`) and `tool_choice`; `None` when there are none.
pub fn parse(tools: Option<&Value>, choice: Option<&Value>) -> Result<Option<Tools>, ApiError> {
    let list = match tools {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) if a.is_empty() => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(ApiError::bad("tools: expected an array")),
    };
    let mut out = vec![];
    for (i, t) in list.iter().enumerate() {
        let f = t.get("function").unwrap_or(t);
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::bad(format!("tools[{i}].function.name: required")))?;
        let parameters = f.get("parameters").cloned().unwrap_or(json!({"type": "object"}));
        if !parameters.is_object() {
            return Err(ApiError::bad(format!(
                "tools[{i}].function.parameters: expected a JSON schema object"
            )));
        }
        let description = f.get("description").and_then(Value::as_str).unwrap_or("").to_string();
        out.push(Tool { name: name.to_string(), description, parameters });
    }
    let choice = match choice {
        None | Some(Value::Null) => Choice::Auto,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Choice::Auto,
            "none" => Choice::None,
            "required" | "any" => Choice::Required,
            other => {
                return Err(ApiError::bad(format!(
                    "tool_choice: '{other}' is not auto, none or required"
                )))
            }
        },
        Some(v) => {
            let name = v
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad("tool_choice: expected a string or {\"type\": \"function\", \"function\": {\"name\": …}}"))?;
            if !out.iter().any(|t| t.name == name) {
                return Err(ApiError::bad(format!("tool_choice: no tool is named '{name}'")));
            }
            Choice::Named(name.to_string())
        }
    };
    Ok(Some(Tools { tools: out, choice }))
}

impl Tools {
    /// The tools the model may call under the choice.
    fn allowed(&self) -> Vec<&Tool> {
        match &self.choice {
            Choice::None => vec![],
            Choice::Named(n) => self.tools.iter().filter(|t| &t.name == n).collect(),
            _ => self.tools.iter().collect(),
        }
    }

    /// The text the system turn gets: how to call, and each tool with its schema.
    pub fn system_text(&self) -> Option<String> {
        let allowed = self.allowed();
        if allowed.is_empty() {
            return None;
        }
        let mut s = String::from(
            "You can call the tools below. To call one, answer with only a JSON object {\"name\": <the tool's name>, \"arguments\": <an object matching its parameters>}",
        );
        s.push_str(if self.choice == Choice::Auto {
            "; to answer in words, answer in words.\n\nTools:\n"
        } else {
            ".\n\nTools:\n"
        });
        for t in allowed {
            s.push_str(&format!("- {}: {} Parameters: {}\n", t.name, t.description, t.parameters));
        }
        Some(s)
    }

    /// The tools the choice allows, in Ollama's shape, for a template that reads `.Tools`
    /// (`None` when the choice allows none).
    pub fn json(&self) -> Option<Value> {
        let allowed = self.allowed();
        let list: Vec<Value> = allowed
            .iter()
            .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
            .collect();
        (!list.is_empty()).then_some(Value::Array(list))
    }

    /// The grammar of the answer: a call to an allowed tool, or (when the choice allows it)
    /// text that does not start like a JSON object.
    pub fn grammar(&self) -> Option<Grammar> {
        let allowed = self.allowed();
        if allowed.is_empty() {
            return None;
        }
        let calls: Vec<Value> = allowed
            .iter()
            .map(|t| {
                json!({
                    "type": "object",
                    "properties": {"name": {"const": t.name}, "arguments": crate::constraint::closed(t.parameters.clone())},
                    "required": ["name", "arguments"],
                    "additionalProperties": false
                })
            })
            .collect();
        let schema = json!({"anyOf": calls, "x-guidance": {"whitespace_flexible": false}});
        let call = format!("call: %json {schema}");
        Some(Grammar::Lark(match self.choice {
            Choice::Auto => {
                format!("start: call | TEXT\n{call}\nTEXT: /[^{{ \\t\\r\\n](.|\\n)*/\n")
            }
            _ => format!("start: call\n{call}\n"),
        }))
    }
}

/// The call in a model's answer, when the answer is one.
pub fn call_in(text: &str, tools: &Tools) -> Option<Call> {
    let v: Value = serde_json::from_str(text.trim()).ok()?;
    let name = v.get("name")?.as_str()?;
    if !tools.tools.iter().any(|t| t.name == name) {
        return None;
    }
    Some(Call {
        name: name.to_string(),
        arguments: v.get("arguments").cloned().unwrap_or(json!({})),
    })
}

/// Whether streamed text may be the start of a call (so it is held back, not streamed).
pub fn may_be_call(so_far: &str) -> bool {
    so_far.trim_start().starts_with('{') || so_far.trim().is_empty()
}

/// An assistant message's `tool_calls` (Ollama's `arguments` object or OpenAI's JSON string) as
/// Ollama's calls: `{"function": {"name", "arguments": <object>}}`.
pub fn normalize_calls(calls: &[Value]) -> Result<Vec<Value>, ApiError> {
    let mut out = vec![];
    for (i, c) in calls.iter().enumerate() {
        let f = c.get("function").unwrap_or(c);
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad(format!("tool_calls[{i}].function.name: required")))?;
        let args = match f.get("arguments") {
            Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
            Some(v) => v.clone(),
            None => json!({}),
        };
        out.push(json!({"function": {"name": name, "arguments": args}}));
    }
    Ok(out)
}

/// The calls as the text the model would have written, one per line.
fn calls_text(calls: &[Value]) -> String {
    let line = |c: &Value| {
        let mut m = Map::new();
        m.insert("name".into(), c["function"]["name"].clone());
        m.insert("arguments".into(), c["function"]["arguments"].clone());
        Value::Object(m).to_string()
    };
    calls.iter().map(line).collect::<Vec<_>>().join("\n")
}

/// A conversation for a template without tool turns (gemma's): a tool's result becomes a user
/// turn that names the tool, an assistant's calls the text it would have written.
pub fn as_turns(msgs: Vec<Message>) -> Vec<Message> {
    msgs.into_iter()
        .map(|m| match m.role.as_str() {
            "tool" => {
                let name = m.tool_name.as_deref().unwrap_or("the tool");
                Message::new("user", &format!("Result of {name}: {}", m.content))
            }
            "assistant" if !m.tool_calls.is_empty() => {
                let text = calls_text(&m.tool_calls);
                let content =
                    if m.content.is_empty() { text } else { format!("{}\n{text}", m.content) };
                Message::new("assistant", &content)
            }
            _ => m,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_choice_and_calls() {
        let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "The weather.", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
        let t = parse(Some(&tools), None).unwrap().unwrap();
        assert_eq!(t.choice, Choice::Auto);
        assert!(t.system_text().unwrap().contains("get_weather: The weather."));
        let Some(Grammar::Lark(g)) = t.grammar() else { panic!("a grammar") };
        assert!(
            g.starts_with("start: call | TEXT") && g.contains("\"additionalProperties\":false"),
            "{g}"
        );
        let c = call_in("{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}", &t)
            .unwrap();
        assert_eq!((c.name.as_str(), c.arguments["city"].as_str()), ("get_weather", Some("Paris")));
        assert!(call_in("It is sunny.", &t).is_none());
        let none = parse(Some(&tools), Some(&json!("none"))).unwrap().unwrap();
        assert!(none.grammar().is_none() && none.system_text().is_none());
        assert!(parse(
            Some(&tools),
            Some(&json!({"type": "function", "function": {"name": "nope"}}))
        )
        .is_err());
        assert!(parse(Some(&json!([{"function": {}}])), None).is_err());
        let calls =
            normalize_calls(&[json!({"function": {"name": "f", "arguments": "{\"a\":1}"}})]);
        assert_eq!(calls_text(&calls.unwrap()), "{\"name\":\"f\",\"arguments\":{\"a\":1}}");
    }
}
