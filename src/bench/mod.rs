//! `chimera bench`: llama-bench's method on chimera's engine.
//!
//! Lists expand to every combination with load-affecting parameters outermost, so a model loads
//! once per setting (ref: llama.cpp tools/llama-bench get_cmd_params_instances). Each test gets a
//! warm-up, then `reps` repetitions, each timed alone in nanoseconds around the forwards only;
//! prompt and generated tokens are random ids (BOS first), not text. Results are mean ± sample sd of
//! the per-repetition tokens per second.

use crate::engine::{Engine, LoadOptions};
use crate::error::{Error, Result};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// The parameter lists of a run (llama-bench's flags).
#[derive(Debug, Clone)]
pub struct Grid {
    pub models: Vec<String>,
    pub n_prompt: Vec<usize>,
    pub n_gen: Vec<usize>,
    pub pg: Vec<(usize, usize)>,
    pub depth: Vec<usize>,
    pub num_gpu: Vec<i64>,
    pub threads: Vec<usize>,
    pub n_batch: Vec<usize>,
    /// Context size; 0 = n_prompt + n_gen + depth of each test, as llama-bench.
    pub num_ctx: usize,
    pub reps: usize,
    pub warmup: bool,
    /// What runs the offloaded layers, and whether decode steps may be CUDA graphs.
    pub gpu: crate::backend::GpuDevice,
    pub cuda_graphs: bool,
    /// KV cache types, each a load setting (llama-bench's `-ctk` list).
    pub kv_types: Vec<crate::backend::KvType>,
}

impl Default for Grid {
    fn default() -> Self {
        // ref: llama-bench defaults: -p 512 -n 128 -r 5, -b 2048 (chimera's num_batch 512)
        Grid {
            models: vec![],
            n_prompt: vec![512],
            n_gen: vec![128],
            pg: vec![],
            depth: vec![0],
            num_gpu: vec![-1],
            threads: vec![0],
            n_batch: vec![512],
            num_ctx: 0,
            reps: 5,
            warmup: true,
            gpu: crate::backend::GpuDevice::for_build(0),
            cuda_graphs: true,
            kv_types: vec![crate::backend::KvType::default()],
        }
    }
}

/// One test: a load setting and a workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Case {
    pub model: String,
    pub num_gpu: i64,
    pub threads: usize,
    pub n_batch: usize,
    pub kv_type: crate::backend::KvType,
    pub n_prompt: usize,
    pub n_gen: usize,
    pub depth: usize,
}

impl Case {
    /// llama-bench's test name: `pp512`, `tg128`, `pp512+tg128`, with ` @ d512` for a depth.
    pub fn test_name(&self) -> String {
        let t = match (self.n_prompt, self.n_gen) {
            (p, 0) => format!("pp{p}"),
            (0, g) => format!("tg{g}"),
            (p, g) => format!("pp{p}+tg{g}"),
        };
        if self.depth > 0 {
            format!("{t} @ d{}", self.depth)
        } else {
            t
        }
    }

    fn load_key(&self) -> (&str, i64, usize, usize, &'static str) {
        (&self.model, self.num_gpu, self.threads, self.n_batch, self.kv_type.name())
    }
}

/// Every combination, load-affecting parameters (model, num_gpu, threads, n_batch, KV type)
/// outermost.
pub fn expand(g: &Grid) -> Result<Vec<Case>> {
    if g.models.is_empty() {
        return Err(Error::option("-m", "(none)", "name at least one model"));
    }
    if g.reps == 0 {
        return Err(Error::option("-r", 0, "must be ≥ 1"));
    }
    let mut out = vec![];
    for m in &g.models {
        for &ngl in &g.num_gpu {
            for &t in &g.threads {
                for &b in &g.n_batch {
                    if b == 0 {
                        return Err(Error::option("-b", 0, "must be ≥ 1"));
                    }
                    for &kv in &g.kv_types {
                        for &d in &g.depth {
                            let base = Case {
                                model: m.clone(),
                                num_gpu: ngl,
                                threads: t,
                                n_batch: b,
                                kv_type: kv,
                                n_prompt: 0,
                                n_gen: 0,
                                depth: d,
                            };
                            out.extend(
                                g.n_prompt
                                    .iter()
                                    .filter(|&&p| p > 0)
                                    .map(|&p| Case { n_prompt: p, ..base.clone() }),
                            );
                            out.extend(
                                g.n_gen
                                    .iter()
                                    .filter(|&&n| n > 0)
                                    .map(|&n| Case { n_gen: n, ..base.clone() }),
                            );
                            out.extend(
                                g.pg.iter().filter(|(p, n)| p + n > 0).map(|&(p, n)| Case {
                                    n_prompt: p,
                                    n_gen: n,
                                    ..base.clone()
                                }),
                            );
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// One result row: build, machine, model, every parameter, raw samples and derived statistics.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct BenchRecord {
    pub build_commit: String,
    pub build_target: String,
    pub cpu_info: String,
    pub gpu_info: String,
    pub backends: String,
    pub model_filename: String,
    pub model_type: String,
    pub model_size: u64,
    pub model_n_params: u64,
    pub synthetic: bool,
    pub n_batch: usize,
    pub n_threads: usize,
    pub n_gpu_layers: i64,
    pub n_ctx: usize,
    /// KV cache types, as llama-bench names them (chimera's K and V share one type).
    #[serde(default = "f32_name")]
    pub type_k: String,
    #[serde(default = "f32_name")]
    pub type_v: String,
    pub n_prompt: usize,
    pub n_gen: usize,
    pub n_depth: usize,
    pub test: String,
    pub test_time: String,
    pub avg_ns: u64,
    pub stddev_ns: u64,
    pub avg_ts: f64,
    pub stddev_ts: f64,
    pub samples_ns: Vec<u64>,
    pub samples_ts: Vec<f64>,
}

/// Facts about the machine and build for every record.
#[derive(Debug, Clone)]
pub struct Env {
    pub build_commit: String,
    pub build_target: String,
    pub cpu_info: String,
}

impl Env {
    /// Reads the CPU model (Linux /proc/cpuinfo) and takes the build facts given.
    pub fn detect(build_commit: &str) -> Env {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        let target =
            if cfg!(target_feature = "avx2") { "x86-64-v3" } else { std::env::consts::ARCH };
        Env { build_commit: build_commit.into(), build_target: target.into(), cpu_info: cpu }
    }
}

/// Progress events (the CLI draws them).
pub enum Progress<'a> {
    Loading(&'a str),
    Test { index: usize, total: usize, name: &'a str },
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> u32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as u32
    }
}

/// The model loaded for the current load setting.
struct Loaded {
    key: (String, i64, usize, usize, &'static str),
    engine: Engine,
    path: std::path::PathBuf,
    synthetic: bool,
}

/// Runs every case; a model is loaded once per load setting. `resolve` maps a model name to a
/// file; `synthetic` says whether it is a synthetic model.
pub fn run(
    grid: &Grid,
    env: &Env,
    resolve: &mut dyn FnMut(&str) -> Result<(std::path::PathBuf, bool)>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<BenchRecord>> {
    let cases = expand(grid)?;
    let mut out = vec![];
    let mut loaded: Option<Loaded> = None;
    for (i, c) in cases.iter().enumerate() {
        let key = c.load_key();
        let key_owned = (key.0.to_string(), key.1, key.2, key.3, key.4);
        if loaded.as_ref().is_none_or(|l| l.key != key_owned) {
            // free the previous model before loading the next
            drop(loaded.take());
            progress(Progress::Loading(&c.model));
            let (path, synthetic) = resolve(&c.model)?;
            // the largest context any test of this setting needs
            let need = cases
                .iter()
                .filter(|o| o.load_key() == key)
                .map(|o| o.n_prompt + o.n_gen + o.depth)
                .max()
                .unwrap_or(1);
            let num_ctx = if grid.num_ctx > 0 { grid.num_ctx } else { need.max(1) };
            let opts = LoadOptions {
                num_ctx,
                num_batch: c.n_batch,
                num_thread: c.threads,
                num_gpu: c.num_gpu,
                gpu: grid.gpu,
                cuda_graphs: grid.cuda_graphs,
                kv_type: c.kv_type,
                ..LoadOptions::default()
            };
            let engine = Engine::load(&path, opts)?;
            loaded = Some(Loaded { key: key_owned, engine, path, synthetic });
        }
        let l = loaded.as_mut().expect("invariant: loaded above");
        let name = c.test_name();
        progress(Progress::Test { index: i + 1, total: cases.len(), name: &name });
        out.push(run_case(&mut l.engine, c, grid, env, &l.path, l.synthetic, &name)?);
    }
    Ok(out)
}

fn run_case(
    e: &mut Engine,
    c: &Case,
    g: &Grid,
    env: &Env,
    path: &Path,
    synthetic: bool,
    name: &str,
) -> Result<BenchRecord> {
    let n_vocab = e.model.n_vocab();
    let bos = e.tokenizer.specials().bos.unwrap_or(0);
    let mut rng = Lcg(42);
    let mut tokens = |n: usize, first_bos: bool| -> Vec<u32> {
        (0..n).map(|i| if i == 0 && first_bos { bos } else { rng.next(n_vocab) }).collect()
    };
    let depth_tokens = tokens(c.depth, true);
    let prompt = tokens(c.n_prompt, c.depth == 0);
    let gen_tok = tokens(c.n_gen.max(1), false);
    let once = |e: &mut Engine| -> Result<u64> {
        // the depth is prefilled untimed (llama-bench restores it from saved state)
        e.eval_at(&depth_tokens, 0)?;
        let t = Instant::now();
        if c.n_prompt > 0 {
            e.eval_at(&prompt, c.depth)?;
        }
        for (k, &tok) in gen_tok.iter().take(c.n_gen).enumerate() {
            e.eval_at(&[tok], c.depth + c.n_prompt + k)?;
        }
        Ok(t.elapsed().as_nanos() as u64)
    };
    if g.warmup {
        once(e)?;
    }
    let samples_ns: Vec<u64> = (0..g.reps).map(|_| once(e)).collect::<Result<_>>()?;
    let n_tok = (c.n_prompt + c.n_gen) as f64;
    let samples_ts: Vec<f64> = samples_ns.iter().map(|&ns| n_tok * 1e9 / ns as f64).collect();
    let ns_f: Vec<f64> = samples_ns.iter().map(|&x| x as f64).collect();
    let (avg_ns, sd_ns) = mean_sd(&ns_f);
    let (avg_ts, sd_ts) = mean_sd(&samples_ts);
    let g_ = e.model.gguf.as_deref();
    let ty = model_type(e);
    let synthetic = synthetic
        || g_.and_then(|g| g.metadata.get("chimera.synthetic")).and_then(|v| v.as_bool())
            == Some(true);
    let devices = e.model.devices();
    let gpu: Vec<&String> = devices.iter().filter(|d| d.as_str() != "cpu").collect();
    Ok(BenchRecord {
        build_commit: env.build_commit.clone(),
        build_target: env.build_target.clone(),
        cpu_info: env.cpu_info.clone(),
        gpu_info: gpu.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(","),
        backends: devices
            .iter()
            .map(|d| if d == "cpu" { "CPU".to_string() } else { d.to_uppercase() })
            .collect::<Vec<_>>()
            .join(","),
        model_filename: path.display().to_string(),
        model_type: ty,
        model_size: g_.map_or(e.model.weight_bytes(), |g| g.tensors.iter().map(|t| t.bytes).sum()),
        model_n_params: g_.map_or(0, |g| g.n_params()),
        synthetic,
        n_batch: c.n_batch,
        n_threads: e.opts.threads(),
        n_gpu_layers: c.num_gpu,
        n_ctx: e.opts.num_ctx,
        type_k: e.opts.kv_type.name().into(),
        type_v: e.opts.kv_type.name().into(),
        n_prompt: c.n_prompt,
        n_gen: c.n_gen,
        n_depth: c.depth,
        test: name.to_string(),
        test_time: crate::stamp::rfc3339(std::time::SystemTime::now()),
        avg_ns: avg_ns.round() as u64,
        stddev_ns: sd_ns.round() as u64,
        avg_ts,
        stddev_ts: sd_ts,
        samples_ns,
        samples_ts,
    })
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let s = crate::stats::Summary::of(v).unwrap_or_default();
    (s.mean, s.sd)
}

/// llama.cpp's model type string, e.g. "gemma3 270M Q4_K - Medium".
fn model_type(e: &Engine) -> String {
    let c = &e.model.cfg;
    format!("{} {} {}", c.arch(), crate::model::size_label(c.n_layer), file_type(e))
}

/// llama.cpp's name for the file's `general.file_type`, e.g. "Q4_K - Medium".
pub fn file_type(e: &Engine) -> &'static str {
    let ftype = e
        .model
        .gguf
        .as_ref()
        .and_then(|g| g.metadata.get("general.file_type"))
        .and_then(|v| v.as_i64());
    // ref: llama.h enum llama_ftype names
    match ftype {
        Some(0) => "all F32",
        Some(1) => "F16",
        Some(2) => "Q4_0",
        Some(3) => "Q4_1",
        Some(7) => "Q8_0",
        Some(8) => "Q5_0",
        Some(9) => "Q5_1",
        Some(10) => "Q2_K - Medium",
        Some(12) => "Q3_K - Medium",
        Some(14) => "Q4_K - Small",
        Some(15) => "Q4_K - Medium",
        Some(16) => "Q5_K - Small",
        Some(17) => "Q5_K - Medium",
        Some(18) => "Q6_K",
        Some(32) => "BF16",
        _ => "?",
    }
}

/// Output formats (llama-bench's `-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Md,
    Csv,
    Json,
    Jsonl,
}

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Format> {
        Ok(match s {
            "md" => Format::Md,
            "csv" => Format::Csv,
            "json" => Format::Json,
            "jsonl" => Format::Jsonl,
            _ => return Err(Error::option("-o", s, "one of md, csv, json, jsonl")),
        })
    }
}

/// Writes records in a format.
pub fn write(
    records: &[BenchRecord],
    f: Format,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    match f {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *w, records)?;
            writeln!(w)
        }
        Format::Jsonl => {
            for r in records {
                serde_json::to_writer(&mut *w, r)?;
                writeln!(w)?;
            }
            Ok(())
        }
        Format::Csv => {
            let mut c = csv::Writer::from_writer(w);
            c.write_record(csv_header())?;
            for r in records {
                let v = serde_json::to_value(r).map_err(std::io::Error::other)?;
                c.write_record(csv_header().iter().map(|k| match &v[*k] {
                    serde_json::Value::String(s) => s.clone(),
                    // samples as space-separated lists, like the goldens' bench-summary.csv
                    serde_json::Value::Array(a) => {
                        a.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" ")
                    }
                    other => other.to_string(),
                }))?;
            }
            c.flush()
        }
        Format::Md => write_md(records, w),
    }
}

/// Records written before the KV type was a field come from builds whose cache was f32.
fn f32_name() -> String {
    "f32".into()
}

/// Column names of the CSV form (the record's fields, in order).
pub fn csv_header() -> Vec<&'static str> {
    vec![
        "build_commit",
        "build_target",
        "cpu_info",
        "gpu_info",
        "backends",
        "model_filename",
        "model_type",
        "model_size",
        "model_n_params",
        "synthetic",
        "n_batch",
        "n_threads",
        "n_gpu_layers",
        "n_ctx",
        "type_k",
        "type_v",
        "n_prompt",
        "n_gen",
        "n_depth",
        "test",
        "test_time",
        "avg_ns",
        "stddev_ns",
        "avg_ts",
        "stddev_ts",
        "samples_ns",
        "samples_ts",
    ]
}

fn write_md(records: &[BenchRecord], w: &mut dyn std::io::Write) -> std::io::Result<()> {
    // like llama-bench: only parameters that vary are shown, besides threads and the test
    let varies =
        |f: &dyn Fn(&BenchRecord) -> String| records.windows(2).any(|p| f(&p[0]) != f(&p[1]));
    let show_ngl = varies(&|r| r.n_gpu_layers.to_string());
    let show_b = varies(&|r| r.n_batch.to_string());
    let show_kv = varies(&|r| r.type_k.clone()) || records.iter().any(|r| r.type_k != "f16");
    let mut head = vec!["model", "size", "params", "backend", "threads"];
    if show_ngl {
        head.push("ngl");
    }
    if show_b {
        head.push("n_batch");
    }
    if show_kv {
        head.extend(["type_k", "type_v"]);
    }
    head.extend(["test", "t/s"]);
    writeln!(w, "| {} |", head.join(" | "))?;
    writeln!(w, "|{}", head.iter().map(|_| " ---: |").collect::<String>())?;
    for r in records {
        let mut row = vec![
            format!("{}{}", r.model_type, if r.synthetic { " (synthetic)" } else { "" }),
            format!("{:.2} MiB", r.model_size as f64 / 1048576.0),
            format!("{:.2} M", r.model_n_params as f64 / 1e6),
            r.backends.clone(),
            r.n_threads.to_string(),
        ];
        if show_ngl {
            row.push(r.n_gpu_layers.to_string());
        }
        if show_b {
            row.push(r.n_batch.to_string());
        }
        if show_kv {
            row.extend([r.type_k.clone(), r.type_v.clone()]);
        }
        row.push(r.test.clone());
        row.push(format!("{:.2} ± {:.2}", r.avg_ts, r.stddev_ts));
        writeln!(w, "| {} |", row.join(" | "))?;
    }
    if let Some(r) = records.first() {
        writeln!(w, "\nbuild: {} ({})", r.build_commit, r.build_target)?;
    }
    Ok(())
}

/// An SVG bar chart of t/s per configuration.
pub fn plot(records: &[BenchRecord]) -> String {
    let (w, row_h, left) = (720.0, 22.0, 300.0);
    let max = records.iter().map(|r| r.avg_ts).fold(1e-9, f64::max);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">\n",
        row_h * records.len() as f64 + 30.0
    );
    s.push_str("<text x=\"4\" y=\"14\">tokens per second (mean; the line is ± sd)</text>\n");
    for (i, r) in records.iter().enumerate() {
        let y = 24.0 + i as f64 * row_h;
        let bw = (w - left - 60.0) * r.avg_ts / max;
        let sd = (w - left - 60.0) * r.stddev_ts / max;
        s.push_str(&format!(
            "<text x=\"4\" y=\"{:.1}\">{} t{} ngl{} {}</text>\n<rect x=\"{left}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"#4c78a8\"/>\n<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\n<text x=\"{:.1}\" y=\"{:.1}\">{:.1}</text>\n",
            y + 13.0,
            r.model_type,
            r.n_threads,
            r.n_gpu_layers,
            r.test,
            row_h - 6.0,
            left + bw - sd,
            left + bw + sd,
            y + 8.0,
            y + 8.0,
            left + bw + sd + 4.0,
            y + 13.0,
            r.avg_ts
        ));
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_expands_load_settings_outermost() {
        let g = Grid {
            models: vec!["a".into(), "b".into()],
            n_prompt: vec![16, 32],
            n_gen: vec![8],
            pg: vec![(4, 2)],
            threads: vec![1, 2],
            ..Default::default()
        };
        let cases = expand(&g).unwrap();
        assert_eq!(cases.len(), 2 * 2 * 4);
        let names: Vec<String> = cases.iter().take(4).map(|c| c.test_name()).collect();
        assert_eq!(names, vec!["pp16", "pp32", "tg8", "pp4+tg2"]);
        // a load setting's tests are contiguous, so each loads once
        let keys: Vec<_> = cases.iter().map(|c| (c.model.clone(), c.threads)).collect();
        let mut changes = 0;
        for w in keys.windows(2) {
            changes += (w[0] != w[1]) as usize;
        }
        assert_eq!(changes, 3);
        assert_eq!(Case { depth: 512, ..cases[0].clone() }.test_name(), "pp16 @ d512");
    }

    #[test]
    fn grid_rejects_empty_and_zero() {
        assert!(expand(&Grid::default()).unwrap_err().to_string().contains("-m"));
        let g = Grid { models: vec!["m".into()], reps: 0, ..Default::default() };
        assert!(expand(&g).unwrap_err().to_string().contains("-r"));
    }
}
