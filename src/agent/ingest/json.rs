//! JSON artifacts: measurement leaves as series (records that failed counted apart, nulls as
//! missing values), time-stamped keys, and the arrays and maps of records as datasets.

use super::{is_measurement, parse_num, tables, Facts, Gap};
use crate::stamp::{self, Unix};
use serde_json::Value;
use std::collections::BTreeMap;

/// Series, gaps, failed records and datasets of one JSON document; time stamps go to `times`.
pub(super) fn facts(
    file: &str,
    text: &str,
    facts: &mut Facts,
    times: &mut Vec<Unix>,
) -> Result<(), String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("JSON: {e}"))?;
    if v.as_object().is_some_and(|o| o.is_empty()) || v.as_array().is_some_and(|a| a.is_empty()) {
        facts.gaps.push(Gap {
            path: file.into(),
            kind: "empty file".into(),
            detail: "an empty JSON document".into(),
        });
        return Ok(());
    }
    // path → (values from successful records, failed count, null count)
    let mut acc: BTreeMap<String, (Vec<f64>, usize, usize)> = BTreeMap::new();
    let mut nulls: Vec<String> = vec![];
    walk_json(&v, String::new(), false, &mut acc, &mut nulls, times);
    for (path, (vals, failed, n_null)) in &acc {
        if let Some(s) = tables::series(file, path, vals, *failed, *n_null) {
            facts.series.push(s);
        }
        if *failed > 0 {
            facts.gaps.push(Gap {
                path: file.into(),
                kind: "failed runs".into(),
                detail: format!("{path}: {failed} failed records"),
            });
        }
    }
    for p in nulls {
        facts.gaps.push(Gap { path: file.into(), kind: "null value".into(), detail: p });
    }
    let mut ds = vec![];
    tables::json(file, &v, "", &mut ds);
    for d in ds {
        tables::failed_rows(&d, facts);
        facts.datasets.push(d);
    }
    Ok(())
}

/// True for a record (object) that reports an error or whose measurements are all zero.
fn record_failed(o: &serde_json::Map<String, Value>) -> bool {
    let err = o.iter().any(|(k, v)| {
        let k = k.to_ascii_lowercase();
        (k == "error" || k == "error_message") && v.as_str().is_some_and(|s| !s.trim().is_empty())
    }) || o.get("success").and_then(|s| s.as_bool()) == Some(false);
    let nums: Vec<f64> =
        o.iter().filter(|(k, _)| is_measurement(k)).filter_map(|(_, v)| json_num(v)).collect();
    err || (!nums.is_empty() && nums.iter().all(|v| *v == 0.0))
}

fn json_num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_num(s),
        _ => None,
    }
}

fn walk_json(
    v: &Value,
    path: String,
    in_failed: bool,
    acc: &mut BTreeMap<String, (Vec<f64>, usize, usize)>,
    nulls: &mut Vec<String>,
    times: &mut Vec<Unix>,
) {
    match v {
        Value::Object(o) => {
            let failed = in_failed || record_failed(o);
            for (k, child) in o {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                if stamp::is_time_key(k) {
                    let t = match child {
                        Value::String(s) => stamp::parse(s),
                        Value::Number(n) => n.as_i64().and_then(|n| stamp::parse(&n.to_string())),
                        _ => None,
                    };
                    times.extend(t);
                }
                if is_measurement(k) {
                    if child.is_null() {
                        nulls.push(p.clone());
                        acc.entry(p.clone()).or_default().2 += 1;
                        continue;
                    } else if let Some(x) = json_num(child) {
                        let e = acc.entry(p.clone()).or_default();
                        if failed {
                            e.1 += 1;
                        } else {
                            e.0.push(x);
                        }
                        continue;
                    }
                }
                walk_json(child, p, failed, acc, nulls, times);
            }
        }
        Value::Array(a) => {
            let p = format!("{path}[]");
            for x in a {
                if let Some(n) = json_num(x) {
                    // a bare array of numbers under a measurement key (e.g. samples)
                    if is_measurement(&path) {
                        acc.entry(p.clone()).or_default().0.push(n);
                    }
                } else {
                    walk_json(x, p.clone(), in_failed, acc, nulls, times);
                }
            }
        }
        _ => {}
    }
}
