//! A Hugging Face gemma3 folder — `config.json`, `tokenizer.json` (with `tokenizer_config.json`
//! for the chat template), `model*.safetensors` in bf16, f16 or f32 — read through candle's
//! mmap'd safetensors, for the candle backend.
//!
//! Conventions (ref: HF transformers modeling_gemma3.py; llama.cpp convert_hf_to_gguf.py
//! Gemma3Model): Gemma3RMSNorm scales by (1 + weight), so every norm weight gets +1 here, as the
//! GGUF converter adds it; queries are scaled by query_pre_attn_scalar^-0.5; the head is tied to
//! `embed_tokens` unless `lm_head.weight` exists. Multimodal checkpoints keep the text model
//! under `language_model.`; its config under `text_config`.

use crate::config::Gemma3Config;
use crate::error::{Error, Result};
use crate::tokenizer::{Specials, Tokenizer};
use candle_core::quantized::QMatMul;
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// An opened folder.
pub struct Folder {
    pub path: PathBuf,
    st: MmapedSafetensors,
    /// `model.` or `language_model.model.`.
    prefix: String,
    pub cfg: Gemma3Config,
}

/// A JSON file of the folder; unreadable or malformed is an error naming it.
pub(crate) fn read_json(p: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Registry { path: p.into(), what: format!("not JSON: {e}") })
}

impl Folder {
    /// Opens a folder: its config, and every `*.safetensors` in it.
    pub fn open(path: &Path) -> Result<Folder> {
        let cfg_path = path.join("config.json");
        let json = read_json(&cfg_path)?;
        let text = json.get("text_config").unwrap_or(&json);
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::io(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::io(
                path,
                std::io::Error::other("no *.safetensors file in the folder"),
            ));
        }
        // SAFETY: the files are mapped read-only; chimera never writes them while mapped.
        let st = unsafe { MmapedSafetensors::multi(&files) }?;
        let prefix = if st.get("model.embed_tokens.weight").is_ok() {
            "model.".to_string()
        } else if st.get("language_model.model.embed_tokens.weight").is_ok() {
            "language_model.model.".to_string()
        } else {
            return Err(Error::Tensor {
                path: path.into(),
                name: "model.embed_tokens.weight".into(),
                what: "missing".into(),
            });
        };
        let tied =
            st.get("lm_head.weight").is_err() && st.get("language_model.lm_head.weight").is_err();
        let cfg = config(text, &cfg_path, tied)?;
        Ok(Folder { path: path.into(), st, prefix, cfg })
    }

    pub fn layer_name(&self, l: usize, hf: &str) -> String {
        format!("{}layers.{l}.{hf}.weight", self.prefix)
    }

    pub fn model_name(&self, hf: &str) -> String {
        format!("{}{hf}.weight", self.prefix)
    }

    /// Parameters in the folder's tensors.
    pub fn n_params(&self) -> u64 {
        self.st.tensors().iter().map(|(_, v)| v.shape().iter().product::<usize>() as u64).sum()
    }

    /// The type of the token embedding's values (`BF16`, `F16`, `F32`), as Ollama names an
    /// unquantized model's level.
    pub fn dtype_name(&self) -> String {
        self.st.get(&self.embed_name()).map_or(String::new(), |v| format!("{:?}", v.dtype()))
    }

    pub fn embed_name(&self) -> String {
        self.model_name("embed_tokens")
    }

    /// Tensor `name` as the file holds it.
    pub fn view(&self, name: &str) -> Result<safetensors::tensor::TensorView<'_>> {
        self.st.get(name).map_err(|_| self.missing(name, "missing".into()))
    }

    fn missing(&self, name: &str, what: String) -> Error {
        Error::Tensor { path: self.path.clone(), name: name.into(), what }
    }

    /// A matrix of `rows` outputs × `cols` inputs as an f32 `QMatMul` on `dev`.
    pub fn mat(
        &self,
        name: &str,
        cols: usize,
        rows: usize,
        dev: &Device,
    ) -> Result<(QMatMul, u64)> {
        let view = self.st.get(name).map_err(|_| self.missing(name, "missing".into()))?;
        if view.shape() != [rows, cols] {
            return Err(
                self.missing(name, format!("shape {:?}, expected [{rows}, {cols}]", view.shape()))
            );
        }
        let bytes = view.data().len() as u64;
        let t = self.st.load(name, dev)?.to_dtype(DType::F32)?;
        Ok((QMatMul::Tensor(t), bytes))
    }

    /// A norm vector of length `n`, with Gemma3RMSNorm's +1 applied.
    pub fn norm(&self, name: &str, n: usize) -> Result<Vec<f32>> {
        let view = self.st.get(name).map_err(|_| self.missing(name, "missing".into()))?;
        if view.shape() != [n] {
            return Err(self.missing(name, format!("shape {:?}, expected [{n}]", view.shape())));
        }
        let mut v = vec![0f32; n];
        to_f32(view.dtype(), view.data(), &mut v).map_err(|what| self.missing(name, what))?;
        v.iter_mut().for_each(|x| *x += 1.0);
        Ok(v)
    }

    /// Row `t` of the token embedding, into `out` (n_embd).
    pub fn embed_row(&self, t: usize, out: &mut [f32]) -> Result<()> {
        let name = self.embed_name();
        let view = self.st.get(&name).map_err(|_| self.missing(&name, "missing".into()))?;
        let es = view.dtype().bitsize() / 8;
        let row = out.len() * es;
        to_f32(view.dtype(), &view.data()[t * row..(t + 1) * row], out)
            .map_err(|what| self.missing(&name, what))
    }

    /// The tokenizer: `tokenizer.json`, the special ids from `config.json` (and the vocabulary's
    /// `<end_of_turn>`), the chat template from `tokenizer_config.json` when it has one.
    pub fn tokenizer(&self) -> Result<Tokenizer> {
        let json = read_json(&self.path.join("config.json"))?;
        let id = |k: &str| {
            json.get(k).or_else(|| json.get("text_config").and_then(|t| t.get(k))).and_then(|v| {
                match v {
                    Value::Number(n) => n.as_u64(),
                    Value::Array(a) => a.first().and_then(Value::as_u64),
                    _ => None,
                }
            })
        };
        let specials = Specials {
            bos: id("bos_token_id").map(|v| v as u32),
            eos: id("eos_token_id").map(|v| v as u32),
            eot: None,
            add_bos: true,
            add_eos: false,
        };
        let template = read_json(&self.path.join("tokenizer_config.json"))
            .ok()
            .and_then(|v| v.get("chat_template").and_then(Value::as_str).map(String::from));
        Tokenizer::from_json(&self.path.join("tokenizer.json"), specials, template)
    }
}

/// Converts little-endian f32/f16/bf16 bytes to f32.
fn to_f32(dtype: safetensors::Dtype, b: &[u8], out: &mut [f32]) -> std::result::Result<(), String> {
    match dtype {
        safetensors::Dtype::F32 => out
            .iter_mut()
            .zip(b.chunks_exact(4))
            .for_each(|(o, c)| *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        safetensors::Dtype::F16 => out
            .iter_mut()
            .zip(b.chunks_exact(2))
            .for_each(|(o, c)| *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32()),
        safetensors::Dtype::BF16 => out
            .iter_mut()
            .zip(b.chunks_exact(2))
            .for_each(|(o, c)| *o = half::bf16::from_le_bytes([c[0], c[1]]).to_f32()),
        other => return Err(format!("dtype {other:?}, expected f32, f16 or bf16")),
    }
    Ok(())
}

/// Gemma3TextConfig → [`Gemma3Config`]; every missing required key named in one error.
pub fn config(v: &Value, path: &Path, tied: bool) -> Result<Gemma3Config> {
    let required = [
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
    ];
    let missing: Vec<String> =
        required.iter().filter(|k| v.get(**k).is_none()).map(|k| k.to_string()).collect();
    if !missing.is_empty() {
        return Err(Error::MissingKeys { path: path.into(), keys: missing });
    }
    let bad =
        |k: &str, what: &str| Error::BadKey { path: path.into(), key: k.into(), what: what.into() };
    let uint = |k: &str| -> Result<Option<usize>> {
        match v.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_u64()
                .filter(|n| *n > 0)
                .map(|n| Some(n as usize))
                .ok_or_else(|| bad(k, "expected a positive integer")),
        }
    };
    let float = |k: &str| -> Result<Option<f32>> {
        match v.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_f64()
                .filter(|f| f.is_finite())
                .map(|f| Some(f as f32))
                .ok_or_else(|| bad(k, "expected a number")),
        }
    };
    let req = |k: &str| uint(k).map(|x| x.expect("invariant: presence checked above"));
    if let Some(p) = uint("sliding_window_pattern")? {
        if p != 6 {
            return Err(bad(
                "sliding_window_pattern",
                &format!("{p}; chimera runs gemma3's pattern of 6"),
            ));
        }
    }
    let n_head = req("num_attention_heads")?;
    let n_head_kv = uint("num_key_value_heads")?.unwrap_or(n_head);
    if n_head % n_head_kv != 0 {
        return Err(bad(
            "num_key_value_heads",
            &format!("{n_head_kv} does not divide num_attention_heads {n_head}"),
        ));
    }
    // ref: HF Gemma3TextConfig defaults: head_dim 256, rms_norm_eps 1e-6, rope_theta 1e6,
    // rope_local_base_freq 1e4, query_pre_attn_scalar 256, max_position_embeddings 131072
    let head_dim = uint("head_dim")?.unwrap_or(256);
    let scalar = float("query_pre_attn_scalar")?.unwrap_or(256.0);
    let factor = v.get("rope_scaling").and_then(|r| r.get("factor")).and_then(Value::as_f64);
    Ok(Gemma3Config {
        n_vocab: req("vocab_size")?,
        n_embd: req("hidden_size")?,
        n_layer: req("num_hidden_layers")?,
        n_ff: req("intermediate_size")?,
        n_head,
        n_head_kv,
        head_dim,
        context_length: uint("max_position_embeddings")?.unwrap_or(131_072),
        rms_eps: float("rms_norm_eps")?.unwrap_or(1e-6),
        sliding_window: uint("sliding_window")?,
        rope_base_global: float("rope_theta")?.unwrap_or(1_000_000.0),
        rope_base_local: float("rope_local_base_freq")?.unwrap_or(10_000.0),
        rope_scale_global: factor.filter(|f| *f > 0.0).map_or(1.0, |f| 1.0 / f as f32),
        attn_scale: 1.0 / scalar.sqrt(),
        final_softcap: float("final_logit_softcapping")?.filter(|c| *c > 0.0),
        tied_output: tied,
        causal: true,
    })
}
