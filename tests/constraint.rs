//! Structured outputs, grounded decoding and the prompt cache, on the real model.

use crate::util::*;
use chimera::agent::{grounding, narrative};
use chimera::engine::{Engine, GenerateOptions, LoadOptions};
use chimera::sampler::SamplerOptions;

const PROMPTS: [&str; 5] = [
    "The capital of France is",
    "List three colors:",
    "Describe a cat in JSON:",
    "Here is the weather report for Monday:",
    "def add(a, b):",
];

/// `--format json` gives text that parses, on five prompts with Ollama's sampling defaults.
#[test]
fn format_json_parses() {
    let m = real_model();
    for (i, p) in PROMPTS.iter().enumerate() {
        let seed = (i + 1).to_string();
        let o = chimera(&[
            "run",
            m.to_str().unwrap(),
            p,
            "--format",
            "json",
            "--num-predict",
            "96",
            "--seed",
            &seed,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = String::from_utf8_lossy(&o.stdout);
        let v: Result<serde_json::Value, _> = serde_json::from_str(text.trim());
        assert!(v.is_ok(), "{p:?}: {text:?} does not parse");
    }
}

/// `--format SCHEMA.json`: the output validates against the schema.
#[test]
fn format_schema_validates() {
    let d = tempdir();
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 24},
            "legs": {"type": "integer", "minimum": 0, "maximum": 8},
            "colour": {"enum": ["black", "white", "ginger"]}
        },
        "required": ["name", "legs", "colour"],
        "additionalProperties": false
    });
    let path = d.path().join("cat.json");
    std::fs::write(&path, schema.to_string()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let m = real_model();
    for seed in ["1", "2", "3"] {
        let o = chimera(&[
            "run",
            m.to_str().unwrap(),
            "Describe a cat:",
            "--format",
            path.to_str().unwrap(),
            "--num-predict",
            "96",
            "--seed",
            seed,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("parses");
        assert!(validator.is_valid(&v), "{v} does not validate");
    }
}

/// `--grammar FILE` (Lark) constrains the output; bad grammars and schema files are named.
#[test]
fn lark_grammars_and_bad_inputs() {
    let d = tempdir();
    let g = d.path().join("yn.lark");
    std::fs::write(&g, "start: \"yes\" | \"no\"\n").unwrap();
    let m = real_model();
    let m = m.to_str().unwrap();
    let o = chimera(&[
        "run",
        m,
        "Is the sky blue? Answer:",
        "--grammar",
        g.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(["yes", "no"].contains(&v["response"].as_str().unwrap()), "{v}");
    assert_eq!(v["done_reason"], "stop");
    let bad = d.path().join("bad.lark");
    std::fs::write(&bad, "start: undefined_rule\n").unwrap();
    assert_user_error(&chimera(&["run", m, "x", "--grammar", bad.to_str().unwrap()]), "bad.lark");
    let missing = d.path().join("none.json");
    assert_user_error(
        &chimera(&["run", m, "x", "--format", missing.to_str().unwrap()]),
        "none.json",
    );
    let notjson = d.path().join("schema.json");
    std::fs::write(&notjson, "{ not json").unwrap();
    assert_user_error(
        &chimera(&["run", m, "x", "--format", notjson.to_str().unwrap()]),
        "schema.json",
    );
}

fn engine(num_ctx: usize, num_batch: usize, swa_full: bool) -> Engine {
    let opts = LoadOptions { num_ctx, num_batch, num_gpu: 0, swa_full, ..LoadOptions::default() };
    Engine::load(&real_model(), opts).unwrap()
}

fn gen(temperature: f32, seed: i64, n: i64) -> GenerateOptions {
    GenerateOptions {
        num_predict: n,
        sampler: SamplerOptions { temperature, seed, repeat_penalty: 1.0, ..Default::default() },
        ..Default::default()
    }
}

/// A prompt under which unconstrained greedy decoding writes numbers outside the allowed set
/// writes only allowed numbers under the grounding grammar, over several seeds at T = 0.8.
#[test]
fn the_grounding_grammar_admits_only_the_given_numbers() {
    let mut e = engine(1024, 512, false);
    let prompt = e.prompt_ids("In 2024 the benchmark measured a throughput of", true).unwrap();
    let allowed: Vec<String> = ["102.5", "0.125", "51"].map(String::from).to_vec();
    let outside = |text: &str| -> Vec<String> {
        grounding::numbers(text).into_iter().map(|n| n.0).filter(|n| !allowed.contains(n)).collect()
    };
    let free = e.generate(&prompt, &gen(0.0, 1, 32), &mut |_| {}).unwrap();
    assert!(
        !outside(&free.response).is_empty(),
        "unconstrained greedy must invent a number: {:?}",
        free.response
    );
    let mut wrote_numbers = 0;
    for seed in 1..=6 {
        let mut o = gen(0.8, seed, 40);
        o.grammar = Some(narrative::grounding_grammar(&allowed, &["a.csv".into()], 1, false));
        let out = e.generate(&prompt, &o, &mut |_| {}).unwrap();
        // a reply cut by num_predict may end inside an allowed number ("1" of "102.5"): that
        // unfinished tail is not a figure the model wrote
        let text = match out.done_reason {
            chimera::engine::DoneReason::Length => {
                out.response.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.')
            }
            _ => out.response.as_str(),
        };
        assert!(outside(text).is_empty(), "seed {seed}: {:?}", out.response);
        wrote_numbers += usize::from(!grounding::numbers(&out.response).is_empty());
    }
    assert!(wrote_numbers > 0, "the model used an allowed number at least once");
}

/// The second of two calls that share a prefix evaluates only its suffix, and its logits equal a
/// cold call's within 1e-4; a prefix whose sliding-window ring was overwritten is evaluated again
/// (and reused when sliding layers keep every position).
#[test]
fn the_prompt_cache_reuses_a_shared_prefix() {
    let text = std::fs::read_to_string(goldens().join("perplexity-corpus-GPL-3.txt")).unwrap();
    let mut warm = engine(2048, 64, false);
    let ids = warm.tokenizer.encode(&text, true, true).unwrap();
    let (shared, b, c) = (&ids[..300], &ids[300..340], &ids[1000..1030]);
    let cat = |x: &[u32], y: &[u32]| [x, y].concat();
    assert_eq!(warm.prefill(&cat(shared, b)).unwrap(), 0);
    let cached = warm.prefill(&cat(shared, c)).unwrap();
    assert_eq!(cached, 300, "the shared prefix is reused");
    let mut cold = engine(2048, 64, false);
    assert_eq!(cold.prefill(&cat(shared, c)).unwrap(), 0);
    let diff =
        warm.logits().iter().zip(cold.logits()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(diff <= 1e-4, "max |Δlogit| {diff}");
    // generate counts only the evaluated tokens, as Ollama
    let out = warm.generate(&cat(shared, b), &gen(0.0, 1, 1), &mut |_| {}).unwrap();
    assert_eq!((out.timings.prompt_cached_count, out.timings.prompt_eval_count), (300, 40));
    // 600 tokens after the prefix overwrite the ring (window 512 + num_batch 64 cells)
    let long = &ids[300..900];
    warm.prefill(&cat(shared, long)).unwrap();
    assert_eq!(
        warm.prefill(&cat(shared, c)).unwrap(),
        0,
        "the ring no longer holds the prefix's window"
    );
    let diff =
        warm.logits().iter().zip(cold.logits()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(diff <= 1e-4, "max |Δlogit| {diff}");
    let mut full = engine(2048, 64, true);
    full.prefill(&cat(shared, long)).unwrap();
    assert_eq!(full.prefill(&cat(shared, c)).unwrap(), 300, "--swa-full keeps every position");
    let diff =
        full.logits().iter().zip(cold.logits()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(diff <= 1e-4, "max |Δlogit| {diff}");
}
