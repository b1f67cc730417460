//! JSON whose shape is not known in advance: arrays of objects and maps of similar objects become
//! tables of runs (nested objects flattened to dotted names, the parents' labels and times given
//! to every row), and the scalar leaves left over become the file's one summary row. Also the
//! dialect repairs real files need: `NaN`/`Infinity` outside strings, one object per line, an
//! array whose closing `]` a crash never wrote.

use super::table::Table;
use serde_json::{Map, Value};

/// Parses a JSON text leniently: the whole text, else one value per line (JSON Lines, or
/// objects appended one after another), with non-finite number tokens read as null and a
/// missing final `]` supplied. The note says what was repaired.
pub fn parse(text: &str) -> Result<(Value, Option<String>), String> {
    let first = serde_json::from_str::<Value>(text);
    let err = match first {
        Ok(v) => return Ok((v, None)),
        Err(e) => e,
    };
    let cleaned = replace_non_finite(text);
    if cleaned != text {
        if let Ok(v) = serde_json::from_str::<Value>(&cleaned) {
            return Ok((v, Some("non-finite numbers (NaN/Infinity) read as null".into())));
        }
    }
    let mut stream = serde_json::Deserializer::from_str(&cleaned).into_iter::<Value>();
    let mut vals = vec![];
    for v in stream.by_ref() {
        match v {
            Ok(v) => vals.push(v),
            Err(_) => break,
        }
    }
    if vals.len() > 1 {
        return Ok((Value::Array(vals), Some("several JSON values, one after another".into())));
    }
    if let Some(v) = json_lines(&cleaned) {
        return Ok(v);
    }
    let t = cleaned.trim_end();
    if t.starts_with('[') {
        // a crashed writer: cut after the last complete object and close the array
        if let Some(end) = t.rfind('}') {
            let repaired = format!("{}]", &t[..=end]);
            if let Ok(v) = serde_json::from_str::<Value>(&repaired) {
                return Ok((
                    v,
                    Some("unterminated array closed after its last complete record".into()),
                ));
            }
        }
    }
    Err(format!("JSON: {err}"))
}

/// JSON Lines mixed with a tool's log output (`llama-bench -o jsonl 2>&1 | tee`): the lines that
/// are whole objects at column 0, when there are any; the rest is named in the note.
fn json_lines(text: &str) -> Option<(Value, Option<String>)> {
    let (mut objs, mut other) = (vec![], 0usize);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(line) {
            Ok(v @ Value::Object(_)) if line.starts_with('{') => objs.push(v),
            _ => other += 1,
        }
    }
    if objs.is_empty() || other == 0 {
        return None;
    }
    let note = format!(
        "{other} line{} that {} not JSON (log output) skipped; {} JSON line{} read",
        if other == 1 { "" } else { "s" },
        if other == 1 { "is" } else { "are" },
        objs.len(),
        if objs.len() == 1 { "" } else { "s" }
    );
    Some((Value::Array(objs), Some(note)))
}

/// The 1-based numbers of the lines that are whole JSON objects at column 0.
pub fn object_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            l.starts_with('{') && serde_json::from_str::<Value>(l).is_ok_and(|v| v.is_object())
        })
        .map(|(i, _)| i + 1)
        .collect()
}

/// `NaN`, `Infinity` and `-Infinity` outside strings become `null`.
fn replace_non_finite(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_str, mut esc) = (false, false);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if !in_str {
            if let Some(tok) =
                ["-Infinity", "Infinity", "NaN"].iter().find(|t| rest.starts_with(**t))
            {
                out.push_str("null");
                rest = &rest[tok.len()..];
                continue;
            }
            in_str = c == '"';
        } else if esc {
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else if c == '"' {
            in_str = false;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The tables of a JSON document.
pub fn tables(file: &str, v: &Value) -> Vec<Table> {
    let mut out = vec![];
    let mut leftover = vec![];
    walk(file, v, "", &[], &mut out, &mut leftover);
    let measures = leftover.iter().filter(|(k, _)| super::columns::measure(k).is_some()).count();
    if measures > 0 {
        let (headers, cells): (Vec<String>, Vec<Option<String>>) = leftover.into_iter().unzip();
        out.push(Table {
            file: file.into(),
            locator: "summary".into(),
            headers,
            rows: vec![cells],
            row_locs: vec!["top level".into()],
            context: vec![],
        });
    }
    out
}

/// A label worth giving to the rows below: a short string, a time, or a number under a factor
/// name.
fn context_value(k: &str, v: &Value) -> Option<String> {
    match v {
        Value::String(s) if s.chars().count() <= 80 && !s.contains('\n') => Some(s.clone()),
        Value::Number(n) if super::columns::factor(k).is_some() || crate::stamp::is_time_key(k) => {
            Some(n.to_string())
        }
        Value::Bool(b) if super::columns::factor(k).is_some() => Some(b.to_string()),
        _ => None,
    }
}

fn walk(
    file: &str,
    v: &Value,
    path: &str,
    ctx: &[(String, String)],
    out: &mut Vec<Table>,
    leftover: &mut Vec<(String, Option<String>)>,
) {
    match v {
        Value::Array(a) => {
            let objs: Vec<&Map<String, Value>> = a.iter().filter_map(Value::as_object).collect();
            if !objs.is_empty() && objs.len() * 2 >= a.len() {
                let locs = a
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| x.is_object())
                    .map(|(i, _)| format!("{}[{i}]", if path.is_empty() { "" } else { path }))
                    .collect();
                records(file, path, &format!("{path}[]"), None, &objs, locs, ctx, out);
            }
        }
        Value::Object(o) => {
            if let Some(factor) = map_of_records(path, o) {
                let keys: Vec<String> = o.keys().cloned().collect();
                let objs: Vec<&Map<String, Value>> =
                    o.values().filter_map(Value::as_object).collect();
                let locs = keys.iter().map(|k| join(path, k)).collect();
                records(file, path, &join(path, "*"), Some((factor, keys)), &objs, locs, ctx, out);
                return;
            }
            let mut ctx = ctx.to_vec();
            for (k, child) in o {
                if let Some(s) = context_value(k, child) {
                    ctx.push((k.clone(), s));
                }
                // a small object of settings (`model: {name, device, dtype}`) labels its siblings' rows
                if let Some(inner) = child.as_object().filter(|m| {
                    m.len() <= 16 && m.values().all(|x| !x.is_object() && !x.is_array())
                }) {
                    for (k2, v2) in inner {
                        let name = join(k, k2);
                        if let Some(s) = context_value(&name, v2).or_else(|| context_value(k2, v2))
                        {
                            ctx.push((name, s));
                        }
                    }
                }
            }
            for (k, child) in o {
                let p = join(path, k);
                match child {
                    Value::Object(_) | Value::Array(_) => {
                        walk(file, child, &p, &ctx, out, leftover)
                    }
                    Value::Null => leftover.push((p, None)),
                    Value::String(s) => leftover.push((p, Some(s.clone()))),
                    other => leftover.push((p, Some(other.to_string()))),
                }
            }
        }
        _ => {}
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

/// An object whose values are two or more objects sharing most of their keys, each holding a
/// number: a map from a level to its record. Returns the factor's name (the singular of the
/// map's own key, `variant` at the top).
fn map_of_records(path: &str, o: &Map<String, Value>) -> Option<String> {
    if o.len() < 2 || !o.values().all(Value::is_object) {
        return None;
    }
    let keysets: Vec<Vec<&String>> =
        o.values().filter_map(Value::as_object).map(|m| m.keys().collect()).collect();
    let numeric = o.values().filter_map(Value::as_object).all(|m| {
        m.values().any(|x| {
            x.is_number() || x.as_object().is_some_and(|i| i.values().any(Value::is_number))
        })
    });
    let first = &keysets[0];
    let similar = keysets.iter().all(|k| {
        let shared = k.iter().filter(|x| first.contains(x)).count();
        shared * 2 >= k.len().max(first.len())
    });
    if !(numeric && similar) {
        return None;
    }
    let leaf = path.rsplit('.').next().unwrap_or(path);
    let name = if leaf.is_empty() {
        "variant".to_string()
    } else if leaf.len() > 3 && leaf.ends_with('s') && !leaf.ends_with("ss") {
        leaf[..leaf.len() - 1].to_string()
    } else {
        leaf.to_string()
    };
    Some(name)
}

/// Flattens an object's scalar leaves into dotted names; arrays of objects inside go to their
/// own tables (with this object's labels as context), arrays of scalars are skipped.
fn flatten(
    prefix: &str,
    o: &Map<String, Value>,
    out: &mut Vec<(String, Option<String>)>,
    nested: &mut Vec<(String, Value)>,
) {
    for (k, v) in o {
        let key = join(prefix, k);
        match v {
            Value::Object(inner) => flatten(&key, inner, out, nested),
            Value::Array(a) if a.iter().any(Value::is_object) => nested.push((key, v.clone())),
            Value::Array(_) => {}
            Value::Null => out.push((key, None)),
            Value::String(s) => out.push((key, Some(s.clone()))),
            other => out.push((key, Some(other.to_string()))),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn records(
    file: &str,
    path: &str,
    locator: &str,
    keyed: Option<(String, Vec<String>)>,
    objs: &[&Map<String, Value>],
    row_locs: Vec<String>,
    ctx: &[(String, String)],
    out: &mut Vec<Table>,
) {
    let mut headers: Vec<String> = keyed.as_ref().map(|(f, _)| vec![f.clone()]).unwrap_or_default();
    let mut flat = Vec::with_capacity(objs.len());
    let mut nested_all = vec![];
    for (i, o) in objs.iter().enumerate() {
        let mut f = vec![];
        let mut nested = vec![];
        flatten("", o, &mut f, &mut nested);
        for (k, _) in &f {
            if !headers.contains(k) {
                headers.push(k.clone());
            }
        }
        // the row's labels go down to its nested tables
        let mut sub_ctx = ctx.to_vec();
        if let Some((fname, keys)) = &keyed {
            sub_ctx.push((fname.clone(), keys[i].clone()));
        }
        for (k, v) in &f {
            if let Some(v) = v {
                if context_value(k, &Value::String(v.clone())).is_some()
                    && (super::columns::factor(k).is_some() || super::columns::measure(k).is_none())
                    && v.parse::<f64>().is_err()
                {
                    sub_ctx.push((k.clone(), v.clone()));
                }
            }
        }
        for (k, v) in nested {
            nested_all.push((
                format!("{}.{k}", row_locs.get(i).cloned().unwrap_or_default()),
                v,
                sub_ctx.clone(),
            ));
        }
        flat.push(f);
    }
    let rows: Vec<Vec<Option<String>>> = flat
        .iter()
        .enumerate()
        .map(|(i, f)| {
            headers
                .iter()
                .map(|h| {
                    if let Some((fname, keys)) = &keyed {
                        if h == fname {
                            return Some(keys[i].clone());
                        }
                    }
                    f.iter().find(|(k, _)| k == h).and_then(|(_, v)| v.clone())
                })
                .collect()
        })
        .collect();
    let context: Vec<(String, String)> =
        ctx.iter().filter(|(k, _)| !headers.iter().any(|h| h == k)).cloned().collect();
    let _ = path;
    out.push(Table {
        file: file.into(),
        locator: locator.to_string(),
        headers,
        rows,
        row_locs,
        context,
    });
    for (loc, v, sub_ctx) in nested_all {
        if let Value::Array(a) = &v {
            let objs: Vec<&Map<String, Value>> = a.iter().filter_map(Value::as_object).collect();
            let locs = (0..objs.len()).map(|i| format!("{loc}[{i}]")).collect();
            let generic = generic_locator(&loc);
            records(file, &loc, &format!("{generic}[]"), None, &objs, locs, &sub_ctx, out);
        }
    }
}

/// `results[3].runs` → `results[].runs`: the locator every sibling table shares.
fn generic_locator(loc: &str) -> String {
    let mut s = String::with_capacity(loc.len());
    let mut skip = false;
    for c in loc.chars() {
        match c {
            '[' => {
                s.push('[');
                skip = true;
            }
            ']' => {
                s.push(']');
                skip = false;
            }
            _ if skip => {}
            _ => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_parsing() {
        let (v, note) = parse("{\"a\": NaN, \"b\": \"NaN\"}").unwrap();
        assert!(v["a"].is_null() && v["b"] == "NaN" && note.is_some());
        let (v, _) = parse("{\"a\": 1}\n{\"a\": 2}\n").unwrap();
        assert_eq!(v.as_array().map(Vec::len), Some(2));
        let (v, note) = parse("[\n{\"a\": 1},\n{\"a\": 2},\n{\"a\"").unwrap();
        assert_eq!(v.as_array().map(Vec::len), Some(2));
        assert!(note.unwrap().contains("unterminated"));
        assert!(parse("{oops").is_err());
        let log =
            "ggml_cuda_init: found 1 ROCm devices:\n  Device 0: gfx1151\n{\"a\": 1}\n{\"a\": 2}\n";
        let (v, note) = parse(log).unwrap();
        assert_eq!(v.as_array().map(Vec::len), Some(2));
        assert!(note.unwrap().starts_with("2 lines that are not JSON"));
        assert_eq!(object_lines(log), vec![3, 4]);
        assert!(parse("log:\n  {\"a\": 1}\n").is_err(), "indented objects are not JSON Lines");
    }

    #[test]
    fn arrays_maps_and_summaries() {
        let (v, _) = parse(
            r#"{"model": "gemma3:1b", "test_timestamp": 1759098967.2,
                "results": [{"test_name": "a", "tokens_per_second": 14.1, "success": true},
                            {"test_name": "b", "tokens_per_second": 15.2, "success": true}],
                "backends": {"eager": {"mean_ms": 5.0}, "jit": {"mean_ms": 4.0}},
                "summary": {"avg_tokens_per_second": 14.65}}"#,
        )
        .unwrap();
        let t = tables("x.json", &v);
        let results = t.iter().find(|t| t.locator == "results[]").unwrap();
        assert_eq!(results.rows.len(), 2);
        assert!(results.context.iter().any(|(k, v)| k == "model" && v == "gemma3:1b"));
        let recs = results.records();
        assert_eq!(recs[1].factors["model"].text(), "gemma3:1b");
        assert_eq!(recs[1].locator, "results[1]");
        let backends = t.iter().find(|t| t.locator == "backends.*").unwrap();
        assert_eq!(backends.headers[0], "backend");
        assert_eq!(backends.records()[1].factors["backend"].text(), "jit");
        assert!(t.iter().any(|t| t.locator == "summary"));
    }
}
