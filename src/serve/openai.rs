//! OpenAI's chat-completions and completions shapes, mapped onto the same requests as Ollama's
//! (as Ollama's openai middleware maps them: temperature and top_p default to 1, max_tokens is
//! num_predict, response_format becomes the constraint), and the response, chunk, usage and
//! error objects.

use super::api::{self, ApiError, Fields, Parsed, Prompt};
use super::reply;
use super::sched::{Done, Lp};
use super::tools::{self, Tools};
use crate::engine::{DoneReason, GenerateOptions, Output};
use serde_json::{json, Value};

/// The most choices one request may ask for (`n`).
pub const MAX_N: usize = 8;

/// OpenAI's error object (the SDK reads `error.message`, `type` and `code`).
pub fn error(e: &ApiError) -> Value {
    let (kind, code) = match e.status {
        404 => ("invalid_request_error", json!("model_not_found")),
        s if s < 500 => ("invalid_request_error", Value::Null),
        _ => ("api_error", Value::Null),
    };
    json!({"error": {"message": e.message, "type": kind, "param": null, "code": code}})
}

/// The fields both endpoints share.
pub(super) fn common(f: &Fields) -> Result<(String, GenerateOptions, bool, bool), ApiError> {
    let model = f
        .str("model")?
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::bad("model: required"))?;
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
    let max = f.i64("max_completion_tokens")?.or(f.i64("max_tokens")?);
    if let Some(n) = max.or(f.i64("max_output_tokens")?) {
        o.num_predict = n;
    }
    if let Some(stop) = f.strings("stop")? {
        o.stop = stop;
    }
    o.sampler.validate().map_err(|e| ApiError::bad(e.to_string()))?;
    o.grammar = response_format(f.value("response_format"))?;
    o.logit_bias = logit_bias(f.value("logit_bias"))?;
    let stream = f.bool("stream")?.unwrap_or(false);
    let usage = f
        .value("stream_options")
        .and_then(|v| v.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok((model.to_string(), o, stream, usage))
}

/// The options (Ollama's names) that the request's fields set.
pub(super) fn given(f: &Fields) -> Vec<String> {
    let names = [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("frequency_penalty", "frequency_penalty"),
        ("presence_penalty", "presence_penalty"),
        ("seed", "seed"),
        ("max_tokens", "num_predict"),
        ("max_completion_tokens", "num_predict"),
        ("max_output_tokens", "num_predict"),
        ("stop", "stop"),
    ];
    names.iter().filter(|(k, _)| f.value(k).is_some()).map(|(_, o)| o.to_string()).collect()
}

/// `n`: how many choices (1 to 8), each a sequence of its own.
fn n(f: &Fields) -> Result<usize, ApiError> {
    match f.i64("n")? {
        None => Ok(1),
        Some(n) if (1..=MAX_N as i64).contains(&n) => Ok(n as usize),
        Some(n) => Err(ApiError::bad(format!("n: {n} is not between 1 and {MAX_N}"))),
    }
}

/// `logit_bias`: token id (as a string key) → bias in [−100, 100].
fn logit_bias(v: Option<&Value>) -> Result<Vec<(u32, f32)>, ApiError> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(vec![]) };
    let o = v
        .as_object()
        .ok_or_else(|| ApiError::bad("logit_bias: expected an object of token id → bias"))?;
    o.iter()
        .map(|(k, b)| {
            let id: u32 = k
                .parse()
                .map_err(|_| ApiError::bad(format!("logit_bias: '{k}' is not a token id")))?;
            let b = b.as_f64().filter(|b| (-100.0..=100.0).contains(b)).ok_or_else(|| {
                ApiError::bad(format!("logit_bias.{k}: expected a number in [-100, 100]"))
            })?;
            Ok((id, b as f32))
        })
        .collect()
}

/// `response_format`: text, json_object, or json_schema with its schema.
pub(super) fn response_format(
    v: Option<&Value>,
) -> Result<Option<crate::constraint::Grammar>, ApiError> {
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
    let (model, mut opts, stream, include_usage) = common(&f)?;
    let tools = tools::parse(f.value("tools"), f.value("tool_choice"))?;
    let prompt = Prompt::Chat(api::messages(f.value("messages"))?);
    if let Some(g) = tools.as_ref().and_then(Tools::grammar) {
        if opts.grammar.is_some() {
            return Err(ApiError::bad("response_format: cannot be combined with tools"));
        }
        opts.grammar = Some(g);
    }
    let logprobs = match f.bool("logprobs")? {
        Some(true) => {
            let k = f.usize("top_logprobs")?.unwrap_or(0);
            if k > 20 {
                return Err(ApiError::bad(format!("top_logprobs: {k} is more than 20")));
            }
            opts.logprobs = k.max(1);
            Some(k)
        }
        _ => None,
    };
    let parsed = Parsed {
        tools,
        logprobs,
        n: n(&f)?,
        given: given(&f),
        ..Parsed::new(model, prompt, opts, stream)
    };
    Ok(OpenAi { parsed, include_usage })
}

/// `/v1/completions`'s body: the prompt as it is (no chat template).
pub fn completion(body: &[u8]) -> Result<OpenAi, ApiError> {
    let o = api::object(body)?;
    let f = Fields(&o);
    f.refuse_nonempty("suffix", "fill-in-the-middle (suffix) is not supported")?;
    let (model, mut opts, stream, include_usage) = common(&f)?;
    // a prompt is a string, token ids, or a list of one of them
    let (prompt, context) = match f.value("prompt") {
        Some(Value::String(s)) => (s.clone(), vec![]),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
            (a[0].as_str().unwrap_or("").to_string(), vec![])
        }
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_array() => (String::new(), ids(&a[0])?),
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_number) => {
            (String::new(), ids(&Value::Array(a.clone()))?)
        }
        None => (String::new(), vec![]),
        Some(_) => {
            return Err(ApiError::bad("prompt: expected a string, token ids, or a list of one"))
        }
    };
    let logprobs = match f.usize("logprobs")? {
        Some(k) if k > 5 => return Err(ApiError::bad(format!("logprobs: {k} is more than 5"))),
        Some(k) => {
            opts.logprobs = k.max(1);
            Some(k)
        }
        None => None,
    };
    let prompt = Prompt::Text { prompt, system: None, raw: true, context };
    let echo = f.bool("echo")?.unwrap_or(false);
    // echo with logprobs scores the prompt too (lm-evaluation-harness's loglikelihood)
    opts.prompt_logprobs = echo && logprobs.is_some();
    let parsed = Parsed {
        logprobs,
        n: n(&f)?,
        echo,
        given: given(&f),
        ..Parsed::new(model, prompt, opts, stream)
    };
    Ok(OpenAi { parsed, include_usage })
}

/// Token ids of a prompt.
fn ids(v: &Value) -> Result<Vec<u32>, ApiError> {
    v.as_array()
        .and_then(|a| {
            a.iter()
                .map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()))
                .collect::<Option<Vec<u32>>>()
        })
        .ok_or_else(|| ApiError::bad("prompt: expected token ids"))
}

fn finish_reason(out: &Output) -> &'static str {
    match out.done_reason {
        DoneReason::Stop => "stop",
        DoneReason::Length => "length",
    }
}

/// Usage of several choices: the prompt once, the completions summed.
pub fn usage_of(outs: &[&Output]) -> Value {
    let p = outs.first().map_or(0, |o| o.timings.prompt_eval_count + o.timings.prompt_cached_count);
    let c: u64 = outs.iter().map(|o| o.timings.eval_count).sum();
    json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c})
}

pub(super) fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A request id (`chatcmpl-…`, `cmpl-…`, `call_…`) unique within the process.
pub fn id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{:x}{:04x}", now(), N.fetch_add(1, Ordering::Relaxed))
}

/// What a choice carries besides its text.
#[derive(Clone, Copy)]
pub struct Extras<'a> {
    pub logprobs: Option<usize>,
    pub tools: Option<&'a Tools>,
    /// The prompt's text, for completions' `echo`.
    pub echo: Option<&'a str>,
}

/// Chat's `logprobs.content`: each token's text, log-probability, bytes and alternatives.
fn chat_logprobs(lps: &[Lp], k: usize) -> Value {
    json!({"content": reply::logprobs_json(lps, k), "refusal": null})
}

/// Completions' legacy `logprobs`: tokens, their log-probabilities, alternatives as maps, offsets.
fn completion_logprobs(given: &[Lp], k: usize, offset0: usize) -> Value {
    let mut offset = offset0;
    let (mut tokens, mut lps, mut tops, mut offsets) = (vec![], vec![], vec![], vec![]);
    for l in given {
        offsets.push(offset);
        offset += l.token.len();
        tokens.push(json!(l.token));
        lps.push(json!(l.logprob));
        let m: serde_json::Map<String, Value> =
            l.top.iter().take(k).map(|(t, p)| (t.clone(), json!(p))).collect();
        tops.push(Value::Object(m));
    }
    json!({"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets})
}

/// What `echo` puts before a completion: the prompt's text, or for a prompt of token ids, its
/// tokens' text.
fn echo_text(echo: Option<&str>, d: &Done) -> String {
    match echo {
        Some(e) if !e.is_empty() || d.prompt.is_empty() => e.to_string(),
        Some(_) => d.prompt.iter().map(|l| l.token.as_str()).collect(),
        None => String::new(),
    }
}

/// One choice of a response that was not streamed.
pub fn choice(chat: bool, index: usize, text: &str, d: &Done, x: Extras) -> Value {
    let call = x.tools.and_then(|t| tools::call_in(&d.out.response, t));
    let mut c = if chat {
        let mut m = json!({"role": "assistant", "content": if call.is_some() { Value::Null } else { json!(text) }});
        if let Some(call) = &call {
            m["tool_calls"] = json!([{"id": id("call"), "type": "function", "function": {"name": call.name, "arguments": call.arguments.to_string()}}]);
        }
        json!({"index": index, "message": m, "finish_reason": if call.is_some() { "tool_calls" } else { finish_reason(&d.out) }})
    } else {
        let full = format!("{}{text}", echo_text(x.echo, d));
        json!({"index": index, "text": full, "finish_reason": finish_reason(&d.out)})
    };
    c["logprobs"] = match (x.logprobs, chat) {
        (None, _) => Value::Null,
        (Some(k), true) => chat_logprobs(&d.logprobs, k),
        (Some(k), false) if !d.prompt.is_empty() => {
            let all: Vec<Lp> = d.prompt.iter().chain(&d.logprobs).cloned().collect();
            completion_logprobs(&all, k, 0)
        }
        (Some(k), false) => completion_logprobs(&d.logprobs, k, x.echo.map_or(0, str::len)),
    };
    c
}

/// The whole response of a request that was not streamed, one choice per output.
pub fn response(chat: bool, id: &str, model: &str, choices: Vec<Value>, outs: &[&Output]) -> Value {
    let object = if chat { "chat.completion" } else { "text_completion" };
    json!({"id": id, "object": object, "created": now(), "model": model, "system_fingerprint": "chimera", "choices": choices, "usage": usage_of(outs)})
}

/// The log-probabilities of a streamed piece: `lps` with k alternatives each, the piece's
/// first token at `offset` in the completion's text.
pub fn chunk_logprobs(chat: bool, lps: &[Lp], k: usize, offset: usize) -> Value {
    if chat {
        chat_logprobs(lps, k)
    } else {
        completion_logprobs(lps, k, offset)
    }
}

/// A streamed piece of choice `index` (`delta` for chat, `text` for completions); `first`
/// carries the role.
pub fn chunk(chat: bool, id: &str, model: &str, piece: &str, first: bool, index: usize) -> Value {
    let choice = if chat {
        let delta = if first {
            json!({"role": "assistant", "content": piece})
        } else {
            json!({"content": piece})
        };
        json!({"index": index, "delta": delta, "finish_reason": null})
    } else {
        json!({"index": index, "text": piece, "finish_reason": null})
    };
    let object = if chat { "chat.completion.chunk" } else { "text_completion" };
    json!({"id": id, "object": object, "created": now(), "model": model, "system_fingerprint": "chimera", "choices": [choice]})
}

/// The last chunks of choice `index`: a held-back tool call, the finish reason (with the
/// log-probabilities not yet given, when asked for; `offset`: where they start in the text).
pub fn last_chunks(
    chat: bool,
    id_: &str,
    model: &str,
    d: &Done,
    index: usize,
    x: Extras,
    offset: usize,
) -> Vec<Value> {
    let mut v = vec![];
    let call = x.tools.and_then(|t| tools::call_in(&d.out.response, t));
    if let (true, Some(c)) = (chat, &call) {
        let mut ch = chunk(chat, id_, model, "", false, index);
        ch["choices"][0]["delta"] = json!({"tool_calls": [{"index": 0, "id": id("call"), "type": "function", "function": {"name": c.name, "arguments": c.arguments.to_string()}}]});
        v.push(ch);
    }
    let mut end = chunk(chat, id_, model, "", false, index);
    end["choices"][0]["finish_reason"] =
        json!(if call.is_some() { "tool_calls" } else { finish_reason(&d.out) });
    if chat {
        end["choices"][0]["delta"] = json!({});
    }
    if let Some(k) = x.logprobs {
        end["choices"][0]["logprobs"] = if d.logprobs.is_empty() {
            Value::Null
        } else {
            chunk_logprobs(chat, &d.logprobs, k, offset)
        };
    }
    v.push(end);
    v
}

/// The usage chunk of a stream that asked for it.
pub fn usage_chunk(chat: bool, id: &str, model: &str, outs: &[&Output]) -> Value {
    let mut u = chunk(chat, id, model, "", false, 0);
    u["choices"] = json!([]);
    u["usage"] = usage_of(outs);
    u
}

/// `/v1/models/{id}`: one model.
pub fn model(name: &str, created: u64) -> Value {
    json!({"id": name, "object": "model", "created": created, "owned_by": "library"})
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
        assert_eq!(chat(br#"{"model": "m", "n": 9}"#).err().map(|e| e.status), Some(400));
        assert_eq!(chat(br#"{"model": "m", "n": 2}"#).unwrap().parsed.n, 2);
        let b = chat(
            br#"{"model": "m", "logit_bias": {"42": -100}, "logprobs": true, "top_logprobs": 3}"#,
        )
        .unwrap();
        assert_eq!(
            (b.parsed.opts.logit_bias.clone(), b.parsed.logprobs),
            (vec![(42, -100.0)], Some(3))
        );
        assert!(chat(br#"{"model": "m", "logit_bias": {"x": 1}}"#).is_err());
        let dev =
            chat(br#"{"model": "m", "messages": [{"role": "developer", "content": "be brief"}]}"#)
                .unwrap();
        assert!(matches!(&dev.parsed.prompt, Prompt::Chat(m) if m[0].role == "system"));
        let ids = completion(br#"{"model": "m", "prompt": [2, 818, 5279]}"#).unwrap();
        assert!(
            matches!(&ids.parsed.prompt, Prompt::Text { context, .. } if context == &vec![2, 818, 5279])
        );
        let c = completion(br#"{"model": "m", "prompt": "Once", "temperature": 0}"#).unwrap();
        assert!(matches!(c.parsed.prompt, Prompt::Text { raw: true, .. }));
        let e = completion(br#"{"model": "m", "response_format": {"type": "xml"}}"#).err().unwrap();
        assert!(e.message.contains("response_format"));
        assert_eq!(error(&e)["error"]["type"], "invalid_request_error");
    }
}
