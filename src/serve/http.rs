//! The routes: Ollama's API (`/api/*`, `/`), OpenAI's (`/v1/*`), on axum. Handlers parse the
//! body themselves (so every error is a 4xx naming the field, never a framework message),
//! resolve the model through the registry, and hand the request to the scheduler; answers
//! stream as NDJSON (Ollama) or server-sent events (OpenAI).

use super::api::{self, ApiError, Parsed};
use super::openai;
use super::sched::{Event, Job, Msg, Shared};
use super::Config;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio_stream::wrappers::UnboundedReceiverStream;

/// What every handler shares.
pub struct AppState {
    pub tx: Mutex<std::sync::mpsc::Sender<Msg>>,
    pub shared: Arc<Shared>,
    pub cfg: Config,
}

type St = State<Arc<AppState>>;

pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.cfg.body_limit;
    Router::new()
        .route("/", get(|| async { "Ollama is running" }).head(|| async { "" }))
        .route(
            "/api/version",
            get(|| async { axum::Json(json!({"version": env!("CARGO_PKG_VERSION")})) }),
        )
        .route("/api/generate", post(generate))
        .route("/api/chat", post(chat))
        .route("/api/tags", get(tags))
        .route("/api/show", post(show))
        .route("/api/ps", get(ps))
        .route("/api/pull", post(pull))
        .route("/v1/models", get(v1_models))
        .route("/v1/chat/completions", post(v1_chat))
        .route("/v1/completions", post(v1_completions))
        .fallback(|| async { ollama_error(ApiError::not_found("no such endpoint")) })
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(state)
}

fn json_response(status: u16, v: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

fn ollama_error(e: ApiError) -> Response {
    json_response(e.status, &json!({"error": e.message}))
}

fn openai_error(e: ApiError) -> Response {
    json_response(e.status, &openai::error(&e))
}

/// A model name to a file: a registry model present on this machine, or (with --allow-paths)
/// a path to a GGUF file or model folder.
fn resolve(cfg: &Config, name: &str) -> Result<PathBuf, ApiError> {
    let missing = || ApiError::not_found(format!("model '{name}' not found, try pulling it first"));
    let reg = crate::registry::Registry::load().map_err(|e| ApiError::internal(e.to_string()))?;
    if let Some(spec) = reg.get(name).or_else(|| reg.get(&format!("{name}:latest"))) {
        return crate::registry::local(spec).ok_or_else(missing);
    }
    match crate::registry::ollama::find(name) {
        Ok(Some(f)) => {
            return f.verified(&mut |_, _, _| {}).map_err(|e| ApiError::internal(e.to_string()))
        }
        Ok(None) => {}
        Err(e) => return Err(ApiError::internal(e.to_string())),
    }
    let p = Path::new(name);
    if cfg.allow_paths && (p.is_file() || crate::config::is_folder(p)) {
        return Ok(p.to_path_buf());
    }
    Err(missing())
}

/// Queues a request; its events come back on the receiver.
fn submit(st: &AppState, parsed: Parsed) -> Result<UnboundedReceiver<Event>, ApiError> {
    let path = resolve(&st.cfg, &parsed.model)?;
    if st.shared.queued.fetch_add(1, Ordering::Relaxed) >= st.cfg.max_queue {
        st.shared.queued.fetch_sub(1, Ordering::Relaxed);
        return Err(ApiError::busy("server busy, please try again: the queue is full"));
    }
    let (tx, rx) = unbounded_channel();
    let job = Job { name: parsed.model.clone(), path, parsed, tx, t0: Instant::now() };
    let sent = st
        .tx
        .lock()
        .map_err(|_| ApiError::internal("scheduler lock"))?
        .send(Msg::Job(Box::new(job)));
    if sent.is_err() {
        st.shared.queued.fetch_sub(1, Ordering::Relaxed);
        return Err(ApiError::busy("the server is shutting down"));
    }
    Ok(rx)
}

/// The first event, so that an error before any output is an HTTP error status.
async fn first(rx: &mut UnboundedReceiver<Event>) -> Result<Event, ApiError> {
    match rx.recv().await {
        Some(Event::Error(e)) => Err(e),
        Some(ev) => Ok(ev),
        None => Err(ApiError::internal("the request ended without a result")),
    }
}

async fn generate(State(st): St, body: Bytes) -> Response {
    match api::generate(&body) {
        Ok(p) => ollama(st, p, false).await,
        Err(e) => ollama_error(e),
    }
}

async fn chat(State(st): St, body: Bytes) -> Response {
    match api::chat(&body) {
        Ok(p) => ollama(st, p, true).await,
        Err(e) => ollama_error(e),
    }
}

/// An Ollama request: NDJSON pieces then the final object, or one object.
async fn ollama(st: Arc<AppState>, parsed: Parsed, chat: bool) -> Response {
    let (model, stream) = (parsed.model.clone(), parsed.stream);
    let mut rx = match submit(&st, parsed) {
        Ok(rx) => rx,
        Err(e) => return ollama_error(e),
    };
    let head = match first(&mut rx).await {
        Ok(ev) => ev,
        Err(e) => return ollama_error(e),
    };
    if !stream {
        let mut text = String::new();
        let mut ev = Some(head);
        while let Some(e) = ev.take() {
            match e {
                Event::Text(t) => text.push_str(&t),
                Event::Done(out) => {
                    return json_response(200, &api::done(&model, &out, chat, &text))
                }
                Event::Loaded(r) => return json_response(200, &loaded(&model, chat, r)),
                Event::Error(e) => return ollama_error(e),
            }
            ev = rx.recv().await;
        }
        return ollama_error(ApiError::internal("the request ended without a result"));
    }
    let line = move |ev: Event| -> Value {
        match ev {
            Event::Text(t) if chat => api::chat_chunk(&model, &t),
            Event::Text(t) => api::generate_chunk(&model, &t),
            Event::Done(out) => api::done(&model, &out, chat, ""),
            Event::Loaded(r) => loaded(&model, chat, r),
            Event::Error(e) => json!({"error": e.message}),
        }
    };
    let events = futures_util::stream::iter([head]).chain(UnboundedReceiverStream::new(rx));
    let body = events
        .map(move |ev| Ok::<_, std::convert::Infallible>(Bytes::from(format!("{}\n", line(ev)))));
    ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(body)).into_response()
}

/// The answer to an empty prompt: the model loaded (or unloaded), nothing generated.
fn loaded(model: &str, chat: bool, reason: &str) -> Value {
    let mut v = json!({"model": model, "created_at": api::created_at(), "done": true, "done_reason": reason});
    if chat {
        v["message"] = json!({"role": "assistant", "content": ""});
    } else {
        v["response"] = json!("");
    }
    v
}

async fn v1_chat(State(st): St, body: Bytes) -> Response {
    match openai::chat(&body) {
        Ok(r) => v1(st, r, true).await,
        Err(e) => openai_error(e),
    }
}

async fn v1_completions(State(st): St, body: Bytes) -> Response {
    match openai::completion(&body) {
        Ok(r) => v1(st, r, false).await,
        Err(e) => openai_error(e),
    }
}

/// An OpenAI request: server-sent chunks ending with `[DONE]`, or one response.
async fn v1(st: Arc<AppState>, r: openai::OpenAi, chat: bool) -> Response {
    let (model, stream, usage) = (r.parsed.model.clone(), r.parsed.stream, r.include_usage);
    let id = openai::id(if chat { "chatcmpl" } else { "cmpl" });
    let mut rx = match submit(&st, r.parsed) {
        Ok(rx) => rx,
        Err(e) => return openai_error(e),
    };
    let head = match first(&mut rx).await {
        Ok(Event::Loaded(_)) => return openai_error(ApiError::bad("the prompt is empty")),
        Ok(ev) => ev,
        Err(e) => return openai_error(e),
    };
    if !stream {
        let mut text = String::new();
        let mut ev = Some(head);
        while let Some(e) = ev.take() {
            match e {
                Event::Text(t) => text.push_str(&t),
                Event::Done(out) => {
                    return json_response(200, &openai::response(chat, &id, &model, &text, &out))
                }
                Event::Loaded(_) => break,
                Event::Error(e) => return openai_error(e),
            }
            ev = rx.recv().await;
        }
        return openai_error(ApiError::internal("the request ended without a result"));
    }
    let mut started = false;
    let events = futures_util::stream::iter([head]).chain(UnboundedReceiverStream::new(rx));
    let body = events.map(move |ev| {
        let (chunks, end) = match ev {
            Event::Text(t) => {
                let c = openai::chunk(chat, &id, &model, &t, !started);
                started = true;
                (vec![c], false)
            }
            Event::Done(out) => (openai::last_chunks(chat, &id, &model, &out, usage), true),
            Event::Loaded(_) => (vec![], true),
            Event::Error(e) => (vec![openai::error(&e)], true),
        };
        let mut s: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
        if end {
            s.push_str("data: [DONE]\n\n");
        }
        Ok::<_, std::convert::Infallible>(Bytes::from(s))
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")],
        Body::from_stream(body),
    )
        .into_response()
}

/// The models present on this machine (the registry's and Ollama's store's).
fn local_models() -> Vec<(crate::registry::Listed, PathBuf)> {
    let rows = crate::registry::installed().unwrap_or_default();
    rows.into_iter().filter_map(|r| r.local.clone().map(|(p, _)| (r, p))).collect()
}

fn modified(p: &Path) -> (String, u64) {
    let t = std::fs::metadata(p).and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
    let secs = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    (crate::stamp::format(secs as i64), secs)
}

/// Ollama's `details` of a model file.
fn details(path: &Path, quant: Option<&str>) -> Value {
    let g = crate::gguf::Gguf::open(path).ok();
    let params: u64 = g.as_ref().map_or(0, crate::gguf::Gguf::n_params);
    let size = if params >= 1_000_000_000 {
        format!("{:.1}B", params as f64 / 1e9)
    } else {
        format!("{:.2}M", params as f64 / 1e6)
    };
    json!({"parent_model": "", "format": if g.is_some() { "gguf" } else { "safetensors" }, "family": "gemma3", "families": ["gemma3"], "parameter_size": size, "quantization_level": quant.unwrap_or("")})
}

async fn tags() -> Response {
    let models: Vec<Value> = tokio::task::spawn_blocking(|| {
        local_models()
            .into_iter()
            .map(|(r, p)| {
                let size = std::fs::metadata(&p).map_or(0, |m| m.len());
                json!({"name": r.name, "model": r.name, "modified_at": modified(&p).0, "size": size, "digest": r.digest, "details": details(&p, r.quant.as_deref())})
            })
            .collect()
    })
    .await
    .unwrap_or_default();
    json_response(200, &json!({"models": models}))
}

async fn v1_models() -> Response {
    let names = tokio::task::spawn_blocking(|| {
        local_models().into_iter().map(|(r, p)| (r.name, modified(&p).1)).collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    json_response(200, &openai::models(&names))
}

async fn show(State(st): St, body: Bytes) -> Response {
    let (name, _) = match api::model_name(&body) {
        Ok(x) => x,
        Err(e) => return ollama_error(e),
    };
    let path = match resolve(&st.cfg, &name) {
        Ok(p) => p,
        Err(e) => return ollama_error(e),
    };
    let r = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let g = crate::gguf::Gguf::open(&path).map_err(|e| ApiError::internal(e.to_string()))?;
        let mut info = serde_json::Map::new();
        for (k, v) in &g.metadata {
            if let Some(x) = scalar(v) {
                info.insert(k.clone(), x);
            }
        }
        let template = crate::tokenizer::Tokenizer::from_gguf(&g)
            .ok()
            .and_then(|t| t.chat_template().map(str::to_string))
            .unwrap_or_default();
        let quant = crate::registry::Registry::load()
            .ok()
            .and_then(|r| r.get(&name).and_then(|s| s.quant.clone()));
        Ok(json!({
            "modelfile": format!("FROM {}\n", path.display()),
            "parameters": "",
            "template": template,
            "details": details(&path, quant.as_deref()),
            "model_info": info,
            "capabilities": ["completion"],
            "modified_at": modified(&path).0,
        }))
    })
    .await;
    match r {
        Ok(Ok(v)) => json_response(200, &v),
        Ok(Err(e)) => ollama_error(e),
        Err(e) => ollama_error(ApiError::internal(e.to_string())),
    }
}

/// A metadata value as JSON when it is a scalar (arrays such as the vocabulary are left out,
/// as Ollama leaves them out unless asked).
fn scalar(v: &crate::gguf::Value) -> Option<Value> {
    use crate::gguf::Value as V;
    Some(match v {
        V::String(s) => json!(s),
        V::Bool(b) => json!(b),
        V::Array(_) => return None,
        V::F32(_) | V::F64(_) => json!(v.as_f64()?),
        other => json!(other.as_i64()?),
    })
}

async fn ps(State(st): St) -> Response {
    let entries = st.shared.ps.lock().map(|p| p.clone()).unwrap_or_default();
    let reg = crate::registry::Registry::load().ok();
    let models: Vec<Value> = entries
        .iter()
        .map(|e| {
            let spec = reg.as_ref().and_then(|r| r.get(&e.name));
            let (digest, quant) = (spec.map_or("", |s| s.digest()), spec.and_then(|s| s.quant.as_deref()));
            let secs = e.expires_at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            json!({"name": e.name, "model": e.name, "size": e.size, "digest": digest, "details": details(&e.path, quant), "expires_at": crate::stamp::format(secs as i64), "size_vram": e.size_vram})
        })
        .collect();
    json_response(200, &json!({"models": models}))
}

/// `/api/pull`: the registry's fetch, its progress as Ollama's status objects.
async fn pull(body: Bytes) -> Response {
    let (name, o) = match api::model_name(&body) {
        Ok(x) => x,
        Err(e) => return ollama_error(e),
    };
    let stream = o.get("stream").and_then(Value::as_bool).unwrap_or(true);
    let reg = match crate::registry::Registry::load() {
        Ok(r) => r,
        Err(e) => return ollama_error(ApiError::internal(e.to_string())),
    };
    let Some(spec) = reg.get(&name).cloned() else {
        return ollama_error(ApiError::not_found(format!("model '{name}' is not in the registry")));
    };
    let (tx, rx) = unbounded_channel::<Value>();
    let task = tokio::task::spawn_blocking(move || {
        let _ = tx.send(json!({"status": "pulling manifest"}));
        let mut last = Instant::now();
        let r = crate::registry::pull(&spec, &mut |what, done, total| {
            if last.elapsed().as_millis() >= 200 {
                last = Instant::now();
                let _ = tx.send(json!({"status": what, "digest": format!("sha256:{}", spec.digest()), "total": total, "completed": done}));
            }
        });
        let _ = tx.send(match r {
            Ok(_) => json!({"status": "success"}),
            Err(e) => json!({"error": e.to_string()}),
        });
    });
    if !stream {
        let _ = task.await;
        let mut rx = rx;
        let mut last = json!({"status": "success"});
        while let Ok(v) = rx.try_recv() {
            last = v;
        }
        let status = if last.get("error").is_some() { 500 } else { 200 };
        return json_response(status, &last);
    }
    let body = UnboundedReceiverStream::new(rx)
        .map(|v| Ok::<_, std::convert::Infallible>(Bytes::from(format!("{v}\n"))));
    ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(body)).into_response()
}
