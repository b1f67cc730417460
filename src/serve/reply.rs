//! Ollama's response objects: streamed pieces, the final object with its timing fields, tool
//! calls and log-probabilities as Ollama ≥ 0.12.11 writes them.

use super::sched::{Done, Lp};
use super::tools;
use serde_json::{json, Value};
use std::time::SystemTime;

/// Ollama's `created_at`: RFC 3339 UTC with nanoseconds.
pub fn created_at() -> String {
    let t = SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let s = crate::stamp::format(t.as_secs() as i64);
    format!("{}.{:09}Z", s.trim_end_matches('Z'), t.subsec_nanos())
}

/// A streamed `/api/generate` or `/api/chat` piece, with its tokens' log-probabilities when
/// asked for (`Some(k)`: k alternatives).
pub fn chunk(model: &str, chat: bool, piece: &str, lps: &[Lp], top: Option<usize>) -> Value {
    let mut v = if chat {
        json!({"model": model, "created_at": created_at(), "message": {"role": "assistant", "content": piece}, "done": false})
    } else {
        json!({"model": model, "created_at": created_at(), "response": piece, "done": false})
    };
    if let Some(k) = top {
        v["logprobs"] = logprobs_json(lps, k);
    }
    v
}

/// What a response carries besides the text: the log-probabilities asked for (`Some(k)`: k
/// alternatives) and the tools the model may call.
#[derive(Clone, Copy)]
pub struct Extras<'a> {
    pub logprobs: Option<usize>,
    pub tools: Option<&'a tools::Tools>,
}

/// Ollama's `logprobs` (≥ 0.12.11): the chosen token's text and log-probability, its `bytes`, and
/// the `top_logprobs` alternatives, for each token given.
pub fn logprobs_json(lps: &[Lp], top: usize) -> Value {
    let entry = |t: &str, lp: f32| json!({"token": t, "logprob": lp, "bytes": t.as_bytes()});
    let items: Vec<Value> = lps
        .iter()
        .map(|l| {
            let mut v = entry(&l.token, l.logprob);
            v["top_logprobs"] =
                Value::Array(l.top.iter().take(top).map(|(t, p)| entry(t, *p)).collect());
            v
        })
        .collect();
    Value::Array(items)
}

/// The last object of a request: done, why, and Ollama's timing fields in ns. `text` is the
/// whole response for a non-streamed request ("" when streamed); a call to one of the tools
/// comes back as `message.tool_calls`; log-probabilities as `logprobs` (all of them, streamed or
/// not).
pub fn done(model: &str, d: &Done, chat: bool, text: &str, x: Extras) -> Value {
    let out = &d.out;
    let t = &out.timings;
    let mut v = json!({
        "model": model,
        "created_at": created_at(),
        "done": true,
        "done_reason": out.done_reason,
        "total_duration": t.total_duration,
        "load_duration": t.load_duration,
        "prompt_eval_count": t.prompt_eval_count,
        "prompt_eval_duration": t.prompt_eval_duration,
        "eval_count": t.eval_count,
        "eval_duration": t.eval_duration,
    });
    let call = x.tools.and_then(|tools| tools::call_in(&out.response, tools));
    if chat {
        v["message"] =
            json!({"role": "assistant", "content": if call.is_some() { "" } else { text }});
        if let Some(c) = call {
            v["message"]["tool_calls"] =
                json!([{"function": {"index": 0, "name": c.name, "arguments": c.arguments}}]);
        }
    } else {
        v["response"] = json!(text);
        let context: Vec<u32> = out.prompt_ids.iter().chain(&out.ids).copied().collect();
        v["context"] = json!(context);
    }
    // Ollama omits an empty list (`omitempty`): a stream's last object, its pieces carried them
    if let (Some(k), false) = (x.logprobs, d.logprobs.is_empty()) {
        v["logprobs"] = logprobs_json(&d.logprobs, k);
    }
    v
}
