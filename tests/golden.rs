//! Parity with llama.cpp on the real gemma-3-270m Q4_K_M file (tests/data/goldens).

use crate::util::*;
use chimera::engine::{Engine, LoadOptions};
use chimera::gguf::Gguf;
use chimera::tokenizer::Tokenizer;

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

/// All 28 golden strings tokenize exactly as llama-tokenize does, with and without BOS.
#[test]
fn tokenizer_matches_llama_cpp_on_every_golden_string() {
    let g = Gguf::open(&real_model()).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let cases = read_json(&goldens().join("goldens-tokenize.json"));
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 28);
    for c in cases {
        let text = c["text"].as_str().unwrap();
        assert_eq!(tok.encode(text, true, true).unwrap(), ids(&c["ids"]), "{}", c["name"]);
        assert_eq!(tok.encode(text, false, true).unwrap(), ids(&c["ids_no_bos"]), "{}", c["name"]);
        if !c["ids_no_parse_special"].is_null() {
            assert_eq!(
                tok.encode(text, true, false).unwrap(),
                ids(&c["ids_no_parse_special"]),
                "{}",
                c["name"]
            );
        }
    }
}

/// The CLI prints the same ids (`--json`, `--no-bos`).
#[test]
fn tokenize_command_prints_golden_ids() {
    let model = real_model();
    let cases = read_json(&goldens().join("goldens-tokenize.json"));
    for c in cases.as_array().unwrap().iter().take(4) {
        let text = c["text"].as_str().unwrap();
        let o = chimera(&["tokenize", model.to_str().unwrap(), text, "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(ids(&v["ids"]), ids(&c["ids"]));
        let o = chimera(&["tokenize", model.to_str().unwrap(), text, "--no-bos"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(ids(&v), ids(&c["ids_no_bos"]));
    }
}

/// How close two top tokens may be for a rounding difference to swap them: the smallest lead that
/// an f16 KV cache (llama.cpp's and chimera's default) swaps against the goldens is 0.116
/// (long_paragraph step 8: llama.cpp −1.596 vs −1.713; chimera's f16 −1.623 vs −1.719, its f32
/// cache keeping llama.cpp's order), and llama.cpp itself swaps arg-maxes that are not near ties
/// across builds (see below).
const CLOSE: f32 = 0.15;

/// The golden top-1's lead over its top-2 at a step.
fn golden_lead(pp: &serde_json::Value) -> f32 {
    let t = &pp["top10"];
    (t[0][1].as_f64().unwrap() - t[1][1].as_f64().unwrap()) as f32
}

/// Teacher-forced against goldens-greedy.json: the same argmax at every step that is not a near
/// tie or a close second ([`CLOSE`]), first-position top-10 probabilities close, and the top-10
/// log-probabilities close.
///
/// FIXME: the bounds are 0.3 for every step's worst top-10 |Δlogprob| and 0.02 for
/// first-position probabilities. llama.cpp itself misses them: `scripts/parity-llamacpp.sh` runs
/// the llama.cpp of llama-cpp-python 0.3.36 the way the goldens were taken, and its worst step is
/// 0.75–1.08 off them (flash attention off/auto), its first position 0.040–0.049, with arg-max
/// mismatches at steps that are not near ties; built for AVX2 only, like the goldens' machine, it
/// matches them on the 6-token prompt and is 0.76 / 0.031 off on the others. The worst steps are
/// tail tokens (logprob −7 to −11) after a confident top-1, where a rounding change anywhere moves
/// them by ~1: chimera's worst went from 0.97 to 1.52 when the Q5_0 kernel split its sum over two
/// accumulators, and to 1.06 with the row-interleaved kernels. So this asserts what is stable and
/// still fails on any real error: the spread statistics of llama.cpp 0.3.36 against the goldens
/// (mean |Δlogprob| 0.112–0.114, 90th-percentile step 0.41–0.43, worst 0.75–1.08) with a small
/// margin. chimera's today with the default f16 KV cache, as the goldens were taken: mean 0.115,
/// 90th percentile 0.426, worst 0.670 (with an f32 cache 0.126, 0.487, 1.056).
#[test]
fn teacher_forced_logits_match_llama_cpp() {
    let mut e = Engine::load(
        &real_model(),
        LoadOptions { num_ctx: 1024, num_thread: 2, ..Default::default() },
    )
    .unwrap();
    let n_vocab = e.model.n_vocab();
    let g = read_json(&goldens().join("goldens-greedy.json"));
    let (mut step_worst, mut all) = (vec![], vec![]);
    for p in g["prompts"].as_array().unwrap() {
        let prompt = ids(&p["prompt_ids"]);
        let gen = ids(&p["generated_ids"]);
        let ties: Vec<u64> =
            p["near_ties"].as_array().unwrap().iter().map(|t| t["pos"].as_u64().unwrap()).collect();
        let mut toks = prompt.clone();
        toks.extend_from_slice(&gen[..gen.len() - 1]);
        let np = prompt.len();
        let mut logits = vec![0f32; gen.len() * n_vocab];
        e.eval_logits(&toks, np - 1..np - 1 + gen.len(), &mut logits).unwrap();
        for (k, pp) in p["per_position"].as_array().unwrap().iter().enumerate() {
            let l = &logits[k * n_vocab..(k + 1) * n_vocab];
            let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let lse = max + l.iter().map(|x| (x - max).exp()).sum::<f32>().ln();
            let argmax = l.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0 as u32;
            if argmax != gen[k] && !ties.contains(&(k as u64)) {
                // a close second, in llama.cpp's top two and in ours
                let gap = (l[argmax as usize] - l[gen[k] as usize]).abs();
                let lead = golden_lead(pp);
                assert!(
                    lead < CLOSE && gap < CLOSE,
                    "{} step {k}: arg-max {argmax} for {} (lead {lead}, ours {gap})",
                    p["name"],
                    gen[k]
                );
            }
            let mut worst = 0f32;
            for t in pp["top10"].as_array().unwrap() {
                let d = (l[t[0].as_u64().unwrap() as usize] - lse - t[1].as_f64().unwrap() as f32)
                    .abs();
                all.push(d);
                worst = worst.max(d);
            }
            step_worst.push(worst);
            if k == 0 {
                for t in p["first_position_top10"].as_array().unwrap() {
                    let ours = (l[t["id"].as_u64().unwrap() as usize] - lse).exp();
                    let d = (ours as f64 - t["prob"].as_f64().unwrap()).abs();
                    assert!(
                        d <= 0.04,
                        "{} first position id {}: prob {ours} vs {}",
                        p["name"],
                        t["id"],
                        t["prob"]
                    );
                }
            }
        }
    }
    let mean = all.iter().sum::<f32>() / all.len() as f32;
    step_worst.sort_by(f32::total_cmp);
    let p90 = step_worst[step_worst.len() * 9 / 10];
    let worst = step_worst[step_worst.len() - 1];
    assert!(mean <= 0.13, "mean top-10 |Δlogprob| {mean}");
    assert!(p90 <= 0.5, "90th-percentile step's worst top-10 |Δlogprob| {p90}");
    assert!(worst <= 1.1, "worst top-10 |Δlogprob| {worst}");
}

/// Greedy generation (temperature 0, no penalty) on all four golden prompts follows llama.cpp
/// token for token; where it departs, it is at a step the goldens list as a near tie (top two
/// within 0.05 logprob), after which the texts are not comparable (llama.cpp itself diverges there
/// across batch splits). Today markdown_table_summary matches in full, and the others depart at
/// near ties: capital_of_france at step 15, long_paragraph at 10, chat_hi at 2 (leads of 0.008,
/// 0.034 and 0.042; any rounding change moves a logprob by more).
#[test]
fn greedy_generation_follows_llama_cpp_up_to_near_ties() {
    let g = read_json(&goldens().join("goldens-greedy.json"));
    let mut identical = 0;
    for p in g["prompts"].as_array().unwrap() {
        let prompt = serde_json::to_string(&p["prompt_ids"]).unwrap();
        let want = ids(&p["generated_ids"]);
        let n = want.len().to_string();
        let o = chimera(&[
            "run",
            real_model().to_str().unwrap(),
            "--prompt-ids",
            &prompt,
            "--temperature",
            "0",
            "--repeat-penalty",
            "1",
            "--num-predict",
            &n,
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let got = ids(&v["ids"]);
        let ties: Vec<usize> = p["near_ties"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["pos"].as_u64().unwrap() as usize)
            .collect();
        let close = |d: usize| golden_lead(&p["per_position"][d]) < CLOSE;
        match got.iter().zip(&want).position(|(a, b)| a != b) {
            None => {
                assert_eq!(got.len(), want.len(), "{}", p["name"]);
                assert_eq!(v["response"].as_str().unwrap(), p["generated_text"].as_str().unwrap());
                identical += 1;
            }
            Some(d) => assert!(
                ties.contains(&d) || close(d),
                "{}: diverged at step {d}, not a near tie {ties:?} or a close second",
                p["name"]
            ),
        }
    }
    assert!(identical >= 1, "{identical} of 4 prompts identical in full");
}

/// llama-perplexity's method on the golden corpus lands within 1 % of llama.cpp's 13.8792.
#[test]
fn perplexity_matches_llama_cpp() {
    let corpus = goldens().join("perplexity-corpus-GPL-3.txt");
    let o = chimera(&[
        "perplexity",
        real_model().to_str().unwrap(),
        corpus.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ppl = v["ppl"].as_f64().unwrap();
    assert_eq!(v["n_chunks"], 14);
    assert!((ppl / 13.8792 - 1.0).abs() < 0.01, "PPL {ppl}");
}
