//! `chimera bench`: grid runs on a tiny model, every output format, the plot, and the study
//! reading its output back: each factor of a bench grid stated with its test.

use crate::util::*;
use chimera::gguf::TensorType;

fn tiny() -> (tempfile::TempDir, String) {
    let d = tempdir();
    let p = d.path().join("tiny.gguf");
    tiny_model(&p, TensorType::Q8_0, |_| {});
    let s = p.to_str().unwrap().to_string();
    (d, s)
}

fn bench(model: &str, extra: &[&str]) -> std::process::Output {
    let mut a =
        vec!["bench", "-m", model, "-p", "16,32", "-n", "4", "-pg", "8,2", "-r", "2", "-t", "1,2"];
    a.extend_from_slice(extra);
    chimera(&a)
}

#[test]
fn json_records_carry_every_parameter_and_sample() {
    let (_d, m) = tiny();
    let o = bench(&m, &["-o", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.len(), 8, "2 thread settings × (pp16, pp32, tg4, pp8+tg2)");
    let tests: Vec<&str> = v.iter().take(4).map(|r| r["test"].as_str().unwrap()).collect();
    assert_eq!(tests, vec!["pp16", "pp32", "tg4", "pp8+tg2"]);
    for r in &v {
        for k in
            ["build_commit", "cpu_info", "model_filename", "model_type", "test_time", "backends"]
        {
            assert!(r[k].is_string(), "{k}");
        }
        assert_eq!(r["samples_ns"].as_array().unwrap().len(), 2);
        let ts: Vec<f64> =
            r["samples_ts"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        let n = (r["n_prompt"].as_u64().unwrap() + r["n_gen"].as_u64().unwrap()) as f64;
        let ns = r["samples_ns"][0].as_f64().unwrap();
        assert!(
            (ts[0] - n * 1e9 / ns).abs() < 1e-6 * ts[0],
            "t/s is tokens / seconds per repetition"
        );
        assert!((r["avg_ts"].as_f64().unwrap() - (ts[0] + ts[1]) / 2.0).abs() < 1e-9);
        assert_eq!(r["synthetic"], false);
    }
    assert_eq!(v[0]["n_threads"], 1);
    assert_eq!(v[4]["n_threads"], 2);
}

#[test]
fn csv_jsonl_md_and_plot() {
    let (d, m) = tiny();
    let plot = d.path().join("t.svg");
    let o = bench(&m, &["-o", "csv", "-oe", "md", "--plot", plot.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut rd = csv::Reader::from_reader(o.stdout.as_slice());
    assert_eq!(rd.headers().unwrap().iter().collect::<Vec<_>>(), chimera::bench::csv_header());
    assert_eq!(rd.records().count(), 8);
    let e = stderr(&o);
    assert!(e.contains("| model |") && e.contains("| pp8+tg2 |") && e.contains("build: "), "{e}");
    assert!(std::fs::read_to_string(&plot).unwrap().starts_with("<svg"));
    // the CSV is an artifact the study reads as llama-bench's (samples as repetitions)
    let art = d.path().join("art");
    std::fs::create_dir(&art).unwrap();
    std::fs::write(art.join("bench.csv"), &o.stdout).unwrap();
    let s = chimera::analysis::study(&art, &Default::default()).unwrap();
    assert_eq!(s.files[0].formats, vec!["llama-bench csv"]);
    assert_eq!(s.records, 16, "8 tests × 2 samples");
    let o = chimera(&["bench", "-m", &m, "-p", "8", "-n", "0", "-r", "1", "-o", "jsonl"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1);
}

/// `chimera bench` over several threads, KV types and prompt lengths, written as JSONL and read by
/// the study: every factor's effect on each rate is stated with its test, prompt processing and
/// generation apart.
#[test]
fn bench_output_analysed_states_each_factor() {
    let (d, m) = tiny();
    let o = chimera(&[
        "bench",
        "-m",
        &m,
        "-t",
        "1,2",
        "--kv-type",
        "f16,q8_0",
        "-p",
        "8,16",
        "-n",
        "4",
        "-r",
        "3",
        "-o",
        "jsonl",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().count(),
        12,
        "2 threads × 2 KV types × (pp8, pp16, tg4)"
    );
    let art = d.path().join("art");
    std::fs::create_dir(&art).unwrap();
    std::fs::write(art.join("bench.jsonl"), &o.stdout).unwrap();
    let s = chimera::analysis::study(&art, &Default::default()).unwrap();
    let pp = s.experiments.iter().find(|e| e.measure == "pp t/s").expect("a pp experiment");
    let tg = s.experiments.iter().find(|e| e.measure == "tg t/s").expect("a tg experiment");
    let names = |e: &chimera::analysis::design::Experiment| {
        e.factors.iter().map(|f| f.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(names(pp), vec!["n_prompt", "n_threads", "type_k"]);
    assert_eq!(names(tg), vec!["n_threads", "type_k"]);
    for e in [pp, tg] {
        let (_, a) = s.experiment(&e.id).unwrap();
        assert_eq!(a.design, "factorial");
        assert_eq!(a.reps, (3, 3), "the samples are the repetitions");
        for eff in &a.effects {
            assert!(eff.p.is_some() && eff.test.starts_with("ANOVA"), "{} has its test", eff.name);
        }
    }
    let text: Vec<&str> = s.findings.iter().map(|f| f.sentence.as_str()).collect();
    for (factor, measure) in [
        ("n_threads", "pp t/s"),
        ("type_k", "pp t/s"),
        ("n_threads", "tg t/s"),
        ("type_k", "tg t/s"),
    ] {
        assert!(
            text.iter().any(|t| t.contains(&format!("`{factor}`"))
                && t.contains(&format!("`{measure}`"))
                && (t.contains("ANOVA") || t.contains("Welch"))),
            "no finding on {factor} for {measure}: {text:#?}"
        );
    }
}

#[test]
fn bad_bench_flags() {
    let (_d, m) = tiny();
    assert_user_error(&chimera(&["bench", "-m", &m, "-o", "xml"]), "-o");
    assert_user_error(&chimera(&["bench", "-m", &m, "-r", "0"]), "-r");
    assert_user_error(&chimera(&["bench", "-m", &m, "--kv-type", "f16,q3"]), "--kv-type");
}

/// A synthetic model (random weights, real shapes) is written once, benches as synthetic, and
/// generates.
#[test]
fn synthetic_model_loads_benches_and_generates() {
    let d = tempdir();
    let bin = env!("CARGO_BIN_EXE_chimera");
    let run = |args: &[&str]| {
        std::process::Command::new(bin).env("CHIMERA_HOME", d.path()).args(args).output().unwrap()
    };
    let o = run(&[
        "bench",
        "--synthetic",
        "gemma3:270m",
        "--quant",
        "Q4_K_M",
        "-p",
        "16",
        "-n",
        "4",
        "-r",
        "1",
        "-o",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.len(), 2);
    assert!(v
        .iter()
        .all(|r| r["synthetic"] == true && r["model_type"] == "gemma3 270M Q4_K - Medium"));
    let p = d.path().join("synthetic/gemma3-270m-q4_k_m-synthetic.gguf");
    let g = chimera::gguf::Gguf::open(&p).unwrap();
    assert_eq!(
        g.tensor("blk.0.attn_q.weight").unwrap().ty,
        TensorType::Q5_0,
        "llama.cpp's fallback for 640-wide rows"
    );
    let o = run(&["run", p.to_str().unwrap(), "hello", "--num-predict", "4", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["ids"].as_array().unwrap().len(), 4);
    assert_user_error(&run(&["bench", "--synthetic", "gemma3:7b"]), "--synthetic");
}
