//! The built binary: every bad input is one error line and exit 2; run's options and determinism.

use crate::util::*;
use chimera::gguf::TensorType;
use std::path::Path;

fn write(p: &Path, bytes: &[u8]) {
    std::fs::write(p, bytes).unwrap();
}

fn show(p: &Path) -> std::process::Output {
    chimera(&["show", p.to_str().unwrap()])
}

#[test]
fn tiny_model_loads_and_generates() {
    let d = tempdir();
    let p = d.path().join("tiny.gguf");
    tiny_model(&p, TensorType::Q8_0, |_| {});
    let o = chimera(&[
        "run",
        p.to_str().unwrap(),
        "ab",
        "--num-predict",
        "5",
        "--temperature",
        "0",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["prompt_ids"].as_array().unwrap()[0], 2);
    assert_eq!(v["eval_count"], v["ids"].as_array().unwrap().len());
    assert!(v["prompt_eval_duration"].as_u64().unwrap() > 0 && v["ttft"].as_u64().unwrap() > 0);
}

#[test]
fn not_a_gguf() {
    let d = tempdir();
    let p = d.path().join("notes.gguf");
    write(&p, b"hello, this is text and not a model file at all");
    assert_user_error(&show(&p), "not a valid GGUF file: bad magic");
}

#[test]
fn empty_file() {
    let d = tempdir();
    let p = d.path().join("empty.gguf");
    write(&p, b"");
    assert_user_error(&show(&p), "empty");
}

fn valid_bytes(d: &Path) -> Vec<u8> {
    let p = d.join("ok.gguf");
    tiny_model(&p, TensorType::F32, |_| {});
    std::fs::read(p).unwrap()
}

#[test]
fn truncated_in_header_metadata_and_data() {
    let d = tempdir();
    let full = valid_bytes(d.path());
    let p = d.path().join("cut.gguf");
    for (len, needle) in [
        (12, "truncated"),
        (400, "remain"),
        (3000, "tokenizer.ggml"),
        (full.len() - 100, "runs past the end"),
    ] {
        write(&p, &full[..len]);
        let o = show(&p);
        assert_user_error(&o, needle);
        assert!(stderr(&o).contains("cut.gguf"), "names the file");
    }
}

#[test]
fn unknown_version() {
    let d = tempdir();
    let mut b = valid_bytes(d.path());
    b[4..8].copy_from_slice(&7u32.to_le_bytes());
    let p = d.path().join("v7.gguf");
    write(&p, &b);
    assert_user_error(&show(&p), "unsupported GGUF version 7");
}

#[test]
fn absurd_counts_and_lengths_are_refused_before_allocating() {
    let d = tempdir();
    let b = valid_bytes(d.path());
    let p = d.path().join("absurd.gguf");
    let mut t = b.clone();
    t[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    write(&p, &t);
    assert_user_error(&show(&p), "tensor count");
    let mut k = b.clone();
    k[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    write(&p, &k);
    assert_user_error(&show(&p), "metadata key count");
    let mut s = b;
    s[24..32].copy_from_slice(&(1u64 << 50).to_le_bytes());
    write(&p, &s);
    assert_user_error(&show(&p), "string length");
}

#[test]
fn wrong_architecture() {
    let d = tempdir();
    let p = d.path().join("llama.gguf");
    tiny_model(&p, TensorType::F32, |md| {
        md.insert("general.architecture".into(), chimera::gguf::Value::String("llama".into()));
    });
    assert_user_error(&show(&p), "general.architecture is 'llama'");
}

#[test]
fn missing_keys_are_all_named() {
    let d = tempdir();
    let p = d.path().join("nokey.gguf");
    tiny_model(&p, TensorType::F32, |md| {
        md.remove("gemma3.block_count");
        md.remove("gemma3.feed_forward_length");
    });
    let o = show(&p);
    assert_user_error(&o, "gemma3.block_count");
    assert!(stderr(&o).contains("gemma3.feed_forward_length"));
}

#[test]
fn unsupported_tensor_type() {
    let d = tempdir();
    let b = valid_bytes(d.path());
    // the first tensor header follows the metadata; find its type field by the name
    let name = b"token_embd.weight";
    let at = b.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    let n_dims = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    let ty_at = at + 4 + 8 * n_dims;
    let mut t = b.clone();
    t[ty_at..ty_at + 4].copy_from_slice(&99u32.to_le_bytes());
    let p = d.path().join("type99.gguf");
    write(&p, &t);
    assert_user_error(&show(&p), "unsupported tensor type id 99");
}

#[test]
fn invalid_option_values_name_the_option() {
    let d = tempdir();
    let p = d.path().join("tiny.gguf");
    tiny_model(&p, TensorType::F32, |_| {});
    let m = p.to_str().unwrap();
    for (args, needle) in [
        (vec!["--top-p", "1.5"], "top_p"),
        (vec!["--temperature", "-1"], "temperature"),
        (vec!["--num-ctx", "0"], "num_ctx"),
    ] {
        let mut a = vec!["run", m, "hi"];
        a.extend(args);
        assert_user_error(&chimera(&a), needle);
    }
    assert_user_error(&chimera(&["run", m, "--prompt-ids", "[1, 999999]"]), "999999");
}

#[test]
fn missing_model_name_lists_sources() {
    assert_user_error(&chimera(&["run", "no-such-model", "hi"]), "no-such-model");
    assert_user_error(&chimera(&["run", "/no/such/file.gguf", "hi"]), "/no/such/file.gguf");
}

#[test]
fn fixed_seed_repeats_and_temperature_zero_is_greedy() {
    let m = real_model();
    let m = m.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut a = vec![
            "run",
            m,
            "Once upon a time",
            "--num-predict",
            "16",
            "--json",
            "--num-thread",
            "2",
        ];
        a.extend_from_slice(extra);
        let o = chimera(&a);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(run(&["--seed", "42"]), run(&["--seed", "42"]));
    let greedy = run(&["--temperature", "0", "--repeat-penalty", "1"]);
    assert_eq!(greedy, run(&["--temperature", "0", "--repeat-penalty", "1", "--seed", "7"]));
    // top_k 1 leaves only the arg-max whatever the temperature
    assert_eq!(greedy, run(&["--top-k", "1", "--repeat-penalty", "1", "--seed", "3"]));
}

#[test]
fn stop_strings_are_trimmed_and_end_with_stop() {
    let m = real_model();
    let o = chimera(&[
        "run",
        m.to_str().unwrap(),
        "The capital of France is",
        "--temperature",
        "0",
        "--repeat-penalty",
        "1",
        "--num-predict",
        "40",
        "--stop",
        "France.",
        "--json",
        "--logprobs",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["done_reason"], "stop");
    assert_eq!(v["response"], " the capital of the country of ");
    let lp = v["logprobs"].as_array().unwrap();
    assert_eq!(lp.len(), v["ids"].as_array().unwrap().len());
    assert_eq!(lp[0]["top"].as_array().unwrap().len(), 3);
}

#[test]
fn long_prompt_is_truncated_with_a_warning_or_refused() {
    let m = real_model();
    let long = "word ".repeat(300);
    let o = chimera(&[
        "run",
        m.to_str().unwrap(),
        &long,
        "--num-ctx",
        "128",
        "--num-predict",
        "4",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning: the prompt has"));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["prompt_eval_count"], 128);
    let o = chimera(&["run", m.to_str().unwrap(), &long, "--num-ctx", "128", "--no-truncate"]);
    assert_user_error(&o, "num_ctx 128");
}

#[test]
fn context_shift_continues_past_num_ctx_and_no_shift_stops() {
    let m = real_model();
    let args = |shift: bool| {
        let mut a = vec![
            "run",
            m.to_str().unwrap(),
            "Count: one two three",
            "--num-ctx",
            "32",
            "--num-predict",
            "48",
            "--json",
            "--seed",
            "1",
        ];
        if !shift {
            a.push("--no-shift");
        }
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| {
        let o = chimera(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let v = run(args(true));
    let n = v["ids"].as_array().unwrap().len();
    assert!(n > 32 - 6 || v["done_reason"] == "stop", "generated {n}");
    let v = run(args(false));
    assert!(v["ids"].as_array().unwrap().len() <= 32 - 6 + 1);
}

#[test]
fn show_reports_plan_and_kv() {
    let o = chimera(&["show", real_model().to_str().unwrap(), "--num-gpu", "9", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["config"]["n_layer"], 18);
    assert_eq!(v["offload"]["gpu_slots"], 9);
    assert_eq!(v["offload"]["head"], "Cpu");
    assert_eq!(v["tensor_types"]["Q5_0"]["count"], 81);
    assert!(v["kv_bytes"].as_u64().unwrap() > 0);
    assert_eq!(v["config"]["sliding_window"], 512);
    let o = chimera(&["show", real_model().to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("sliding window 512,"), "{text}");
    assert!(!text.contains("Some(") && !text.contains("None"), "{text}");
    assert!(text.contains("KV cache 27.0 MiB (f16)"), "{text}");
}

/// `--kv-type` and OLLAMA_KV_CACHE_TYPE choose the KV cache type (a flag wins); a bad value names
/// the flag or the variable.
#[test]
fn kv_type_comes_from_the_flag_or_ollamas_variable() {
    let m = real_model();
    let show = |args: &[&str], env: Option<&str>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_chimera"));
        c.args(["show", m.to_str().unwrap(), "--json"]).args(args);
        match env {
            Some(v) => c.env("OLLAMA_KV_CACHE_TYPE", v),
            None => c.env_remove("OLLAMA_KV_CACHE_TYPE"),
        };
        c.output().unwrap()
    };
    let kv = |o: std::process::Output| {
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (v["kv_type"].as_str().unwrap().to_string(), v["kv_bytes"].as_u64().unwrap())
    };
    let (t, f16) = kv(show(&[], None));
    assert_eq!(t, "f16");
    let (t, q8) = kv(show(&[], Some("q8_0")));
    assert_eq!(t, "q8_0");
    let (t, f32) = kv(show(&["--kv-type", "f32"], Some("q8_0")));
    assert_eq!(t, "f32");
    assert_eq!((f32, q8 * 32 / 17), (2 * f16, f16));
    assert_user_error(&show(&["--kv-type", "f8"], None), "--kv-type: 'f8'");
    assert_user_error(&show(&[], Some("bf16")), "OLLAMA_KV_CACHE_TYPE: 'bf16'");
}

/// A GGUF's own Jinja chat template is rendered for `run` (gemma templates get llama.cpp's
/// gemma turn format instead); `--raw` skips it; a template that fails names the key, exit 2.
#[test]
fn chat_templates_are_applied() {
    let d = tempdir();
    let p = d.path().join("chatml.gguf");
    let chatml = "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}\
        {% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}";
    tiny_model(&p, TensorType::F32, |md| {
        md.insert("tokenizer.chat_template".into(), chimera::gguf::Value::String(chatml.into()));
    });
    let path = p.to_str().unwrap();
    let ids = |args: &[&str]| -> serde_json::Value {
        let o = chimera(args);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let run = |prompt: &str, raw: bool| {
        let mut a = vec!["run", path, prompt, "--num-predict", "1", "--json"];
        if raw {
            a.push("--raw");
        }
        ids(&a)["prompt_ids"].clone()
    };
    let tokenized = |text: &str| ids(&["tokenize", path, text, "--json"])["ids"].clone();
    assert_eq!(run("ab", false), tokenized("[user]ab[assistant]"));
    assert_eq!(run("ab", true), tokenized("ab"));

    let q = d.path().join("raising.gguf");
    tiny_model(&q, TensorType::F32, |md| {
        let t = "{{ raise_exception('system messages are not supported') }}";
        md.insert("tokenizer.chat_template".into(), chimera::gguf::Value::String(t.into()));
    });
    let o = chimera(&["run", q.to_str().unwrap(), "ab", "--num-predict", "1"]);
    assert_user_error(&o, "tokenizer.chat_template: ");
    assert!(stderr(&o).contains("system messages are not supported"));
}
