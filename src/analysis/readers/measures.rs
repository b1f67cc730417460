//! What a column name says about a measure: its quantity (a token or request rate, a time, a
//! count, bytes, a ratio), the canonical unit and the factor to it from the name's suffix
//! (`_ms`, `_s`, `_ns`, Ollama's nanosecond durations), its direction, whether it is a primary
//! performance measure, whether it includes loading, whether it is a spread of another.

use super::columns::{leaf, CONFIG, IDS, WORKLOAD};
use crate::analysis::record::{Direction, MeasureDef, Quantity};

fn lower(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

/// Time fields of Ollama's API in nanoseconds (api/types.go `Metrics`).
const OLLAMA_NS: &[&str] =
    &["total_duration", "load_duration", "prompt_eval_duration", "eval_duration"];

/// Words whose presence makes a name a spread or tail statistic of another measure.
pub(super) fn spread_word(n: &str) -> bool {
    let toks: Vec<&str> = n.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    toks.iter().any(|t| {
        matches!(
            *t,
            "std"
                | "stdev"
                | "stddev"
                | "sd"
                | "var"
                | "variance"
                | "cv"
                | "min"
                | "max"
                | "iqr"
                | "mad"
                | "stderr"
                | "sem"
                | "ci"
                | "lo"
                | "hi"
                | "lower"
                | "upper"
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
        "tokens"
            | "token"
            | "tok"
            | "toks"
            | "requests"
            | "request"
            | "req"
            | "reqs"
            | "items"
            | "ops"
            | "samples"
            | "chars"
            | "queries"
            | "images"
    )
}

pub(super) fn def(
    quantity: Quantity,
    direction: Direction,
    primary: bool,
    load: bool,
    spread: bool,
) -> MeasureDef {
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
    let words: Vec<&str> = n.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    if words.iter().any(|t| {
        ["delta", "diff", "difference", "improvement", "change", "speedup", "ratio", "gain", "vs"]
            .contains(t)
    }) {
        return Some((
            name.trim().to_string(),
            def(Quantity::Other, Direction::Neutral, false, false, spread),
            1.0,
        ));
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
        // `tokens_s` is a rate; `time_to_first_token_s` is a time
        || time_suffix(&n)
            .is_some_and(|(f, stem)| f == 1e3 && count_noun(stem) && !ttft && !stem.contains("time"));
    if per_s && (n.contains("char") || n.contains("byte") || n.contains("word")) {
        return Some((
            name.trim().to_string(),
            def(Quantity::Other, Direction::Higher, false, false, spread),
            1.0,
        ));
    }
    if per_s {
        let req = n.contains("req") || n.contains("request") || n == "ops" || n.contains("qps");
        let q = if req { Quantity::RequestRate } else { Quantity::TokenRate };
        let primary = !spread && !tail;
        return Some((
            name.trim().to_string(),
            def(q, Direction::Higher, primary, false, spread),
            1.0,
        ));
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
        if !count_noun(stem) || ttft || stem.contains("time") {
            let primary =
                !spread && !tail && !load && (ttft || primary_time(stem) || pct == Some(50.0));
            let shown = clean(name.trim(), name.trim().len() - (n.len() - stem.len()));
            return Some((
                shown,
                def(
                    Quantity::Time,
                    Direction::Lower,
                    primary,
                    load || ttft || n.contains("total"),
                    spread,
                ),
                scale,
            ));
        }
    }
    if OLLAMA_NS.contains(&n.as_str()) {
        let primary = false;
        return Some((
            name.trim().to_string(),
            def(
                Quantity::Time,
                Direction::Lower,
                primary,
                n != "eval_duration" && n != "prompt_eval_duration",
                false,
            ),
            1e-6,
        ));
    }
    if ttft || latency_word(&n) {
        // a time without a unit in its name: seconds unless the values say otherwise (`scale_guess`)
        let primary = !spread && !tail && !load && primary_time(&n);
        return Some((
            name.trim().to_string(),
            def(Quantity::Time, Direction::Lower, primary, load || ttft, spread),
            0.0,
        ));
    }
    if counts {
        return Some((
            name.trim().to_string(),
            def(Quantity::Count, Direction::Neutral, false, false, spread),
            1.0,
        ));
    }
    for (suffix, scale) in [
        ("_bytes", 1.0),
        ("_kb", 1024.0),
        ("_kib", 1024.0),
        ("_mb", 1048576.0),
        ("_mib", 1048576.0),
        ("_gb", 1073741824.0),
        ("_gib", 1073741824.0),
    ] {
        if let Some(stem) = n.strip_suffix(suffix) {
            let shown = clean(name.trim(), name.trim().len() - (n.len() - stem.len()));
            return Some((
                shown,
                def(Quantity::Bytes, Direction::Lower, false, false, spread),
                scale,
            ));
        }
    }
    if n.contains("memory") || n.contains("vram") || n.contains("rss") || n.ends_with("size") {
        return Some((
            name.trim().to_string(),
            def(Quantity::Bytes, Direction::Lower, false, false, spread),
            1.0,
        ));
    }
    let higher = [
        "accuracy",
        "acc",
        "score",
        "success_rate",
        "hit_rate",
        "efficiency",
        "speedup",
        "gflops",
        "tflops",
        "bandwidth",
        "utilization",
        "util",
    ];
    let lower_words =
        ["loss", "error_rate", "perplexity", "ppl", "overhead", "power", "energy", "cost"];
    let pctish = n.ends_with('%')
        || n.ends_with("_pct")
        || n.ends_with("percent")
        || n.ends_with("_percent");
    if higher.iter().any(|w| n.contains(w)) {
        let q = if pctish { Quantity::Ratio } else { Quantity::Other };
        let neutral = n.contains("util");
        let d = if neutral { Direction::Neutral } else { Direction::Higher };
        return Some((name.trim().to_string(), def(q, d, false, false, spread), 1.0));
    }
    if lower_words.iter().any(|w| n.contains(w)) {
        let q = if pctish { Quantity::Ratio } else { Quantity::Other };
        return Some((
            name.trim().to_string(),
            def(q, Direction::Lower, false, false, spread),
            1.0,
        ));
    }
    if pctish {
        return Some((
            name.trim().to_string(),
            def(Quantity::Ratio, Direction::Neutral, false, false, spread),
            1.0,
        ));
    }
    let _ = full;
    None
}

/// Words that make a name a latency.
fn latency_word(n: &str) -> bool {
    let toks: Vec<&str> = n.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    let whole = [
        "latency", "ttft", "tpot", "itl", "e2el", "duration", "time", "elapsed", "load", "mean",
        "median", "avg", "p50",
    ];
    (toks.iter().any(|t| whole.contains(t))
        || ["latency", "duration", "elapsed"].iter().any(|w| n.contains(w)))
        && !n.contains("timestamp")
        && !n.contains("datetime")
        && !n.contains("create")
}

/// Times that are what a benchmark measures (not load, compile, queue or warm-up times).
fn primary_time(n: &str) -> bool {
    let toks: Vec<&str> = n.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    let words = [
        "latency",
        "ttft",
        "tpot",
        "itl",
        "e2el",
        "elapsed",
        "mean",
        "median",
        "avg",
        "p50",
        "inference",
        "generation",
        "total",
        "wall",
        "e2e",
        "response",
    ];
    toks.iter().any(|t| words.contains(t)) || n.contains("latency") || n.contains("time_to_first")
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
        assert_eq!(
            m("tokens_s"),
            ("tokens_s".into(), Quantity::TokenRate, Direction::Higher, true, 1.0)
        );
        assert_eq!(m("ttft_s"), ("ttft".into(), Quantity::Time, Direction::Lower, true, 1e3));
        assert_eq!(m("timings.predicted_per_second").1, Quantity::TokenRate);
        let t = m("time_to_first_token_s");
        assert_eq!(
            (t.1, t.2, t.4),
            (Quantity::Time, Direction::Lower, 1000.0),
            "seconds, not tok/s"
        );
        assert_eq!(
            m("mean_ttft_ms"),
            ("mean_ttft".into(), Quantity::Time, Direction::Lower, true, 1.0)
        );
        assert_eq!(m("request_throughput").1, Quantity::RequestRate);
        assert_eq!(m("eval_duration").4, 1e-6);
        assert_eq!(m("eval_count").1, Quantity::Count);
        assert!(!m("load_s").3, "load is not a primary measure");
        assert!(measure("p99_ttft_ms").is_some_and(|(_, d, _)| !d.primary));
        assert!(measure("std_ttft_ms").is_some_and(|(_, d, _)| d.spread));
        assert_eq!(m("Generation Time (ms)").0, "Generation Time");
        assert_eq!(m("model_size_bytes").1, Quantity::Bytes);
        assert_eq!(m("accuracy").2, Direction::Higher);
        for none in ["num_gpu", "model", "prompt", "temperature", "run_id", "timestamp"] {
            assert!(measure(none).is_none(), "{none}");
        }
    }
}
