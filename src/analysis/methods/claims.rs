//! Claims checked against data: the figures a folder's Markdown reports state (a number with a
//! rate or time unit, in prose or in a table column that names one), matched to the runs whose
//! settings the same line names. A figure is reproduced when a mean, median, extreme or single
//! run of the matching runs gives it to its printed precision; contradicted when matching runs
//! exist and give something else (or when it lies outside every run of its kind); otherwise the
//! data cannot back it.

use crate::analysis::design::Family;
use crate::analysis::fmt;
use crate::analysis::readers::{known_def, table};
use crate::analysis::record::{Quantity, Record};
use serde::Serialize;
use std::collections::BTreeSet;

/// One stated figure and what the runs say of it.
#[derive(Debug, Clone, Serialize)]
pub struct Claim {
    pub file: String,
    pub line: String,
    /// The figure as written (`102.31 tok/s`).
    pub text: String,
    /// The sentence or table row it sits in (shortened).
    pub context: String,
    /// `reproduced`, `contradicted` or `cannot be backed`.
    pub verdict: String,
    /// What the runs give.
    pub data: String,
    pub value: f64,
    pub closest: Option<f64>,
}

impl Claim {
    /// The relative gap between the figure and the closest value of the runs.
    pub fn gap(&self) -> f64 {
        self.closest.map_or(0.0, |c| ((self.value - c) / c.abs().max(1e-12)).abs())
    }
}

/// At most this many figures per report.
const MAX_PER_FILE: usize = 80;

/// A figure found in text: value in the canonical unit, the quantity, decimals written.
struct Figure {
    value: f64,
    quantity: Quantity,
    decimals: usize,
    text: String,
}

/// Figures with a unit in a line: `102.31 tok/s`, `0.128 s`, `86 ms`.
fn figures(line: &str, column_unit: Option<Quantity>) -> Vec<Figure> {
    let b = line.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit()
            || (i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.' || b[i - 1] == b'_'))
        {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < b.len()
            && (b[j].is_ascii_digit()
                || b[j] == b'.'
                || (b[j] == b',' && j + 3 < b.len() && b[j + 1].is_ascii_digit()))
        {
            j += 1;
        }
        let num = line[i..j].trim_end_matches('.').replace(',', "");
        let Ok(v) = num.parse::<f64>() else {
            i = j + 1;
            continue;
        };
        let decimals = num.split_once('.').map_or(0, |(_, d)| d.len());
        // a difference, a bound or an approximation is not a measured value
        let before: String = line[..i]
            .chars()
            .rev()
            .take(24)
            .collect::<String>()
            .chars()
            .rev()
            .collect::<String>()
            .to_ascii_lowercase();
        let relative = [
            "within",
            "±",
            "+",
            "-",
            "by ",
            "range",
            "spread",
            "delta",
            "Δ",
            "diff",
            "gain",
            "improv",
            "drop",
            "increase",
            "decrease",
            "reduc",
            "up to",
            "less than",
            "more than",
            "~",
            "≈",
            "<",
            ">",
            "x ",
            "×",
        ]
        .iter()
        .any(|w| before.trim_end().ends_with(w) || (w.len() > 2 && before.contains(w)));
        if relative {
            i = j.max(i + 1);
            continue;
        }
        let rest = line[j..].trim_start().to_ascii_lowercase();
        let unit = [
            ("tok/s", Quantity::TokenRate, 1.0),
            ("tokens/s", Quantity::TokenRate, 1.0),
            ("tokens/sec", Quantity::TokenRate, 1.0),
            ("tokens per second", Quantity::TokenRate, 1.0),
            ("t/s", Quantity::TokenRate, 1.0),
            ("ms", Quantity::Time, 1.0),
            ("seconds", Quantity::Time, 1000.0),
            ("sec", Quantity::Time, 1000.0),
            ("s ", Quantity::Time, 1000.0),
            ("s)", Quantity::Time, 1000.0),
            ("s,", Quantity::Time, 1000.0),
            ("s.", Quantity::Time, 1000.0),
            ("s|", Quantity::Time, 1000.0),
        ]
        .iter()
        .find(|(u, _, _)| rest.starts_with(u) || (*u == "s " && rest == "s"))
        .map(|(u, q, f)| (u.trim_end_matches([' ', ')', ',', '.', '|']).len(), *q, *f));
        match (unit, column_unit) {
            (Some((ulen, q, f)), _) => {
                let end = j + (line.len() - j - line[j..].trim_start().len()) + ulen;
                out.push(Figure {
                    value: v * f,
                    quantity: q,
                    decimals,
                    text: line[i..end.min(line.len())].trim().to_string(),
                });
            }
            (None, Some(q))
                if !rest.starts_with('%') && !rest.starts_with('x') && !rest.starts_with('×') =>
            {
                out.push(Figure { value: v, quantity: q, decimals, text: num.clone() });
            }
            _ => {}
        }
        i = j.max(i + 1);
    }
    out
}

/// Level texts of the runs, lower-case, for finding the settings a line names.
fn level_index(families: &[Family]) -> BTreeSet<String> {
    let mut s = BTreeSet::new();
    for fam in families {
        // only factors that vary tell runs apart
        let mut by: std::collections::BTreeMap<&String, BTreeSet<String>> = Default::default();
        for r in &fam.records {
            for (k, l) in &r.factors {
                by.entry(k).or_default().insert(l.text().to_ascii_lowercase());
            }
        }
        for levels in by.values().filter(|l| l.len() >= 2) {
            s.extend(levels.iter().filter(|t| t.len() >= 2 && t.len() <= 60).cloned());
            // numbers as a report may write them: `999.00` for 999
            s.extend(levels.iter().filter_map(|t| t.parse::<f64>().ok()).map(|v| format!("#{v}")));
        }
    }
    s
}

/// Words of a line that are (or start) a level of some factor.
fn named_levels(line: &str, figure: &str, index: &BTreeSet<String>) -> Vec<String> {
    let mut out = vec![];
    for w in
        line.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
    {
        let w = w.trim_matches(['.', ':', '-']).to_ascii_lowercase();
        if w.len() < 2 || figure.starts_with(&w) {
            continue;
        }
        let numeric = w.parse::<f64>().ok().is_some_and(|v| index.contains(&format!("#{v}")));
        let hit = numeric
            || index.contains(&w)
            || (w.chars().any(|c| c.is_ascii_alphabetic())
                && index.iter().any(|l| l.starts_with(&format!("{w}:"))));
        if hit && !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

fn matches_level(r: &Record, w: &str) -> bool {
    let num = w.parse::<f64>().ok();
    r.factors.values().any(|l| {
        let t = l.text().to_ascii_lowercase();
        t == w || t.starts_with(&format!("{w}:")) || (num.is_some() && l.num() == num)
    })
}

/// Whether `x` prints as the figure at its precision (half a unit of its last decimal, or 0.5 %).
fn same(fig: &Figure, x: f64, scale: f64) -> bool {
    let half = 0.5 * 10f64.powi(-(fig.decimals as i32)) * scale;
    (fig.value - x).abs() <= half.max(fig.value.abs() * 0.005)
}

/// Checks the figures of every report.
pub fn check(reports: &[(String, String)], families: &[Family]) -> Vec<Claim> {
    let index = level_index(families);
    let mut out = vec![];
    for (file, text) in reports {
        // every valid run of the folder: a report may describe data kept anywhere in it
        let pool: Vec<&Record> =
            families.iter().flat_map(|f| &f.records).filter(|r| r.validity.is_ok()).collect();
        if pool.is_empty() {
            continue;
        }
        let mut n = 0;
        let mut fence = false;
        let mut col_units: Vec<Option<Quantity>> = vec![];
        for (ln, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                fence = !fence;
                continue;
            }
            if fence || n >= MAX_PER_FILE {
                continue;
            }
            let cells = if line.contains('|') { table::md_cells(line) } else { vec![] };
            if cells.iter().any(|c| c.as_deref().is_some_and(|c| c.contains("---"))) {
                continue;
            }
            if cells.len() >= 2
                && cells.iter().all(|c| c.as_deref().is_some_and(|c| c.parse::<f64>().is_err()))
            {
                col_units = cells.iter().map(|c| c.as_deref().and_then(header_unit)).collect();
                let sep = text.lines().nth(ln + 1).map(table::md_cells).map_or(0, |c| c.len());
                if col_units.len() == sep + 1 && !line.trim_start().starts_with('|') {
                    col_units.remove(0);
                }
            } else if cells.is_empty() {
                col_units.clear();
            }
            let figs: Vec<Figure> = if cells.len() >= 2 {
                cells
                    .iter()
                    .enumerate()
                    .flat_map(|(k, c)| {
                        figures(c.as_deref().unwrap_or(""), col_units.get(k).copied().flatten())
                    })
                    .collect()
            } else {
                figures(line, None)
            };
            for fig in figs {
                n += 1;
                let levels = named_levels(line, &fig.text, &index);
                out.push(judge(file, ln, line, &fig, &levels, &pool));
            }
        }
    }
    out
}

/// The quantity a table header names (`tok/s`, `TTFT (ms)`, `tokens_s`).
fn header_unit(h: &str) -> Option<Quantity> {
    let d = known_def(h)?;
    matches!(d.quantity, Quantity::TokenRate).then_some(Quantity::TokenRate)
}

fn judge(
    file: &str,
    ln: usize,
    line: &str,
    fig: &Figure,
    levels: &[String],
    pool: &[&Record],
) -> Claim {
    let lower = line.to_ascii_lowercase();
    let want = |name: &str| {
        let Some(d) = known_def(name) else { return false };
        if d.quantity != fig.quantity || d.spread {
            return false;
        }
        if fig.quantity == Quantity::Time {
            let n = name.to_ascii_lowercase();
            let ttft = lower.contains("ttft") || lower.contains("first token");
            let load = lower.contains("load");
            return if ttft {
                n.contains("ttft") || n.contains("first")
            } else if load {
                n.contains("load")
            } else {
                d.primary || n.contains("total")
            };
        }
        true
    };
    let matching: Vec<&&Record> =
        pool.iter().filter(|r| levels.iter().all(|w| matches_level(r, w))).collect();
    let mut values = vec![];
    let mut summary = None;
    for set in [&matching] {
        let mut names: BTreeSet<&String> =
            set.iter().flat_map(|r| r.measures.keys()).filter(|k| want(k)).collect();
        if names.is_empty() {
            continue;
        }
        for m in std::mem::take(&mut names) {
            let v: Vec<f64> =
                set.iter().filter_map(|r| r.measures.get(m).map(|o| o.value)).collect();
            if v.is_empty() {
                continue;
            }
            let s = crate::stats::Summary::of(&v).unwrap_or_default();
            if summary.is_none() {
                summary = Some((m.clone(), s, v.len()));
            }
            values.extend([s.mean, s.median, s.min, s.max]);
            values.extend(v);
        }
    }
    let closest = values
        .iter()
        .copied()
        .min_by(|a, b| (a - fig.value).abs().total_cmp(&(b - fig.value).abs()));
    let unit = if fig.quantity == Quantity::TokenRate { "tok/s" } else { "ms" };
    let context: String =
        line.trim().trim_start_matches(['-', '*', '#', '|', ' ']).chars().take(120).collect();
    let mut c = Claim {
        file: file.into(),
        line: format!("line {}", ln + 1),
        text: fig.text.clone(),
        context: table::one_line(&context),
        verdict: "cannot be backed".into(),
        data: String::new(),
        value: fig.value,
        closest,
    };
    let scale = if fig.quantity == Quantity::Time
        && fig.text.trim_end().ends_with('s')
        && !fig.text.trim_end().ends_with("ms")
    {
        1000.0
    } else {
        1.0
    };
    if values.iter().any(|x| same(fig, *x, scale)) {
        c.verdict = "reproduced".into();
        c.data = format!("the runs give {}", fmt::value(closest.unwrap_or(fig.value), unit));
        return c;
    }
    let outside = |s: &crate::stats::Summary| fig.value > s.max * 1.05 || fig.value < s.min * 0.95;
    // one number alone (`0.4`) could name many things; a model, a tag or two settings name runs
    let specific = levels.len() >= 2 || levels.iter().any(|l| l.parse::<f64>().is_err());
    if let (Some((m, s, n)), true) = (&summary, specific) {
        if !outside(s) && *n > 1 {
            c.data = format!(
                "the {} runs with {} give `{}` from {} to {}, none of them this figure",
                n,
                levels.join(", "),
                m,
                fmt::value(s.min, unit),
                fmt::value(s.max, unit)
            );
            return c;
        }
        c.verdict = "contradicted".into();
        c.data = format!(
            "the {} runs with {} give `{}` {} (range {} to {})",
            n,
            levels.join(", "),
            m,
            fmt::value(s.mean, unit),
            fmt::value(s.min, unit),
            fmt::value(s.max, unit)
        );
        return c;
    }
    // outside every run of its kind
    let all: Vec<f64> = pool
        .iter()
        .flat_map(|r| r.measures.iter().filter(|(k, _)| want(k)).map(|(_, o)| o.value))
        .collect();
    if let Some(s) = crate::stats::Summary::of(&all) {
        let outside = fig.value > s.max * 1.05 || fig.value < s.min * 0.95;
        if outside && fig.quantity == Quantity::TokenRate {
            c.verdict = "contradicted".into();
            c.data = format!(
                "every run's rate lies between {} and {}",
                fmt::value(s.min, unit),
                fmt::value(s.max, unit)
            );
            c.closest = Some(if fig.value > s.max { s.max } else { s.min });
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_with_units() {
        let f = figures("Best: 102.31 tok/s at 0.128 s TTFT, 86 ms load, 5 runs, 12 %", None);
        let v: Vec<(f64, Quantity)> = f.iter().map(|x| (x.value, x.quantity)).collect();
        assert_eq!(
            v,
            vec![(102.31, Quantity::TokenRate), (128.0, Quantity::Time), (86.0, Quantity::Time)]
        );
        assert_eq!(f[0].decimals, 2);
        assert_eq!(f[1].text, "0.128 s");
    }
}
