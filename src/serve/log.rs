//! One log line per request, as Ollama's server writes one: method, path, status, model, prompt
//! and generated tokens, duration. The line is written when the answer is complete: at once for
//! a whole response, when the stream ends (or its client leaves) for a streamed one. The library
//! never prints: the lines go to the `Logger` the caller gave.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Where log lines go (the CLI prints them to stderr).
#[derive(Clone)]
pub struct Logger(pub Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Logger")
    }
}

impl Default for Logger {
    fn default() -> Self {
        Logger(Arc::new(|_| {}))
    }
}

/// What a handler adds to its request's line.
#[derive(Default)]
struct Info {
    status: u16,
    model: Option<String>,
    tokens: Option<(u64, u64)>,
    detail: Option<String>,
}

/// One request's line, written once.
pub struct Entry {
    method: String,
    path: String,
    t0: Instant,
    info: Mutex<Info>,
    streaming: AtomicBool,
    written: AtomicBool,
    logger: Logger,
}

impl Entry {
    /// The model the request named.
    pub fn model(&self, m: &str) {
        if let Ok(mut i) = self.info.lock() {
            i.model = Some(m.to_string());
        }
    }

    /// Prompt tokens evaluated and tokens generated.
    pub fn tokens(&self, prompt: u64, eval: u64) {
        if let Ok(mut i) = self.info.lock() {
            i.tokens = Some((prompt, eval));
        }
    }

    /// Extra words for `--verbose` (the options asked for).
    pub fn detail(&self, d: String) {
        if let Ok(mut i) = self.info.lock() {
            i.detail = Some(d);
        }
    }

    /// The answer streams: the line waits for its end.
    pub fn streaming(&self) {
        self.streaming.store(true, Ordering::Relaxed);
    }

    /// Writes the line (once).
    pub fn finish(&self) {
        if self.written.swap(true, Ordering::Relaxed) {
            return;
        }
        let i = self.info.lock().map(|i| (i.status, i.model.clone(), i.tokens, i.detail.clone()));
        let Ok((status, model, tokens, detail)) = i else { return };
        let mut line = format!(
            "{} {} {} {:.3}s",
            status,
            self.method,
            self.path,
            self.t0.elapsed().as_secs_f64()
        );
        if let Some(m) = model {
            line.push_str(&format!(" model={m}"));
        }
        if let Some((p, e)) = tokens {
            line.push_str(&format!(" prompt_eval={p} eval={e}"));
        }
        if let Some(d) = detail {
            line.push_str(&format!(" {d}"));
        }
        (self.logger.0)(&line);
    }
}

/// Writes a streamed request's line when the stream is dropped (ended or abandoned).
pub struct OnDrop(pub Arc<Entry>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// The middleware: an `Entry` for every request, its line written when the answer is whole; an
/// error answer's message goes on the line, and a client that leaves before its whole answer is
/// a line with status 499 (nginx's "client closed request").
pub async fn layer(State(logger): State<Logger>, mut req: Request, next: Next) -> Response {
    let entry = Arc::new(Entry {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        t0: Instant::now(),
        info: Mutex::new(Info::default()),
        streaming: AtomicBool::new(false),
        written: AtomicBool::new(false),
        logger,
    });
    req.extensions_mut().insert(entry.clone());
    let mut left = Left(Some(entry.clone()));
    let mut resp = next.run(req).await;
    left.0 = None;
    let status = resp.status().as_u16();
    if status >= 400 && !entry.streaming.load(Ordering::Relaxed) {
        resp = with_error(&entry, resp).await;
    }
    if let Ok(mut i) = entry.info.lock() {
        i.status = status;
    }
    if !entry.streaming.load(Ordering::Relaxed) {
        entry.finish();
    }
    resp
}

/// Logs the request as left by its client when the handler is dropped unfinished.
struct Left(Option<Arc<Entry>>);

impl Drop for Left {
    fn drop(&mut self) {
        let Some(entry) = self.0.take() else { return };
        if let Ok(mut i) = entry.info.lock() {
            i.status = 499;
            let d = i.detail.take().map(|d| format!("{d} ")).unwrap_or_default();
            i.detail = Some(format!("{d}client left"));
        }
        entry.finish();
    }
}

/// Puts an error answer's message (Ollama's `error` string or OpenAI's `error.message`) on the
/// line; the body is small and passed on unchanged.
async fn with_error(entry: &Entry, resp: Response) -> Response {
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return Response::from_parts(parts, axum::body::Body::empty());
    };
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let msg = v["error"].as_str().or_else(|| v["error"]["message"].as_str());
    if let (Some(m), Ok(mut i)) = (msg, entry.info.lock()) {
        let d = i.detail.take().map(|d| format!("{d} ")).unwrap_or_default();
        i.detail = Some(format!("{d}error={m:?}"));
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}
