//! `findings` on examples/artifacts: every finding asserted (kind, rank, files, rows, and each
//! comparison's statistics against scipy's), the planted effects included, and the ingest table.

use crate::util::*;
use chimera::agent::findings::{findings, Finding, Kind, Verdict};
use chimera::agent::ingest::{ingest, IngestOptions};
use std::path::Path;

fn corpus() -> Vec<Finding> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/artifacts");
    findings(&ingest(&dir, &IngestOptions::default()).unwrap())
}

fn close(x: f64, y: f64, rel: f64) -> bool {
    (x - y).abs() <= rel * y.abs()
}

const RUNS: [&str; 2] = [
    "reports/ollama/20251101-090000/prompt_suite_runs.csv",
    "reports/ollama/20251114-101500/prompt_suite_runs.csv",
];
const TUNING: &str = "reports/gemma3/gemma3_param_tuning.csv";
const PAIR: [&str; 2] = ["reports/gemma3/gemma3_baseline.csv", "reports/gemma3/gemma3_tuned.csv"];

/// A finding's kind, files, rows and column.
type Row<'a> = (Kind, Vec<&'a str>, Vec<usize>, Option<&'a str>);

/// Every finding, in rank order: (kind, files, rows, column).
#[test]
fn every_finding_on_the_corpus() {
    let f = corpus();
    let got: Vec<Row> = f
        .iter()
        .map(|x| {
            (
                x.kind,
                x.files.iter().map(String::as_str).collect(),
                x.rows.clone(),
                x.column.as_deref(),
            )
        })
        .collect();
    let summary = "reports/ollama/20251114-101500/prompt_suite_summary.json";
    use Kind::*;
    let want: Vec<Row> = vec![
        (Regression, RUNS.to_vec(), vec![], Some("tokens_s")),
        (NeverCompleted, vec![summary], vec![2], None),
        (Failures, vec![TUNING], vec![13], None),
        (Failures, vec![RUNS[1]], vec![3], None),
        (Failures, vec!["csv_data/baseline_performance_summary.csv"], vec![4], None),
        (SweepLoser, vec![TUNING], vec![], Some("tokens_s")),
        (ColdStart, vec![RUNS[1]], vec![1], Some("ttft_s")),
        (ColdStart, vec![RUNS[0]], vec![1], Some("ttft_s")),
        (ColdStart, vec!["reports/gemma3/gemma3_1b-it-qat_baseline.csv"], vec![1], Some("ttft_s")),
        (ColdStart, vec![PAIR[0]], vec![1], Some("ttft_s")),
        (ColdStart, vec![PAIR[1]], vec![1], Some("ttft_s")),
        (ColdStart, vec!["reports/gemma3/gemma3_270m_baseline.csv"], vec![1], Some("ttft_s")),
        (NoChange, PAIR.to_vec(), vec![], Some("tokens_s")),
        (NoChange, PAIR.to_vec(), vec![], Some("ttft_s")),
        (NoChange, vec![TUNING], vec![], Some("tokens_s")),
        (NoChange, RUNS.to_vec(), vec![], Some("ttft_s")),
        (
            Nulls,
            vec!["csv_data/chimera_metrics_20251114_100000.json"],
            vec![],
            Some("metrics[].gpu[].fan_speed"),
        ),
        (Nulls, vec![summary], vec![], Some("models[].mean_tokens_s")),
        (Nulls, vec![summary], vec![], Some("models[].mean_ttft_s")),
        (
            Noise,
            vec!["csv_data/baseline_performance_summary.csv"],
            vec![],
            Some("Tokens per Second"),
        ),
        (Unreadable, vec!["reports/profiling/ncu_ollama_raw.csv"], vec![], None),
        (EmptyFile, vec!["reports/llama3/baseline_ml_metrics.json"], vec![], None),
        (TimeSpan, vec![], vec![], None),
    ];
    assert_eq!(got, want);
    for (i, x) in f.iter().enumerate() {
        assert_eq!(x.id, format!("F{}", i + 1));
        assert!(x.comparison.is_none() || x.numbers.len() >= 4, "{} states its statistics", x.id);
    }
    // twins give nothing: the JSON copy of gemma3_baseline.csv, the Markdown copy of conv_bench,
    // the summary of the sweep
    for twin in
        ["gemma3_baseline.json", "conv_bench_20251008-120000.md", "gemma3_param_tuning_summary.csv"]
    {
        assert!(!f.iter().any(|x| x.files.iter().any(|p| p.ends_with(twin))), "{twin}");
    }
}

/// The planted regression between two dated runs of one suite, with scipy's statistics:
/// ttest_ind(new, old, equal_var=False) and mannwhitneyu(new, old) (scipy 1.17.1).
#[test]
fn the_regression_between_dated_runs() {
    let f = corpus();
    let c = f[0].comparison.as_ref().unwrap();
    assert_eq!((c.design.as_str(), c.verdict), ("dated runs", Verdict::Worse));
    assert_eq!(
        (c.baseline.label.as_str(), c.candidate.label.as_str()),
        ("2025-11-01 run", "2025-11-14 run")
    );
    assert_eq!(
        (c.baseline.n, c.baseline.mean, c.candidate.n, c.candidate.mean),
        (6, 299.5, 5, 266.0)
    );
    assert!(close(c.change_percent, -11.185_308_848_080_134, 1e-9));
    let w = c.welch.unwrap();
    assert!(close(w.t, -19.395184566214933, 1e-9) && close(w.df, 7.457986127275267, 1e-9));
    assert!(close(w.p, 1.1832409552632373e-07, 1e-6));
    assert!(
        close(w.ci95.0, -37.53395890375182, 1e-9) && close(w.ci95.1, -29.466041096248183, 1e-9)
    );
    let m = c.mann_whitney.unwrap();
    assert_eq!(m.u, 0.0);
    assert!(close(m.p, 0.004329004329004329, 1e-12));
    assert_eq!(
        f[0].sentence,
        "Regression: `tokens_s` of `reports/ollama/*/prompt_suite_runs.csv` from the 2025-11-01 run to \
         the 2025-11-14 run fell 11.2 % (299.5 → 266 tok/s; p < 0.0001)."
    );
    // TTFT over the same runs, warm rows only (each run's cold first row is left out)
    let t = f
        .iter()
        .find(|x| {
            x.kind == Kind::NoChange && x.files == RUNS && x.column.as_deref() == Some("ttft_s")
        })
        .unwrap();
    let c = t.comparison.as_ref().unwrap();
    assert_eq!((c.baseline.n, c.candidate.n), (5, 4));
}

/// The tuned-vs-baseline pair differs only within noise: "no significant difference", never an
/// improvement (scipy: p = 0.8849108265494855, CI of the difference [-1.92043, 2.17043]).
#[test]
fn the_no_change_pair_is_not_significant() {
    let f = corpus();
    let x = f.iter().find(|x| x.files == PAIR && x.column.as_deref() == Some("tokens_s")).unwrap();
    assert_eq!(x.kind, Kind::NoChange);
    let c = x.comparison.as_ref().unwrap();
    assert_eq!(c.verdict, Verdict::NoSignificantDifference);
    assert!(close(c.welch.unwrap().p, 0.8849108265494855, 1e-9));
    let (lo, hi) = c.ci95_percent.unwrap();
    assert!(
        close(lo, -1.920_427_058_009_660_3 / 102.5 * 100.0, 1e-9)
            && close(hi, 2.170_427_058_009_660_3 / 102.5 * 100.0, 1e-9)
    );
    assert!(x.sentence.starts_with("No significant difference: `tokens_s`"), "{}", x.sentence);
    assert!(!x.sentence.contains("improv") && !x.sentence.contains("faster"));
}

/// The sweep's loser against the next slowest (scipy: p = 1.6483088987181242e-05), and its two
/// fastest settings within noise.
#[test]
fn the_sweep_loser_and_its_top_within_noise() {
    let f = corpus();
    let l = f.iter().find(|x| x.kind == Kind::SweepLoser).unwrap();
    let c = l.comparison.as_ref().unwrap();
    assert_eq!(
        (c.baseline.label.as_str(), c.candidate.label.as_str()),
        ("g60_c1024_t0.2", "g40_c4096_t0.8")
    );
    assert!(close(c.welch.unwrap().p, 1.6483088987181242e-05, 1e-6));
    assert!(
        l.sentence.contains("g40_c4096_t0.8 is slower than every other setting: 51 tok/s, -28.2 %"),
        "{}",
        l.sentence
    );
    assert!(l.evidence.contains("the U test cannot go below p = 0.1"), "{}", l.evidence);
    let top = f.iter().find(|x| x.kind == Kind::NoChange && x.files == [TUNING]).unwrap();
    assert!(
        top.sentence.contains("g999_c1024_t0.2 (102.5 tok/s) and g999_c2048_t0.8 (100.5 tok/s)"),
        "{}",
        top.sentence
    );
}

/// Failures by message, the model that never completed, and cold starts by the robust rule: in
/// gemma3_1b-it-qat_baseline.csv every warm row loads in 0.06 s and evaluates its prompt in 0.05
/// s (the old "load > half of TTFT" rule called all of them cold); only row 1, which loaded for
/// 3.1 s, is.
#[test]
fn failures_never_completed_and_cold_starts() {
    let f = corpus();
    let fail: Vec<&str> =
        f.iter().filter(|x| x.kind == Kind::Failures).map(|x| x.sentence.as_str()).collect();
    assert_eq!(
        fail,
        vec![
            "The error \"Failed to connect to Ollama: connection refused\" occurs in 1 row: 1 in `reports/gemma3/gemma3_param_tuning.csv`.",
            "The error \"WinError 10061: Failed to connect to Ollama\" occurs in 1 row: 1 in `reports/ollama/20251114-101500/prompt_suite_runs.csv`.",
            "A silent failure (no error message; success = false or all-zero metrics) occurs in 1 row: 1 in `csv_data/baseline_performance_summary.csv`.",
        ]
    );
    let never = f.iter().find(|x| x.kind == Kind::NeverCompleted).unwrap();
    assert_eq!(never.sentence, "llama3:q4 never completed: 0 of 6 in `reports/ollama/20251114-101500/prompt_suite_summary.json`.");
    let qat: Vec<&Finding> =
        f.iter().filter(|x| x.files == ["reports/gemma3/gemma3_1b-it-qat_baseline.csv"]).collect();
    assert_eq!(qat.len(), 1);
    assert_eq!(
        qat[0].sentence,
        "Row 1 of `reports/gemma3/gemma3_1b-it-qat_baseline.csv` is a cold start: `load_s` 3.1 against a typical 0.06, \
         and its `ttft_s` of 3.15, 28.6× the warm median of 0.11."
    );
    let span = f.last().unwrap();
    assert!(
        span.sentence.starts_with("The data spans 2025-10-08 to 2025-11-14, by 25 timestamps"),
        "{}",
        span.sentence
    );
}

/// `ingest --json` carries the findings; `ingest DIR` prints them as a table.
#[test]
fn ingest_prints_and_carries_the_findings() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/artifacts");
    let o = chimera(&["ingest", dir.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let found = v["findings"].as_array().unwrap();
    assert_eq!(found.len(), 23);
    assert_eq!(found[0]["kind"], "regression");
    assert_eq!(found[0]["comparison"]["verdict"], "worse");
    let o = chimera(&["ingest", dir.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("23 findings (ranked):"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("F1   regression") && l.contains("fell 11.2 %")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("F13  no significant difference")), "{text}");
}
