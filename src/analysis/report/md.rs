//! The Markdown report.

use super::{chart_experiments, summary_items, Extra};
use crate::analysis::design::Role;
use crate::analysis::findings::Finding;
use crate::analysis::fmt;
use crate::analysis::Study;
use std::fmt::Write as _;

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The whole report; `charts` names the SVG files written beside it (experiment id → file).
pub fn markdown(s: &Study, x: &Extra, charts: &[(String, String)]) -> String {
    let mut out = String::new();
    let title = if x.title.is_empty() { "Technical Report: Benchmark Analysis" } else { &x.title };
    let _ = writeln!(out, "# {title}\n");
    let (data, read) = s.counts();
    let _ = writeln!(out, "**Folder:** `{}`  ", s.root);
    for (k, v) in &x.header {
        let _ = writeln!(out, "**{k}:** {v}  ");
    }
    let span = s
        .span
        .map(|(a, b)| format!("{} to {}", crate::stamp::date(a), crate::stamp::date(b)))
        .unwrap_or_else(|| "not recorded".into());
    let _ = writeln!(
        out,
        "**Data:** {} files read, {} of them with runs; {} runs, {} valid; {} experiments; runs dated {}\n\n---\n",
        read,
        data,
        s.records,
        s.valid,
        s.experiments.len(),
        span
    );
    executive_summary(&mut out, s, x);
    compared(&mut out, s);
    key_findings(&mut out, s, x);
    data_quality(&mut out, s);
    if !charts.is_empty() {
        let _ = writeln!(out, "## Charts\n");
        for (id, file) in charts {
            let title = s.experiment(id).map(|(e, _)| e.title()).unwrap_or_default();
            let _ = writeln!(out, "![{id}: {}]({file})\n", cell(&title));
        }
    }
    appendix(&mut out, s, x);
    out
}

fn executive_summary(out: &mut String, s: &Study, x: &Extra) {
    let _ = writeln!(out, "## Executive Summary\n");
    let _ = writeln!(
        out,
        "_Every number here is computed from the runs; F-numbers refer to the Key Findings._\n"
    );
    let items = summary_items(s);
    if items.is_empty() {
        let _ = writeln!(out, "The folder holds no runs that support a finding.\n");
    }
    for (i, f) in items.iter().enumerate() {
        let _ = writeln!(out, "{}. **{} ({}).** {}", i + 1, f.id, f.kind.label(), f.sentence);
    }
    let _ = writeln!(out);
    match (&x.summary, &x.summary_note) {
        (Some(t), _) => {
            let _ = writeln!(out, "> {}\n", t.replace('\n', " "));
        }
        (None, Some(n)) => {
            let _ = writeln!(out, "_{n}_\n");
        }
        _ => {}
    }
}

fn compared(out: &mut String, s: &Study) {
    let _ = writeln!(out, "## What Was Compared\n");
    let _ = writeln!(
        out,
        "_Each experiment is one measure over the settings that vary in one benchmark; models, builds and machines are never pooled. The experiments the Key Findings rest on:_\n"
    );
    let _ = writeln!(out, "| Experiment | Benchmark | Measure | Design | Varies (levels) | Held fixed | Runs | Runs per cell |\n|---|---|---|---|---|---|---|---|");
    let mut used: Vec<&String> = s.key_findings().iter().flat_map(|f| &f.experiments).collect();
    used.sort_by_key(|id| id.trim_start_matches('E').parse::<usize>().unwrap_or(0));
    used.dedup();
    for id in used.iter().take(25) {
        let Some((e, a)) = s.experiment(id) else { continue };
        let varies: Vec<String> = e
            .factors
            .iter()
            .map(|f| {
                let role = match f.role {
                    Role::Treatment => "",
                    Role::Block => ", workload",
                    Role::Session => ", session",
                };
                format!("`{}` ({}{role})", f.name, f.levels.len())
            })
            .collect();
        let held: Vec<String> = e.held.iter().take(4).map(|(k, v)| format!("{k} = {v}")).collect();
        let unit = e.def.unit();
        let _ = writeln!(
            out,
            "| {} | `{}` | `{}`{} | {} | {} | {}{} | {} | {}–{} |",
            e.id,
            cell(&s.families[e.family].name),
            cell(&e.measure),
            if unit.is_empty() { String::new() } else { format!(" ({unit})") },
            a.design,
            if varies.is_empty() { "-".into() } else { varies.join(", ") },
            cell(&held.join(", ")),
            if e.held.len() > 4 { ", …" } else { "" },
            a.n,
            a.reps.0,
            a.reps.1
        );
    }
    if used.len() > 25 {
        let _ = writeln!(out, "\n{} more in Appendix A.", used.len() - 25);
    }
    let _ = writeln!(out);
}

fn key_findings(out: &mut String, s: &Study, x: &Extra) {
    let _ = writeln!(out, "## Key Findings\n");
    for f in s.key_findings() {
        finding(out, f, x);
    }
}

fn finding(out: &mut String, f: &Finding, x: &Extra) {
    let _ = writeln!(out, "### {} · {}\n\n{}\n", f.id, f.kind.label(), f.sentence);
    for e in &f.evidence {
        let _ = writeln!(out, "- {}", e);
    }
    if !f.files.is_empty() {
        let shown: Vec<String> = f.files.iter().take(4).map(|p| format!("`{p}`")).collect();
        let more = if f.files.len() > 4 {
            format!(" and {} more", f.files.len() - 4)
        } else {
            String::new()
        };
        let _ = writeln!(out, "- Files: {}{more}", shown.join(", "));
    }
    if let Some((_, t)) = x.notes.iter().find(|(id, _)| *id == f.id) {
        let _ = writeln!(
            out,
            "- Action (model, under a grammar that admits only this finding's names): {t}"
        );
    }
    let _ = writeln!(out);
}

fn data_quality(out: &mut String, s: &Study) {
    let _ = writeln!(out, "## Data Quality\n");
    if !s.failures.is_empty() {
        let _ = writeln!(
            out,
            "Failed and suspect runs by root cause (none of them enters a comparison):\n"
        );
        let _ = writeln!(
            out,
            "| Root cause | Runs | Reported success | Files | Example |\n|---|---|---|---|---|"
        );
        for g in &s.failures {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                cell(&g.cause),
                g.count,
                g.reported_success,
                g.files.len(),
                cell(&g.example)
            );
        }
        let _ = writeln!(out);
    }
    let copies: Vec<_> = s.files.iter().filter(|f| f.copy_of.is_some()).collect();
    if !copies.is_empty() || !s.duplicates.is_empty() {
        let _ = writeln!(out, "Counted once:\n");
        for f in copies {
            let _ = writeln!(
                out,
                "- `{}` is a byte-for-byte copy of `{}`",
                f.path,
                f.copy_of.as_deref().unwrap_or("")
            );
        }
        for d in &s.duplicates {
            let _ = writeln!(out, "- `{}`: {} of `{}`", d.file, d.relation, d.of);
        }
        let _ = writeln!(out);
    }
    let unread: Vec<_> = s
        .files
        .iter()
        .filter(|f| f.status.starts_with("cannot") || f.status.starts_with("skipped"))
        .collect();
    if !unread.is_empty() {
        let _ = writeln!(out, "Not read:\n");
        for f in unread {
            let _ = writeln!(out, "- `{}`: {}", f.path, f.status);
        }
        let _ = writeln!(out);
    }
    let disputed: Vec<_> = s.claims.iter().filter(|c| c.verdict == "contradicted").collect();
    if !s.claims.is_empty() {
        let rep = s.claims.iter().filter(|c| c.verdict == "reproduced").count();
        let cant = s.claims.iter().filter(|c| c.verdict == "cannot be backed").count();
        let _ = writeln!(
            out,
            "The folder's reports state {} figures with a rate or time unit: the runs reproduce {rep}, contradict {}, and cannot back {cant} (every one in Appendix D).\n",
            s.claims.len(),
            disputed.len()
        );
        if !disputed.is_empty() {
            let _ = writeln!(out, "| Report | Where | It says | The runs say |\n|---|---|---|---|");
            for c in disputed.iter().take(15) {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} |",
                    c.file,
                    c.line,
                    cell(&c.text),
                    cell(&c.data)
                );
            }
            let _ = writeln!(out);
        }
    }
}

fn appendix(out: &mut String, s: &Study, x: &Extra) {
    let _ = writeln!(out, "---\n\n## Appendix\n");
    let _ = writeln!(out, "### A. Every experiment\n\n| Experiment | Measure | Design | Factors | Runs | Effects (test, p) |\n|---|---|---|---|---|---|");
    for (e, a) in s.experiments.iter().zip(&s.analyses) {
        let eff: Vec<String> = a
            .effects
            .iter()
            .map(|f| format!("{} {}", f.name, f.p.map_or("untested".into(), fmt::p)))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            e.id,
            cell(&e.title()),
            a.design,
            e.factors.len(),
            a.n,
            cell(&eff.join("; "))
        );
    }
    let _ = writeln!(out, "\n### B. Measurement catalogue\n\n_Also in `catalogue.csv` and `metrics.json`._\n\n| Benchmark | Measure | n | Missing | Mean | SD | Min | Max | CV |\n|---|---|---|---|---|---|---|---|---|");
    for r in &s.catalogue {
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} | {} | {} | {} | {} | {} | {} |",
            cell(&r.family),
            cell(&r.measure),
            r.n,
            r.missing,
            fmt::value(r.mean, &r.unit),
            fmt::value(r.sd, &r.unit),
            fmt::value(r.min, &r.unit),
            fmt::value(r.max, &r.unit),
            r.cv_percent.map_or("-".into(), |c| format!("{} %", fmt::sig(c, 3)))
        );
    }
    let _ = writeln!(out, "\n### C. Outliers\n");
    if s.outliers.is_empty() {
        let _ = writeln!(out, "No run stands beyond a modified z-score of 3.5 within its cell (cells of four runs or more).\n");
    } else {
        let _ = writeln!(
            out,
            "| Experiment | Run | Value | Cell median | Modified z |\n|---|---|---|---|---|"
        );
        for o in s.outliers.iter().take(50) {
            let _ = writeln!(
                out,
                "| {} | `{}` {} | {} | {} | {} |",
                o.experiment,
                o.file,
                o.locator,
                fmt::num(o.value),
                fmt::num(o.cell_median),
                fmt::sig(o.z, 3)
            );
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "### D. Report figures checked\n");
    if s.claims.is_empty() {
        let _ =
            writeln!(out, "No report in the folder states a figure with a rate or time unit.\n");
    } else {
        let _ = writeln!(
            out,
            "| Report | Where | Figure | Verdict | The runs |\n|---|---|---|---|---|"
        );
        for c in &s.claims {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                c.file,
                c.line,
                cell(&c.text),
                c.verdict,
                cell(&c.data)
            );
        }
        let _ = writeln!(out);
    }
    let rest = &s.findings[s.key_count.min(s.findings.len())..];
    if !rest.is_empty() {
        let _ = writeln!(out, "### E. Further findings\n");
        for f in rest {
            let _ = writeln!(out, "- **{} ({}).** {}", f.id, f.kind.label(), f.sentence);
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "### F. Files\n\n| File | Read as | Runs | Status |\n|---|---|---|---|");
    for f in &s.files {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            cell(&f.path),
            cell(&f.formats.join(", ")),
            f.records,
            cell(&f.status)
        );
    }
    let _ = writeln!(out);
    for (i, (t, body)) in x.appendix.iter().enumerate() {
        let _ = writeln!(out, "### {}. {t}\n\n{body}\n", (b'G' + i as u8) as char);
    }
    let _ = chart_experiments;
}
