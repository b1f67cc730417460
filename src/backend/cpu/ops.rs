//! The CPU backend's element-wise and attention kernels: RMSNorm (ggml's f64 sum), NEOX rope,
//! GELU-tanh, and causal (sliding) attention over each token's sequence in the cache.

use super::kv::KvCache;
use super::quant::{self, KvElem, KvType};
use crate::backend::Batch;
use crate::config::Gemma3Config;
use crate::pool::{split, Pool};

/// A raw pointer threads may share when each writes a disjoint range.
pub struct SendPtr(pub *mut f32);
// SAFETY: users hand each thread a disjoint range.
unsafe impl Sync for SendPtr {}
impl SendPtr {
    /// The pointer (a method, so closures capture the Sync wrapper rather than the raw field).
    pub fn get(&self) -> *mut f32 {
        self.0
    }
}

/// Runs `f(b)` for every token `b < n`, split over the pool when the batch is large enough to
/// pay for the dispatch (per-token work here is a few microseconds).
pub fn per_token(pool: &Pool, n: usize, f: &(dyn Fn(usize) + Sync)) {
    if n < 8 || pool.threads() == 1 {
        (0..n).for_each(f);
    } else {
        pool.run(&|t, nt| split(n, t, nt, 1).for_each(f));
    }
}

/// The tanh approximation of GELU (ref: ggml GELU_COEF_A, SQRT_2_OVER_PI).
pub fn gelu_tanh(x: f32) -> f32 {
    const A: f32 = 0.044715;
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + A * x * x)).tanh())
}

/// gelu(x) for every f16 bit pattern x (ref: ggml-cpu vec.h GGML_GELU_FP16 table).
pub fn gelu_table() -> Vec<f32> {
    (0..=u16::MAX)
        .map(|bits| {
            let x = half::f16::from_bits(bits).to_f32();
            half::f16::from_f32(gelu_tanh(x)).to_f32()
        })
        .collect()
}

/// gelu(x) as ggml's f16 table gives it (ref: ggml-cpu vec.h ggml_vec_geglu_f32, GGML_GELU_FP16).
#[inline]
pub fn gelu_f16(table: &[f32], x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        table[half::f16::from_f32(x).to_bits() as usize]
    }
}

/// y = x / sqrt(mean(x²) + eps) · w (ref: ggml_compute_forward_rms_norm; the sum in f64 as ggml).
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, y: &mut [f32]) {
    let ss: f64 = x.iter().map(|v| (*v as f64) * (*v as f64)).sum();
    let s = 1.0 / ((ss / x.len() as f64) as f32 + eps).sqrt();
    for ((y, x), w) in y.iter_mut().zip(x).zip(w) {
        *y = x * s * w;
    }
}

pub fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    let ss: f64 = x.iter().map(|v| (*v as f64) * (*v as f64)).sum();
    let s = 1.0 / ((ss / x.len() as f64) as f32 + eps).sqrt();
    x.iter_mut().zip(w).for_each(|(x, w)| *x = *x * s * w);
}

/// NEOX rope: element i pairs with i + d/2 (ref: ggml rope_yarn, mode GGML_ROPE_TYPE_NEOX).
pub fn rope_neox(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = x.len() / 2;
    for i in 0..half {
        let (a, b) = (x[i], x[i + half]);
        x[i] = a * cos[i] - b * sin[i];
        x[i + half] = a * sin[i] + b * cos[i];
    }
}

/// cos and sin of `theta_i = p · scale · base^(-2i/d)` for position `p` (ref: ggml rope:
/// theta_scale = base^(-2/n_dims)), into `cos`/`sin` (`head_dim / 2` each).
pub fn rope_row(
    p: usize,
    base: f32,
    scale: f32,
    head_dim: usize,
    cos: &mut [f32],
    sin: &mut [f32],
) {
    for i in 0..head_dim / 2 {
        let inv = (base as f64).powf(-2.0 * i as f64 / head_dim as f64);
        let t = p as f64 * scale as f64 * inv;
        cos[i] = t.cos() as f32;
        sin[i] = t.sin() as f32;
    }
}

/// Causal attention of the batch's queries over the cache; a query at p sees its sequence's keys
/// p − window < k ≤ p on sliding layers (ref: llama-hparams.cpp is_masked_swa). The query heads
/// that share a KV head are taken up to four at a time, so each key and value row is read once
/// for all of them; every head's arithmetic is the same however they are grouped. `within`: the
/// keys are the cache's batch rows, each sequence lying whole in the batch from position 0.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    pool: &Pool,
    c: &Gemma3Config,
    kv: &KvCache,
    l: usize,
    batch: &Batch,
    q: &[f32],
    att: &mut [f32],
    scores: &mut [f32],
    within: bool,
) {
    let n = batch.len();
    let window = if c.is_global(l) { None } else { c.sliding_window };
    let group = c.n_head / c.n_head_kv;
    let threads = pool.threads();
    // the widest head chunk that divides the group and still gives every thread a task
    let ht = [4, 2, 1]
        .into_iter()
        .find(|&h| group.is_multiple_of(h) && (n * c.n_head / h >= threads || h == 1))
        .unwrap_or(1);
    let a = Attn {
        pool,
        c,
        kv,
        l,
        batch,
        q,
        att: SendPtr(att.as_mut_ptr()),
        scores: SendPtr(scores.as_mut_ptr()),
        window,
        within,
    };
    match kv.ty {
        KvType::F32 => a.heads::<f32>(ht),
        KvType::F16 => a.heads::<half::f16>(ht),
        KvType::Q8_0 => a.heads::<quant::KvQ8>(ht),
    }
}

struct Attn<'a> {
    pool: &'a Pool,
    c: &'a Gemma3Config,
    kv: &'a KvCache,
    l: usize,
    batch: &'a Batch<'a>,
    q: &'a [f32],
    att: SendPtr,
    scores: SendPtr,
    window: Option<usize>,
    within: bool,
}

impl Attn<'_> {
    fn heads<E: KvElem>(&self, ht: usize) {
        match ht {
            4 => self.run::<4, E>(),
            2 => self.run::<2, E>(),
            _ => self.run::<1, E>(),
        }
    }

    fn run<const HT: usize, E: KvElem>(&self) {
        let c = self.c;
        let (hd, qd, kvd) = (c.head_dim, c.q_dim(), c.kv_dim());
        let group = c.n_head / c.n_head_kv;
        let num_ctx = self.kv.num_ctx;
        let (q, batch, window) = (self.q, self.batch, self.window);
        let chunks = c.n_head / HT;
        let tasks = batch.len() * chunks;
        self.pool.run(&|t, nt| {
            // SAFETY: thread t owns scores rows t·4..t·4+HT and the att rows of its tasks.
            let sc = unsafe {
                std::slice::from_raw_parts_mut(self.scores.get().add(t * 4 * num_ctx), HT * num_ctx)
            };
            // Later queries see more keys: dealing tasks round-robin balances causal rows.
            for task in (t..tasks).step_by(nt) {
                let (b, h0) = (task / chunks, task % chunks * HT);
                // within the batch, position p of b's sequence is row b − pos(b) + p
                let (lc, row0) = match self.within {
                    true => (self.kv.within(), b - batch.pos(b)),
                    false => (self.kv.layer(self.l, batch.seq(b)), 0),
                };
                let (cells, (ks, vs)) = (lc.cells, lc.rows::<E>());
                let (start, len) = keys(c.causal, window, batch, b);
                let g = h0 / group;
                let qh: [&[f32]; HT] =
                    std::array::from_fn(|j| &q[b * qd + (h0 + j) * hd..b * qd + (h0 + j + 1) * hd]);
                // a head's values are whole elements (head_dim is a multiple of 32 for q8_0)
                let at = |i: usize| ((row0 + start + i) % cells * kvd + g * hd) / E::PER;
                let n = hd / E::PER;
                let key = |i: usize| &ks[at(i)..at(i) + n];
                let value = |i: usize| &vs[at(i)..at(i) + n];
                // SAFETY: query b's heads h0..h0+HT are this task's alone.
                let out = unsafe {
                    std::slice::from_raw_parts_mut(self.att.get().add(b * qd + h0 * hd), HT * hd)
                };
                attend(qh, key, value, len, sc, num_ctx, out);
            }
        });
    }
}

/// The keys query `b` sees, as (first position, count): causal, those up to its own position
/// (the last `window` of them on sliding layers); bidirectional (EmbeddingGemma), every position
/// of its sequence, which lies whole in this batch, within ±window/2 on sliding layers (ref:
/// llama-hparams.cpp is_masked_swa, LLAMA_SWA_TYPE_SYMMETRIC).
fn keys(causal: bool, window: Option<usize>, batch: &Batch, b: usize) -> (usize, usize) {
    let p = batch.pos(b);
    if causal {
        let start = window.map_or(0, |w| (p + 1).saturating_sub(w));
        return (start, p + 1 - start);
    }
    // a sequence's tokens come in position order: its last one in the batch is its end
    let seq = batch.seq(b);
    let end = (b..batch.len()).rev().find(|&j| batch.seq(j) == seq).map_or(p, |j| batch.pos(j)) + 1;
    let (start, end) = match window {
        Some(w) => (p.saturating_sub(w / 2), end.min(p + w / 2 + 1)),
        None => (0, end),
    };
    (start, end - start)
}

/// One query position's heads `qh` (sharing a KV head) over `len` keys and values: scores two
/// keys at a time, softmax in f32, then the weighted sum of values. The arithmetic of each head is
/// the same however many heads go together (the candle backend's CPU attention calls this too,
/// so that it is bit-identical to this backend's). `sc` holds HT rows of `stride` scores.
pub fn attend<'a, E: KvElem, const HT: usize>(
    qh: [&[f32]; HT],
    key: impl Fn(usize) -> &'a [E],
    value: impl Fn(usize) -> &'a [E],
    len: usize,
    sc: &mut [f32],
    stride: usize,
    out: &mut [f32],
) {
    let mut max = [f32::NEG_INFINITY; HT];
    let mut keep = |i: usize, s: [f32; HT]| {
        for j in 0..HT {
            sc[j * stride + i] = s[j];
            max[j] = max[j].max(s[j]);
        }
    };
    // two keys at a time: twice the independent add chains
    let mut i = 0;
    while i + 2 <= len {
        let [s0, s1] = quant::dot_kv_nm(qh, [key(i), key(i + 1)]);
        keep(i, s0);
        keep(i + 1, s1);
        i += 2;
    }
    if i < len {
        keep(i, quant::dot_kv_nm(qh, [key(i)])[0]);
    }
    for (j, &max) in max.iter().enumerate() {
        let w = &mut sc[j * stride..j * stride + len];
        let mut sum = 0f32;
        for s in w.iter_mut() {
            *s = (*s - max).exp();
            sum += *s;
        }
        let inv = 1.0 / sum;
        w.iter_mut().for_each(|s| *s *= inv);
    }
    let w: [&[f32]; HT] = std::array::from_fn(|j| &sc[j * stride..j * stride + len]);
    quant::weighted_kv_n(w, value, out);
}

/// `out += B (A x)` for the first `n` rows of `x` (n × k) and `out` (n × o), through `t`
/// (n × rank): a LoRA adapter's update to a product (the scale is in A). f32 throughout.
pub fn lora_add(
    pool: &Pool,
    x: &[f32],
    n: usize,
    k: usize,
    m: &crate::backend::lora::LoraMat,
    out: &mut [f32],
    t: &mut [f32],
) {
    let (r, o) = (m.rank, m.b.len() / m.rank);
    let (tp, op) = (SendPtr(t.as_mut_ptr()), SendPtr(out.as_mut_ptr()));
    per_token(pool, n, &|i| {
        // SAFETY: row i of t belongs to this token alone.
        let ti = unsafe { std::slice::from_raw_parts_mut(tp.get().add(i * r), r) };
        let xi = &x[i * k..(i + 1) * k];
        ti.iter_mut().zip(m.a.chunks_exact(k)).for_each(|(t, a)| *t = dot(xi, a));
    });
    per_token(pool, n, &|i| {
        // SAFETY: row i of t is read, row i of out written, by this token alone.
        let ti = unsafe { std::slice::from_raw_parts(tp.get().add(i * r), r) };
        let oi = unsafe { std::slice::from_raw_parts_mut(op.get().add(i * o), o) };
        oi.iter_mut().zip(m.b.chunks_exact(r)).for_each(|(y, b)| *y += dot(ti, b));
    });
}

/// A dot product in eight lanes (so that it vectorizes), then their sum.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_tanh_reference_points() {
        assert_eq!(gelu_tanh(0.0), 0.0);
        assert!((gelu_tanh(1.0) - 0.841_192).abs() < 1e-5);
        assert!((gelu_tanh(-1.0) + 0.158_808).abs() < 1e-5);
    }

    #[test]
    fn rms_norm_unit_weights_gives_unit_rms() {
        let x = [3.0f32, -4.0, 0.0, 5.0];
        let mut y = [0f32; 4];
        rms_norm(&x, &[1.0; 4], 0.0, &mut y);
        let rms = (y.iter().map(|v| v * v).sum::<f32>() / 4.0).sqrt();
        assert!((rms - 1.0).abs() < 1e-6);
    }

    /// NEOX pairs i with i + d/2; a rotation by θ then −θ is the identity.
    #[test]
    fn rope_neox_rotates_halves() {
        let mut x = [1.0f32, 0.0, 0.0, 1.0];
        let (c, s) = ((0.5f32).cos(), (0.5f32).sin());
        rope_neox(&mut x, &[c, 1.0], &[s, 0.0]);
        assert!((x[0] - c).abs() < 1e-6 && (x[2] - s).abs() < 1e-6);
        assert_eq!((x[1], x[3]), (0.0, 1.0));
        rope_neox(&mut x, &[c, 1.0], &[-s, 0.0]);
        assert!((x[0] - 1.0).abs() < 1e-6 && x[2].abs() < 1e-6);
    }

    #[test]
    fn keys_causal_and_both_ways() {
        let (seq, pos) = ([0, 0, 0, 0, 0, 1, 1], [0, 1, 2, 3, 4, 0, 1]);
        let b = Batch::Mixed { seq: &seq, pos: &pos };
        // causal: up to itself; a sliding layer the last `window` (itself included)
        assert_eq!(keys(true, None, &b, 3), (0, 4));
        assert_eq!(keys(true, Some(2), &b, 3), (2, 2));
        // both ways: the whole sequence; sliding, |q − k| ≤ window / 2
        assert_eq!(keys(false, None, &b, 2), (0, 5));
        assert_eq!(keys(false, Some(2), &b, 2), (1, 3));
        assert_eq!(keys(false, Some(2), &b, 0), (0, 2));
        assert_eq!(keys(false, Some(4), &b, 4), (2, 3));
        assert_eq!(keys(false, None, &b, 5), (0, 2), "another sequence's keys are not seen");
    }
}
