//! `ingest` on examples/artifacts: every count, the latest timestamps, the unreadable list and
//! series statistics asserted exactly (random bytes: tests/fuzz.rs).

use crate::util::*;
use chimera::agent::ingest::{ingest, Facts, IngestOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

fn copy_tree(from: &Path, to: &Path, files: &mut Vec<PathBuf>) {
    std::fs::create_dir_all(to).unwrap();
    let mut entries: Vec<_> = std::fs::read_dir(from).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &dest, files);
        } else {
            std::fs::copy(&p, &dest).unwrap();
            files.push(dest);
        }
    }
}

/// The corpus copied to a temp folder with known modification times: the k-th file (sorted) at
/// 2025-11-14T00:00:00Z + k hours, except that JSON files are a week older.
fn corpus() -> (tempfile::TempDir, Facts) {
    let d = tempdir();
    let mut files = vec![];
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/artifacts"),
        d.path(),
        &mut files,
    );
    files.sort();
    for (k, f) in files.iter().enumerate() {
        let mut t = 1_763_078_400 + 3600 * k as u64;
        if f.extension().is_some_and(|e| e == "json") {
            t -= 7 * 86_400;
        }
        let h = std::fs::File::options().write(true).open(f).unwrap();
        h.set_modified(UNIX_EPOCH + Duration::from_secs(t)).unwrap();
    }
    let facts = ingest(d.path(), &IngestOptions::default()).unwrap();
    (d, facts)
}

/// The corpus's files with extension `ext`.
fn artifact_files(ext: &str) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/artifacts")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                out.push(p);
            }
        }
    }
    out
}

fn series<'a>(f: &'a Facts, file: &str, column: &str) -> &'a chimera::agent::ingest::Series {
    f.series
        .iter()
        .find(|s| s.file == file && s.column == column)
        .unwrap_or_else(|| panic!("no series {file} {column}"))
}

#[test]
fn counts_and_unreadable_files() {
    let (_d, f) = corpus();
    let t = &f.files;
    assert_eq!((t.total, t.by_type.csv, t.by_type.json, t.by_type.md), (21, 12, 6, 3));
    assert_eq!(t.ignored, 2, "notes.txt and session.ncu-rep");
    assert_eq!(t.by_dir.get("reports"), Some(&16));
    assert_eq!(t.by_dir.get("csv_data"), Some(&3));
    assert_eq!(t.by_dir.get("artifacts"), Some(&2));
    assert_eq!(t.unreadable.len(), 1);
    assert_eq!(t.unreadable[0].path, "reports/profiling/ncu_ollama_raw.csv");
    assert_eq!(t.unreadable[0].reason, "not UTF-8 or UTF-16 text");
    let on_disk: u64 = ["csv", "json", "md"]
        .iter()
        .flat_map(|e| artifact_files(e))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(t.bytes, on_disk);
    assert_eq!(t.md_headings, 6, "1 + 2 (one mid-line, newlines collapsed) + 3");
    // twins: same data in two formats, and a summary derived from its raw file
    let twins: Vec<(&str, &str, &str)> =
        f.twins.iter().map(|w| (w.file.as_str(), w.of.as_str(), w.relation.as_str())).collect();
    assert_eq!(
        twins,
        vec![
            (
                "reports/compilation/conv_bench_20251008-120000.md",
                "reports/compilation/conv_bench_20251008-120000.json",
                "same data"
            ),
            (
                "reports/gemma3/gemma3_baseline.json",
                "reports/gemma3/gemma3_baseline.csv",
                "same data"
            ),
            (
                "reports/gemma3/gemma3_param_tuning_summary.csv",
                "reports/gemma3/gemma3_param_tuning.csv",
                "derived summary"
            ),
        ]
    );
}

#[test]
fn latest_modified_per_type() {
    let (_d, f) = corpus();
    // sorted order: 0 artifacts/rust_multiagent_summary.csv … 22 reports/profiling/session.ncu-rep;
    // the last CSV is reports/profiling/ncu_summary.csv (k = 21), the last MD
    // reports/ollama/ollama_benchmark_summary.md (k = 19), the last JSON
    // reports/ollama/20251114-101500/prompt_suite_summary.json (k = 18, a week older)
    assert_eq!(f.latest_modified.csv.as_deref(), Some("2025-11-14T21:00:00Z"));
    assert_eq!(f.latest_modified.md.as_deref(), Some("2025-11-14T19:00:00Z"));
    assert_eq!(f.latest_modified.json.as_deref(), Some("2025-11-07T18:00:00Z"));
    assert_eq!(f.latest_modified.overall, f.latest_modified.csv);
    // the data's own stamps, not the mtimes: the earliest is conv_bench's generated_at (and its
    // name), the latest the suite's last row
    let ts = &f.time_span;
    assert_eq!(ts.data, Some(("2025-10-08T12:00:00Z".into(), "2025-11-14T10:16:00Z".into())));
    assert_eq!(ts.names, Some(("2025-10-08T12:00:00Z".into(), "2025-11-14T10:15:00Z".into())));
    // mtimes of the artifacts (session.ncu-rep, k = 22, is not one)
    assert_eq!(ts.mtimes, Some(("2025-11-07T03:00:00Z".into(), "2025-11-14T21:00:00Z".into())));
}

#[test]
fn series_statistics() {
    let (_d, f) = corpus();
    let s = series(&f, "reports/gemma3/gemma3_baseline.csv", "tokens_s");
    assert_eq!((s.n, s.n_failed, s.mean, s.min, s.max, s.p50), (4, 0, 102.5, 101.0, 104.0, 102.5));
    assert_eq!(s.unit.as_deref(), Some("tok/s"));
    assert!((s.sd - 1.2909944487358056).abs() < 1e-12);
    // failed rows (error text, all-zero metrics) are counted, not averaged in
    let s = series(&f, "reports/ollama/20251114-101500/prompt_suite_runs.csv", "tokens_s");
    assert_eq!((s.n, s.n_failed, s.mean, s.min, s.max), (5, 1, 266.0, 262.0, 270.0));
    let s = series(
        &f,
        "reports/ollama/20251114-101500/prompt_suite_summary.json",
        "models[].mean_ttft_s",
    );
    assert_eq!((s.n, s.n_null), (1, 1), "a null is missing, not a value");
    let s = series(&f, "csv_data/baseline_performance_summary.csv", "Generation Time (ms)");
    assert_eq!((s.n, s.n_failed, s.mean, s.sd), (3, 1, 3600.0, 800.0));
    let s = series(&f, "reports/gemma3/gemma3_baseline.json", "results[].ttft_s");
    assert_eq!((s.n, s.min, s.max), (4, 0.12, 2.3));
    let s = series(&f, "reports/profiling/ncu_summary.csv", "duration_ms");
    assert_eq!((s.n, s.mean), (2, 0.75), "UTF-16 CSV decoded");
    let s = series(&f, "reports/compilation/conv_bench_20251008-120000.md", "Mean (ms)");
    assert_eq!((s.n, s.min, s.max), (3, 0.7, 3.8), "table after collapsed newlines");
}

#[test]
fn sweeps_failures_and_gaps() {
    let (_d, f) = corpus();
    let sw = f.sweeps.iter().find(|s| s.file == "reports/gemma3/gemma3_param_tuning.csv").unwrap();
    assert_eq!(sw.configs, 4);
    assert_eq!(sw.best_throughput.as_ref().unwrap().config, "g999_c1024_t0.2");
    assert_eq!(sw.best_throughput.as_ref().unwrap().value, 102.5);
    assert_eq!(sw.worst_throughput.as_ref().unwrap().config, "g40_c4096_t0.8");
    assert_eq!(sw.best_ttft.as_ref().unwrap().value, 0.125);
    assert_eq!(sw.throughput_spread, Some(51.5));
    assert_eq!(sw.spread_exceeds_noise, Some(true));
    // every failed row with its error text (or none, when it failed silently)
    let fails: Vec<(&str, usize, Option<&str>)> =
        f.failures.iter().map(|x| (x.file.as_str(), x.row, x.message.as_deref())).collect();
    assert_eq!(
        fails,
        vec![
            ("csv_data/baseline_performance_summary.csv", 4, None),
            (
                "reports/gemma3/gemma3_param_tuning.csv",
                13,
                Some("Failed to connect to Ollama: connection refused")
            ),
            (
                "reports/ollama/20251114-101500/prompt_suite_runs.csv",
                3,
                Some("WinError 10061: Failed to connect to Ollama")
            ),
        ]
    );
    let kinds: Vec<(&str, &str)> =
        f.gaps.iter().map(|g| (g.path.as_str(), g.kind.as_str())).collect();
    assert!(kinds.contains(&("reports/llama3/baseline_ml_metrics.json", "empty file")));
    assert!(
        kinds.contains(&("reports/ollama/20251114-101500/prompt_suite_summary.json", "null value"))
    );
    assert!(kinds.contains(&("csv_data/chimera_metrics_20251114_100000.json", "null value")));
    assert!(kinds.contains(&("reports/profiling/ncu_ollama_raw.csv", "unreadable")));
    assert_eq!(f.gaps.iter().filter(|g| g.kind == "failed runs").count(), 3);
}

#[test]
fn ingest_command_json_has_the_required_keys() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/artifacts");
    let o = chimera(&["ingest", dir.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for p in [
        "/files/total",
        "/files/by_type/csv",
        "/files/by_type/json",
        "/files/by_type/md",
        "/files/unreadable/0/path",
    ] {
        assert!(v.pointer(p).is_some(), "{p}");
    }
    for k in ["csv", "json", "md"] {
        assert!(v["latest_modified"][k].is_string(), "{k}");
    }
    for k in ["file", "column", "n", "n_failed", "mean", "min", "max"] {
        assert!(!v["series"][0][k].is_null(), "{k}");
    }
    let o = chimera(&["ingest", "/no/such/folder"]);
    assert_user_error(&o, "/no/such/folder");
}
