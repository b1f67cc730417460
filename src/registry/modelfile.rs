//! Ollama's Modelfile: `FROM`, `PARAMETER name value` (repeatable for `stop`), `SYSTEM`,
//! `TEMPLATE`, `LICENSE`, `MESSAGE`, `ADAPTER`; `#` comments; values bare to the end of the line,
//! `"quoted"`, or `"""over several lines"""`. Instructions are case-insensitive.

use crate::error::{Error, Result};
use serde_json::{json, Map, Value};
use std::path::Path;

/// A parsed Modelfile.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Modelfile {
    pub from: Option<String>,
    /// Option defaults, typed as JSON (numbers, booleans, strings; `stop` a list).
    pub parameters: Map<String, Value>,
    pub system: Option<String>,
    pub template: Option<String>,
    /// ADAPTER paths (LoRA adapter GGUFs), in order.
    pub adapters: Vec<String>,
    pub messages: Vec<crate::chat::Message>,
}

/// A PARAMETER value as JSON: a number or boolean when it reads as one.
fn typed(v: &str) -> Value {
    if let Ok(i) = v.parse::<i64>() {
        return json!(i);
    }
    if let Ok(f) = v.parse::<f64>() {
        return json!(f);
    }
    match v {
        "true" => json!(true),
        "false" => json!(false),
        _ => json!(v),
    }
}

/// The value after an instruction, and the rest of the text after it.
fn value(rest: &str) -> Result<(String, &str)> {
    let rest = rest.trim_start_matches([' ', '\t']);
    if let Some(body) = rest.strip_prefix("\"\"\"") {
        let end = body.find("\"\"\"").ok_or_else(|| bad("a \"\"\" value is not closed"))?;
        let after = &body[end + 3..];
        return Ok((body[..end].to_string(), after.split_once('\n').map_or("", |(_, r)| r)));
    }
    let (line, after) = rest.split_once('\n').unwrap_or((rest, ""));
    let line = line.trim();
    let v = match line.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        Some(q) => q.replace("\\\"", "\""),
        None => line.to_string(),
    };
    Ok((v, after))
}

fn bad(why: &str) -> Error {
    Error::option("modelfile", "…", why)
}

/// Parses a Modelfile's text; an unknown instruction is an error naming it.
pub fn parse(text: &str) -> Result<Modelfile> {
    let mut m = Modelfile::default();
    let mut rest = text;
    while !rest.is_empty() {
        let trimmed = rest.trim_start();
        if trimmed.is_empty() {
            break;
        }
        if trimmed.starts_with('#') {
            rest = trimmed.split_once('\n').map_or("", |(_, r)| r);
            continue;
        }
        let word_end = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
        let (word, after) = trimmed.split_at(word_end);
        let (v, next) = value(after)?;
        match word.to_ascii_uppercase().as_str() {
            "FROM" => m.from = Some(v),
            "SYSTEM" => m.system = Some(v),
            "TEMPLATE" => m.template = Some(v),
            "ADAPTER" => m.adapters.push(v),
            "LICENSE" => {}
            "PARAMETER" => {
                let (name, val) = v
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| bad("PARAMETER needs a name and a value"))?;
                let val = val.trim().trim_matches('"');
                if name == "stop" {
                    let list = m.parameters.entry("stop").or_insert_with(|| json!([]));
                    if let Some(a) = list.as_array_mut() {
                        a.push(json!(val));
                    }
                } else {
                    m.parameters.insert(name.to_string(), typed(val));
                }
            }
            "MESSAGE" => {
                let (role, content) = v
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| bad("MESSAGE needs a role and a message"))?;
                m.messages.push(crate::chat::Message::new(role, content.trim()));
            }
            other => return Err(bad(&format!("unknown instruction {other}"))),
        }
        rest = next;
    }
    Ok(m)
}

/// A model's Modelfile as Ollama shows it, its PARAMETER lines, its SYSTEM.
pub fn render(path: &Path, m: Option<&super::local::UserModel>) -> (String, String, String) {
    let mut params = String::new();
    for (k, v) in m.map(|m| m.parameters.iter()).into_iter().flatten() {
        let vals = v.as_array().cloned().unwrap_or_else(|| vec![v.clone()]);
        for x in vals {
            let x = x.as_str().map_or(x.to_string(), |s| format!("\"{s}\""));
            params.push_str(&format!("{k:<15} {x}\n"));
        }
    }
    let system = m.and_then(|m| m.system.clone()).unwrap_or_default();
    let mut text = format!("FROM {}\n", path.display());
    for a in m.map(|m| m.adapters.as_slice()).unwrap_or_default() {
        text.push_str(&format!("ADAPTER {}\n", a.display()));
    }
    for line in params.lines() {
        text.push_str(&format!("PARAMETER {line}\n"));
    }
    if let Some(t) = m.and_then(|m| m.template.as_ref()) {
        text.push_str(&format!("TEMPLATE \"\"\"{t}\"\"\"\n"));
    }
    if !system.is_empty() {
        text.push_str(&format!("SYSTEM \"\"\"{system}\"\"\"\n"));
    }
    for msg in m.map(|m| m.messages.as_slice()).unwrap_or_default() {
        text.push_str(&format!("MESSAGE {} {}\n", msg.role, msg.content));
    }
    (text, params, system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ollamas_instructions() {
        let m = parse("# a comment\nFROM gemma3:270m\nPARAMETER temperature 0.2\nparameter stop \"<end>\"\nPARAMETER stop User:\nPARAMETER num_ctx 4096\nSYSTEM \"\"\"You are\nterse.\"\"\"\n").unwrap();
        assert_eq!(m.from.as_deref(), Some("gemma3:270m"));
        assert_eq!(m.parameters["temperature"], json!(0.2));
        assert_eq!(m.parameters["num_ctx"], json!(4096));
        assert_eq!(m.parameters["stop"], json!(["<end>", "User:"]));
        assert_eq!(m.system.as_deref(), Some("You are\nterse."));
        assert!(parse("FROM x\nBOGUS y\n").unwrap_err().to_string().contains("BOGUS"));
        assert!(parse("SYSTEM \"\"\"open").is_err());
    }
}
