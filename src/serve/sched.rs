//! The scheduler: one thread that owns the loaded model and its batcher. Requests queue in
//! arrival order; the model a request names is loaded on demand (a different model, or
//! different load options, once the running requests have drained) and unloaded after its
//! keep_alive; up to `parallel` requests share every forward. Text and the end of each request
//! go back over its channel; a closed channel (the client went away) cancels the request.

use super::api::{ApiError, KeepAlive, LoadOverrides, Parsed, Prompt};
use crate::engine::{Arrival, Batcher, Engine, LoadOptions, Output, Request, Sink};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc::UnboundedSender;

/// What a request hears back.
#[derive(Debug)]
pub enum Event {
    /// A piece of final text.
    Text(String),
    /// The end, with the output and its timings.
    Done(Box<Output>),
    /// An empty prompt loaded the model (Ollama's `done_reason: "load"`), or keep_alive 0
    /// unloaded it (`"unload"`).
    Loaded(&'static str),
    Error(ApiError),
}

/// A request for the scheduler: what to run on which file, and where to answer.
pub struct Job {
    pub name: String,
    pub path: PathBuf,
    pub parsed: Parsed,
    pub tx: UnboundedSender<Event>,
    pub t0: Instant,
}

pub enum Msg {
    Job(Box<Job>),
    /// Stop: in-flight and queued requests end with an error.
    Shutdown,
}

/// A loaded model as `/api/ps` shows it.
#[derive(Debug, Clone)]
pub struct PsEntry {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    pub size_vram: u64,
    pub expires_at: SystemTime,
}

/// State the HTTP side reads: requests waiting, and what is loaded.
#[derive(Default)]
pub struct Shared {
    pub queued: AtomicUsize,
    pub ps: Mutex<Vec<PsEntry>>,
}

/// The scheduler's settings.
#[derive(Debug, Clone)]
pub struct SchedConfig {
    /// Load options every model starts from (n_seq = parallel, the GPU device).
    pub load: LoadOptions,
    pub keep_alive: KeepAlive,
}

struct Loaded {
    name: String,
    path: PathBuf,
    opts: LoadOptions,
    engine: Engine,
    batch: Batcher<'static>,
    keep_alive: KeepAlive,
    /// When the last request ended (None while requests run).
    idle_since: Option<Instant>,
    /// The load's duration, for the first request it serves.
    pending_load_ns: Option<u64>,
}

/// Runs until shutdown or until every sender is gone.
pub fn run(rx: Receiver<Msg>, shared: Arc<Shared>, cfg: SchedConfig) {
    let mut s = Scheduler { queue: VecDeque::new(), loaded: None, shared, cfg };
    while s.intake(&rx) {
        s.admit();
        s.step();
        s.expire();
    }
    s.stop();
}

struct Scheduler {
    queue: VecDeque<Box<Job>>,
    loaded: Option<Loaded>,
    shared: Arc<Shared>,
    cfg: SchedConfig,
}

/// A request's sink: its channel.
struct Chan(UnboundedSender<Event>);

impl Sink for Chan {
    fn text(&mut self, piece: &str) -> bool {
        self.0.send(Event::Text(piece.to_string())).is_ok()
    }
    fn done(&mut self, out: crate::Result<Output>) {
        let _ = self.0.send(match out {
            Ok(o) => Event::Done(Box::new(o)),
            Err(e) => Event::Error(ApiError::from_engine(&e)),
        });
    }
}

impl Scheduler {
    fn busy(&self) -> bool {
        !self.queue.is_empty() || self.loaded.as_ref().is_some_and(|l| !l.batch.is_empty())
    }

    /// Takes new messages: waits for one when there is nothing to do (until the loaded model's
    /// keep_alive runs out). False on shutdown.
    fn intake(&mut self, rx: &Receiver<Msg>) -> bool {
        let first = if self.busy() {
            rx.try_recv().ok()
        } else {
            match rx.recv_timeout(self.idle_wait()) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        };
        for m in first.into_iter().chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            match m {
                Msg::Job(j) => self.queue.push_back(j),
                Msg::Shutdown => return false,
            }
        }
        true
    }

    /// How long to sleep when idle: until the loaded model expires, else a long time.
    fn idle_wait(&self) -> Duration {
        let hour = Duration::from_secs(3600);
        match &self.loaded {
            Some(Loaded { keep_alive: KeepAlive::For(d), idle_since: Some(t), .. }) => {
                d.saturating_sub(t.elapsed()).min(hour)
            }
            _ => hour,
        }
    }

    /// Starts queued requests while slots are free: in order, loading the model a request names
    /// once nothing else runs.
    fn admit(&mut self) {
        while let Some(job) = self.queue.front() {
            if job.tx.is_closed() {
                self.pop();
                continue;
            }
            let want = self.load_options(&job.parsed.load);
            let fits = self.loaded.as_ref().is_some_and(|l| l.path == job.path && l.opts == want);
            if !fits {
                if self.loaded.as_ref().is_some_and(|l| !l.batch.is_empty()) {
                    return; // the running requests drain first
                }
                let (name, path) = (job.name.clone(), job.path.clone());
                self.unload();
                match Engine::load(&path, want.clone()) {
                    Ok(engine) => {
                        let pending_load_ns = Some(engine.load_ns);
                        let keep_alive = self.cfg.keep_alive;
                        self.loaded = Some(Loaded {
                            name,
                            path,
                            opts: want,
                            engine,
                            batch: Batcher::new(),
                            keep_alive,
                            idle_since: None,
                            pending_load_ns,
                        });
                        self.publish();
                    }
                    Err(e) => {
                        let job = self.pop();
                        let _ = job.tx.send(Event::Error(ApiError::internal(format!(
                            "loading {}: {e}",
                            job.name
                        ))));
                    }
                }
                continue;
            }
            if !self.loaded.as_ref().is_some_and(|l| l.batch.has_room(&l.engine)) {
                return;
            }
            let job = self.pop();
            self.start(job);
        }
    }

    fn pop(&mut self) -> Box<Job> {
        self.shared.queued.fetch_sub(1, Ordering::Relaxed);
        self.queue.pop_front().expect("invariant: called on a non-empty queue")
    }

    /// The load options a request asks for, from the server's.
    fn load_options(&self, o: &LoadOverrides) -> LoadOptions {
        let b = &self.cfg.load;
        LoadOptions {
            num_ctx: o.num_ctx.unwrap_or(b.num_ctx),
            num_batch: o.num_batch.unwrap_or(b.num_batch),
            num_gpu: o.num_gpu.unwrap_or(b.num_gpu),
            num_thread: o.num_thread.unwrap_or(b.num_thread),
            ..b.clone()
        }
    }

    /// Tokenizes a request under the loaded model's template and hands it to the batcher.
    fn start(&mut self, job: Box<Job>) {
        let l = self.loaded.as_mut().expect("invariant: admit loads before it starts");
        if let Some(k) = job.parsed.keep_alive {
            l.keep_alive = k;
        }
        let ids = match prompt_ids(&l.engine, &job.parsed.prompt) {
            Ok(ids) => ids,
            Err(e) => {
                let _ = job.tx.send(Event::Error(ApiError::from_engine(&e)));
                return;
            }
        };
        let Some(ids) = ids else {
            // an empty prompt only loads (or, with keep_alive 0, unloads) the model
            let unload = l.keep_alive == KeepAlive::For(Duration::ZERO);
            let _ = job.tx.send(Event::Loaded(if unload { "unload" } else { "load" }));
            l.idle_since.get_or_insert_with(Instant::now);
            return;
        };
        l.idle_since = None;
        let load_ns = l.pending_load_ns.take().unwrap_or(0);
        let req = Request {
            prompt: ids,
            opts: job.parsed.opts.clone(),
            sink: Box::new(Chan(job.tx)),
            arrival: Arrival { t0: job.t0, load_ns },
        };
        if l.batch.admit(&mut l.engine, req).is_some() {
            unreachable!("admit checked for a free slot");
        }
        self.publish();
    }

    /// One batched step of the running requests.
    fn step(&mut self) {
        let Some(l) = self.loaded.as_mut() else { return };
        if l.batch.is_empty() {
            return;
        }
        if let Err(e) = l.batch.step(&mut l.engine) {
            l.batch.fail_all(&mut l.engine, &e);
        }
        if l.batch.is_empty() {
            l.idle_since = Some(Instant::now());
            self.publish();
        }
    }

    /// Unloads a model whose keep_alive has run out.
    fn expire(&mut self) {
        if !self.queue.is_empty() {
            return;
        }
        let expired = self.loaded.as_ref().is_some_and(|l| match (l.keep_alive, l.idle_since) {
            (KeepAlive::For(d), Some(t)) => l.batch.is_empty() && t.elapsed() >= d,
            _ => false,
        });
        if expired {
            self.unload();
        }
    }

    fn unload(&mut self) {
        if self.loaded.take().is_some() {
            self.publish();
        }
    }

    /// Ends everything: running requests and queued ones get an error.
    fn stop(&mut self) {
        let err = crate::Error::Device("the server is shutting down".into());
        if let Some(l) = self.loaded.as_mut() {
            l.batch.fail_all(&mut l.engine, &err);
        }
        while !self.queue.is_empty() {
            let job = self.pop();
            let _ = job.tx.send(Event::Error(ApiError::busy("the server is shutting down")));
        }
        self.unload();
    }

    /// Publishes what is loaded for `/api/ps`.
    fn publish(&self) {
        let entry = self.loaded.as_ref().map(|l| {
            let expires_at = match (l.keep_alive, l.idle_since) {
                (KeepAlive::For(d), Some(t)) => SystemTime::now() + d.saturating_sub(t.elapsed()),
                (KeepAlive::For(d), None) => SystemTime::now() + d,
                // ref: Ollama reports "forever" as a far-future time
                (KeepAlive::Forever, _) => {
                    SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799)
                }
            };
            let size = l.engine.model.weight_bytes() + l.engine.kv_bytes();
            let size_vram = l
                .engine
                .model
                .device_bytes()
                .iter()
                .filter(|(d, _)| d.starts_with("cuda"))
                .map(|(_, b)| b)
                .sum();
            PsEntry { name: l.name.clone(), path: l.path.clone(), size, size_vram, expires_at }
        });
        if let Ok(mut ps) = self.shared.ps.lock() {
            *ps = entry.into_iter().collect();
        }
    }
}

/// A request's token ids under the model's template, or `None` for an empty prompt (a load).
fn prompt_ids(e: &Engine, p: &Prompt) -> crate::Result<Option<Vec<u32>>> {
    match p {
        Prompt::Chat(msgs) if msgs.is_empty() => Ok(None),
        Prompt::Chat(msgs) => e.chat_ids(msgs).map(Some),
        Prompt::Text { prompt, context, .. } if prompt.is_empty() && context.is_empty() => Ok(None),
        Prompt::Text { prompt, system, raw, context } => {
            let mut ids = context.clone();
            let text = match (raw, system) {
                (true, _) => prompt.clone(),
                (false, Some(sys)) if e.tokenizer.chat_template().is_some() => {
                    let msgs = [
                        crate::chat::Message::new("system", sys),
                        crate::chat::Message::new("user", prompt),
                    ];
                    let (bos, eos) =
                        (e.tokenizer.special_text(true), e.tokenizer.special_text(false));
                    crate::chat::render(e.tokenizer.chat_template(), &msgs, &bos, &eos)?
                }
                (false, Some(sys)) => format!("{sys}\n\n{prompt}"),
                (false, None) => {
                    let (bos, eos) =
                        (e.tokenizer.special_text(true), e.tokenizer.special_text(false));
                    crate::chat::prompt(e.tokenizer.chat_template(), prompt, &bos, &eos)?
                }
            };
            ids.extend(e.tokenizer.encode(&text, context.is_empty(), true)?);
            Ok(Some(ids))
        }
    }
}
