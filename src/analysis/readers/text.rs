//! Plain-text results: `key: value` summaries (`summary.txt`, `ollama run --verbose`'s stats
//! block with Go durations), Go benchmark lines (`BenchmarkX/k=v 1 123 ns/op 45 token/sec`, as
//! Ollama's `cmd/bench` and benchstat write them) and llama-perplexity's final estimate.
//! A key that comes again starts the next record, so a log of several runs gives several.

use super::columns::{self, parse_num};
use crate::analysis::record::{Level, Obs, Record};

/// A value with its unit as text writes it: `12.5 tok/s`, `300 ms`, `1m2.5s`, `950µs`,
/// `42 token(s)`, `3.2 GiB`, `12 %`. Times come back in ms, sizes in bytes; `unit` says which
/// canonical unit applies (`ms`, `B`, `tok/s`, `%` or `` for a bare number).
pub fn value_unit(s: &str) -> Option<(f64, &'static str)> {
    let t = s.trim();
    if let Some(ms) = go_duration(t) {
        return Some((ms, "ms"));
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E' | ',')))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v = parse_num(num)?;
    let u = unit.trim().to_ascii_lowercase();
    let r = match u.as_str() {
        "" | "token(s)" | "tokens" | "token" => (v, ""),
        "ns" => (v * 1e-6, "ms"),
        "us" | "µs" | "μs" => (v * 1e-3, "ms"),
        "ms" => (v, "ms"),
        "s" | "sec" | "secs" | "seconds" => (v * 1e3, "ms"),
        "min" | "m" => (v * 6e4, "ms"),
        "tokens/s" | "tok/s" | "t/s" | "tokens/sec" | "token/sec" | "tps" => (v, "tok/s"),
        "%" => (v, "%"),
        "b" | "bytes" => (v, "B"),
        "kb" | "kib" => (v * 1024.0, "B"),
        "mb" | "mib" => (v * 1048576.0, "B"),
        "gb" | "gib" => (v * 1073741824.0, "B"),
        _ => return None,
    };
    Some(r)
}

/// Go's `Duration.String()`: `1h2m3.5s`, `4.001234567s`, `21.5432ms`, `950µs`, `12ns`, in ms.
pub fn go_duration(s: &str) -> Option<f64> {
    let mut rest = s.trim();
    if rest.is_empty() || !rest.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let v: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let units = [
            ("ns", 1e-6),
            ("µs", 1e-3),
            ("μs", 1e-3),
            ("us", 1e-3),
            ("ms", 1.0),
            ("h", 3.6e6),
            ("m", 6e4),
            ("s", 1e3),
        ];
        let (u, f) = units.iter().find(|(u, _)| rest.starts_with(u))?;
        total += v * f;
        rest = &rest[u.len()..];
    }
    Some(total)
}

/// Records from `key: value` (or `key = value`) lines; `None` when fewer than two keys hold a
/// measure.
pub fn key_values(file: &str, text: &str) -> Option<Vec<Record>> {
    let mut out: Vec<Record> = vec![];
    let mut cur = Record::new(file, "line 1".into(), 0);
    let mut seen: Vec<String> = vec![];
    for (ln, line) in text.lines().enumerate() {
        let Some((k, v)) = line.split_once(':').or_else(|| line.split_once('=')) else { continue };
        let key = k.trim().trim_start_matches(['-', '*', ' ']).trim().to_string();
        if key.is_empty() || key.len() > 60 || v.trim().is_empty() {
            continue;
        }
        let lk = key.to_ascii_lowercase();
        if seen.contains(&lk) {
            let next = Record::new(file, format!("line {}", ln + 1), out.len() + 1);
            push(&mut out, std::mem::replace(&mut cur, next));
            seen.clear();
        }
        if seen.is_empty() {
            cur.locator = format!("line {}", ln + 1);
        }
        seen.push(lk);
        let val = v.trim();
        match columns::by_name(&key) {
            Some(columns::Role::Measure { name, def: d, scale }) => {
                let x = match value_unit(val) {
                    Some((x, u)) if !u.is_empty() && u == d.unit() => Some(x),
                    Some((x, "")) if scale != 0.0 => Some(x * scale),
                    Some((x, "")) => Some(x * 1e3),
                    _ => None,
                };
                if let Some(x) = x {
                    cur.measures.insert(name, Obs::one(x));
                }
            }
            Some(columns::Role::Factor { .. }) => {
                cur.factors.insert(key, Level::parse(val));
            }
            Some(columns::Role::Time) => cur.time = crate::stamp::parse(val),
            Some(columns::Role::Error) if !columns::is_null(val) => {
                cur.fail(super::table::one_line(val))
            }
            None => {
                // a value with a unit names its own quantity
                if let Some((x, u)) = value_unit(val) {
                    let name = format!("{key} ({u})");
                    if let Some((n, d, _)) =
                        columns::measure(&name).or_else(|| columns::measure(&key))
                    {
                        if d.unit() == u {
                            cur.measures.insert(
                                n.trim_end_matches(&format!(" ({u})")).to_string(),
                                Obs::one(x),
                            );
                        }
                    }
                }
            }
            _ => {}
        }
    }
    push(&mut out, cur);
    (!out.is_empty()).then_some(out)
}

fn push(out: &mut Vec<Record>, mut r: Record) {
    if r.measures.len() >= 2 || (!r.measures.is_empty() && !r.factors.is_empty()) {
        super::table::finish(&mut r);
        r.order = out.len();
        out.push(r);
    }
}

/// Records from Go benchmark lines: `BenchmarkName/k=v/k2=v2 <iterations> <value> <unit> …`.
pub fn go_bench(file: &str, text: &str) -> Vec<Record> {
    let mut out = vec![];
    for (ln, line) in text.lines().enumerate() {
        let mut it = line.split_whitespace();
        let Some(name) = it.next().filter(|n| n.starts_with("Benchmark")) else { continue };
        let toks: Vec<&str> = it.collect();
        if toks.len() < 3 || parse_num(toks[0]).is_none() {
            continue;
        }
        let mut r = Record::new(file, format!("line {}", ln + 1), out.len());
        let mut parts = name.trim_start_matches("Benchmark").split('/');
        let bench = parts.next().unwrap_or_default();
        r.factors.insert(
            "benchmark".into(),
            Level::Text(
                bench.trim_end_matches(|c: char| c == '-' || c.is_ascii_digit()).to_string(),
            ),
        );
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                r.factors.insert(k.to_string(), Level::parse(v));
            }
        }
        for pair in toks[1..].chunks(2) {
            let [v, unit] = pair else { continue };
            let Some(x) = parse_num(v) else { continue };
            let (name, scale) = match *unit {
                "ns/op" => ("time/op", 1e-6),
                "ns/token" => ("time/token", 1e-6),
                "token/sec" | "tokens/sec" | "tok/s" => ("tokens/s", 1.0),
                "B/op" => ("bytes/op", 1.0),
                "allocs/op" => ("allocs/op", 1.0),
                u => (u, 1.0),
            };
            r.measures.insert(name.to_string(), Obs::one(x * scale));
        }
        out.push(r);
    }
    out
}

/// llama.cpp's timing lines (`common_perf_print:`, `llama_perf_context_print:`,
/// `llama_print_timings:`): `load time`, `prompt eval time = 425.89 ms / 500 tokens (… 1174.00
/// tokens per second)`, `eval time = … / 511 runs (…)`, `total time`; one record per block.
pub fn perf_print(file: &str, text: &str) -> Vec<Record> {
    let mut out: Vec<Record> = vec![];
    let mut cur: Option<Record> = None;
    for (ln, line) in text.lines().enumerate() {
        let Some(colon) =
            ["common_perf_print:", "llama_perf_context_print:", "llama_print_timings:"]
                .iter()
                .find_map(|p| line.find(p).map(|i| i + p.len()))
        else {
            continue;
        };
        let body = line[colon..].trim();
        let Some((key, val)) = body.split_once('=') else { continue };
        let key = key.trim();
        if !matches!(key, "load time" | "prompt eval time" | "eval time" | "total time") {
            continue;
        }
        if key == "load time" || cur.as_ref().is_some_and(|r| r.measures.contains_key(key)) {
            if let Some(r) = cur.take() {
                out.push(r);
            }
        }
        let r = cur.get_or_insert_with(|| Record::new(file, format!("line {}", ln + 1), out.len()));
        let ms = val.split_whitespace().next().and_then(parse_num);
        if let Some(ms) = ms {
            r.measures.insert(key.to_string(), Obs::one(ms));
        }
        let count =
            val.split_once('/').and_then(|(_, c)| c.split_whitespace().next()).and_then(parse_num);
        let rate = val
            .find("tokens per second")
            .and_then(|at| val[..at].trim_end().rsplit([',', '(']).next())
            .and_then(parse_num);
        let stem = key.trim_end_matches(" time");
        if let Some(c) = count.filter(|_| stem != "total" && stem != "load") {
            r.measures.insert(format!("{stem} count"), Obs::one(c));
        }
        if let Some(x) = rate {
            r.measures.insert(format!("{stem} rate"), Obs::one(x));
        }
    }
    out.extend(cur);
    out.retain(|r| r.measures.keys().any(|k| k.ends_with("rate")));
    for (i, r) in out.iter_mut().enumerate() {
        r.order = i;
    }
    out
}

/// llama-batched-bench's Markdown table (`PP | TG | B | N_KV | T_PP s | S_PP t/s | …`), its
/// `main: n_kv_max = …, n_batch = …` line giving every row its settings.
pub fn batched_bench(file: &str, text: &str) -> Vec<Record> {
    let params: Vec<(String, String)> = text
        .lines()
        .find(|l| l.contains("n_kv_max") && l.contains('='))
        .map(|l| {
            l.split_once(':')
                .map_or(l, |(_, r)| r)
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let mut out = vec![];
    for mut t in super::table::markdown(file, text) {
        if !t.headers.iter().any(|h| h.trim() == "S_PP t/s") {
            continue;
        }
        t.context = params.clone();
        out.extend(t.records());
    }
    out
}

/// llama-perplexity's `Final estimate: PPL = 6.1234 +/- 0.04567`.
pub fn perplexity(file: &str, text: &str) -> Vec<Record> {
    let mut out = vec![];
    for (ln, line) in text.lines().enumerate() {
        let Some(at) = line.find("Final estimate: PPL =") else { continue };
        let rest = &line[at + "Final estimate: PPL =".len()..];
        let (v, e) = rest.split_once("+/-").unwrap_or((rest, ""));
        if let Some(x) = parse_num(v) {
            let mut r = Record::new(file, format!("line {}", ln + 1), out.len());
            r.measures.insert("perplexity".into(), Obs { value: x, sd: parse_num(e), n: None });
            out.push(r);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_and_units() {
        assert_eq!(go_duration("4.5s"), Some(4500.0));
        assert_eq!(go_duration("1m2.5s"), Some(62_500.0));
        assert!((go_duration("21.5432ms").unwrap() - 21.5432).abs() < 1e-12);
        assert!((go_duration("950µs").unwrap() - 0.95).abs() < 1e-12);
        assert_eq!(go_duration("12 tokens"), None);
        assert_eq!(value_unit("86.79 tokens/s"), Some((86.79, "tok/s")));
        assert_eq!(value_unit("42 token(s)"), Some((42.0, "")));
        assert_eq!(value_unit("3 GiB"), Some((3.0 * 1073741824.0, "B")));
    }

    #[test]
    fn ollama_verbose_blocks() {
        let log = "Hello there.\n\ntotal duration:       4.001234567s\nload duration:        21.5432ms\n\
                   prompt eval count:    42 token(s)\nprompt eval duration: 123.456789ms\nprompt eval rate:     340.20 tokens/s\n\
                   eval count:           300 token(s)\neval duration:        3.456789012s\neval rate:            86.79 tokens/s\n\
                   \nAgain.\ntotal duration:       2s\neval count:           100 token(s)\neval duration:        1s\neval rate:            100.00 tokens/s\n";
        let r = key_values("run.txt", log).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].measures["eval rate"].value, 86.79);
        assert!((r[0].measures["total duration"].value - 4001.234567).abs() < 1e-6);
        assert_eq!(r[0].measures["eval count"].value, 300.0);
        assert_eq!(r[1].measures["eval rate"].value, 100.0);
    }

    #[test]
    fn go_bench_lines() {
        let r = go_bench(
            "b.txt",
            "BenchmarkModel/name=gemma3/step=generate 1 11520000 ns/token 86.8 token/sec\nPASS\n",
        );
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].factors["name"].text(), "gemma3");
        assert_eq!(r[0].measures["tokens/s"].value, 86.8);
    }
}
