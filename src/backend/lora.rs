//! LoRA adapters in llama.cpp's GGUF adapter format (`convert_lora_to_gguf.py`; Ollama's
//! ADAPTER): each adapted block projection's low-rank pair, read and scaled at load, which the
//! backends add to that projection's product (`y = W x + s · B (A x)`, as llama.cpp's
//! `build_lora_mm`, ref: src/llama-graph.cpp; src/llama-adapter.cpp for the checks).

use super::Mat;
use crate::config::Gemma3Config;
use crate::error::{Error, Result};
use crate::gguf::{Gguf, TensorInfo};
use std::path::{Path, PathBuf};

/// An adapter file and the scale it is applied at (llama.cpp's `--lora` is 1).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Adapter {
    pub path: PathBuf,
    pub scale: f32,
}

/// One projection's update `out += B (A x)`: every adapter touching it stacked along the rank,
/// each one's scale folded into its rows of A.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraMat {
    pub rank: usize,
    /// rank × n_in, row-major.
    pub a: Vec<f32>,
    /// n_out × rank, row-major.
    pub b: Vec<f32>,
}

/// The updates of a model's blocks: `blocks[l][m as usize]`.
#[derive(Debug, Default)]
pub struct Lora {
    pub blocks: Vec<[Option<LoraMat>; 7]>,
}

/// The projections an adapter may touch, in [`Mat`] order, with GGUF's names.
const MATS: [(&str, Mat); 7] = [
    ("attn_q", Mat::Q),
    ("attn_k", Mat::K),
    ("attn_v", Mat::V),
    ("attn_output", Mat::O),
    ("ffn_gate", Mat::Gate),
    ("ffn_up", Mat::Up),
    ("ffn_down", Mat::Down),
];

impl Lora {
    pub fn is_empty(&self) -> bool {
        self.blocks.iter().all(|b| b.iter().all(Option::is_none))
    }

    /// The update of block `l`'s matrix `m`, if an adapter touches it.
    pub fn get(&self, l: usize, m: Mat) -> Option<&LoraMat> {
        self.blocks.get(l).and_then(|b| b[m as usize].as_ref())
    }

    /// The largest stacked rank (the scratch a backend needs per token).
    pub fn max_rank(&self) -> usize {
        self.blocks.iter().flatten().flatten().map(|m| m.rank).max().unwrap_or(0)
    }
}

/// (inputs, outputs) of matrix `m` of a block.
fn dims(c: &Gemma3Config, m: Mat) -> (usize, usize) {
    match m {
        Mat::Q => (c.n_embd, c.q_dim()),
        Mat::K | Mat::V => (c.n_embd, c.kv_dim()),
        Mat::O => (c.q_dim(), c.n_embd),
        Mat::Gate | Mat::Up => (c.n_embd, c.n_ff),
        Mat::Down => (c.n_ff, c.n_embd),
    }
}

/// Reads `adapters` for a model of architecture `arch` and shape `c`; every file is checked as
/// llama.cpp checks it, and anything chimera would not apply is an error naming the file.
pub fn load(adapters: &[Adapter], arch: &str, c: &Gemma3Config) -> Result<Lora> {
    let mut lora = Lora { blocks: (0..c.n_layer).map(|_| Default::default()).collect() };
    for ad in adapters {
        let g = Gguf::open(&ad.path)?;
        let alpha = header(&g, arch)?;
        for (l, m, a, b) in pairs(&g, c)? {
            let rank = a.dims[1] as usize;
            let (n_in, n_out) = dims(c, m);
            // ref: llama_adapter_lora_weight::get_scale: alpha / rank when alpha is set
            let s = if alpha != 0.0 { ad.scale * alpha / rank as f32 } else { ad.scale };
            let mut av = read(&g, a, rank * n_in)?;
            av.iter_mut().for_each(|v| *v *= s);
            let bv = read(&g, b, n_out * rank)?;
            let slot = &mut lora.blocks[l][m as usize];
            *slot = Some(match slot.take() {
                None => LoraMat { rank, a: av, b: bv },
                Some(old) => stack(old, av, &bv, rank),
            });
        }
    }
    Ok(lora)
}

/// A second adapter's pair stacked under the first: A gains rows, each row of B gains columns.
fn stack(old: LoraMat, a: Vec<f32>, b: &[f32], rank: usize) -> LoraMat {
    let n_out = old.b.len() / old.rank;
    let r = old.rank + rank;
    let mut nb = Vec::with_capacity(n_out * r);
    for p in 0..n_out {
        nb.extend_from_slice(&old.b[p * old.rank..(p + 1) * old.rank]);
        nb.extend_from_slice(&b[p * rank..(p + 1) * rank]);
    }
    let mut na = old.a;
    na.extend(a);
    LoraMat { rank: r, a: na, b: nb }
}

fn bad_key(path: &Path, key: &str, what: String) -> Error {
    Error::BadKey { path: path.to_path_buf(), key: key.into(), what }
}

/// Checks that `g` is a LoRA adapter for `arch`; its alpha (0 when absent).
fn header(g: &Gguf, arch: &str) -> Result<f32> {
    let s = |k: &str| g.metadata.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let want = |key: &str, expect: &str| {
        let got = s(key);
        if got == expect {
            return Ok(());
        }
        Err(bad_key(&g.path, key, format!("is '{got}', expected '{expect}' (a LoRA adapter)")))
    };
    want("general.type", "adapter")?;
    want("adapter.type", "lora")?;
    if s("general.architecture") != arch {
        let what = format!("is '{}', the model's is '{arch}'", s("general.architecture"));
        return Err(bad_key(&g.path, "general.architecture", what));
    }
    if g.metadata.contains_key("adapter.alora.invocation_tokens") {
        let what = "an activated LoRA (aLoRA), which chimera does not apply".to_string();
        return Err(bad_key(&g.path, "adapter.alora.invocation_tokens", what));
    }
    match g.metadata.get("adapter.lora.alpha") {
        None => Ok(0.0),
        Some(v) => v.as_f64().map(|a| a as f32).ok_or_else(|| {
            bad_key(&g.path, "adapter.lora.alpha", format!("expected a number, got {}", v.brief()))
        }),
    }
}

fn tensor_err(g: &Gguf, name: &str, what: String) -> Error {
    Error::Tensor { path: g.path.clone(), name: name.into(), what }
}

type Pair<'a> = (usize, Mat, &'a TensorInfo, &'a TensorInfo);

/// The file's (block, matrix, lora_a, lora_b) pairs, names and shapes checked.
fn pairs<'a>(g: &'a Gguf, c: &Gemma3Config) -> Result<Vec<Pair<'a>>> {
    let mut out = vec![];
    for t in &g.tensors {
        let Some(base) = t.name.strip_suffix(".lora_a") else {
            if t.name.ends_with(".lora_b") || t.name.ends_with("_norm.weight") {
                continue; // b is read with its a; llama.cpp skips norm vectors too
            }
            return Err(tensor_err(g, &t.name, "not a LoRA tensor (.lora_a or .lora_b)".into()));
        };
        let (l, m) = target(base, c).ok_or_else(|| {
            let what = "chimera applies adapters to the blocks' seven projections (attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down) only";
            tensor_err(g, &t.name, what.into())
        })?;
        let b_name = format!("{base}.lora_b");
        let b = g.tensor(&b_name).ok_or_else(|| tensor_err(g, &b_name, "missing".into()))?;
        let (n_in, n_out) = dims(c, m);
        let rank = t.dims.get(1).copied().unwrap_or(0);
        if t.dims.len() != 2 || t.dims[0] != n_in as u64 || rank == 0 {
            let what =
                format!("shape {:?}, expected [{n_in}, rank] (the wrong base model?)", t.dims);
            return Err(tensor_err(g, &t.name, what));
        }
        if b.dims != [rank, n_out as u64] {
            let what = format!("shape {:?}, expected [{rank}, {n_out}]", b.dims);
            return Err(tensor_err(g, &b_name, what));
        }
        out.push((l, m, t, b));
    }
    for t in g.tensors.iter().filter(|t| t.name.ends_with(".lora_b")) {
        let a = t.name.replace(".lora_b", ".lora_a");
        if g.tensor(&a).is_none() {
            return Err(tensor_err(g, &a, "missing".into()));
        }
    }
    Ok(out)
}

/// `blk.N.<projection>.weight` → (N, matrix).
fn target(base: &str, c: &Gemma3Config) -> Option<(usize, Mat)> {
    let rest = base.strip_prefix("blk.")?.strip_suffix(".weight")?;
    let (l, name) = rest.split_once('.')?;
    let l: usize = l.parse().ok().filter(|l| *l < c.n_layer)?;
    MATS.iter().find(|(n, _)| *n == name).map(|(_, m)| (l, *m))
}

fn read(g: &Gguf, t: &TensorInfo, n: usize) -> Result<Vec<f32>> {
    let (blk, _) = t.ty.block();
    if !n.is_multiple_of(blk) {
        let what = format!("{} elements are not whole {} blocks", n, t.ty.name());
        return Err(tensor_err(g, &t.name, what));
    }
    let mut v = vec![0f32; n];
    super::cpu::quant::dequantize(t.ty, g.data(t), &mut v);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacking_two_adapters_adds_their_updates() {
        // n_in 2, n_out 3; ranks 1 and 2
        let one = LoraMat { rank: 1, a: vec![1.0, 2.0], b: vec![1.0, 0.0, -1.0] };
        let s = stack(one.clone(), vec![0.5, 0.0, 0.0, 3.0], &[1.0, 2.0, 0.0, 1.0, 4.0, 4.0], 2);
        let x = [0.25f32, -1.0];
        let apply = |m: &LoraMat| -> Vec<f32> {
            let t: Vec<f32> =
                (0..m.rank).map(|j| (0..2).map(|k| m.a[j * 2 + k] * x[k]).sum()).collect();
            (0..3).map(|p| (0..m.rank).map(|j| m.b[p * m.rank + j] * t[j]).sum()).collect()
        };
        // first: t = -1.75 → [-1.75, 0, 1.75]; second: t = [0.125, -3] → [-5.875, -3, -11.5]
        assert_eq!(apply(&one), vec![-1.75, 0.0, 1.75]);
        assert_eq!(apply(&s), vec![-7.625, -3.0, -9.75]);
    }
}
