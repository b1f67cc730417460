//! The scheduler: one thread that owns the loaded model and its batcher. Requests queue in
//! arrival order; the model a request names is loaded on demand (a different model, or
//! different load options, once the running requests have drained) and unloaded after its
//! keep_alive; up to `parallel` requests share every forward. Text and the end of each request
//! go back over its channel; a closed channel (the client went away) cancels the request.

use super::api::{ApiError, EmbedInput, KeepAlive, LoadOverrides, Parsed, Prompt};
use crate::engine::{Adapter, Arrival, Batcher, Engine, LoadOptions, Output, Request, Sink};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc::UnboundedSender;

/// A request's end: its output, and its log-probabilities with their tokens' text (when asked
/// for; a stream holds here only those it has not given out with a piece).
#[derive(Debug)]
pub struct Done {
    pub out: Output,
    pub logprobs: Vec<Lp>,
    /// The prompt's tokens with their log-probabilities, when asked for (the first token has
    /// none: NaN, written as null).
    pub prompt: Vec<Lp>,
}

/// A sampled token's log-probability and the alternatives', with their tokens' text.
#[derive(Debug, Clone)]
pub struct Lp {
    pub token: String,
    pub logprob: f32,
    pub top: Vec<(String, f32)>,
}

fn named(tok: &crate::tokenizer::Tokenizer, lps: &[crate::engine::TokenLogprob]) -> Vec<Lp> {
    let name = |id: u32| tok.decode(&[id]);
    lps.iter()
        .map(|l| Lp {
            token: name(l.id),
            logprob: l.logprob,
            top: l.top.iter().map(|&(i, p)| (name(i), p)).collect(),
        })
        .collect()
}

/// What a request hears back.
#[derive(Debug)]
pub enum Event {
    /// A piece of final text, with the log-probabilities of the tokens sampled since the last.
    Text(String, Vec<Lp>),
    /// The prompt's tokens scored (asked for with `prompt_logprobs`), before any text: the first
    /// token unscored, each later one given those before it.
    Prompt(Vec<Lp>),
    /// The end, with the output and its timings.
    Done(Box<Done>),
    /// An empty prompt loaded the model (Ollama's `done_reason: "load"`), or keep_alive 0
    /// unloaded it (`"unload"`).
    Loaded(&'static str),
    /// The embeddings of an embedding request's inputs.
    Embedded(Box<Embedded>),
    Error(ApiError),
}

/// An embedding request's answer: one vector per input, the tokens they took, the times.
#[derive(Debug)]
pub struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    pub prompt_tokens: u64,
    pub total_ns: u64,
    pub load_ns: u64,
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
    /// Requests running that do not stream (background work: titles, tags, summaries).
    background: Arc<AtomicUsize>,
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

/// A request's sink: its channel, the tokenizer that names its tokens, and whether its model
/// unloads when it ends (keep_alive 0: `/api/ps` must not list it once the answer is out).
struct Chan {
    tx: UnboundedSender<Event>,
    tok: Arc<crate::tokenizer::Tokenizer>,
    unload: Option<Arc<Shared>>,
    /// The count of running background requests, when this is one.
    background: Option<Arc<AtomicUsize>>,
}

impl Sink for Chan {
    fn text(&mut self, piece: &str, logprobs: &[crate::engine::TokenLogprob]) -> bool {
        self.tx.send(Event::Text(piece.to_string(), named(&self.tok, logprobs))).is_ok()
    }
    fn prompt_scored(&mut self, first: Option<u32>, lps: &[crate::engine::TokenLogprob]) {
        let _ = self.tx.send(Event::Prompt(self.scored_prompt(first.as_ref(), lps)));
    }
    fn done(&mut self, out: crate::Result<Output>) {
        if let Some(b) = &self.background {
            b.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(Ok(mut ps)) = self.unload.as_ref().map(|s| s.ps.lock()) {
            ps.clear();
        }
        let _ = self.tx.send(match out {
            Ok(out) => {
                let logprobs = named(&self.tok, &out.logprobs);
                let prompt = self.scored_prompt(out.prompt_ids.first(), &out.prompt_logprobs);
                Event::Done(Box::new(Done { out, logprobs, prompt }))
            }
            Err(e) => Event::Error(ApiError::from_engine(&e)),
        });
    }
}

impl Chan {
    /// The prompt's tokens as the answer lists them: its first token, unscored, then each
    /// scored token (none when the prompt was not scored).
    fn scored_prompt(&self, first: Option<&u32>, lps: &[crate::engine::TokenLogprob]) -> Vec<Lp> {
        let mut prompt = vec![];
        if lps.is_empty() {
            return prompt;
        }
        if let Some(&f) = first {
            prompt.push(Lp { token: self.tok.decode(&[f]), logprob: f32::NAN, top: vec![] });
        }
        prompt.extend(named(&self.tok, lps));
        prompt
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
                            background: Arc::default(),
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
            let Some(at) = self.next_allowed() else { return };
            let job = self.pop_at(at);
            self.start(job);
        }
    }

    /// The queued request to start next: the first, unless it is background work (not
    /// streamed) and background work already holds all but one slot; then the first streamed
    /// request for the loaded model, so that a chat never waits behind titles and tags.
    fn next_allowed(&self) -> Option<usize> {
        let l = self.loaded.as_ref()?;
        let n_seq = l.engine.opts.n_seq;
        let full = n_seq > 1 && l.background.load(Ordering::Relaxed) >= n_seq - 1;
        if !full || self.queue.front().is_some_and(|j| j.parsed.stream) {
            return Some(0);
        }
        let fits = |j: &Job| j.path == l.path && self.load_options(&j.parsed.load) == l.opts;
        self.queue.iter().position(|j| j.parsed.stream && fits(j))
    }

    fn pop(&mut self) -> Box<Job> {
        self.pop_at(0)
    }

    fn pop_at(&mut self, at: usize) -> Box<Job> {
        self.shared.queued.fetch_sub(1, Ordering::Relaxed);
        self.queue.remove(at).expect("invariant: called with a queued request's index")
    }

    /// The load options a request asks for, from the server's.
    fn load_options(&self, o: &LoadOverrides) -> LoadOptions {
        let b = &self.cfg.load;
        LoadOptions {
            num_ctx: o.num_ctx.unwrap_or(b.num_ctx),
            num_batch: o.num_batch.unwrap_or(b.num_batch),
            num_gpu: o.num_gpu.unwrap_or(b.num_gpu),
            num_thread: o.num_thread.unwrap_or(b.num_thread),
            adapters: match &o.adapters {
                Some(v) => v.iter().map(|p| Adapter { path: p.clone(), scale: 1.0 }).collect(),
                None => b.adapters.clone(),
            },
            ..b.clone()
        }
    }

    /// Tokenizes a request under the loaded model's template and hands it to the batcher.
    fn start(&mut self, job: Box<Job>) {
        let l = self.loaded.as_mut().expect("invariant: admit loads before it starts");
        if let Some(k) = job.parsed.keep_alive {
            l.keep_alive = k;
        }
        if let Prompt::Embed { inputs, truncate } = &job.parsed.prompt {
            let r = embed(l, inputs, *truncate, job.t0);
            let _ = job.tx.send(r.map_or_else(
                |e| Event::Error(ApiError::from_engine(&e)),
                |x| Event::Embedded(Box::new(x)),
            ));
            return self.after_sync_job();
        }
        let ids = match prompt_ids(&l.engine, &job.parsed) {
            Ok(ids) => ids,
            Err(e) => {
                let _ = job.tx.send(Event::Error(ApiError::from_engine(&e)));
                return;
            }
        };
        let unload = l.keep_alive == KeepAlive::For(Duration::ZERO);
        let Some(ids) = ids else {
            // an empty prompt only loads (or, with keep_alive 0, unloads) the model: unloaded
            // before the answer goes out, so that `/api/ps` agrees with it
            l.idle_since.get_or_insert_with(Instant::now);
            let now = unload && l.batch.is_empty();
            if now {
                self.unload();
            }
            let _ = job.tx.send(Event::Loaded(if unload { "unload" } else { "load" }));
            return;
        };
        l.idle_since = None;
        let load_ns = l.pending_load_ns.take().unwrap_or(0);
        let background = (!job.parsed.stream).then(|| {
            l.background.fetch_add(1, Ordering::Relaxed);
            l.background.clone()
        });
        let sink = Chan {
            tx: job.tx,
            tok: l.engine.tokenizer.clone(),
            unload: unload.then(|| self.shared.clone()),
            background,
        };
        let req = Request {
            prompt: ids,
            opts: job.parsed.opts.clone(),
            sink: Box::new(sink),
            arrival: Arrival { t0: job.t0, load_ns },
        };
        if l.batch.admit(&mut l.engine, req).is_some() {
            unreachable!("admit checked for a free slot");
        }
        self.publish();
    }

    /// After a request answered at once (embeddings): idle again, or unloaded with keep_alive 0.
    fn after_sync_job(&mut self) {
        let Some(l) = self.loaded.as_mut() else { return };
        if l.batch.is_empty() {
            l.idle_since = Some(Instant::now());
            if l.keep_alive == KeepAlive::For(Duration::ZERO) {
                return self.unload();
            }
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
            if l.keep_alive == KeepAlive::For(Duration::ZERO) {
                return self.unload();
            }
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

/// Embeds a request's inputs in the slots the batcher leaves free (at least one: the request
/// was admitted for a free slot).
fn embed(
    l: &mut Loaded,
    inputs: &[EmbedInput],
    truncate: bool,
    t0: Instant,
) -> crate::Result<Embedded> {
    let e = &mut l.engine;
    let ids = inputs
        .iter()
        .map(|i| match i {
            EmbedInput::Text(t) => e.embed_ids(t, truncate),
            EmbedInput::Ids(v) => e.fit_embed(v.clone(), truncate),
        })
        .collect::<crate::Result<Vec<_>>>()?;
    let load_ns = l.pending_load_ns.take().unwrap_or(0);
    let slots = l.batch.free_slots(e);
    let vectors = if ids.is_empty() { vec![] } else { e.embed(&ids, &slots)? };
    let prompt_tokens = ids.iter().map(|v| v.len() as u64).sum();
    Ok(Embedded { vectors, prompt_tokens, total_ns: crate::timing::since(t0), load_ns })
}

/// A request's token ids under the model's template (a Modelfile's TEMPLATE first, else the
/// GGUF's), or `None` for an empty prompt (a load). The tools are described in the system turn
/// unless a TEMPLATE reads `.Tools` itself.
fn prompt_ids(e: &Engine, p: &super::api::Parsed) -> crate::Result<Option<Vec<u32>>> {
    let (bos, eos) = (e.tokenizer.special_text(true), e.tokenizer.special_text(false));
    let own = p.template.as_deref();
    let takes_tools = own.is_some_and(|t| t.uses("tools"));
    let render = |msgs: Vec<crate::chat::Message>| -> crate::Result<String> {
        match own {
            Some(t) => {
                let tools = p.tools.as_ref().and_then(super::tools::Tools::json);
                crate::chat::render_go(t, &msgs, tools.filter(|_| takes_tools).as_ref())
            }
            None => crate::chat::render(e.tokenizer.chat_template(), &msgs, &bos, &eos),
        }
    };
    match &p.prompt {
        Prompt::Chat(msgs) if msgs.is_empty() => Ok(None),
        Prompt::Chat(msgs) => {
            // a Modelfile's template sees tool turns as they are; gemma's turns have none
            let msgs = match (own.is_some(), takes_tools) {
                (true, true) => msgs.clone(),
                (true, false) => super::api::with_tools(msgs.clone(), p.tools.as_ref()),
                (false, _) => {
                    super::api::with_tools(super::tools::as_turns(msgs.clone()), p.tools.as_ref())
                }
            };
            e.tokenizer.encode(&render(msgs)?, true, true).map(Some)
        }
        Prompt::Text { prompt, context, .. } if prompt.is_empty() && context.is_empty() => Ok(None),
        Prompt::Embed { .. } => Ok(None),
        Prompt::Text { prompt, system, raw, context } => {
            let mut ids = context.clone();
            let user = crate::chat::Message::new("user", prompt);
            let text = match (raw, system) {
                (true, _) => prompt.clone(),
                (false, Some(sys)) if own.is_some() || e.tokenizer.chat_template().is_some() => {
                    render(vec![crate::chat::Message::new("system", sys), user])?
                }
                (false, Some(sys)) => format!("{sys}\n\n{prompt}"),
                (false, None) if own.is_some() => render(vec![user])?,
                (false, None) => {
                    crate::chat::prompt(e.tokenizer.chat_template(), prompt, &bos, &eos)?
                }
            };
            ids.extend(e.tokenizer.encode(&text, context.is_empty(), true)?);
            Ok(Some(ids))
        }
    }
}
