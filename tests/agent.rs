//! `analyze` end to end on the real model with its default options: a report built on the
//! findings, every planted effect stated, no ungrounded number in the body; its refusals; and
//! model text that fails the check kept out of the body.

use crate::util::*;
use chimera::agent::findings::findings;
use chimera::agent::grounding::{self, Unverified};
use chimera::agent::ingest::{ingest, IngestOptions};
use chimera::agent::render::{render_report, Context, Workflow};
use chimera::agent::{Analysis, Rejected, RunText};
use std::path::Path;

fn artifacts() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/artifacts")
}

/// `analyze` of examples/artifacts on the real model into `out`, with `extra` flags; it must
/// succeed.
fn analyze_artifacts(out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let (model, dir) = (real_model(), artifacts());
    let mut args = vec!["analyze", dir.to_str().unwrap(), "--model", model.to_str().unwrap()];
    args.extend(["--out", out.to_str().unwrap()]);
    args.extend(extra);
    let o = chimera(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

/// The text between two headings of a report.
fn section<'a>(report: &'a str, from: &str, to: &str) -> &'a str {
    let a = report.find(from).unwrap_or_else(|| panic!("no {from}"));
    let b = report[a..].find(to).map_or(report.len(), |i| a + i);
    &report[a..b]
}

#[test]
fn analyze_writes_a_report_built_on_the_findings() {
    let d = tempdir();
    let out = d.path().join("out");
    let o = analyze_artifacts(&out, &["--seed", "5", "--json"]);
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert!(std::fs::read_to_string(out.join("chart.svg")).unwrap().starts_with("<svg"));
    // every section, in order
    let mut at = 0;
    for h in [
        "# Technical Report: Chimera Analysis",
        "**Date:**",
        "**Model:**",
        "**Agent Type:**",
        "**Configuration:** Ollama defaults",
        "## Executive Summary",
        "## Data Ingestion Summary",
        "## Performance Analysis",
        "### Comparisons",
        "### Measurements",
        "## Key Findings",
        "## Recommendations",
        "## Risks and Mitigations",
        "## Appendix",
        "### Model text that failed the grounding check",
        "### Unverified figures",
        "## Workflow Summary",
        "### Data Summary",
        "## Metrics",
        "## Persona Prompt",
        "DataCollector-9000",
        "InsightAgent",
    ] {
        let i = report[at..].find(h).unwrap_or_else(|| panic!("missing or out of order: {h}"));
        at += i + h.len();
    }
    // the Executive Summary is the top findings, computed
    let facts = ingest(&artifacts(), &IngestOptions::default()).unwrap();
    let found = findings(&facts);
    let exec = section(&report, "## Executive Summary", "## Data Ingestion Summary");
    for (i, f) in found.iter().take(5).enumerate() {
        assert!(
            exec.contains(&format!("{}. **{} ({}).** {}", i + 1, f.id, f.kind.label(), f.sentence)),
            "{}",
            f.id
        );
    }
    // every planted effect is stated in Key Findings
    let key = section(&report, "## Key Findings", "## Recommendations");
    for effect in [
        "Regression: `tokens_s` of `reports/ollama/*/prompt_suite_runs.csv` from the 2025-11-01 run to the 2025-11-14 run fell 11.2 %",
        "No significant difference: `tokens_s` of `reports/gemma3/gemma3_tuned.csv` against `reports/gemma3/gemma3_baseline.csv`",
        "g40_c4096_t0.8 is slower than every other setting",
        "The error \"Failed to connect to Ollama: connection refused\" occurs in 1 row",
        "The error \"WinError 10061: Failed to connect to Ollama\" occurs in 1 row",
        "llama3:q4 never completed: 0 of 6",
        "Row 1 of `reports/gemma3/gemma3_baseline.csv` is a cold start",
    ] {
        assert!(key.contains(effect), "Key Findings lack: {effect}");
    }
    for f in &found {
        assert!(key.contains(&format!("### {} · {}", f.id, f.kind.label())), "{}", f.id);
    }
    // no number in the Executive Summary or Key Findings that is not in the facts or computed
    // from them (the model's text there passed the same check)
    let known = chimera::agent::analyze::known(&facts, &found, &[]);
    for (name, text) in [("Executive Summary", exec), ("Key Findings", key)] {
        let bad = grounding::check(text, &known);
        assert!(bad.is_empty(), "{name}: {bad:?}");
    }
    // recommendations and risks name the findings they rest on
    let recs = section(&report, "## Recommendations", "## Risks and Mitigations");
    assert!(recs.contains("(rests on F1)"), "{recs}");
    assert!(recs.contains("Chase the dominant failure first (F3)"), "{recs}");
    // the calls: warm-up, then collector, insight and commentary on the top three findings,
    // every one after the warm-up reusing the cached shared block
    let calls = metrics["llm_calls"].as_array().unwrap();
    let stages: Vec<&str> = calls.iter().map(|c| c["stage"].as_str().unwrap()).collect();
    assert_eq!(
        stages,
        ["warmup", "collector", "insight", "commentary", "commentary", "commentary"]
    );
    assert_eq!(calls[0]["metrics"]["prompt_cached_count"], 0);
    let shared = calls[0]["metrics"]["prompt_eval_count"].as_u64().unwrap();
    for c in &calls[1..] {
        let cached = c["metrics"]["prompt_cached_count"].as_u64().unwrap();
        assert!(
            cached + 100 > shared && cached < shared + 50,
            "{}: cached {cached} of the shared {shared}",
            c["stage"]
        );
        assert!(c["metrics"]["prompt_eval_count"].as_u64().unwrap() < 400);
    }
    assert_eq!(metrics["findings"].as_array().unwrap().len(), found.len());
    assert_eq!(summary["findings"], found.len());
    // the Metrics block is the engine's timing records: warm calls, sums and means
    let warm: Vec<&serde_json::Value> = calls.iter().filter(|c| c["stage"] != "warmup").collect();
    let tokens: u64 = warm.iter().map(|c| c["metrics"]["tokens_generated"].as_u64().unwrap()).sum();
    assert_eq!(metrics["aggregate_metrics"]["sum_tokens_generated"], tokens);
    assert!(report.contains(&format!("- Tokens Generated: {tokens} (sum of eval_count)")));
    for c in &warm {
        let m = &c["metrics"];
        let rate = m["tokens_generated"].as_f64().unwrap()
            / (m["eval_duration_ms"].as_f64().unwrap() / 1e3);
        assert!((rate - m["throughput_tokens_per_sec"].as_f64().unwrap()).abs() < 1e-6 * rate);
    }
    // the unverified list in the report has as many entries as metrics.json counts
    let n = metrics["unverified_figures"]["count"].as_u64().unwrap() as usize;
    assert_eq!(summary["unverified_figures"], n);
    let unv = section(&report, "### Unverified figures", "## Workflow Summary");
    assert_eq!(unv.lines().filter(|l| l.starts_with("- `")).count(), n);
}

#[test]
fn analyze_refuses_an_empty_folder_and_output_inside_it() {
    let d = tempdir();
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), "not an artifact").unwrap();
    let model = real_model();
    let o = chimera(&[
        "analyze",
        empty.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--out",
        d.path().join("o").to_str().unwrap(),
    ]);
    assert_user_error(&o, "no artifacts");
    assert!(!d.path().join("o").exists(), "no partial output");
    let inside = artifacts().join("reports/chimera-out");
    let o = chimera(&["analyze", artifacts().to_str().unwrap(), "--out", inside.to_str().unwrap()]);
    assert_user_error(&o, "inside the analysed folder");
    assert!(!inside.exists());
}

/// Model text that fails the grounding check stays out of the body: the computed findings stand
/// and the text is listed in the Appendix with its reason.
#[test]
fn model_text_that_fails_the_check_goes_to_the_appendix() {
    let facts = ingest(&artifacts(), &IngestOptions::default()).unwrap();
    let found = findings(&facts);
    let text = "The GPU fan speed peaked at 4321 RPM.";
    let known = chimera::agent::analyze::known(&facts, &found, &[]);
    let bad = grounding::check(text, &known);
    assert_eq!(bad.iter().map(|u| u.text.as_str()).collect::<Vec<_>>(), vec!["4321"]);
    let a = Analysis {
        label: "Chimera".into(),
        configuration: "Ollama defaults".into(),
        runs: vec![RunText { run_number: 1, ..Default::default() }],
        rejected: vec![Rejected {
            run_number: 1,
            stage: "insight".into(),
            finding: None,
            text: text.into(),
            unverified: bad.clone(),
            contradiction: None,
        }],
        ..Default::default()
    };
    let ctx = Context {
        facts: &facts,
        findings: &found,
        model: "gemma3:270m",
        date: "2026-12-01",
        workflow: &Workflow::default(),
    };
    let unverified: Vec<Unverified> = bad;
    let report = render_report(&ctx, &a, &unverified);
    let body = section(&report, "## Executive Summary", "## Appendix");
    assert!(!body.contains("4321 RPM"), "the body holds no rejected text");
    assert!(body.contains("it failed the grounding check and is in the Appendix"));
    let appendix = section(&report, "## Appendix", "## Workflow Summary");
    assert!(appendix.contains("- insight: \"The GPU fan speed peaked at 4321 RPM.\" — `4321` matches nothing in the facts"), "{appendix}");
    assert!(appendix.contains("1 figure(s) in the model-written text match nothing"));
}

/// `--runs 2` runs side by side in their own KV slots and states the speedup it measured
/// against the same calls replayed one after another (same tokens: batching changes nothing).
#[test]
fn runs_go_side_by_side_with_a_measured_speedup() {
    let d = tempdir();
    let out = d.path().join("out");
    analyze_artifacts(&out, &["--runs", "2"]);
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let c = &metrics["concurrency"];
    assert_eq!((c["runs"].as_u64(), c["identical"].as_bool()), (Some(2), Some(true)), "{c}");
    let (b, s) =
        (c["batched_seconds"].as_f64().unwrap(), c["sequential_seconds"].as_f64().unwrap());
    assert!(b > 0.0 && s > 0.0 && (c["speedup"].as_f64().unwrap() - s / b).abs() < 1e-6, "{c}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("ran side by side") && report.contains(&format!("{:.2}×", s / b)),
        "the report states the measured speedup"
    );
    assert_eq!(
        metrics["llm_calls"].as_array().unwrap().iter().filter(|c| c["run_number"] == 2).count(),
        5,
        "run 2 made all its calls"
    );
}
