//! What column and key names mean: measures with their unit, direction and scale to the
//! canonical unit; configuration and workload factors; times, statuses, errors, generated text
//! and ids. Names decide where they can; the values decide the rest (`classify`).

pub use super::measures::measure;
use super::measures::{def, spread_word};
use crate::analysis::record::{Direction, MeasureDef, Quantity};

/// The role of a column in a table of runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Role {
    /// A configuration (`workload` false) or workload (prompt, test case) factor.
    Factor {
        workload: bool,
    },
    /// A measure, its values multiplied by `scale` into the canonical unit, under `name`.
    Measure {
        name: String,
        def: MeasureDef,
        scale: f64,
    },
    /// The sample standard deviation of the measure `of` (same scale).
    Sd {
        of: String,
        scale: f64,
    },
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
    if matches!(
        l.to_ascii_lowercase().as_str(),
        "name" | "type" | "id" | "value" | "kind" | "label"
    ) && header.contains('.')
    {
        header.trim().to_string()
    } else {
        l.trim().to_string()
    }
}

/// Configuration factors by exact (lower-case) name.
pub(super) const CONFIG: &[&str] = &[
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
pub(super) const WORKLOAD: &[&str] = &[
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

pub(super) const IDS: &[&str] = &[
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
    if n == "error"
        || n == "error_message"
        || n == "errors"
        || n == "err"
        || n == "exception"
        || n.ends_with("_error")
        || n == "error_msg"
    {
        return Some(Role::Error);
    }
    if matches!(
        n.as_str(),
        "success" | "ok" | "passed" | "succeeded" | "completed_ok" | "is_success"
    ) {
        return Some(Role::Success);
    }
    if matches!(
        n.as_str(),
        "status"
            | "status_code"
            | "http_status"
            | "state"
            | "outcome"
            | "result"
            | "done_reason"
            | "stop_type"
            | "finish_reason"
    ) {
        return Some(Role::Status);
    }
    if crate::stamp::is_time_key(&n) || n == "created" || n == "date" {
        return Some(Role::Time);
    }
    // a reading taken around the run (`temp_before_max_mC`, `vram_after`): what the machine
    // showed, never a setting compared
    if n.split(['_', ' ', '.', '-']).any(|t| t == "before" || t == "after") {
        let def = def(Quantity::Other, Direction::Neutral, false, false, false);
        return Some(Role::Measure { name: name.trim().to_string(), def, scale: 1.0 });
    }
    if TEXT.contains(&n.as_str()) || TEXT.contains(&lower(name).as_str()) {
        return Some(Role::Text);
    }
    if matches!(
        n.as_str(),
        "runs"
            | "repetitions"
            | "reps"
            | "n_runs"
            | "samples_per_run"
            | "num_samples"
            | "n_samples"
    ) {
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
    let present: Vec<&str> =
        cells.iter().flatten().map(|s| s.trim()).filter(|s| !is_null(s)).collect();
    let role = by_name(name);
    // a summary cell (`108.49±3.63`) counts as its mean
    let nums: Vec<f64> = present.iter().filter_map(|s| parse_mean_sd(s).map(|m| m.0)).collect();
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
    if numeric
        && nums.iter().all(epoch)
        && (lname.contains("time")
            || lname.contains("created")
            || lname.contains("date")
            || lname.ends_with("_at"))
    {
        return Role::Time;
    }
    if numeric {
        // few distinct values relative to the rows: a setting; else a measurement (a `mean±sd`
        // cell is always one)
        let summarised = present.iter().any(|s| parse_mean_sd(s).is_some_and(|m| m.1.is_some()));
        let few = !summarised && distinct.len() <= 12 && distinct.len() * 2 <= present.len().max(2);
        let int = nums.iter().all(|x| x.fract() == 0.0);
        return if few && (int || distinct.len() <= 6) {
            Role::Factor { workload: false }
        } else {
            Role::Measure {
                name: name.trim().to_string(),
                def: def(
                    Quantity::Other,
                    Direction::Neutral,
                    false,
                    false,
                    spread_word(&lower(leaf(name))),
                ),
                scale: 1.0,
            }
        };
    }
    let avg_len = present.iter().map(|s| s.chars().count()).sum::<usize>() / present.len();
    // file paths and URLs identify, they do not configure
    let pathish = |s: &&str| {
        (s.contains('\\') || s.matches('/').count() >= 2 || s.starts_with("http"))
            && !s.contains(' ')
    };
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
    let parts: Vec<f64> =
        nums.split('/').map(|p| p.trim_end_matches('%').parse().ok()).collect::<Option<_>>()?;
    let names: Vec<&str> = who.trim().split('/').collect();
    if parts.len() != names.len() || !nums.contains('%') {
        return None;
    }
    Some(
        names
            .iter()
            .zip(&parts)
            .find(|(n, _)| n.eq_ignore_ascii_case("gpu"))
            .map_or(0.0, |(_, p)| *p),
    )
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
    let t = if t.contains(',')
        && int_part.split(',').skip(1).all(|g| g.len() == 3)
        && !t.split('.').nth(1).is_some_and(|d| d.contains(','))
    {
        t.replace(',', "")
    } else {
        t.to_string()
    };
    let v: f64 = t.parse().ok()?;
    v.is_finite().then_some(v)
}

/// A value as artifacts write one, or a summary as `mean ± sd` (`108.49±3.63`, `62.06 ± 12.28`,
/// `5.1 +/- 0.2`): the mean, and the sd when the cell gives one.
pub fn parse_mean_sd(s: &str) -> Option<(f64, Option<f64>)> {
    let t = s.trim();
    for sep in ["±", "+/-", "+-"] {
        if let Some((m, sd)) = t.split_once(sep) {
            let sd = parse_num(sd).filter(|v| *v >= 0.0)?;
            return Some((parse_num(m)?, Some(sd)));
        }
    }
    parse_num(t).map(|v| (v, None))
}

/// Whether a cell stands for a missing value.
pub fn is_null(s: &str) -> bool {
    matches!(
        lower(s).as_str(),
        "" | "null" | "none" | "nan" | "n/a" | "na" | "-" | "—" | "inf" | "-inf"
    )
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
        return (400.0..600.0).contains(&code).then(|| format!("HTTP status {}", code as i64));
    }
    let bad =
        ["error", "fail", "timeout", "timed out", "crash", "oom", "abort", "killed", "exception"];
    bad.iter().any(|w| t.contains(w)).then(|| format!("status \"{}\"", s.trim()))
}

/// Whether a generated text is an error message rather than an answer: it starts like one, or is
/// a short text naming a failure.
pub fn error_text(s: &str) -> bool {
    let t = lower(s);
    let t = t.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    let starts = [
        "error",
        "exception",
        "traceback",
        "failed to",
        "fatal",
        "http error",
        "request failed",
        "connection error",
        "internal server error",
        "an error occurred",
        "cuda out of memory",
        "out of memory",
        "timeout",
        "timed out",
    ];
    if starts.iter().any(|w| t.starts_with(w)) {
        return true;
    }
    let words = [
        "connection attempts failed",
        "connection refused",
        "failed to connect",
        "max retries exceeded",
        "read timed out",
        "service unavailable",
        "bad gateway",
        "model not found",
        "no such host",
    ];
    t.len() < 200 && words.iter().any(|w| t.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_read_as_mean_and_sd() {
        assert_eq!(parse_mean_sd("108.49±3.63"), Some((108.49, Some(3.63))));
        assert_eq!(parse_mean_sd(" 62.06 ± 12.28 "), Some((62.06, Some(12.28))));
        assert_eq!(parse_mean_sd("5 +/- 0.5"), Some((5.0, Some(0.5))));
        assert_eq!(parse_mean_sd("1,024"), Some((1024.0, None)));
        assert_eq!(parse_mean_sd("5±-1"), None);
        assert_eq!(parse_mean_sd("fast±1"), None);
        // a reading around the run is an outcome, however few values it takes
        let temps = [Some("36100"), Some("37300"), Some("36100"), Some("36100")];
        assert!(matches!(classify("temp_before_max_mC", &temps), Role::Measure { .. }));
        assert!(matches!(classify("temp", &temps), Role::Factor { .. }));
        let sums = [Some("5.1±0.2"), Some("5.1±0.2"), Some("6±1"), Some("6±1")];
        assert!(matches!(classify("score", &sums), Role::Measure { .. }));
    }

    #[test]
    fn roles_from_values() {
        fn c<'a>(v: &[&'a str]) -> Vec<Option<&'a str>> {
            v.iter().map(|s| Some(*s)).collect()
        }
        assert_eq!(classify("num_gpu", &c(&["40", "40", "999"])), Role::Factor { workload: false });
        assert_eq!(
            classify("knob", &c(&["1", "2", "1", "2", "1", "2"])),
            Role::Factor { workload: false }
        );
        assert!(matches!(
            classify("weird", &c(&["1.5", "2.25", "3.75", "4.5"])),
            Role::Measure { .. }
        ));
        assert_eq!(classify("error", &c(&["", "boom"])), Role::Error);
        assert_eq!(
            classify("when", &c(&["2025-09-30T20:09:43", "2025-09-30T20:09:44"])),
            Role::Time
        );
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
