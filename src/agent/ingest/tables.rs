//! Tables in artifacts: CSV files, Markdown pipe tables and JSON arrays of records become
//! [`Dataset`]s (rows kept, each marked failed or not, with its error text); a dataset gives its
//! measurement series, failed rows and parameter sweep.

use super::names::{self, is_false, is_measurement, is_null_cell, parse_num};
use super::{stats, ConfigValue, Facts, FailedRow, Gap, Series, Sweep};
use serde_json::Value;
use std::collections::BTreeMap;

/// Rows of one table as read, with which of them failed and why.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    /// The file (relative path).
    pub file: String,
    /// `file`, `file#table2` for a later Markdown table, `file:results[]` for JSON records.
    pub name: String,
    pub headers: Vec<String>,
    /// Cells; `None` for a JSON null or an absent key.
    pub rows: Vec<Vec<Option<String>>>,
    /// A row failed when it carries an error text, says success = false, or all its measurements
    /// are zero.
    pub failed: Vec<bool>,
    pub errors: Vec<Option<String>>,
    /// The file this one repeats (a CSV/JSON/Markdown twin or a derived summary), set after the walk.
    pub twin_of: Option<String>,
}

impl Dataset {
    pub fn col(&self, pred: impl Fn(&str) -> bool) -> Option<usize> {
        self.headers.iter().position(|h| pred(h))
    }
    pub fn cell(&self, row: usize, col: usize) -> Option<&str> {
        self.rows[row].get(col).and_then(|c| c.as_deref())
    }
    pub fn num(&self, row: usize, col: usize) -> Option<f64> {
        self.cell(row, col).and_then(parse_num)
    }
    /// Values of a column over the rows that did not fail, with their row indices.
    pub fn ok_values(&self, col: usize) -> Vec<(usize, f64)> {
        (0..self.rows.len())
            .filter(|&r| !self.failed[r])
            .filter_map(|r| self.num(r, col).map(|v| (r, v)))
            .collect()
    }
    /// Measurement columns.
    pub fn measures(&self) -> Vec<usize> {
        (0..self.headers.len()).filter(|&c| is_measurement(&self.headers[c])).collect()
    }
    /// The column naming what each row ran (model, then configuration, then prompt), if any.
    pub fn key_col(&self) -> Option<usize> {
        (0..self.headers.len())
            .filter_map(|c| names::is_key_column(&self.headers[c]).map(|rank| (rank, c)))
            .min()
            .map(|(_, c)| c)
    }

    fn new(file: &str, name: String, headers: Vec<String>, rows: Vec<Vec<Option<String>>>) -> Self {
        let mut d = Dataset { file: file.into(), name, headers, rows, ..Default::default() };
        d.mark_failures();
        d
    }

    fn mark_failures(&mut self) {
        let measures = self.measures();
        let err_col = self.col(|h| {
            let h = h.trim().to_ascii_lowercase();
            h == "error" || h == "error_message" || h.ends_with(".error")
        });
        let success_col = self.col(|h| {
            let h = h.trim().to_ascii_lowercase();
            h == "success" || h.ends_with(".success")
        });
        for r in 0..self.rows.len() {
            let err = err_col
                .and_then(|c| self.cell(r, c))
                .map(str::trim)
                .filter(|e| !e.is_empty() && !is_null_cell(e))
                .map(String::from);
            let unsuccessful = success_col.and_then(|c| self.cell(r, c)).is_some_and(is_false);
            let nums: Vec<f64> = measures.iter().filter_map(|&c| self.num(r, c)).collect();
            let zeros = !nums.is_empty() && nums.iter().all(|v| *v == 0.0);
            self.failed.push(err.is_some() || unsuccessful || zeros);
            self.errors.push(err);
        }
    }
}

/// A CSV file's one table.
pub fn csv(file: &str, text: &str) -> Result<Dataset, String> {
    let mut rd =
        csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers: Vec<String> =
        rd.headers().map_err(|e| format!("CSV: {e}"))?.iter().map(String::from).collect();
    if headers.iter().all(|h| h.is_empty()) {
        return Err("CSV: no header row".into());
    }
    let mut rows = vec![];
    for rec in rd.records() {
        let rec = rec.map_err(|e| format!("CSV: {e}"))?;
        rows.push(rec.iter().map(|c| Some(c.to_string())).collect());
    }
    Ok(Dataset::new(file, file.into(), headers, rows))
}

/// Headings in a Markdown line: one at its start, and any ` ## ` left mid-line when newlines
/// collapsed.
pub fn headings_in(line: &str) -> usize {
    let is_mark = |t: &str| {
        let hashes = t.len() - t.trim_start_matches('#').len();
        (1..=6).contains(&hashes) && t[hashes..].starts_with(' ')
    };
    let t = line.trim_start();
    let first = usize::from(is_mark(t));
    let rest = t.match_indices(" #").filter(|(i, _)| is_mark(&t[i + 1..])).count();
    first + rest
}

/// A Markdown file's pipe tables (a header row may sit at the end of a line whose newlines
/// collapsed: "# Title | a | b |").
pub fn markdown(file: &str, text: &str) -> Vec<Dataset> {
    let lines: Vec<&str> = text.lines().collect();
    let cells = |l: &str| -> Vec<Option<String>> {
        let l = l.find('|').map_or(l, |i| &l[i..]);
        l.trim()
            .trim_start_matches('|')
            .trim_end_matches('|')
            .split('|')
            .map(|c| Some(c.trim().to_string()))
            .collect()
    };
    let is_sep = |l: &str| {
        let t = l.trim();
        t.starts_with('|') && t.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
    };
    let (mut out, mut i) = (vec![], 0);
    while i + 1 < lines.len() {
        if !(lines[i].contains('|') && is_sep(lines[i + 1])) {
            i += 1;
            continue;
        }
        let headers = cells(lines[i]).into_iter().map(Option::unwrap_or_default).collect();
        let mut rows = vec![];
        let mut j = i + 2;
        while j < lines.len() && lines[j].trim().starts_with('|') {
            rows.push(cells(lines[j]));
            j += 1;
        }
        let name = if out.is_empty() {
            file.to_string()
        } else {
            format!("{file}#table{}", out.len() + 1)
        };
        out.push(Dataset::new(file, name, headers, rows));
        i = j;
    }
    out
}

/// Flattens an object's scalar leaves into `(dotted key, cell)` pairs; nested arrays are left to
/// their own datasets.
fn flatten(
    prefix: &str,
    o: &serde_json::Map<String, Value>,
    out: &mut Vec<(String, Option<String>)>,
) {
    for (k, v) in o {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            Value::Object(inner) => flatten(&key, inner, out),
            Value::Array(_) => {}
            Value::Null => out.push((key, None)),
            Value::String(s) => out.push((key, Some(s.clone()))),
            other => out.push((key, Some(other.to_string()))),
        }
    }
}

fn records(
    file: &str,
    name: String,
    keyed: Option<Vec<String>>,
    objs: &[&serde_json::Map<String, Value>],
) -> Dataset {
    let mut headers: Vec<String> =
        keyed.as_ref().map(|_| vec!["key".to_string()]).unwrap_or_default();
    let flat: Vec<Vec<(String, Option<String>)>> = objs
        .iter()
        .map(|o| {
            let mut f = vec![];
            flatten("", o, &mut f);
            f
        })
        .collect();
    for f in &flat {
        for (k, _) in f {
            if !headers.contains(k) {
                headers.push(k.clone());
            }
        }
    }
    let rows = flat
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            let mut row = vec![None; headers.len()];
            if let Some(keys) = &keyed {
                row[0] = Some(keys[i].clone());
            }
            for (k, v) in f {
                if let Some(c) = headers.iter().position(|h| *h == k) {
                    row[c] = v;
                }
            }
            row
        })
        .collect();
    Dataset::new(file, name, headers, rows)
}

/// JSON arrays of records, and objects whose members are all records with a measurement
/// (`backends: {eager: {…}, onnx: {…}}`), each as a dataset.
pub fn json(file: &str, v: &Value, path: &str, out: &mut Vec<Dataset>) {
    match v {
        Value::Array(a) => {
            let objs: Vec<_> = a.iter().filter_map(Value::as_object).collect();
            let p = format!("{path}[]");
            if !objs.is_empty() {
                out.push(records(file, format!("{file}:{p}"), None, &objs));
            }
            a.iter().for_each(|x| json(file, x, &p, out));
        }
        Value::Object(o) => {
            let objs: Vec<_> = o.values().filter_map(Value::as_object).collect();
            let member_records = o.len() >= 2 && objs.len() == o.len() && {
                let mut f = vec![];
                objs.iter().for_each(|x| flatten("", x, &mut f));
                f.iter().any(|(k, _)| is_measurement(k))
            };
            if member_records {
                let keys = o.keys().cloned().collect();
                out.push(records(file, format!("{file}:{path}{{}}"), Some(keys), &objs));
            }
            for (k, child) in o {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                if !member_records || child.is_array() {
                    json(file, child, &p, out);
                }
            }
        }
        _ => {}
    }
}

/// Series, failed rows, gaps and the sweep of a table (CSV or Markdown; JSON records give their
/// series through the JSON walk).
pub fn table_facts(t: &Dataset, facts: &mut Facts) {
    let measures = t.measures();
    let n_failed = t.failed.iter().filter(|f| **f).count();
    let mut any = false;
    for &c in &measures {
        let vals: Vec<f64> = t.ok_values(c).into_iter().map(|(_, v)| v).collect();
        let nulls = (0..t.rows.len())
            .filter(|&r| !t.failed[r] && t.cell(r, c).is_none_or(is_null_cell))
            .count();
        if let Some(s) = series(&t.name, t.headers[c].trim(), &vals, n_failed, nulls) {
            facts.series.push(s);
            any = true;
        }
    }
    failed_rows(t, facts);
    if n_failed > 0 {
        facts.gaps.push(Gap {
            path: t.name.clone(),
            kind: "failed runs".into(),
            detail: format!(
                "{n_failed} of {} rows failed (error text or all-zero metrics)",
                t.rows.len()
            ),
        });
    }
    if !any && !measures.is_empty() {
        facts.gaps.push(Gap {
            path: t.name.clone(),
            kind: "no measurements".into(),
            detail: "measurement columns hold no numbers".into(),
        });
    }
    if let Some(s) = sweep(t) {
        facts.sweeps.push(s);
    }
}

/// Every failed row of a dataset, with what it ran and its error text.
pub fn failed_rows(t: &Dataset, facts: &mut Facts) {
    let key = t.key_col();
    for r in (0..t.rows.len()).filter(|&r| t.failed[r]) {
        facts.failures.push(FailedRow {
            file: t.name.clone(),
            row: r + 1,
            ran: key.and_then(|c| t.cell(r, c)).map(String::from),
            message: t.errors[r].clone(),
        });
    }
}

pub fn series(
    file: &str,
    column: &str,
    values: &[f64],
    n_failed: usize,
    n_null: usize,
) -> Option<Series> {
    if values.is_empty() {
        return None;
    }
    let (mean, sd, min, max, p50, p95) = stats(values);
    Some(Series {
        file: file.into(),
        column: column.into(),
        unit: names::unit_of(column),
        n: values.len(),
        n_failed,
        n_null,
        mean,
        sd,
        min,
        max,
        p50,
        p95,
    })
}

/// The configuration of a row in a sweep: its `config_name`, else `col=value, …`.
pub fn config_key(t: &Dataset, r: usize) -> Option<String> {
    let cfg: Vec<usize> =
        (0..t.headers.len()).filter(|&c| names::is_config(&t.headers[c])).collect();
    if cfg.is_empty() {
        return None;
    }
    let name_col = cfg.iter().copied().find(|&c| {
        let h = t.headers[c].trim().to_ascii_lowercase();
        h == "config_name" || h == "config" || h == "variant"
    });
    Some(match name_col {
        Some(c) => t.cell(r, c).unwrap_or("").trim().to_string(),
        None => cfg
            .iter()
            .map(|&c| format!("{}={}", t.headers[c].trim(), t.cell(r, c).unwrap_or("").trim()))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

type Samples = (Vec<f64>, Vec<f64>);

fn sweep(t: &Dataset) -> Option<Sweep> {
    let cfg_cols: Vec<String> =
        t.headers.iter().filter(|h| names::is_config(h)).map(|h| h.trim().to_string()).collect();
    if cfg_cols.is_empty() {
        return None;
    }
    let tp = t.col(names::is_throughput);
    let tt = t.col(names::is_ttft);
    // configuration → (throughput values, TTFT values)
    let mut groups: BTreeMap<String, Samples> = BTreeMap::new();
    for r in (0..t.rows.len()).filter(|&r| !t.failed[r]) {
        let g = groups.entry(config_key(t, r)?).or_default();
        if let Some(v) = tp.and_then(|c| t.num(r, c)) {
            g.0.push(v);
        }
        if let Some(v) = tt.and_then(|c| t.num(r, c)) {
            g.1.push(v);
        }
    }
    let means = |sel: fn(&Samples) -> &Vec<f64>| -> Vec<(String, f64)> {
        groups
            .iter()
            .filter(|(_, g)| !sel(g).is_empty())
            .map(|(k, g)| (k.clone(), sel(g).iter().sum::<f64>() / sel(g).len() as f64))
            .collect()
    };
    let tput = means(|g| &g.0);
    let ttft = means(|g| &g.1);
    let pick = |v: &[(String, f64)], high: bool| -> Option<ConfigValue> {
        let it = v.iter();
        let m = if high {
            it.max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
        } else {
            it.min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
        };
        m.map(|(k, v)| ConfigValue { config: k.clone(), value: *v })
    };
    let (best_t, worst_t) = (pick(&tput, true), pick(&tput, false));
    let sds: Vec<f64> = groups.values().filter(|g| g.0.len() > 1).map(|g| stats(&g.0).1).collect();
    let run_sd = (!sds.is_empty()).then(|| sds.iter().sum::<f64>() / sds.len() as f64);
    let spread = best_t.as_ref().zip(worst_t.as_ref()).map(|(b, w)| b.value - w.value);
    Some(Sweep {
        file: t.name.clone(),
        config_columns: cfg_cols,
        configs: groups.len(),
        throughput_column: tp.map(|c| t.headers[c].trim().to_string()),
        ttft_column: tt.map(|c| t.headers[c].trim().to_string()),
        best_throughput: best_t,
        worst_throughput: worst_t,
        best_ttft: pick(&ttft, false),
        worst_ttft: pick(&ttft, true),
        throughput_spread: spread,
        run_to_run_sd: run_sd,
        spread_exceeds_noise: spread.zip(run_sd).map(|(s, sd)| s > 2.0 * sd),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_records_and_member_records_become_datasets() {
        let v: Value = serde_json::from_str(
            r#"{"results": [{"prompt": "a", "tokens_s": 5, "error": null},
                            {"prompt": "b", "tokens_s": 0, "error": "refused"}],
                "backends": {"eager": {"benchmark": {"mean_time_ms": 3.8}, "compilation": null},
                             "onnx": {"benchmark": {"mean_time_ms": 0.7}, "compilation": {"success": true}}}}"#,
        )
        .unwrap();
        let mut out = vec![];
        json("f.json", &v, "", &mut out);
        let names: Vec<&str> = out.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, vec!["f.json:results[]", "f.json:backends{}"], "in the file's order");
        let r = &out[0];
        assert_eq!(r.headers, vec!["prompt", "tokens_s", "error"], "keys in the file's order");
        assert_eq!(
            (r.failed.clone(), r.errors[1].as_deref()),
            (vec![false, true], Some("refused"))
        );
        let b = &out[1];
        assert_eq!(b.headers[..2], ["key".to_string(), "benchmark.mean_time_ms".to_string()]);
        assert_eq!(b.cell(1, 0), Some("onnx"));
        assert_eq!(b.num(0, 1), Some(3.8));
    }

    #[test]
    fn failed_rows_carry_their_error_text() {
        let d = csv("x.csv", "prompt,tokens_s,error\na,5,\nb,0,boom\nc,0,\n").unwrap();
        assert_eq!(d.failed, vec![false, true, true]);
        assert_eq!(d.errors, vec![None, Some("boom".into()), None]);
        assert_eq!(d.key_col(), Some(0));
    }
}
