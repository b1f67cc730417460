//! Tables of runs whose format is not known in advance (CSV files, Markdown pipe tables, JSON
//! arrays and maps of records): the cells as text, then one `Record` per row, each column's role
//! read from its name and values (`columns::classify`).

use super::columns::{self, is_null, parse_num, Role};
use crate::analysis::record::{Level, Obs, Record};
use std::collections::BTreeMap;

/// One table as read: headers, cells (`None` for absent), where each row sits, and the values
/// its context gives every row (a JSON parent's `model`, a file-level time).
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub file: String,
    /// `""`, `table 2`, `results[]`.
    pub locator: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    /// `row 3`, `results[2]`, one per row.
    pub row_locs: Vec<String>,
    /// (name, value) pairs every row shares.
    pub context: Vec<(String, String)>,
}

impl Table {
    pub fn cell(&self, r: usize, c: usize) -> Option<&str> {
        self.rows[r].get(c).and_then(|x| x.as_deref())
    }

    /// Each column's role.
    pub fn roles(&self) -> Vec<Role> {
        let mut roles: Vec<Role> = (0..self.headers.len())
            .map(|c| {
                let cells: Vec<Option<&str>> =
                    (0..self.rows.len()).map(|r| self.cell(r, c)).collect();
                columns::classify(&self.headers[c], &cells)
            })
            .collect();
        pair_sd(&mut roles);
        roles
    }

    /// One record per row.
    pub fn records(&self) -> Vec<Record> {
        let roles = self.roles();
        let ctx: Vec<(String, Role, String)> = self
            .context
            .iter()
            .map(|(k, v)| (k.clone(), columns::classify(k, &[Some(v.as_str())]), v.clone()))
            .collect();
        let sd_of: BTreeMap<String, (usize, f64)> = roles
            .iter()
            .enumerate()
            .filter_map(|(c, r)| match r {
                Role::Sd { of, scale } => Some((of.clone(), (c, *scale))),
                _ => None,
            })
            .collect();
        let mut out = Vec::with_capacity(self.rows.len());
        let mut summary = Vec::with_capacity(self.rows.len());
        for r in 0..self.rows.len() {
            let loc = self.row_locs.get(r).cloned().unwrap_or_else(|| format!("row {}", r + 1));
            let mut rec = Record::new(&self.file, loc, r);
            for (name, role, v) in &ctx {
                apply(&mut rec, name, role, Some(v), None);
            }
            let reps = roles
                .iter()
                .position(|x| *x == Role::Reps)
                .and_then(|c| self.cell(r, c))
                .and_then(parse_num)
                .map(|n| n as usize);
            for (c, role) in roles.iter().enumerate() {
                let sd = match role {
                    Role::Measure { name, .. } => sd_of.get(name).and_then(|(sc, scale)| {
                        self.cell(r, *sc).and_then(parse_num).map(|v| v * scale)
                    }),
                    _ => None,
                };
                apply(&mut rec, &self.headers[c], role, self.cell(r, c), sd.map(|s| (s, reps)));
            }
            let label = (0..roles.len())
                .filter(|&c| roles[c] == Role::Id)
                .find_map(|c| self.cell(r, c).and_then(summary_label));
            if let Some(n) = label {
                for o in rec.measures.values_mut().filter(|o| o.sd.is_some() && o.n.is_none()) {
                    o.n = n;
                }
            }
            summary.push(label.is_some());
            finish(&mut rec);
            out.push(rec);
        }
        drop_restated(out, &summary)
    }
}

/// Whether a row's id says it summarises others (`r3_mean_stdev`, `mean`, `avg of 5`), and of
/// how many runs when the id counts them.
fn summary_label(id: &str) -> Option<Option<usize>> {
    let l = id.to_ascii_lowercase();
    let words: Vec<&str> = l.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    let says = words.iter().any(|w| {
        let w = w.trim_start_matches(|c: char| c.is_ascii_digit());
        matches!(w, "mean" | "avg" | "average" | "summary" | "aggregate")
    });
    let n = l
        .split(|c: char| !c.is_ascii_digit())
        .find(|d| !d.is_empty())
        .and_then(|d| d.parse().ok())
        .filter(|n: &usize| *n >= 2);
    says.then_some(n)
}

/// Summary rows restate runs the table holds (the same settings as rows of their own): they
/// are left out, so that no run counts twice; the others stand for their runs.
fn drop_restated(records: Vec<Record>, summary: &[bool]) -> Vec<Record> {
    let raw: Vec<&BTreeMap<String, crate::analysis::record::Level>> =
        records.iter().zip(summary).filter(|(_, s)| !**s).map(|(r, _)| &r.factors).collect();
    let keep: Vec<bool> = records
        .iter()
        .zip(summary)
        .map(|(r, s)| !*s || !raw.iter().any(|f| **f == r.factors))
        .collect();
    records.into_iter().zip(keep).filter(|(_, k)| *k).map(|(r, _)| r).collect()
}

/// Turns a standard-deviation measure into the spread of its mean's measure where the table has
/// both (`stddev_ts` of `avg_ts`, `std_ttft` of `mean_ttft`, `stdev` of `mean`).
fn pair_sd(roles: &mut [Role]) {
    let names: Vec<Option<String>> = roles
        .iter()
        .map(|r| match r {
            Role::Measure { name, .. } => Some(name.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    for i in 0..roles.len() {
        let (Some(n), Role::Measure { scale, .. }) = (&names[i], &roles[i]) else { continue };
        let toks: Vec<&str> = n.split(['_', ' ', '.']).collect();
        let Some(at) = toks.iter().position(|t| matches!(*t, "std" | "stdev" | "stddev" | "sd"))
        else {
            continue;
        };
        let with = |w: &str| {
            let mut t: Vec<&str> = toks.clone();
            if w.is_empty() {
                t.remove(at);
            } else {
                t[at] = w;
            }
            t.join("_")
        };
        let wanted: Vec<String> = ["mean", "avg", "average", ""].iter().map(|w| with(w)).collect();
        let target = names.iter().enumerate().find(|(j, m)| {
            *j != i && m.as_ref().is_some_and(|m| wanted.contains(&m.replace([' ', '.'], "_")))
        });
        if let Some((j, _)) = target {
            if let Role::Measure { name, .. } = &roles[j] {
                roles[i] = Role::Sd { of: name.clone(), scale: *scale };
            }
        }
    }
}

/// Applies one cell to a record according to its column's role.
fn apply(
    rec: &mut Record,
    header: &str,
    role: &Role,
    cell: Option<&str>,
    sd: Option<(f64, Option<usize>)>,
) {
    let Some(v) = cell.map(str::trim) else { return };
    match role {
        Role::Factor { .. } if !is_null(v) => {
            rec.factors.insert(columns::factor_name(header), Level::parse(v));
        }
        Role::Measure { name, scale, .. } => {
            if let Some((x, own)) = columns::parse_mean_sd(v) {
                let (sd, n) = sd.map_or((None, None), |(s, n)| (Some(s), n));
                // a cell's own `± sd` is its spread; it summarises as many runs as the row says
                let sd = own.map(|s| s * scale).or(sd);
                rec.measures.insert(name.clone(), Obs { value: x * scale, sd, n });
            }
        }
        Role::Time if rec.time.is_none() => rec.time = crate::stamp::parse(v),
        Role::Success if columns::says_failed(v) => rec.fail("success = false"),
        Role::Status => {
            if let Some(why) = columns::status_failed(v) {
                rec.fail(why);
            }
        }
        Role::Error
            if !is_null(v)
                && !["false", "0", "ok", "[]", "{}", "no", "0.0"]
                    .iter()
                    .any(|x| v.eq_ignore_ascii_case(x)) =>
        {
            rec.fail(one_line(v));
        }
        Role::GpuShare => {
            if let Some(x) = columns::gpu_share(v) {
                rec.measures.insert(format!("{} gpu share %", columns::leaf(header)), Obs::one(x));
            }
        }
        Role::Text if columns::error_text(v) => {
            rec.suspect(format!("generated text is an error message: \"{}\"", one_line(v)));
        }
        _ => {}
    }
}

/// An error text on one line, at most 160 characters.
pub fn one_line(s: &str) -> String {
    let t: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.chars().count() > 160 {
        format!("{}…", t.chars().take(160).collect::<String>())
    } else {
        t
    }
}

/// Record-level checks once every cell is in: zero tokens or all-zero measures fail the record;
/// a failed record keeps its measures out of use by its validity alone.
pub fn finish(rec: &mut Record) {
    use crate::analysis::record::Quantity;
    let perf: Vec<f64> = rec
        .measures
        .iter()
        .filter(|(k, _)| !k.contains("count") && !k.contains("tokens"))
        .map(|(_, o)| o.value)
        .collect();
    let _ = Quantity::Count;
    if !perf.is_empty() && perf.iter().all(|v| *v == 0.0) {
        rec.fail("all measures are zero");
    }
    for key in [
        "eval_count",
        "tokens",
        "tokens_generated",
        "predicted_n",
        "output_tokens",
        "completion_tokens",
    ] {
        if rec.measures.get(key).is_some_and(|o| o.value == 0.0) {
            rec.fail(format!("{key} = 0"));
        }
    }
}

/// Parses a CSV file's one table (flexible rows, trimmed cells).
pub fn csv(file: &str, text: &str) -> Result<Table, String> {
    let mut rd =
        csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers: Vec<String> =
        rd.headers().map_err(|e| format!("CSV: {e}"))?.iter().map(String::from).collect();
    if headers.iter().all(|h| h.is_empty()) {
        return Err("CSV: no header row".into());
    }
    let mut rows = vec![];
    for (i, rec) in rd.records().enumerate() {
        let rec = rec.map_err(|e| format!("CSV line {}: {e}", i + 2))?;
        rows.push(rec.iter().map(|c| Some(c.to_string())).collect());
    }
    let row_locs = (0..rows.len()).map(|r| format!("row {}", r + 1)).collect();
    Ok(Table {
        file: file.into(),
        locator: String::new(),
        headers,
        rows,
        row_locs,
        context: vec![],
    })
}

/// The pipe tables of a Markdown text, with the heading each sits under as its locator.
pub fn markdown(file: &str, text: &str) -> Vec<Table> {
    let lines: Vec<&str> = text.lines().collect();
    let is_sep = |l: &str| {
        let t = l.trim();
        t.contains('-')
            && t.contains('|')
            && t.chars().all(|c| matches!(c, '|' | '-' | ':' | ' ' | '\t'))
    };
    let (mut out, mut i, mut heading) = (vec![], 0, String::new());
    while i + 1 < lines.len() {
        if let Some(h) = lines[i].trim_start().strip_prefix('#') {
            heading = h.trim_start_matches('#').trim().to_string();
        }
        if !(lines[i].contains('|') && is_sep(lines[i + 1])) {
            i += 1;
            continue;
        }
        let mut headers: Vec<String> =
            md_cells(lines[i]).into_iter().map(Option::unwrap_or_default).collect();
        // a header whose line also holds text before the table (newlines lost)
        if headers.len() == md_cells(lines[i + 1]).len() + 1
            && !lines[i].trim_start().starts_with('|')
        {
            headers.remove(0);
        }
        let mut rows = vec![];
        let mut locs = vec![];
        let mut j = i + 2;
        while j < lines.len() && lines[j].contains('|') && !lines[j].trim().is_empty() {
            rows.push(md_cells(lines[j]));
            locs.push(format!("line {}", j + 1));
            j += 1;
        }
        let locator = if heading.is_empty() {
            format!("table {}", out.len() + 1)
        } else {
            format!("table {} ({heading})", out.len() + 1)
        };
        out.push(Table {
            file: file.into(),
            locator,
            headers,
            rows,
            row_locs: locs,
            context: vec![],
        });
        i = j;
    }
    out
}

/// The cells of a pipe-table line, Markdown emphasis and code marks removed.
pub fn md_cells(l: &str) -> Vec<Option<String>> {
    let t = l.trim();
    let t = t.strip_prefix('|').unwrap_or(t);
    let t = t.strip_suffix('|').unwrap_or(t);
    t.split('|')
        .map(|c| {
            let c = c.trim().trim_matches(['*', '`', '_']).trim();
            Some(c.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn summary_rows_are_named_by_their_ids() {
        assert_eq!(super::summary_label("r3_mean_stdev"), Some(Some(3)));
        assert_eq!(super::summary_label("avg of 5"), Some(Some(5)));
        assert_eq!(super::summary_label("Mean"), Some(None));
        assert_eq!(super::summary_label("r1"), None);
        assert_eq!(super::summary_label("run_12"), None);
    }

    use super::*;
    use crate::analysis::record::Validity;

    #[test]
    fn csv_rows_become_records_with_roles() {
        let t = csv(
            "q.csv",
            "timestamp,model,prompt_index,tokens_s,ttft_s,error\n\
             2025-09-30T20:09:43,a:q4_0,1,74.11,0.1382,\n\
             2025-09-30T20:09:44,a:q4_0,2,76.96,0.0987,\n\
             2025-09-30T20:09:45,a:q8_0,1,0,0,connection refused\n",
        )
        .unwrap();
        let r = t.records();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].factors["model"].text(), "a:q4_0");
        assert_eq!(r[0].factors["prompt_index"].num(), Some(1.0));
        assert_eq!(r[0].measures["tokens_s"].value, 74.11);
        assert!((r[0].measures["ttft"].value - 138.2).abs() < 1e-9, "seconds become ms");
        assert!(r[0].time.is_some());
        assert_eq!(r[2].validity, Validity::Failed("connection refused".into()));
    }

    #[test]
    fn markdown_tables_under_their_headings() {
        let t = markdown(
            "r.md",
            "# Results\n\n| model | tok/s |\n|---|---:|\n| **a** | 10.5 |\n| b | 12 |\n\ntext\n",
        );
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].locator, "table 1 (Results)");
        assert_eq!(t[0].rows[0][0].as_deref(), Some("a"));
        assert_eq!(t[0].row_locs[1], "line 6");
    }
}
