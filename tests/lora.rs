//! LoRA adapters: an adapter's logits against the merged weights' (the known answer), on both
//! backends; bad adapters refused by name; `--lora`, a Modelfile's ADAPTER and the real `ollama`
//! package's `create(adapters=…)` giving the same answer.

use crate::util::*;
use chimera::engine::{Adapter, Engine, LoadOptions};
use chimera::gguf::TensorType;
use chimera::model::GpuDevice;
use std::path::Path;

/// Logits of every position of `ids` under `opts`.
fn logits(model: &Path, opts: LoadOptions, ids: &[u32]) -> Vec<f32> {
    let mut e = Engine::load(model, opts).unwrap();
    let nv = e.model.n_vocab();
    let mut l = vec![0f32; ids.len() * nv];
    e.eval_logits(ids, 0..ids.len(), &mut l).unwrap();
    l
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn opts(gpu: GpuDevice, num_gpu: i64, adapters: Vec<Adapter>) -> LoadOptions {
    LoadOptions { num_ctx: 64, num_gpu, gpu, adapters, ..Default::default() }
}

/// Two adapters on the tiny F32 model (rank 4 with alpha 8, so scale 2, over every projection
/// but k; rank 2 without alpha, at scale 0.5, over q and down) give the logits of a model whose
/// weights are W + Σ s·B·A, on the cpu backend and on candle's.
#[test]
fn adapters_give_the_merged_weights_logits() {
    let d = tempdir();
    let (base, merged) = (d.path().join("base.gguf"), d.path().join("merged.gguf"));
    tiny_model(&base, TensorType::F32, |_| {});
    let (a1, a2) = (d.path().join("a1.gguf"), d.path().join("a2.gguf"));
    let p1 = write_lora(&base, &a1, 4, Some(8.0), 0.15, 7, |n| !n.contains("attn_k"));
    let p2 =
        write_lora(&base, &a2, 2, None, 0.2, 9, |n| n.contains("attn_q") || n.contains("down"));
    // W' = W + Σ s·B·A in f64, written as another F32 model
    let mut tensors = tiny_tensors();
    for (pairs, s) in [(&p1, 2.0f64), (&p2, 0.5)] {
        for p in pairs {
            let (_, dims, w) = tensors.iter_mut().find(|t| t.0 == p.name).unwrap();
            let (n_in, n_out) = (dims[0] as usize, dims[1] as usize);
            for o in 0..n_out {
                for i in 0..n_in {
                    let ba: f64 = (0..p.rank)
                        .map(|j| p.b[o * p.rank + j] as f64 * p.a[j * n_in + i] as f64)
                        .sum();
                    w[o * n_in + i] = (w[o * n_in + i] as f64 + s * ba) as f32;
                }
            }
        }
    }
    write_tiny(&merged, tensors);
    let ids: Vec<u32> = (0..24).map(|i| 2 + (i * 37 % 260) as u32).collect();
    let ads = vec![Adapter { path: a1, scale: 1.0 }, Adapter { path: a2, scale: 0.5 }];
    let want = logits(&merged, opts(GpuDevice::None, 0, vec![]), &ids);
    let plain = logits(&base, opts(GpuDevice::None, 0, vec![]), &ids);
    let spread = max_diff(&want, &plain);
    assert!(
        spread > 0.5,
        "the adapters must move the logits for this test to mean anything: {spread}"
    );
    let cpu = logits(&base, opts(GpuDevice::None, 0, ads.clone()), &ids);
    assert!(max_diff(&cpu, &want) < 2e-3 * spread, "cpu: {} of {spread}", max_diff(&cpu, &want));
    let candle = logits(&base, opts(GpuDevice::CandleCpu, 3, ads), &ids);
    let dc = max_diff(&candle, &want);
    assert!(dc < 2e-3 * spread, "candle: {dc} of {spread}");
}

/// The tiny model with the given f32 tensors.
fn write_tiny(path: &Path, tensors: Vec<(String, Vec<u64>, Vec<f32>)>) {
    let ts: Vec<chimera::gguf::WriteTensor> = tensors
        .into_iter()
        .map(|(name, dims, v)| chimera::gguf::WriteTensor {
            name,
            dims,
            ty: TensorType::F32,
            data: v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>().into(),
        })
        .collect();
    chimera::gguf::write(path, &tiny_metadata(), &ts).unwrap();
}

/// What llama.cpp refuses, chimera refuses: a model given as an adapter, an adapter for other
/// shapes, a tensor with no pair; each names the file and the key or tensor, exit 2.
#[test]
fn bad_adapters_are_refused_by_name() {
    let d = tempdir();
    let base = d.path().join("base.gguf");
    tiny_model(&base, TensorType::F32, |_| {});
    let run = |lora: &Path| {
        let (b, l) = (base.to_str().unwrap(), lora.to_str().unwrap());
        chimera(&["run", b, "ab", "--lora", l, "--num-predict", "1", "--json"])
    };
    assert_user_error(&run(&base), "general.type");
    // an adapter written for a model whose ffn_gate has 96 outputs, not 128
    let other = d.path().join("other.gguf");
    let mut tensors = tiny_tensors();
    for t in tensors.iter_mut().filter(|t| t.0.ends_with("ffn_gate.weight")) {
        t.1[1] = 96; // 96 outputs instead of n_ff 128
        t.2.truncate(64 * 96);
    }
    write_tiny(&other, tensors);
    let bad = d.path().join("bad.gguf");
    write_lora(&other, &bad, 2, Some(4.0), 0.1, 3, |n| n.contains("ffn_gate"));
    let o = run(&bad);
    assert_user_error(&o, "blk.0.ffn_gate.weight.lora_b");
    assert!(stderr(&o).contains("bad.gguf"), "{}", stderr(&o));
    assert_user_error(&run(&d.path().join("absent.gguf")), "absent.gguf");
}

/// A Modelfile's ADAPTER (a path beside it) makes a model that answers as `run --lora` does;
/// `show` lists the adapter; an adapter that does not fit the FROM model is refused at create.
#[test]
fn a_modelfiles_adapter_answers_as_run_lora() {
    let home = tempdir();
    let base = home.path().join("base.gguf");
    tiny_model(&base, TensorType::F32, |_| {});
    let ad = home.path().join("ad.gguf");
    write_lora(&base, &ad, 4, Some(4.0), 0.3, 5, |_| true);
    let run = |args: &[&str]| chimera_in(home.path(), args);
    let mf = home.path().join("Modelfile");
    std::fs::write(&mf, "FROM ./base.gguf\nADAPTER ./ad.gguf\nPARAMETER temperature 0\n").unwrap();
    let o = run(&["create", "tuned", "-f", mf.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json = |args: &[&str]| -> serde_json::Value {
        let o = run(args);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let g = ["--raw", "--json", "--num-predict", "4", "--temperature", "0", "--logprobs", "3"];
    let made = json(&[&["run", "tuned", "ab"][..], &g].concat());
    let (b, a) = (base.to_str().unwrap(), ad.to_str().unwrap());
    let lora = json(&[&["run", b, "ab", "--lora", a][..], &g].concat());
    let plain = json(&[&["run", b, "ab"][..], &g].concat());
    assert_eq!(made["logprobs"], lora["logprobs"]);
    assert_ne!(lora["logprobs"], plain["logprobs"], "the adapter changes the answer");
    let show = run(&["show", "tuned", "--modelfile"]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains(&format!("ADAPTER {}", ad.display())), "{text}{}", stderr(&show));
    // an adapter for another model is refused when the model is made, naming the tensor
    std::fs::write(&mf, "FROM ./base.gguf\nADAPTER ./base.gguf\n").unwrap();
    assert_user_error(&run(&["create", "bad", "-f", mf.to_str().unwrap()]), "general.type");
    assert!(!String::from_utf8_lossy(&run(&["list"]).stdout).contains("bad"));
}
