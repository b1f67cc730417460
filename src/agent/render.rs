//! Report rendering: the Markdown shapes users of the original know, with tables from the facts and
//! metrics from the engine's timing records; and the SVG chart of per-call throughput and TTFT.

use super::grounding::Unverified;
use super::ingest::Facts;
use super::{facts_text, fmt, Analysis, Delta, LlmCall, Stat, COLLECTOR_PERSONA, INSIGHT_PERSONA};
use std::fmt::Write as _;

/// Wall-clock seconds of the workflow stages.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Workflow {
    pub ingest_seconds: f64,
    pub analysis_seconds: f64,
    pub report_seconds: f64,
    pub total_seconds: f64,
}

const SECTIONS: [(&str, &[&str]); 4] = [
    ("Executive Summary", &["executive summary", "summary"]),
    ("Key Findings", &["key findings", "findings"]),
    ("Recommendations", &["recommendation"]),
    ("Risks", &["risk"]),
];

/// Splits model text at headings naming the four sections; text before any heading is summary.
fn split_sections(text: &str) -> [String; 4] {
    let mut out: [String; 4] = Default::default();
    let mut cur = 0;
    for line in text.lines() {
        let l = line.trim().trim_start_matches(['#', '*', ' ']).to_ascii_lowercase();
        let is_heading = line.trim_start().starts_with('#')
            || line.trim_start().starts_with("**")
            || l.len() < 40;
        let hit = SECTIONS.iter().position(|(_, keys)| {
            keys.iter().any(|k| {
                l.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == ' ')
                    .starts_with(k)
            })
        });
        match hit {
            Some(i) if is_heading => cur = i,
            _ => {
                out[cur].push_str(line);
                out[cur].push('\n');
            }
        }
    }
    out.map(|s| s.trim().to_string())
}

fn or_note(s: &str) -> String {
    if s.is_empty() {
        "_The model wrote no separate section here; see the Executive Summary._".into()
    } else {
        s.to_string()
    }
}

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

/// The technical report for one analysis (the last run's agent text).
pub fn render_report(
    facts: &Facts,
    a: &Analysis,
    model: &str,
    date: &str,
    workflow: &Workflow,
    unverified: &[Unverified],
) -> String {
    let last = a.runs.last();
    let inventory = last.map_or("", |r| r.inventory.as_str());
    let [summary, findings, recs, risks] = split_sections(last.map_or("", |r| r.insight.as_str()));
    let mut s = String::new();
    let _ = writeln!(s, "# Technical Report: {} Analysis\n", a.label);
    let _ = writeln!(s, "**Date:** {date}  ");
    let _ = writeln!(s, "**Model:** {model}  ");
    let _ = writeln!(s, "**Agent Type:** {} (DataCollector-9000 → InsightAgent)  ", a.label);
    let _ = writeln!(s, "**Configuration:** {}\n\n---\n", a.configuration);
    let _ = writeln!(s, "## Executive Summary\n\n{}\n", or_note(&summary));
    let _ = writeln!(s, "## Data Ingestion Summary\n\n{}\n", or_note(inventory));
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
    for u in &t.unreadable {
        let _ = writeln!(s, "- unreadable: `{}` ({})", u.path, u.reason);
    }
    let _ = writeln!(s, "\n## Performance Analysis\n\n_Every table in this section is computed from the artifacts, not written by the model._\n");
    let _ = writeln!(s, "### Measurements\n\n| File | Column | Unit | n | Failed | Mean | SD | Min | Max | p50 | p95 |\n|---|---|---|---|---|---|---|---|---|---|---|");
    for x in &facts.series {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            x.file,
            x.column,
            x.unit.as_deref().unwrap_or("-"),
            x.n,
            x.n_failed,
            fmt(x.mean),
            fmt(x.sd),
            fmt(x.min),
            fmt(x.max),
            fmt(x.p50),
            fmt(x.p95)
        );
    }
    if !facts.sweeps.is_empty() {
        let _ = writeln!(s, "\n### Parameter sweeps\n\n| File | Configs | Best throughput | Worst throughput | Best TTFT | Worst TTFT | Spread | Beyond run-to-run noise |\n|---|---|---|---|---|---|---|---|");
        let cv = |c: &Option<super::ingest::ConfigValue>| {
            c.as_ref().map_or("-".into(), |c| format!("{} ({})", fmt(c.value), c.config))
        };
        for w in &facts.sweeps {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                w.file,
                w.configs,
                cv(&w.best_throughput),
                cv(&w.worst_throughput),
                cv(&w.best_ttft),
                cv(&w.worst_ttft),
                w.throughput_spread.map_or("-".into(), fmt),
                w.spread_exceeds_noise.map_or("unknown (no repeats)", |b| if b {
                    "yes"
                } else {
                    "no"
                })
            );
        }
    }
    if !facts.cold_starts.is_empty() {
        let _ = writeln!(s, "\n### Cold and warm starts\n\n| File | Cold rows | Cold mean TTFT | Warm rows | Warm mean TTFT |\n|---|---|---|---|---|");
        for c in &facts.cold_starts {
            let o = |x: Option<f64>| x.map_or("-".into(), fmt);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                c.file,
                c.cold_rows,
                o(c.cold_mean_ttft),
                c.warm_rows,
                o(c.warm_mean_ttft)
            );
        }
    }
    if !facts.gaps.is_empty() {
        let _ = writeln!(s, "\n### Gaps\n");
        for g in &facts.gaps {
            let _ = writeln!(s, "- `{}`: {} ({})", g.path, g.kind, g.detail);
        }
    }
    let _ = writeln!(s, "\n## Key Findings\n\n{}\n", or_note(&findings));
    let _ = writeln!(s, "## Recommendations\n\n{}\n", or_note(&recs));
    let _ = writeln!(s, "## Appendix\n\n### Risks and mitigations\n\n{}\n", or_note(&risks));
    let _ = writeln!(s, "### Unverified figures\n");
    if unverified.is_empty() {
        let _ = writeln!(s, "Every number and date in the model-written text matches the facts or the measured metrics.\n");
    } else {
        let _ = writeln!(s, "{} figure(s) in the model-written text match nothing in the facts or the measured metrics:\n", unverified.len());
        for u in unverified {
            let _ = writeln!(s, "- `{}` in \"{}\"", u.text, u.context.replace('|', "\\|"));
        }
        s.push('\n');
    }
    let _ = writeln!(s, "---\n\n## Workflow Summary\n");
    let _ = writeln!(
        s,
        "- Files analyzed: {} ({} csv, {} json, {} md)",
        t.total, t.by_type.csv, t.by_type.json, t.by_type.md
    );
    let _ = writeln!(
        s,
        "- Execution time: {:.2} s total (ingest {:.2} s | analysis {:.2} s | report {:.2} s)\n",
        workflow.total_seconds,
        workflow.ingest_seconds,
        workflow.analysis_seconds,
        workflow.report_seconds
    );
    let _ = writeln!(s, "### Data Summary\n\n```text\n{}```\n", facts_text(facts));
    render_metrics(&mut s, a);
    let _ = writeln!(
        s,
        "## Persona Prompt\n\n```text\n{COLLECTOR_PERSONA}\n```\n\n```text\n{INSIGHT_PERSONA}\n```"
    );
    s
}

fn render_metrics(s: &mut String, a: &Analysis) {
    let m = &a.aggregate_metrics;
    let _ = writeln!(s, "## Metrics\n");
    let _ = writeln!(s, "Measured by the engine on the warm calls (the warm-up call is reported as the cold start and kept out):\n");
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
    let _ = writeln!(s, "\n| Run | Stage | TTFT (ms) | Throughput (tok/s) | Tokens | Duration (ms) | Failed |\n|---|---|---|---|---|---|---|");
    for c in &a.llm_calls {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            c.run_number,
            c.stage,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insight_text_splits_at_section_headings() {
        let t = "Intro line\n## Key Findings\n- a\n**Recommendations**\n1. b\n### Risks\n| r | m |";
        let [sum, f, r, k] = split_sections(t);
        assert_eq!(
            (sum.as_str(), f.as_str(), r.as_str(), k.as_str()),
            ("Intro line", "- a", "1. b", "| r | m |")
        );
    }
}
