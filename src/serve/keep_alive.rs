//! Ollama's `keep_alive`: how long a model stays loaded after its last request, in Ollama's
//! forms (seconds, or Go durations such as "5m" and "1h30m"; negative means forever).

use serde_json::Value;
use std::time::Duration;

/// How long a model stays loaded after its last request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    Forever,
    For(Duration),
}

impl KeepAlive {
    /// Ollama's forms: seconds as a number, or a duration string ("5m", "1h30m", "30s", "0",
    /// "-1"); negative means forever.
    pub fn parse(v: &Value) -> Result<KeepAlive, String> {
        match v {
            Value::Number(n) => {
                let s = n.as_f64().ok_or("not a number")?;
                Ok(if s < 0.0 {
                    KeepAlive::Forever
                } else {
                    KeepAlive::For(Duration::from_secs_f64(s))
                })
            }
            Value::String(s) => parse_duration(s.trim()),
            _ => Err("expected a duration (\"5m\") or seconds".into()),
        }
    }
}

fn parse_duration(s: &str) -> Result<KeepAlive, String> {
    if s.starts_with('-') {
        return Ok(KeepAlive::Forever);
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Ok(KeepAlive::For(Duration::from_secs_f64(secs)));
    }
    // Go's time.ParseDuration units
    let (mut total, mut rest) = (0f64, s);
    while !rest.is_empty() {
        let num = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let unit = rest[num..].find(|c: char| c.is_ascii_digit()).map_or(rest.len(), |u| num + u);
        let v: f64 = rest[..num].parse().map_err(|_| format!("'{s}' is not a duration"))?;
        let scale = match &rest[num..unit] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("'{s}' is not a duration")),
        };
        total += v * scale;
        rest = &rest[unit..];
    }
    if s.is_empty() || !total.is_finite() {
        return Err(format!("'{s}' is not a duration"));
    }
    Ok(KeepAlive::For(Duration::from_secs_f64(total)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keep_alive_reads_ollamas_forms() {
        let d = |s: f64| KeepAlive::For(Duration::from_secs_f64(s));
        assert_eq!(KeepAlive::parse(&json!("5m")), Ok(d(300.0)));
        assert_eq!(KeepAlive::parse(&json!("1h30m")), Ok(d(5400.0)));
        assert_eq!(KeepAlive::parse(&json!(0)), Ok(d(0.0)));
        assert_eq!(KeepAlive::parse(&json!("-1")), Ok(KeepAlive::Forever));
        assert_eq!(KeepAlive::parse(&json!(-1)), Ok(KeepAlive::Forever));
        assert!(KeepAlive::parse(&json!("soon")).is_err());
        assert!(KeepAlive::parse(&json!(true)).is_err());
    }
}
