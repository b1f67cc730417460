//! Attention within the batch, for forwards whose sequences all lie whole in it from position 0
//! and keep nothing (an embedding request's inputs): the batch's own K and V, one masked
//! product for every sequence at once, where the cache path launches per sequence.
//!
//! Same arithmetic as the cache path (ref: `kernels::DecodeAttention`): query row at position p
//! of a sequence sees that sequence's keys at positions start..=p, start = p + 1 − window on
//! sliding layers; queries come scaled from the QK-norm.

use crate::error::Result;
use candle_core::{Device, Tensor, D};

/// The additive masks of one batch (n × n: 0 where a query row may see a key row, −∞ else),
/// for global and sliding layers.
pub struct Masks {
    pub global: Tensor,
    pub sliding: Tensor,
}

impl Masks {
    /// The masks of a batch whose token b is sequence `seq(b)` at position `pos(b)`.
    pub fn new(
        n: usize,
        seq: impl Fn(usize) -> usize,
        pos: impl Fn(usize) -> usize,
        window: Option<usize>,
        dev: &Device,
    ) -> Result<Masks> {
        let mut g = vec![f32::NEG_INFINITY; n * n];
        let mut s = g.clone();
        for q in 0..n {
            let p = pos(q);
            let start = window.map_or(0, |w| (p + 1).saturating_sub(w));
            for k in 0..n {
                if seq(k) == seq(q) && pos(k) <= p {
                    g[q * n + k] = 0.0;
                    if pos(k) >= start {
                        s[q * n + k] = 0.0;
                    }
                }
            }
        }
        Ok(Masks {
            global: Tensor::from_vec(g, (n, n), dev)?,
            sliding: Tensor::from_vec(s, (n, n), dev)?,
        })
    }
}

/// `q` (n × n_head·hd, scaled), `k`, `v` (n × n_kv·hd) → n × n_head·hd: each head over its
/// group's keys, masked.
pub fn attend(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, n_head: usize) -> Result<Tensor> {
    let (n, kvd) = k.dims2()?;
    let hd = q.dim(1)? / n_head;
    let n_kv = kvd / hd;
    let group = n_head / n_kv;
    // heads h = g·group + j share K/V group g: (n_kv, group·n, hd) against (n_kv, n, hd)
    let q =
        q.reshape((n, n_kv, group, hd))?.permute((1, 2, 0, 3))?.reshape((n_kv, group * n, hd))?;
    let k = k.reshape((n, n_kv, hd))?.transpose(0, 1)?.contiguous()?;
    let v = v.reshape((n, n_kv, hd))?.transpose(0, 1)?.contiguous()?;
    let scores = q.contiguous()?.matmul(&k.t()?)?;
    let scores = scores.reshape((n_kv, group, n, n))?.broadcast_add(mask)?;
    let probs = softmax(&scores)?.reshape((n_kv, group * n, n))?;
    let out = probs.matmul(&v)?.reshape((n_kv, group, n, hd))?;
    Ok(out.permute((2, 0, 1, 3))?.reshape((n, n_head * hd))?)
}

/// Softmax over the last dimension (max subtracted first, as the cache path's online softmax).
fn softmax(x: &Tensor) -> Result<Tensor> {
    let m = x.max_keepdim(D::Minus1)?;
    let e = x.broadcast_sub(&m)?.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::candle::kernels::DecodeAttention;

    /// Two sequences in one batch give what the cache path's reference gives each alone.
    #[test]
    fn two_sequences_attend_as_the_cache_path_does() {
        let (n_head, n_kv, hd) = (4, 2, 32);
        let lens = [3usize, 5];
        let n: usize = lens.iter().sum();
        let mut seed = 7u32;
        let mut rand = |len: usize| -> Vec<f32> {
            (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                    (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
                })
                .collect()
        };
        let (q, k, v) = (rand(n * n_head * hd), rand(n * n_kv * hd), rand(n * n_kv * hd));
        let seq = |b: usize| usize::from(b >= lens[0]);
        let pos = |b: usize| if b >= lens[0] { b - lens[0] } else { b };
        for window in [None, Some(2)] {
            let dev = Device::Cpu;
            let m = Masks::new(n, seq, pos, window, &dev).unwrap();
            let t = |x: &[f32], w: usize| Tensor::from_slice(x, (n, w), &dev).unwrap();
            let mask = if window.is_some() { &m.sliding } else { &m.global };
            let got =
                attend(&t(&q, n_head * hd), &t(&k, n_kv * hd), &t(&v, n_kv * hd), mask, n_head)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
            let (qd, kvd) = (n_head * hd, n_kv * hd);
            let mut b0 = 0;
            for len in lens {
                // the sequence's K rows then V rows, as its cache holds them (cells = len)
                let mut kv = k[b0 * kvd..(b0 + len) * kvd].to_vec();
                kv.extend_from_slice(&v[b0 * kvd..(b0 + len) * kvd]);
                let op = DecodeAttention { n_head, n_kv, head_dim: hd, cells: len, window };
                let mut want = vec![0f32; len * qd];
                op.reference(&q[b0 * qd..(b0 + len) * qd], &kv, 0, &mut want);
                let part = &got[b0 * qd..(b0 + len) * qd];
                let d = want.iter().zip(part).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(d < 1e-5, "window {window:?}, sequence of {len}: {d}");
                b0 += len;
            }
        }
    }
}
