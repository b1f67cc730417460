//! A Hugging Face gemma3 folder as a GGUF, as llama.cpp's convert_hf_to_gguf.py writes one
//! (`Gemma3Model` with a `tokenizer.model`): the weights under GGUF names in their own type
//! (norms f32 with Gemma3RMSNorm's +1), config.json as `gemma3.*` keys, the SentencePiece
//! vocabulary with llama.cpp's token types, the special tokens. So that a folder can be
//! quantized (`quantize`, `/api/create` with `quantize`); the result is checked by reading its
//! config back, so that nothing the GGUF cannot say is lost silently.

use crate::backend::candle::safetensors::{read_json, Folder};
use crate::config::Gemma3Config;
use crate::error::{Error, Result};
use crate::gguf::{self, Array, TensorType, Value, WriteTensor};
use crate::tokenizer::token_type::*;
use serde_json::Value as Json;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

/// The per-block tensors: GGUF name, HF name (under `layers.N.`).
const BLOCK: [(&str, &str); 13] = [
    ("attn_norm", "input_layernorm"),
    ("post_attention_norm", "post_attention_layernorm"),
    ("ffn_norm", "pre_feedforward_layernorm"),
    ("post_ffw_norm", "post_feedforward_layernorm"),
    ("attn_q_norm", "self_attn.q_norm"),
    ("attn_k_norm", "self_attn.k_norm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
];

/// Writes folder `dir` as the GGUF `out` (atomically).
pub fn folder_to_gguf(dir: &Path, out: &Path) -> Result<()> {
    let f = Folder::open(dir)?;
    let config = read_json(&dir.join("config.json"))?;
    let vocab = Vocab::read(dir, f.cfg.n_vocab, &config)?;
    let mut md = metadata(&f.cfg, &config);
    vocab.describe(&mut md);
    let mut tensors = vec![];
    let embd = f.embed_name();
    tensors.push(tensor(&f, &embd, "token_embd.weight", Some(f.cfg.n_vocab))?);
    tensors.push(tensor(&f, &f.model_name("norm"), "output_norm.weight", None)?);
    if !f.cfg.tied_output {
        let head = ["lm_head.weight", "language_model.lm_head.weight"]
            .into_iter()
            .find(|n| f.view(n).is_ok())
            .unwrap_or("lm_head.weight");
        tensors.push(tensor(&f, head, "output.weight", None)?);
    }
    for l in 0..f.cfg.n_layer {
        for (gg, hf) in BLOCK {
            tensors.push(tensor(&f, &f.layer_name(l, hf), &format!("blk.{l}.{gg}.weight"), None)?);
        }
    }
    let ty = tensors[0].ty;
    let ftype = match ty {
        TensorType::F32 => 0,
        TensorType::F16 => 1,
        _ => 32, // ref: llama.h LLAMA_FTYPE_MOSTLY_BF16
    };
    md.insert("general.file_type".into(), Value::U32(ftype));
    gguf::write(out, &md, &tensors)?;
    check(&f.cfg, out)
}

/// Reads the written file's config back: what config.json said must be what the GGUF says.
fn check(want: &Gemma3Config, out: &Path) -> Result<()> {
    let got = gguf::Gguf::open(out).and_then(|g| Gemma3Config::from_gguf(&g));
    match got {
        Ok(got) if &got == want => Ok(()),
        other => {
            let _ = std::fs::remove_file(out);
            let what = match other {
                Ok(got) => format!("config.json says {want:?}, a GGUF can only say {got:?}"),
                Err(e) => e.to_string(),
            };
            Err(Error::Registry { path: out.into(), what })
        }
    }
}

/// Tensor `hf` as GGUF tensor `name`: a vector as f32 plus one (Gemma3RMSNorm), a matrix in its
/// own type, its first `rows` rows where given (llama.cpp drops the embedding's padding rows).
fn tensor<'a>(f: &'a Folder, hf: &str, name: &str, rows: Option<usize>) -> Result<WriteTensor<'a>> {
    let bad = |what: String| Error::Tensor { path: f.path.clone(), name: hf.into(), what };
    let v = f.view(hf)?;
    let shape = v.shape().to_vec();
    if shape.len() == 1 {
        let x = f.norm(hf, shape[0])?;
        let data: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        let dims = vec![shape[0] as u64];
        return Ok(WriteTensor { name: name.into(), dims, ty: TensorType::F32, data: data.into() });
    }
    let ty = match v.dtype() {
        safetensors::Dtype::BF16 => TensorType::BF16,
        safetensors::Dtype::F16 => TensorType::F16,
        safetensors::Dtype::F32 => TensorType::F32,
        other => return Err(bad(format!("dtype {other:?}, expected bf16, f16 or f32"))),
    };
    let [r, c] = shape[..] else { return Err(bad(format!("shape {shape:?}, expected 2-D"))) };
    let keep = rows.unwrap_or(r);
    if keep > r {
        return Err(bad(format!("{r} rows, config.json's vocab_size is {keep}")));
    }
    let bytes = keep * c * v.dtype().bitsize() / 8;
    let data = Cow::Borrowed(&v.data()[..bytes]);
    Ok(WriteTensor { name: name.into(), dims: vec![c as u64, keep as u64], ty, data })
}

/// config.json as gemma3 GGUF keys (ref: convert_hf_to_gguf.py Gemma3Model.set_gguf_parameters).
fn metadata(c: &Gemma3Config, json: &Json) -> BTreeMap<String, Value> {
    let mut md = BTreeMap::new();
    let cfg = json.get("text_config").unwrap_or(json);
    let name =
        json.get("_name_or_path").and_then(Json::as_str).map_or("gemma3".to_string(), String::from);
    md.insert("general.architecture".into(), Value::String("gemma3".into()));
    md.insert("general.name".into(), Value::String(name));
    md.insert("general.converted_by".into(), Value::String("chimera".into()));
    md.extend(c.gguf_keys("gemma3"));
    // the factor as config.json gives it, so that reading it back gives the same scale
    let factor = cfg.get("rope_scaling").and_then(|r| r.get("factor")).and_then(Json::as_f64);
    if let Some(f) = factor.filter(|_| c.rope_scale_global != 1.0) {
        md.insert("gemma3.rope.scaling.factor".into(), Value::F32(f as f32));
    }
    md
}

/// The vocabulary as llama.cpp's `_create_vocab_sentencepiece` and `SpecialVocab` write it.
struct Vocab {
    tokens: Vec<String>,
    scores: Vec<f64>,
    types: Vec<i64>,
    /// (`bos`, id), … for the special tokens found.
    specials: Vec<(&'static str, u32)>,
    add_bos: bool,
    add_eos: bool,
    template: Option<String>,
}

impl Vocab {
    /// `tokenizer.model`'s pieces, padded or cut to `n_vocab`, then `added_tokens.json` and
    /// `tokenizer_config.json`'s added tokens over them; the special tokens and flags.
    fn read(dir: &Path, n_vocab: usize, config: &Json) -> Result<Vocab> {
        let path = dir.join("tokenizer.model");
        let bytes = std::fs::read(&path).map_err(|e| {
            let why = format!("{e}; a GGUF's vocabulary is written from the SentencePiece model");
            Error::io(&path, std::io::Error::other(why))
        })?;
        let pieces = pieces(&bytes)
            .map_err(|what| Error::Registry { path: path.clone(), what: what.into() })?;
        let mut v = Vocab {
            tokens: (0..n_vocab).map(|i| format!("[PAD{i}]")).collect(),
            scores: vec![-1000.0; n_vocab],
            types: vec![UNUSED; n_vocab],
            specials: vec![],
            add_bos: true,
            add_eos: false,
            template: None,
        };
        for (i, (piece, score, ty)) in pieces.into_iter().enumerate().take(n_vocab) {
            // ref: sentencepiece_model.proto Type: 2 UNKNOWN, 3 CONTROL, 5 UNUSED, 6 BYTE;
            // NORMAL and USER_DEFINED pieces are NORMAL to llama.cpp's converter
            let t = if [UNKNOWN, CONTROL, UNUSED, BYTE].contains(&ty) { ty } else { NORMAL };
            (v.tokens[i], v.scores[i], v.types[i]) = (piece, score.into(), t);
        }
        if let Ok(added) = read_json(&dir.join("added_tokens.json")) {
            for (text, id) in added.as_object().into_iter().flatten() {
                if let Some(i) = id.as_u64().map(|i| i as usize).filter(|&i| i < n_vocab) {
                    (v.tokens[i], v.scores[i], v.types[i]) = (text.clone(), -1000.0, USER_DEFINED);
                }
            }
        }
        let tc = read_json(&dir.join("tokenizer_config.json")).unwrap_or(Json::Null);
        v.added(&tc);
        v.special_ids(&tc, config);
        Ok(v)
    }

    /// tokenizer_config.json's `added_tokens_decoder`: special ones CONTROL, others USER_DEFINED.
    fn added(&mut self, tc: &Json) {
        let decoder = tc.get("added_tokens_decoder").and_then(Json::as_object);
        for (id, d) in decoder.into_iter().flatten() {
            let (Ok(i), Some(text)) =
                (id.parse::<usize>(), d.get("content").and_then(Json::as_str))
            else {
                continue;
            };
            if i >= self.tokens.len() {
                continue;
            }
            let special = d.get("special").and_then(Json::as_bool).unwrap_or(false);
            // ref: convert_hf_to_gguf.py does_token_look_special
            let looks = ["<pad>", "<mask>", "<2mass>", "[@BOS@]"].contains(&text)
                || (text.starts_with("<|") && text.ends_with("|>"));
            (self.types[i], self.tokens[i]) = if special || looks {
                (CONTROL, text.to_string())
            } else {
                (USER_DEFINED, text.replace('\u{2581}', " "))
            };
            self.scores[i] = -1000.0;
        }
    }

    /// Special ids from tokenizer_config.json's `<typ>_token` (its text looked up), else
    /// config.json's `<typ>_token_id`; the add-BOS/EOS flags and the chat template.
    fn special_ids(&mut self, tc: &Json, config: &Json) {
        for typ in ["bos", "eos", "unk", "pad"] {
            let text = tc.get(format!("{typ}_token")).and_then(|e| match e {
                Json::String(s) => Some(s.as_str()),
                other => other.get("content").and_then(Json::as_str),
            });
            let by_text = text.and_then(|t| self.tokens.iter().position(|x| x == t));
            let cfg = config.get(format!("{typ}_token_id")).or_else(|| {
                config.get("text_config").and_then(|t| t.get(format!("{typ}_token_id")))
            });
            let cfg = cfg.and_then(|v| v.as_u64().or_else(|| v.get(0).and_then(Json::as_u64)));
            let id =
                by_text.map(|i| i as u64).or(cfg).filter(|&i| (i as usize) < self.tokens.len());
            if let Some(id) = id {
                self.specials.push((typ, id as u32));
            }
        }
        let flag = |k: &str, d: bool| tc.get(k).and_then(Json::as_bool).unwrap_or(d);
        (self.add_bos, self.add_eos) = (flag("add_bos_token", true), flag("add_eos_token", false));
        self.template = tc.get("chat_template").and_then(Json::as_str).map(String::from);
    }

    fn describe(self, md: &mut BTreeMap<String, Value>) {
        let key = |s: &str| format!("tokenizer.ggml.{s}");
        md.insert(key("model"), Value::String("llama".into()));
        md.insert(key("pre"), Value::String("default".into()));
        md.insert(key("tokens"), Value::Array(Array::Strings(self.tokens)));
        md.insert(key("scores"), Value::Array(Array::Floats(self.scores)));
        md.insert(key("token_type"), Value::Array(Array::Ints(self.types)));
        // ref: convert_hf_to_gguf.py Gemma3Model.set_vocab: add_space_prefix False
        md.insert(key("add_space_prefix"), Value::Bool(false));
        md.insert(key("add_bos_token"), Value::Bool(self.add_bos));
        md.insert(key("add_eos_token"), Value::Bool(self.add_eos));
        for (typ, id) in self.specials {
            let name = if typ == "pad" {
                "padding"
            } else if typ == "unk" {
                "unknown"
            } else {
                typ
            };
            md.insert(key(&format!("{name}_token_id")), Value::U32(id));
        }
        if let Some(t) = self.template {
            md.insert("tokenizer.chat_template".into(), Value::String(t));
        }
    }
}

/// A SentencePiece `ModelProto`'s pieces as (piece, score, type): field 1, each a message of
/// piece (1, string), score (2, float) and type (3, enum, NORMAL = 1 when absent).
fn pieces(b: &[u8]) -> std::result::Result<Vec<(String, f32, i64)>, &'static str> {
    let mut out = vec![];
    let mut r = Proto(b);
    while let Some((field, value)) = r.next()? {
        if let (1, Field::Bytes(m)) = (field, value) {
            let (mut piece, mut score, mut ty) = (None, 0f32, NORMAL);
            let mut p = Proto(m);
            while let Some((f, v)) = p.next()? {
                match (f, v) {
                    (1, Field::Bytes(s)) => {
                        let s = std::str::from_utf8(s).map_err(|_| "a piece is not UTF-8")?;
                        piece = Some(s.to_string());
                    }
                    (2, Field::Fixed32(x)) => score = f32::from_bits(x),
                    (3, Field::Varint(t)) => ty = t as i64,
                    _ => {}
                }
            }
            out.push((piece.ok_or("a piece without its text")?, score, ty));
        }
    }
    if out.is_empty() {
        return Err("no pieces: not a SentencePiece model");
    }
    Ok(out)
}

/// A protobuf wire-format reader: just what a `ModelProto` needs.
struct Proto<'a>(&'a [u8]);

enum Field<'a> {
    Varint(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
    Other,
}

impl<'a> Proto<'a> {
    fn varint(&mut self) -> std::result::Result<u64, &'static str> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.0.split_first().ok_or("truncated")?;
            self.0 = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("a varint longer than 64 bits")
    }

    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], &'static str> {
        if n > self.0.len() {
            return Err("truncated");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn next(&mut self) -> std::result::Result<Option<(u64, Field<'a>)>, &'static str> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => self.take(8).map(|_| Field::Other)?,
            2 => {
                let n = self.varint()? as usize;
                Field::Bytes(self.take(n)?)
            }
            5 => {
                let b = self.take(4)?;
                Field::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            _ => return Err("an unknown wire type"),
        };
        Ok(Some((key >> 3, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A piece message by hand: field 1 of a ModelProto holding piece, score and type.
    fn piece(text: &str, score: f32, ty: Option<u8>) -> Vec<u8> {
        let mut m = vec![0x0a, text.len() as u8];
        m.extend_from_slice(text.as_bytes());
        m.push(0x15);
        m.extend_from_slice(&score.to_le_bytes());
        if let Some(t) = ty {
            m.extend_from_slice(&[0x18, t]);
        }
        let mut out = vec![0x0a, m.len() as u8];
        out.extend(m);
        out
    }

    #[test]
    fn sentencepiece_pieces_read() {
        let mut b = piece("<unk>", 0.0, Some(2));
        b.extend(piece("\u{2581}a", -3.5, None));
        // a trainer_spec (field 2) and a fixed64 are skipped
        b.extend_from_slice(&[0x12, 0x02, 0x08, 0x01, 0x19, 0, 0, 0, 0, 0, 0, 0, 0]);
        let p = pieces(&b).unwrap();
        assert_eq!(p, vec![("<unk>".into(), 0.0, 2), ("\u{2581}a".into(), -3.5, 1)]);
        assert_eq!(pieces(&b[..b.len() - 3]), Err("truncated"));
        assert_eq!(pieces(&[0x12, 0x00]), Err("no pieces: not a SentencePiece model"));
    }
}
