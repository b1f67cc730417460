//! `chimera quantize`: llama.cpp's tensor bytes and types for the Q8_0 and Q4_0 requants of the
//! real model, the Q8_0 requant's perplexity, per-type round-trip error, and refusals.

use crate::util::*;
use chimera::backend::cpu::quant;
use chimera::gguf::{Gguf, TensorType};

fn hist(p: &std::path::Path) -> (u64, std::collections::BTreeMap<String, usize>) {
    let g = Gguf::open(p).unwrap();
    let mut h = std::collections::BTreeMap::new();
    for t in &g.tensors {
        *h.entry(t.ty.name().to_string()).or_default() += 1;
    }
    (g.tensors.iter().map(|t| t.bytes).sum(), h)
}

#[test]
fn requants_match_llama_cpp_and_q8_0_perplexity() {
    let d = tempdir();
    let m = real_model();
    let sizes = read_json(&goldens().join("quant-sizes.json"));
    for (ty, key) in
        [("Q8_0", "Q8_0 (requantized from Q4_K_M)"), ("Q4_0", "Q4_0 (requantized from Q4_K_M)")]
    {
        let out = d.path().join(format!("{ty}.gguf"));
        let o = chimera(&[
            "quantize",
            m.to_str().unwrap(),
            out.to_str().unwrap(),
            ty,
            "--allow-requantize",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let (bytes, h) = hist(&out);
        assert_eq!(bytes, sizes[key]["tensor_bytes_total"].as_u64().unwrap(), "{ty} tensor bytes");
        for (t, v) in sizes[key]["by_type"].as_object().unwrap() {
            assert_eq!(
                h.get(t).copied(),
                Some(v["count"].as_u64().unwrap() as usize),
                "{ty}: {t} count"
            );
        }
        let g = Gguf::open(&out).unwrap();
        assert_eq!(g.metadata["general.architecture"].as_str(), Some("gemma3"), "metadata kept");
        assert!(g.metadata.contains_key("tokenizer.ggml.tokens"));
    }
    let corpus = goldens().join("perplexity-corpus-GPL-3.txt");
    let o = chimera(&[
        "perplexity",
        d.path().join("Q8_0.gguf").to_str().unwrap(),
        corpus.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ppl = v["ppl"].as_f64().unwrap();
    assert!((ppl / 13.8591 - 1.0).abs() < 0.01, "Q8_0 requant PPL {ppl} vs llama.cpp 13.8591");
}

/// Dequantize(quantize(x)) stays within each type's error bound (relative RMS error).
#[test]
fn round_trip_error_within_bounds() {
    let mut s = 7u32;
    let x: Vec<f32> = (0..4096)
        .map(|_| {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            ((s >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 2.0
        })
        .collect();
    let rms = (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
    for (ty, bound) in [
        (TensorType::F16, 1e-3),
        (TensorType::BF16, 5e-3),
        (TensorType::Q8_0, 0.01),
        (TensorType::Q6K, 0.02),
        (TensorType::Q5_0, 0.04),
        (TensorType::Q5_1, 0.04),
        (TensorType::Q5K, 0.04),
        (TensorType::Q4_0, 0.08),
        (TensorType::Q4_1, 0.08),
        (TensorType::Q4K, 0.08),
        (TensorType::Q3K, 0.16),
        (TensorType::Q2K, 0.35),
    ] {
        let q = quant::quantize(ty, &x);
        let mut aligned = vec![0u64; q.len().div_ceil(8)];
        // SAFETY: the u64 buffer holds q.len() bytes.
        let b = unsafe { std::slice::from_raw_parts_mut(aligned.as_mut_ptr() as *mut u8, q.len()) };
        b.copy_from_slice(&q);
        let mut y = vec![0f32; x.len()];
        quant::dequantize(ty, b, &mut y);
        let err = (x.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum::<f32>() / x.len() as f32)
            .sqrt()
            / rms;
        assert!(err < bound, "{ty:?}: relative RMS error {err} over {bound}");
    }
}

#[test]
fn refuses_requantize_without_the_flag_and_bad_types() {
    let d = tempdir();
    let m = real_model();
    let out = d.path().join("x.gguf");
    assert_user_error(
        &chimera(&["quantize", m.to_str().unwrap(), out.to_str().unwrap(), "Q8_0"]),
        "--allow-requantize",
    );
    assert_user_error(
        &chimera(&["quantize", m.to_str().unwrap(), out.to_str().unwrap(), "Q9_9"]),
        "Q9_9",
    );
    assert!(!out.exists(), "no partial output");
}
