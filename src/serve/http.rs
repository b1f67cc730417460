//! The routes: Ollama's API (`/api/*`, `/`), OpenAI's (`/v1/*`), on axum, with CORS as Ollama
//! answers it and one log line per request. Handlers parse the body themselves (so every error
//! is a 4xx naming the field, never a framework message), resolve the model through the
//! registry, and hand the request to the scheduler; answers stream as NDJSON (Ollama) or
//! server-sent events (OpenAI).

use super::api::{self, ApiError, Parsed};
use super::log::{Entry, OnDrop};
use super::sched::{Done, Event, Job, Lp, Msg, Shared};
use super::{embed, models, openai, reply, Config};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
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

pub(super) type St = State<Arc<AppState>>;
type Log = Extension<Arc<Entry>>;

pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.cfg.body_limit;
    let cors = cors(&state.cfg.origins);
    let logger = state.cfg.log.clone();
    Router::new()
        .route("/", get(|| async { "Ollama is running" }).head(|| async { "" }))
        .route("/api/version", get(models::version))
        .route("/api/generate", post(generate))
        .route("/api/chat", post(chat))
        .route("/api/embed", post(embed::ollama))
        .route("/api/embeddings", post(embed::legacy))
        .route("/api/tags", get(models::tags))
        .route("/api/show", post(models::show))
        .route("/api/ps", get(models::ps))
        .route("/api/pull", post(models::pull))
        .route("/api/create", post(super::manage::create))
        .route("/api/copy", post(super::manage::copy))
        .route("/api/delete", axum::routing::delete(super::manage::delete))
        .route("/api/push", post(super::manage::push))
        .route(
            "/api/blobs/{digest}",
            axum::routing::head(super::manage::has_blob)
                .post(super::manage::upload_blob)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/v1/models", get(models::v1_models))
        .route("/v1/models/{id}", get(models::v1_model))
        .route("/v1/chat/completions", post(v1_chat))
        .route("/v1/completions", post(v1_completions))
        .route("/v1/embeddings", post(embed::openai))
        .route("/v1/responses", post(super::responses::handler))
        .fallback(fallback)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(logger, super::log::layer))
        .layer(cors)
        .with_state(state)
}

/// An unknown route: OpenAI's error object under `/v1`, Ollama's elsewhere.
async fn fallback(uri: axum::http::Uri) -> Response {
    route_error(&uri, ApiError::not_found(format!("no such endpoint: {}", uri.path())))
}

/// A known route called with another method.
async fn wrong_method(method: Method, uri: axum::http::Uri) -> Response {
    let e = ApiError {
        status: 405,
        message: format!("method {method} is not allowed on {}", uri.path()),
    };
    route_error(&uri, e)
}

fn route_error(uri: &axum::http::Uri, e: ApiError) -> Response {
    if uri.path().starts_with("/v1/") {
        let mut v = openai::error(&e);
        v["error"]["code"] = Value::Null;
        json_response(e.status, &v)
    } else {
        ollama_error(e)
    }
}

/// CORS as Ollama answers it (envconfig.AllowedOrigins): pages on localhost, 127.0.0.1 and
/// 0.0.0.0 (any port, http or https) and app/extension schemes by default; `OLLAMA_ORIGINS`
/// adds origins (`*` admits any, `http://host:*` any port of a host).
fn cors(extra: &[String]) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, Any, CorsLayer};
    let mut allowed: Vec<String> = vec![];
    for host in ["localhost", "127.0.0.1", "0.0.0.0"] {
        for proto in ["http", "https"] {
            allowed.push(format!("{proto}://{host}"));
            allowed.push(format!("{proto}://{host}:*"));
        }
    }
    for scheme in ["app", "file", "tauri", "vscode-webview", "vscode-file"] {
        allowed.push(format!("{scheme}://*"));
    }
    allowed.extend(extra.iter().cloned());
    let any = allowed.iter().any(|o| o == "*");
    let origin = AllowOrigin::predicate(move |o: &HeaderValue, _| {
        let o = o.to_str().unwrap_or("");
        any || allowed.iter().any(|a| origin_matches(a, o))
    });
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::HEAD,
            Method::OPTIONS,
        ])
        .allow_headers(Any)
}

/// Whether `origin` matches a pattern whose `*` stands for the rest (a port, a path).
pub fn origin_matches(pattern: &str, origin: &str) -> bool {
    match pattern.split_once('*') {
        Some((pre, post)) => {
            origin.starts_with(pre)
                && origin.ends_with(post)
                && origin.len() >= pre.len() + post.len()
        }
        None => pattern == origin,
    }
}

pub(super) fn json_response(status: u16, v: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

pub(super) fn ollama_error(e: ApiError) -> Response {
    json_response(e.status, &json!({"error": e.message}))
}

pub(super) fn openai_error(e: ApiError) -> Response {
    json_response(e.status, &openai::error(&e))
}

/// A model name to a file: a registry model present on this machine, or (with --allow-paths)
/// a path to a GGUF file or model folder.
pub(super) fn resolve(cfg: &Config, name: &str) -> Result<PathBuf, ApiError> {
    let missing = || ApiError::not_found(format!("model '{name}' not found, try pulling it first"));
    match crate::registry::find_local(name) {
        Ok(Some(p)) => return Ok(p),
        Ok(None) => {}
        Err(e) => return Err(ApiError::internal(e.to_string())),
    }
    let p = Path::new(name);
    if cfg.allow_paths && (p.is_file() || crate::config::is_folder(p)) {
        return Ok(p.to_path_buf());
    }
    Err(missing())
}

/// The request under its model's own defaults (a made or an Ollama-store model's parameters,
/// system message, template, messages and adapters), applied once.
pub(super) fn with_defaults(mut parsed: Parsed) -> Result<Parsed, ApiError> {
    if parsed.with_defaults {
        return Ok(parsed);
    }
    let made = crate::registry::defaults(&parsed.model).map_err(|e| ApiError::from_engine(&e))?;
    if let Some(m) = made {
        super::manage::apply_defaults(&mut parsed, &m)?;
    }
    parsed.with_defaults = true;
    Ok(parsed)
}

/// Queues a request; its events come back on the receiver.
pub(super) fn submit(
    st: &AppState,
    mut parsed: Parsed,
) -> Result<UnboundedReceiver<Event>, ApiError> {
    let path = resolve(&st.cfg, &parsed.model)?;
    parsed = with_defaults(parsed)?;
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
pub(super) async fn first(rx: &mut UnboundedReceiver<Event>) -> Result<Event, ApiError> {
    match rx.recv().await {
        Some(Event::Error(e)) => Err(e),
        Some(ev) => Ok(ev),
        None => Err(ApiError::internal("the request ended without a result")),
    }
}

/// What a request that is not streamed comes to: its whole text and end, or a load.
pub(super) enum Whole {
    Done(String, Box<Done>),
    Loaded(&'static str),
}

/// Reads a request's events to its end.
pub(super) async fn collect(
    head: Event,
    rx: &mut UnboundedReceiver<Event>,
) -> Result<Whole, ApiError> {
    let mut text = String::new();
    let mut ev = Some(head);
    while let Some(e) = ev.take() {
        match e {
            Event::Text(t, _) => text.push_str(&t),
            Event::Prompt(_) => {}
            Event::Done(d) => return Ok(Whole::Done(text, d)),
            Event::Loaded(r) => return Ok(Whole::Loaded(r)),
            Event::Error(e) => return Err(e),
            Event::Embedded(_) => break,
        }
        ev = rx.recv().await;
    }
    Err(ApiError::internal("the request ended without a result"))
}

async fn generate(State(st): St, Extension(log): Log, body: Bytes) -> Response {
    match api::generate(&body) {
        Ok(p) => ollama(st, log, p, false).await,
        Err(e) => ollama_error(e),
    }
}

async fn chat(State(st): St, Extension(log): Log, body: Bytes) -> Response {
    match api::chat(&body) {
        Ok(p) => ollama(st, log, p, true).await,
        Err(e) => ollama_error(e),
    }
}

/// A stream's text and log-probabilities on their way out: text held back while it may still be
/// a tool call (it then becomes one, not text), the log-probabilities of held text with it.
pub(super) struct Held {
    /// The format calls are written in, when the answer may be one.
    tools: Option<super::tools::CallFormat>,
    buf: String,
    open: bool,
    lps: Vec<Lp>,
    /// Log-probabilities given out so far.
    sent: usize,
}

impl Held {
    pub(super) fn new(tools: Option<&super::tools::Tools>) -> Held {
        let tools = tools.map(|t| t.format.clone());
        Held { open: tools.is_none(), tools, buf: String::new(), lps: vec![], sent: 0 }
    }

    /// The text to send now, with its tokens' log-probabilities.
    pub(super) fn push(&mut self, t: &str, lps: Vec<Lp>) -> Option<(String, Vec<Lp>)> {
        self.lps.extend(lps);
        self.buf.push_str(t);
        if let (false, Some(f)) = (self.open, &self.tools) {
            if super::tools::may_be_call(&self.buf, f) {
                return None;
            }
            self.open = true;
        }
        let text = std::mem::take(&mut self.buf);
        self.sent += self.lps.len();
        Some((text, std::mem::take(&mut self.lps)))
    }

    /// Held text that turned out not to be a call; `d` keeps only the log-probabilities not
    /// given out yet (held text's, a call's, the end token's).
    pub(super) fn rest(&mut self, d: &mut Done, tools: Option<&super::tools::Tools>) -> String {
        d.logprobs.drain(..self.sent.min(d.logprobs.len()));
        let call = self.tools.is_some()
            && tools.is_some_and(|t| super::tools::call_in(&d.out.response, t).is_some());
        if call {
            String::new()
        } else {
            std::mem::take(&mut self.buf)
        }
    }
}

/// An Ollama request: NDJSON pieces then the final object, or one object.
async fn ollama(st: Arc<AppState>, log: Arc<Entry>, parsed: Parsed, chat: bool) -> Response {
    // the model's template may say how it calls tools: the answer is read in that format
    let parsed = match with_defaults(parsed) {
        Ok(p) => p,
        Err(e) => return ollama_error(e),
    };
    let (model, stream) = (parsed.model.clone(), parsed.stream);
    log.model(&model);
    if st.cfg.verbose {
        log.detail(format!(
            "num_predict={} temperature={} format={}",
            parsed.opts.num_predict,
            parsed.opts.sampler.temperature,
            parsed.opts.grammar.is_some()
        ));
    }
    let (lp, tools) = (parsed.logprobs, parsed.tools.clone());
    let mut rx = match submit(&st, parsed) {
        Ok(rx) => rx,
        Err(e) => return ollama_error(e),
    };
    let head = match first(&mut rx).await {
        Ok(ev) => ev,
        Err(e) => return ollama_error(e),
    };
    fn x(lp: Option<usize>, tools: &Option<super::tools::Tools>) -> reply::Extras<'_> {
        reply::Extras { logprobs: lp, tools: tools.as_ref() }
    }
    if !stream {
        return match collect(head, &mut rx).await {
            Ok(Whole::Done(text, d)) => {
                log.tokens(d.out.timings.prompt_eval_count, d.out.timings.eval_count);
                json_response(200, &reply::done(&model, &d, chat, &text, x(lp, &tools)))
            }
            Ok(Whole::Loaded(r)) => json_response(200, &loaded(&model, chat, r)),
            Err(e) => ollama_error(e),
        };
    }
    log.streaming();
    let guard = OnDrop(log.clone());
    let mut held = Held::new(tools.as_ref().filter(|_| chat));
    let line = move |ev: Event| -> Option<Value> {
        let _ = &guard;
        match ev {
            Event::Text(t, lps) => {
                let (t, lps) = held.push(&t, lps)?;
                Some(reply::chunk(&model, chat, &t, &lps, lp))
            }
            Event::Done(mut d) => {
                log.tokens(d.out.timings.prompt_eval_count, d.out.timings.eval_count);
                let rest = held.rest(&mut d, tools.as_ref());
                Some(reply::done(&model, &d, chat, &rest, x(lp, &tools)))
            }
            Event::Loaded(r) => Some(loaded(&model, chat, r)),
            Event::Error(e) => Some(json!({"error": e.message})),
            Event::Embedded(_) | Event::Prompt(_) => None,
        }
    };
    let mut line = line;
    let events = futures_util::stream::iter([head]).chain(UnboundedReceiverStream::new(rx));
    let body = events.filter_map(move |ev| {
        let v = line(ev);
        async move { v.map(|v| Ok::<_, std::convert::Infallible>(Bytes::from(format!("{v}\n")))) }
    });
    ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(body)).into_response()
}

/// The answer to an empty prompt: the model loaded (or unloaded), nothing generated.
fn loaded(model: &str, chat: bool, reason: &str) -> Value {
    let mut v = json!({"model": model, "created_at": reply::created_at(), "done": true, "done_reason": reason});
    if chat {
        v["message"] = json!({"role": "assistant", "content": ""});
    } else {
        v["response"] = json!("");
    }
    v
}

async fn v1_chat(State(st): St, Extension(log): Log, body: Bytes) -> Response {
    match openai::chat(&body) {
        Ok(r) => super::v1::run(st, log, r, true).await,
        Err(e) => openai_error(e),
    }
}

async fn v1_completions(State(st): St, Extension(log): Log, body: Bytes) -> Response {
    match openai::completion(&body) {
        Ok(r) => super::v1::run(st, log, r, false).await,
        Err(e) => openai_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::origin_matches;

    #[test]
    fn origins_as_ollama_matches_them() {
        assert!(origin_matches("http://localhost:*", "http://localhost:3000"));
        assert!(origin_matches("http://localhost", "http://localhost"));
        assert!(!origin_matches("http://localhost:*", "http://evil.example:3000"));
        assert!(origin_matches("chrome-extension://*", "chrome-extension://abc"));
        assert!(!origin_matches("http://127.0.0.1:*", "http://127.0.0.1.evil.example"));
    }
}
