//! The study of a folder without a model, on a corpus this test writes in the tools' own formats
//! with the traps real folders hold: llama-bench JSONL with a crashed (null) test, Ollama API
//! responses with nanosecond durations, a 2×2×2×2 factorial whose factors are in folder names
//! (llama-server `timings`), an outage recorded as success, a sweep run in a fixed order with a
//! cold start at every reload, a copied file, a report whose figures are checked, an unreadable
//! file. Then the CLI on it and on bad input.

use crate::util::*;
use chimera::analysis::findings::Kind;
use chimera::analysis::{self, Study};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::Path;

/// A deterministic spread of ±1 around 0 (no RNG: the corpus is the same on every run).
fn wiggle(i: usize) -> f64 {
    [0.3, -0.8, 0.5, -0.1, 0.9, -0.6, 0.2, -0.4, 0.7, -0.3][i % 10]
}

fn write(root: &Path, rel: &str, body: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

/// llama-bench `-o jsonl`: threads 4 and 8 × pp512 and tg128, five samples each; one test that
/// crashed (null results).
fn llama_bench(root: &Path) {
    let mut s = String::new();
    for (t, pp, tg) in [(4, 800.0, 40.0), (8, 1000.0, 50.0)] {
        for (np, ng, base) in [(512, 0, pp), (0, 128, tg)] {
            let samples: Vec<f64> = (0..5).map(|i| base * (1.0 + 0.01 * wiggle(i + t))).collect();
            let avg = samples.iter().sum::<f64>() / 5.0;
            let list = samples.iter().map(|x| format!("{x:.4}")).collect::<Vec<_>>().join(", ");
            let _ = writeln!(
                s,
                "{{\"build_commit\": \"abc1234\", \"build_number\": 9999, \"cpu_info\": \"Example CPU\", \"gpu_info\": \"\", \"backends\": \"CPU\", \"model_filename\": \"m.gguf\", \"model_type\": \"llama 7B Q4_0\", \"model_size\": 3825065984, \"model_n_params\": 6738415616, \"n_batch\": 2048, \"n_ubatch\": 512, \"n_threads\": {t}, \"type_k\": \"f16\", \"type_v\": \"f16\", \"n_gpu_layers\": 0, \"n_prompt\": {np}, \"n_gen\": {ng}, \"n_depth\": 0, \"test_time\": \"2030-01-02T03:0{t}:05Z\", \"avg_ns\": 1, \"stddev_ns\": 1, \"avg_ts\": {avg:.6}, \"stddev_ts\": 1.0, \"samples_ns\": [ 1, 2, 3, 4, 5 ],\"samples_ts\": [ {list} ]}}"
            );
        }
    }
    let _ = writeln!(s, "{{\"build_commit\": \"abc1234\", \"model_type\": \"llama 7B Q4_0\", \"n_threads\": 16, \"n_prompt\": 512, \"n_gen\": 0, \"n_depth\": 0, \"avg_ts\": null, \"stddev_ts\": null, \"samples_ts\": null}}");
    write(root, "bench/llama-bench.jsonl", &s);
}

/// Ollama `/api/generate` final objects, durations in nanoseconds; the first of each model's
/// runs loads the model.
fn ollama(root: &Path) {
    for (m, rate) in [("gemma3:1b", 120.0), ("gemma3:4b", 60.0)] {
        let mut v = vec![];
        for i in 0..6 {
            let eval_count = 200 + 10 * i;
            let r = rate * (1.0 + 0.02 * wiggle(i));
            let eval_ns = (eval_count as f64 / r * 1e9) as u64;
            let load_ns: u64 =
                if i == 0 { 3_000_000_000 } else { 20_000_000 + 1_000_000 * i as u64 };
            v.push(serde_json::json!({
                "model": m, "created_at": format!("2030-01-02T04:0{i}:00Z"), "response": "A reply.", "done": true,
                "done_reason": "stop", "total_duration": load_ns + eval_ns + 50_000_000, "load_duration": load_ns,
                "prompt_eval_count": 26, "prompt_eval_duration": 50_000_000, "eval_count": eval_count, "eval_duration": eval_ns
            }));
        }
        write(
            root,
            &format!("ollama/{}.json", m.replace(':', "_")),
            &serde_json::to_string_pretty(&v).unwrap(),
        );
    }
}

/// llama-server `/completion` responses in `kv/<quant>/<kv type>/symmetric-<on|off>/ctx<N>k/`,
/// two runs each: the quantization and the KV type change the generation rate, the rest does not.
fn factorial(root: &Path) -> usize {
    let mut n = 0;
    for (q, qf) in [("q4_k_m", 1.0), ("q8_0", 0.8)] {
        for (kv, kf) in [("f16", 1.0), ("turbo3", 0.7)] {
            for sym in ["on", "off"] {
                for ctx in ["4k", "16k"] {
                    for run in 1..=2 {
                        let rate = 80.0 * qf * kf * (1.0 + 0.01 * wiggle(n));
                        let body = serde_json::json!({
                            "content": "text", "stop": true, "truncated": false, "stop_type": "limit", "tokens_predicted": 128,
                            "timings": {"cache_n": 0, "prompt_n": 64, "prompt_ms": 40.0 + wiggle(n), "prompt_per_token_ms": 0.6,
                                        "prompt_per_second": 1500.0 + 10.0 * wiggle(n + 3), "predicted_n": 128,
                                        "predicted_ms": 128.0 / rate * 1000.0, "predicted_per_token_ms": 1000.0 / rate, "predicted_per_second": rate}
                        });
                        write(
                            root,
                            &format!("kv/{q}/{kv}/symmetric-{sym}/ctx{ctx}/run{run}.json"),
                            &body.to_string(),
                        );
                        n += 1;
                    }
                }
            }
        }
    }
    n
}

/// Two runs of one harness; in the later one the server was down, every text is the error and
/// `success` still says true.
fn outage(root: &Path) {
    for (stamp, ok) in [("1759099000", true), ("1759186372", false)] {
        let results: Vec<serde_json::Value> = (0..5)
            .map(|i| {
                let (text, tokens, secs) = if ok {
                    ("Whoa, what a drop! Legendary loot at last.".to_string(), 40 + i, 2.9 + 0.1 * wiggle(i))
                } else {
                    ("Error generating banter: All connection attempts failed".to_string(), 7, 6.9 + 0.05 * wiggle(i))
                };
                serde_json::json!({"test_name": format!("case {i}"), "generation_time_ms": secs * 1000.0, "tokens": tokens,
                                   "tokens_per_second": tokens as f64 / secs, "banter_text": text, "success": true})
            })
            .collect();
        let doc = serde_json::json!({"test_timestamp": stamp.parse::<f64>().unwrap(), "results": results});
        write(root, &format!("runs/baseline_test_results_{stamp}.json"), &doc.to_string());
    }
}

/// An Ollama sweep run in a fixed order (num_ctx outermost, temperature innermost): a real
/// num_ctx effect, and each num_ctx change reloads the model (a cold start in `load_s`).
fn sweep(root: &Path) -> String {
    let mut s = String::from(
        "timestamp,model,num_ctx,temperature,ttft_s,tokens_s,load_s,eval_count,error\n",
    );
    let mut i = 0;
    for (c, base) in [(1024, 78.0), (2048, 75.0), (4096, 70.0)] {
        for rep in 0..2 {
            for t in [0.2, 0.4, 0.8] {
                let cold = rep == 0 && t == 0.2;
                let load = if cold { 5.5 + 0.1 * wiggle(i) } else { 0.08 + 0.002 * wiggle(i) };
                let _ = writeln!(
                    s,
                    "2030-01-02T05:{:02}:00,llama3.1:8b,{c},{t},{:.4},{:.2},{load:.4},120,",
                    i,
                    load + 0.01,
                    base * (1.0 + 0.005 * wiggle(i + 1))
                );
                i += 1;
            }
        }
    }
    write(root, "sweep/ollama_param_tuning.csv", &s);
    write(root, "copy/ollama_param_tuning.csv", &s);
    s
}

fn corpus(root: &Path) {
    llama_bench(root);
    ollama(root);
    factorial(root);
    outage(root);
    sweep(root);
    write(root, "notes.md", "# Notes\n\nThe 1b model reaches about 120.0 tok/s.\n\nThe gemma3:4b model reaches 250 tok/s.\n");
    write(root, "bad.json", "{oops");
}

/// A hash of every file and its path: the study must not change the folder.
fn tree_hash(root: &Path) -> String {
    let mut files = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        h.update(f.to_string_lossy().as_bytes());
        h.update(std::fs::read(&f).unwrap());
    }
    format!("{:x}", h.finalize())
}

fn study_of(root: &Path) -> Study {
    analysis::study(root, &Default::default()).unwrap()
}

fn finding(
    s: &Study,
    pred: impl Fn(&analysis::findings::Finding) -> bool,
) -> &analysis::findings::Finding {
    s.findings.iter().find(|f| pred(f)).unwrap_or_else(|| {
        let all: Vec<&str> = s.findings.iter().map(|f| f.sentence.as_str()).collect();
        panic!("no such finding among:\n{}", all.join("\n"))
    })
}

#[test]
fn the_experiments_the_data_was_collected_for() {
    let d = tempdir();
    corpus(d.path());
    // to read the corpus as a user would: CHIMERA_TEST_CORPUS=DIR writes a copy there
    if let Some(dir) = std::env::var_os("CHIMERA_TEST_CORPUS") {
        corpus(Path::new(&dir));
    }
    let before = tree_hash(d.path());
    let s = study_of(d.path());
    assert_eq!(tree_hash(d.path()), before, "nothing in the folder changed");

    // llama-bench: pp and tg never pooled, the threads effect on each, the crashed test failed
    let tg = finding(&s, |f| f.sentence.contains("`n_threads` 8 gives the highest `tg t/s`"));
    assert!(tg.sentence.contains("50") && tg.sentence.contains("Welch"), "{}", tg.sentence);
    finding(&s, |f| f.sentence.contains("`n_threads` 8 gives the highest `pp t/s`"));
    assert!(
        s.experiments.iter().all(|e| e.measure != "avg_ts"),
        "llama-bench rates are per test kind"
    );
    let crashed =
        s.failures.iter().find(|g| g.cause == "no result recorded").expect("the null test failed");
    assert_eq!(crashed.count, 1);

    // Ollama: rates from nanosecond counts and durations, the models compared
    let o = s
        .families
        .iter()
        .flat_map(|f| &f.records)
        .find(|r| r.file == "ollama/gemma3_1b.json")
        .unwrap();
    let want = 200.0 / (200.0 / (120.0 * (1.0 + 0.02 * wiggle(0))));
    assert!((o.measures["eval_rate"].value - want).abs() < 1e-3, "{:?}", o.measures);
    assert!((o.measures["load_duration"].value - 3000.0).abs() < 1e-9, "ns read as ms");
    let m = finding(&s, |f| f.sentence.contains("`eval_rate`") && f.kind == Kind::Effect);
    assert!(m.sentence.contains("gemma3:1b") && m.sentence.contains("gemma3:4b"), "{}", m.sentence);

    // the factorial in folder names: four factors found, the two that matter stated
    let e = s
        .experiments
        .iter()
        .find(|e| e.measure == "timings.predicted_per_second")
        .expect("the factorial");
    let names: Vec<&str> = e.factors.iter().map(|f| f.name.as_str()).collect();
    for want in ["quant", "kv type", "symmetric", "ctx"] {
        assert!(names.contains(&want), "{names:?}");
    }
    let (_, a) = s.experiment(&e.id).unwrap();
    assert_eq!((a.design.as_str(), a.n, a.cells), ("factorial", 32, 16));
    let eff = |n: &str| a.effects.iter().find(|x| x.name == n).unwrap();
    assert!(eff("quant").significant() && eff("kv type").significant());
    assert!(!eff("symmetric").significant() && !eff("ctx").significant());
    assert_eq!(eff("kv type").levels[eff("kv type").best].level, "f16");
    finding(&s, |f| {
        f.sentence.contains("`kv type` f16 gives the highest `timings.predicted_per_second`")
    });

    // the outage: stated as one, and no conclusion rests on its runs
    let out = finding(&s, |f| f.kind == Kind::Outage);
    assert!(
        out.sentence.contains("runs/baseline_test_results_1759186372.json")
            && out.sentence.contains("change against the valid runs"),
        "{}",
        out.sentence
    );
    for e in s.experiments.iter() {
        assert!(
            e.obs.iter().all(|o| o.file != "runs/baseline_test_results_1759186372.json"),
            "{} uses the outage",
            e.id
        );
    }
    assert!(
        !s.findings
            .iter()
            .any(|f| f.kind == Kind::Drift && f.sentence.contains("tokens_per_second")),
        "an outage is not a drift"
    );

    // the sweep: cold starts as one pattern, kept out of load times; the fixed order named
    let cold = finding(&s, |f| f.kind == Kind::ColdStarts && f.sentence.contains("`load`"));
    assert!(
        cold.sentence.contains("3 of 18 runs") && cold.sentence.contains("`num_ctx`"),
        "{}",
        cold.sentence
    );
    let ctx = finding(&s, |f| {
        f.kind == Kind::Scaling
            && f.sentence.contains(
                "`tokens_s` goes from 78.01 tok/s at `num_ctx` 1024 to 70.04 tok/s at 4096",
            )
    });
    assert!(ctx.evidence.iter().any(|e| e.contains("fixed order")), "{:?}", ctx.evidence);
    assert!(ctx.evidence.iter().any(|e| e.contains("ANOVA")), "{:?}", ctx.evidence);
    let load = s
        .experiments
        .iter()
        .find(|e| {
            e.measure == "load"
                && e.family
                    == s.experiments.iter().find(|x| x.measure == "tokens_s").unwrap().family
        })
        .unwrap();
    assert_eq!(load.left_out.cold, 3);

    // the copy counted once; the report's figures checked; the unreadable file named
    let copy = s.files.iter().find(|f| f.path == "sweep/ollama_param_tuning.csv").unwrap();
    assert_eq!(
        copy.copy_of.as_deref(),
        Some("copy/ollama_param_tuning.csv"),
        "the first in walk order is kept"
    );
    let verdict =
        |t: &str| s.claims.iter().find(|c| c.text.starts_with(t)).map(|c| c.verdict.as_str());
    assert_eq!(verdict("250 tok/s"), Some("contradicted"));
    let bad = s.files.iter().find(|f| f.path == "bad.json").unwrap();
    assert!(bad.status.starts_with("cannot be read: JSON"), "{}", bad.status);

    // a report a person reads
    assert!(s.key_findings().len() <= 30);
    let mut shapes: std::collections::HashMap<String, usize> = Default::default();
    for f in s.key_findings() {
        *shapes.entry(f.shape()).or_default() += 1;
    }
    assert!(shapes.values().all(|n| *n <= 3), "{shapes:?}");
    let summary = analysis::report::summary_items(&s);
    assert!((1..=8).contains(&summary.len()));
    assert!(summary.iter().any(|f| f.kind == Kind::Outage), "the outage changes a conclusion");
}

/// One llama-bench `-o jsonl` line (one repetition) as llama-bench 6865 writes it.
fn lb_line(commit: &str, model: &str, np: u32, ng: u32, depth: u32, ts: f64) -> String {
    let ns = ((np + ng) as f64 / ts * 1e9) as u64;
    format!(
        "{{\"build_commit\": \"{commit}\", \"build_number\": 6865, \"cpu_info\": \"Example APU\", \"gpu_info\": \"Example iGPU\", \"backends\": \"ROCm\", \"model_filename\": \"/models/{model}.gguf\", \"model_type\": \"{model} Q4_K - Medium\", \"model_size\": 799862912, \"model_n_params\": 1235814432, \"n_batch\": 2048, \"n_ubatch\": 512, \"n_threads\": 16, \"cpu_mask\": \"0x0\", \"cpu_strict\": false, \"poll\": 50, \"type_k\": \"f16\", \"type_v\": \"f16\", \"n_gpu_layers\": 99, \"n_cpu_moe\": 0, \"split_mode\": \"layer\", \"main_gpu\": 0, \"no_kv_offload\": false, \"flash_attn\": true, \"devices\": \"auto\", \"tensor_split\": \"0.00\", \"tensor_buft_overrides\": \"none\", \"use_mmap\": false, \"embeddings\": false, \"no_op_offload\": 0, \"no_host\": false, \"n_prompt\": {np}, \"n_gen\": {ng}, \"n_depth\": {depth}, \"test_time\": \"2030-01-02T03:04:05Z\", \"avg_ns\": {ns}, \"stddev_ns\": 0, \"avg_ts\": {ts:.6}, \"stddev_ts\": 0.000000, \"samples_ns\": [ {ns} ],\"samples_ts\": [ {ts:.2} ]}}\n"
    )
}

/// `<model>.<build>.jsonl`, one repetition per depth (llama-bench `-d 0,1024,…`): a tuned build
/// whose prompt lead grows with depth, a build whose generation falls behind with depth, built
/// at another commit; and a quick test whose file holds the tool's log lines too.
fn builds(root: &Path) {
    let depths = [0u32, 1024, 4096, 16384, 65536];
    let drop = [1.0, 0.8, 0.55, 0.3, 0.1];
    let variants: [(&str, &str, [f64; 5], [f64; 5]); 3] = [
        ("default-hip", "aaaa111", [1.0; 5], [1.0; 5]),
        (
            "default-rocwmma",
            "aaaa111",
            [1.01, 0.99, 0.95, 0.85, 0.75],
            [1.0, 0.97, 0.85, 0.65, 0.42],
        ),
        ("tuned-tile", "bbbb222", [1.02, 1.05, 1.12, 1.35, 1.6], [1.0, 1.0, 0.99, 1.0, 1.0]),
    ];
    for (model, pp, tg) in [("qwen3-4b", 1500.0, 50.0), ("llama32-1b", 4700.0, 195.0)] {
        for (v, commit, fp, ft) in &variants {
            let mut s = String::new();
            for (i, d) in depths.iter().enumerate() {
                let w = 1.0 + 0.002 * wiggle(i);
                s += &lb_line(commit, model, 512, 0, *d, pp * drop[i] * fp[i] * w);
                s += &lb_line(commit, model, 0, 128, *d, tg * (1.0 - 0.1 * i as f64) * ft[i] * w);
            }
            write(root, &format!("wmma/{model}.{v}.jsonl"), &s);
        }
    }
    let mut q =
        "ggml_cuda_init: found 1 ROCm devices:\n  Device 0: Example iGPU, gfx1151\n".to_string();
    q += &lb_line("aaaa111", "llama32-1b", 512, 0, 0, 4800.0);
    q += &lb_line("aaaa111", "llama32-1b", 512, 0, 1024, 4100.0);
    write(root, "wmma/quick-test.jsonl", &q);
}

#[test]
fn builds_named_after_the_model_are_compared_at_each_depth() {
    let d = tempdir();
    builds(d.path());
    let s = study_of(d.path());
    // the file name's second field is the build compared; models are never pooled
    let e = s
        .experiments
        .iter()
        .find(|e| {
            e.measure == "pp t/s" && e.split == [("model".to_string(), "qwen3-4b".to_string())]
        })
        .expect("a pp experiment for one model");
    let names: Vec<&str> = e.factors.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"variant") && names.contains(&"n_depth"), "{names:?}");
    assert!(
        e.notes.iter().any(|n| n.contains("`build_commit`") && n.contains("`variant`")),
        "{:?}",
        e.notes
    );
    // the tuned build against the default where the other settings match: the matched ratios
    let (_, a) = s.experiment(&e.id).unwrap();
    let v = a.effects.iter().find(|x| x.name == "variant").unwrap();
    let level = |n: &str| v.levels.iter().position(|l| l.level == n).unwrap();
    let (hip, tile) = (level("default-hip"), level("tuned-tile"));
    let m = v
        .pairs
        .iter()
        .find(|p| p.a == hip && p.b == tile)
        .and_then(|p| p.matched.as_ref())
        .expect("matched");
    let want = [1.02f64, 1.05, 1.12, 1.35, 1.6].iter().map(|r| r.ln()).sum::<f64>() / 5.0;
    assert!((m.ratio.ln() - want).abs() < 0.01, "{} vs {}", m.ratio, want.exp());
    assert_eq!(m.cells, 5);
    // the gaps that grow with depth: one finding per measure across the models, with its test
    let t = finding(&s, |f| f.kind == Kind::Interaction && f.sentence.contains("`tg t/s`"));
    assert!(t.sentence.contains("`variant`") && t.sentence.contains("`n_depth`"), "{}", t.sentence);
    assert!(
        t.sentence.contains("-58.0 % at 65536") && t.sentence.contains("p = 0.017"),
        "{}",
        t.sentence
    );
    assert!(
        t.evidence
            .iter()
            .any(|l| l.contains("default-rocwmma / default-hip") && l.contains("0.42")),
        "{:?}",
        t.evidence
    );
    let p = finding(&s, |f| f.kind == Kind::Interaction && f.sentence.contains("`pp t/s`"));
    assert!(p.sentence.contains("tuned-tile against"), "{}", p.sentence);
    assert!(
        !s.findings.iter().any(|f| f.kind == Kind::NoEffect && f.sentence.contains("`variant`")),
        "a gap that grows with depth is not 'no effect'"
    );
    // the log lines around the quick test's records are skipped, not the file
    let q = s.files.iter().find(|f| f.path == "wmma/quick-test.jsonl").unwrap();
    assert_eq!(q.records, 2, "{}", q.status);
    assert!(q.status.contains("not JSON"), "{}", q.status);
}

#[test]
fn ingest_on_the_command_line_and_bad_input() {
    let d = tempdir();
    corpus(d.path());
    let o = chimera(&["ingest", d.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("F1*") && text.contains("outage"), "{text}");
    let o = chimera(&["ingest", d.path().to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in [
        "files",
        "families",
        "experiments",
        "failures",
        "claims",
        "catalogue",
        "outliers",
        "findings",
        "executive_summary",
    ] {
        assert!(!v[k].is_null(), "{k}");
    }
    let o = chimera(&["ingest", "/no/such/folder"]);
    assert_user_error(&o, "/no/such/folder");
    let f = d.path().join("notes.md");
    let o = chimera(&["ingest", f.to_str().unwrap()]);
    assert_user_error(&o, "not a directory");
}

/// A known answer for the one-way design: the ANOVA, Kruskal–Wallis and Holm-corrected pairs of
/// three levels of five runs, against scipy 1.17.1 (`f_oneway`, `kruskal`) and statsmodels
/// 0.15.0 (`multipletests(method="holm")` over `ttest_ind(equal_var=False)` p-values).
#[test]
fn k_levels_match_scipy_and_statsmodels() {
    let d = tempdir();
    let mut csv = String::from("tag,tokens_s\n");
    let data = [
        ("q4_0", [74.11, 76.96, 76.72, 78.26, 76.9]),
        ("q5_K_M", [65.7, 65.03, 65.2, 64.6, 65.37]),
        ("q8_0", [46.9, 46.64, 46.21, 46.3, 46.8]),
    ];
    for (t, v) in data {
        for x in v {
            let _ = writeln!(csv, "{t},{x}");
        }
    }
    write(d.path(), "quant.csv", &csv);
    let s = study_of(d.path());
    let (_, a) = s.experiment(&s.experiments[0].id).unwrap();
    let e = &a.effects[0];
    assert_eq!(a.design, "k levels");
    let close = |x: f64, y: f64, tol: f64| (x - y).abs() <= tol * y.abs();
    assert!(close(e.stat, 1347.5094383911933, 1e-9), "F = {}", e.stat);
    assert!(close(e.p.unwrap(), 7.58821750626701e-15, 1e-4), "p = {:?}", e.p);
    let k = e.kruskal.unwrap();
    assert!(close(k.h, 12.5, 1e-9) && close(k.p, 0.0019304541362277093, 1e-9), "{k:?}");
    let holm: Vec<f64> = e.pairs.iter().filter_map(|p| p.p_holm).collect();
    assert_eq!(holm.len(), 3);
    for (x, want) in
        holm.iter().zip([3.184381796440126e-05, 1.4292279828346805e-06, 9.974964201072713e-12])
    {
        assert!(close(*x, want, 1e-4), "{holm:?}");
    }
}

/// A summary table as people write one: per-run rows for one engine, and for the other only
/// `mean±sd` of three runs (`r3_mean_stdev`), beside a summary row that restates the first
/// engine's runs. Read as the runs behind it: the restating row left out, the other kept as a
/// summary of 3, the two engines compared from their summaries. Known answer: the same table
/// with the second engine's three runs written out gives the same Welch t, df and p.
#[test]
fn summary_rows_count_as_the_runs_they_summarise() {
    let (llm, other) = ([131.2, 134.8, 132.8], [105.0, 108.0, 112.47]);
    let mean = other.iter().sum::<f64>() / 3.0;
    let sd = (other.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
    let llm_mean = llm.iter().sum::<f64>() / 3.0;
    let rows = |summarised: bool| {
        let mut s = String::from("engine,run,tok_s\n");
        for (i, v) in llm.iter().enumerate() {
            writeln!(s, "llm.rs,r{},{v}", i + 1).unwrap();
        }
        if summarised {
            writeln!(s, "llm.rs,r3_mean_stdev,{llm_mean:.2}±1.80").unwrap();
            writeln!(s, "llama.cpp,r3_mean_stdev,{mean:.12}±{sd:.12}").unwrap();
        } else {
            for (i, v) in other.iter().enumerate() {
                writeln!(s, "llama.cpp,r{},{v}", i + 1).unwrap();
            }
        }
        s
    };
    let welch = |summarised: bool| {
        let d = tempdir();
        write(d.path(), "results_summary.csv", &rows(summarised));
        let s = study_of(d.path());
        assert_eq!(s.records, if summarised { 4 } else { 6 }, "the restating row is left out");
        let i = s.experiments.iter().position(|e| e.measure == "tok_s").expect("an experiment");
        let eff = &s.analyses[i].effects[0];
        assert_eq!(eff.name, "engine");
        assert!(eff.levels.iter().all(|l| l.n == 3), "{:?}", eff.levels);
        eff.pairs[0].welch.expect("a Welch test")
    };
    let (a, b) = (welch(true), welch(false));
    for (x, y, what) in [(a.t.abs(), b.t.abs(), "t"), (a.df, b.df, "df"), (a.p, b.p, "p")] {
        assert!(
            (x - y).abs() <= 1e-9 * y.abs().max(1.0),
            "{what}: {x} from summaries, {y} from runs"
        );
    }
    assert!(a.p < 0.01, "{}", a.p);
}
