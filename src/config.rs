//! gemma3 hyperparameters read from GGUF metadata into a typed config, with cited defaults.

use crate::error::{Error, Result};
use crate::gguf::{Gguf, Value};

/// Everything the forward pass needs to know about a gemma3 file's shape.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Gemma3Config {
    pub n_vocab: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub context_length: usize,
    pub rms_eps: f32,
    /// Tokens a sliding layer sees, itself included; `None` when the file has no window.
    pub sliding_window: Option<usize>,
    pub rope_base_global: f32,
    pub rope_base_local: f32,
    /// Multiplies positions on global layers (1 / linear scaling factor).
    pub rope_scale_global: f32,
    pub attn_scale: f32,
    pub final_softcap: Option<f32>,
    pub tied_output: bool,
    /// Causal attention (gemma3); EmbeddingGemma (`gemma-embedding`) attends both ways, its
    /// sliding layers within ±window/2 (ref: llama-model.cpp LLM_ARCH_GEMMA_EMBEDDING:
    /// causal_attn = false, LLAMA_SWA_TYPE_SYMMETRIC), and has no output head.
    pub causal: bool,
}

/// The size label llama.cpp prints for a block count (ref: llama-model.cpp, LLM_ARCH_GEMMA3 types).
pub fn size_label(n_layer: usize) -> &'static str {
    match n_layer {
        18 => "270M",
        24 => "300M", // EmbeddingGemma
        26 => "1B",
        34 => "4B",
        48 => "12B",
        62 => "27B",
        _ => "?B",
    }
}

/// Whether a path is a Hugging Face model folder (it holds a config.json), not a GGUF file.
pub fn is_folder(p: &std::path::Path) -> bool {
    p.is_dir() && p.join("config.json").is_file()
}

impl Gemma3Config {
    /// The `<arch>.*` metadata that [`Gemma3Config::from_gguf`] reads back as this config
    /// (attention scale and tying aside: a GGUF implies those from its shape and tensors).
    pub fn gguf_keys(&self, arch: &str) -> Vec<(String, Value)> {
        let u = |v: usize| Value::U32(v as u32);
        let mut keys = vec![
            ("context_length", u(self.context_length)),
            ("embedding_length", u(self.n_embd)),
            ("block_count", u(self.n_layer)),
            ("feed_forward_length", u(self.n_ff)),
            ("attention.head_count", u(self.n_head)),
            ("attention.head_count_kv", u(self.n_head_kv)),
            ("attention.key_length", u(self.head_dim)),
            ("attention.value_length", u(self.head_dim)),
            ("attention.layer_norm_rms_epsilon", Value::F32(self.rms_eps)),
            ("rope.freq_base", Value::F32(self.rope_base_global)),
        ];
        if let Some(w) = self.sliding_window {
            keys.push(("attention.sliding_window", u(w)));
        }
        // ref: llama.cpp's default for the sliding layers' base, written only when it differs
        if self.rope_base_local != 10_000.0 {
            keys.push(("rope.freq_base_swa", Value::F32(self.rope_base_local)));
        }
        if self.rope_scale_global != 1.0 {
            keys.push(("rope.scaling.type", Value::String("linear".into())));
            keys.push(("rope.scaling.factor", Value::F32(1.0 / self.rope_scale_global)));
        }
        if let Some(cap) = self.final_softcap {
            keys.push(("final_logit_softcapping", Value::F32(cap)));
        }
        keys.into_iter().map(|(k, v)| (format!("{arch}.{k}"), v)).collect()
    }

    /// Reads and checks the metadata; every missing required key is named in one error.
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let path = &g.path;
        let arch = match g.metadata.get("general.architecture").and_then(Value::as_str) {
            Some(a @ ("gemma3" | "gemma-embedding")) => a,
            Some(other) => {
                return Err(Error::Architecture { path: path.clone(), found: other.to_string() })
            }
            None => {
                return Err(Error::MissingKeys {
                    path: path.clone(),
                    keys: vec!["general.architecture".into()],
                })
            }
        };
        let k = |s: &str| format!("{arch}.{s}");
        let required = [
            k("context_length"),
            k("embedding_length"),
            k("block_count"),
            k("feed_forward_length"),
            k("attention.head_count"),
            "tokenizer.ggml.tokens".to_string(),
        ];
        let missing: Vec<String> = required
            .iter()
            .filter(|k| !g.metadata.contains_key(k.as_str()))
            .map(|k| k.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(Error::MissingKeys { path: path.clone(), keys: missing });
        }
        let bad = |key: &str, what: &str| Error::BadKey {
            path: path.clone(),
            key: key.into(),
            what: what.into(),
        };
        let uint = |key: &str| -> Result<Option<usize>> {
            match g.metadata.get(key) {
                None => Ok(None),
                Some(v) => match v.as_i64() {
                    Some(n) if n > 0 && n <= (1 << 32) => Ok(Some(n as usize)),
                    _ => {
                        Err(bad(key, &format!("expected a positive integer, found {}", v.brief())))
                    }
                },
            }
        };
        let float = |key: &str| -> Result<Option<f32>> {
            match g.metadata.get(key) {
                None => Ok(None),
                Some(v) => match v.as_f64() {
                    Some(x) if x.is_finite() => Ok(Some(x as f32)),
                    _ => Err(bad(key, &format!("expected a number, found {}", v.brief()))),
                },
            }
        };
        let req = |key: &str| uint(key).map(|v| v.expect("invariant: presence checked above"));
        let n_embd = req(&k("embedding_length"))?;
        let n_layer = req(&k("block_count"))?;
        let n_ff = req(&k("feed_forward_length"))?;
        let n_head = req(&k("attention.head_count"))?;
        let context_length = req(&k("context_length"))?;
        let n_head_kv = uint(&k("attention.head_count_kv"))?.unwrap_or(n_head);
        if n_head % n_head_kv != 0 {
            return Err(bad(
                &k("attention.head_count_kv"),
                &format!("{n_head_kv} does not divide head_count {n_head}"),
            ));
        }
        // ref: Ollama model/models/gemma3/model_text.go falls back to 256 (llama.cpp's n_embd/n_head
        // fallback is wrong for gemma3)
        let head_dim = uint(&k("attention.key_length"))?.unwrap_or(256);
        if let Some(vl) = uint(&k("attention.value_length"))? {
            if vl != head_dim {
                return Err(bad(
                    &k("attention.value_length"),
                    &format!("{vl} differs from key_length {head_dim}"),
                ));
            }
        }
        if head_dim % 2 != 0 {
            return Err(bad(&k("attention.key_length"), "must be even for rope"));
        }
        // ref: HF Gemma3TextConfig rms_norm_eps = 1e-6 (Ollama-published files omit the key)
        let rms_eps = float(&k("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-6);
        let sliding_window = uint(&k("attention.sliding_window"))?;
        // ref: HF Gemma3TextConfig rope_theta = 1e6; Ollama files name it rope.global.freq_base
        let rope_base_global = match float(&k("rope.freq_base"))? {
            Some(b) => b,
            None => float(&k("rope.global.freq_base"))?.unwrap_or(1_000_000.0),
        };
        // ref: llama.cpp llama-model.cpp LLM_ARCH_GEMMA3 sets rope_freq_base_train_swa = 10000
        let rope_base_local = match float(&k("rope.freq_base_swa"))? {
            Some(b) => b,
            None => float(&k("rope.local.freq_base"))?.unwrap_or(10_000.0),
        };
        // ref: llama.cpp llama-model.cpp generic loader: freq_scale = 1/factor for linear scaling,
        // applied to global layers only
        let scaling_type = g.metadata.get(&k("rope.scaling.type")).and_then(Value::as_str);
        let factor = match float(&k("rope.scaling.factor"))? {
            Some(f) => Some(f),
            None => float(&k("rope.scale_linear"))?,
        };
        let rope_scale_global = match (scaling_type, factor) {
            (Some("linear") | None, Some(f)) if f > 0.0 && f != 1.0 => 1.0 / f,
            (Some("none"), _) | (_, None) => 1.0,
            (Some(t), Some(_)) if t != "linear" => {
                return Err(bad(
                    &k("rope.scaling.type"),
                    &format!("'{t}' is not supported (linear)"),
                ))
            }
            _ => 1.0,
        };
        // ref: llama.cpp llama-model.cpp LLM_ARCH_GEMMA3: 27B (62 layers) scales queries by
        // 1/sqrt(n_embd/n_head) per gemma_pytorch's config; the others by 1/sqrt(head_dim)
        let causal = arch == "gemma3";
        // ref: llama-model.cpp LLM_ARCH_GEMMA_EMBEDDING: f_attention_scale = 1/sqrt(head_dim)
        let attn_scale = if n_layer == 62 && causal {
            1.0 / ((n_embd / n_head) as f32).sqrt()
        } else {
            1.0 / (head_dim as f32).sqrt()
        };
        let final_softcap = float(&k("final_logit_softcapping"))?.filter(|c| *c > 0.0);
        let n_vocab = match g.tensor("token_embd.weight") {
            Some(t) if t.dims.len() == 2 && t.dims[0] as usize == n_embd => t.dims[1] as usize,
            Some(t) => {
                return Err(Error::Tensor {
                    path: path.clone(),
                    name: t.name.clone(),
                    what: format!("shape {:?}, expected [{n_embd}, n_vocab]", t.dims),
                })
            }
            None => {
                return Err(Error::Tensor {
                    path: path.clone(),
                    name: "token_embd.weight".into(),
                    what: "missing".into(),
                })
            }
        };
        Ok(Gemma3Config {
            n_vocab,
            n_embd,
            n_layer,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            context_length,
            rms_eps,
            sliding_window,
            rope_base_global,
            rope_base_local,
            rope_scale_global,
            attn_scale,
            final_softcap,
            tied_output: g.tensor("output.weight").is_none(),
            causal,
        })
    }

    /// ref: llama.cpp llama-hparams.cpp set_swa_pattern(6): layer i is global iff i % 6 == 5.
    pub fn is_global(&self, layer: usize) -> bool {
        self.sliding_window.is_none() || layer % 6 == 5
    }

    /// The architecture's name as GGUF writes it.
    pub fn arch(&self) -> &'static str {
        if self.causal {
            "gemma3"
        } else {
            "gemma-embedding"
        }
    }

    /// Width of the K (and V) rows of one layer.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// Width of the concatenated query heads.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }
}
