//! OpenAI's Responses API (`/v1/responses`) for text: `input` as a string or a list of messages,
//! `instructions` as the system turn, the same sampling options as chat completions
//! (`max_output_tokens`, `text.format` for JSON), and the response object or its stream of typed
//! events (`response.created` … `response.output_text.delta` … `response.completed`).

use super::api::{self, ApiError, Fields, Parsed, Prompt};
use super::http::{collect, first, json_response, openai_error, submit, AppState, Whole};
use super::log::{Entry, OnDrop};
use super::openai;
use super::sched::{Done, Event};
use crate::engine::DoneReason;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio_stream::wrappers::UnboundedReceiverStream;

/// A message item's text: a string, or its `input_text` / `output_text` / `text` parts joined.
fn item_text(i: usize, c: Option<&Value>) -> Result<String, ApiError> {
    match c {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| {
                match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str))
                {
                    (Some("input_text" | "output_text" | "text"), Some(t)) => Ok(t.to_string()),
                    (t, _) => Err(ApiError::bad(format!(
                        "input[{i}].content: a part of type {} is not supported (text only)",
                        t.unwrap_or("?")
                    ))),
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join("")),
        _ => Err(ApiError::bad(format!("input[{i}].content: expected a string or text parts"))),
    }
}

/// `input` and `instructions` as chat messages.
fn messages(f: &Fields) -> Result<Vec<crate::chat::Message>, ApiError> {
    let mut items: Vec<Value> = vec![];
    if let Some(sys) = f.str("instructions")? {
        items.push(json!({"role": "system", "content": sys}));
    }
    match f.value("input") {
        Some(Value::String(s)) => items.push(json!({"role": "user", "content": s})),
        Some(Value::Array(a)) => {
            for (i, it) in a.iter().enumerate() {
                match it.get("type").and_then(Value::as_str) {
                    None | Some("message") => {}
                    Some(t) => {
                        return Err(ApiError::bad(format!(
                            "input[{i}].type: '{t}' is not supported (messages only)"
                        )))
                    }
                }
                let role = it.get("role").cloned().unwrap_or(Value::Null);
                items.push(json!({"role": role, "content": item_text(i, it.get("content"))?}));
            }
        }
        None => return Err(ApiError::bad("input: required")),
        Some(_) => return Err(ApiError::bad("input: expected a string or a list of messages")),
    }
    api::messages(Some(&Value::Array(items)))
}

/// `text.format`: text, json_object, or json_schema with its `schema`.
fn text_format(v: Option<&Value>) -> Result<Option<crate::constraint::Grammar>, ApiError> {
    let Some(fmt) = v.and_then(|t| t.get("format")) else { return Ok(None) };
    match fmt.get("type").and_then(Value::as_str) {
        Some("json_schema") => {
            let schema =
                fmt.get("schema").ok_or_else(|| ApiError::bad("text.format.schema: required"))?;
            openai::response_format(Some(
                &json!({"type": "json_schema", "json_schema": {"schema": schema}}),
            ))
        }
        _ => openai::response_format(Some(fmt))
            .map_err(|e| ApiError::bad(format!("text.format: {}", e.message))),
    }
}

/// `/v1/responses`' body.
pub fn parse(body: &[u8]) -> Result<Parsed, ApiError> {
    let o = api::object(body)?;
    let f = Fields(&o);
    f.refuse_nonempty(
        "tools",
        "tools on /v1/responses are not supported; use /v1/chat/completions",
    )?;
    f.refuse_nonempty(
        "previous_response_id",
        "previous_response_id: responses are not stored; send the conversation as input",
    )?;
    let (model, mut opts, stream, _) = openai::common(&f)?;
    if let Some(g) = text_format(f.value("text"))? {
        opts.grammar = Some(g);
    }
    let given = openai::given(&f);
    Ok(Parsed { given, ..Parsed::new(model, Prompt::Chat(messages(&f)?), opts, stream) })
}

/// The response object; `done` absent while it is in progress.
fn object(id: &str, model: &str, text: &str, done: Option<&Done>) -> Value {
    let status = match done.map(|d| d.out.done_reason) {
        None => "in_progress",
        Some(DoneReason::Length) => "incomplete",
        Some(DoneReason::Stop) => "completed",
    };
    let output = match done {
        None => json!([]),
        Some(_) => json!([message(id, text, "completed")]),
    };
    let usage = done.map(|d| {
        let t = &d.out.timings;
        let (i, o) = (t.prompt_eval_count + t.prompt_cached_count, t.eval_count);
        json!({"input_tokens": i, "input_tokens_details": {"cached_tokens": t.prompt_cached_count}, "output_tokens": o, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": i + o})
    });
    let incomplete = (status == "incomplete").then(|| json!({"reason": "max_output_tokens"}));
    json!({"id": id, "object": "response", "created_at": openai::now(), "status": status, "model": model, "output": output, "usage": usage, "incomplete_details": incomplete, "error": null, "parallel_tool_calls": false, "tool_choice": "none", "tools": []})
}

/// The assistant message item.
fn message(id: &str, text: &str, status: &str) -> Value {
    let content = if status == "completed" { json!([part(text)]) } else { json!([]) };
    json!({"type": "message", "id": format!("msg_{id}"), "status": status, "role": "assistant", "content": content})
}

fn part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": []})
}

/// `POST /v1/responses`.
pub async fn handler(
    State(st): State<Arc<AppState>>,
    Extension(log): Extension<Arc<Entry>>,
    body: Bytes,
) -> Response {
    let p = match parse(&body) {
        Ok(p) => p,
        Err(e) => return openai_error(e),
    };
    log.model(&p.model);
    let (model, stream) = (p.model.clone(), p.stream);
    let mut rx = match submit(&st, p) {
        Ok(rx) => rx,
        Err(e) => return openai_error(e),
    };
    let head = match first(&mut rx).await {
        Ok(Event::Loaded(_)) => {
            return openai_error(ApiError::bad("input: the conversation is empty"))
        }
        Ok(ev) => ev,
        Err(e) => return openai_error(e),
    };
    let id = openai::id("resp");
    if !stream {
        return match collect(head, &mut rx).await {
            Ok(Whole::Done(text, d)) => {
                log.tokens(d.out.timings.prompt_eval_count, d.out.timings.eval_count);
                json_response(200, &object(&id, &model, &text, Some(&d)))
            }
            Ok(Whole::Loaded(_)) => openai_error(ApiError::bad("input: the conversation is empty")),
            Err(e) => openai_error(e),
        };
    }
    log.streaming();
    let guard = OnDrop(log.clone());
    let mut ev = Events { id, model, text: String::new(), seq: 0 };
    let start =
        [ev.event("response.created", json!({"response": object(&ev.id, &ev.model, "", None)}))]
            .into_iter()
            .chain(ev.opening())
            .collect::<String>();
    let events = futures_util::stream::iter([head]).chain(UnboundedReceiverStream::new(rx));
    let body = events.map(move |e| {
        let _ = &guard;
        let s = match e {
            Event::Text(t, _) => ev.delta(&t),
            Event::Done(d) => {
                log.tokens(d.out.timings.prompt_eval_count, d.out.timings.eval_count);
                ev.closing(&d)
            }
            Event::Error(e) => {
                ev.event("error", json!({"code": null, "message": e.message, "param": null}))
            }
            Event::Loaded(_) | Event::Embedded(_) | Event::Prompt(_) => String::new(),
        };
        Ok::<_, std::convert::Infallible>(Bytes::from(s))
    });
    let body = futures_util::stream::iter([Ok(Bytes::from(start))]).chain(body);
    (
        [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")],
        Body::from_stream(body),
    )
        .into_response()
}

/// The server-sent events of one streamed response, numbered in order.
struct Events {
    id: String,
    model: String,
    text: String,
    seq: u64,
}

impl Events {
    fn event(&mut self, kind: &str, mut data: Value) -> String {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        format!("event: {kind}\ndata: {data}\n\n")
    }

    /// In progress, the message item and its text part opened.
    fn opening(&mut self) -> Vec<String> {
        let (id, model) = (self.id.clone(), self.model.clone());
        vec![
            self.event("response.in_progress", json!({"response": object(&id, &model, "", None)})),
            self.event("response.output_item.added", json!({"output_index": 0, "item": message(&id, "", "in_progress")})),
            self.event("response.content_part.added", json!({"item_id": format!("msg_{id}"), "output_index": 0, "content_index": 0, "part": part("")})),
        ]
    }

    fn delta(&mut self, t: &str) -> String {
        self.text.push_str(t);
        let item = format!("msg_{}", self.id);
        self.event("response.output_text.delta", json!({"item_id": item, "output_index": 0, "content_index": 0, "delta": t, "logprobs": []}))
    }

    /// The text, part and item closed, then the whole response.
    fn closing(&mut self, d: &Done) -> String {
        let (id, text) = (self.id.clone(), self.text.clone());
        let item = format!("msg_{id}");
        let mut s = self.event("response.output_text.done", json!({"item_id": item, "output_index": 0, "content_index": 0, "text": text, "logprobs": []}));
        s += &self.event(
            "response.content_part.done",
            json!({"item_id": item, "output_index": 0, "content_index": 0, "part": part(&text)}),
        );
        s += &self.event(
            "response.output_item.done",
            json!({"output_index": 0, "item": message(&id, &text, "completed")}),
        );
        let full = object(&id, &self.model, &text, Some(d));
        // `response.completed` even when max_output_tokens cut it (the status inside says
        // so): the SDK's stream helper waits for that event alone
        s += &self.event("response.completed", json!({"response": full}));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_become_the_conversation() {
        let p = parse(br#"{"model": "m", "instructions": "Be brief.", "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}], "max_output_tokens": 5}"#).unwrap();
        let Prompt::Chat(m) = &p.prompt else { panic!("a chat") };
        assert_eq!(
            (m[0].role.as_str(), m[1].content.as_str(), p.opts.num_predict),
            ("system", "Hi", 5)
        );
        assert!(parse(
            br#"{"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}}"#
        )
        .unwrap()
        .opts
        .grammar
        .is_some());
        assert!(parse(br#"{"model": "m"}"#).unwrap_err().message.contains("input"));
        assert!(parse(br#"{"model": "m", "input": [{"type": "function_call_output"}]}"#).is_err());
        assert!(
            parse(br#"{"model": "m", "input": "x", "previous_response_id": "resp_1"}"#).is_err()
        );
    }
}
