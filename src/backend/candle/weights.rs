//! The candle backend's weights: GGUF tensors as candle `QTensor`s (the file's blocks copied to
//! the device as they are) behind `QMatMul`, or a safetensors folder's dense tensors; norm
//! vectors as f32 tensors.

use super::safetensors::Folder;
use crate::backend::cpu::weights as cpu_weights;
use crate::backend::lora::Lora;
use crate::backend::Mat;
use crate::config::Gemma3Config;
use crate::error::{Error, Result};
use crate::gguf::{Gguf, TensorType};
use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QMatMul};
use candle_core::{Device, Module, Tensor};
use std::sync::Arc;

/// Where weights come from.
pub enum Weights {
    Gguf(Arc<Gguf>),
    Safetensors(Arc<Folder>),
}

/// One block's weights on the device.
pub struct LayerW {
    /// Whether each matrix must be multiplied a row at a time (see [`LayerW::forward`]).
    pub rowwise: [bool; 7],
    pub attn_norm: Tensor,
    pub q_norm: Tensor,
    pub k_norm: Tensor,
    pub post_attn_norm: Tensor,
    pub ffn_norm: Tensor,
    pub post_ffw_norm: Tensor,
    mats: [QMatMul; 7],
    /// A LoRA update per matrix: (Aᵀ, Bᵀ), so that `x · Aᵀ · Bᵀ` is added to the product.
    lora: [Option<(Tensor, Tensor)>; 7],
    /// Bytes of the matrices as stored.
    pub bytes: u64,
}

impl LayerW {
    /// `x · mᵀ`. On candle's CPU device Q6_K matrices go a row of `x` at a time: candle's x86
    /// repacked Q6_K path (taken for more than one row) sums in another order than its one-row
    /// path, which is bit-identical to the cpu backend's kernels, and activation quantization
    /// turns such 1-ulp differences into 1 % jumps that cascade through the blocks (measured on
    /// the real model: 0.3–0.5 in the logits from one block). Every other type is already
    /// bit-identical across batch sizes.
    pub fn forward(&self, m: Mat, x: &Tensor) -> Result<Tensor> {
        let q = &self.mats[m as usize];
        let n = x.dim(0)?;
        let y = if !self.rowwise[m as usize] || n == 1 {
            q.forward(x)?
        } else {
            let rows = (0..n)
                .map(|r| q.forward(&x.narrow(0, r, 1)?))
                .collect::<candle_core::Result<Vec<_>>>()?;
            Tensor::cat(&rows, 0)?
        };
        match &self.lora[m as usize] {
            Some((at, bt)) => Ok((y + x.matmul(at)?.matmul(bt)?)?),
            None => Ok(y),
        }
    }
}

/// The output norm and the vocabulary matrix on the device.
pub struct HeadW {
    pub norm: Tensor,
    pub w: QMatMul,
    pub bytes: u64,
}

/// candle's type for a GGUF tensor type (every type chimera reads, candle multiplies).
fn ggml(ty: TensorType) -> GgmlDType {
    match ty {
        TensorType::F32 => GgmlDType::F32,
        TensorType::F16 => GgmlDType::F16,
        TensorType::BF16 => GgmlDType::BF16,
        TensorType::Q4_0 => GgmlDType::Q4_0,
        TensorType::Q4_1 => GgmlDType::Q4_1,
        TensorType::Q5_0 => GgmlDType::Q5_0,
        TensorType::Q5_1 => GgmlDType::Q5_1,
        TensorType::Q8_0 => GgmlDType::Q8_0,
        TensorType::Q2K => GgmlDType::Q2K,
        TensorType::Q3K => GgmlDType::Q3K,
        TensorType::Q4K => GgmlDType::Q4K,
        TensorType::Q5K => GgmlDType::Q5K,
        TensorType::Q6K => GgmlDType::Q6K,
    }
}

/// A GGUF matrix (`cols` inputs, `rows` outputs) as a `QMatMul` on `dev`.
fn gguf_mat(
    g: &Gguf,
    name: &str,
    cols: usize,
    rows: usize,
    dev: &Device,
) -> Result<(QMatMul, u64)> {
    let r = cpu_weights::mat(g, name, cols, rows)?;
    let bytes = &g.bytes()[r.offset..r.offset + r.bytes];
    let qt = qtensor_from_ggml(ggml(r.ty), bytes, vec![rows, cols], dev)?;
    Ok((QMatMul::from_qtensor(qt)?, r.bytes as u64))
}

fn norm(v: Vec<f32>, dev: &Device) -> Result<Tensor> {
    let n = v.len();
    Ok(Tensor::from_vec(v, n, dev)?)
}

impl LayerW {
    /// Block `l`'s weights on `dev`.
    pub fn load(
        src: &Weights,
        c: &Gemma3Config,
        l: usize,
        lora: &Lora,
        dev: &Device,
    ) -> Result<LayerW> {
        let (e, hd, qd, kvd, ff) = (c.n_embd, c.head_dim, c.q_dim(), c.kv_dim(), c.n_ff);
        // (GGUF name, HF name, inputs, outputs) in `Mat` order
        let shapes = [
            ("attn_q", "self_attn.q_proj", e, qd),
            ("attn_k", "self_attn.k_proj", e, kvd),
            ("attn_v", "self_attn.v_proj", e, kvd),
            ("attn_output", "self_attn.o_proj", qd, e),
            ("ffn_gate", "mlp.gate_proj", e, ff),
            ("ffn_up", "mlp.up_proj", e, ff),
            ("ffn_down", "mlp.down_proj", ff, e),
        ];
        // (GGUF name, HF name, length)
        let norms = [
            ("attn_norm", "input_layernorm", e),
            ("attn_q_norm", "self_attn.q_norm", hd),
            ("attn_k_norm", "self_attn.k_norm", hd),
            ("post_attention_norm", "post_attention_layernorm", e),
            ("ffn_norm", "pre_feedforward_layernorm", e),
            ("post_ffw_norm", "post_feedforward_layernorm", e),
        ];
        let mut mats = vec![];
        let mut rowwise = [false; 7];
        let mut bytes = 0;
        let mut ns = vec![];
        match src {
            Weights::Gguf(g) => {
                for (i, (gg, _, cols, rows)) in shapes.into_iter().enumerate() {
                    let name = format!("blk.{l}.{gg}.weight");
                    let (m, b) = gguf_mat(g, &name, cols, rows, dev)?;
                    rowwise[i] = dev.is_cpu()
                        && cpu_weights::mat(g, &name, cols, rows)?.ty == TensorType::Q6K;
                    mats.push(m);
                    bytes += b;
                }
                for (gg, _, n) in norms {
                    ns.push(norm(cpu_weights::vec(g, &format!("blk.{l}.{gg}.weight"), n)?, dev)?);
                }
            }
            Weights::Safetensors(f) => {
                for (_, hf, cols, rows) in shapes {
                    let (m, b) = f.mat(&f.layer_name(l, hf), cols, rows, dev)?;
                    mats.push(m);
                    bytes += b;
                }
                for (_, hf, n) in norms {
                    ns.push(norm(f.norm(&f.layer_name(l, hf), n)?, dev)?);
                }
            }
        }
        let mats: [QMatMul; 7] =
            mats.try_into().map_err(|_| Error::Device("seven matrices per block".into()))?;
        let mut it = ns.into_iter();
        let mut next = || it.next().expect("invariant: six norms per block");
        Ok(LayerW {
            attn_norm: next(),
            q_norm: next(),
            k_norm: next(),
            post_attn_norm: next(),
            ffn_norm: next(),
            post_ffw_norm: next(),
            rowwise,
            mats,
            lora: lora_tensors(lora, l, dev)?,
            bytes,
        })
    }
}

/// Block `l`'s LoRA updates as (Aᵀ, Bᵀ) tensors on `dev`.
fn lora_tensors(lora: &Lora, l: usize, dev: &Device) -> Result<[Option<(Tensor, Tensor)>; 7]> {
    let mut out: [Option<(Tensor, Tensor)>; 7] = Default::default();
    for (i, m) in [Mat::Q, Mat::K, Mat::V, Mat::O, Mat::Gate, Mat::Up, Mat::Down].iter().enumerate()
    {
        if let Some(lm) = lora.get(l, *m) {
            let (r, n_in, n_out) = (lm.rank, lm.a.len() / lm.rank, lm.b.len() / lm.rank);
            let at = Tensor::from_slice(&lm.a, (r, n_in), dev)?.t()?.contiguous()?;
            let bt = Tensor::from_slice(&lm.b, (n_out, r), dev)?.t()?.contiguous()?;
            out[i] = Some((at, bt));
        }
    }
    Ok(out)
}

impl HeadW {
    /// The head on `dev` (the embedding when the output is tied).
    pub fn load(src: &Weights, c: &Gemma3Config, dev: &Device) -> Result<HeadW> {
        let (e, nv) = (c.n_embd, c.n_vocab);
        match src {
            Weights::Gguf(g) => {
                let name = if c.tied_output { "token_embd.weight" } else { "output.weight" };
                let (w, bytes) = gguf_mat(g, name, e, nv, dev)?;
                Ok(HeadW {
                    norm: norm(cpu_weights::vec(g, "output_norm.weight", e)?, dev)?,
                    w,
                    bytes,
                })
            }
            Weights::Safetensors(f) => {
                let name =
                    if c.tied_output { f.embed_name() } else { "lm_head.weight".to_string() };
                let (w, bytes) = f.mat(&name, e, nv, dev)?;
                Ok(HeadW { norm: norm(f.norm(&f.model_name("norm"), e)?, dev)?, w, bytes })
            }
        }
    }
}
