//! Report rendering: the Markdown shapes users of the original know, built on the findings —
//! the Executive Summary is the top findings, Key Findings all of them with their evidence,
//! Recommendations and Risks follow from them — with the computed tables, the model's grounded
//! narrative where it passed the check, metrics from the engine's timing records, and the SVG
//! chart of per-call throughput and TTFT.

use super::advice;
use super::findings::{p_text, pct, Finding};
use super::grounding::Unverified;
use super::ingest::Facts;
use super::narrative::{COLLECTOR_PERSONA, INSIGHT_PERSONA};
use super::{facts_text, fmt, Analysis, Delta, LlmCall, Stat};
use std::fmt::Write as _;

/// Wall-clock seconds of the workflow stages.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Workflow {
    pub ingest_seconds: f64,
    pub analysis_seconds: f64,
    pub report_seconds: f64,
    pub total_seconds: f64,
}

/// What every report of one analysis shares.
pub struct Context<'a> {
    pub facts: &'a Facts,
    pub findings: &'a [Finding],
    pub model: &'a str,
    pub date: &'a str,
    pub workflow: &'a Workflow,
}

/// Findings the Executive Summary lists.
pub const SUMMARY_FINDINGS: usize = 5;

fn ms(x: f64) -> String {
    format!("{x:.2}")
}

fn stat_line(s: &Stat, unit: &str) -> String {
    let unit = if unit.is_empty() { String::new() } else { format!(" {unit}") };
    let mut t = format!("{} ± {}{unit} (n = {})", fmt(round2(s.mean)), fmt(round2(s.sd)), s.n);
    if let Some((lo, hi)) = s.ci95 {
        let _ = write!(t, ", 95 % CI [{}, {}]", fmt(round2(lo)), fmt(round2(hi)));
    }
    if let Some(cv) = s.cv_percent {
        let _ = write!(t, ", CV {} %", fmt(round2(cv)));
    }
    t
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The technical report for one analysis (the last run's model text).
pub fn render_report(c: &Context, a: &Analysis, unverified: &[Unverified]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Technical Report: {} Analysis\n", a.label);
    let _ = writeln!(s, "**Date:** {}  ", c.date);
    let _ = writeln!(s, "**Model:** {}  ", c.model);
    let _ = writeln!(s, "**Agent Type:** {} (DataCollector-9000 → InsightAgent)  ", a.label);
    let _ = writeln!(s, "**Configuration:** {}\n\n---\n", a.configuration);
    let last = a.runs.last().cloned().unwrap_or_default();
    executive_summary(&mut s, c, a, &last.insight);
    ingestion(&mut s, c.facts, &last.inventory, a);
    performance(&mut s, c);
    key_findings(&mut s, c.findings, &last.commentary);
    recommendations(&mut s, c.findings);
    appendix(&mut s, a, unverified);
    let t = &c.facts.files;
    let w = c.workflow;
    let _ = writeln!(s, "---\n\n## Workflow Summary\n");
    let _ = writeln!(
        s,
        "- Files analyzed: {} ({} csv, {} json, {} md)",
        t.total, t.by_type.csv, t.by_type.json, t.by_type.md
    );
    let _ = writeln!(s, "- Findings: {} (computed, no model)", c.findings.len());
    let _ = writeln!(
        s,
        "- Execution time: {:.2} s total (ingest {:.2} s | analysis {:.2} s | report {:.2} s)\n",
        w.total_seconds, w.ingest_seconds, w.analysis_seconds, w.report_seconds
    );
    let _ = writeln!(s, "### Data Summary\n\n```text\n{}```\n", facts_text(c.facts));
    render_metrics(&mut s, a);
    let _ = writeln!(
        s,
        "## Persona Prompt\n\n```text\n{COLLECTOR_PERSONA}\n```\n\n```text\n{INSIGHT_PERSONA}\n```"
    );
    s
}

fn executive_summary(s: &mut String, c: &Context, a: &Analysis, model_summary: &str) {
    let _ = writeln!(s, "## Executive Summary\n");
    let _ = writeln!(s, "_Every number and conclusion in this list is computed from the artifacts; F-numbers refer to Key Findings._\n");
    if c.findings.is_empty() {
        let _ = writeln!(s, "The artifacts support no finding.\n");
    }
    for (i, f) in c.findings.iter().take(SUMMARY_FINDINGS).enumerate() {
        let _ = writeln!(s, "{}. **{} ({}).** {}", i + 1, f.id, f.kind.label(), f.sentence);
    }
    let _ = writeln!(s);
    let rejected = a
        .rejected
        .iter()
        .any(|r| r.stage == "insight" && Some(r.run_number) == a.runs.last().map(|x| x.run_number));
    let note = format!(
        "**Model summary** ({}, decoded under a grammar that admits only the findings' numbers and the facts' names):",
        c.model
    );
    if !model_summary.is_empty() {
        let _ = writeln!(s, "{note}\n\n> {}\n", model_summary.replace('\n', " "));
    } else if rejected {
        let _ = writeln!(s, "{note} it failed the grounding check and is in the Appendix; the computed findings above stand.\n");
    } else {
        let _ = writeln!(s, "{note} the model wrote none.\n");
    }
}

fn ingestion(s: &mut String, facts: &Facts, inventory: &str, a: &Analysis) {
    let _ = writeln!(s, "## Data Ingestion Summary\n");
    if !inventory.is_empty() {
        let _ = writeln!(s, "The collector's inventory (model text, grounded):\n\n{inventory}\n");
    } else if a.rejected.iter().any(|r| r.stage == "collector") {
        let _ = writeln!(s, "_The collector's inventory failed the grounding check (see the Appendix); the computed inventory follows._\n");
    }
    let t = &facts.files;
    let lm = &facts.latest_modified;
    let _ = writeln!(s, "| Type | Files | Latest modified (UTC) |\n|---|---|---|");
    for (k, n, l) in [
        ("csv", t.by_type.csv, &lm.csv),
        ("json", t.by_type.json, &lm.json),
        ("md", t.by_type.md, &lm.md),
    ] {
        let _ = writeln!(s, "| {k} | {n} | {} |", l.as_deref().unwrap_or("-"));
    }
    let _ = writeln!(
        s,
        "\n{} artifacts, {} bytes; {} other files ignored; {} skipped; {} unreadable.",
        t.total,
        t.bytes,
        t.ignored,
        t.skipped.len(),
        t.unreadable.len()
    );
    let span = |x: &Option<(String, String)>| {
        x.as_ref().map_or("none".into(), |(a, b)| format!("{a} to {b}"))
    };
    let ts = &facts.time_span;
    let _ = writeln!(
        s,
        "Time span: {} by {} stamps inside the data, {} by {} stamps in file and folder names; file mtimes {} (a checkout resets them).",
        span(&ts.data),
        ts.data_stamps,
        span(&ts.names),
        ts.name_stamps,
        span(&ts.mtimes)
    );
    for u in &t.unreadable {
        let _ = writeln!(s, "- unreadable: `{}` ({})", u.path, u.reason);
    }
    for w in &facts.twins {
        let _ = writeln!(s, "- counted once: `{}` repeats `{}` ({})", w.file, w.of, w.relation);
    }
    let _ = writeln!(s);
}

fn performance(s: &mut String, c: &Context) {
    let facts = c.facts;
    let _ = writeln!(s, "## Performance Analysis\n\n_Every table in this section is computed from the artifacts, not written by the model._\n");
    let cmp: Vec<&Finding> = c.findings.iter().filter(|f| f.comparison.is_some()).collect();
    if !cmp.is_empty() {
        let _ = writeln!(s, "### Comparisons\n\n| Finding | Metric | Baseline | Candidate | Change | 95 % CI | Welch | Mann–Whitney | Verdict |\n|---|---|---|---|---|---|---|---|---|");
        for f in cmp {
            let Some(x) = &f.comparison else { continue };
            let side = |y: &super::findings::Side| {
                format!("{}: {} (n = {})", cell(&y.label), super::findings::num(y.mean), y.n)
            };
            let ci = x
                .ci95_percent
                .map_or("-".into(), |(lo, hi)| format!("{} % to {} %", pct(lo), pct(hi)));
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} % | {ci} | {} | {} | {} |",
                f.id,
                cell(&x.metric),
                side(&x.baseline),
                side(&x.candidate),
                pct(x.change_percent),
                x.welch.map_or("-".into(), |w| p_text(w.p)),
                x.mann_whitney.map_or("-".into(), |m| p_text(m.p)),
                f.kind.label()
            );
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "### Measurements\n\n| File | Column | Unit | n | Failed | Missing | Mean | SD | Min | Max | p50 | p95 |\n|---|---|---|---|---|---|---|---|---|---|---|---|");
    for x in &facts.series {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            x.file,
            cell(&x.column),
            x.unit.as_deref().unwrap_or("-"),
            x.n,
            x.n_failed,
            x.n_null,
            fmt(x.mean),
            fmt(x.sd),
            fmt(x.min),
            fmt(x.max),
            fmt(x.p50),
            fmt(x.p95)
        );
    }
    if !facts.sweeps.is_empty() {
        let _ = writeln!(s, "\n### Parameter sweeps\n\n| File | Configs | Best throughput | Worst throughput | Best TTFT | Worst TTFT | Spread |\n|---|---|---|---|---|---|---|");
        let cv = |c: &Option<super::ingest::ConfigValue>| {
            c.as_ref().map_or("-".into(), |c| format!("{} ({})", fmt(c.value), c.config))
        };
        for w in &facts.sweeps {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                w.file,
                w.configs,
                cv(&w.best_throughput),
                cv(&w.worst_throughput),
                cv(&w.best_ttft),
                cv(&w.worst_ttft),
                w.throughput_spread.map_or("-".into(), fmt),
            );
        }
    }
    if !facts.gaps.is_empty() {
        let _ = writeln!(s, "\n### Gaps\n");
        for g in &facts.gaps {
            let _ = writeln!(s, "- `{}`: {} ({})", g.path, g.kind, g.detail);
        }
    }
    let _ = writeln!(s);
}

fn key_findings(s: &mut String, found: &[Finding], commentary: &[(String, String)]) {
    let _ = writeln!(s, "## Key Findings\n");
    if found.is_empty() {
        let _ = writeln!(s, "The artifacts support no finding.\n");
    }
    for f in found {
        let _ = writeln!(s, "### {} · {}\n\n{}\n", f.id, f.kind.label(), f.sentence);
        let _ = writeln!(s, "- Evidence: {}", f.evidence);
        if !f.files.is_empty() {
            let files: Vec<String> = f.files.iter().map(|x| format!("`{x}`")).collect();
            let _ = writeln!(s, "- Files: {}", files.join(", "));
        }
        if let Some((_, c)) = commentary.iter().find(|(id, _)| *id == f.id) {
            let _ = writeln!(s, "- Commentary (model, grounded): {c}");
        }
        let _ = writeln!(s);
    }
}

fn recommendations(s: &mut String, found: &[Finding]) {
    let _ = writeln!(s, "## Recommendations\n");
    let recs = advice::recommendations(found);
    if recs.is_empty() {
        let _ = writeln!(s, "The findings call for no change.\n");
    }
    for (i, r) in recs.iter().enumerate() {
        let _ = writeln!(s, "{}. {} (rests on {})", i + 1, r.text, r.rests_on.join(", "));
    }
    let _ = writeln!(s, "\n## Risks and Mitigations\n");
    let risks = advice::risks(found);
    if risks.is_empty() {
        let _ = writeln!(s, "The findings show no risk.\n");
        return;
    }
    let _ = writeln!(s, "| Risk | Mitigation | Rests on |\n|---|---|---|");
    for r in risks {
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            cell(&r.risk),
            cell(&r.mitigation),
            r.rests_on.join(", ")
        );
    }
    let _ = writeln!(s);
}

fn appendix(s: &mut String, a: &Analysis, unverified: &[Unverified]) {
    let _ = writeln!(s, "## Appendix\n\n### Model text that failed the grounding check\n");
    let last = a.runs.last().map_or(0, |r| r.run_number);
    let rejected: Vec<_> = a.rejected.iter().filter(|r| r.run_number == last).collect();
    if rejected.is_empty() {
        let _ = writeln!(s, "None: all model text in the body passed the check.\n");
    }
    for r in rejected {
        let mut why: Vec<String> = r
            .unverified
            .iter()
            .map(|u| format!("`{}` matches nothing in the facts", u.text))
            .collect();
        why.extend(r.contradiction.clone());
        let about = r.finding.as_deref().map_or(String::new(), |f| format!(" on {f}"));
        let _ = writeln!(
            s,
            "- {}{about}: \"{}\" — {}",
            r.stage,
            r.text.replace('\n', " "),
            why.join("; ")
        );
    }
    let _ = writeln!(s, "\n### Unverified figures\n");
    if unverified.is_empty() {
        let _ = writeln!(s, "None: every number and date in the model-written text matches the facts or the measured metrics.\n");
    } else {
        let _ = writeln!(s, "{} figure(s) in the model-written text match nothing in the facts or the measured metrics:\n", unverified.len());
        for u in unverified {
            let _ = writeln!(s, "- `{}` in \"{}\"", u.text, u.context.replace('|', "\\|"));
        }
        s.push('\n');
    }
}

fn render_metrics(s: &mut String, a: &Analysis) {
    let m = &a.aggregate_metrics;
    let _ = writeln!(s, "## Metrics\n");
    if let Some(c) = &a.concurrency {
        let _ = writeln!(
            s,
            "The {} runs ran side by side, their calls sharing each forward: {:.2} s; the same calls (same prompts, grammars and seeds) replayed one after another took {:.2} s, so side by side was {:.2}× as fast (measured; the replay's tokens {} the side-by-side ones).\n",
            c.runs,
            c.batched_seconds,
            c.sequential_seconds,
            c.speedup,
            if c.identical { "equal" } else { "differ from" }
        );
    }
    let _ = writeln!(s, "Measured by the engine on the warm calls (the warm-up call is reported as the cold start and kept out):\n");
    let _ = writeln!(
        s,
        "- Prompt tokens: {} evaluated, {} reused from the cache (the shared block of facts and findings)",
        m.sum_prompt_eval_count, m.sum_prompt_cached_count
    );
    let _ = writeln!(
        s,
        "- Throughput: {} tok/s (mean ± sample sd of eval_count / eval_duration per call)",
        ms(m.throughput.mean)
    );
    let _ = writeln!(
        s,
        "- TTFT: {} ms (mean; request start to the first token sampled)",
        ms(m.ttft_ms.mean)
    );
    let _ =
        writeln!(s, "- Total Duration: {} ms (sum of total_duration)", ms(m.sum_total_duration_ms));
    let _ = writeln!(s, "- Tokens Generated: {} (sum of eval_count)", m.sum_tokens_generated);
    let _ = writeln!(
        s,
        "- Prompt Eval: {} ms (sum of prompt_eval_duration)",
        ms(m.sum_prompt_eval_duration_ms)
    );
    let _ =
        writeln!(s, "- Eval Duration: {} ms (sum of eval_duration)", ms(m.sum_eval_duration_ms));
    let _ =
        writeln!(s, "- Load Duration: {} ms (sum of load_duration)", ms(m.sum_load_duration_ms));
    if let Some(w) = a.llm_calls.iter().find(|c| c.stage == "warmup") {
        let _ = writeln!(
            s,
            "- Cold start (warm-up call): TTFT {} ms, of which load {} ms",
            ms(w.metrics.ttft_ms),
            ms(w.metrics.load_duration_ms)
        );
    }
    let _ = writeln!(
        s,
        "- Statistics: throughput {}; TTFT {}",
        stat_line(&m.throughput, "tok/s"),
        stat_line(&m.ttft_ms, "ms")
    );
    if m.failed_calls > 0 {
        let _ = writeln!(s, "- Failed or zero-token calls (excluded): {}", m.failed_calls);
    }
    let _ = writeln!(s, "\n| Run | Stage | Prompt eval / cached | TTFT (ms) | Throughput (tok/s) | Tokens | Duration (ms) | Failed |\n|---|---|---|---|---|---|---|---|");
    for c in &a.llm_calls {
        let stage = c.finding.as_ref().map_or(c.stage.clone(), |f| format!("{} {f}", c.stage));
        let _ = writeln!(
            s,
            "| {} | {stage} | {} / {} | {} | {} | {} | {} | {} |",
            c.run_number,
            c.metrics.prompt_eval_count,
            c.metrics.prompt_cached_count,
            ms(c.metrics.ttft_ms),
            ms(c.metrics.throughput_tokens_per_sec),
            c.metrics.tokens_generated,
            ms(c.metrics.total_duration_ms),
            if c.failed { "yes" } else { "no" }
        );
    }
    s.push('\n');
}

/// The Baseline-vs-options comparison report.
pub fn render_comparison(
    base: &Analysis,
    opt: &Analysis,
    d: &Delta,
    model: &str,
    date: &str,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Comparison Report: Baseline vs {}\n\n**Date:** {date}  \n**Model:** {model}\n",
        opt.label
    );
    let _ = writeln!(
        s,
        "## Configuration Details\n\n- Baseline: {}\n- {}: {}\n",
        base.configuration, opt.label, opt.configuration
    );
    let (b, o) = (&base.aggregate_metrics, &opt.aggregate_metrics);
    let _ = writeln!(
        s,
        "## Aggregate Performance\n\n| Metric | Baseline | {} | Δ |\n|---|---|---|---|",
        opt.label
    );
    let _ = writeln!(
        s,
        "| Throughput (tok/s) | {} | {} | {} |",
        stat_line(&b.throughput, ""),
        stat_line(&o.throughput, ""),
        ms(d.throughput_delta_absolute)
    );
    let _ = writeln!(
        s,
        "| TTFT (ms) | {} | {} | {} |",
        stat_line(&b.ttft_ms, ""),
        stat_line(&o.ttft_ms, ""),
        ms(d.ttft_delta_absolute_ms)
    );
    let _ = writeln!(
        s,
        "| Tokens generated (sum) | {} | {} | |",
        b.sum_tokens_generated, o.sum_tokens_generated
    );
    let _ = writeln!(s, "| Failed calls | {} | {} | |\n", b.failed_calls, o.failed_calls);
    let _ = writeln!(s, "## Conclusion\n\n{}\n", d.conclusion);
    s
}

/// An SVG bar chart of per-call throughput (tok/s) and TTFT (ms).
pub fn svg_chart(calls: &[LlmCall]) -> String {
    let (w, h, pad) = (640.0, 200.0, 40.0);
    let n = calls.len().max(1) as f64;
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">\n", 2.0 * h + 20.0);
    let panel = |s: &mut String, y0: f64, title: &str, vals: Vec<f64>, color: &str| {
        let max = vals.iter().copied().fold(0f64, f64::max).max(1e-9);
        let _ = writeln!(
            s,
            "<text x=\"{pad}\" y=\"{}\">{title} (max {})</text>",
            y0 + 14.0,
            fmt(round2(max))
        );
        let bw = (w - 2.0 * pad) / n;
        for (i, v) in vals.iter().enumerate() {
            let bh = (h - 2.0 * pad) * v / max;
            let x = pad + i as f64 * bw;
            let y = y0 + h - pad - bh;
            let _ = writeln!(s, "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{color}\"><title>{}</title></rect>", bw * 0.8, fmt(round2(*v)));
            let _ = writeln!(
                s,
                "<text x=\"{x:.1}\" y=\"{:.1}\">{}</text>",
                y0 + h - pad + 12.0,
                calls[i].stage.chars().next().unwrap_or('?')
            );
        }
    };
    panel(
        &mut s,
        0.0,
        "Throughput, tok/s per call",
        calls.iter().map(|c| c.metrics.throughput_tokens_per_sec).collect(),
        "#4c78a8",
    );
    panel(
        &mut s,
        h + 10.0,
        "TTFT, ms per call",
        calls.iter().map(|c| c.metrics.ttft_ms).collect(),
        "#f58518",
    );
    s.push_str("</svg>\n");
    s
}
