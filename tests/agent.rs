//! `analyze` end to end on the real model, its refusals, and the grounding check on a
//! fabricated answer.

use crate::util::*;
use chimera::agent::grounding::{self, Known};
use chimera::agent::ingest::{ingest, IngestOptions};
use chimera::agent::render::Workflow;
use chimera::agent::{render_report, Aggregate, Analysis, RunText};
use std::path::Path;

fn artifacts() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/artifacts")
}

#[test]
fn analyze_writes_a_grounded_report_with_engine_metrics() {
    let d = tempdir();
    let out = d.path().join("out");
    let model = real_model();
    let o = chimera(&[
        "analyze",
        artifacts().to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--num-predict",
        "24",
        "--num-ctx",
        "2048",
        "--temperature",
        "1",
        "--seed",
        "5",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert!(std::fs::read_to_string(out.join("chart.svg")).unwrap().starts_with("<svg"));
    // every section, in order
    let mut at = 0;
    for h in [
        "# Technical Report: Chimera Analysis", "**Date:**", "**Model:**", "**Agent Type:**",
        "**Configuration:** num_gpu=default, num_ctx=2048, temp=1, top_p=default, top_k=default, repeat_penalty=default",
        "## Executive Summary", "## Data Ingestion Summary", "## Performance Analysis", "## Key Findings",
        "## Recommendations", "## Appendix", "### Unverified figures", "## Workflow Summary", "### Data Summary",
        "## Metrics", "## Persona Prompt", "DataCollector-9000", "InsightAgent",
    ] {
        let i = report[at..].find(h).unwrap_or_else(|| panic!("missing or out of order: {h}"));
        at += i + h.len();
    }
    // the Metrics block is the engine's timing records: warm calls, sums and means
    let calls = metrics["llm_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 3, "warm-up, collector, insight");
    assert_eq!(calls[0]["stage"], "warmup");
    let warm: Vec<&serde_json::Value> = calls.iter().filter(|c| c["stage"] != "warmup").collect();
    let tokens: u64 = warm.iter().map(|c| c["metrics"]["tokens_generated"].as_u64().unwrap()).sum();
    let agg = &metrics["aggregate_metrics"];
    assert_eq!(agg["sum_tokens_generated"], tokens);
    assert!(report.contains(&format!("- Tokens Generated: {tokens} (sum of eval_count)")));
    let tp = warm
        .iter()
        .map(|c| c["metrics"]["throughput_tokens_per_sec"].as_f64().unwrap())
        .sum::<f64>()
        / warm.len() as f64;
    assert!((agg["average_tokens_per_second"].as_f64().unwrap() - tp).abs() < 1e-9);
    assert!(report.contains(&format!("- Throughput: {tp:.2} tok/s")));
    for c in &warm {
        let m = &c["metrics"];
        assert!(m["tokens_generated"].as_u64().unwrap() <= 24);
        // throughput is eval_count / eval_duration of that call
        let rate = m["tokens_generated"].as_f64().unwrap()
            / (m["eval_duration_ms"].as_f64().unwrap() / 1e3);
        assert!((rate - m["throughput_tokens_per_sec"].as_f64().unwrap()).abs() < 1e-6 * rate);
        assert!(m["ttft_ms"].as_f64().unwrap() >= m["prompt_eval_duration_ms"].as_f64().unwrap());
    }
    // the unverified list in the report has as many entries as metrics.json counts
    let n = metrics["unverified_figures"]["count"].as_u64().unwrap() as usize;
    assert_eq!(summary["unverified_figures"], n);
    let section = &report[report.find("### Unverified figures").unwrap()
        ..report.find("## Workflow Summary").unwrap()];
    assert_eq!(section.lines().filter(|l| l.starts_with("- `")).count(), n);
    let w = &metrics["workflow"];
    for k in ["ingest_seconds", "analysis_seconds", "report_seconds", "total_seconds"] {
        assert!(w[k].as_f64().unwrap() >= 0.0, "{k}");
    }
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

/// A model answer that invents a figure gets it listed under "Unverified figures"; true figures
/// from the facts (102.5 tok/s, the 2.3 s cold start, 125 ms as 0.125 s) pass.
#[test]
fn a_fabricated_number_is_flagged_in_the_report() {
    let facts = ingest(&artifacts(), &IngestOptions::default()).unwrap();
    let insight = "## Executive Summary\nThe best configuration reached 102.5 tok/s; the cold start took 2.3 s \
                   and warm TTFT was 125 ms.\n## Key Findings\n- The GPU fan speed peaked at 85 RPM.\n\
                   ## Recommendations\n1. Keep num_gpu=999.\n## Risks\n| Risk | Mitigation |\n|---|---|\n| cold starts | warm up |";
    let known = Known::from_facts(&facts, &[]);
    let unverified = grounding::check(insight, &known);
    assert_eq!(unverified.iter().map(|u| u.text.as_str()).collect::<Vec<_>>(), vec!["85"]);
    let a = Analysis {
        label: "Chimera".into(),
        configuration: "Ollama defaults".into(),
        llm_calls: vec![],
        runs: vec![RunText {
            run_number: 1,
            inventory: "- 18 artifacts".into(),
            insight: insight.into(),
        }],
        aggregate_metrics: Aggregate::default(),
        analysis_seconds: 0.0,
    };
    let report =
        render_report(&facts, &a, "gemma3:270m", "2026-11-22", &Workflow::default(), &unverified);
    assert!(report.contains("1 figure(s) in the model-written text match nothing"));
    assert!(report.contains("- `85` in \""));
    assert!(report.contains("## Key Findings\n\n- The GPU fan speed peaked at 85 RPM."));
}
