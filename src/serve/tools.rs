//! Tool calling for a model whose template has no tools (gemma3), as llama.cpp's server does it
//! for such templates: the tools are described in the system turn, and the answer is decoded under
//! a grammar that admits either plain text or one call `{"name": …, "arguments": …}` whose
//! arguments match that tool's JSON schema. A call comes back as Ollama's `message.tool_calls`
//! or OpenAI's `tool_calls`; tool results go back into the prompt as turns.
//!
//! A model whose own template (a Modelfile's TEMPLATE, an Ollama store's template layer)
//! declares tools is given them through it and calls in the template's format: the tag Ollama
//! finds in its `{{ if .ToolCalls }}` block, then the JSON object its calls render as.

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
    /// How a call is written.
    pub format: CallFormat,
}

/// How a call is written: a tag before it (none for chimera's own format), then a JSON object
/// with the tool's name and its arguments under these keys.
#[derive(Debug, Clone, PartialEq)]
pub struct CallFormat {
    pub tag: String,
    pub name_key: String,
    pub args_key: String,
}

impl Default for CallFormat {
    fn default() -> Self {
        CallFormat { tag: String::new(), name_key: "name".into(), args_key: "arguments".into() }
    }
}

impl CallFormat {
    /// The format of a template's own calls, when it has a `{{ if .ToolCalls }}` block: Ollama's
    /// tag for it, and the keys of the object a call renders as (a sentinel call rendered and
    /// found in the text; "name" and "arguments" when it renders as something else).
    pub fn of(t: &crate::gotmpl::Template) -> Option<CallFormat> {
        let tag = crate::gotmpl::ollama::tool_call_tag(t)?;
        // plain words, so that printing them raw or as JSON writes them the same
        let (name, key, val) = ("chimera_sentinel_fn", "chimera_sentinel_k", "chimera_sentinel_v");
        let call = json!({"function": {"name": name, "arguments": {key: val}}});
        let msgs = [
            json!({"role": "user", "content": "chimera_sentinel_q"}),
            json!({"role": "assistant", "content": "", "tool_calls": [call]}),
        ];
        let tool = json!([{"type": "function", "function": {"name": name, "parameters": {}}}]);
        let text = crate::gotmpl::ollama::render(t, &msgs, Some(&tool)).ok()?;
        let mut f = CallFormat { tag, ..CallFormat::default() };
        // the innermost object around a mention of the name (the tools list mentions it too)
        // that parses and holds both: its keys are the format's
        let opens: Vec<usize> = text.match_indices('{').map(|(i, _)| i).collect();
        for (at, _) in text.match_indices(name).collect::<Vec<_>>().into_iter().rev() {
            for &open in opens.iter().rev().filter(|&&o| o < at) {
                let Some(Ok(Value::Object(o))) =
                    serde_json::Deserializer::from_str(&text[open..]).into_iter::<Value>().next()
                else {
                    continue;
                };
                let named = o.iter().find(|(_, v)| v.as_str() == Some(name));
                let args = o.iter().find(|(_, v)| v.get(key).and_then(Value::as_str) == Some(val));
                if let (Some((n, _)), Some((a, _))) = (named, args) {
                    (f.name_key, f.args_key) = (n.clone(), a.clone());
                    return Some(f);
                }
            }
        }
        Some(f)
    }

    /// The tag a call starts with, when it has one of its own (not just the object's `{`).
    fn lead(&self) -> Option<&str> {
        Some(self.tag.as_str()).filter(|t| !t.is_empty() && *t != "{")
    }
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
    Ok(Some(Tools { tools: out, choice, format: CallFormat::default() }))
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
        let (n, a) = (&self.format.name_key, &self.format.args_key);
        let calls: Vec<Value> = allowed
            .iter()
            .map(|t| {
                let mut props = Map::new();
                props.insert(n.clone(), json!({"const": t.name}));
                props.insert(a.clone(), crate::constraint::closed(t.parameters.clone()));
                json!({"type": "object", "properties": props, "required": [n, a], "additionalProperties": false})
            })
            .collect();
        let schema = json!({"anyOf": calls, "x-guidance": {"whitespace_flexible": false}});
        // text may not start as a call does: with the object's `{`, or the tag's first character
        let mut not_first = String::from("{ \\t\\r\\n");
        let call = match self.format.lead() {
            Some(tag) => {
                let c = tag.chars().next().unwrap_or('{');
                if c.is_ascii_punctuation() || c.is_whitespace() {
                    not_first.push('\\');
                }
                not_first.push(c);
                let lit = Value::String(tag.to_string());
                format!("call: {lit} /[ \\t\\r\\n]{{0,2}}/ body\nbody: %json {schema}")
            }
            None => format!("call: %json {schema}"),
        };
        Some(Grammar::Lark(match self.choice {
            Choice::Auto => {
                format!("start: call | TEXT\n{call}\nTEXT: /[^{not_first}](.|\\n)*/\n")
            }
            _ => format!("start: call\n{call}\n"),
        }))
    }
}

/// The call in a model's answer, when the answer is one (in the tools' format; what follows
/// the object, such as a closing tag, is left).
pub fn call_in(text: &str, tools: &Tools) -> Option<Call> {
    let f = &tools.format;
    let mut rest = text.trim_start();
    if let Some(tag) = f.lead() {
        rest = rest.strip_prefix(tag)?.trim_start();
    }
    let v: Value = serde_json::Deserializer::from_str(rest).into_iter::<Value>().next()?.ok()?;
    let name = v.get(&f.name_key)?.as_str()?;
    if !tools.tools.iter().any(|t| t.name == name) {
        return None;
    }
    Some(Call {
        name: name.to_string(),
        arguments: v.get(&f.args_key).cloned().unwrap_or(json!({})),
    })
}

/// Whether streamed text may be the start of a call in `f`'s format (so it is held back, not
/// streamed).
pub fn may_be_call(so_far: &str, f: &CallFormat) -> bool {
    let t = so_far.trim_start();
    match f.lead() {
        _ if t.is_empty() => true,
        Some(tag) => t.starts_with(tag) || tag.starts_with(t),
        None => t.starts_with('{'),
    }
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

    /// A template whose calls are `<tool_call>` and an object with `parameters`: its format is
    /// found, its grammar writes it, and answers in it are read back.
    #[test]
    fn a_templates_own_call_format() {
        let src = concat!(
            "{{ range .Tools }}{{ .Function.Name }}{{ end }}{{ range .Messages }}{{ .Role }}: {{ if .ToolCalls }}{{ range .ToolCalls }}<tool_call>\n",
            "{\"name\": \"{{ .Function.Name }}\", \"parameters\": {{ json .Function.Arguments }}}\n</tool_call>",
            "{{ end }}{{ else }}{{ .Content }}{{ end }}\n{{ end }}"
        );
        let f = CallFormat::of(&crate::gotmpl::Template::parse(src).unwrap()).unwrap();
        assert_eq!(
            (f.tag.as_str(), f.name_key.as_str(), f.args_key.as_str()),
            ("<tool_call>", "name", "parameters")
        );
        let tools = json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}]);
        let mut t = parse(Some(&tools), None).unwrap().unwrap();
        t.format = f.clone();
        let Some(Grammar::Lark(g)) = t.grammar() else { panic!("a grammar") };
        assert!(
            g.contains("call: \"<tool_call>\" ")
                && g.contains("\"parameters\"")
                && g.contains("TEXT: /[^{ \\t\\r\\n\\<]"),
            "{g}"
        );
        let c =
            call_in("<tool_call>\n{\"name\": \"f\", \"parameters\": {\"a\": 1}}\n</tool_call>", &t)
                .unwrap();
        assert_eq!((c.name.as_str(), &c.arguments), ("f", &json!({"a": 1})));
        assert!(
            call_in("{\"name\": \"f\", \"parameters\": {}}", &t).is_none(),
            "the tag is part of it"
        );
        assert!(
            may_be_call("  <tool", &f) && may_be_call("<tool_call>{", &f) && !may_be_call("Hi", &f)
        );
        let own = CallFormat::default();
        assert!(may_be_call("{\"na", &own) && !may_be_call("<tool", &own));
    }
}
