//! The command line: clap definitions of every subcommand and its flags, and how flags map to
//! library options (load, sampling, the GPU device, the grammar).

use anyhow::{Context, Result};
use chimera::backend::KvType;
use chimera::constraint::Grammar;
use chimera::engine::{GenerateOptions, LoadOptions};
use chimera::model::GpuDevice;
use chimera::sampler::SamplerOptions;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

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
    /// Serve Ollama's and OpenAI's HTTP APIs, batching concurrent requests.
    Serve(ServeArgs),
    /// Make a model from a Modelfile (FROM, PARAMETER, SYSTEM), as `ollama create`.
    Create(CreateArgs),
    /// Copy a model to a new name, as `ollama cp`.
    Cp { source: String, destination: String },
    /// Remove models made here or registry models' files in chimera's store, as `ollama rm`.
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The new model's name.
    pub name: String,
    /// The Modelfile (default: ./Modelfile).
    #[arg(short = 'f', long = "file", default_value = "Modelfile")]
    pub file: PathBuf,
    /// Quantize the weights first (Q4_K_M, Q8_0, … as `chimera quantize`).
    #[arg(short = 'q', long)]
    pub quantize: Option<String>,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (OLLAMA_HOST; default 127.0.0.1).
    #[arg(long)]
    pub host: Option<String>,
    /// Port (OLLAMA_HOST; default 11434; 0 picks a free one).
    #[arg(long)]
    pub port: Option<u16>,
    /// Requests decoded together (OLLAMA_NUM_PARALLEL; default 4).
    #[arg(long)]
    pub parallel: Option<usize>,
    /// Requests waiting for a slot before 503 (OLLAMA_MAX_QUEUE; default 512).
    #[arg(long)]
    pub max_queue: Option<usize>,
    /// How long a model stays loaded after its last request (OLLAMA_KEEP_ALIVE; default 5m).
    #[arg(long)]
    pub keep_alive: Option<String>,
    /// Accept filesystem paths as model names (default: registry names only).
    #[arg(long)]
    pub allow_paths: bool,
    /// Request log lines also name the options each request asked for (OLLAMA_DEBUG=1).
    #[arg(long)]
    pub verbose: bool,
    /// Log nothing per request.
    #[arg(long, conflicts_with = "verbose")]
    pub quiet: bool,
    #[command(flatten)]
    pub load: LoadArgs,
}

#[derive(Args, Debug)]
pub struct QuantizeArgs {
    /// The input GGUF (a path or a registry name), or a Hugging Face gemma3 folder with its
    /// tokenizer.model (written as a GGUF first).
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

pub(super) fn pairs(s: &str) -> std::result::Result<(usize, usize), String> {
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
    /// KV cache types, comma-separated: f16 (default), q8_0, f32 (llama-bench's -ctk/-ctv;
    /// OLLAMA_KV_CACHE_TYPE).
    #[arg(long, visible_alias = "ctk")]
    pub kv_type: Option<String>,
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
    /// Print everything computed as JSON, as metrics.json holds it (the default prints the Key
    /// Findings).
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
    /// KV cache type: f16 (default), q8_0 or f32 (OLLAMA_KV_CACHE_TYPE).
    #[arg(long)]
    pub kv_type: Option<String>,
    /// A LoRA adapter GGUF to apply at load, as llama.cpp's --lora (repeatable).
    #[arg(long, value_name = "FILE")]
    pub lora: Vec<PathBuf>,
}

/// KV cache types from a comma list (bench), each checked as `kv_type` checks one.
pub(super) fn kv_types(flag: Option<&str>) -> Result<Vec<KvType>> {
    match flag {
        Some(f) => f.split(',').map(|v| kv_type(Some(v))).collect(),
        None => Ok(vec![kv_type(None)?]),
    }
}

/// The KV cache type: the flag, else OLLAMA_KV_CACHE_TYPE, else f16.
pub(super) fn kv_type(flag: Option<&str>) -> Result<KvType> {
    let env = std::env::var("OLLAMA_KV_CACHE_TYPE").ok().filter(|v| !v.trim().is_empty());
    let (v, name) = match (flag, &env) {
        (Some(f), _) => (f, "--kv-type"),
        (None, Some(e)) => (e.as_str(), "OLLAMA_KV_CACHE_TYPE"),
        (None, None) => return Ok(KvType::default()),
    };
    KvType::parse(v.trim())
        .ok_or_else(|| anyhow::anyhow!("invalid value for {name}: '{v}' (f16, q8_0 or f32)"))
}

impl LoadArgs {
    pub(super) fn options(&self) -> Result<LoadOptions> {
        Ok(LoadOptions {
            num_ctx: self.num_ctx,
            num_batch: self.num_batch,
            num_thread: self.num_thread,
            num_gpu: self.num_gpu,
            gpu: gpu_device(self.main_gpu)?,
            cuda_graphs: cuda_graphs()?,
            kv_type: kv_type(self.kv_type.as_deref())?,
            adapters: self
                .lora
                .iter()
                .map(|p| chimera::engine::Adapter { path: p.clone(), scale: 1.0 })
                .collect(),
            ..LoadOptions::default()
        })
    }
}

/// The device GPU slots run on, as placements name it.
pub(super) fn gpu_name(g: GpuDevice) -> String {
    match g {
        GpuDevice::None => "cpu".into(),
        GpuDevice::CandleCpu => "candle-cpu".into(),
        GpuDevice::Cuda(i) => format!("cuda:{i}"),
    }
}

/// What runs GPU slots: `CHIMERA_DEVICE` (`candle-cpu`, `cuda`, `cuda:N`, `cpu`), else the
/// build's GPU (CUDA device `main_gpu` in a CUDA build, none otherwise).
pub(super) fn gpu_device(main_gpu: usize) -> Result<GpuDevice> {
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
pub(super) fn cuda_graphs() -> Result<bool> {
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
    pub(super) fn options(&self, logprobs: usize) -> GenerateOptions {
        GenerateOptions {
            num_predict: self.num_predict,
            num_keep: self.num_keep,
            stop: self.stop.clone(),
            truncate: !self.no_truncate,
            shift: !self.no_shift,
            logprobs,
            prompt_logprobs: false,
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
            logit_bias: vec![],
        }
    }
}

/// The grammar `--format` or `--grammar` asks for; a file that cannot be read or parsed is named.
pub(super) fn grammar(
    format: Option<&str>,
    lark: Option<&std::path::Path>,
) -> Result<Option<Grammar>> {
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
    /// The options given on the command line (a model made with `create` fills the others).
    #[arg(skip)]
    pub given: Vec<String>,
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
    /// KV cache type the sizes are given for: f16 (default), q8_0 or f32 (OLLAMA_KV_CACHE_TYPE).
    #[arg(long)]
    pub kv_type: Option<String>,
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub num_gpu: i64,
    #[arg(long)]
    pub json: bool,
    /// Print the model's Modelfile (FROM, ADAPTER, PARAMETER, TEMPLATE, SYSTEM, MESSAGE), as
    /// `ollama show --modelfile`.
    #[arg(long, conflicts_with = "json")]
    pub modelfile: bool,
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
