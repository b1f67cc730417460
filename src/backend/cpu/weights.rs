//! The CPU backend's weights: typed views into the mapped GGUF, and the row-interleaved copies
//! its products read (made at load, a few MiB at a time, the file's pages released behind them).

use super::quant::{self, QWeight};
use crate::config::Gemma3Config;
use crate::error::{Error, Result};
use crate::gguf::{Gguf, TensorInfo, TensorType};

/// Where a 2-D weight lives in the file.
#[derive(Debug, Clone, Copy)]
pub struct WRef {
    pub ty: TensorType,
    pub rows: usize,
    pub cols: usize,
    pub offset: usize,
    pub bytes: usize,
    /// Index of the row-interleaved copy in `Weights::x8`, when the type has one.
    pub x8: Option<usize>,
}

/// One block's weights (GGUF names in the comments).
pub struct Layer {
    pub attn_norm: Vec<f32>,      // blk.N.attn_norm
    pub q_norm: Vec<f32>,         // blk.N.attn_q_norm
    pub k_norm: Vec<f32>,         // blk.N.attn_k_norm
    pub post_attn_norm: Vec<f32>, // blk.N.post_attention_norm
    pub ffn_norm: Vec<f32>,       // blk.N.ffn_norm
    pub post_ffw_norm: Vec<f32>,  // blk.N.post_ffw_norm
    pub wq: WRef,                 // blk.N.attn_q
    pub wk: WRef,                 // blk.N.attn_k
    pub wv: WRef,                 // blk.N.attn_v
    pub wo: WRef,                 // blk.N.attn_output
    pub w_gate: WRef,             // blk.N.ffn_gate
    pub w_up: WRef,               // blk.N.ffn_up
    pub w_down: WRef,             // blk.N.ffn_down
}

/// The output head: the final norm and the vocabulary matrix (the embedding when tied).
pub struct Head {
    pub norm: Vec<f32>,
    pub w: WRef,
}

/// A 2-D weight's view, checked for presence and shape.
pub fn mat(g: &Gguf, name: &str, cols: usize, rows: usize) -> Result<WRef> {
    let t = find(g, name)?;
    if t.dims != [cols as u64, rows as u64] {
        return Err(shape_err(g, t, &[cols, rows]));
    }
    Ok(WRef { ty: t.ty, rows, cols, offset: t.offset as usize, bytes: t.bytes as usize, x8: None })
}

/// A 1-D weight, dequantized to f32.
pub fn vec(g: &Gguf, name: &str, n: usize) -> Result<Vec<f32>> {
    let t = find(g, name)?;
    if t.dims != [n as u64] {
        return Err(shape_err(g, t, &[n]));
    }
    let mut out = vec![0f32; n];
    quant::dequantize(t.ty, g.data(t), &mut out);
    Ok(out)
}

fn find<'a>(g: &'a Gguf, name: &str) -> Result<&'a TensorInfo> {
    g.tensor(name).ok_or_else(|| Error::Tensor {
        path: g.path.clone(),
        name: name.into(),
        what: "missing".into(),
    })
}

fn shape_err(g: &Gguf, t: &TensorInfo, want: &[usize]) -> Error {
    Error::Tensor {
        path: g.path.clone(),
        name: t.name.clone(),
        what: format!("shape {:?}, expected {want:?}", t.dims),
    }
}

impl Layer {
    /// Block `i`'s weights, every tensor checked.
    pub fn load(g: &Gguf, c: &Gemma3Config, i: usize) -> Result<Layer> {
        let n = |s: &str| format!("blk.{i}.{s}.weight");
        let (e, hd) = (c.n_embd, c.head_dim);
        Ok(Layer {
            attn_norm: vec(g, &n("attn_norm"), e)?,
            q_norm: vec(g, &n("attn_q_norm"), hd)?,
            k_norm: vec(g, &n("attn_k_norm"), hd)?,
            post_attn_norm: vec(g, &n("post_attention_norm"), e)?,
            ffn_norm: vec(g, &n("ffn_norm"), e)?,
            post_ffw_norm: vec(g, &n("post_ffw_norm"), e)?,
            wq: mat(g, &n("attn_q"), e, c.q_dim())?,
            wk: mat(g, &n("attn_k"), e, c.kv_dim())?,
            wv: mat(g, &n("attn_v"), e, c.kv_dim())?,
            wo: mat(g, &n("attn_output"), c.q_dim(), e)?,
            w_gate: mat(g, &n("ffn_gate"), e, c.n_ff)?,
            w_up: mat(g, &n("ffn_up"), e, c.n_ff)?,
            w_down: mat(g, &n("ffn_down"), c.n_ff, e)?,
        })
    }

    pub fn mats_mut(&mut self) -> [&mut WRef; 7] {
        [
            &mut self.wq,
            &mut self.wk,
            &mut self.wv,
            &mut self.wo,
            &mut self.w_gate,
            &mut self.w_up,
            &mut self.w_down,
        ]
    }
}

/// The view a kernel reads.
pub fn qweight<'a>(g: &'a Gguf, x8: &'a [memmap2::Mmap], r: &WRef) -> QWeight<'a> {
    QWeight {
        ty: r.ty,
        rows: r.rows,
        cols: r.cols,
        data: &g.bytes()[r.offset..r.offset + r.bytes],
        x8: r.x8.map(|i| &x8[i][..]),
    }
}

/// Makes the row-interleaved copy of every weight that has one, recording its index.
pub fn repack_all<'a>(
    g: &Gguf,
    ws: impl Iterator<Item = &'a mut WRef>,
    x8: &mut Vec<memmap2::Mmap>,
) -> Result<()> {
    for w in ws {
        if quant::x8::can_repack(w.ty, w.rows, w.cols) {
            x8.push(repack(g, w)?);
            w.x8 = Some(x8.len() - 1);
        }
    }
    Ok(())
}

/// The row-interleaved copy of a weight, made a few MiB at a time on up to eight threads; each
/// piece's file pages are released once copied, so load never holds both forms of a large tensor.
fn repack(gguf: &Gguf, w: &WRef) -> Result<memmap2::Mmap> {
    const GROUPS: usize = 512;
    let rows = quant::x8::GROUP * GROUPS;
    let len = quant::x8::repacked_bytes(w.ty, w.rows, w.cols);
    // Anonymous memory with transparent huge pages where the kernel allows them: 512× fewer
    // page faults while it fills, and fewer TLB misses while decode streams it.
    let mut out = memmap2::MmapMut::map_anon(len).map_err(|e| Error::io(&gguf.path, e))?;
    #[cfg(target_os = "linux")]
    let _ = out.advise(memmap2::Advice::HugePage);
    let (src_piece, dst_piece) =
        (w.bytes / w.rows * rows, quant::x8::repacked_bytes(w.ty, rows, w.cols));
    let pieces: Vec<(usize, &mut [u8])> = out.chunks_mut(dst_piece).enumerate().collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let per = pieces.len().div_ceil(threads);
    let work = |part: Vec<(usize, &mut [u8])>| {
        for (i, dst) in part {
            let start = w.offset + i * src_piece;
            let src = start..(start + src_piece).min(w.offset + w.bytes);
            quant::x8::repack_into(w.ty, w.cols, &gguf.bytes()[src.clone()], dst);
            gguf.release(src);
        }
    };
    let mut parts: Vec<Vec<(usize, &mut [u8])>> = Vec::new();
    let mut it = pieces.into_iter();
    loop {
        let part: Vec<_> = it.by_ref().take(per.max(1)).collect();
        if part.is_empty() {
            break;
        }
        parts.push(part);
    }
    if parts.len() <= 1 {
        parts.into_iter().for_each(work);
    } else {
        std::thread::scope(|s| {
            for part in parts {
                s.spawn(|| work(part));
            }
        });
    }
    out.make_read_only().map_err(|e| Error::io(&gguf.path, e))
}
