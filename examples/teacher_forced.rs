//! Teacher-forced top-50 log-probabilities from chimera on the golden prompts, in the format of
//! scripts/llamacpp-probe.cpp, for scripts/parity-llamacpp.sh.
//!
//! usage: cargo run --release --example teacher_forced -- MODEL GOLDENS_GREEDY_JSON [KV_TYPE [LORA]]

use anyhow::Context;
use chimera::engine::{Engine, LoadOptions};
use serde_json::{json, Value};
use std::path::Path;

fn ids(v: &Value) -> anyhow::Result<Vec<u32>> {
    v.as_array()
        .context("expected an array of token ids")?
        .iter()
        .map(|x| x.as_u64().map(|x| x as u32).context("expected a token id"))
        .collect()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        (3..=5).contains(&args.len()),
        "usage: teacher_forced MODEL GOLDENS_GREEDY_JSON [f16|q8_0|f32 [LORA_ADAPTER]]"
    );
    let kv_type = match args.get(3) {
        Some(t) => chimera::backend::KvType::parse(t).context("KV_TYPE: f16, q8_0 or f32")?,
        None => Default::default(),
    };
    let adapters = args
        .get(4)
        .map(|p| chimera::engine::Adapter { path: p.into(), scale: 1.0 })
        .into_iter()
        .collect();
    let opts =
        LoadOptions { num_ctx: 1024, num_thread: 2, kv_type, adapters, ..Default::default() };
    let mut e = Engine::load(Path::new(&args[1]), opts)?;
    let n_vocab = e.model.n_vocab();
    let g: Value = serde_json::from_str(&std::fs::read_to_string(&args[2])?)?;
    let mut out = vec![];
    for p in g["prompts"].as_array().context("goldens: no prompts")? {
        let (prompt, gen) = (ids(&p["prompt_ids"])?, ids(&p["generated_ids"])?);
        let mut all = prompt.clone();
        all.extend_from_slice(&gen[..gen.len() - 1]);
        let np = prompt.len();
        let mut logits = vec![0f32; gen.len() * n_vocab];
        e.eval_logits(&all, np - 1..np - 1 + gen.len(), &mut logits)?;
        let mut idx: Vec<usize> = (0..n_vocab).collect();
        let steps: Vec<Value> = logits
            .chunks(n_vocab)
            .map(|l| {
                let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                let lse = max + l.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
                idx.sort_by(|&a, &b| l[b].total_cmp(&l[a]));
                idx[..50].iter().map(|&i| json!([i, l[i] as f64 - lse])).collect()
            })
            .collect();
        out.push(json!({"name": p["name"], "steps": steps}));
    }
    println!("{}", Value::Array(out));
    Ok(())
}
