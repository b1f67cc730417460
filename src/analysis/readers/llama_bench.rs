//! llama-bench's output in each of its formats (`-o md|csv|json|jsonl|sql`; and chimera's own
//! `bench`, which writes the same records): one record per repetition where the file keeps the
//! samples (json, jsonl), else one summary record (mean ± sd) per test. Fields are read by name,
//! never by position; unknown fields are kept as factors when they vary.
//!
//! The measure is named by the test's kind, `pp t/s` (prompt processing), `tg t/s` (generation)
//! or `pp+tg t/s`, so the two are never pooled; `n_prompt`, `n_gen` and `n_depth` stay factors.

use super::columns::parse_num;
use super::table::one_line;
use crate::analysis::record::{Direction, Level, MeasureDef, Obs, Quantity, Record};
use serde_json::Value;
use std::collections::BTreeMap;

/// Fields that describe the test or its result, not the configuration.
const RESULT: &[&str] = &[
    "avg_ns",
    "stddev_ns",
    "avg_ts",
    "stddev_ts",
    "samples_ns",
    "samples_ts",
    "test_time",
    "test",
    "model_size",
    "model_n_params",
];

/// Fields that describe the machine or the run's bookkeeping, never a setting compared.
const IGNORED: &[&str] = &[
    "build_number",
    "cpu_mask",
    "cpu_strict",
    "poll",
    "defrag_thold",
    "tensor_split",
    "tensor_buft_overrides",
    "main_gpu",
    "model_filename",
    "devices",
    "embeddings",
    "no_op_offload",
    "no_host",
    "fit_target",
    "fit_min_ctx",
    "mul_mat_q",
    "use_direct_io",
    "test",
    "mode",
    "value",
];

/// Markdown display names back to field names (llama-bench's `markdown_printer`).
fn md_field(h: &str) -> String {
    match h {
        "ngl" => "n_gpu_layers",
        "threads" => "n_threads",
        "sm" => "split_mode",
        "nkvo" => "no_kv_offload",
        "fa" => "flash_attn",
        "dev" => "devices",
        "ts" => "tensor_split",
        "ot" => "tensor_buft_overrides",
        "lm" => "load_mode",
        "mmap" => "use_mmap",
        "embd" => "embeddings",
        "nopo" => "no_op_offload",
        "noh" => "no_host",
        "fitt" => "fit_target",
        "fitc" => "fit_min_ctx",
        "mmq" => "mul_mat_q",
        "model" => "model_type",
        "backend" => "backends",
        other => other,
    }
    .to_string()
}

/// The rate measure of a test: `pp t/s`, `tg t/s` or `pp+tg t/s`.
fn measure_name(n_prompt: f64, n_gen: f64) -> &'static str {
    match (n_prompt > 0.0, n_gen > 0.0) {
        (true, false) => "pp t/s",
        (false, true) => "tg t/s",
        _ => "pp+tg t/s",
    }
}

fn rate_def() -> MeasureDef {
    MeasureDef {
        quantity: Quantity::TokenRate,
        direction: Direction::Higher,
        primary: true,
        includes_load: false,
        spread: false,
    }
}

/// The measure definitions this reader produces.
pub fn defs() -> Vec<(String, MeasureDef)> {
    ["pp t/s", "tg t/s", "pp+tg t/s"].iter().map(|n| (n.to_string(), rate_def())).collect()
}

/// A test name (`pp512`, `tg128`, `pp512+tg128 @ d4096`, `pp 512`) as (n_prompt, n_gen, n_depth).
pub fn parse_test(t: &str) -> Option<(f64, f64, f64)> {
    let t = t.trim();
    let (main, depth) = match t.split_once('@') {
        Some((m, d)) => (m.trim(), d.trim().strip_prefix('d')?.trim().parse().ok()?),
        None => (t, 0.0),
    };
    let (mut p, mut g) = (0.0, 0.0);
    for part in main.split('+') {
        let part = part.trim().replace(' ', "");
        if let Some(n) = part.strip_prefix("pp") {
            p = n.parse().ok()?;
        } else if let Some(n) = part.strip_prefix("tg") {
            g = n.parse().ok()?;
        } else {
            return None;
        }
    }
    Some((p, g, depth))
}

/// One test's fields as text, and its samples.
struct Fields {
    map: BTreeMap<String, String>,
    samples: Vec<f64>,
    locator: String,
}

fn records_of(file: &str, tests: Vec<Fields>, footer_build: Option<&str>) -> Vec<Record> {
    let mut out = vec![];
    for (i, t) in tests.into_iter().enumerate() {
        let get = |k: &str| t.map.get(k).map(String::as_str);
        let num = |k: &str| get(k).and_then(parse_num);
        let (mut np, mut ng, mut nd) = (num("n_prompt"), num("n_gen"), num("n_depth"));
        if let Some((p, g, d)) = get("test").and_then(parse_test) {
            np = np.or(Some(p));
            ng = ng.or(Some(g));
            nd = nd.or(Some(d));
        }
        let (np, ng) = (np.unwrap_or(0.0), ng.unwrap_or(0.0));
        let name = measure_name(np, ng);
        let mut base = Record::new(file, t.locator.clone(), i);
        for (k, v) in &t.map {
            if RESULT.contains(&k.as_str()) || v.trim().is_empty() || IGNORED.contains(&k.as_str())
            {
                continue;
            }
            base.factors.insert(k.clone(), Level::parse(v));
        }
        base.factors.insert("n_prompt".into(), Level::parse(&fmt_int(np)));
        base.factors.insert("n_gen".into(), Level::parse(&fmt_int(ng)));
        base.factors.insert("n_depth".into(), Level::parse(&fmt_int(nd.unwrap_or(0.0))));
        if let (Some(b), false) = (footer_build, base.factors.contains_key("build_commit")) {
            base.factors.insert("build_commit".into(), Level::Text(b.to_string()));
        }
        base.time = get("test_time").and_then(crate::stamp::parse);
        let avg = num("avg_ts");
        if !t.samples.is_empty() {
            for (rep, s) in t.samples.iter().enumerate() {
                let mut r = base.clone();
                r.locator = format!("{} sample {}", t.locator, rep + 1);
                r.rep = Some(rep);
                r.measures.insert(name.into(), Obs::one(*s));
                if *s <= 0.0 {
                    r.fail("a repetition with no tokens per second");
                }
                out.push(r);
            }
            continue;
        }
        match avg {
            Some(a) if a > 0.0 => {
                let sd = num("stddev_ts");
                base.measures.insert(name.into(), Obs { value: a, sd, n: None });
            }
            _ => base.fail(match get("avg_ts") {
                None => "no result (avg_ts is null or absent)".to_string(),
                Some(v) => one_line(&format!("no result (avg_ts = {v})")),
            }),
        }
        out.push(base);
    }
    out
}

fn fmt_int(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
        other => Some(other.to_string()),
    }
}

/// A record's repetitions in tokens per second (`samples_ts`; none when absent or null).
fn samples_of(o: &serde_json::Map<String, Value>) -> Vec<f64> {
    o.get("samples_ts")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

/// Whether a JSON object is a llama-bench record.
pub fn is_record(o: &serde_json::Map<String, Value>) -> bool {
    o.contains_key("build_commit")
        && (o.contains_key("avg_ts") || o.contains_key("samples_ts"))
        && o.contains_key("n_prompt")
}

/// Records from llama-bench JSON or JSONL objects.
pub fn from_json(
    file: &str,
    objs: &[&serde_json::Map<String, Value>],
    locs: &[String],
) -> Vec<Record> {
    let tests = objs
        .iter()
        .zip(locs)
        .map(|(o, loc)| {
            let samples = samples_of(o);
            let map = o
                .iter()
                .filter(|(k, _)| *k != "samples_ns" && *k != "samples_ts")
                .filter_map(|(k, v)| value_text(v).map(|s| (k.clone(), s)))
                .collect();
            Fields { map, samples, locator: loc.clone() }
        })
        .collect();
    records_of(file, tests, None)
}

/// The key under which objects nest a llama-bench record (a driver's result line holding the
/// llama-bench row it ran, `null` when the run gave none), if they do.
pub fn nested_key(objs: &[&serde_json::Map<String, Value>]) -> Option<String> {
    let first = objs.iter().find_map(|o| {
        o.iter().find(|(_, v)| v.as_object().is_some_and(is_record)).map(|(k, _)| k.clone())
    })?;
    objs.iter()
        .all(|o| o.get(&first).is_some_and(|v| v.is_null() || v.as_object().is_some_and(is_record)))
        .then_some(first)
}

/// Records from objects that nest llama-bench records under `key`: the outer labels (a build
/// name, a flag the driver set) join the record's fields; a `null` record is a failed run.
pub fn from_nested(
    file: &str,
    objs: &[&serde_json::Map<String, Value>],
    key: &str,
    locs: &[String],
) -> Vec<Record> {
    let tests = objs
        .iter()
        .zip(locs)
        .map(|(o, loc)| {
            let inner = o.get(key).and_then(Value::as_object);
            let samples = inner.map(samples_of).unwrap_or_default();
            let mut map: BTreeMap<String, String> = BTreeMap::new();
            for (k, v) in o.iter().filter(|(k, _)| *k != key) {
                // the driver's labels, not its copies of the measurements
                let label = matches!(v, Value::String(_) | Value::Bool(_)) || k == "value";
                if let (true, Some(t)) = (label, value_text(v)) {
                    if !t.is_empty() && !crate::stamp::is_time_key(k) {
                        map.insert(k.clone(), t);
                    }
                }
            }
            if let Some(i) = inner {
                for (k, v) in i.iter().filter(|(k, _)| *k != "samples_ns" && *k != "samples_ts") {
                    if let Some(t) = value_text(v) {
                        map.insert(k.clone(), t);
                    }
                }
            } else {
                // what the driver meant to run: `mode` pp/tg and its `value`
                let mode = o.get("mode").and_then(Value::as_str).unwrap_or("");
                let n = o.get("value").and_then(value_text).unwrap_or_default();
                map.insert("n_prompt".into(), if mode == "pp" { n.clone() } else { "0".into() });
                map.insert("n_gen".into(), if mode == "tg" { n } else { "0".into() });
            }
            Fields { map, samples, locator: loc.clone() }
        })
        .collect();
    records_of(file, tests, None)
}

/// Records from llama-bench CSV (every value quoted; chimera writes samples space-separated).
pub fn from_csv(file: &str, text: &str) -> Result<Vec<Record>, String> {
    let mut rd =
        csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers: Vec<String> =
        rd.headers().map_err(|e| format!("CSV: {e}"))?.iter().map(String::from).collect();
    let mut tests = vec![];
    for (i, rec) in rd.records().enumerate() {
        let Ok(rec) = rec else { break };
        let mut map = BTreeMap::new();
        let mut samples = vec![];
        for (h, v) in headers.iter().zip(rec.iter()) {
            if h == "samples_ts" {
                samples = v
                    .trim_matches(['[', ']', '"'])
                    .split([' ', ';', ','])
                    .filter_map(parse_num)
                    .collect();
            } else if h != "samples_ns" {
                map.insert(h.clone(), v.to_string());
            }
        }
        tests.push(Fields { map, samples, locator: format!("row {}", i + 1) });
    }
    Ok(records_of(file, tests, None))
}

/// Records from llama-bench SQL (`INSERT INTO test|llama_bench (cols) VALUES ('…', …);`).
pub fn from_sql(file: &str, text: &str) -> Vec<Record> {
    let mut tests = vec![];
    for (ln, line) in text.lines().enumerate() {
        let l = line.trim();
        if !l.starts_with("INSERT INTO") {
            continue;
        }
        let (Some(a), Some(b)) = (l.find('('), l.find(") VALUES (")) else { continue };
        let cols: Vec<&str> = l[a + 1..b].split(',').map(str::trim).collect();
        let vals_txt = l[b + ") VALUES (".len()..].trim_end_matches(';').trim_end_matches(')');
        let vals: Vec<String> = vals_txt
            .trim()
            .trim_start_matches('\'')
            .trim_end_matches('\'')
            .split("', '")
            .map(String::from)
            .collect();
        if vals.len() != cols.len() {
            continue;
        }
        let map = cols.iter().map(|c| c.to_string()).zip(vals).collect();
        tests.push(Fields { map, samples: vec![], locator: format!("line {}", ln + 1) });
    }
    records_of(file, tests, None)
}

/// Whether a Markdown table's header is llama-bench's.
pub fn is_md_header(cells: &[String]) -> bool {
    let c: Vec<&str> = cells.iter().map(|s| s.trim()).collect();
    c.len() >= 4 && c.first() == Some(&"model") && c.contains(&"test") && c.last() == Some(&"t/s")
}

/// Records from llama-bench Markdown tables (blank cells filled from the row above, `t/s` split
/// on `±`, the `build:` footer as the build).
pub fn from_md(file: &str, text: &str) -> Vec<Record> {
    let lines: Vec<&str> = text.lines().collect();
    let build = lines.iter().rev().find_map(|l| {
        let b = l.trim().strip_prefix("build:")?.trim();
        Some(b.split_whitespace().next().unwrap_or(b).to_string())
    });
    let mut tests = vec![];
    let mut i = 0;
    while i + 1 < lines.len() {
        let head: Vec<String> =
            super::table::md_cells(lines[i]).into_iter().map(Option::unwrap_or_default).collect();
        if !(lines[i].contains('|') && is_md_header(&head)) {
            i += 1;
            continue;
        }
        let fields: Vec<String> = head.iter().map(|h| md_field(h.trim())).collect();
        let mut prev: Vec<String> = vec![String::new(); fields.len()];
        let mut j = i + 2;
        while j < lines.len() && lines[j].trim().starts_with('|') {
            let cells: Vec<String> = super::table::md_cells(lines[j])
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect();
            let mut map = BTreeMap::new();
            for (k, f) in fields.iter().enumerate() {
                let mut v = cells.get(k).cloned().unwrap_or_default();
                if v.is_empty() {
                    v = prev[k].clone();
                }
                prev[k] = v.clone();
                match f.as_str() {
                    "t/s" => {
                        let (a, s) = v.split_once('±').unwrap_or((&v, ""));
                        map.insert("avg_ts".to_string(), a.trim().to_string());
                        if !s.trim().is_empty() {
                            map.insert("stddev_ts".to_string(), s.trim().to_string());
                        }
                    }
                    "size" | "params" => {}
                    _ => {
                        map.insert(f.clone(), v);
                    }
                }
            }
            tests.push(Fields { map, samples: vec![], locator: format!("line {}", j + 1) });
            j += 1;
        }
        i = j;
    }
    records_of(file, tests, build.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_names() {
        assert_eq!(parse_test("pp512"), Some((512.0, 0.0, 0.0)));
        assert_eq!(parse_test("tg128 @ d4096"), Some((0.0, 128.0, 4096.0)));
        assert_eq!(parse_test("pp512+tg128"), Some((512.0, 128.0, 0.0)));
        assert_eq!(parse_test("pp 512"), Some((512.0, 0.0, 0.0)));
        assert_eq!(parse_test("hello"), None);
    }

    #[test]
    fn markdown_with_blank_cells_and_footer() {
        let md = "| model | size | params | backend | ngl | test | t/s |\n\
                  | --- | ---: | ---: | --- | --: | ---: | ---: |\n\
                  | llama 7B Q4_0 | 3.56 GiB | 6.74 B | ROCm | 99 | pp512 | 1000.50 ± 5.25 |\n\
                  |  |  |  |  |  | tg128 | 50.10 ± 0.20 |\n\nbuild: abc1234 (9999)\n";
        let r = from_md("b.md", md);
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].factors["model_type"].text(), "llama 7B Q4_0", "forward-filled");
        assert_eq!(r[1].measures["tg t/s"].value, 50.1);
        assert_eq!(r[1].measures["tg t/s"].sd, Some(0.2));
        assert_eq!(r[0].factors["build_commit"].text(), "abc1234");
        assert_eq!(r[0].factors["n_gpu_layers"].num(), Some(99.0));
    }

    #[test]
    fn sql_inserts() {
        let sql = "CREATE TABLE IF NOT EXISTS llama_bench (\n  build_commit TEXT,\n  n_prompt INTEGER\n);\n\
                   INSERT INTO llama_bench (build_commit, model_type, n_threads, n_prompt, n_gen, n_depth, avg_ts, stddev_ts) VALUES ('abc', 'llama 7B', '8', '512', '0', '0', '100.5', '1.5');\n";
        let r = from_sql("b.sql", sql);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].measures["pp t/s"].value, 100.5);
        assert_eq!(r[0].factors["n_threads"].num(), Some(8.0));
    }
}
