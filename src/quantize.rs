//! `chimera quantize`: GGUF → GGUF requantization with llama.cpp's per-tensor type choices (a
//! safetensors folder is written as a GGUF first, by `convert`).
//!
//! Every 2-D weight is dequantized to f32 and quantized to the type llama.cpp's
//! `llama_tensor_get_type` (src/llama-quant.cpp) would pick: the target type, Q6_K for the output
//! matrix (the tied token embedding when there is no `output.weight`), and for the _M mixes Q6_K on
//! `attn_v`/`ffn_down` of the layers `use_more_bits` selects; rows whose length is not a multiple of
//! 256 fall back (Q4_K→Q5_0, Q5_K→Q5_1, Q6_K→Q8_0, Q2_K/Q3_K→Q4_0 here as chimera lacks IQ4_NL).
//! 1-D tensors (norms) stay F32. Metadata is kept, `general.file_type` updated, and the file is
//! written atomically as GGUF v3.

use crate::backend::cpu::quant;
use crate::error::{Error, Result};
use crate::gguf::{self, Gguf, TensorType, Value, WriteTensor};
use std::path::Path;

/// What to quantize to: a single type or one of llama.cpp's mixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Type(TensorType),
    Q4KM,
    Q5KM,
}

impl std::str::FromStr for Target {
    type Err = Error;
    fn from_str(s: &str) -> Result<Target> {
        match s.to_ascii_uppercase().as_str() {
            "Q4_K_M" => Ok(Target::Q4KM),
            "Q5_K_M" => Ok(Target::Q5KM),
            "Q8_K" => Err(Error::option("TYPE", s, "Q8_K is an activation format")),
            _ => TensorType::from_name(s).map(Target::Type).ok_or_else(|| {
                Error::option(
                    "TYPE",
                    s,
                    "one of F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q4_K_M, Q5_K_M",
                )
            }),
        }
    }
}

impl Target {
    fn base(self) -> TensorType {
        match self {
            Target::Type(t) => t,
            Target::Q4KM => TensorType::Q4K,
            Target::Q5KM => TensorType::Q5K,
        }
    }

    /// llama.cpp's `llama_ftype` value for `general.file_type` (ref: llama.h).
    pub fn ftype(self) -> u32 {
        match self {
            Target::Q4KM => 15,
            Target::Q5KM => 17,
            Target::Type(t) => match t {
                TensorType::F32 => 0,
                TensorType::F16 => 1,
                TensorType::Q4_0 => 2,
                TensorType::Q4_1 => 3,
                TensorType::Q8_0 => 7,
                TensorType::Q5_0 => 8,
                TensorType::Q5_1 => 9,
                TensorType::Q2K => 10,
                TensorType::Q3K => 12,
                TensorType::Q4K => 15,
                TensorType::Q5K => 17,
                TensorType::Q6K => 18,
                TensorType::BF16 => 32,
            },
        }
    }
}

/// ref: llama-quant.cpp use_more_bits: the first and last eighth, and every third layer between.
pub fn use_more_bits(i: usize, n: usize) -> bool {
    // past the first test i ≥ n/8, so the subtraction cannot underflow
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// The fallback for rows that are not whole 256-element super-blocks.
fn fallback(t: TensorType, row: u64) -> TensorType {
    if row.is_multiple_of(256) {
        return t;
    }
    match t {
        TensorType::Q4K => TensorType::Q5_0,
        TensorType::Q5K => TensorType::Q5_1,
        TensorType::Q6K => TensorType::Q8_0,
        TensorType::Q2K | TensorType::Q3K => TensorType::Q4_0,
        other => other,
    }
}

/// The type llama.cpp gives a tensor under `target` (`i_v`/`i_down`: this layer's index among
/// the attn_v / ffn_down tensors, `n_layer` their count).
pub fn tensor_type(
    name: &str,
    row: u64,
    dims: usize,
    target: Target,
    tied: bool,
    layer: Option<usize>,
    n_layer: usize,
) -> TensorType {
    if dims < 2 {
        return TensorType::F32;
    }
    let base = target.base();
    let is_output = name == "output.weight" || (tied && name == "token_embd.weight");
    let mixed = matches!(target, Target::Q4KM | Target::Q5KM);
    let keeps_output =
        matches!(target, Target::Type(TensorType::F16 | TensorType::BF16 | TensorType::Q8_0));
    let more_bits = mixed
        && (name.ends_with("attn_v.weight") || name.ends_with("ffn_down.weight"))
        && layer.is_some_and(|i| use_more_bits(i, n_layer));
    let t = if (is_output && !keeps_output) || more_bits { TensorType::Q6K } else { base };
    fallback(t, row)
}

/// Requantizes `input` to `output`. Quantized inputs need `allow_requantize` (as llama-quantize).
/// A Hugging Face folder is written as a GGUF beside `output` first ([`crate::convert`]).
pub fn run(
    input: &Path,
    output: &Path,
    target: Target,
    allow_requantize: bool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<()> {
    if crate::config::is_folder(input) {
        let name = output.file_name().map_or("out".into(), |n| n.to_string_lossy().into_owned());
        let tmp = output.with_file_name(format!(".{name}.convert-{}", std::process::id()));
        let done = crate::convert::folder_to_gguf(input, &tmp)
            .and_then(|()| run(&tmp, output, target, false, progress));
        let _ = std::fs::remove_file(&tmp);
        return done;
    }
    let g = Gguf::open(input)?;
    let quantized_input = g
        .tensors
        .iter()
        .any(|t| !matches!(t.ty, TensorType::F32 | TensorType::F16 | TensorType::BF16));
    if quantized_input && !allow_requantize {
        return Err(Error::option(
            "--allow-requantize",
            "off",
            &format!(
                "{} is already quantized; requantizing loses quality, pass --allow-requantize",
                input.display()
            ),
        ));
    }
    if input.canonicalize().ok() == output.canonicalize().ok() {
        return Err(Error::option("OUT", output.display(), "is the input file"));
    }
    let tied = g.tensor("output.weight").is_none();
    let n_layer =
        g.metadata.get("gemma3.block_count").and_then(Value::as_i64).unwrap_or(0) as usize;
    let mut md = g.metadata.clone();
    md.insert("general.file_type".into(), Value::U32(target.ftype()));
    md.insert("general.quantized_by".into(), Value::String("chimera".into()));
    let mut out = Vec::with_capacity(g.tensors.len());
    for (k, t) in g.tensors.iter().enumerate() {
        progress(k + 1, g.tensors.len());
        let layer = t
            .name
            .strip_prefix("blk.")
            .and_then(|r| r.split('.').next())
            .and_then(|i| i.parse().ok());
        let ty = tensor_type(&t.name, t.dims[0], t.dims.len(), target, tied, layer, n_layer);
        let data = if ty == t.ty {
            std::borrow::Cow::Borrowed(g.data(t))
        } else {
            let mut f = vec![0f32; t.n_elements() as usize];
            quant::dequantize(t.ty, g.data(t), &mut f);
            std::borrow::Cow::Owned(match ty {
                TensorType::F32 => f.iter().flat_map(|v| v.to_le_bytes()).collect(),
                _ => quant::quantize(ty, &f),
            })
        };
        out.push(WriteTensor { name: t.name.clone(), dims: t.dims.clone(), ty, data });
    }
    gguf::write(output, &md, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On gemma-3-270m (n_embd 640, 18 layers) the Q4_K_M rules give the real file's types.
    #[test]
    fn q4_k_m_choices_match_the_real_file() {
        let t =
            |name: &str, row: u64, layer| tensor_type(name, row, 2, Target::Q4KM, true, layer, 18);
        assert_eq!(t("token_embd.weight", 640, None), TensorType::Q8_0);
        assert_eq!(t("blk.0.attn_q.weight", 640, Some(0)), TensorType::Q5_0);
        assert_eq!(t("blk.0.attn_output.weight", 1024, Some(0)), TensorType::Q4K);
        assert_eq!(t("blk.0.attn_v.weight", 640, Some(0)), TensorType::Q8_0);
        assert_eq!(t("blk.3.attn_v.weight", 640, Some(3)), TensorType::Q5_0);
        assert_eq!(t("blk.0.ffn_down.weight", 2048, Some(0)), TensorType::Q6K);
        assert_eq!(t("blk.3.ffn_down.weight", 2048, Some(3)), TensorType::Q4K);
        let v6: usize = (0..18).filter(|&i| use_more_bits(i, 18)).count();
        assert_eq!(v6, 9, "9 attn_v Q8_0 and 9 ffn_down Q6_K in the real file");
        assert_eq!(
            tensor_type("blk.0.attn_norm.weight", 640, 1, Target::Q4KM, true, Some(0), 18),
            TensorType::F32
        );
        assert_eq!(
            tensor_type(
                "token_embd.weight",
                640,
                2,
                Target::Type(TensorType::Q8_0),
                true,
                None,
                18
            ),
            TensorType::Q8_0
        );
        assert_eq!(
            tensor_type(
                "token_embd.weight",
                640,
                2,
                Target::Type(TensorType::Q4_0),
                true,
                None,
                18
            ),
            TensorType::Q8_0
        );
    }

    #[test]
    fn file_types_name_what_targets_write() {
        for (t, name) in [("q4_k_m", "Q4_K_M"), ("q8_0", "Q8_0"), ("bf16", "BF16"), ("F16", "F16")]
        {
            let ft = t.parse::<Target>().unwrap().ftype();
            assert_eq!(gguf::ftype_name(ft.into()), Some(name));
        }
        assert_eq!(gguf::ftype_name(99), None);
    }

    #[test]
    fn type_names_parse() {
        assert_eq!("q4_k_m".parse::<Target>().unwrap(), Target::Q4KM);
        assert_eq!("Q8_0".parse::<Target>().unwrap(), Target::Type(TensorType::Q8_0));
        assert!("Q9".parse::<Target>().unwrap_err().to_string().contains("TYPE"));
    }
}
