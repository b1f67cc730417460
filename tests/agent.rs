//! `analyze` end to end on the real model with its default options: a report built on the
//! study, every planted effect stated, no ungrounded number in the body, the base model's
//! actions within their grammar's slots; its refusals; and model text that fails the check kept
//! out of the body.

use crate::util::*;
use chimera::agent::grounding::{self, Unverified};
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
    for f in ["catalogue.csv", "findings.csv"] {
        assert!(std::fs::read_to_string(out.join(f)).unwrap().lines().count() > 1, "{f}");
    }
    let charts: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
        .filter(|n| n.starts_with("chart-E") && n.ends_with(".svg"))
        .collect();
    assert!(!charts.is_empty(), "one chart per leading experiment");
    for c in &charts {
        assert!(std::fs::read_to_string(out.join(c)).unwrap().starts_with("<svg"));
        assert!(report.contains(&format!("]({c})")), "the report shows {c}");
    }
    // every section, in order
    let mut at = 0;
    for h in [
        "# Technical Report: Chimera Analysis",
        "**Date:**",
        "**Model:**",
        "**Configuration:** Ollama defaults",
        "## Executive Summary",
        "## What Was Compared",
        "## Key Findings",
        "## Data Quality",
        "## Charts",
        "## Appendix",
        "### A. Every experiment",
        "### B. Measurement catalogue",
        "### C. Outliers",
        "### D. Report figures checked",
        "### F. Files",
        "Model text that failed a check",
        "The model's calls",
        "Workflow",
        "Personas",
    ] {
        let i = report[at..].find(h).unwrap_or_else(|| panic!("missing or out of order: {h}"));
        at += i + h.len();
    }
    // the Executive Summary is the study's, computed; at most eight items
    let study = chimera::analysis::study(&artifacts(), &Default::default()).unwrap();
    let exec = section(&report, "## Executive Summary", "## What Was Compared");
    let items = chimera::analysis::report::summary_items(&study);
    assert!(!items.is_empty() && items.len() <= 8);
    for (i, f) in items.iter().enumerate() {
        assert!(
            exec.contains(&format!("{}. **{} ({}).** {}", i + 1, f.id, f.kind.label(), f.sentence)),
            "{}",
            f.id
        );
    }
    // the planted effects are stated
    let key = section(&report, "## Key Findings", "## Data Quality");
    for effect in [
        "`config_name` g999_c1024_t0.2 gives the highest `tokens_s`: 102.5 tok/s against 51 tok/s for g40_c4096_t0.8",
        "`variant` does not change `tokens_s` beyond noise",
        "from 266 tok/s (20251114-101500) to 299.5 tok/s (20251101-090000)",
        "runs failed because the server could not be reached",
        "Cold starts are a pattern",
    ] {
        assert!(key.contains(effect), "Key Findings lack: {effect}");
    }
    assert!(study.key_findings().len() <= 30);
    for f in study.key_findings() {
        assert!(key.contains(&format!("### {} · {}", f.id, f.kind.label())), "{}", f.id);
    }
    // no number in the Executive Summary or Key Findings that the study does not hold
    let known = chimera::agent::analyze::known(&study, &[]);
    for (name, text) in [("Executive Summary", exec), ("Key Findings", key)] {
        let bad = grounding::check(text, &known);
        assert!(bad.is_empty(), "{name}: {bad:?}");
    }
    // the base model's calls: a warm-up, then one action on each of the leading findings, every
    // one after the warm-up reusing the cached worked examples; each action names its finding's
    // names only (the grammar's slots)
    let calls = metrics["llm_calls"].as_array().unwrap();
    let stages: Vec<&str> = calls.iter().map(|c| c["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["warmup", "action", "action", "action"]);
    assert_eq!(calls[0]["metrics"]["prompt_cached_count"], 0);
    for c in &calls[1..] {
        assert!(c["metrics"]["prompt_cached_count"].as_u64().unwrap() > 200, "{c}");
        let r = c["response"].as_str().unwrap().trim();
        let f =
            study.findings.iter().find(|f| Some(f.id.as_str()) == c["finding"].as_str()).unwrap();
        let opts = chimera::agent::narrative::action_options(f);
        assert!(opts.iter().any(|(v, n)| r.starts_with(&format!("{v} `{n}`"))), "{r} for {opts:?}");
        assert!(
            r.ends_with('.') && !r.chars().any(|c| c.is_ascii_digit())
                || opts.iter().any(|(_, n)| n.chars().any(|c| c.is_ascii_digit())),
            "{r}"
        );
        assert!(
            report.contains(&format!(
                "- Action (model, under a grammar that admits only this finding's names): {r}"
            )),
            "{r}"
        );
    }
    assert!(report.contains("is a base model: it continues text and does not follow instructions"));
    assert_eq!(metrics["study"]["findings"].as_array().unwrap().len(), study.findings.len());
    assert_eq!(summary["findings"], study.findings.len());
    // the calls' metrics are the engine's timing records
    let warm: Vec<&serde_json::Value> = calls.iter().filter(|c| c["stage"] != "warmup").collect();
    let tokens: u64 = warm.iter().map(|c| c["metrics"]["tokens_generated"].as_u64().unwrap()).sum();
    assert_eq!(metrics["aggregate_metrics"]["sum_tokens_generated"], tokens);
    assert!(report.contains(&format!("- Tokens Generated: {tokens} (sum of eval_count)")));
    let n = metrics["unverified_figures"]["count"].as_u64().unwrap() as usize;
    assert_eq!(summary["unverified_figures"], n);
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
    let study = chimera::analysis::study(&artifacts(), &Default::default()).unwrap();
    let text = "The GPU fan speed peaked at 4321 RPM.";
    let known = chimera::agent::analyze::known(&study, &[]);
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
        study: &study,
        model: "gemma3:4b",
        date: "2026-12-01",
        workflow: &Workflow::default(),
        charts: &[],
        base_model: false,
    };
    let unverified: Vec<Unverified> = bad;
    let report = render_report(&ctx, &a, &unverified);
    let body = section(&report, "## Executive Summary", "## Appendix");
    assert!(!body.contains("4321 RPM"), "the body holds no rejected text");
    assert!(body.contains("failed the grounding check and is in the Appendix"));
    let appendix = section(&report, "## Appendix", "Workflow");
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
        3,
        "run 2 made all its calls"
    );
}
