//! The data's health and its timing effects: failures by error message, what never completed,
//! missing values, empty and unreadable files, cold starts, outliers, noisy series, time span.

use super::{num, num1, Finding, Kind};
use crate::agent::ingest::names::{is_load, is_ttft, role};
use crate::agent::ingest::{Dataset, Facts};
use crate::stats::{self, Summary};
use std::collections::BTreeMap;

/// A load this many times the file's median is a cold start, when it also stands out by the
/// modified z-score.
const COLD_FACTOR: f64 = 3.0;
/// Iglewicz and Hoaglin's cut for outliers on the modified z-score.
const OUTLIER_Z: f64 = 3.5;
/// A series whose CV exceeds this (percent) is reported as noisy.
const NOISY_CV: f64 = 10.0;

pub(super) fn all(facts: &Facts, out: &mut Vec<Finding>) {
    let twin = |file: &str| facts.twins.iter().any(|t| t.file == file);
    let primary: Vec<&Dataset> = facts.datasets.iter().filter(|d| d.twin_of.is_none()).collect();
    failures(facts, &twin, out);
    never_completed(&primary, out);
    nulls(facts, &twin, out);
    files(facts, out);
    for d in &primary {
        cold_starts(d, out);
        outliers(d, out);
    }
    noise(facts, &twin, out);
    time_span(facts, out);
}

/// Failed rows grouped by error message, with counts per file.
fn failures(facts: &Facts, twin: &dyn Fn(&str) -> bool, out: &mut Vec<Finding>) {
    let mut by_msg: BTreeMap<Option<String>, BTreeMap<String, Vec<usize>>> = BTreeMap::new();
    for f in facts.failures.iter().filter(|f| !twin(f.file.split([':', '#']).next().unwrap_or("")))
    {
        by_msg.entry(f.message.clone()).or_default().entry(f.file.clone()).or_default().push(f.row);
    }
    for (msg, files) in by_msg {
        let total: usize = files.values().map(Vec::len).sum();
        let per_file: Vec<String> =
            files.iter().map(|(f, rows)| format!("{} in `{f}`", rows.len())).collect();
        let what = match &msg {
            Some(m) => format!("The error \"{m}\""),
            None => {
                "A silent failure (no error message; success = false or all-zero metrics)".into()
            }
        };
        let s = format!(
            "{what} occurs in {total} row{}: {}.",
            if total == 1 { "" } else { "s" },
            per_file.join(", ")
        );
        let e = files
            .iter()
            .map(|(f, rows)| {
                let list = rows.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ");
                format!("`{f}` row{} {list}", if rows.len() == 1 { "" } else { "s" })
            })
            .collect::<Vec<_>>()
            .join("; ");
        let rows = files.values().flatten().copied().collect();
        let file_list = files.keys().map(|f| file_of(f)).collect();
        // at equal counts a failure with a message comes first: it says what to chase
        let effect = total as f64 + if msg.is_some() { 0.5 } else { 0.0 };
        out.push(Finding::new(Kind::Failures, s, e, file_list).rows(rows).effect(effect));
    }
}

/// The file part of a dataset name (`a.json:results[]` → `a.json`).
fn file_of(name: &str) -> String {
    name.split([':', '#']).next().unwrap_or(name).to_string()
}

/// Models or configurations none of whose runs completed: a summary record saying
/// `completed` = 0 of a positive count, or a key all of whose rows failed.
fn never_completed(ds: &[&Dataset], out: &mut Vec<Finding>) {
    for d in ds {
        let key = d.key_col().filter(|&c| {
            let h = d.headers[c].trim().to_ascii_lowercase();
            matches!(
                h.as_str(),
                "model" | "model_name" | "config_name" | "config" | "variant" | "scenario"
            )
        });
        let Some(k) = key else { continue };
        let done = d.col(|h| h.trim().eq_ignore_ascii_case("completed"));
        let of = d.col(|h| {
            matches!(
                h.trim().to_ascii_lowercase().as_str(),
                "prompt_count" | "total" | "runs" | "total_runs"
            )
        });
        let mut rows: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for r in 0..d.rows.len() {
            let Some(name) = d.cell(r, k) else { continue };
            let e = rows.entry(name.to_string()).or_default();
            e.0 += 1;
            e.1 += usize::from(d.failed[r]);
            if let (Some(dc), Some(oc)) = (done, of) {
                if let (Some(0.0), Some(n)) = (d.num(r, dc), d.num(r, oc)) {
                    if n > 0.0 {
                        let s = format!(
                            "{} never completed: 0 of {} in `{}`.",
                            name,
                            num(n),
                            file_of(&d.name)
                        );
                        let e = format!(
                            "`{}` record {}: completed = 0, {} = {}",
                            d.name,
                            r + 1,
                            d.headers[oc].trim(),
                            num(n)
                        );
                        out.push(
                            Finding::new(Kind::NeverCompleted, s, e, vec![file_of(&d.name)])
                                .rows(vec![r + 1]),
                        );
                    }
                }
            }
        }
        if done.is_some() {
            continue;
        }
        for (name, (n, failed)) in rows {
            if n == failed && n > 0 {
                let s = format!(
                    "{} never completed: all {n} of its run{} in `{}` failed.",
                    name,
                    if n == 1 { "" } else { "s" },
                    file_of(&d.name)
                );
                let e = format!(
                    "`{}`: {} = {name}, {n} rows, {failed} failed",
                    d.name,
                    d.headers[k].trim()
                );
                out.push(Finding::new(Kind::NeverCompleted, s, e, vec![file_of(&d.name)]));
            }
        }
    }
}

/// Measurements with missing values in rows that did not fail.
fn nulls(facts: &Facts, twin: &dyn Fn(&str) -> bool, out: &mut Vec<Finding>) {
    for s in facts.series.iter().filter(|s| s.n_null > 0 && !twin(&file_of(&s.file))) {
        let total = s.n + s.n_null;
        let sentence = format!(
            "`{}` has missing values in `{}`: {} of {} are null or empty.",
            s.file, s.column, s.n_null, total
        );
        let e = format!("`{}` `{}`: {} values, {} missing", s.file, s.column, s.n, s.n_null);
        out.push(Finding::new(Kind::Nulls, sentence, e, vec![file_of(&s.file)]).column(&s.column));
    }
    // measurements that are null everywhere have no series
    for g in facts.gaps.iter().filter(|g| g.kind == "null value" && !twin(&g.path)) {
        if facts.series.iter().any(|s| s.file == g.path && s.column == g.detail) {
            continue;
        }
        let s = format!("`{}` has no value at all for `{}`: it is null.", g.path, g.detail);
        let e = format!("`{}` `{}`: null", g.path, g.detail);
        out.push(Finding::new(Kind::Nulls, s, e, vec![g.path.clone()]).column(&g.detail));
    }
}

/// Empty and unreadable files.
fn files(facts: &Facts, out: &mut Vec<Finding>) {
    for g in facts.gaps.iter().filter(|g| g.kind == "empty file") {
        let s = format!("`{}` is empty ({}).", g.path, g.detail);
        out.push(Finding::new(
            Kind::EmptyFile,
            s,
            format!("`{}`: {}", g.path, g.detail),
            vec![g.path.clone()],
        ));
    }
    for u in &facts.files.unreadable {
        let s = format!("`{}` cannot be read: {}.", u.path, u.reason);
        out.push(Finding::new(
            Kind::Unreadable,
            s,
            format!("`{}`: {}", u.path, u.reason),
            vec![u.path.clone()],
        ));
    }
}

/// Cold-start rows of a dataset and what they are measured against.
pub(super) struct Cold {
    /// 0-based rows.
    pub rows: Vec<usize>,
    pub load_col: usize,
    pub ttft_col: usize,
    pub typical_load: f64,
    pub warm_ttft: f64,
}

/// Rows whose load stands far above the file's typical (median) load: at least three times it,
/// and beyond 3.5 on the modified z-score where the loads spread at all. Needs three rows.
pub(super) fn cold_rows(d: &Dataset) -> Option<Cold> {
    let load_col = d.col(is_load)?;
    let ttft_col = d.col(is_ttft)?;
    let loads = d.ok_values(load_col);
    if loads.len() < 3 {
        return None;
    }
    let lv: Vec<f64> = loads.iter().map(|x| x.1).collect();
    let s = Summary::of(&lv)?;
    let stands_out = |x: f64| match stats::modified_z(x, s.median, s.mad) {
        Some(z) => z > OUTLIER_Z,
        None => x > s.median,
    };
    let rows: Vec<usize> = loads
        .iter()
        .filter(|(_, x)| *x > 0.0 && *x >= COLD_FACTOR * s.median && stands_out(*x))
        .map(|(r, _)| *r)
        .collect();
    if rows.is_empty() {
        return None;
    }
    let warm: Vec<f64> =
        d.ok_values(ttft_col).into_iter().filter(|(r, _)| !rows.contains(r)).map(|x| x.1).collect();
    Some(Cold { rows, load_col, ttft_col, typical_load: s.median, warm_ttft: stats::median(&warm) })
}

fn cold_starts(d: &Dataset, out: &mut Vec<Finding>) {
    let Some(c) = cold_rows(d) else { return };
    let (lh, th) = (d.headers[c.load_col].trim(), d.headers[c.ttft_col].trim());
    for &r in &c.rows {
        let (load, ttft) =
            (d.num(r, c.load_col).unwrap_or(0.0), d.num(r, c.ttft_col).unwrap_or(0.0));
        let ratio = (c.warm_ttft > 0.0).then(|| ttft / c.warm_ttft);
        let ratio_text = ratio.map_or(String::new(), |x| {
            format!(", {}× the warm median of {}", num1(x), num(c.warm_ttft))
        });
        let s = format!(
            "Row {} of `{}` is a cold start: `{lh}` {} against a typical {}, and its `{th}` of {}{ratio_text}.",
            r + 1,
            d.name,
            num(load),
            num(c.typical_load),
            num(ttft)
        );
        let e = format!(
            "`{}` row {}: `{lh}` = {}, median `{lh}` = {}; `{th}` = {}, median warm `{th}` = {}",
            d.name,
            r + 1,
            num(load),
            num(c.typical_load),
            num(ttft),
            num(c.warm_ttft)
        );
        let f =
            Finding::new(Kind::ColdStart, s, e, vec![d.file.clone()]).column(th).rows(vec![r + 1]);
        out.push(f.effect(ratio.unwrap_or(1.0).log2()));
    }
}

/// Values far from the rest of their column by the modified z-score (n ≥ 5); cold-start rows are
/// already explained and left out.
fn outliers(d: &Dataset, out: &mut Vec<Finding>) {
    let cold = cold_rows(d).map(|c| c.rows).unwrap_or_default();
    for c in
        (0..d.headers.len()).filter(|&c| role(&d.headers[c]).is_some() || is_load(&d.headers[c]))
    {
        let vals: Vec<(usize, f64)> =
            d.ok_values(c).into_iter().filter(|(r, _)| !cold.contains(r)).collect();
        if vals.len() < 5 {
            continue;
        }
        let v: Vec<f64> = vals.iter().map(|x| x.1).collect();
        let Some(s) = Summary::of(&v) else { continue };
        let hits: Vec<(usize, f64, f64)> = vals
            .iter()
            .filter_map(|&(r, x)| {
                stats::modified_z(x, s.median, s.mad)
                    .filter(|z| z.abs() > OUTLIER_Z)
                    .map(|z| (r, x, z))
            })
            .collect();
        let h = d.headers[c].trim();
        for (r, x, z) in hits {
            let sentence = format!(
                "Row {} of `{}` is an outlier in `{h}`: {} against a median of {} (modified z = {}).",
                r + 1,
                d.name,
                num(x),
                num(s.median),
                num(z)
            );
            let e = format!(
                "`{}` `{h}`: n = {}, median {}, MAD {}; row {} = {}",
                d.name,
                s.n,
                num(s.median),
                num(s.mad),
                r + 1,
                num(x)
            );
            out.push(
                Finding::new(Kind::Outlier, sentence, e, vec![d.file.clone()])
                    .column(h)
                    .rows(vec![r + 1])
                    .effect(z),
            );
        }
    }
}

/// Comparable metrics whose coefficient of variation exceeds 10 % (n ≥ 3). A sweep's spread
/// across its settings is not noise: its run-to-run noise is reported with its comparisons.
fn noise(facts: &Facts, twin: &dyn Fn(&str) -> bool, out: &mut Vec<Finding>) {
    let sweep = |name: &str| facts.sweeps.iter().any(|w| w.file == name);
    for s in facts
        .series
        .iter()
        .filter(|s| s.n >= 3 && role(&s.column).is_some() && !twin(&file_of(&s.file)))
    {
        let explained = sweep(&s.file) || is_ttft(&s.column) && has_cold(facts, &s.file);
        if s.mean.abs() <= f64::EPSILON || explained {
            continue;
        }
        let cv = s.sd / s.mean.abs() * 100.0;
        if cv <= NOISY_CV {
            continue;
        }
        let sentence = format!(
            "`{}` in `{}` is noisy: its coefficient of variation is {} % over {} values.",
            s.column,
            s.file,
            num1(cv),
            s.n
        );
        let e = format!(
            "`{}` `{}`: mean {}, sd {}, min {}, max {}",
            s.file,
            s.column,
            num(s.mean),
            num(s.sd),
            num(s.min),
            num(s.max)
        );
        out.push(
            Finding::new(Kind::Noise, sentence, e, vec![file_of(&s.file)])
                .column(&s.column)
                .effect(cv / 10.0),
        );
    }
}

/// Whether a file's TTFT spread is a cold start's (reported as such, not as noise).
fn has_cold(facts: &Facts, name: &str) -> bool {
    facts.datasets.iter().any(|d| d.name == name && cold_rows(d).is_some())
}

fn time_span(facts: &Facts, out: &mut Vec<Finding>) {
    let t = &facts.time_span;
    let day = |s: &str| s[..10].to_string();
    let range = |(a, b): &(String, String)| {
        if day(a) == day(b) {
            day(a)
        } else {
            format!("{} to {}", day(a), day(b))
        }
    };
    let (from, n, source) = match (&t.data, &t.names) {
        (Some(d), Some(nm)) => {
            let lo = d.0.clone().min(nm.0.clone());
            let hi = d.1.clone().max(nm.1.clone());
            (
                range(&(lo, hi)),
                t.data_stamps + t.name_stamps,
                "timestamps inside the data and in file and folder names",
            )
        }
        (Some(d), None) => (range(d), t.data_stamps, "timestamps inside the data"),
        (None, Some(nm)) => (range(nm), t.name_stamps, "stamps in file and folder names"),
        (None, None) => return,
    };
    let mt = t.mtimes.as_ref().map_or(String::new(), |m| {
        format!(" File modification times say {}; a copy or a git checkout resets them.", range(m))
    });
    let s = format!("The data spans {from}, by {n} {source}.{mt}");
    let e = format!("{} stamps in the data, {} in names", t.data_stamps, t.name_stamps);
    out.push(Finding::new(Kind::TimeSpan, s, e, vec![]));
}
