//! Failures grouped by root cause across files: the server could not be reached, a timeout, out
//! of memory, a crash, an encoding error, an HTTP error, no result; each group with its count,
//! the files it touched, the settings it was confined to, and whether the runs reported success
//! (an outage recorded as success is the trap that turns into a false regression).

use crate::analysis::design::Family;
use crate::analysis::record::{Record, Validity};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One root cause.
#[derive(Debug, Clone, Serialize)]
pub struct FailureGroup {
    pub cause: String,
    /// The most common message, as written.
    pub example: String,
    pub count: usize,
    /// Of them, records that said they succeeded (suspect).
    pub reported_success: usize,
    /// (file, failed records, records in the file).
    pub files: Vec<(String, usize, usize)>,
    /// Factor levels every failure of the group shares that the other records of those files do
    /// not all share: where the failures are confined.
    pub confined: Vec<(String, String)>,
    /// Configurations (cells of the files' factors) none of whose runs succeeded.
    pub never_completed: Vec<String>,
    /// First and last time, where the records say.
    pub span: Option<(i64, i64)>,
}

/// The root cause of a message.
pub fn cause(msg: &str) -> String {
    let m = msg.to_ascii_lowercase();
    let has = |ws: &[&str]| ws.iter().any(|w| m.contains(w));
    if has(&[
        "connection refused",
        "connection attempts failed",
        "failed to connect",
        "connection error",
        "no such host",
        "name or service not known",
        "max retries",
        "connecterror",
        "connection reset",
        "unreachable",
        "requested address is not valid",
        "winerror 10061",
        "winerror 10060",
        "winerror 10049",
        "request url is missing",
        "unsupported protocol",
        "invalid url",
        "missing an 'http",
    ]) {
        "the server could not be reached"
    } else if has(&["timeout", "timed out", "deadline exceeded"]) {
        "timeout"
    } else if m.split(|c: char| !c.is_ascii_alphanumeric()).any(|t| t == "oom")
        || has(&[
            "out of memory",
            "exit 137",
            "cannot allocate",
            "alloc failed",
            "failed to allocate",
        ])
    {
        "out of memory"
    } else if has(&[
        "ggml_assert",
        "segmentation",
        "abort",
        "core dumped",
        "exit 134",
        "panicked",
        "crashed",
        "terminate called",
        "backtrace",
    ]) {
        "crash"
    } else if has(&["codec can't", "unicodeencodeerror", "unicodedecodeerror", "charmap"]) {
        "text encoding error"
    } else if has(&["http status 5", "internal server error", "bad gateway", "service unavailable"])
    {
        "server error (HTTP 5xx)"
    } else if has(&["not found", "404", "no such model", "pull model"]) {
        "model not found"
    } else if has(&["no result", "= 0", "all measures are zero", "no tokens"]) {
        "no result recorded"
    } else if has(&["triton", "not installed", "no module named", "importerror", "modulenotfound"])
    {
        "missing dependency"
    } else if has(&["success = false"]) {
        "reported failure without a message"
    } else {
        return format!("other: {}", normalise(msg));
    }
    .to_string()
}

/// A message with numbers and quoted parts blanked, for grouping the rest.
fn normalise(msg: &str) -> String {
    let mut out = String::new();
    let mut in_q = false;
    for c in msg.chars().take(80) {
        match c {
            '\'' | '"' => {
                in_q = !in_q;
                if in_q {
                    out.push('…');
                }
            }
            _ if in_q => {}
            d if d.is_ascii_digit() => {
                if !out.ends_with('#') {
                    out.push('#');
                }
            }
            _ => out.push(c),
        }
    }
    out.trim().to_string()
}

/// Failures of every family, grouped by cause, largest first.
pub fn groups(families: &[Family]) -> Vec<FailureGroup> {
    let mut by: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
    for r in families.iter().flat_map(|f| &f.records) {
        if let Some(why) = r.validity.reason() {
            by.entry(cause(why)).or_default().push(r);
        }
    }
    let mut out: Vec<FailureGroup> =
        by.into_iter().map(|(c, recs)| group(c, &recs, families)).collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.cause.cmp(&b.cause)));
    out
}

fn group(cause: String, recs: &[&Record], families: &[Family]) -> FailureGroup {
    let mut msgs: BTreeMap<&str, usize> = BTreeMap::new();
    for r in recs {
        *msgs.entry(r.validity.reason().unwrap_or("")).or_default() += 1;
    }
    let example =
        msgs.iter().max_by_key(|(_, n)| **n).map(|(m, _)| m.to_string()).unwrap_or_default();
    let files: BTreeSet<&str> = recs.iter().map(|r| r.file.as_str()).collect();
    let all_in_files: Vec<&Record> = families
        .iter()
        .flat_map(|f| &f.records)
        .filter(|r| files.contains(r.file.as_str()))
        .collect();
    let file_counts = files
        .iter()
        .map(|f| {
            (
                f.to_string(),
                recs.iter().filter(|r| r.file == *f).count(),
                all_in_files.iter().filter(|r| r.file == *f).count(),
            )
        })
        .collect();
    // levels all failures share, which the file's other records do not
    let mut confined = vec![];
    if let Some(first) = recs.first() {
        for (k, v) in &first.factors {
            let shared = recs.iter().all(|r| r.factors.get(k) == Some(v));
            let everywhere = all_in_files.iter().all(|r| r.factors.get(k) == Some(v));
            if shared && !everywhere {
                confined.push((k.clone(), v.text().to_string()));
            }
        }
    }
    let times: Vec<i64> = recs.iter().filter_map(|r| r.time).collect();
    let span = times.iter().min().zip(times.iter().max()).map(|(a, b)| (*a, *b));
    FailureGroup {
        cause,
        example,
        count: recs.len(),
        reported_success: recs
            .iter()
            .filter(|r| matches!(r.validity, Validity::Suspect(_)))
            .count(),
        files: file_counts,
        confined,
        never_completed: never_completed(recs, &all_in_files),
        span,
    }
}

/// Configurations whose runs all failed: the failures' distinct treatment levels (every factor but
/// workload ones) with no valid run in the same files.
fn never_completed(failed: &[&Record], all: &[&Record]) -> Vec<String> {
    let key = |r: &Record| {
        r.factors
            .iter()
            .filter(|(k, _)| {
                crate::analysis::readers::columns::factor(k) != Some(true) && !k.contains("time")
            })
            .map(|(k, v)| format!("{k}={}", v.text()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut keys: Vec<String> = failed.iter().map(|r| key(r)).filter(|k| !k.is_empty()).collect();
    keys.sort();
    keys.dedup();
    keys.retain(|k| !all.iter().any(|r| r.validity.is_ok() && key(r) == *k));
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_causes() {
        assert_eq!(
            cause("Error generating banter: All connection attempts failed"),
            "the server could not be reached"
        );
        assert_eq!(cause("crashed: GGML_ASSERT(ne % 32 == 0) failed"), "crash");
        assert_eq!(cause("'charmap' codec can't encode character"), "text encoding error");
        assert_eq!(cause("✖ [rocm] x failed (exit 137)"), "out of memory");
        assert_eq!(cause("no result (avg_ts is null or absent)"), "no result recorded");
        assert_eq!(cause("boom 42 'x'"), "other: boom # …");
    }
}
