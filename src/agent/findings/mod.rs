//! Findings: a model-free, deterministic reading of the facts — comparisons with their statistics,
//! failures, cold starts, outliers, noise and the data's time span — ranked, each with the files,
//! columns and rows it rests on and one plain sentence.
//!
//! Conventions (after benchstat): a comparison reports the relative change of the means, the 95 %
//! interval of the difference as a percentage of the baseline mean, Welch's t-test (the verdict, at
//! α = 0.05) and the Mann–Whitney U test beside it; a difference that is not significant is "no
//! significant difference", never an improvement or a regression; one value per side "cannot be
//! judged". Files that repeat another file's data (twins, derived summaries) give no findings.

mod compare;
mod health;

use super::fmt;
use super::ingest::Facts;
use crate::stats::{MannWhitney, Welch};
use serde::{Deserialize, Serialize};

/// α of every test.
pub const ALPHA: f64 = 0.05;

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A later run, or a tuned configuration, is significantly worse.
    Regression,
    /// Significantly better.
    Improvement,
    /// No significant difference.
    NoChange,
    /// One value per side (or per configuration): the spread cannot be judged.
    Unjudged,
    /// One setting of a sweep is significantly slower than every other.
    SweepLoser,
    /// One setting of a sweep is significantly faster than every other.
    SweepBest,
    /// A sweep whose settings do not differ beyond run-to-run noise.
    SweepNoise,
    /// Failed rows grouped by error message.
    Failures,
    /// A model or configuration none of whose runs completed.
    NeverCompleted,
    /// Missing values in a measurement.
    Nulls,
    EmptyFile,
    Unreadable,
    /// Rows whose load time stands far above the file's typical load.
    ColdStart,
    /// Values far from the rest of their column (modified z-score).
    Outlier,
    /// A measurement whose coefficient of variation is high.
    Noise,
    /// When the data was taken.
    TimeSpan,
}

impl Kind {
    /// The kind as the report's tables write it.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Regression => "regression",
            Kind::Improvement => "improvement",
            Kind::NoChange => "no significant difference",
            Kind::Unjudged => "cannot be judged",
            Kind::SweepLoser => "sweep loser",
            Kind::SweepBest => "sweep winner",
            Kind::SweepNoise => "sweep within noise",
            Kind::Failures => "failures",
            Kind::NeverCompleted => "never completed",
            Kind::Nulls => "missing values",
            Kind::EmptyFile => "empty file",
            Kind::Unreadable => "unreadable file",
            Kind::ColdStart => "cold start",
            Kind::Outlier => "outlier",
            Kind::Noise => "noise",
            Kind::TimeSpan => "time span",
        }
    }

    /// The base of the ranking: what an analyst must read first.
    fn weight(self) -> f64 {
        match self {
            Kind::Regression => 1000.0,
            Kind::NeverCompleted => 900.0,
            Kind::Failures => 800.0,
            Kind::SweepLoser => 700.0,
            Kind::ColdStart => 600.0,
            Kind::Improvement | Kind::SweepBest => 550.0,
            Kind::NoChange => 500.0,
            Kind::SweepNoise => 450.0,
            Kind::Unjudged => 400.0,
            Kind::Outlier => 350.0,
            Kind::Nulls => 300.0,
            Kind::Noise => 250.0,
            Kind::Unreadable => 200.0,
            Kind::EmptyFile => 150.0,
            Kind::TimeSpan => 100.0,
        }
    }
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// What it is: a run's date, a file, a configuration.
    pub label: String,
    pub file: String,
    pub n: usize,
    pub mean: f64,
    pub sd: f64,
}

/// The verdict of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Better,
    Worse,
    NoSignificantDifference,
    CannotJudge,
}

/// A comparison of one metric between a baseline and a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// "dated runs", "baseline vs tuned" or "sweep".
    pub design: String,
    pub metric: String,
    pub unit: Option<String>,
    pub higher_is_better: bool,
    pub baseline: Side,
    pub candidate: Side,
    /// (candidate − baseline) / baseline × 100.
    pub change_percent: f64,
    /// The 95 % interval of the difference of means, as a percentage of the baseline mean.
    pub ci95_percent: Option<(f64, f64)>,
    pub welch: Option<Welch>,
    pub mann_whitney: Option<MannWhitney>,
    pub verdict: Verdict,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// `F1`, `F2`, … in rank order.
    pub id: String,
    pub kind: Kind,
    /// One plain sentence.
    pub sentence: String,
    /// The evidence: files, columns, n, values, test.
    pub evidence: String,
    pub files: Vec<String>,
    pub column: Option<String>,
    /// 1-based data rows it rests on, where it rests on rows.
    pub rows: Vec<usize>,
    pub comparison: Option<Comparison>,
    /// Every number written in `sentence` and `evidence`, as written.
    pub numbers: Vec<String>,
    /// Rank score (higher first).
    pub score: f64,
}

impl Finding {
    fn new(kind: Kind, sentence: String, evidence: String, files: Vec<String>) -> Finding {
        Finding {
            id: String::new(),
            kind,
            sentence,
            evidence,
            files,
            column: None,
            rows: vec![],
            comparison: None,
            numbers: vec![],
            score: kind.weight(),
        }
    }

    fn column(mut self, c: &str) -> Finding {
        self.column = Some(c.to_string());
        self
    }

    fn rows(mut self, rows: Vec<usize>) -> Finding {
        self.rows = rows;
        self
    }

    /// Adds `x` (an effect size) to the rank score, capped so that kinds keep their order.
    fn effect(mut self, x: f64) -> Finding {
        self.score += x.abs().min(99.0);
        self
    }
}

/// All findings in rank order, numbered F1, F2, ….
pub fn findings(facts: &Facts) -> Vec<Finding> {
    let mut out = vec![];
    compare::all(facts, &mut out);
    health::all(facts, &mut out);
    // ties keep a stable order: kind, then the first file, then the sentence
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.kind.cmp(&b.kind))
            .then(a.files.cmp(&b.files))
            .then(a.sentence.cmp(&b.sentence))
    });
    for (i, f) in out.iter_mut().enumerate() {
        f.id = format!("F{}", i + 1);
        let text = format!("{} {}", f.sentence, f.evidence);
        f.numbers = super::grounding::numbers(&text).into_iter().map(|(t, ..)| t).collect();
        f.numbers.dedup();
    }
    out
}

/// A percentage with one decimal and its sign ("+2.4", "-10.8", "0.0").
pub fn pct(x: f64) -> String {
    let s = format!("{x:+.1}");
    if s == "+0.0" || s == "-0.0" {
        "0.0".into()
    } else {
        s
    }
}

/// A p-value as the report writes it ("p = 0.0312", "p < 0.0001").
pub fn p_text(p: f64) -> String {
    if p < 1e-4 {
        "p < 0.0001".into()
    } else {
        format!("p = {}", fmt((p * 1e4).round() / 1e4))
    }
}

/// A ratio or a percentage for a sentence: one decimal.
pub fn num1(x: f64) -> String {
    fmt((x * 10.0).round() / 10.0)
}

/// A value for a sentence: four significant decimals at most.
pub fn num(x: f64) -> String {
    fmt(if x.abs() >= 100.0 { (x * 10.0).round() / 10.0 } else { (x * 1e4).round() / 1e4 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats() {
        assert_eq!(
            (pct(2.449), pct(-10.75), pct(-0.01)),
            ("+2.4".into(), "-10.8".into(), "0.0".into())
        );
        assert_eq!(p_text(0.000_02), "p < 0.0001");
        assert_eq!(p_text(0.031_24), "p = 0.0312");
        assert_eq!(
            (num(301.833_33), num(0.125), num(12.0)),
            ("301.8".into(), "0.125".into(), "12".into())
        );
    }
}
