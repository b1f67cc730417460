//! Findings about the data: outages recorded as success (and the false regression they would
//! make), failures by root cause, cold starts as a pattern, report numbers the runs contradict or
//! cannot back, copies counted once, files that could not be read.

use super::{Finding, Kind};
use crate::analysis::fmt;
use crate::analysis::methods::failures::FailureGroup;
use crate::analysis::readers::known_def;
use crate::analysis::record::{Quantity, Validity};
use crate::analysis::Study;
use std::collections::BTreeMap;

pub fn all(s: &Study, out: &mut Vec<Finding>) {
    for g in &s.failures {
        if g.reported_success > 0 {
            out.push(outage(s, g));
        }
        if g.count > g.reported_success {
            out.push(failures(s, g));
        }
    }
    cold_starts(s, out);
    claims(s, out);
    duplicates(s, out);
}

/// Short list of files: up to three, then "and N more".
fn files_text(files: &[String]) -> String {
    let mut v: Vec<String> = files.iter().take(3).map(|f| format!("`{f}`")).collect();
    if files.len() > 3 {
        v.push(format!("{} more", files.len() - 3));
    }
    v.join(", ")
}

/// An outage: runs that said they succeeded, whose content says they did not, and what taking
/// them at face value would have concluded.
fn outage(s: &Study, g: &FailureGroup) -> Finding {
    let suspect_files: Vec<String> = g
        .files
        .iter()
        .filter(|(f, _, _)| {
            s.families
                .iter()
                .flat_map(|x| &x.records)
                .any(|r| &r.file == f && matches!(r.validity, Validity::Suspect(_)))
        })
        .map(|(f, _, _)| f.clone())
        .collect();
    let whole = g.files.iter().filter(|(f, n, all)| n == all && suspect_files.contains(f)).count();
    let example = s
        .families
        .iter()
        .flat_map(|x| &x.records)
        .find(|r| suspect_files.contains(&r.file) && matches!(r.validity, Validity::Suspect(_)))
        .and_then(|r| r.validity.reason().map(String::from))
        .unwrap_or_else(|| g.example.clone());
    let mut sentence = format!(
        "{} {} an outage recorded as success: {} runs report success while their text reads \"{}\".",
        files_text(&suspect_files),
        if suspect_files.len() == 1 { "holds" } else { "hold" },
        g.reported_success,
        example.trim_start_matches("generated text is an error message: ").trim_matches('"')
    );
    let mut score = 950.0;
    if let Some((m, bad, good, unit)) = naive(s, g) {
        let ch = (bad - good) / good * 100.0;
        sentence.push_str(&format!(
            " Taken at face value their `{m}` ({}) would read as a {} change against the valid runs ({}); they are left out of every comparison{}.",
            fmt::value(bad, unit),
            fmt::pct(ch),
            fmt::value(good, unit),
            if whole > 0 { ", whole runs included" } else { "" }
        ));
        score += ch.abs().min(100.0);
    } else {
        sentence.push_str(" They are left out of every comparison.");
    }
    let mut f = Finding::new(Kind::Outage, sentence, score);
    f.evidence.push(format!("root cause: {}", g.cause));
    for (file, n, all) in g.files.iter().filter(|(x, _, _)| suspect_files.contains(x)) {
        f.evidence.push(format!("{file}: {n} of {all} runs"));
    }
    for file in &suspect_files {
        f = f.with("file", file);
    }
    f.files = suspect_files;
    f
}

/// The primary measure of the outage's runs against the valid runs of their families.
fn naive(s: &Study, g: &FailureGroup) -> Option<(String, f64, f64, &'static str)> {
    let files: Vec<&String> = g.files.iter().map(|(f, _, _)| f).collect();
    for fam in &s.families {
        let bad: Vec<_> = fam
            .records
            .iter()
            .filter(|r| files.contains(&&r.file) && matches!(r.validity, Validity::Suspect(_)))
            .collect();
        if bad.is_empty() {
            continue;
        }
        let mut measures: Vec<(&String, crate::analysis::record::MeasureDef)> = bad[0]
            .measures
            .keys()
            .filter_map(|k| known_def(k).map(|d| (k, d)))
            .filter(|(_, d)| d.primary)
            .collect();
        measures.sort_by_key(|(_, d)| !matches!(d.quantity, Quantity::TokenRate));
        let (m, d) = measures.first()?;
        let mean = |v: Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        let b = mean(bad.iter().filter_map(|r| r.measures.get(*m).map(|o| o.value)).collect())?;
        let ok = mean(
            fam.records
                .iter()
                .filter(|r| r.validity.is_ok())
                .filter_map(|r| r.measures.get(*m).map(|o| o.value))
                .collect(),
        )?;
        return Some(((*m).clone(), b, ok, d.unit()));
    }
    None
}

fn failures(s: &Study, g: &FailureGroup) -> Finding {
    let failed = g.count - g.reported_success;
    let files: Vec<String> = g.files.iter().map(|(f, _, _)| f.clone()).collect();
    let mut sentence = format!(
        "{} run{} failed because {} (\"{}\") in {} file{}: {}",
        failed,
        if failed == 1 { "" } else { "s" },
        cause_phrase(&g.cause),
        g.example,
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        files_text(&files)
    );
    if !g.confined.is_empty() {
        let c: Vec<String> = g.confined.iter().take(3).map(|(k, v)| format!("{k} = {v}")).collect();
        sentence.push_str(&format!("; every one had {}", c.join(", ")));
    }
    sentence.push('.');
    if !g.never_completed.is_empty() {
        sentence.push_str(&format!(
            " {} configuration{} never completed a run.",
            g.never_completed.len(),
            if g.never_completed.len() == 1 { "" } else { "s" }
        ));
    }
    let total: usize = s.families.iter().map(|f| f.records.len()).sum();
    let share = failed as f64 / total.max(1) as f64;
    let mut f = Finding::new(
        Kind::Failures,
        sentence,
        500.0 + 400.0 * share.min(1.0) + 5.0 * g.never_completed.len().min(5) as f64,
    );
    f.headline = share >= 0.05 || !g.never_completed.is_empty();
    for (file, n, all) in &g.files {
        f.evidence.push(format!("{file}: {n} of {all} runs"));
    }
    for c in g.never_completed.iter().take(8) {
        f.evidence.push(format!("never completed: {c}"));
    }
    if let Some((a, b)) = g.span {
        f.evidence.push(format!("from {} to {}", crate::stamp::format(a), crate::stamp::format(b)));
    }
    for file in files.iter().take(3) {
        f = f.with("file", file);
    }
    f.files = files;
    f
}

fn cause_phrase(c: &str) -> String {
    match c {
        "timeout" => "they timed out".into(),
        "out of memory" => "they ran out of memory".into(),
        "crash" => "the program crashed".into(),
        "text encoding error" => "their output could not be encoded".into(),
        "no result recorded" => "no result was recorded".into(),
        "model not found" => "the model was not found".into(),
        "missing dependency" => "a dependency was missing".into(),
        "reported failure without a message" => "they reported failure without a message".into(),
        other if other.starts_with("other: ") => "of the same error".into(),
        other => other.to_string(),
    }
}

fn cold_starts(s: &Study, out: &mut Vec<Finding>) {
    let mut by: BTreeMap<&str, Vec<&crate::analysis::methods::patterns::ColdStarts>> =
        BTreeMap::new();
    for c in &s.cold {
        by.entry(c.measure.as_str()).or_default().push(c);
    }
    for (m, items) in by {
        let cold: usize = items.iter().map(|c| c.cold.len()).sum();
        let rows: usize = items.iter().map(|c| c.rows).sum();
        let at: usize = items.iter().map(|c| c.at_changes).sum();
        let unit = known_def(m).map_or("", |d| d.unit());
        let cm: Vec<f64> = items.iter().map(|c| c.cold_median).collect();
        let wm: Vec<f64> = items.iter().map(|c| c.warm_median).collect();
        let mut trig: Vec<&String> = items.iter().flat_map(|c| &c.triggers).collect();
        trig.sort();
        trig.dedup();
        let files: Vec<String> =
            items.iter().flat_map(|c| s.families[c.family].files.clone()).collect();
        let first: usize = items.iter().map(|c| c.first_of_file).sum();
        let when = if trig.is_empty() && first * 4 >= cold * 3 {
            format!("{first} of them the first run of a file")
        } else if trig.is_empty() {
            "at no setting change in particular".to_string()
        } else {
            let t: Vec<String> = trig.iter().map(|t| format!("`{t}`")).collect();
            format!("{at} of them at the first run after {} changed", t.join(" or "))
        };
        let sentence = format!(
            "Cold starts are a pattern, not {cold} events: {cold} of {rows} runs load the model ({when}); `{m}` is {} cold against {} warm (medians), so those runs are kept out of `{m}` and the other measures that include loading.",
            fmt::value(crate::stats::median(&cm), unit),
            fmt::value(crate::stats::median(&wm), unit)
        );
        let mut f = Finding::new(
            Kind::ColdStarts,
            sentence,
            560.0 + (cold as f64 / rows.max(1) as f64 * 100.0).min(60.0),
        );
        for c in &items {
            f.evidence.push(format!(
                "`{}`: {} of {} runs cold ({} vs {})",
                s.families[c.family].name,
                c.cold.len(),
                c.rows,
                fmt::value(c.cold_median, unit),
                fmt::value(c.warm_median, unit)
            ));
        }
        f.files = files;
        out.push(f.with("measure", m));
    }
}

fn claims(s: &Study, out: &mut Vec<Finding>) {
    let mut by: BTreeMap<&str, Vec<&crate::analysis::methods::claims::Claim>> = BTreeMap::new();
    for c in &s.claims {
        by.entry(c.file.as_str()).or_default().push(c);
    }
    for (file, cs) in by {
        let count = |v: &str| cs.iter().filter(|c| c.verdict == v).count();
        let (rep, con, cant) =
            (count("reproduced"), count("contradicted"), count("cannot be backed"));
        if rep + con + cant == 0 {
            continue;
        }
        let worst = cs
            .iter()
            .filter(|c| c.verdict == "contradicted")
            .max_by(|a, b| a.gap().total_cmp(&b.gap()));
        let mut sentence = format!("`{file}` states {} checkable figures: the runs reproduce {rep}, contradict {con}, and cannot back {cant}", rep + con + cant);
        if let Some(w) = worst {
            sentence.push_str(&format!("; it says {} where {}", w.text, w.data));
        }
        sentence.push('.');
        let mut f = Finding::new(Kind::Claims, sentence, 350.0 + 40.0 * con.min(5) as f64);
        f.headline = con > 0;
        for c in cs.iter().filter(|c| c.verdict != "reproduced").take(6) {
            f.evidence.push(format!("{} ({}): \"{}\" — {}", c.verdict, c.line, c.context, c.data));
        }
        f.files = vec![file.to_string()];
        out.push(f.with("file", file));
    }
}

fn duplicates(s: &Study, out: &mut Vec<Finding>) {
    let copies: Vec<(String, String)> =
        s.files.iter().filter_map(|f| f.copy_of.clone().map(|o| (f.path.clone(), o))).collect();
    let same = s.duplicates.len();
    let unreadable: Vec<&crate::analysis::scan::FileEntry> =
        s.files.iter().filter(|f| f.status.starts_with("cannot be read")).collect();
    if !copies.is_empty() || same > 0 {
        let mut f = Finding::new(
            Kind::Duplicates,
            format!(
                "{} files repeat data held elsewhere ({} byte-for-byte copies, {} with the same runs in another file or format); each is counted once.",
                copies.len() + same,
                copies.len(),
                same
            ),
            200.0,
        );
        f.headline = false;
        for (a, b) in &copies {
            f.evidence.push(format!("{a} = {b}"));
        }
        for d in &s.duplicates {
            f.evidence.push(format!("{} has the runs of {}", d.file, d.of));
        }
        out.push(f);
    }
    if !unreadable.is_empty() {
        let mut f = Finding::new(
            Kind::Failures,
            format!(
                "{} file{} could not be read and {} left out: {}.",
                unreadable.len(),
                if unreadable.len() == 1 { "" } else { "s" },
                if unreadable.len() == 1 { "is" } else { "are" },
                files_text(&unreadable.iter().map(|f| f.path.clone()).collect::<Vec<_>>())
            ),
            180.0,
        );
        f.headline = false;
        for u in unreadable {
            f.evidence.push(format!("{}: {}", u.path, u.status));
        }
        out.push(f);
    }
}
