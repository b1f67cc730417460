//! The engine: a loaded model, its tokenizer and KV slots, and generation with Ollama's options,
//! context policy, stop handling and timing fields (`seq`), one request alone or several batched
//! into shared forwards (`batch`); embeddings (`embed`).

mod batch;
pub mod embed;
mod seq;

pub use batch::{Arrival, Batcher, Request, Sink};
pub use seq::top_logprobs;
use seq::Seq;

use crate::backend::cpu::kv::KvCache;
pub use crate::backend::lora::Adapter;
use crate::backend::{Batch, KvType, Sizing};
use crate::chat;
use crate::config::Gemma3Config;
use crate::constraint::{Constraint, Grammar, Vocab};
use crate::error::{Error, Result};
use crate::gguf::Gguf;
use crate::model::{GpuDevice, Model, SlotDevice};
use crate::offload::{self, Placement, Plan};
use crate::sampler::{Sampler, SamplerOptions};
use crate::timing::{since, Timings};
use crate::tokenizer::Tokenizer;
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
    /// How the KV cache stores K and V (f16 as Ollama and llama.cpp).
    pub kv_type: KvType,
    /// LoRA adapters applied to the blocks' products (llama.cpp's `--lora`, Ollama's ADAPTER).
    pub adapters: Vec<Adapter>,
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
            kv_type: KvType::default(),
            adapters: vec![],
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
    /// The prompt's tokens' log-probabilities too, each with `logprobs` alternatives (OpenAI
    /// completions' `echo`); the prompt is then evaluated whole, no cached prefix reused.
    pub prompt_logprobs: bool,
    /// Added to a token's logit before sampling (OpenAI's `logit_bias`; −100 bans a token).
    pub logit_bias: Vec<(u32, f32)>,
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
            prompt_logprobs: false,
            logit_bias: vec![],
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
    /// The log-probability of each prompt token after the first, given the tokens before it
    /// (asked for with `prompt_logprobs`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prompt_logprobs: Vec<TokenLogprob>,
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
    /// Logits rows of a step (n_seq + 1 rows of n_vocab: one per decoding request, and a
    /// finished prompt's).
    logits: Vec<f32>,
    /// Candidates from a device front end.
    front: Vec<(u32, f32)>,
    /// Per KV slot, the tokens whose K/V are in its cache, in position order.
    ctx: Vec<Vec<u32>>,
    /// The batch a step lays out.
    batch: BatchBuf,
    /// Load time, reported by the first request only (later ones find the model loaded).
    pending_load_ns: Option<u64>,
    pub load_ns: u64,
    /// A model's own Go template (a Modelfile's TEMPLATE): prompts are made with it, not with
    /// the GGUF's chat template.
    pub template: Option<Arc<crate::gotmpl::Template>>,
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
        if opts.kv_type == KvType::Q8_0 && !cfg.head_dim.is_multiple_of(32) {
            let why = format!("needs head_dim a multiple of 32 (this model's is {})", cfg.head_dim);
            return Err(Error::option("kv_type", "q8_0", &why));
        }
        if opts.num_ctx > cfg.context_length {
            warnings.push(format!(
                "num_ctx {} exceeds the model's context_length {}; using {}",
                opts.num_ctx, cfg.context_length, cfg.context_length
            ));
            opts.num_ctx = cfg.context_length;
        }
        // a bidirectional model sees an input whole in one forward: batches as long as the
        // context (as llama.cpp's embeddings need n_ubatch ≥ the input)
        opts.num_batch = if cfg.causal { opts.num_batch.min(opts.num_ctx) } else { opts.num_ctx };
        let sizing = Sizing {
            num_ctx: opts.num_ctx,
            num_batch: opts.num_batch,
            n_seq: opts.n_seq,
            swa_full: opts.swa_full,
            kv_type: opts.kv_type,
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
                (Model::load(gguf, &plan, opts.gpu, &sizing, &opts.adapters)?, plan)
            }
            Source::Folder(_) if !opts.adapters.is_empty() => {
                let a = opts.adapters[0].path.display().to_string();
                let why = "applies to a GGUF model; this model is a safetensors folder";
                return Err(Error::option("adapter", a, why));
            }
            Source::Folder(f) => {
                let n = f.cfg.n_layer;
                let plan = Plan::all_gpu(n);
                (Model::load_folder(f, opts.gpu, &sizing)?, plan)
            }
        };
        if plan.gpu_slots > 0 && opts.gpu != GpuDevice::None && opts.kv_type != KvType::F32 {
            warnings.push(format!(
                "the candle backend keeps its KV cache in f32; --kv-type {} applies to the blocks on the CPU",
                opts.kv_type.name()
            ));
        }
        let mut engine = Engine {
            logits: vec![0.0; (opts.n_seq + 1) * model.cfg.n_vocab],
            front: Vec::with_capacity(MAX_FRONT_K),
            ctx: vec![vec![]; opts.n_seq],
            batch: BatchBuf::with_capacity(opts.num_batch),
            model,
            tokenizer,
            vocab: OnceLock::new(),
            plan,
            opts,
            warnings,
            pending_load_ns: None,
            load_ns: 0,
            template: None,
        };
        // Warm-up: touch every weight page and the code paths once, as llama.cpp does at load.
        let bos = engine.tokenizer.specials().bos.unwrap_or(0);
        engine.model.forward(&[bos], &Batch::Run { seq: 0, pos0: 0, n: 1 })?;
        let nv = engine.model.n_vocab();
        engine.model.logits(0..1, &mut engine.logits[..nv])?;
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
        if let (Some(t), false) = (&self.template, raw) {
            let text = chat::render_go(t, &[chat::Message::new("user", text)], None)?;
            return self.tokenizer.encode(&text, true, true);
        }
        let template = if raw { None } else { self.tokenizer.chat_template() };
        let (bos, eos) = (self.tokenizer.special_text(true), self.tokenizer.special_text(false));
        let text = chat::prompt(template, text, &bos, &eos)?;
        self.tokenizer.encode(&text, true, true)
    }

    /// Token ids for a conversation under the model's chat template (see [`chat::render`]),
    /// ending where the model's turn starts; BOS added and special tokens parsed.
    pub fn chat_ids(&self, messages: &[chat::Message]) -> Result<Vec<u32>> {
        let (bos, eos) = (self.tokenizer.special_text(true), self.tokenizer.special_text(false));
        let text = match &self.template {
            Some(t) => chat::render_go(t, messages, None)?,
            None => chat::render(self.tokenizer.chat_template(), messages, &bos, &eos)?,
        };
        self.tokenizer.encode(&text, true, true)
    }

    /// Evaluates `tokens` from position 0 of slot `slot` (in num_batch pieces) and keeps them as
    /// its context.
    fn eval_from_start(&mut self, slot: usize, tokens: &[u32]) -> Result<()> {
        self.ctx[slot].clear();
        self.eval_more(slot, tokens)
    }

    /// Evaluates `tokens` after slot `slot`'s context, in num_batch pieces.
    fn eval_more(&mut self, slot: usize, tokens: &[u32]) -> Result<()> {
        for chunk in tokens.chunks(self.opts.num_batch) {
            let pos0 = self.ctx[slot].len();
            self.model.forward(chunk, &Batch::Run { seq: slot, pos0, n: chunk.len() })?;
            self.ctx[slot].extend_from_slice(chunk);
        }
        Ok(())
    }

    /// How many leading tokens of `prompt` the cache already holds and can reuse: the longest
    /// common prefix, less one (the last prompt token is always evaluated, for its logits), and
    /// only while the sliding-window rings still hold it (see [`crate::backend::Backend::reusable`]).
    pub fn reusable_prefix(&self, prompt: &[u32]) -> usize {
        self.reusable_prefix_in(0, prompt)
    }

    /// [`Engine::reusable_prefix`] in KV slot `slot`.
    pub fn reusable_prefix_in(&self, slot: usize, prompt: &[u32]) -> usize {
        let ctx = &self.ctx[slot];
        let common = ctx.iter().zip(prompt).take_while(|(a, b)| a == b).count();
        let keep = common.min(prompt.len().saturating_sub(1));
        if self.model.reusable(slot, keep, ctx.len()) {
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
        self.ctx[0].truncate(keep);
        self.eval_more(0, &prompt[keep..])?;
        let last = (prompt.len() - keep - 1) % self.opts.num_batch;
        let nv = self.model.n_vocab();
        self.model.logits(last..last + 1, &mut self.logits[..nv])?;
        Ok(keep)
    }

    /// Makes KV slot `to` hold what slot `from` holds (its cache and its tokens), so that a
    /// prompt prefix evaluated once is reused by requests in either slot.
    pub fn copy_slot(&mut self, from: usize, to: usize) -> Result<()> {
        self.model.copy_seq(from, to)?;
        self.ctx[to] = self.ctx[from].clone();
        Ok(())
    }

    /// The logits of the last evaluated token.
    pub fn logits(&self) -> &[f32] {
        &self.logits[..self.model.n_vocab()]
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
        self.ctx[0].truncate(pos0);
        self.eval_more(0, tokens)?;
        if let Some(last) = tokens.len().checked_sub(1).map(|l| l % self.opts.num_batch) {
            let nv = self.model.n_vocab();
            self.model.logits(last..last + 1, &mut self.logits[..nv])?;
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
        self.eval_from_start(0, tokens)?;
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

    /// A request's generation state: the prompt checked and fitted (Ollama's truncation when it
    /// exceeds num_ctx: keep num_keep, drop the oldest of the rest), its sampler chain and its
    /// grammar compiled.
    fn start(&self, prompt: &[u32], opts: &GenerateOptions, at: Arrival) -> Result<Seq> {
        if !self.model.cfg.causal {
            return Err(Error::option(
                "model",
                "gemma-embedding",
                "an embedding model: it does not generate text",
            ));
        }
        let (num_ctx, n_vocab) = (self.opts.num_ctx, self.model.cfg.n_vocab);
        let sampler = Sampler::new(opts.sampler.clone(), n_vocab, num_ctx)?;
        let constraint = match &opts.grammar {
            Some(g) => Some(Constraint::new(self.vocab()?, g)?),
            None => None,
        };
        if prompt.is_empty() {
            return Err(Error::option("prompt", "\"\"", "it has no tokens"));
        }
        if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(Error::TokenId { id: bad, n_vocab });
        }
        let mut prompt = prompt.to_vec();
        let mut warnings = vec![];
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
        Ok(Seq::new(prompt, opts, (sampler, constraint), num_ctx, at, warnings))
    }

    /// Makes room in slot `slot`'s full context: keep `num_keep`, discard half of the rest,
    /// evaluate what remains again (ref: llama-server context shift).
    fn shift_context(&mut self, slot: usize, num_keep: usize) -> Result<()> {
        let keep = num_keep.min(self.opts.num_ctx - 1);
        let discard = ((self.ctx[slot].len() - keep) / 2).max(1);
        let mut kept = std::mem::take(&mut self.ctx[slot]);
        kept.drain(keep..keep + discard);
        self.eval_from_start(slot, &kept)
    }

    /// Generates from prompt token ids, calling `on_text` with each piece of text as it becomes
    /// final (stop strings are held back while they may still match, and trimmed). A grammar in
    /// the options masks every token it cannot take; generation stops when it is complete. The
    /// request runs alone in KV slot 0, through the batcher's steps.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        opts: &GenerateOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Output> {
        self.generate_while(prompt, opts, &mut |piece| {
            on_text(piece);
            true
        })
    }

    /// [`Engine::generate`], stopped early when `on_text` returns false (an interrupted answer:
    /// its output holds what was generated until then).
    pub fn generate_while(
        &mut self,
        prompt: &[u32],
        opts: &GenerateOptions,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Output> {
        struct Local<'a> {
            on_text: &'a mut dyn FnMut(&str) -> bool,
            out: &'a mut Option<Result<Output>>,
        }
        impl Sink for Local<'_> {
            fn text(&mut self, piece: &str, _: &[TokenLogprob]) -> bool {
                (self.on_text)(piece)
            }
            fn done(&mut self, out: Result<Output>) {
                *self.out = Some(out);
            }
        }
        let load_ns = self.pending_load_ns.take().unwrap_or(0);
        let mut result = None;
        {
            let sink = Box::new(Local { on_text, out: &mut result });
            // the load happened before this call; the request's clock starts before it
            let now = Instant::now();
            let t0 = now.checked_sub(std::time::Duration::from_nanos(load_ns)).unwrap_or(now);
            let arrival = Arrival { t0, load_ns };
            let req = Request { prompt: prompt.to_vec(), opts: opts.clone(), sink, arrival };
            let mut b = Batcher::new();
            b.admit_at(self, 0, req);
            while !b.is_empty() {
                if let Err(e) = b.step(self) {
                    b.fail_all(self, &e);
                    return Err(e);
                }
            }
        }
        result.expect("invariant: a finished request reports its output")
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

/// A step's batch: token, KV slot and position of each row, allocated at load.
struct BatchBuf {
    tokens: Vec<u32>,
    seq: Vec<usize>,
    pos: Vec<usize>,
}

impl BatchBuf {
    fn with_capacity(n: usize) -> Self {
        BatchBuf {
            tokens: Vec::with_capacity(n),
            seq: Vec::with_capacity(n),
            pos: Vec::with_capacity(n),
        }
    }

    fn clear(&mut self) {
        self.tokens.clear();
        self.seq.clear();
        self.pos.clear();
    }

    fn push(&mut self, token: u32, seq: usize, pos: usize) {
        self.tokens.push(token);
        self.seq.push(seq);
        self.pos.push(pos);
    }
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
    let kv = |l| {
        KvCache::layer_bytes(&cfg, l, opts.num_ctx, nb, opts.swa_full, opts.kv_type)
            * opts.n_seq as u64
    };
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
    fn load_options_reject_zero_context() {
        let e = LoadOptions { num_ctx: 0, ..Default::default() }.validate().unwrap_err();
        assert!(e.to_string().contains("num_ctx"));
    }
}
