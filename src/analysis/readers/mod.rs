//! Readers: one per format that benchmark tools really write, behind one `read` that sniffs the
//! format from the file's name and first bytes and never lets one reader guess inside another.
//! Each gives records (one measured run each) or a reason the file cannot be read.
//!
//! Known formats (`llama_bench`, llama.cpp's timing lines and logs in `text`, Ollama's verbose
//! block, Go benchmark lines) map fields to factors and measures by their documented meaning;
//! tables whose columns are not known in advance (CSV, Markdown, JSON of any shape: Ollama API
//! responses, llama-server `timings`, vLLM/SGLang serving results) go through `table` and
//! `columns`, which read roles from names, units from suffixes and values.

pub mod columns;
pub mod json;
pub mod llama_bench;
pub mod measures;
pub mod table;
pub mod text;

use crate::analysis::record::{Obs, Record};
use serde_json::Value;

/// The records of one table or block of a file, as one reader produced them.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The format as the report names it: `llama-bench jsonl`, `CSV`, `JSON`, ….
    pub format: String,
    /// Which part of the file: `""`, `results[]`, `table 2 (Results)`, `summary`.
    pub locator: String,
    pub records: Vec<Record>,
    /// A file's top-level aggregates beside its own rows, or a Markdown table in a report:
    /// data derived from other data, used for checking, not as runs.
    pub derived: bool,
}

/// What a file gave.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub batches: Vec<Batch>,
    /// A repair made to read it (an unterminated JSON array closed).
    pub note: Option<String>,
}

/// The kind of file by extension: data, a report, a log, or nothing to read.
pub fn kind(path: &str) -> Option<&'static str> {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    Some(match ext {
        "csv" | "tsv" => "csv",
        "json" | "jsonl" | "ndjson" => "json",
        "md" | "markdown" => "md",
        "txt" | "log" | "out" => "text",
        "sql" => "sql",
        _ => return None,
    })
}

/// Reads one file's text.
pub fn read(file: &str, text: &str) -> Result<Parsed, String> {
    let k = kind(file).ok_or_else(|| "not a format analyze reads".to_string())?;
    match k {
        "json" => read_json(file, text),
        "csv" => read_csv(file, text),
        "sql" => Ok(one("llama-bench sql", llama_bench::from_sql(file, text))),
        "md" => Ok(read_markdown(file, text)),
        _ => Ok(read_text(file, text)),
    }
}

fn one(format: &str, records: Vec<Record>) -> Parsed {
    let mut p = Parsed::default();
    if !records.is_empty() {
        p.batches.push(Batch {
            format: format.into(),
            locator: String::new(),
            records,
            derived: false,
        });
    }
    p
}

fn read_csv(file: &str, text: &str) -> Result<Parsed, String> {
    let first = text.lines().next().unwrap_or("").trim_start_matches('\u{feff}');
    let cols: Vec<&str> = first.split(',').map(|c| c.trim().trim_matches('"')).collect();
    let lb = ["n_prompt", "n_gen", "avg_ts"].iter().all(|c| cols.contains(c));
    if first.trim_matches('"').starts_with("build_commit") || lb {
        return Ok(one("llama-bench csv", llama_bench::from_csv(file, text)?));
    }
    let text = if file.to_ascii_lowercase().ends_with(".tsv") {
        text.replace('\t', ",")
    } else {
        text.to_string()
    };
    let t = table::csv(file, &text)?;
    let mut records = t.records();
    records.iter_mut().for_each(derive);
    Ok(one("CSV", records))
}

fn read_json(file: &str, text: &str) -> Result<Parsed, String> {
    let (v, note) = json::parse(text)?;
    let mut p = Parsed { note, ..Default::default() };
    let objs: Vec<&serde_json::Map<String, Value>> = match &v {
        Value::Array(a) => a.iter().filter_map(Value::as_object).collect(),
        Value::Object(o) => vec![o],
        _ => vec![],
    };
    if !objs.is_empty() && objs.iter().all(|o| llama_bench::is_record(o)) {
        let locs: Vec<String> = if objs.len() == 1 && v.is_object() {
            vec!["top level".into()]
        } else if text.trim_start().starts_with('[') {
            (0..objs.len()).map(|i| format!("[{i}]")).collect()
        } else {
            // log lines between the records: cite the records' own line numbers
            let mixed = p.note.as_deref().is_some_and(|n| n.contains("not JSON"));
            let at = if mixed { json::object_lines(text) } else { vec![] };
            if mixed && at.len() == objs.len() {
                at.iter().map(|i| format!("line {i}")).collect()
            } else {
                (0..objs.len()).map(|i| format!("line {}", i + 1)).collect()
            }
        };
        let fmt = if text.trim_start().starts_with('[') {
            "llama-bench json"
        } else {
            "llama-bench jsonl"
        };
        let mut q = one(fmt, llama_bench::from_json(file, &objs, &locs));
        q.note = p.note;
        return Ok(q);
    }
    if let Some(key) = llama_bench::nested_key(&objs).filter(|_| objs.len() > 1) {
        let locs: Vec<String> = (0..objs.len()).map(|i| format!("line {}", i + 1)).collect();
        let mut q = one("llama-bench (nested)", llama_bench::from_nested(file, &objs, &key, &locs));
        q.note = p.note;
        return Ok(q);
    }
    // an Ollama stream: only the final (done) object of each response carries metrics
    let v = drop_stream_chunks(v);
    let tables = json::tables(file, &v);
    let has_rows = tables.iter().any(|t| t.locator != "summary");
    for t in tables {
        let mut records = t.records();
        records.iter_mut().for_each(derive);
        let format = if records.iter().any(|r| r.measures.contains_key("eval_rate")) {
            "Ollama API"
        } else {
            "JSON"
        };
        if !records.is_empty() {
            let derived = t.locator == "summary" && has_rows;
            p.batches.push(Batch {
                format: format.into(),
                locator: t.locator.clone(),
                records,
                derived,
            });
        }
    }
    Ok(p)
}

/// Drops the `done: false` chunks of Ollama NDJSON streams.
fn drop_stream_chunks(v: Value) -> Value {
    match v {
        Value::Array(a) if a.iter().any(|x| x.get("done") == Some(&Value::Bool(false))) => {
            Value::Array(
                a.into_iter().filter(|x| x.get("done") != Some(&Value::Bool(false))).collect(),
            )
        }
        other => other,
    }
}

/// Rates the file does not write but its counts and durations give: Ollama's eval and prompt
/// eval rates (`eval_count / eval_duration`), where the record has both and no rate.
pub fn derive(r: &mut Record) {
    let keys: Vec<String> = r.measures.keys().cloned().collect();
    for k in &keys {
        for (count, dur, rate) in [
            ("eval_count", "eval_duration", "eval_rate"),
            ("prompt_eval_count", "prompt_eval_duration", "prompt_eval_rate"),
        ] {
            let Some(prefix) = k.strip_suffix(count) else { continue };
            if prefix.ends_with("prompt_") && count == "eval_count" {
                continue;
            }
            let d = format!("{prefix}{dur}");
            let name = format!("{prefix}{rate}");
            if let (Some(c), Some(t)) = (r.measures.get(k), r.measures.get(&d)) {
                if t.value > 0.0 && c.value > 0.0 && !r.measures.contains_key(&name) {
                    let v = c.value / t.value * 1e3;
                    r.measures.insert(name, Obs::one(v));
                }
            }
        }
    }
}

/// The measure definitions of derived and known-format measures, by name.
pub fn known_def(name: &str) -> Option<crate::analysis::record::MeasureDef> {
    use crate::analysis::record::{Direction, MeasureDef, Quantity};
    let leaf = columns::leaf(name);
    if leaf == "eval_rate" || leaf == "prompt_eval_rate" {
        return Some(MeasureDef {
            quantity: Quantity::TokenRate,
            direction: Direction::Higher,
            primary: true,
            includes_load: false,
            spread: false,
        });
    }
    if name.ends_with(" gpu share %") {
        return Some(MeasureDef {
            quantity: Quantity::Ratio,
            direction: Direction::Neutral,
            primary: false,
            includes_load: false,
            spread: false,
        });
    }
    if matches!(name, "pp t/s" | "tg t/s" | "pp+tg t/s") {
        return llama_bench::defs().into_iter().find(|(n, _)| n == name).map(|(_, d)| d);
    }
    columns::measure(name).map(|(_, d, _)| d)
}

/// llama-bench's Markdown tables anywhere in a text (a log, a report), as one batch.
fn llama_bench_md(file: &str, text: &str) -> Option<Batch> {
    let records = llama_bench::from_md(file, text);
    (!records.is_empty()).then(|| Batch {
        format: "llama-bench md".into(),
        locator: String::new(),
        records,
        derived: false,
    })
}

fn read_markdown(file: &str, text: &str) -> Parsed {
    let mut p = Parsed::default();
    p.batches.extend(llama_bench_md(file, text));
    for t in table::markdown(file, text) {
        let head: Vec<String> = t.headers.clone();
        if llama_bench::is_md_header(&head) {
            continue;
        }
        let mut records = t.records();
        records.iter_mut().for_each(derive);
        if records.iter().any(|r| !r.measures.is_empty()) {
            p.batches.push(Batch {
                format: "Markdown table".into(),
                locator: t.locator.clone(),
                records,
                derived: true,
            });
        }
    }
    p
}

/// Lines that say a run crashed or could not start.
pub fn crash_line(text: &str) -> Option<String> {
    let pats = [
        "GGML_ASSERT",
        "Segmentation fault",
        "Abort trap",
        "core dumped",
        "out of memory",
        "CUDA error",
        "HIP error",
        "failed to load model",
        "error: failed",
        "Killed",
        "terminate called",
        "panicked at",
        "Traceback (most recent call last)",
        "failed (exit",
    ];
    text.lines().find(|l| pats.iter().any(|p| l.contains(p))).map(|l| table::one_line(l.trim()))
}

fn read_text(file: &str, text: &str) -> Parsed {
    let mut p = Parsed::default();
    if let Some(b) = llama_bench_md(file, text) {
        p.batches.push(b);
        return p;
    }
    let perf = text::perf_print(file, text);
    if !perf.is_empty() {
        return one("llama.cpp timings", perf);
    }
    let ppl = text::perplexity(file, text);
    if !ppl.is_empty() {
        return one("llama-perplexity", ppl);
    }
    let gb = text::go_bench(file, text);
    if !gb.is_empty() {
        return one("Go benchmark", gb);
    }
    let bb = text::batched_bench(file, text);
    if !bb.is_empty() {
        return one("llama-batched-bench", bb);
    }
    if let Some(kv) = text::key_values(file, text) {
        let verbose = kv.iter().any(|r| r.measures.contains_key("eval rate"));
        return one(if verbose { "ollama run --verbose" } else { "key: value text" }, kv);
    }
    if let Some(why) = crash_line(text) {
        // a run log that ends in a crash: one failed run, so its configuration is counted
        let looks_like_run =
            text.contains("llama") || text.contains("ggml") || text.contains("model");
        if looks_like_run {
            let mut r = Record::new(file, "log".into(), 0);
            r.fail(format!("crashed: {why}"));
            return one("run log", vec![r]);
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ollama_responses_get_their_rates() {
        let p = read_json(
            "o.json",
            r#"[{"model":"gemma3:1b","created_at":"2030-01-02T03:04:05Z","response":"Hi","done":true,"done_reason":"stop",
                "total_duration":4001234567,"load_duration":21543200,"prompt_eval_count":42,"prompt_eval_duration":123456789,
                "eval_count":300,"eval_duration":3456789012}]"#,
        )
        .unwrap();
        let r = &p.batches[0].records[0];
        assert_eq!(p.batches[0].format, "Ollama API");
        assert!((r.measures["eval_rate"].value - 300.0 / 3.456789012).abs() < 1e-9);
        assert!((r.measures["total_duration"].value - 4001.234567).abs() < 1e-6, "ns become ms");
        assert!(r.validity.is_ok());
    }

    #[test]
    fn llama_bench_jsonl_with_null_results() {
        let jsonl = "{\"build_commit\": \"abc\", \"model_type\": \"llama 7B\", \"n_threads\": 8, \"n_prompt\": 512, \"n_gen\": 0, \"n_depth\": 0, \"avg_ts\": 100.0, \"stddev_ts\": 1.0, \"samples_ts\": [99.0, 101.0]}\n\
                     {\"build_commit\": \"abc\", \"model_type\": \"llama 7B\", \"n_threads\": 8, \"n_prompt\": 0, \"n_gen\": 128, \"n_depth\": 0, \"avg_ts\": null, \"stddev_ts\": null, \"samples_ts\": null}\n";
        let p = read("b.jsonl", jsonl).unwrap();
        let recs = &p.batches[0].records;
        assert_eq!(p.batches[0].format, "llama-bench jsonl");
        assert_eq!(recs.len(), 3, "two samples and one failed test");
        assert_eq!(recs[1].measures["pp t/s"].value, 101.0);
        assert!(!recs[2].validity.is_ok());
    }
}
