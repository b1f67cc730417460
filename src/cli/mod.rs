//! The command line: clap definitions, one function per subcommand, and all printing.

use anyhow::{Context, Result};
use chimera::backend::cpu::kv::KvCache;
use chimera::constraint::Grammar;
use chimera::engine::{Engine, GenerateOptions, LoadOptions, Output};
use chimera::gguf::{Gguf, TensorType};
use chimera::model::GpuDevice;
use chimera::model::{size_label, Gemma3Config};
use chimera::registry::{self, Registry};
use chimera::sampler::SamplerOptions;
use chimera::tokenizer::Tokenizer;
use clap::{Args, Parser, Subcommand};
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

mod analyze;

/// `println!` that returns the write error (a closed pipe ends the command cleanly in `main`)
/// instead of panicking.
macro_rules! outln {
    ($($t:tt)*) => {
        writeln!(std::io::stdout().lock(), $($t)*)?
    };
}

/// gemma3 GGUF inference in-process: run, show, tokenize, perplexity, pull.
#[derive(Parser, Debug)]
#[command(name = "chimera", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate text from a prompt (argument, stdin, or --prompt-ids).
    Run(RunArgs),
    /// Print metadata, shapes, tensor types, sizes and the offload plan.
    Show(ShowArgs),
    /// Print the token ids of a text (special tokens parsed).
    Tokenize(TokenizeArgs),
    /// llama-perplexity's method on a text file.
    Perplexity(PerplexityArgs),
    /// Fetch a registry model into the local store and verify it.
    Pull {
        /// A name from models.toml (e.g. gemma3:270m).
        name: String,
    },
    /// List registry models and whether each is present locally.
    List,
    /// Extract facts from a folder of benchmark artifacts (CSV, JSON, Markdown); no model needed.
    Ingest(IngestArgs),
    /// The Chimera agent: ingest a folder, then write a grounded technical report with the model.
    Analyze(AnalyzeArgs),
    /// llama-bench's method: prompt (pp) and generation (tg) throughput over a grid of settings.
    Bench(BenchArgs),
    /// Requantize a GGUF with llama.cpp's per-tensor type choices.
    Quantize(QuantizeArgs),
}

#[derive(Args, Debug)]
pub struct QuantizeArgs {
    /// The input GGUF (a path or a registry name).
    pub input: String,
    /// The output GGUF path.
    pub output: PathBuf,
    /// F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q4_K_M or Q5_K_M.
    #[arg(value_name = "TYPE")]
    pub ty: String,
    /// Allow an already quantized input.
    #[arg(long)]
    pub allow_requantize: bool,
}

fn pairs(s: &str) -> std::result::Result<(usize, usize), String> {
    let (a, b) = s.split_once(',').ok_or_else(|| format!("'{s}' is not PP,TG"))?;
    Ok((
        a.trim().parse().map_err(|_| format!("'{a}'"))?,
        b.trim().parse().map_err(|_| format!("'{b}'"))?,
    ))
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Models (.gguf paths or registry names), comma-separated or repeated.
    #[arg(
        short = 'm',
        long = "model",
        value_delimiter = ',',
        required_unless_present = "synthetic"
    )]
    pub models: Vec<String>,
    /// Synthetic models of these sizes (gemma3:270m, 1b, 4b, 12b, 27b): random weights, real shapes.
    #[arg(long, value_delimiter = ',')]
    pub synthetic: Vec<String>,
    /// The quantization of synthetic models (llama.cpp's per-tensor mix for the _M types).
    #[arg(long, default_value = "Q4_K_M")]
    pub quant: String,
    /// Prompt lengths (pp tests).
    #[arg(short = 'p', long = "n-prompt", value_delimiter = ',', default_value = "512")]
    pub n_prompt: Vec<usize>,
    /// Generation lengths (tg tests).
    #[arg(short = 'n', long = "n-gen", value_delimiter = ',', default_value = "128")]
    pub n_gen: Vec<usize>,
    /// Prompt + generation pairs PP,TG timed together (repeatable; `-pg` works too).
    #[arg(long = "pg", value_parser = pairs)]
    pub pg: Vec<(usize, usize)>,
    /// Context depths prefilled (untimed) before each test.
    #[arg(short = 'd', long = "n-depth", value_delimiter = ',', default_value = "0")]
    pub depth: Vec<usize>,
    /// Offloaded layers, Ollama's num_gpu (`-ngl` works too).
    #[arg(
        long = "num-gpu",
        alias = "ngl",
        value_delimiter = ',',
        default_value = "-1",
        allow_negative_numbers = true
    )]
    pub num_gpu: Vec<i64>,
    /// Threads (0 = all cores).
    #[arg(short = 't', long = "threads", value_delimiter = ',', default_value = "0")]
    pub threads: Vec<usize>,
    /// Prompt tokens per forward.
    #[arg(short = 'b', long = "batch-size", value_delimiter = ',', default_value = "512")]
    pub n_batch: Vec<usize>,
    /// Context size (0 = what each test needs).
    #[arg(short = 'c', long = "num-ctx", default_value_t = 0)]
    pub num_ctx: usize,
    /// Repetitions per test.
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    pub reps: usize,
    #[arg(long)]
    pub no_warmup: bool,
    /// Output format: md, csv, json, jsonl.
    #[arg(short = 'o', long = "output", default_value = "md")]
    pub output: String,
    /// Also print this format to stderr (`-oe` works too).
    #[arg(long = "oe")]
    pub output_err: Option<String>,
    /// Draw t/s per configuration as an SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// The artifact folder.
    pub dir: PathBuf,
    /// A .gguf path or a models.toml name.
    #[arg(long, default_value = "gemma3:270m")]
    pub model: String,
    /// Agent runs (each: collector then insight), after one warm-up call.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Also run Ollama's defaults as the baseline and write a comparison report.
    #[arg(long)]
    pub compare: bool,
    /// Output folder (default reports/chimera-<UTC timestamp>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Allow the output folder inside the analysed folder.
    #[arg(long)]
    pub allow_inside: bool,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// The agent label in report titles.
    #[arg(long, default_value = "Chimera")]
    pub label: String,
    /// Skip artifact files larger than this many bytes.
    #[arg(long, default_value_t = 64 << 20)]
    pub max_file_bytes: u64,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub gen: GenArgs,
}

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// The folder to walk (reports/, csv_data/, artifacts/ and anything else under it).
    pub dir: PathBuf,
    /// Print the facts as JSON (the default prints a summary).
    #[arg(long)]
    pub json: bool,
    /// Skip files larger than this many bytes.
    #[arg(long, default_value_t = 64 << 20)]
    pub max_file_bytes: u64,
}

/// Options fixed at load (Ollama's runner options).
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Context size in tokens.
    #[arg(long, default_value_t = 4096)]
    pub num_ctx: usize,
    /// Layers offloaded to the GPU: −1 automatic, 0 CPU, N the last N blocks, N > blocks the head too.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub num_gpu: i64,
    /// CPU threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub num_thread: usize,
    /// Prompt tokens evaluated per forward.
    #[arg(long, default_value_t = 512)]
    pub num_batch: usize,
    /// The GPU that runs offloaded layers (CUDA device index).
    #[arg(long, default_value_t = 0)]
    pub main_gpu: usize,
}

impl LoadArgs {
    fn options(&self) -> Result<LoadOptions> {
        Ok(LoadOptions {
            num_ctx: self.num_ctx,
            num_batch: self.num_batch,
            num_thread: self.num_thread,
            num_gpu: self.num_gpu,
            gpu: gpu_device(self.main_gpu)?,
            cuda_graphs: cuda_graphs()?,
            ..LoadOptions::default()
        })
    }
}

/// The device GPU slots run on, as placements name it.
fn gpu_name(g: GpuDevice) -> String {
    match g {
        GpuDevice::None => "cpu".into(),
        GpuDevice::CandleCpu => "candle-cpu".into(),
        GpuDevice::Cuda(i) => format!("cuda:{i}"),
    }
}

/// What runs GPU slots: `CHIMERA_DEVICE` (`candle-cpu`, `cuda`, `cuda:N`, `cpu`), else the
/// build's GPU (CUDA device `main_gpu` in a CUDA build, none otherwise).
fn gpu_device(main_gpu: usize) -> Result<GpuDevice> {
    let Ok(v) = std::env::var("CHIMERA_DEVICE") else { return Ok(GpuDevice::for_build(main_gpu)) };
    Ok(match v.trim() {
        "" => GpuDevice::for_build(main_gpu),
        "candle-cpu" => GpuDevice::CandleCpu,
        "cpu" => GpuDevice::None,
        "cuda" => GpuDevice::Cuda(main_gpu),
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(n) => GpuDevice::Cuda(n),
            None => anyhow::bail!(
                "invalid value for CHIMERA_DEVICE: '{other}' (candle-cpu, cuda, cuda:N or cpu)"
            ),
        },
    })
}

/// Whether decode steps may be replayed as CUDA graphs: `CHIMERA_CUDA_GRAPHS=0` turns them off.
fn cuda_graphs() -> Result<bool> {
    match std::env::var("CHIMERA_CUDA_GRAPHS").as_deref().map(str::trim) {
        Err(_) | Ok("" | "1" | "on" | "true") => Ok(true),
        Ok("0" | "off" | "false") => Ok(false),
        Ok(other) => anyhow::bail!("invalid value for CHIMERA_CUDA_GRAPHS: '{other}' (0 or 1)"),
    }
}

/// Sampling and generation options with Ollama's names and defaults.
#[derive(Args, Debug, Clone)]
pub struct GenArgs {
    /// Tokens to generate (−1 = until a stop).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub num_predict: i64,
    /// Tokens kept from the start on truncation and context shift.
    #[arg(long, default_value_t = 4)]
    pub num_keep: usize,
    /// Temperature (0 = greedy).
    #[arg(long, default_value_t = 0.8, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 40, allow_negative_numbers = true)]
    pub top_k: i32,
    /// Nucleus sampling threshold (1 = off).
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    pub top_p: f32,
    /// Minimum probability relative to the top token (0 = off).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub min_p: f32,
    /// Repeat penalty (1 = off).
    #[arg(long, default_value_t = 1.1, allow_negative_numbers = true)]
    pub repeat_penalty: f32,
    /// Tokens the penalties look back over (−1 = num_ctx, 0 = off).
    #[arg(long, default_value_t = 64, allow_negative_numbers = true)]
    pub repeat_last_n: i32,
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub presence_penalty: f32,
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub frequency_penalty: f32,
    /// RNG seed (−1 = random).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub seed: i64,
    /// Stop string (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Fail instead of truncating a prompt longer than num_ctx.
    #[arg(long)]
    pub no_truncate: bool,
    /// Stop with `length` instead of shifting the context when it fills.
    #[arg(long)]
    pub no_shift: bool,
}

impl GenArgs {
    fn options(&self, logprobs: usize) -> GenerateOptions {
        GenerateOptions {
            num_predict: self.num_predict,
            num_keep: self.num_keep,
            stop: self.stop.clone(),
            truncate: !self.no_truncate,
            shift: !self.no_shift,
            logprobs,
            sampler: SamplerOptions {
                temperature: self.temperature,
                top_k: self.top_k,
                top_p: self.top_p,
                min_p: self.min_p,
                repeat_penalty: self.repeat_penalty,
                repeat_last_n: self.repeat_last_n,
                presence_penalty: self.presence_penalty,
                frequency_penalty: self.frequency_penalty,
                seed: self.seed,
            },
            grammar: None,
        }
    }
}

/// The grammar `--format` or `--grammar` asks for; a file that cannot be read or parsed is named.
fn grammar(format: Option<&str>, lark: Option<&std::path::Path>) -> Result<Option<Grammar>> {
    if let Some(p) = lark {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("--grammar {}", p.display()))?;
        return Ok(Some(Grammar::Lark(text)));
    }
    match format {
        None => Ok(None),
        Some("json") => Ok(Some(Grammar::Json)),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("--format {path}"))?;
            let schema: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("--format {path}: not a JSON schema: {e}"))?;
            Ok(Some(Grammar::JsonSchema(schema)))
        }
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// A .gguf path or a models.toml name.
    pub model: String,
    /// The prompt (read from stdin when absent).
    pub prompt: Option<String>,
    /// The prompt as a JSON array of token ids (no template, no BOS added).
    #[arg(long, conflicts_with = "prompt")]
    pub prompt_ids: Option<String>,
    /// Do not apply the chat template.
    #[arg(long)]
    pub raw: bool,
    /// Print Ollama's statistics block to stderr.
    #[arg(long)]
    pub verbose: bool,
    /// Print one JSON object at the end (response, ids, done_reason, every timing field) instead
    /// of streaming text.
    #[arg(long)]
    pub json: bool,
    /// The output's format, as Ollama's `format`: `json` (any JSON value) or a JSON schema file.
    #[arg(long, value_name = "json|SCHEMA.json", conflicts_with = "grammar")]
    pub format: Option<String>,
    /// A Lark grammar file the output must follow (llguidance's Lark dialect).
    #[arg(long, value_name = "FILE")]
    pub grammar: Option<PathBuf>,
    /// With --json: per generated token, its logprob and the top-N alternatives.
    #[arg(long, default_value_t = 0)]
    pub logprobs: usize,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub gen: GenArgs,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    pub model: String,
    #[arg(long, default_value_t = 4096)]
    pub num_ctx: usize,
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub num_gpu: i64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct TokenizeArgs {
    pub model: String,
    /// The text (or use --file).
    pub text: Option<String>,
    #[arg(long, conflicts_with = "text")]
    pub file: Option<PathBuf>,
    /// Do not add BOS.
    #[arg(long)]
    pub no_bos: bool,
    /// Print ids and pieces as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct PerplexityArgs {
    pub model: String,
    pub file: PathBuf,
    #[arg(long, default_value_t = 512)]
    pub num_ctx: usize,
    #[arg(long, default_value_t = 0)]
    pub num_thread: usize,
    #[arg(long)]
    pub json: bool,
}

/// Rewrites llama-bench's multi-letter short flags (`-pg`, `-ngl`, `-oe`) to their long forms,
/// which clap can parse.
pub fn normalize_args(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    args.map(|a| match a.to_str() {
        Some("-pg") => "--pg".into(),
        Some("-ngl") => "--ngl".into(),
        Some("-oe") => "--oe".into(),
        _ => a,
    })
    .collect()
}

/// Dispatches a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(a) => run_cmd(a),
        Command::Show(a) => show(a),
        Command::Tokenize(a) => tokenize(a),
        Command::Perplexity(a) => perplexity(a),
        Command::Pull { name } => pull(&name),
        Command::List => list(),
        Command::Ingest(a) => ingest(a),
        Command::Analyze(a) => analyze::run(a),
        Command::Bench(a) => bench(a),
        Command::Quantize(a) => quantize(a),
    }
}

/// A stderr progress bar for fetches and hashing (hidden when stderr is not a terminal).
fn progress_printer() -> impl FnMut(&str, u64, Option<u64>) {
    let bar = indicatif::ProgressBar::new(0);
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut last = String::new();
    move |what: &str, done: u64, total: Option<u64>| {
        if what != last {
            if !std::io::stderr().is_terminal() {
                eprintln!("chimera: {what}");
            }
            bar.set_message(what.to_string());
            last = what.to_string();
        }
        if let Some(t) = total {
            bar.set_length(t);
        }
        bar.set_position(done);
    }
}

fn resolve(model: &str) -> Result<PathBuf> {
    Ok(registry::resolve(model, &mut progress_printer())?)
}

fn load(model: &str, opts: LoadOptions) -> Result<Engine> {
    let path = resolve(model)?;
    let engine = Engine::load(&path, opts)?;
    for w in &engine.warnings {
        eprintln!("warning: {w}");
    }
    Ok(engine)
}

fn run_cmd(a: RunArgs) -> Result<()> {
    let mut opts = a.gen.options(a.logprobs);
    opts.grammar = grammar(a.format.as_deref(), a.grammar.as_deref())?;
    opts.sampler.validate()?;
    a.load.options()?.validate()?;
    let prompt_ids: Option<Vec<u32>> = match &a.prompt_ids {
        Some(s) => Some(
            serde_json::from_str(s)
                .map_err(|e| anyhow::anyhow!("invalid value for --prompt-ids: {e}"))?,
        ),
        None => None,
    };
    let text = match (&prompt_ids, &a.prompt) {
        (Some(_), _) => None,
        (None, Some(p)) => Some(p.clone()),
        (None, None) => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("reading the prompt from stdin")?;
            Some(s)
        }
    };
    let mut engine = load(&a.model, a.load.options()?)?;
    let ids = match (prompt_ids, text) {
        (Some(ids), _) => ids,
        (None, Some(t)) => engine.prompt_ids(&t, a.raw)?,
        (None, None) => unreachable!("one of the two is set above"),
    };
    let json = a.json;
    let mut stdout = std::io::stdout().lock();
    let out = engine
        .generate(&ids, &opts, &mut |piece| {
            if !json {
                let _ = stdout.write_all(piece.as_bytes());
                let _ = stdout.flush();
            }
        })
        .map_err(|e| match (&e, &a.grammar, &a.format) {
            (chimera::Error::Grammar(_), Some(p), _) => {
                anyhow::anyhow!("--grammar {}: {e}", p.display())
            }
            (chimera::Error::Grammar(_), None, Some(f)) => anyhow::anyhow!("--format {f}: {e}"),
            _ => e.into(),
        })?;
    for w in &out.warnings {
        eprintln!("warning: {w}");
    }
    if json {
        // a struct, not a Value: f32 fields keep their shortest form
        #[derive(serde::Serialize)]
        struct Result<'a> {
            #[serde(flatten)]
            out: &'a chimera::engine::Output,
            placement: Vec<chimera::model::SlotDevice>,
        }
        serde_json::to_writer(&mut stdout, &Result { out: &out, placement: engine.placement() })?;
        writeln!(stdout)?;
    } else {
        writeln!(stdout)?;
    }
    if a.verbose {
        eprint!("{}", stats_block(&out));
    }
    Ok(())
}

/// Ollama's `--verbose` block (ref: ollama api/types.go Metrics.Summary).
pub fn stats_block(o: &Output) -> String {
    let t = &o.timings;
    let d = |ns: u64| format!("{:?}", std::time::Duration::from_nanos(ns));
    format!(
        "total duration:       {}\nload duration:        {}\nprompt eval count:    {} token(s)\nprompt eval duration: {}\nprompt eval rate:     {:.2} tokens/s\neval count:           {} token(s)\neval duration:        {}\neval rate:            {:.2} tokens/s\ntime to first token:  {}\n",
        d(t.total_duration),
        d(t.load_duration),
        t.prompt_eval_count,
        d(t.prompt_eval_duration),
        t.prompt_rate(),
        t.eval_count,
        d(t.eval_duration),
        t.eval_rate(),
        d(t.ttft),
    )
}

fn show(a: ShowArgs) -> Result<()> {
    let lopts = LoadOptions {
        num_ctx: a.num_ctx,
        num_gpu: a.num_gpu,
        gpu: gpu_device(0)?,
        ..Default::default()
    };
    lopts.validate()?;
    let path = resolve(&a.model)?;
    let g = Gguf::open(&path)?;
    let cfg = Gemma3Config::from_gguf(&g)?;
    let sizes = chimera::engine::sizes(&g, &lopts)?;
    let plan = chimera::offload::plan(&sizes, a.num_gpu, chimera::backend::free_memory(lopts.gpu))?;
    let devices = plan.bytes_by_device(&gpu_name(lopts.gpu));
    let mut hist: std::collections::BTreeMap<TensorType, (usize, u64)> = Default::default();
    for t in &g.tensors {
        let e = hist.entry(t.ty).or_default();
        e.0 += 1;
        e.1 += t.bytes;
    }
    let n_params: u64 = g.tensors.iter().map(|t| t.n_elements()).sum();
    let num_ctx = a.num_ctx.min(cfg.context_length);
    let kv = KvCache::bytes_for(&cfg, num_ctx, 512.min(num_ctx), false);
    if a.json {
        let v = serde_json::json!({
            "file": path, "file_size": g.file_size, "gguf_version": g.version,
            "config": cfg, "n_params": n_params, "size_label": size_label(cfg.n_layer),
            "tensor_types": hist.iter().map(|(t, (n, b))| (t.name().to_string(), serde_json::json!({"count": n, "bytes": b}))).collect::<serde_json::Map<_, _>>(),
            "num_ctx": num_ctx, "kv_bytes": kv, "offload": plan,
            "devices": devices.iter().map(|(d, b)| serde_json::json!({"device": d, "bytes": b})).collect::<Vec<_>>(),
            "metadata": g.metadata.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.brief()))).collect::<serde_json::Map<_, _>>(),
        });
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    outln!("file          {}", path.display());
    outln!("size          {} bytes (GGUF v{})", g.file_size, g.version);
    outln!("model         gemma3 {} ({} parameters)", size_label(cfg.n_layer), n_params);
    outln!(
        "shape         {} blocks, n_embd {}, n_ff {}, heads {}/{} kv, head_dim {}, vocab {}",
        cfg.n_layer,
        cfg.n_embd,
        cfg.n_ff,
        cfg.n_head,
        cfg.n_head_kv,
        cfg.head_dim,
        cfg.n_vocab
    );
    outln!(
        "attention     sliding window {:?}, rope base {} global / {} local, scale {}",
        cfg.sliding_window,
        cfg.rope_base_global,
        cfg.rope_base_local,
        cfg.rope_scale_global
    );
    outln!(
        "context       {} trained, num_ctx {num_ctx}: KV cache {:.1} MiB",
        cfg.context_length,
        kv as f64 / 1048576.0
    );
    outln!("tensor types");
    for (t, (n, b)) in &hist {
        outln!("  {:<6} {:>4} tensors {:>12} bytes", t.name(), n, b);
    }
    outln!("offload       num_gpu {}: {plan}", a.num_gpu);
    let per: Vec<String> = devices.iter().map(|(d, b)| format!("{d} {b} bytes")).collect();
    outln!("devices       {} (weights and KV cache at num_ctx {num_ctx})", per.join(", "));
    outln!("metadata");
    for (k, v) in &g.metadata {
        outln!("  {k} = {}", v.brief());
    }
    Ok(())
}

fn tokenize(a: TokenizeArgs) -> Result<()> {
    let text = match (&a.text, &a.file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("{}", f.display()))?
        }
        (None, None) => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s
        }
    };
    let path = resolve(&a.model)?;
    let tok = if chimera::config::is_folder(&path) {
        chimera::backend::candle::safetensors::Folder::open(&path)?.tokenizer()?
    } else {
        Tokenizer::from_gguf(&Gguf::open(&path)?)?
    };
    let ids = tok.encode(&text, !a.no_bos, true)?;
    if a.json {
        let pieces: Vec<String> = ids.iter().map(|&i| tok.token_text(i)).collect();
        outln!("{}", serde_json::json!({"ids": ids, "pieces": pieces, "n_tokens": ids.len()}));
    } else {
        outln!("{}", serde_json::to_string(&ids)?);
    }
    Ok(())
}

fn perplexity(a: PerplexityArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.file).with_context(|| format!("{}", a.file.display()))?;
    let opts = LoadOptions {
        num_ctx: a.num_ctx,
        num_batch: a.num_ctx,
        num_thread: a.num_thread,
        ..LoadOptions::default()
    };
    opts.validate()?;
    let mut engine = load(&a.model, opts)?;
    let json = a.json;
    let p = chimera::perplexity::run(&mut engine, &text, &mut |i, _n, ppl| {
        if !json {
            eprint!("[{i}]{ppl:.4},");
        }
    })?;
    if json {
        outln!("{}", serde_json::to_string(&p)?);
    } else {
        eprintln!();
        outln!(
            "Final estimate: PPL = {:.4} +/- {:.5} ({} chunks of {})",
            p.ppl,
            p.ppl_error,
            p.n_chunks,
            p.n_ctx
        );
    }
    Ok(())
}

fn pull(name: &str) -> Result<()> {
    let reg = Registry::load()?;
    let spec = reg.get(name).ok_or_else(|| {
        anyhow::anyhow!(
            "model '{name}' is not in the registry (known: {})",
            reg.models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
        )
    })?;
    let p = registry::pull(spec, &mut progress_printer())?;
    outln!("{}", p.display());
    Ok(())
}

fn list() -> Result<()> {
    let reg = Registry::load()?;
    outln!("{:<16} {:<8} {:>12}  LOCAL", "NAME", "QUANT", "SIZE");
    for m in &reg.models {
        let local = registry::store_dir().join(&m.file);
        let mark = if local.is_file() { local.display().to_string() } else { "-".into() };
        let d = if m.name == reg.default { " (default)" } else { "" };
        outln!(
            "{:<16} {:<8} {:>12}  {mark}{d}",
            m.name,
            m.quant.as_deref().unwrap_or("?"),
            m.size.map_or("?".into(), |s| s.to_string())
        );
    }
    Ok(())
}

fn ingest(a: IngestArgs) -> Result<()> {
    let opts = chimera::agent::ingest::IngestOptions { max_file_bytes: a.max_file_bytes };
    let f = chimera::agent::ingest::ingest(&a.dir, &opts)?;
    let found = chimera::agent::findings::findings(&f);
    if a.json {
        let mut v = serde_json::to_value(&f)?;
        v["findings"] = serde_json::to_value(&found)?;
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let t = &f.files;
    outln!(
        "{}: {} artifacts ({} csv, {} json, {} md), {} bytes; {} ignored, {} skipped, {} unreadable; {} series, {} sweeps, {} failed rows",
        f.root, t.total, t.by_type.csv, t.by_type.json, t.by_type.md, t.bytes, t.ignored, t.skipped.len(),
        t.unreadable.len(), f.series.len(), f.sweeps.len(), f.failures.len()
    );
    outln!("{} findings (ranked):", found.len());
    let w = found.iter().map(|x| x.kind.label().len()).max().unwrap_or(4);
    outln!("{:<4} {:<w$}  FINDING", "ID", "KIND");
    for x in &found {
        outln!("{:<4} {:<w$}  {}", x.id, x.kind.label(), x.sentence);
    }
    Ok(())
}

fn bench(a: BenchArgs) -> Result<()> {
    use chimera::bench::{self, Format, Grid};
    let format: Format = a.output.parse()?;
    let err_format: Option<Format> = a.output_err.as_deref().map(str::parse).transpose()?;
    let mut models = a.models.clone();
    if !a.synthetic.is_empty() {
        let quant: chimera::quantize::Target = a.quant.parse()?;
        let dir = registry::store_dir().with_file_name("synthetic");
        for size in &a.synthetic {
            eprintln!(
                "chimera: synthetic {size} {} (written once, then cached in {})",
                a.quant,
                dir.display()
            );
            models.push(
                chimera::synthetic::ensure(&dir, size, quant, &a.quant)?.display().to_string(),
            );
        }
    }
    let grid = Grid {
        models,
        n_prompt: a.n_prompt.clone(),
        n_gen: a.n_gen.clone(),
        pg: a.pg.clone(),
        depth: a.depth.clone(),
        num_gpu: a.num_gpu.clone(),
        threads: a.threads.clone(),
        n_batch: a.n_batch.clone(),
        num_ctx: a.num_ctx,
        reps: a.reps,
        warmup: !a.no_warmup,
        gpu: gpu_device(0)?,
        cuda_graphs: cuda_graphs()?,
    };
    let total = bench::expand(&grid)?.len() as u64;
    let bar = indicatif::ProgressBar::new(total);
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let env = bench::Env::detect(env!("CHIMERA_GIT_HASH"));
    let records = bench::run(
        &grid,
        &env,
        &mut |m| Ok((registry::resolve(m, &mut progress_printer())?, false)),
        &mut |p| match p {
            bench::Progress::Loading(m) => bar.set_message(format!("loading {m}")),
            bench::Progress::Test { index, name, .. } => {
                bar.set_position(index as u64 - 1);
                bar.set_message(name.to_string());
            }
        },
    )?;
    bar.finish_and_clear();
    bench::write(&records, format, &mut std::io::stdout().lock())?;
    if let Some(f) = err_format {
        bench::write(&records, f, &mut std::io::stderr().lock())?;
    }
    if let Some(p) = &a.plot {
        chimera::atomic_write(p, |w| w.write_all(bench::plot(&records).as_bytes()))?;
    }
    Ok(())
}

fn quantize(a: QuantizeArgs) -> Result<()> {
    let target: chimera::quantize::Target = a.ty.parse()?;
    let input = resolve(&a.input)?;
    let t0 = std::time::Instant::now();
    chimera::quantize::run(&input, &a.output, target, a.allow_requantize, &mut |i, n| {
        if std::io::stderr().is_terminal() {
            eprint!("\rchimera: quantize: tensor {i}/{n}");
        }
    })?;
    let size = std::fs::metadata(&a.output).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "\rchimera: quantize: {} → {} ({size} bytes) in {:.1} s",
        input.display(),
        a.output.display(),
        t0.elapsed().as_secs_f64()
    );
    outln!("{}", a.output.display());
    Ok(())
}
