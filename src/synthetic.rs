//! Synthetic gemma3 models: deterministic random weights with the real shapes and llama.cpp's
//! per-tensor type mix, for "how fast would a 4B be here" without the weights.
//!
//! Quantized blocks are random bytes with their scale fields set to small finite f16 values, so
//! generation is fast at any size and the arithmetic is exactly that of a real file of the type.
//! Files carry `chimera.synthetic = true`, which bench records report.

use crate::error::{Error, Result};
use crate::gguf::{self, Array, TensorType, Value, WriteTensor};
use crate::quantize::{tensor_type, Target};
use std::collections::BTreeMap;
use std::path::Path;

/// A gemma3 size's shape.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub label: &'static str,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub window: usize,
    pub context_length: usize,
    /// Linear rope scaling on global layers (4B and up).
    pub rope_scale: Option<f32>,
    /// EmbeddingGemma (`gemma-embedding`): bidirectional, mean pooling, dense projections
    /// n_embd → 3072 → n_embd after it.
    pub embedding: bool,
}

/// The five published sizes (ref: ollama-llamacpp-semantics.md §5.2, HF config.json).
#[rustfmt::skip]
const SHAPES: [Shape; 5] = [
    Shape { label: "270M", n_layer: 18, n_embd: 640, n_ff: 2048, n_head: 4, n_head_kv: 1, head_dim: 256, window: 512, context_length: 32768, rope_scale: None, embedding: false },
    Shape { label: "1B", n_layer: 26, n_embd: 1152, n_ff: 6912, n_head: 4, n_head_kv: 1, head_dim: 256, window: 512, context_length: 32768, rope_scale: None, embedding: false },
    Shape { label: "4B", n_layer: 34, n_embd: 2560, n_ff: 10240, n_head: 8, n_head_kv: 4, head_dim: 256, window: 1024, context_length: 131072, rope_scale: Some(8.0), embedding: false },
    Shape { label: "12B", n_layer: 48, n_embd: 3840, n_ff: 15360, n_head: 16, n_head_kv: 8, head_dim: 256, window: 1024, context_length: 131072, rope_scale: Some(8.0), embedding: false },
    Shape { label: "27B", n_layer: 62, n_embd: 5376, n_ff: 21504, n_head: 32, n_head_kv: 16, head_dim: 128, window: 1024, context_length: 131072, rope_scale: Some(8.0), embedding: false },
];

/// EmbeddingGemma-300m (ref: its HF config.json: 24 layers, hidden 768, intermediate 1152, 3
/// heads, 1 KV head, head_dim 256, sliding_window 512, max_position_embeddings 2048).
#[rustfmt::skip]
const EMBEDDING: Shape = Shape { label: "embeddinggemma", n_layer: 24, n_embd: 768, n_ff: 1152, n_head: 3, n_head_kv: 1, head_dim: 256, window: 512, context_length: 2048, rope_scale: None, embedding: true };

/// EmbeddingGemma's dense projection width (ref: its 2_Dense/config.json, out_features 3072).
const DENSE_WIDTH: usize = 3072;

impl Shape {
    /// The config a file of this shape holds (ref: HF Gemma3TextConfig: rms_norm_eps 1e-6,
    /// rope_theta 1e6, rope_local_base_freq 1e4).
    fn config(&self) -> crate::config::Gemma3Config {
        crate::config::Gemma3Config {
            n_vocab: N_VOCAB,
            n_embd: self.n_embd,
            n_layer: self.n_layer,
            n_ff: self.n_ff,
            n_head: self.n_head,
            n_head_kv: self.n_head_kv,
            head_dim: self.head_dim,
            context_length: self.context_length,
            rms_eps: 1e-6,
            sliding_window: Some(self.window),
            rope_base_global: 1e6,
            rope_base_local: 1e4,
            rope_scale_global: self.rope_scale.map_or(1.0, |f| 1.0 / f),
            attn_scale: 1.0 / (self.head_dim as f32).sqrt(),
            final_softcap: None,
            tied_output: true,
            causal: !self.embedding,
        }
    }
}

/// The shape of a size name (`gemma3:4b`, `4b`, or `embeddinggemma`).
pub fn shape(name: &str) -> Result<Shape> {
    let want = name.trim_start_matches("gemma3:");
    if want.eq_ignore_ascii_case("embeddinggemma")
        || want.eq_ignore_ascii_case("embeddinggemma:300m")
    {
        return Ok(EMBEDDING);
    }
    SHAPES.iter().find(|s| s.label.eq_ignore_ascii_case(want)).copied().ok_or_else(|| {
        Error::option("--synthetic", name, "one of gemma3:270m, 1b, 4b, 12b, 27b, embeddinggemma")
    })
}

/// gemma3's vocabulary size (ref: llama-model.cpp; the converter trims to the tokenizer).
const N_VOCAB: usize = 262_144;

struct Rng(u64);
impl Rng {
    fn fill(&mut self, b: &mut [u8]) {
        for c in b.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let v = self.0.to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// Offsets of the f16 scale fields in one block of `ty` (ref: ggml-common.h block layouts).
fn scale_offsets(ty: TensorType) -> &'static [usize] {
    match ty {
        TensorType::Q4_0 | TensorType::Q5_0 | TensorType::Q8_0 => &[0],
        TensorType::Q4_1 | TensorType::Q5_1 | TensorType::Q4K | TensorType::Q5K => &[0, 2],
        TensorType::Q2K => &[80, 82],
        TensorType::Q3K => &[108],
        TensorType::Q6K => &[208],
        TensorType::F32 | TensorType::F16 | TensorType::BF16 => &[],
    }
}

/// `n` elements of random weights of type `ty` with scales near `scale`.
fn random_tensor(ty: TensorType, n: usize, scale: f32, rng: &mut Rng) -> Vec<u8> {
    match ty {
        TensorType::F32 => (0..n)
            .flat_map(|i| (scale * (((i * 2654435761) % 1000) as f32 / 500.0 - 1.0)).to_le_bytes())
            .collect(),
        _ => {
            let (be, bb) = ty.block();
            let mut out = vec![0u8; n / be * bb];
            rng.fill(&mut out);
            if matches!(ty, TensorType::F16 | TensorType::BF16) {
                // keep every element finite: clear the top exponent bit of each 16-bit value
                out.chunks_mut(2).for_each(|c| c[1] &= 0x3F);
                return out;
            }
            let d = half::f16::from_f32(scale).to_bits().to_le_bytes();
            for block in out.chunks_mut(bb) {
                for &o in scale_offsets(ty) {
                    block[o..o + 2].copy_from_slice(&d);
                }
            }
            out
        }
    }
}

/// Writes a synthetic model of `size` and quantization `quant` to `path` (deterministic).
pub fn write(path: &Path, size: &str, quant: Target) -> Result<()> {
    let sh = shape(size)?;
    let mut md = BTreeMap::new();
    let u = |v: usize| Value::U32(v as u32);
    let arch = if sh.embedding { "gemma-embedding" } else { "gemma3" };
    let k = |s: &str| format!("{arch}.{s}");
    md.insert("general.architecture".into(), Value::String(arch.into()));
    md.insert("general.name".into(), Value::String(format!("synthetic {arch} {}", sh.label)));
    md.insert("general.file_type".into(), Value::U32(quant.ftype()));
    md.insert("chimera.synthetic".into(), Value::Bool(true));
    md.extend(sh.config().gguf_keys(arch));
    if sh.embedding {
        // ref: convert_hf_to_gguf.py EmbeddingGemma: pooling mean (1), dense feature sizes
        md.insert(k("pooling_type"), u(1));
        for (d, i, o) in [("dense_2", sh.n_embd, DENSE_WIDTH), ("dense_3", DENSE_WIDTH, sh.n_embd)]
        {
            md.insert(k(&format!("{d}_feat_in")), u(i));
            md.insert(k(&format!("{d}_feat_out")), u(o));
        }
        md.insert("tokenizer.ggml.add_eos_token".into(), Value::Bool(true));
    }
    // a vocabulary of the real size: specials, 256 byte tokens, then placeholder pieces
    let mut tokens: Vec<String> = ["<pad>", "<eos>", "<bos>", "<unk>"].map(String::from).to_vec();
    let mut types = vec![3i64, 3, 3, 2];
    tokens.extend((0..256).map(|b| format!("<0x{b:02X}>")));
    types.extend(std::iter::repeat_n(6, 256));
    tokens.push("<end_of_turn>".into());
    types.push(3);
    while tokens.len() < N_VOCAB {
        tokens.push(format!("\u{2581}t{}", tokens.len()));
        types.push(1);
    }
    let scores: Vec<f64> = (0..N_VOCAB).map(|i| -(i as f64)).collect();
    md.insert("tokenizer.ggml.model".into(), Value::String("llama".into()));
    md.insert("tokenizer.ggml.tokens".into(), Value::Array(Array::Strings(tokens)));
    md.insert("tokenizer.ggml.scores".into(), Value::Array(Array::Floats(scores)));
    md.insert("tokenizer.ggml.token_type".into(), Value::Array(Array::Ints(types)));
    md.insert("tokenizer.ggml.bos_token_id".into(), u(2));
    md.insert("tokenizer.ggml.eos_token_id".into(), u(1));
    md.insert("tokenizer.ggml.add_space_prefix".into(), Value::Bool(false));

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (e, hd) = (sh.n_embd, sh.head_dim);
    let mut specs: Vec<(String, Vec<u64>)> = vec![
        ("token_embd.weight".into(), vec![e as u64, N_VOCAB as u64]),
        ("output_norm.weight".into(), vec![e as u64]),
    ];
    if sh.embedding {
        specs.push(("dense_2.weight".into(), vec![e as u64, DENSE_WIDTH as u64]));
        specs.push(("dense_3.weight".into(), vec![DENSE_WIDTH as u64, e as u64]));
    }
    for l in 0..sh.n_layer {
        let n = |s: &str| format!("blk.{l}.{s}.weight");
        for s in ["attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm"] {
            specs.push((n(s), vec![e as u64]));
        }
        specs.push((n("attn_q_norm"), vec![hd as u64]));
        specs.push((n("attn_k_norm"), vec![hd as u64]));
        for (s, cols, rows) in [
            ("attn_q", e, sh.n_head * hd),
            ("attn_k", e, sh.n_head_kv * hd),
            ("attn_v", e, sh.n_head_kv * hd),
            ("attn_output", sh.n_head * hd, e),
            ("ffn_gate", e, sh.n_ff),
            ("ffn_up", e, sh.n_ff),
            ("ffn_down", sh.n_ff, e),
        ] {
            specs.push((n(s), vec![cols as u64, rows as u64]));
        }
    }
    let tensors: Vec<WriteTensor> = specs
        .into_iter()
        .map(|(name, dims)| {
            let layer = name
                .strip_prefix("blk.")
                .and_then(|r| r.split('.').next())
                .and_then(|i| i.parse().ok());
            let ty = tensor_type(&name, dims[0], dims.len(), quant, true, layer, sh.n_layer);
            let n: u64 = dims.iter().product();
            // norms 1 (GGUF stores 1 + w, so w = 0); weights with small scales
            let data = if dims.len() == 1 {
                (0..n).flat_map(|_| 1f32.to_le_bytes()).collect()
            } else {
                random_tensor(ty, n as usize, 0.002, &mut rng)
            };
            WriteTensor { name, dims, ty, data: data.into() }
        })
        .collect();
    gguf::write(path, &md, &tensors)
}

/// The cached path of a synthetic model, written on first use.
pub fn ensure(
    dir: &Path,
    size: &str,
    quant: Target,
    quant_name: &str,
) -> Result<std::path::PathBuf> {
    let sh = shape(size)?;
    let family = if sh.embedding { "" } else { "gemma3-" };
    let p = dir.join(format!(
        "{family}{}-{}-synthetic.gguf",
        sh.label.to_ascii_lowercase(),
        quant_name.to_ascii_lowercase()
    ));
    if !p.is_file() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        write(&p, size, quant)?;
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_errors() {
        assert_eq!(shape("gemma3:4b").unwrap().n_layer, 34);
        assert_eq!(shape("27b").unwrap().head_dim, 128);
        assert!(shape("gemma3:7b").unwrap_err().to_string().contains("--synthetic"));
        assert!(shape("embeddinggemma").unwrap().embedding);
    }
}
