//! What artifact column and key names mean: measurements and their units, configuration columns,
//! the roles a comparison gives a metric, and numbers as artifacts write them.

/// Keywords that make a column a measurement (case-insensitive substring).
const MEASURE: &[&str] = &[
    "throughput",
    "tokens_s",
    "tok/s",
    "tokens/s",
    "tokens per second",
    "tokens_per_second",
    "latency",
    "ttft",
    "duration",
    "time_ms",
    "_ms",
    "(ms)",
    "load",
    "eval",
    "speed",
    "time_s",
    "p50",
    "p95",
    "p99",
    "avg_ts",
    "stddev_ts",
    "avg_ns",
    "stddev_ns",
    "t/s",
];

/// Configuration columns of a sweep.
pub const CONFIG: &[&str] = &[
    "num_gpu",
    "num_ctx",
    "temperature",
    "config_name",
    "config",
    "variant",
    "top_p",
    "top_k",
    "num_batch",
    "num_thread",
];

fn lower(name: &str) -> String {
    name.trim().to_ascii_lowercase()
}

/// Whether a column or key name denotes a measurement.
pub fn is_measurement(name: &str) -> bool {
    let n = lower(name);
    !CONFIG.contains(&n.as_str()) && MEASURE.iter().any(|k| n.contains(k))
}

/// Whether a column is one of a sweep's configuration columns.
pub fn is_config(name: &str) -> bool {
    CONFIG.contains(&lower(name).as_str())
}

/// The unit a name implies, when it says.
pub fn unit_of(name: &str) -> Option<String> {
    let n = lower(name);
    let tok_s = [
        "tokens_s",
        "tok/s",
        "tokens/s",
        "tokens per second",
        "tokens_per_second",
        "throughput",
        "avg_ts",
        "stddev_ts",
        "t/s",
    ];
    let u = if tok_s.iter().any(|k| n.contains(k)) {
        "tok/s"
    } else if n.ends_with("_ms")
        || n.contains("(ms)")
        || n.contains("time_ms")
        || n.contains("_ms_")
    {
        "ms"
    } else if n.ends_with("_ns") {
        "ns"
    } else if n.ends_with("_s") || n.contains("(s)") {
        "s"
    } else if n.ends_with("count") || n == "tokens" {
        "tokens"
    } else {
        return None;
    };
    Some(u.into())
}

pub fn is_throughput(name: &str) -> bool {
    unit_of(name).as_deref() == Some("tok/s")
}

pub fn is_ttft(name: &str) -> bool {
    lower(name).contains("ttft")
}

pub fn is_load(name: &str) -> bool {
    let n = lower(name);
    n.contains("load") && !n.contains("download")
}

/// What a comparison makes of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Higher is better (tok/s).
    Throughput,
    /// Lower is better (TTFT, latency, mean times).
    Latency,
}

/// The role of a column in comparisons: throughput and time-to-first-token or mean-latency
/// columns; spreads (sd, min, max, percentiles), counts and load times are not compared.
pub fn role(name: &str) -> Option<Role> {
    let n = lower(name);
    let leaf = n.rsplit('.').next().unwrap_or(&n);
    let spread = ["std", "stdev", "sd_", "_sd", "min", "max", "p50", "p95", "p99", "cv"];
    if spread.iter().any(|k| leaf.contains(k)) || is_load(leaf) {
        return None;
    }
    if is_throughput(leaf) {
        return Some(Role::Throughput);
    }
    let latency = ["ttft", "latency", "mean_time", "mean_ms", "mean (ms)", "duration", "time_ms"];
    latency.iter().any(|k| leaf.contains(k)).then_some(Role::Latency)
}

/// Parses a number as artifacts write them: quotes, thousands commas, a trailing %.
pub fn parse_num(s: &str) -> Option<f64> {
    let t = s.trim().trim_matches('"').trim();
    let t = t.strip_suffix('%').unwrap_or(t).trim();
    let t = t.replace(',', "");
    let v: f64 = t.parse().ok()?;
    v.is_finite().then_some(v)
}

/// Whether a cell stands for a missing value.
pub fn is_null_cell(s: &str) -> bool {
    matches!(lower(s).as_str(), "" | "null" | "none" | "nan" | "n/a" | "na" | "-")
}

/// Whether a cell says a run did not succeed.
pub fn is_false(s: &str) -> bool {
    matches!(lower(s).as_str(), "false" | "0" | "no" | "failed" | "fail")
}

/// Columns naming what a row ran: a model, a configuration or a prompt (in that preference).
pub fn is_key_column(name: &str) -> Option<u8> {
    match lower(name).as_str() {
        "model" | "model_name" => Some(0),
        "config_name" | "config" | "variant" | "scenario" => Some(1),
        "prompt" | "prompt_text" | "test name" | "test_name" | "name" => Some(2),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurement_names_and_units() {
        assert!(
            is_measurement("tokens_s")
                && is_measurement("Tokens per Second")
                && is_measurement("ttft_s")
        );
        assert!(
            !is_measurement("num_gpu")
                && !is_measurement("prompt")
                && !is_measurement("temperature")
        );
        assert_eq!(unit_of("mean_tokens_s").as_deref(), Some("tok/s"));
        assert_eq!(unit_of("ttft_s").as_deref(), Some("s"));
        assert_eq!(unit_of("Generation Time (ms)").as_deref(), Some("ms"));
    }

    #[test]
    fn roles_of_metrics() {
        assert_eq!(role("tokens_s"), Some(Role::Throughput));
        assert_eq!(role("ttft_s"), Some(Role::Latency));
        assert_eq!(role("benchmark.mean_time_ms"), Some(Role::Latency));
        for none in ["load_s", "std_time_ms", "max_time_ms", "eval_count", "p95_ms", "stddev_ts"] {
            assert_eq!(role(none), None, "{none}");
        }
    }

    #[test]
    fn numbers_as_artifacts_write_them() {
        assert_eq!(parse_num("\"1,234.5\""), Some(1234.5));
        assert_eq!(parse_num("12%"), Some(12.0));
        assert_eq!(parse_num("n/a"), None);
        assert!(is_null_cell(" NaN ") && !is_null_cell("0"));
    }
}
