//! The command line: clap definitions, one function per subcommand, and all printing.

use anyhow::{Context, Result};
use chimera::backend::cpu::kv::KvCache;
use chimera::engine::{Adapter, Engine, LoadOptions, Output};
use chimera::gguf::{Gguf, TensorType};
use chimera::model::{size_label, Gemma3Config};
use chimera::registry;
use chimera::tokenizer::Tokenizer;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

mod analyze;
mod args;
mod repl;
mod serve;

pub use args::*;

/// `println!` that returns the write error (a closed pipe ends the command cleanly in `main`)
/// instead of panicking.
macro_rules! outln {
    ($($t:tt)*) => {
        writeln!(std::io::stdout().lock(), $($t)*)?
    };
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
        Command::Serve(a) => serve::run(a),
        Command::Create(a) => create(a),
        Command::Cp { source, destination } => {
            chimera::make::copy(&source, &destination)?;
            outln!("copied '{source}' to '{destination}'");
            Ok(())
        }
        Command::Rm { names } => names.iter().try_for_each(|n| {
            registry::remove(n)?;
            outln!("deleted '{n}'");
            Ok(())
        }),
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

/// Notes which of `run`'s options the command line gave, so that a model made with `create`
/// lends its parameters to the others only (as Ollama's `run` does).
pub fn with_given(mut cli: Cli, m: &clap::ArgMatches) -> Cli {
    if let (Command::Run(a), Some(("run", sub))) = (&mut cli.command, m.subcommand()) {
        a.given = sub
            .ids()
            .filter(|id| {
                sub.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine)
            })
            .map(|id| id.as_str().to_string())
            .collect();
    }
    cli
}

/// What a model made with `create`, or one in Ollama's store, brings besides its weights and
/// parameters (those are applied where the command line set none).
#[derive(Default)]
struct Made {
    system: Option<String>,
    template: Option<std::sync::Arc<chimera::gotmpl::Template>>,
    messages: Vec<chimera::chat::Message>,
}

fn made_defaults(
    a: &RunArgs,
    opts: &mut chimera::engine::GenerateOptions,
    load: &mut LoadOptions,
) -> Result<Made> {
    let Some(m) = chimera::registry::defaults(&a.model)? else { return Ok(Made::default()) };
    let rest: serde_json::Map<String, serde_json::Value> = m
        .parameters
        .iter()
        .filter(|(k, _)| !a.given.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut o = chimera::serve::api::LoadOverrides::default();
    chimera::serve::api::apply_options(&rest, opts, &mut o)
        .map_err(|e| anyhow::anyhow!("model {}: {}", m.name, e.message))?;
    load.num_ctx = o.num_ctx.unwrap_or(load.num_ctx);
    load.num_batch = o.num_batch.unwrap_or(load.num_batch);
    load.num_gpu = o.num_gpu.unwrap_or(load.num_gpu);
    load.num_thread = o.num_thread.unwrap_or(load.num_thread);
    load.adapters.extend(m.adapters.iter().map(|p| Adapter { path: p.clone(), scale: 1.0 }));
    let template = match &m.template {
        Some(t) => Some(std::sync::Arc::new(
            chimera::gotmpl::Template::parse(t)
                .map_err(|e| anyhow::anyhow!("model {}: {e}", m.name))?,
        )),
        None => None,
    };
    Ok(Made { system: m.system, template, messages: m.messages })
}

fn run_cmd(a: RunArgs) -> Result<()> {
    let mut opts = a.gen.options(a.logprobs);
    let mut load_opts = a.load.options()?;
    let made = made_defaults(&a, &mut opts, &mut load_opts)?;
    opts.grammar = grammar(a.format.as_deref(), a.grammar.as_deref())?;
    opts.sampler.validate()?;
    load_opts.validate()?;
    let prompt_ids: Option<Vec<u32>> = match &a.prompt_ids {
        Some(s) => Some(
            serde_json::from_str(s)
                .map_err(|e| anyhow::anyhow!("invalid value for --prompt-ids: {e}"))?,
        ),
        None => None,
    };
    if prompt_ids.is_none() && a.prompt.is_none() && std::io::stdin().is_terminal() && !a.json {
        let mut engine = load(&a.model, load_opts)?;
        engine.template = made.template;
        return repl::chat(&mut engine, opts, made.system, &made.messages, a.verbose);
    }
    let text = match (&prompt_ids, &a.prompt) {
        (Some(_), _) => None,
        (None, Some(p)) => Some(p.clone()),
        (None, None) => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("reading the prompt from stdin")?;
            Some(s)
        }
    };
    let mut engine = load(&a.model, load_opts)?;
    engine.template = made.template;
    let ids = match (prompt_ids, text) {
        (Some(ids), _) => ids,
        (None, Some(t)) if a.raw || (made.system.is_none() && made.messages.is_empty()) => {
            engine.prompt_ids(&t, a.raw)?
        }
        (None, Some(t)) => {
            // as Ollama's generate: the system message, the model's messages, the prompt
            let system = made.system.iter().map(|s| chimera::chat::Message::new("system", s));
            let user = chimera::chat::Message::new("user", &t);
            let m: Vec<_> = system.chain(made.messages.iter().cloned()).chain([user]).collect();
            engine.chat_ids(&m)?
        }
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

fn shape(c: &Gemma3Config) -> String {
    format!(
        "{} blocks, n_embd {}, n_ff {}, heads {}/{} kv, head_dim {}, vocab {}",
        c.n_layer, c.n_embd, c.n_ff, c.n_head, c.n_head_kv, c.head_dim, c.n_vocab
    )
}

/// `show` of a Hugging Face folder: its config and tensors (it runs on the candle backend).
fn show_folder(path: &std::path::Path, json: bool) -> Result<()> {
    let f = chimera::backend::candle::safetensors::Folder::open(path)?;
    let (cfg, n_params, dtype) = (&f.cfg, f.n_params(), f.dtype_name());
    let size = registry::local::size_of(path).unwrap_or(0);
    if json {
        let v = serde_json::json!({"file": path, "file_size": size, "format": "safetensors",
            "config": cfg, "n_params": n_params, "dtype": dtype, "size_label": size_label(cfg.n_layer)});
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    outln!("folder        {}", path.display());
    outln!("size          {size} bytes (safetensors, {dtype}; runs on the candle backend)");
    outln!("model         {} {} ({} parameters)", cfg.arch(), size_label(cfg.n_layer), n_params);
    outln!("shape         {}", shape(cfg));
    Ok(())
}

fn show(a: ShowArgs) -> Result<()> {
    let lopts = LoadOptions {
        num_ctx: a.num_ctx,
        num_gpu: a.num_gpu,
        gpu: gpu_device(0)?,
        kv_type: kv_type(a.kv_type.as_deref())?,
        ..Default::default()
    };
    lopts.validate()?;
    let path = resolve(&a.model)?;
    if a.modelfile {
        let made = registry::defaults(&a.model)?;
        outln!("{}", registry::modelfile::render(&path, made.as_ref()).0.trim_end());
        return Ok(());
    }
    if chimera::config::is_folder(&path) {
        return show_folder(&path, a.json);
    }
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
    let n_params = g.n_params();
    let num_ctx = a.num_ctx.min(cfg.context_length);
    let kv = KvCache::bytes_for(&cfg, num_ctx, 512.min(num_ctx), false, lopts.kv_type);
    if a.json {
        let v = serde_json::json!({
            "file": path, "file_size": g.file_size, "gguf_version": g.version,
            "config": cfg, "n_params": n_params, "size_label": size_label(cfg.n_layer),
            "tensor_types": hist.iter().map(|(t, (n, b))| (t.name().to_string(), serde_json::json!({"count": n, "bytes": b}))).collect::<serde_json::Map<_, _>>(),
            "num_ctx": num_ctx, "kv_type": lopts.kv_type, "kv_bytes": kv, "offload": plan,
            "devices": devices.iter().map(|(d, b)| serde_json::json!({"device": d, "bytes": b})).collect::<Vec<_>>(),
            "metadata": g.metadata.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.brief()))).collect::<serde_json::Map<_, _>>(),
        });
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    outln!("file          {}", path.display());
    outln!("size          {} bytes (GGUF v{})", g.file_size, g.version);
    outln!("model         {} {} ({} parameters)", cfg.arch(), size_label(cfg.n_layer), n_params);
    outln!("shape         {}", shape(&cfg));
    outln!(
        "attention     sliding window {}, rope base {} global / {} local, scale {}",
        cfg.sliding_window.map_or("none".to_string(), |w| w.to_string()),
        cfg.rope_base_global,
        cfg.rope_base_local,
        cfg.rope_scale_global
    );
    outln!(
        "context       {} trained, num_ctx {num_ctx}: KV cache {:.1} MiB ({})",
        cfg.context_length,
        kv as f64 / 1048576.0,
        lopts.kv_type.name()
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
    let p = registry::pull_name(name, &mut progress_printer())?;
    outln!("{}", p.display());
    Ok(())
}

fn list() -> Result<()> {
    outln!("{:<24} {:<8} {:>12}  {:<18} PATH", "NAME", "QUANT", "SIZE", "SOURCE");
    for m in registry::installed()? {
        let (path, source) = match &m.local {
            Some((p, s)) => (p.display().to_string(), s.label()),
            None => ("-".into(), "-"),
        };
        let d = if m.default { " (default)" } else { "" };
        outln!(
            "{:<24} {:<8} {:>12}  {source:<18} {path}{d}",
            m.name,
            m.quant.as_deref().unwrap_or("?"),
            m.size.map_or("?".into(), |s| s.to_string())
        );
    }
    Ok(())
}

fn ingest(a: IngestArgs) -> Result<()> {
    use chimera::analysis;
    let opts = analysis::ScanOptions { max_file_bytes: a.max_file_bytes };
    let s = analysis::study(&a.dir, &opts)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&analysis::report::metrics(&s))?);
        return Ok(());
    }
    let (data, read) = s.counts();
    outln!(
        "{}: {} files read ({} with runs), {} runs ({} valid), {} benchmarks, {} experiments",
        s.root,
        read,
        data,
        s.records,
        s.valid,
        s.families.len(),
        s.experiments.len()
    );
    let summary: Vec<String> =
        analysis::report::summary_items(&s).iter().map(|f| f.id.clone()).collect();
    outln!(
        "{} findings ({} key; * = Executive Summary):",
        s.findings.len(),
        s.key_findings().len()
    );
    let w = s.findings.iter().map(|x| x.kind.label().len()).max().unwrap_or(4);
    outln!("{:<5} {:<w$}  FINDING", "ID", "KIND");
    for x in s.key_findings() {
        let star = if summary.contains(&x.id) { "*" } else { " " };
        outln!("{:<5} {:<w$}  {}", format!("{}{star}", x.id), x.kind.label(), x.sentence);
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
        kv_types: args::kv_types(a.kv_type.as_deref())?,
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

fn create(a: CreateArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("cannot read the Modelfile {}", a.file.display()))?;
    let dir = a.file.parent().unwrap_or(std::path::Path::new("."));
    let mut r = chimera::make::from_modelfile(&a.name, &text, dir)
        .with_context(|| format!("in {}", a.file.display()))?;
    r.quantize = a.quantize;
    let m = chimera::make::create(&r, &mut |s| eprintln!("chimera: {s}"))?;
    outln!("created {} ({})", m.name, m.file.display());
    Ok(())
}
