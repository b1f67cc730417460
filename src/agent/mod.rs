//! The report agent: the study of the folder (`crate::analysis`, no model) narrated by the model
//! under constraints. `narrative` (findings → prompts and grammars), `calls` (the calls, side by
//! side when several runs), `grounding` (the second check of model text), `render` (the study's
//! report with the model's checked words and the calls' metrics), and `analyze`, the workflow
//! that runs them and writes the report folder.
//!
//! Unlike the system it replaces, every number and conclusion in the report is computed; the
//! model's words are decoded under a grammar that admits only the study's numbers and names, and
//! the report's metrics come from the engine's own timing records.

pub mod analyze;
pub mod calls;
pub mod grounding;
pub mod narrative;
pub mod render;

pub use render::render_comparison;

use crate::analysis::Study;
use crate::stats::{self, Summary};
use crate::timing::Timings;
use serde::Serialize;
use std::fmt::Write as _;

/// The compact facts the agents read before the findings: files, runs, experiments, time span,
/// what could not be read.
pub fn study_text(s: &Study) -> String {
    let (data, read) = s.counts();
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Files: {read} read, {data} with runs; {} runs, {} of them valid.",
        s.records, s.valid
    );
    let _ = writeln!(
        t,
        "Experiments: {} (measures over the settings that vary in one benchmark).",
        s.experiments.len()
    );
    if let Some((a, b)) = s.span {
        let _ = writeln!(t, "Time span: {} to {}.", crate::stamp::date(a), crate::stamp::date(b));
    }
    for f in s.files.iter().filter(|f| f.status.starts_with("cannot")) {
        let _ = writeln!(t, "Unreadable: {} ({}).", f.path, f.status);
    }
    for d in &s.duplicates {
        let _ = writeln!(t, "Counted once: {} ({} of {}).", d.file, d.relation, d.of);
    }
    t
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
    /// "warmup", "collector", "insight" or "commentary".
    pub stage: String,
    /// The finding a commentary call is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<String>,
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
    /// Prompt tokens evaluated by this call.
    pub prompt_eval_count: u64,
    /// Prompt tokens reused from the cache (the shared block after the first call).
    pub prompt_cached_count: u64,
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
            prompt_eval_count: t.prompt_eval_count,
            prompt_cached_count: t.prompt_cached_count,
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

impl Stat {
    pub fn of(v: &[f64]) -> Stat {
        let Some(s) = Summary::of(v) else { return Stat::default() };
        Stat {
            n: s.n,
            mean: s.mean,
            sd: s.sd,
            cv_percent: (s.mean.abs() > f64::EPSILON).then(|| s.sd / s.mean * 100.0),
            ci95: (s.n >= 3).then(|| {
                let h = stats::t_quantile((s.n - 1) as f64, 0.05) * s.sd / (s.n as f64).sqrt();
                (s.mean - h, s.mean + h)
            }),
        }
    }

    fn summary(&self) -> Summary {
        Summary { n: self.n, mean: self.mean, sd: self.sd, ..Default::default() }
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
    pub sum_prompt_eval_count: u64,
    pub sum_prompt_cached_count: u64,
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
        let sum = |f: fn(&CallMetrics) -> f64| warm.iter().map(|c| f(&c.metrics)).sum::<f64>();
        let count = |f: fn(&CallMetrics) -> u64| warm.iter().map(|c| f(&c.metrics)).sum::<u64>();
        Aggregate {
            average_tokens_per_second: throughput.mean,
            average_ttft_ms: ttft_ms.mean,
            stddev_throughput: throughput.sd,
            stddev_ttft: ttft_ms.sd,
            throughput,
            ttft_ms,
            sum_total_duration_ms: sum(|m| m.total_duration_ms),
            sum_tokens_generated: count(|m| m.tokens_generated),
            sum_prompt_eval_duration_ms: sum(|m| m.prompt_eval_duration_ms),
            sum_eval_duration_ms: sum(|m| m.eval_duration_ms),
            sum_load_duration_ms: sum(|m| m.load_duration_ms),
            sum_prompt_eval_count: count(|m| m.prompt_eval_count),
            sum_prompt_cached_count: count(|m| m.prompt_cached_count),
            calls: warm.len(),
            failed_calls: calls.iter().filter(|c| c.failed).count(),
        }
    }
}

/// What one agent pair wrote in one run, as checked by the grounding check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunText {
    pub run_number: usize,
    pub inventory: String,
    pub insight: String,
    /// (finding id, one sentence of commentary).
    pub commentary: Vec<(String, String)>,
}

/// Model text that failed the grounding check and was kept out of the report's body.
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    pub run_number: usize,
    pub stage: String,
    pub finding: Option<String>,
    pub text: String,
    /// Figures that match nothing in the facts.
    pub unverified: Vec<grounding::Unverified>,
    /// Words that contradict the finding commented on.
    pub contradiction: Option<String>,
}

/// The result of analysing with one option set.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Analysis {
    pub label: String,
    pub configuration: String,
    pub llm_calls: Vec<LlmCall>,
    /// The text of each run that passed the grounding check (failed parts are empty).
    pub runs: Vec<RunText>,
    pub rejected: Vec<Rejected>,
    pub aggregate_metrics: Aggregate,
    pub analysis_seconds: f64,
    /// Runs side by side (several runs), with the measured speedup.
    pub concurrency: Option<calls::Concurrency>,
}

/// Progress events for the CLI (only the CLI prints).
pub enum Event<'a> {
    /// The folder was read and analysed, in the seconds given.
    Ingested {
        study: &'a Study,
        seconds: f64,
    },
    Warning(&'a str),
    Stage {
        run: usize,
        stage: &'a str,
    },
    Tokens {
        n: usize,
    },
    /// A call of runs side by side ended with `tokens` generated.
    Call {
        run: usize,
        stage: &'a str,
        tokens: usize,
    },
    Done,
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
    pub throughput_p: Option<f64>,
    pub baseline_ttft_ms: f64,
    pub chimera_ttft_ms: f64,
    pub ttft_delta_absolute_ms: f64,
    /// Positive when the options made TTFT shorter.
    pub ttft_reduction_percent: Option<f64>,
    pub ttft_p: Option<f64>,
    pub conclusion: String,
}

/// Compares two analyses with Welch's t-test per metric; the conclusion follows the sign of
/// the deltas and says "no significant difference" at p ≥ 0.05, and "cannot be judged" with
/// fewer than two calls on a side.
pub fn delta(base: &Aggregate, opt: &Aggregate) -> Delta {
    let pct = |a: f64, b: f64| (a.abs() > f64::EPSILON).then(|| (b - a) / a * 100.0);
    let p = |a: &Stat, b: &Stat| stats::welch_summaries(&a.summary(), &b.summary()).map(|w| w.p);
    let describe = |what: &str, better: bool, p: Option<f64>, d: f64, unit: &str| match p {
        None => format!("{what}: cannot be judged with one call per side (Δ {} {unit})", fmt(d)),
        Some(p) if p >= crate::analysis::methods::ALPHA => {
            format!(
                "{what}: no significant difference (Δ {} {unit}, {})",
                fmt(d),
                crate::analysis::fmt::p(p)
            )
        }
        Some(p) => format!(
            "{what}: the options are {} (Δ {} {unit}, {})",
            if better { "better" } else { "worse" },
            fmt(d),
            crate::analysis::fmt::p(p)
        ),
    };
    let dt = opt.throughput.mean - base.throughput.mean;
    let dl = opt.ttft_ms.mean - base.ttft_ms.mean;
    let (pt, pl) = (p(&base.throughput, &opt.throughput), p(&base.ttft_ms, &opt.ttft_ms));
    let conclusion = format!(
        "{}. {}.",
        describe("Throughput", dt > 0.0, pt, dt, "tok/s"),
        describe("TTFT", dl < 0.0, pl, dl, "ms")
    );
    Delta {
        baseline_throughput: base.throughput.mean,
        chimera_throughput: opt.throughput.mean,
        throughput_delta_absolute: dt,
        throughput_improvement_percent: pct(base.throughput.mean, opt.throughput.mean),
        throughput_p: pt,
        baseline_ttft_ms: base.ttft_ms.mean,
        chimera_ttft_ms: opt.ttft_ms.mean,
        ttft_delta_absolute_ms: dl,
        ttft_reduction_percent: pct(base.ttft_ms.mean, opt.ttft_ms.mean).map(|p| -p),
        ttft_p: pl,
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
        // t(0.975, 2) = 4.302652729911275 (scipy.stats.t.ppf)
        assert!((hi - 12.0 - 4.302652729911275 * 2.0 / 3f64.sqrt()).abs() < 1e-9 && lo < 12.0);
    }

    #[test]
    fn conclusion_follows_sign_and_significance() {
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
        assert!(d.conclusion.contains("TTFT: no significant difference"), "{}", d.conclusion);
        assert!(d.throughput_improvement_percent.unwrap() < 0.0);
        let one = delta(&agg(&[100.0], &[50.0]), &agg(&[80.0], &[40.0]));
        assert!(one.conclusion.contains("cannot be judged"), "{}", one.conclusion);
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
