//! The report agent: `ingest` (facts from an artifact folder, no model) and `analyze` (the
//! collector and insight agents on the engine, and a grounded report).
//!
//! Unlike the system it replaces, the collector's persona is sent, the insight agent receives the
//! collector's inventory, the model sees real statistics with units and sources, every number the
//! model writes is checked against the facts, and the report's tables and metrics come from the
//! facts and the engine's own timing records, never from the model.

pub mod grounding;
pub mod ingest;
pub mod render;

pub use render::{render_comparison, render_report, svg_chart};

use crate::engine::{Engine, GenerateOptions};
use crate::error::{Error, Result};
use crate::timing::Timings;
use ingest::Facts;
use serde::Serialize;
use std::fmt::Write as _;

/// The DataCollector-9000 persona (ref: original-system.md §1.3, paraphrased there).
pub const COLLECTOR_PERSONA: &str = "You are DataCollector-9000, a systems analyst scanning benchmark artifacts. \
Write a bullet-point data inventory of under 250 words that a second agent can reason over. Cover: \
(1) directory coverage of reports/, csv_data/ and artifacts/; (2) file counts per type (md, csv, json) \
and the latest modified timestamp; (3) gaps or missing telemetry. Use only the figures given below; do \
not invent numbers.";

/// The InsightAgent persona (ref: original-system.md §1.3).
pub const INSIGHT_PERSONA: &str = "You are InsightAgent, a Chimera-optimised LLM operations specialist. \
Given the facts and the collector's inventory below, write: an executive summary; key findings; three \
optimisation recommendations (throughput, TTFT, quality); and a risk/mitigation table with at least two \
rows. Use headings 'Executive Summary', 'Key Findings', 'Recommendations' and 'Risks'. Cite only \
figures that appear in the facts; do not invent numbers.";

/// Maximum size of the facts text given to the model (bytes): about 1,200 tokens, so that each
/// agent's prompt evaluates in a few seconds on two CPU cores.
pub const FACTS_BUDGET: usize = 3500;

/// The compact, deterministic facts text the agents read.
pub fn facts_text(f: &Facts) -> String {
    let t = &f.files;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Files: {} artifacts ({} csv, {} json, {} md), {} bytes; {} other files ignored.",
        t.total, t.by_type.csv, t.by_type.json, t.by_type.md, t.bytes, t.ignored
    );
    let dirs: Vec<String> = t.by_dir.iter().map(|(d, n)| format!("{d}/ {n}")).collect();
    let _ = writeln!(s, "By folder: {}.", dirs.join(", "));
    let lm = &f.latest_modified;
    let o = |x: &Option<String>| x.clone().unwrap_or_else(|| "none".into());
    let _ =
        writeln!(s, "Latest modified: csv {}, json {}, md {}.", o(&lm.csv), o(&lm.json), o(&lm.md));
    for u in &t.unreadable {
        let _ = writeln!(s, "Unreadable: {} ({}).", u.path, u.reason);
    }
    for g in f.gaps.iter().filter(|g| g.kind != "unreadable") {
        let _ = writeln!(s, "Gap: {} - {}: {}.", g.path, g.kind, g.detail);
    }
    for w in &f.sweeps {
        if let (Some(b), Some(wr)) = (&w.best_throughput, &w.worst_throughput) {
            let _ = writeln!(
                s,
                "Sweep {}: {} configs; best throughput {} at {}; worst {} at {}{}.",
                w.file,
                w.configs,
                fmt(b.value),
                b.config,
                fmt(wr.value),
                wr.config,
                match w.spread_exceeds_noise {
                    Some(true) => "; the spread exceeds run-to-run noise",
                    Some(false) => "; the spread is within run-to-run noise",
                    None => "",
                }
            );
        }
    }
    for c in &f.cold_starts {
        if let (Some(cold), Some(warm)) = (c.cold_mean_ttft, c.warm_mean_ttft) {
            let _ = writeln!(
                s,
                "Cold start {}: {} cold rows, mean {} {}; {} warm rows, mean {}.",
                c.file,
                c.cold_rows,
                c.ttft_column,
                fmt(cold),
                c.warm_rows,
                fmt(warm)
            );
        }
    }
    // throughput and TTFT series first, then the rest, until the budget is spent
    let mut series: Vec<&ingest::Series> = f.series.iter().collect();
    series.sort_by_key(|x| {
        let c = x.column.to_ascii_lowercase();
        (
            !(c.contains("tok") || c.contains("throughput")),
            !c.contains("ttft"),
            x.file.clone(),
            x.column.clone(),
        )
    });
    let _ = writeln!(s, "Measurements (file: column = mean, sd, min-max, n, failed):");
    let mut left = 0;
    for x in &series {
        let line = format!(
            "- {}: {} = {}{} (sd {}, {}-{}, n {}, failed {})\n",
            x.file,
            x.column,
            fmt(x.mean),
            x.unit.as_deref().map(|u| format!(" {u}")).unwrap_or_default(),
            fmt(x.sd),
            fmt(x.min),
            fmt(x.max),
            x.n,
            x.n_failed
        );
        if s.len() + line.len() > FACTS_BUDGET {
            left += 1;
            continue;
        }
        s.push_str(&line);
    }
    if left > 0 {
        let _ = writeln!(s, "({left} more series omitted for length.)");
    }
    s
}

/// A number as the facts text and the report print it (up to 4 significant decimals, no noise).
pub fn fmt(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e15 {
        return format!("{}", x as i64);
    }
    let s = format!("{x:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// One LLM call's record (the original's `llm_calls[]` keys).
#[derive(Debug, Clone, Serialize)]
pub struct LlmCall {
    pub run_number: usize,
    /// "warmup", "collector" or "insight".
    pub stage: String,
    pub prompt: String,
    pub response: String,
    pub metrics: CallMetrics,
    /// Zero-token calls are flagged and kept out of statistics.
    pub failed: bool,
    #[serde(skip)]
    pub timings: Timings,
}

/// Per-call metrics in the original's units (ms, tok/s), each from the engine's timings.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CallMetrics {
    pub ttft_ms: f64,
    /// eval_count / eval_duration.
    pub throughput_tokens_per_sec: f64,
    pub total_duration_ms: f64,
    pub tokens_generated: u64,
    pub prompt_eval_duration_ms: f64,
    pub eval_duration_ms: f64,
    pub load_duration_ms: f64,
}

impl CallMetrics {
    fn from(t: &Timings) -> Self {
        let ms = |ns: u64| ns as f64 / 1e6;
        CallMetrics {
            ttft_ms: ms(t.ttft),
            throughput_tokens_per_sec: t.eval_rate(),
            total_duration_ms: ms(t.total_duration),
            tokens_generated: t.eval_count,
            prompt_eval_duration_ms: ms(t.prompt_eval_duration),
            eval_duration_ms: ms(t.eval_duration),
            load_duration_ms: ms(t.load_duration),
        }
    }
}

/// Mean, sample sd, guarded CV and a 95 % interval (n ≥ 3) of one quantity.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stat {
    pub n: usize,
    pub mean: f64,
    pub sd: f64,
    /// sd / mean × 100; `None` when the mean is zero.
    pub cv_percent: Option<f64>,
    /// Student-t 95 % interval of the mean, for n ≥ 3.
    pub ci95: Option<(f64, f64)>,
}

/// Two-sided 97.5 % Student-t quantiles for 1..=30 degrees of freedom, then the normal value.
fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    T.get(df.wrapping_sub(1)).copied().unwrap_or(1.960)
}

impl Stat {
    pub fn of(v: &[f64]) -> Stat {
        if v.is_empty() {
            return Stat::default();
        }
        let (mean, sd, ..) = ingest::stats(v);
        let n = v.len();
        Stat {
            n,
            mean,
            sd,
            cv_percent: (mean.abs() > f64::EPSILON).then(|| sd / mean * 100.0),
            ci95: (n >= 3).then(|| {
                let h = t975(n - 1) * sd / (n as f64).sqrt();
                (mean - h, mean + h)
            }),
        }
    }
}

/// Aggregates over the warm, successful calls (the original's key names where practical).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Aggregate {
    pub average_tokens_per_second: f64,
    pub average_ttft_ms: f64,
    pub stddev_throughput: f64,
    pub stddev_ttft: f64,
    pub throughput: Stat,
    pub ttft_ms: Stat,
    /// Sums over the warm calls (labelled as sums).
    pub sum_total_duration_ms: f64,
    pub sum_tokens_generated: u64,
    pub sum_prompt_eval_duration_ms: f64,
    pub sum_eval_duration_ms: f64,
    pub sum_load_duration_ms: f64,
    pub calls: usize,
    pub failed_calls: usize,
}

impl Aggregate {
    pub fn of(calls: &[LlmCall]) -> Aggregate {
        let warm: Vec<&LlmCall> =
            calls.iter().filter(|c| c.stage != "warmup" && !c.failed).collect();
        let tp: Vec<f64> = warm.iter().map(|c| c.metrics.throughput_tokens_per_sec).collect();
        let tt: Vec<f64> = warm.iter().map(|c| c.metrics.ttft_ms).collect();
        let (throughput, ttft_ms) = (Stat::of(&tp), Stat::of(&tt));
        Aggregate {
            average_tokens_per_second: throughput.mean,
            average_ttft_ms: ttft_ms.mean,
            stddev_throughput: throughput.sd,
            stddev_ttft: ttft_ms.sd,
            throughput,
            ttft_ms,
            sum_total_duration_ms: warm.iter().map(|c| c.metrics.total_duration_ms).sum(),
            sum_tokens_generated: warm.iter().map(|c| c.metrics.tokens_generated).sum(),
            sum_prompt_eval_duration_ms: warm
                .iter()
                .map(|c| c.metrics.prompt_eval_duration_ms)
                .sum(),
            sum_eval_duration_ms: warm.iter().map(|c| c.metrics.eval_duration_ms).sum(),
            sum_load_duration_ms: warm.iter().map(|c| c.metrics.load_duration_ms).sum(),
            calls: warm.len(),
            failed_calls: calls.iter().filter(|c| c.failed).count(),
        }
    }
}

/// What one agent pair wrote in one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunText {
    pub run_number: usize,
    pub inventory: String,
    pub insight: String,
}

/// The result of analysing with one option set.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub label: String,
    pub configuration: String,
    pub llm_calls: Vec<LlmCall>,
    pub runs: Vec<RunText>,
    pub aggregate_metrics: Aggregate,
    pub analysis_seconds: f64,
}

/// Progress events for the CLI (only the CLI prints).
pub enum Event<'a> {
    Stage { run: usize, stage: &'a str },
    Tokens { n: usize },
    Done,
}

/// Runs the warm-up call (reported as the cold start), then `runs` × (collector, insight).
pub fn analyze(
    engine: &mut Engine,
    facts: &Facts,
    opts: &GenerateOptions,
    runs: usize,
    label: &str,
    configuration: &str,
    progress: &mut dyn FnMut(Event),
) -> Result<Analysis> {
    if runs == 0 {
        return Err(Error::option("runs", 0, "must be ≥ 1"));
    }
    let t0 = std::time::Instant::now();
    let facts_block = facts_text(facts);
    let mut calls = vec![];
    let mut texts = vec![];
    let call = |engine: &mut Engine,
                run: usize,
                stage: &str,
                prompt: String,
                progress: &mut dyn FnMut(Event)|
     -> Result<LlmCall> {
        progress(Event::Stage { run, stage });
        let ids = engine.prompt_ids(&prompt, false)?;
        let mut n = 0;
        let out = engine.generate(&ids, opts, &mut |_| {
            n += 1;
            progress(Event::Tokens { n });
        })?;
        Ok(LlmCall {
            run_number: run,
            stage: stage.into(),
            prompt,
            response: out.response.trim().to_string(),
            metrics: CallMetrics::from(&out.timings),
            failed: out.timings.eval_count == 0 || out.response.trim().is_empty(),
            timings: out.timings,
        })
    };
    let collector_prompt =
        format!("{COLLECTOR_PERSONA}\n\nFacts:\n{facts_block}\nData inventory:\n");
    let warm = call(engine, 0, "warmup", collector_prompt.clone(), progress)?;
    calls.push(warm);
    for run in 1..=runs {
        let c = call(engine, run, "collector", collector_prompt.clone(), progress)?;
        let insight_prompt = format!(
            "{INSIGHT_PERSONA}\n\nFacts:\n{facts_block}\nCollector's inventory:\n{}\n\nReport:\n",
            c.response
        );
        let i = call(engine, run, "insight", insight_prompt, progress)?;
        texts.push(RunText {
            run_number: run,
            inventory: c.response.clone(),
            insight: i.response.clone(),
        });
        calls.push(c);
        calls.push(i);
    }
    progress(Event::Done);
    Ok(Analysis {
        label: label.into(),
        configuration: configuration.into(),
        aggregate_metrics: Aggregate::of(&calls),
        llm_calls: calls,
        runs: texts,
        analysis_seconds: t0.elapsed().as_secs_f64(),
    })
}

/// The original's configuration line: `num_gpu=80, num_ctx=1024, temp=1, top_p=default, …`,
/// "Ollama defaults" when nothing was set; floats printed exactly as given.
pub fn describe(set: &[(&str, Option<String>)]) -> String {
    if set.iter().all(|(_, v)| v.is_none()) {
        return "Ollama defaults".into();
    }
    set.iter()
        .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("default")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Baseline-vs-options delta and the conclusion the data supports.
#[derive(Debug, Clone, Serialize)]
pub struct Delta {
    pub baseline_throughput: f64,
    pub chimera_throughput: f64,
    pub throughput_delta_absolute: f64,
    pub throughput_improvement_percent: Option<f64>,
    pub baseline_ttft_ms: f64,
    pub chimera_ttft_ms: f64,
    pub ttft_delta_absolute_ms: f64,
    /// Positive when the options made TTFT shorter.
    pub ttft_reduction_percent: Option<f64>,
    pub conclusion: String,
}

/// Compares two analyses; the conclusion follows the sign of the deltas and whether they exceed
/// the noise (non-overlapping 95 % intervals, or 2 × the larger sd when n < 3).
pub fn delta(base: &Aggregate, opt: &Aggregate) -> Delta {
    let pct = |a: f64, b: f64| (a.abs() > f64::EPSILON).then(|| (b - a) / a * 100.0);
    let significant = |a: &Stat, b: &Stat| match (a.ci95, b.ci95) {
        (Some(x), Some(y)) => x.1 < y.0 || y.1 < x.0,
        _ => (a.mean - b.mean).abs() > 2.0 * a.sd.max(b.sd) && a.n > 1 && b.n > 1,
    };
    let describe = |what: &str, better: bool, sig: bool, d: f64, unit: &str| {
        if !sig {
            format!("{what}: no difference beyond run-to-run noise (Δ {} {unit})", fmt(d))
        } else if better {
            format!("{what}: the options are better (Δ {} {unit})", fmt(d))
        } else {
            format!("{what}: the options are worse (Δ {} {unit})", fmt(d))
        }
    };
    let dt = opt.throughput.mean - base.throughput.mean;
    let dl = opt.ttft_ms.mean - base.ttft_ms.mean;
    let conclusion = format!(
        "{}. {}.",
        describe(
            "Throughput",
            dt > 0.0,
            significant(&base.throughput, &opt.throughput),
            dt,
            "tok/s"
        ),
        describe("TTFT", dl < 0.0, significant(&base.ttft_ms, &opt.ttft_ms), dl, "ms")
    );
    Delta {
        baseline_throughput: base.throughput.mean,
        chimera_throughput: opt.throughput.mean,
        throughput_delta_absolute: dt,
        throughput_improvement_percent: pct(base.throughput.mean, opt.throughput.mean),
        baseline_ttft_ms: base.ttft_ms.mean,
        chimera_ttft_ms: opt.ttft_ms.mean,
        ttft_delta_absolute_ms: dl,
        ttft_reduction_percent: pct(base.ttft_ms.mean, opt.ttft_ms.mean).map(|p| -p),
        conclusion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_guards_cv_and_gives_ci_from_three() {
        let s = Stat::of(&[0.0, 0.0]);
        assert_eq!(s.cv_percent, None);
        assert!(s.ci95.is_none());
        let s = Stat::of(&[10.0, 12.0, 14.0]);
        assert_eq!((s.mean, s.sd), (12.0, 2.0));
        let (lo, hi) = s.ci95.unwrap();
        assert!((hi - 12.0 - 4.303 * 2.0 / 3f64.sqrt()).abs() < 1e-9 && lo < 12.0);
    }

    #[test]
    fn conclusion_follows_sign_and_noise() {
        let agg = |v: &[f64], t: &[f64]| Aggregate {
            throughput: Stat::of(v),
            ttft_ms: Stat::of(t),
            ..Default::default()
        };
        let d = delta(
            &agg(&[100.0, 101.0, 99.0], &[50.0, 51.0, 49.0]),
            &agg(&[80.0, 81.0, 79.0], &[50.5, 49.5, 50.0]),
        );
        assert!(d.conclusion.contains("Throughput: the options are worse"), "{}", d.conclusion);
        assert!(d.conclusion.contains("TTFT: no difference"), "{}", d.conclusion);
        assert!(d.throughput_improvement_percent.unwrap() < 0.0);
    }

    #[test]
    fn configuration_line_in_the_original_format() {
        let d = describe(&[
            ("num_gpu", Some("80".into())),
            ("num_ctx", Some("1024".into())),
            ("temp", Some("1".into())),
            ("top_p", None),
        ]);
        assert_eq!(d, "num_gpu=80, num_ctx=1024, temp=1, top_p=default");
        assert_eq!(describe(&[("num_gpu", None)]), "Ollama defaults");
    }
}
