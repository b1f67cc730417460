//! The report of an analysis: the study's report (`crate::analysis::report`) with the model's
//! checked words in it (the summary of a chat model, the actions of a base model), and the
//! agents' appendix: model text that failed a check, every call with its timings, the workflow,
//! the personas. Also the comparison report of `--compare`.

use super::grounding::Unverified;
use super::narrative::{COLLECTOR_PERSONA, INSIGHT_PERSONA};
use super::{fmt, Analysis, Delta, Stat};
use crate::analysis::report::{self, Extra};
use crate::analysis::Study;
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
    pub study: &'a Study,
    pub model: &'a str,
    pub date: &'a str,
    pub workflow: &'a Workflow,
    /// Chart files written beside the report (experiment id → file name).
    pub charts: &'a [(String, String)],
    /// Whether the model is a base model (its words are actions, not a summary).
    pub base_model: bool,
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

/// The technical report for one analysis (the last run's model text).
pub fn render_report(c: &Context, a: &Analysis, unverified: &[Unverified]) -> String {
    let last = a.runs.last().cloned().unwrap_or_default();
    let mut x = Extra {
        title: format!("Technical Report: {} Analysis", a.label),
        header: vec![
            ("Date".into(), c.date.into()),
            ("Model".into(), c.model.into()),
            ("Configuration".into(), a.configuration.clone()),
        ],
        ..Default::default()
    };
    if c.base_model {
        x.notes = last.commentary.clone();
        x.summary_note = Some(format!(
            "{} is a base model: it continues text and does not follow instructions, so it writes no free summary here. Its words are one action per leading finding (in Key Findings), whose verb and name it chooses from those the finding allows, decoded under a grammar that admits no figure.",
            c.model
        ));
    } else if !last.insight.is_empty() {
        x.summary = Some(format!("**Model summary** ({}, decoded under a grammar that admits only the findings' numbers and the study's names): {}", c.model, last.insight));
        x.notes = last.commentary.iter().map(|(id, t)| (id.clone(), t.clone())).collect();
    } else {
        x.summary_note = Some(format!("The model's summary ({}) failed the grounding check and is in the Appendix; the computed findings above stand.", c.model));
    }
    let mut body = String::new();
    appendix(&mut body, a, unverified);
    x.appendix.push(("Model text that failed a check".into(), body));
    let mut m = String::new();
    render_metrics(&mut m, a);
    if !last.inventory.is_empty() {
        let _ = writeln!(
            m,
            "\nThe collector's inventory (model text, grounded):\n\n{}",
            last.inventory
        );
    }
    x.appendix.push(("The model's calls".into(), m));
    let w = c.workflow;
    x.appendix.push((
        "Workflow".into(),
        format!(
            "- Findings: {} ({} key, computed without a model)\n- Execution time: {:.2} s total (read and analyse {:.2} s | model {:.2} s | report {:.2} s)",
            c.study.findings.len(),
            c.study.key_findings().len(),
            w.total_seconds,
            w.ingest_seconds,
            w.analysis_seconds,
            w.report_seconds
        ),
    ));
    x.appendix.push((
        "Personas".into(),
        format!("```text\n{COLLECTOR_PERSONA}\n```\n\n```text\n{INSIGHT_PERSONA}\n```"),
    ));
    report::markdown(c.study, &x, c.charts)
}

fn appendix(s: &mut String, a: &Analysis, unverified: &[Unverified]) {
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
    let _ = writeln!(s, "\nUnverified figures:\n");
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
