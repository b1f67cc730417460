//! The engine: a loaded model, its tokenizer and context, and generation with Ollama's options,
//! context policy, stop handling and timing fields.

use crate::backend::cpu::kv::KvCache;
use crate::backend::{Batch, Front, Sizing};
use crate::chat;
use crate::config::Gemma3Config;
use crate::constraint::{Constraint, Grammar, Vocab};
use crate::error::{Error, Result};
use crate::gguf::Gguf;
use crate::model::{GpuDevice, Model, SlotDevice};
use crate::offload::{self, Placement, Plan};
use crate::sampler::{Sampler, SamplerOptions};
use crate::timing::{since, Timings};
use crate::tokenizer::{TextStream, Tokenizer};
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// The most candidates a device front end returns (kernels/sample.cu's top-k bound).
const MAX_FRONT_K: usize = 64;

/// What a model is loaded from.
enum Source {
    Gguf(Gguf),
    Folder(crate::backend::candle::safetensors::Folder),
}

/// Options fixed at load (Ollama's "runner" options).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LoadOptions {
    /// Context size in tokens (clamped to the model's context_length).
    pub num_ctx: usize,
    /// Prompt tokens per forward.
    pub num_batch: usize,
    /// CPU threads; 0 = all available cores.
    pub num_thread: usize,
    /// Slots offloaded to the GPU (−1 = automatic).
    pub num_gpu: i64,
    /// Sliding-window layers keep every position, so that any cached prompt prefix can be reused
    /// (llama.cpp's `--swa-full`); by default they keep a ring of window + num_batch.
    pub swa_full: bool,
    /// What runs the plan's GPU slots.
    pub gpu: GpuDevice,
    /// Sequences (KV slots) decoded at once; each gets num_ctx positions.
    pub n_seq: usize,
    /// Single-token decode steps replayed as CUDA graphs (`CHIMERA_CUDA_GRAPHS=0` turns them
    /// off); no effect elsewhere.
    pub cuda_graphs: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        // ref: Ollama: num_ctx 4096 below 24 GiB of VRAM, num_batch 512, num_gpu −1, num_thread 0
        LoadOptions {
            num_ctx: 4096,
            num_batch: 512,
            num_thread: 0,
            num_gpu: -1,
            swa_full: false,
            gpu: GpuDevice::for_build(0),
            n_seq: 1,
            cuda_graphs: true,
        }
    }
}

impl LoadOptions {
    /// Checks value domains; the error names the option.
    pub fn validate(&self) -> Result<()> {
        if self.num_ctx == 0 {
            return Err(Error::option("num_ctx", 0, "must be ≥ 1"));
        }
        if self.num_batch == 0 {
            return Err(Error::option("num_batch", 0, "must be ≥ 1"));
        }
        if self.num_gpu < -1 {
            return Err(Error::option("num_gpu", self.num_gpu, "must be ≥ −1 (−1 = automatic)"));
        }
        if self.n_seq == 0 {
            return Err(Error::option("parallel", 0, "must be ≥ 1"));
        }
        Ok(())
    }

    /// Threads to use.
    pub fn threads(&self) -> usize {
        if self.num_thread > 0 {
            self.num_thread
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}

/// Per-request options.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Tokens to generate; −1 = until a stop (capped at 10 × num_ctx, as Ollama).
    pub num_predict: i64,
    /// Tokens kept from the start of the context on truncation and context shift.
    pub num_keep: usize,
    pub stop: Vec<String>,
    /// Truncate a prompt longer than num_ctx (else an error).
    pub truncate: bool,
    /// Shift the context when it fills during generation (else stop with `length`).
    pub shift: bool,
    /// Top-N log-probabilities per generated token (0 = none).
    pub logprobs: usize,
    pub sampler: SamplerOptions,
    /// What the output must be (Ollama's `format`), compiled once per request.
    pub grammar: Option<Grammar>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        // ref: Ollama api/types.go DefaultOptions: num_predict −1, num_keep 4
        GenerateOptions {
            num_predict: -1,
            num_keep: 4,
            stop: vec![],
            truncate: true,
            shift: true,
            logprobs: 0,
            sampler: SamplerOptions::default(),
            grammar: None,
        }
    }
}

/// Why generation ended, in Ollama's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DoneReason {
    Stop,
    Length,
}

/// A generated token's log-probability and the top alternatives, from the raw logits.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TokenLogprob {
    pub id: u32,
    pub logprob: f32,
    pub top: Vec<(u32, f32)>,
}

/// The result of one request.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Output {
    pub response: String,
    pub prompt_ids: Vec<u32>,
    pub ids: Vec<u32>,
    pub done_reason: DoneReason,
    #[serde(flatten)]
    pub timings: Timings,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logprobs: Vec<TokenLogprob>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Kernels one decode step launches, as its captured CUDA graph counts them (the graph then
    /// replays them with one launch); absent without CUDA graphs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_kernels: Option<usize>,
}

/// A model ready to generate.
pub struct Engine {
    pub model: Model,
    pub tokenizer: Arc<Tokenizer>,
    /// The vocabulary compiled for structured outputs, built on the first request with a grammar.
    vocab: OnceLock<Vocab>,
    pub plan: Plan,
    pub opts: LoadOptions,
    /// Notes from loading (clamped values, GPU requests on a CPU-only build).
    pub warnings: Vec<String>,
    logits: Vec<f32>,
    /// Candidates from a device front end.
    front: Vec<(u32, f32)>,
    /// Tokens whose K/V are in the cache, in position order.
    ctx: Vec<u32>,
    /// Load time, reported by the first request only (later ones find the model loaded).
    pending_load_ns: Option<u64>,
    pub load_ns: u64,
}

impl Engine {
    /// Opens, checks and loads a GGUF file or a Hugging Face safetensors folder, allocates the
    /// cache and runs one warm-up forward.
    pub fn load(path: &Path, mut opts: LoadOptions) -> Result<Engine> {
        let t0 = Instant::now();
        opts.validate()?;
        let mut warnings = vec![];
        let folder = crate::config::is_folder(path);
        let (cfg, tokenizer, src) = if folder {
            let f = crate::backend::candle::safetensors::Folder::open(path)?;
            (f.cfg.clone(), Arc::new(f.tokenizer()?), Source::Folder(f))
        } else {
            let g = Gguf::open(path)?;
            (Gemma3Config::from_gguf(&g)?, Arc::new(Tokenizer::from_gguf(&g)?), Source::Gguf(g))
        };
        if opts.num_ctx > cfg.context_length {
            warnings.push(format!(
                "num_ctx {} exceeds the model's context_length {}; using {}",
                opts.num_ctx, cfg.context_length, cfg.context_length
            ));
            opts.num_ctx = cfg.context_length;
        }
        opts.num_batch = opts.num_batch.min(opts.num_ctx);
        let sizing = Sizing {
            num_ctx: opts.num_ctx,
            num_batch: opts.num_batch,
            n_seq: opts.n_seq,
            swa_full: opts.swa_full,
            threads: opts.threads(),
            graphs: opts.cuda_graphs,
        };
        let (model, plan) = match src {
            Source::Gguf(gguf) => {
                let sizes = sizes(&gguf, &opts)?;
                let plan =
                    offload::plan(&sizes, opts.num_gpu, crate::backend::free_memory(opts.gpu))?;
                if opts.num_gpu > 0 && opts.gpu == GpuDevice::None {
                    warnings.push(format!(
                        "num_gpu {} requested, but this build has no GPU backend (build with --features cuda); running on CPU",
                        opts.num_gpu
                    ));
                }
                (Model::load(gguf, &plan, opts.gpu, &sizing)?, plan)
            }
            Source::Folder(f) => {
                let n = f.cfg.n_layer;
                let plan = Plan::all_gpu(n);
                (Model::load_folder(f, opts.gpu, &sizing)?, plan)
            }
        };
        let mut engine = Engine {
            logits: vec![0.0; model.cfg.n_vocab],
            front: Vec::with_capacity(MAX_FRONT_K),
            model,
            tokenizer,
            vocab: OnceLock::new(),
            plan,
            opts,
            warnings,
            ctx: vec![],
            pending_load_ns: None,
            load_ns: 0,
        };
        // Warm-up: touch every weight page and the code paths once, as llama.cpp does at load.
        let bos = engine.tokenizer.specials().bos.unwrap_or(0);
        engine.model.forward(&[bos], &Batch::Run { seq: 0, pos0: 0, n: 1 })?;
        engine.model.logits(0..1, &mut engine.logits)?;
        engine.model.sync()?;
        engine.load_ns = since(t0);
        engine.pending_load_ns = Some(engine.load_ns);
        Ok(engine)
    }

    /// Bytes of the KV cache.
    pub fn kv_bytes(&self) -> u64 {
        self.model.kv_bytes()
    }

    /// Token ids for a user prompt: the model's chat template applied unless `raw` (see
    /// [`chat::prompt`]); BOS added and special tokens parsed.
    pub fn prompt_ids(&self, text: &str, raw: bool) -> Result<Vec<u32>> {
        let template = if raw { None } else { self.tokenizer.chat_template() };
        let (bos, eos) = (self.tokenizer.special_text(true), self.tokenizer.special_text(false));
        let text = chat::prompt(template, text, &bos, &eos)?;
        self.tokenizer.encode(&text, true, true)
    }

    /// Evaluates `tokens` from position 0 (in num_batch pieces) and keeps them as the context.
    fn eval_from_start(&mut self, tokens: &[u32]) -> Result<()> {
        self.ctx.clear();
        self.eval_more(tokens)
    }

    /// Evaluates `tokens` after the current context, in num_batch pieces.
    fn eval_more(&mut self, tokens: &[u32]) -> Result<()> {
        for chunk in tokens.chunks(self.opts.num_batch) {
            self.model
                .forward(chunk, &Batch::Run { seq: 0, pos0: self.ctx.len(), n: chunk.len() })?;
            self.ctx.extend_from_slice(chunk);
        }
        Ok(())
    }

    /// How many leading tokens of `prompt` the cache already holds and can reuse: the longest
    /// common prefix, less one (the last prompt token is always evaluated, for its logits), and
    /// only while the sliding-window rings still hold it (see [`crate::backend::Backend::reusable`]).
    pub fn reusable_prefix(&self, prompt: &[u32]) -> usize {
        let common = self.ctx.iter().zip(prompt).take_while(|(a, b)| a == b).count();
        let keep = common.min(prompt.len().saturating_sub(1));
        if self.model.reusable(0, keep, self.ctx.len()) {
            keep
        } else {
            0
        }
    }

    /// Evaluates a prompt, reusing the cached prefix it shares with the last request, and leaves
    /// the logits of its last token in [`Engine::logits`]. Returns the number of reused tokens.
    pub fn prefill(&mut self, prompt: &[u32]) -> Result<usize> {
        if prompt.is_empty() {
            return Err(Error::option("prompt", "\"\"", "it has no tokens"));
        }
        let keep = self.reusable_prefix(prompt);
        self.ctx.truncate(keep);
        self.eval_more(&prompt[keep..])?;
        let last = (prompt.len() - keep - 1) % self.opts.num_batch;
        self.model.logits(last..last + 1, &mut self.logits)?;
        Ok(keep)
    }

    /// The logits of the last evaluated token.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// The vocabulary compiled for structured outputs (built once, on first use).
    pub fn vocab(&self) -> Result<&Vocab> {
        if let Some(v) = self.vocab.get() {
            return Ok(v);
        }
        let v = Vocab::new(self.tokenizer.clone())?;
        Ok(self.vocab.get_or_init(|| v))
    }

    /// Evaluates `tokens` at positions `pos0..` (in num_batch pieces) after the first `pos0`
    /// context tokens, and computes the logits of the last one: the unit llama-bench times.
    pub fn eval_at(&mut self, tokens: &[u32], pos0: usize) -> Result<()> {
        if pos0 + tokens.len() > self.opts.num_ctx {
            return Err(Error::option(
                "num_ctx",
                self.opts.num_ctx,
                "smaller than the test's tokens",
            ));
        }
        self.ctx.truncate(pos0);
        let mut last = 0;
        for chunk in tokens.chunks(self.opts.num_batch) {
            self.model
                .forward(chunk, &Batch::Run { seq: 0, pos0: self.ctx.len(), n: chunk.len() })?;
            self.ctx.extend_from_slice(chunk);
            last = chunk.len();
        }
        if last > 0 {
            self.model.logits(last - 1..last, &mut self.logits)?;
        }
        Ok(())
    }

    /// Evaluates `tokens` from position 0 and writes the logits of hidden rows `rows` of the
    /// *last* batch into `out` (used by perplexity; `tokens.len()` ≤ num_batch).
    pub fn eval_logits(
        &mut self,
        tokens: &[u32],
        rows: Range<usize>,
        out: &mut [f32],
    ) -> Result<()> {
        if tokens.len() > self.opts.num_batch {
            return Err(Error::option(
                "num_batch",
                self.opts.num_batch,
                "smaller than the chunk to score",
            ));
        }
        self.eval_from_start(tokens)?;
        self.model.logits(rows, out)
    }

    /// Logits of more hidden rows of the last evaluated batch.
    pub fn logits_rows(&mut self, rows: Range<usize>, out: &mut [f32]) -> Result<()> {
        self.model.logits(rows, out)
    }

    /// The device each block and the head run on.
    pub fn placement(&self) -> Vec<SlotDevice> {
        self.model.placement()
    }

    /// The prompt as it will be evaluated: ids checked, and Ollama's truncation applied when it
    /// exceeds num_ctx (keep num_keep, drop the oldest of the rest).
    fn fit_prompt(
        &self,
        prompt: &[u32],
        opts: &GenerateOptions,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<u32>> {
        let (num_ctx, n_vocab) = (self.opts.num_ctx, self.model.cfg.n_vocab);
        if prompt.is_empty() {
            return Err(Error::option("prompt", "\"\"", "it has no tokens"));
        }
        if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(Error::TokenId { id: bad, n_vocab });
        }
        let mut prompt = prompt.to_vec();
        if prompt.len() > num_ctx {
            if !opts.truncate {
                return Err(Error::PromptTooLong { n_prompt: prompt.len(), num_ctx });
            }
            // ref: Ollama runner NewSequence: keep num_keep, drop the oldest of the rest
            let keep = opts.num_keep.min(num_ctx - 1);
            let drop = prompt.len() - num_ctx;
            warnings.push(format!(
                "the prompt has {} tokens, more than num_ctx {num_ctx}; kept the first {keep} and dropped the next {drop}",
                prompt.len()
            ));
            prompt.drain(keep..keep + drop);
        }
        Ok(prompt)
    }

    /// Makes room when the context is full: keep num_keep, discard half of the rest, evaluate
    /// what remains again (ref: llama-server context shift). False when shifting is off.
    fn shift_context(&mut self, opts: &GenerateOptions) -> Result<bool> {
        if !opts.shift {
            return Ok(false);
        }
        let keep = opts.num_keep.min(self.opts.num_ctx - 1);
        let discard = ((self.ctx.len() - keep) / 2).max(1);
        let mut kept = std::mem::take(&mut self.ctx);
        kept.drain(keep..keep + discard);
        self.eval_from_start(&kept)?;
        Ok(true)
    }

    /// Generates from prompt token ids, calling `on_text` with each piece of text as it becomes
    /// final (stop strings are held back while they may still match, and trimmed). A grammar in
    /// the options masks every token it cannot take; generation stops when it is complete.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        opts: &GenerateOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Output> {
        let t0 = Instant::now();
        let load_ns = self.pending_load_ns.take().unwrap_or(0);
        let num_ctx = self.opts.num_ctx;
        let mut sampler = Sampler::new(opts.sampler.clone(), self.model.cfg.n_vocab, num_ctx)?;
        let mut constraint = match &opts.grammar {
            Some(g) => Some(Constraint::new(self.vocab()?, g)?),
            None => None,
        };
        let mut warnings = vec![];
        let prompt = self.fit_prompt(prompt, opts, &mut warnings)?;
        prompt.iter().for_each(|&t| sampler.accept(t));
        let mut t = Timings { load_duration: load_ns, ..Default::default() };

        let t_prompt = Instant::now();
        let cached = self.prefill(&prompt)?;
        // a device backend's queued work is done before its clock is read
        self.model.sync()?;
        t.prompt_eval_duration = since(t_prompt);
        t.prompt_cached_count = cached as u64;
        t.prompt_eval_count = (prompt.len() - cached) as u64;

        let t_eval = Instant::now();
        let max_new =
            if opts.num_predict < 0 { 10 * num_ctx as u64 } else { opts.num_predict as u64 };
        let mut out = Decoded::default();
        // the chain's first stages run next to the logits where the head's backend can, so that
        // only k candidates leave the device; log-probabilities and grammars need every logit
        let front_k = if opts.logprobs == 0 && constraint.is_none() {
            sampler.front_k(MAX_FRONT_K)
        } else {
            None
        };
        // the prompt's logits are on the host; a decode step's stay on the device for the front
        let mut on_host = true;
        while (out.ids.len() as u64) < max_new {
            if opts.logprobs > 0 {
                out.logprobs.push(top_logprobs(&self.logits, opts.logprobs));
            }
            let id = match (on_host, front_k) {
                (false, Some(k)) => self.sample_front(&mut sampler, k)?,
                _ => {
                    let mask = match constraint.as_mut() {
                        Some(c) => Some(c.mask()?),
                        None => None,
                    };
                    sampler.sample_masked(&self.logits, mask)
                }
            };
            sampler.accept(id);
            if out.ids.is_empty() {
                t.ttft = load_ns + since(t0);
            }
            out.ids.push(id);
            if let Some(lp) = out.logprobs.last_mut() {
                lp.id = id;
                lp.logprob = log_softmax_at(&self.logits, id);
            }
            if self.tokenizer.is_eog(id) {
                out.done = DoneReason::Stop;
                break;
            }
            if let Some(c) = constraint.as_mut() {
                c.accept(id)?;
            }
            if out.push_text(&self.tokenizer, id, &opts.stop, on_text) {
                out.done = DoneReason::Stop;
                break;
            }
            if constraint.as_ref().is_some_and(Constraint::is_stopped) {
                out.done = DoneReason::Stop;
                break;
            }
            if out.ids.len() as u64 >= max_new {
                break;
            }
            if self.ctx.len() == num_ctx && !self.shift_context(opts)? {
                break;
            }
            self.model.forward(&[id], &Batch::Run { seq: 0, pos0: self.ctx.len(), n: 1 })?;
            self.ctx.push(id);
            on_host = front_k.is_none();
            if on_host {
                self.model.logits(0..1, &mut self.logits)?;
            }
        }
        out.finish(&opts.stop, on_text);
        self.model.sync()?;
        t.eval_count = out.ids.len() as u64;
        t.eval_duration = since(t_eval);
        t.total_duration = load_ns + since(t0);
        let (graph_kernels, note) = self.graph_info();
        warnings.extend(note);
        Ok(Output {
            response: out.response,
            prompt_ids: prompt,
            ids: out.ids,
            done_reason: out.done,
            timings: t,
            logprobs: out.logprobs,
            warnings,
            graph_kernels,
        })
    }

    /// The next token from the last decode step's logits through the head backend's front end
    /// (penalties and top-k there, the rest of the chain here), or from the full row where
    /// that backend has none.
    fn sample_front(&mut self, sampler: &mut Sampler, k: usize) -> Result<u32> {
        let o = &sampler.opts;
        let (repeat_penalty, frequency_penalty, presence_penalty) =
            (o.repeat_penalty, o.frequency_penalty, o.presence_penalty);
        let front = Front {
            k,
            repeat_penalty,
            frequency_penalty,
            presence_penalty,
            pairs: sampler.penalty_pairs(),
        };
        if self.model.sample_front(0, &front, &mut self.front)? {
            return Ok(sampler.sample_front(&self.front));
        }
        self.model.logits(0..1, &mut self.logits)?;
        Ok(sampler.sample(&self.logits))
    }

    /// Kernel launches of one eager decode step as a captured CUDA graph counts them, and a
    /// note when capture failed; `(None, None)` without CUDA graphs.
    pub fn graph_info(&self) -> (Option<usize>, Option<String>) {
        self.model.graph_info()
    }

    /// Placement of every block.
    pub fn placements(&self) -> &[Placement] {
        &self.plan.blocks
    }
}

/// What a request has decoded so far: ids, text (stop strings held back while they may still
/// match), log-probabilities and why it ended.
struct Decoded {
    ids: Vec<u32>,
    logprobs: Vec<TokenLogprob>,
    stream: TextStream,
    held: String,
    response: String,
    done: DoneReason,
}

impl Default for Decoded {
    fn default() -> Self {
        Decoded {
            ids: vec![],
            logprobs: vec![],
            stream: TextStream::default(),
            held: String::new(),
            response: String::new(),
            done: DoneReason::Length,
        }
    }
}

impl Decoded {
    /// Adds a token's text; true when a stop string ended the output.
    fn push_text(
        &mut self,
        tok: &Tokenizer,
        id: u32,
        stop: &[String],
        on_text: &mut dyn FnMut(&str),
    ) -> bool {
        self.held.push_str(&self.stream.push(tok, id));
        if let Some(cut) = stop.iter().filter_map(|s| self.held.find(s.as_str())).min() {
            self.held.truncate(cut);
            let n = self.held.len();
            emit(&mut self.held, n, &mut self.response, on_text);
            return true;
        }
        let hold = stop.iter().map(|s| partial_suffix(&self.held, s)).max().unwrap_or(0);
        let n = self.held.len() - hold;
        emit(&mut self.held, n, &mut self.response, on_text);
        false
    }

    /// Flushes held text at the end (a stop string that matched is never shown).
    fn finish(&mut self, stop: &[String], on_text: &mut dyn FnMut(&str)) {
        if self.done == DoneReason::Length || !self.held.is_empty() {
            self.held.push_str(&self.stream.finish());
            if !stop.iter().any(|s| self.held.contains(s.as_str())) {
                let n = self.held.len();
                emit(&mut self.held, n, &mut self.response, on_text);
            }
        }
    }
}

/// Moves the first `n` bytes of `held` to the response and the callback.
fn emit(held: &mut String, n: usize, response: &mut String, on_text: &mut dyn FnMut(&str)) {
    if n == 0 {
        return;
    }
    let n = (0..=n).rev().find(|&i| held.is_char_boundary(i)).unwrap_or(0);
    on_text(&held[..n]);
    response.push_str(&held[..n]);
    held.drain(..n);
}

/// Length of the longest suffix of `text` that is a proper prefix of `stop`.
fn partial_suffix(text: &str, stop: &str) -> usize {
    (1..stop.len().min(text.len() + 1))
        .rev()
        .find(|&k| stop.is_char_boundary(k) && text.ends_with(&stop[..k]))
        .unwrap_or(0)
}

fn log_softmax_at(logits: &[f32], id: u32) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    logits[id as usize] - max - sum.ln() as f32
}

/// The top-N `(id, logprob)` pairs of the raw logits (softmax over the whole vocabulary).
pub fn top_logprobs(logits: &[f32], n: usize) -> TokenLogprob {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + logits.iter().map(|&l| ((l - max) as f64).exp()).sum::<f64>().ln() as f32;
    let mut top: Vec<(u32, f32)> = Vec::with_capacity(n + 1);
    for (i, &l) in logits.iter().enumerate() {
        if top.len() < n || l > top[top.len() - 1].1 {
            let at = top.partition_point(|x| x.1 >= l);
            top.insert(at, (i as u32, l));
            top.truncate(n);
        }
    }
    top.iter_mut().for_each(|x| x.1 -= lse);
    TokenLogprob { id: 0, logprob: 0.0, top }
}

/// Sizes for the offload planner, read from tensor headers alone (no weights touched): each
/// block's weights and the KV cache it holds for `opts` (num_ctx × n_seq), the head, the
/// embedding.
pub fn sizes(g: &Gguf, opts: &LoadOptions) -> Result<offload::Sizes> {
    let cfg = Gemma3Config::from_gguf(g)?;
    let embd = g.tensor("token_embd.weight").map_or(0, |t| t.bytes);
    let head = g.tensor("output.weight").map_or(embd, |t| t.bytes)
        + g.tensor("output_norm.weight").map_or(0, |t| t.bytes);
    let nb = opts.num_batch.min(opts.num_ctx);
    let kv = |l| KvCache::layer_bytes(&cfg, l, opts.num_ctx, nb, opts.swa_full) * opts.n_seq as u64;
    Ok(offload::Sizes {
        block_bytes: (0..cfg.n_layer).map(|l| Model::layer_bytes(g, l) + kv(l)).collect(),
        head_bytes: head,
        embd_bytes: embd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_stop_suffixes_are_held_back() {
        assert_eq!(partial_suffix("hello wor", "world"), 3);
        assert_eq!(partial_suffix("hello", "world"), 0);
        assert_eq!(partial_suffix("ab<end", "<end_of_turn>"), 4);
    }

    #[test]
    fn top_logprobs_are_sorted_and_normalised() {
        let l = [0.0f32, 2.0, 1.0, -1.0];
        let t = top_logprobs(&l, 2);
        assert_eq!(t.top.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2]);
        let total: f32 = l.iter().map(|&x| (x - 2.0).exp()).sum();
        assert!((t.top[0].1 + total.ln()).abs() < 1e-5);
    }

    #[test]
    fn load_options_reject_zero_context() {
        let e = LoadOptions { num_ctx: 0, ..Default::default() }.validate().unwrap_err();
        assert!(e.to_string().contains("num_ctx"));
    }
}
