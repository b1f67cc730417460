//! What column and key names mean: measures with their unit, direction and scale to the
//! canonical unit; configuration and workload factors; times, statuses, errors, generated text
//! and ids. Names decide where they can; the values decide the rest (`classify`).

use crate::analysis::record::{Direction, MeasureDef, Quantity};

/// The role of a column in a table of runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Role {
    /// A configuration (`workload` false) or workload (prompt, test case) factor.
    Factor { workload: bool },
    /// A measure, its values multiplied by `scale` into the canonical unit, under `name`.
    Measure { name: String, def: MeasureDef, scale: f64 },
    /// The sample standard deviation of the measure `of` (same scale).
    Sd { of: String, scale: f64 },
    /// The number of repetitions behind the summary measures of the row.
    Reps,
    /// When the run happened.
    Time,
    /// A boolean or word saying whether the run succeeded.
    Success,
    /// A status word or HTTP code.
    Status,
    /// An error message (non-empty means failed).
    Error,
    /// The generated text.
    Text,
    /// Ids and repetition numbers: not factors.
    Id,
    /// Where a model ran as Ollama's `ps` writes it (`100% GPU`, `14%/86% CPU/GPU`): an outcome,
    /// read as the share on the GPU in percent.
    GpuShare,
    Ignore,
}

fn lower(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

/// The last segment of a flattened JSON path (`timings.prompt_ms` → `prompt_ms`).
pub fn leaf(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name).trim_end_matches("[]")
}

/// The name a factor goes by: its leaf (`options.temperature` → `temperature`), unless the leaf
/// says nothing alone (`model.name`, `gpu.type`).
pub fn factor_name(header: &str) -> String {
    let l = leaf(header);
    if matches!(l.to_ascii_lowercase().as_str(), "name" | "type" | "id" | "value" | "kind" | "label") && header.contains('.') {
        header.trim().to_string()
    } else {
        l.trim().to_string()
    }
}

/// Configuration factors by exact (lower-case) name.
const CONFIG: &[&str] = &[
    "model",
    "model_name",
    "model_id",
    "model_type",
    "model_filename",
    "tag",
    "quant",
    "quantization",
    "quant_type",
    "dtype",
    "precision",
    "backend",
    "backends",
    "device",
    "engine",
    "runtime",
    "framework",
    "provider",
    "num_gpu",
    "num_ctx",
    "num_batch",
    "num_thread",
    "num_predict",
    "temperature",
    "temp",
    "top_p",
    "top_k",
    "repeat_penalty",
    "batch_size",
    "n_batch",
    "n_ubatch",
    "n_threads",
    "threads",
    "n_gpu_layers",
    "ngl",
    "type_k",
    "type_v",
    "kv_type",
    "cache_type",
    "flash_attn",
    "fa",
    "concurrency",
    "max_concurrency",
    "parallel",
    "n_parallel",
    "request_rate",
    "num_prompts",
    "prompt_len",
    "input_len",
    "output_len",
    "seq_len",
    "n_prompt",
    "n_gen",
    "n_depth",
    "ctx",
    "ctx_size",
    "context_length",
    "context_size",
    "config",
    "config_name",
    "configuration",
    "variant",
    "mode",
    "build",
    "build_commit",
    "build_number",
    "version",
    "gpu",
    "gpu_name",
    "gpu_info",
    "cpu_info",
    "split_mode",
    "use_mmap",
    "host",
    "label",
    "method",
    "strategy",
    "optimization",
];

/// Workload factors: what was asked, not how it ran.
const WORKLOAD: &[&str] = &[
    "prompt",
    "prompt_text",
    "prompt_index",
    "prompt_id",
    "prompt_name",
    "test_name",
    "test",
    "task",
    "case",
    "scenario",
    "context",
    "tone",
    "dataset",
    "query",
    "question",
    "benchmark",
    "benchmark_name",
    "workload",
    "category",
];

const IDS: &[&str] = &[
    "id",
    "run",
    "run_id",
    "run_number",
    "iteration",
    "iter",
    "rep",
    "repetition",
    "trial",
    "sample",
    "index",
    "idx",
    "request_id",
    "seed",
    "uuid",
    "row",
    "attempt",
];

const TEXT: &[&str] = &[
    "response",
    "content",
    "output",
    "text",
    "completion",
    "generated_text",
    "answer",
    "banter_text",
    "message.content",
    "result_text",
    "generation",
];

/// Time fields of Ollama's API in nanoseconds (api/types.go `Metrics`).
const OLLAMA_NS: &[&str] = &["total_duration", "load_duration", "prompt_eval_duration", "eval_duration"];

/// Words whose presence makes a name a spread or tail statistic of another measure.
fn spread_word(n: &str) -> bool {
    let toks: Vec<&str> = n.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    toks.iter().any(|t| {
        matches!(
            *t,
            "std" | "stdev" | "stddev" | "sd" | "var" | "variance" | "cv" | "min" | "max"
                | "iqr" | "mad" | "stderr" | "sem" | "ci" | "lo" | "hi" | "lower" | "upper"
        )
    }) || n.contains("stddev")
        || n.contains("stdev")
}

/// A percentile tag (`p50`, `p99.9`) in a name.
fn percentile(n: &str) -> Option<f64> {
    n.split(|c: char| !c.is_ascii_alphanumeric() && c != '.').find_map(|t| {
        let rest = t.strip_prefix('p')?;
        let v: f64 = rest.parse().ok()?;
        (rest.chars().next()?.is_ascii_digit() && (0.0..=100.0).contains(&v)).then_some(v)
    })
}

/// The time unit a name ends with, as a factor to milliseconds, and the name without it.
fn time_suffix(n: &str) -> Option<(f64, &str)> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("_ns", 1e-6),
        ("_us", 1e-3),
        ("_µs", 1e-3),
        ("_ms", 1.0),
        ("_msec", 1.0),
        ("_millis", 1.0),
        ("_seconds", 1e3),
        ("_secs", 1e3),
        ("_sec", 1e3),
        ("_s", 1e3),
        (" (ns)", 1e-6),
        (" (us)", 1e-3),
        (" (ms)", 1.0),
        (" (s)", 1e3),
        (" (sec)", 1e3),
        ("(ms)", 1.0),
        ("(s)", 1e3),
        (" ms", 1.0),
        (" s", 1e3),
    ];
    SUFFIXES.iter().find_map(|(s, f)| n.strip_suffix(s).map(|stem| (*f, stem)))
}

/// Whether a name is a count of tokens, characters or requests.
fn count_noun(stem: &str) -> bool {
    let last = stem.rsplit(['_', ' ', '.']).next().unwrap_or(stem);
    matches!(
        last,
        "tokens" | "token" | "tok" | "toks" | "requests" | "request" | "req" | "reqs" | "items"
            | "ops" | "samples" | "chars" | "queries" | "images"
    )
}

fn def(quantity: Quantity, direction: Direction, primary: bool, load: bool, spread: bool) -> MeasureDef {
    MeasureDef { quantity, direction, primary, includes_load: load, spread }
}

/// A measure name without its unit suffix, as the report names it.
fn clean(name: &str, stem_len: usize) -> String {
    name[..stem_len].trim_end_matches(['_', ' ', '.']).to_string()
}

/// Reads a name as a measure: its display name, definition and scale; `None` when the name does
/// not say it is one.
pub fn measure(name: &str) -> Option<(String, MeasureDef, f64)> {
    let full = lower(name);
    let n = lower(leaf(name));
    if IDS.contains(&n.as_str()) || CONFIG.contains(&n.as_str()) || WORKLOAD.contains(&n.as_str()) {
        return None;
    }
    let spread = spread_word(&n);
    // comparisons a file already made (a delta, a ratio, a speedup) describe, they are not runs
    if ["delta", "diff", "improvement", "change", "speedup", "ratio", "gain"].iter().any(|w| n.contains(w)) {
        return Some((name.trim().to_string(), def(Quantity::Other, Direction::Neutral, false, false, spread), 1.0));
    }
    let pct = percentile(&n);
    let tail = pct.is_some_and(|p| p > 50.0);
    let load = n.contains("load") && !n.contains("download") && !n.contains("payload");
    let ttft = n.contains("ttft") || n.contains("first_token") || n.contains("time_to_first");
    // rates: tokens or requests per second
    let per_s = n.ends_with("_per_second")
        || n.ends_with("_per_sec")
        || n.ends_with("/s")
        || n.ends_with("_ps")
        || n.contains("per second")
        || n.contains("tokens/s")
        || n.contains("tok/s")
        || n.contains("t/s")
        || n == "tps"
        || n.ends_with("_tps")
        || n.contains("throughput")
        || n.contains("goodput")
        || n.starts_with("speed")
        || n.ends_with("_rate") && (n.contains("eval") || n.contains("token") || n.contains("gen"))
        || n == "eval rate"
        || n == "prompt eval rate"
        || n == "ops"
        || n.ends_with("avg_ts")
        || n.ends_with("samples_ts")
        || n.ends_with("stddev_ts")
        || time_suffix(&n).is_some_and(|(f, stem)| f == 1e3 && count_noun(stem));
    if per_s && (n.contains("char") || n.contains("byte") || n.contains("word")) {
        return Some((name.trim().to_string(), def(Quantity::Other, Direction::Higher, false, false, spread), 1.0));
    }
    if per_s {
        let req = n.contains("req") || n.contains("request") || n == "ops" || n.contains("qps");
        let q = if req { Quantity::RequestRate } else { Quantity::TokenRate };
        let primary = !spread && !tail;
        return Some((name.trim().to_string(), def(q, Direction::Higher, primary, false, spread), 1.0));
    }
    let counts = n.ends_with("_count")
        || n.ends_with(" count")
        || n.ends_with("_n")
        || n.starts_with("n_")
        || n.starts_with("num_")
        || n.starts_with("total_")
            && (n.ends_with("tokens") || n.ends_with("requests") || n.ends_with("chars"))
        || count_noun(&n)
        || n.ends_with("_len")
        || n.ends_with("_lens")
        || n.ends_with("_chars")
        || n == "completed"
        || n == "failed";
    if let Some((scale, stem)) = time_suffix(&n) {
        if !count_noun(stem) {
            let primary = !spread && !tail && !load && (ttft || primary_time(stem) || pct == Some(50.0));
            let shown = clean(name.trim(), name.trim().len() - (n.len() - stem.len()));
            return Some((shown, def(Quantity::Time, Direction::Lower, primary, load || ttft || n.contains("total"), spread), scale));
        }
    }
    if OLLAMA_NS.contains(&n.as_str()) {
        let primary = false;
        return Some((name.trim().to_string(), def(Quantity::Time, Direction::Lower, primary, n != "eval_duration" && n != "prompt_eval_duration", false), 1e-6));
    }
    if ttft || latency_word(&n) {
        // a time without a unit in its name: seconds unless the values say otherwise (`scale_guess`)
        let primary = !spread && !tail && !load && primary_time(&n);
        return Some((name.trim().to_string(), def(Quantity::Time, Direction::Lower, primary, load || ttft, spread), 0.0));
    }
    if counts {
        return Some((name.trim().to_string(), def(Quantity::Count, Direction::Neutral, false, false, spread), 1.0));
    }
    for (suffix, scale) in [("_bytes", 1.0), ("_kb", 1024.0), ("_kib", 1024.0), ("_mb", 1048576.0), ("_mib", 1048576.0), ("_gb", 1073741824.0), ("_gib", 1073741824.0)] {
        if let Some(stem) = n.strip_suffix(suffix) {
            let shown = clean(name.trim(), name.trim().len() - (n.len() - stem.len()));
            return Some((shown, def(Quantity::Bytes, Direction::Lower, false, false, spread), scale));
        }
    }
    if n.contains("memory") || n.contains("vram") || n.contains("rss") || n.ends_with("size") {
        return Some((name.trim().to_string(), def(Quantity::Bytes, Direction::Lower, false, false, spread), 1.0));
    }
    let higher = ["accuracy", "acc", "score", "success_rate", "hit_rate", "efficiency", "speedup", "gflops", "tflops", "bandwidth", "utilization", "util"];
    let lower_words = ["loss", "error_rate", "perplexity", "ppl", "overhead", "power", "energy", "cost"];
    let pctish = n.ends_with('%') || n.ends_with("_pct") || n.ends_with("percent") || n.ends_with("_percent");
    if higher.iter().any(|w| n.contains(w)) {
        let q = if pctish { Quantity::Ratio } else { Quantity::Other };
        let neutral = n.contains("util");
        let d = if neutral { Direction::Neutral } else { Direction::Higher };
        return Some((name.trim().to_string(), def(q, d, false, false, spread), 1.0));
    }
    if lower_words.iter().any(|w| n.contains(w)) {
        let q = if pctish { Quantity::Ratio } else { Quantity::Other };
        return Some((name.trim().to_string(), def(q, Direction::Lower, false, false, spread), 1.0));
    }
    if pctish {
        return Some((name.trim().to_string(), def(Quantity::Ratio, Direction::Neutral, false, false, spread), 1.0));
    }
    let _ = full;
    None
}

/// Words that make a name a latency.
fn latency_word(n: &str) -> bool {
    let toks: Vec<&str> = n.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    let whole = ["latency", "ttft", "tpot", "itl", "e2el", "duration", "time", "elapsed", "load", "mean", "median", "avg", "p50"];
    (toks.iter().any(|t| whole.contains(t)) || ["latency", "duration", "elapsed"].iter().any(|w| n.contains(w)))
        && !n.contains("timestamp")
        && !n.contains("datetime")
        && !n.contains("create")
}

/// Times that are what a benchmark measures (not load, compile, queue or warm-up times).
fn primary_time(n: &str) -> bool {
    let toks: Vec<&str> = n.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    let words = ["latency", "ttft", "tpot", "itl", "e2el", "elapsed", "mean", "median", "avg", "p50", "inference", "generation", "total", "wall", "e2e", "response"];
    toks.iter().any(|t| words.contains(t)) || n.contains("latency") || n.contains("time_to_first")
}

/// A factor by name: `Some(workload)` for configuration (false) or workload (true) names.
pub fn factor(name: &str) -> Option<bool> {
    let n = lower(leaf(name));
    if CONFIG.contains(&n.as_str()) {
        return Some(false);
    }
    if WORKLOAD.contains(&n.as_str()) {
        return Some(true);
    }
    None
}

/// The role a name alone gives, before any value is seen.
pub fn by_name(name: &str) -> Option<Role> {
    let n = lower(leaf(name));
    if n == "error" || n == "error_message" || n == "errors" || n == "err" || n == "exception" || n.ends_with("_error") || n == "error_msg" {
        return Some(Role::Error);
    }
    if matches!(n.as_str(), "success" | "ok" | "passed" | "succeeded" | "completed_ok" | "is_success") {
        return Some(Role::Success);
    }
    if matches!(n.as_str(), "status" | "status_code" | "http_status" | "state" | "outcome" | "result" | "done_reason" | "stop_type" | "finish_reason") {
        return Some(Role::Status);
    }
    if crate::stamp::is_time_key(&n) || n == "created" || n == "date" {
        return Some(Role::Time);
    }
    if TEXT.contains(&n.as_str()) || TEXT.contains(&lower(name).as_str()) {
        return Some(Role::Text);
    }
    if matches!(n.as_str(), "runs" | "repetitions" | "reps" | "n_runs" | "samples_per_run" | "num_samples" | "n_samples") {
        return Some(Role::Reps);
    }
    if let Some(w) = factor(name) {
        return Some(Role::Factor { workload: w });
    }
    if IDS.contains(&n.as_str()) {
        return Some(Role::Id);
    }
    measure(name).map(|(shown, def, scale)| Role::Measure { name: shown, def, scale })
}

/// The role of a column from its name and its cells (text as written; `None` for missing).
pub fn classify(name: &str, cells: &[Option<&str>]) -> Role {
    let present: Vec<&str> = cells.iter().flatten().map(|s| s.trim()).filter(|s| !is_null(s)).collect();
    let role = by_name(name);
    let nums: Vec<f64> = present.iter().filter_map(|s| parse_num(s)).collect();
    let numeric = !present.is_empty() && nums.len() == present.len();
    match role {
        Some(Role::Measure { name: shown, def, scale }) if numeric || present.is_empty() => {
            let scale = if scale == 0.0 { guess_seconds_scale(&nums) } else { scale };
            return Role::Measure { name: shown, def, scale };
        }
        Some(Role::Measure { .. }) => {}
        Some(r) => return r,
        None => {}
    }
    if present.is_empty() {
        return Role::Ignore;
    }
    let mut distinct: Vec<&str> = present.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if present.iter().all(|s| is_bool_word(s)) && distinct.len() <= 2 && !numeric {
        return Role::Factor { workload: false };
    }
    if present.iter().all(|s| gpu_share(s).is_some()) {
        return Role::GpuShare;
    }
    if present.iter().all(|s| crate::stamp::parse(s).is_some()) && !numeric {
        return Role::Time;
    }
    let epoch = |x: &f64| (1e9..5e9).contains(x) || (1e12..5e12).contains(x);
    let lname = lower(name);
    if numeric && nums.iter().all(epoch) && (lname.contains("time") || lname.contains("created") || lname.contains("date") || lname.ends_with("_at")) {
        return Role::Time;
    }
    if numeric {
        // few distinct values relative to the rows: a setting; else a measurement
        let few = distinct.len() <= 12 && distinct.len() * 2 <= present.len().max(2);
        let int = nums.iter().all(|x| x.fract() == 0.0);
        return if few && (int || distinct.len() <= 6) {
            Role::Factor { workload: false }
        } else {
            Role::Measure {
                name: name.trim().to_string(),
                def: def(Quantity::Other, Direction::Neutral, false, false, spread_word(&lower(leaf(name)))),
                scale: 1.0,
            }
        };
    }
    let avg_len = present.iter().map(|s| s.chars().count()).sum::<usize>() / present.len();
    // file paths and URLs identify, they do not configure
    let pathish = |s: &&str| (s.contains('\\') || s.matches('/').count() >= 2 || s.starts_with("http")) && !s.contains(' ');
    if present.iter().all(pathish) {
        return Role::Id;
    }
    if distinct.len() == present.len() && present.len() > 3 {
        return if avg_len > 40 { Role::Text } else { Role::Id };
    }
    if avg_len > 80 {
        return Role::Text;
    }
    Role::Factor { workload: false }
}

/// The GPU's share of a model in percent from Ollama's processor text: `100% GPU` → 100,
/// `14%/86% CPU/GPU` → 86, `100% CPU` → 0.
pub fn gpu_share(s: &str) -> Option<f64> {
    let t = s.trim();
    let (nums, who) = t.split_once(' ')?;
    let parts: Vec<f64> = nums.split('/').map(|p| p.trim_end_matches('%').parse().ok()).collect::<Option<_>>()?;
    let names: Vec<&str> = who.trim().split('/').collect();
    if parts.len() != names.len() || !nums.contains('%') {
        return None;
    }
    Some(names.iter().zip(&parts).find(|(n, _)| n.eq_ignore_ascii_case("gpu")).map_or(0.0, |(_, p)| *p))
}

/// A unitless time column: nanoseconds when the values are large integers, else seconds.
fn guess_seconds_scale(v: &[f64]) -> f64 {
    let big = !v.is_empty() && v.iter().all(|x| x.fract() == 0.0) && crate::stats::median(v) > 1e7;
    if big {
        1e-6
    } else {
        1e3
    }
}

/// Parses a number as artifacts write them: quotes, thousands commas, a trailing % or unit-less.
pub fn parse_num(s: &str) -> Option<f64> {
    let t = s.trim().trim_matches('"').trim();
    let t = t.strip_suffix('%').unwrap_or(t).trim();
    if t.is_empty() {
        return None;
    }
    let int_part = t.split('.').next().unwrap_or(t);
    let t = if t.contains(',') && int_part.split(',').skip(1).all(|g| g.len() == 3) && !t.split('.').nth(1).is_some_and(|d| d.contains(',')) {
        t.replace(',', "")
    } else {
        t.to_string()
    };
    let v: f64 = t.parse().ok()?;
    v.is_finite().then_some(v)
}

/// Whether a cell stands for a missing value.
pub fn is_null(s: &str) -> bool {
    matches!(lower(s).as_str(), "" | "null" | "none" | "nan" | "n/a" | "na" | "-" | "—" | "inf" | "-inf")
}

fn is_bool_word(s: &str) -> bool {
    matches!(lower(s).as_str(), "true" | "false" | "yes" | "no" | "on" | "off")
}

/// Whether a success cell says the run failed.
pub fn says_failed(s: &str) -> bool {
    matches!(lower(s).as_str(), "false" | "0" | "no" | "failed" | "fail" | "error" | "f")
}

/// Whether a status cell says the run failed: an HTTP code ≥ 400, or a failure word.
pub fn status_failed(s: &str) -> Option<String> {
    let t = lower(s);
    if let Some(code) = parse_num(&t) {
        return (code >= 400.0 && code < 600.0).then(|| format!("HTTP status {}", code as i64));
    }
    let bad = ["error", "fail", "timeout", "timed out", "crash", "oom", "abort", "killed", "exception"];
    bad.iter().any(|w| t.contains(w)).then(|| format!("status \"{}\"", s.trim()))
}

/// Whether a generated text is an error message rather than an answer: it starts like one, or is
/// a short text naming a failure.
pub fn error_text(s: &str) -> bool {
    let t = lower(s);
    let t = t.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    let starts = [
        "error", "exception", "traceback", "failed to", "fatal", "http error", "request failed",
        "connection error", "internal server error", "an error occurred", "cuda out of memory",
        "out of memory", "timeout", "timed out",
    ];
    if starts.iter().any(|w| t.starts_with(w)) {
        return true;
    }
    let words = [
        "connection attempts failed", "connection refused", "failed to connect", "max retries exceeded",
        "read timed out", "service unavailable", "bad gateway", "model not found", "no such host",
    ];
    t.len() < 200 && words.iter().any(|w| t.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str) -> (String, Quantity, Direction, bool, f64) {
        let (s, d, scale) = measure(name).unwrap_or_else(|| panic!("{name} is a measure"));
        (s, d.quantity, d.direction, d.primary, scale)
    }

    #[test]
    fn measures_by_name() {
        assert_eq!(m("tokens_s"), ("tokens_s".into(), Quantity::TokenRate, Direction::Higher, true, 1.0));
        assert_eq!(m("ttft_s"), ("ttft".into(), Quantity::Time, Direction::Lower, true, 1e3));
        assert_eq!(m("timings.predicted_per_second").1, Quantity::TokenRate);
        assert_eq!(m("mean_ttft_ms"), ("mean_ttft".into(), Quantity::Time, Direction::Lower, true, 1.0));
        assert_eq!(m("request_throughput").1, Quantity::RequestRate);
        assert_eq!(m("eval_duration").4, 1e-6);
        assert_eq!(m("eval_count").1, Quantity::Count);
        assert_eq!(m("load_s").3, false, "load is not a primary measure");
        assert!(measure("p99_ttft_ms").is_some_and(|(_, d, _)| !d.primary));
        assert!(measure("std_ttft_ms").is_some_and(|(_, d, _)| d.spread));
        assert_eq!(m("Generation Time (ms)").0, "Generation Time");
        assert_eq!(m("model_size_bytes").1, Quantity::Bytes);
        assert_eq!(m("accuracy").2, Direction::Higher);
        for none in ["num_gpu", "model", "prompt", "temperature", "run_id", "timestamp"] {
            assert!(measure(none).is_none(), "{none}");
        }
    }

    #[test]
    fn roles_from_values() {
        fn c<'a>(v: &[&'a str]) -> Vec<Option<&'a str>> {
            v.iter().map(|s| Some(*s)).collect()
        }
        assert_eq!(classify("num_gpu", &c(&["40", "40", "999"])), Role::Factor { workload: false });
        assert_eq!(classify("knob", &c(&["1", "2", "1", "2", "1", "2"])), Role::Factor { workload: false });
        assert!(matches!(classify("weird", &c(&["1.5", "2.25", "3.75", "4.5"])), Role::Measure { .. }));
        assert_eq!(classify("error", &c(&["", "boom"])), Role::Error);
        assert_eq!(classify("when", &c(&["2025-09-30T20:09:43", "2025-09-30T20:09:44"])), Role::Time);
        assert_eq!(classify("prompt_text", &c(&["a b", "c d"])), Role::Factor { workload: true });
        if let Role::Measure { scale, .. } = classify("latency", &c(&["1.5", "2.0"])) {
            assert_eq!(scale, 1e3, "a unitless latency in seconds");
        } else {
            panic!("latency is a measure")
        }
    }

    #[test]
    fn error_texts_and_statuses() {
        assert!(error_text("Error generating banter: All connection attempts failed"));
        assert!(error_text("All connection attempts failed"));
        assert!(!error_text("Whoa, did you see that rare drop? Epic loot!"));
        assert_eq!(status_failed("503").as_deref(), Some("HTTP status 503"));
        assert!(status_failed("200").is_none() && status_failed("stop").is_none());
        assert_eq!(parse_num("\"1,234.5\""), Some(1234.5));
        assert_eq!(parse_num("12%"), Some(12.0));
        assert_eq!(parse_num("1,5"), None, "a decimal comma is not a number here");
        assert!(is_null(" NaN ") && !is_null("0"));
    }
}
