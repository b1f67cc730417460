//! OpenAI's chat-completions and completions shapes, mapped onto the same requests as Ollama's
//! (as Ollama's openai middleware maps them: temperature and top_p default to 1, max_tokens is
//! num_predict, response_format becomes the constraint), and the response, chunk, usage and
//! error objects.

use super::api::{self, ApiError, Fields, LoadOverrides, Parsed, Prompt};
use crate::engine::{DoneReason, GenerateOptions, Output};
use serde_json::{json, Value};

/// OpenAI's error object.
pub fn error(e: &ApiError) -> Value {
    let kind = if e.status < 500 { "invalid_request_error" } else { "api_error" };
    json!({"error": {"message": e.message, "type": kind, "param": null, "code": null}})
}

/// The fields both endpoints share.
fn common(f: &Fields) -> Result<(String, GenerateOptions, bool, bool), ApiError> {
    let model = f
        .str("model")?
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::bad("model: required"))?;
    if f.i64("n")?.is_some_and(|n| n != 1) {
        return Err(ApiError::bad("n: only 1 choice is supported"));
    }
    let mut o = GenerateOptions::default();
    let s = &mut o.sampler;
    // ref: ollama openai/openai.go fromChatRequest: temperature and top_p default to 1.0
    s.temperature = f.f32("temperature")?.unwrap_or(1.0);
    s.top_p = f.f32("top_p")?.unwrap_or(1.0);
    s.frequency_penalty = f.f32("frequency_penalty")?.unwrap_or(0.0);
    s.presence_penalty = f.f32("presence_penalty")?.unwrap_or(0.0);
    if let Some(seed) = f.i64("seed")? {
        s.seed = seed;
    }
    if let Some(n) = f.i64("max_completion_tokens")?.or(f.i64("max_tokens")?) {
        o.num_predict = n;
    }
    if let Some(stop) = f.strings("stop")? {
        o.stop = stop;
    }
    o.sampler.validate().map_err(|e| ApiError::bad(e.to_string()))?;
    o.grammar = response_format(f.value("response_format"))?;
    let stream = f.bool("stream")?.unwrap_or(false);
    let usage = f
        .value("stream_options")
        .and_then(|v| v.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok((model.to_string(), o, stream, usage))
}

/// `response_format`: text, json_object, or json_schema with its schema.
fn response_format(v: Option<&Value>) -> Result<Option<crate::constraint::Grammar>, ApiError> {
    let Some(v) = v else { return Ok(None) };
    match v.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => api::format(Some(&json!("json"))),
        Some("json_schema") => {
            let schema = v
                .get("json_schema")
                .and_then(|s| s.get("schema"))
                .ok_or_else(|| ApiError::bad("response_format.json_schema.schema: required"))?;
            api::format(Some(schema))
        }
        _ => Err(ApiError::bad("response_format.type: expected text, json_object or json_schema")),
    }
}

/// A parsed OpenAI request: the generation, and whether to add usage to a stream.
pub struct OpenAi {
    pub parsed: Parsed,
    pub include_usage: bool,
}

/// `/v1/chat/completions`'s body.
pub fn chat(body: &[u8]) -> Result<OpenAi, ApiError> {
    let o = api::object(body)?;
    let f = Fields(&o);
    f.refuse_nonempty("tools", "tools are not supported")?;
    let (model, opts, stream, include_usage) = common(&f)?;
    let prompt = Prompt::Chat(api::messages(f.value("messages"))?);
    Ok(OpenAi {
        parsed: Parsed {
            model,
            prompt,
            opts,
            load: LoadOverrides::default(),
            keep_alive: None,
            stream,
        },
        include_usage,
    })
}

/// `/v1/completions`'s body: the prompt as it is (no chat template).
pub fn completion(body: &[u8]) -> Result<OpenAi, ApiError> {
    let o = api::object(body)?;
    let f = Fields(&o);
    f.refuse_nonempty("suffix", "fill-in-the-middle (suffix) is not supported")?;
    let (model, opts, stream, include_usage) = common(&f)?;
    let prompt = match f.value("prompt") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
            a[0].as_str().unwrap_or("").to_string()
        }
        None => String::new(),
        Some(_) => return Err(ApiError::bad("prompt: expected a string")),
    };
    let prompt = Prompt::Text { prompt, system: None, raw: true, context: vec![] };
    Ok(OpenAi {
        parsed: Parsed {
            model,
            prompt,
            opts,
            load: LoadOverrides::default(),
            keep_alive: None,
            stream,
        },
        include_usage,
    })
}

fn finish_reason(out: &Output) -> &'static str {
    match out.done_reason {
        DoneReason::Stop => "stop",
        DoneReason::Length => "length",
    }
}

fn usage(out: &Output) -> Value {
    let (p, c) =
        (out.timings.prompt_eval_count + out.timings.prompt_cached_count, out.timings.eval_count);
    json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c})
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A request id (`chatcmpl-…`, `cmpl-…`) unique within the process.
pub fn id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{:x}{:04x}", now(), N.fetch_add(1, Ordering::Relaxed))
}

/// The whole response of a request that was not streamed.
pub fn response(chat: bool, id: &str, model: &str, text: &str, out: &Output) -> Value {
    let choice = if chat {
        json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason(out)})
    } else {
        json!({"index": 0, "text": text, "finish_reason": finish_reason(out)})
    };
    let object = if chat { "chat.completion" } else { "text_completion" };
    json!({"id": id, "object": object, "created": now(), "model": model, "system_fingerprint": "chimera", "choices": [choice], "usage": usage(out)})
}

/// A streamed piece (`delta` for chat, `text` for completions); `first` carries the role.
pub fn chunk(chat: bool, id: &str, model: &str, piece: &str, first: bool) -> Value {
    let choice = if chat {
        let delta = if first {
            json!({"role": "assistant", "content": piece})
        } else {
            json!({"content": piece})
        };
        json!({"index": 0, "delta": delta, "finish_reason": null})
    } else {
        json!({"index": 0, "text": piece, "finish_reason": null})
    };
    let object = if chat { "chat.completion.chunk" } else { "text_completion" };
    json!({"id": id, "object": object, "created": now(), "model": model, "system_fingerprint": "chimera", "choices": [choice]})
}

/// The last chunk (the finish reason), and the usage chunk when the request asked for it.
pub fn last_chunks(
    chat: bool,
    id: &str,
    model: &str,
    out: &Output,
    include_usage: bool,
) -> Vec<Value> {
    let mut end = chunk(chat, id, model, "", false);
    end["choices"][0]["finish_reason"] = json!(finish_reason(out));
    if chat {
        end["choices"][0]["delta"] = json!({});
    }
    let mut v = vec![end];
    if include_usage {
        let mut u = chunk(chat, id, model, "", false);
        u["choices"] = json!([]);
        u["usage"] = usage(out);
        v.push(u);
    }
    v
}

/// `/v1/models`: the models the server can run.
pub fn models(names: &[(String, u64)]) -> Value {
    let data: Vec<Value> = names
        .iter()
        .map(|(n, t)| json!({"id": n, "object": "model", "created": t, "owned_by": "library"}))
        .collect();
    json!({"object": "list", "data": data})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_requests_map_onto_ollamas() {
        let r = chat(br#"{"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 7, "response_format": {"type": "json_object"}, "stream": true, "stream_options": {"include_usage": true}}"#).unwrap();
        assert_eq!(
            (
                r.parsed.opts.num_predict,
                r.parsed.opts.sampler.temperature,
                r.parsed.stream,
                r.include_usage
            ),
            (7, 1.0, true, true)
        );
        assert!(r.parsed.opts.grammar.is_some());
        assert_eq!(chat(br#"{"model": "m", "n": 2}"#).err().map(|e| e.status), Some(400));
        let c = completion(br#"{"model": "m", "prompt": "Once", "temperature": 0}"#).unwrap();
        assert!(matches!(c.parsed.prompt, Prompt::Text { raw: true, .. }));
        let e = completion(br#"{"model": "m", "response_format": {"type": "xml"}}"#).err().unwrap();
        assert!(e.message.contains("response_format"));
        assert_eq!(error(&e)["error"]["type"], "invalid_request_error");
    }
}
