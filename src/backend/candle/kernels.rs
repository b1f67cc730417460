//! chimera's fused ops for the candle backend, as candle custom ops: `cpu_fwd` is the plain-Rust
//! reference (what candle's CPU device runs, and what each CUDA kernel is tested against);
//! `cuda_fwd` launches the PTX that build.rs compiles from `kernels/*.cu` under the `cuda`
//! feature (see `cuda.rs`).
//!
//! - [`RmsNorm`]: y = x / rms(x) · w per row (the sum of squares in f64, as ggml's CPU).
//! - [`AddRmsNorm`]: x += RMSNorm(o) · w, in place (a post-norm and the residual, fused).
//! - [`QkNormRope`]: per head RMSNorm, NEOX rope from a per-token cos|sin table, a scale.
//! - [`GeluMul`]: gelu(gate) · up, GELU-tanh rounded through f16 as ggml's table.
//! - [`DecodeAttention`]: one token's heads over its sequence's cache, its position read from a
//!   device buffer (so a CUDA graph can replay it).
//! - [`StoreKv`]: one token's K or V row into its cache cell, the position read from a device
//!   buffer (the cell is position mod cells).
//! - [`HostWrite`]: host values into an existing tensor in place (a fixed buffer a CUDA graph
//!   reads: positions, rope rows).
//!
//! A layer's cache is one tensor of 2 × cells rows (K rows, then V rows), so that ops take it as
//! one operand (candle's public in-place ops take at most two sources).
//! - [`SampleFront`]: the sampler chain's first stages on the device, penalties then top-k,
//!   so only k candidates reach the host (temperature stays there: in llama.cpp's order top-p
//!   and min-p see temperature-1 probabilities, and scaling first would change them).

use crate::backend::cpu::ops::gelu_tanh;
use candle_core::{
    bail, CpuStorage, CustomOp2, CustomOp3, InplaceOp1, InplaceOp3, Layout, Result, Shape,
};

/// A contiguous f32 view of a storage.
fn f32s<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("chimera kernels need contiguous inputs")
    };
    match s {
        CpuStorage::F32(v) => Ok(&v[a..b]),
        _ => bail!("chimera kernels take f32"),
    }
}

fn f32s_mut<'a>(s: &'a mut CpuStorage, l: &Layout) -> Result<&'a mut [f32]> {
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("chimera kernels need contiguous inputs")
    };
    match s {
        CpuStorage::F32(v) => Ok(&mut v[a..b]),
        _ => bail!("chimera kernels take f32"),
    }
}

fn i32s<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [i32]> {
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("chimera kernels need contiguous inputs")
    };
    match s {
        CpuStorage::I32(v) => Ok(&v[a..b]),
        _ => bail!("chimera kernels take i32 metadata"),
    }
}

/// 1 / rms(x) with the sum of squares in f64 (ref: ggml_compute_forward_rms_norm).
pub fn inv_rms(x: &[f32], eps: f32) -> f32 {
    let ss: f64 = x.iter().map(|v| (*v as f64) * (*v as f64)).sum();
    1.0 / ((ss / x.len() as f64) as f32 + eps).sqrt()
}

/// y = x / rms(x) · w for every row of x (rows × d), w (d).
pub struct RmsNorm {
    pub eps: f32,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "chimera-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (f32s(s1, l1)?, f32s(s2, l2)?);
        let d = w.len();
        let mut y = vec![0f32; x.len()];
        for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
            let s = inv_rms(xr, self.eps);
            for ((y, x), w) in yr.iter_mut().zip(xr).zip(w) {
                *y = x * s * w;
            }
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::rms_norm(self.eps, s1, l1, s2, l2)
    }
}

/// x += RMSNorm(o) · w, in place on x; srcs [o, w].
pub struct AddRmsNorm {
    pub eps: f32,
}

impl InplaceOp3 for AddRmsNorm {
    fn name(&self) -> &'static str {
        "chimera-add-rms-norm"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dl: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        let (o, w) = (f32s(s2, l2)?, f32s(s3, l3)?);
        let x = f32s_mut(dst, dl)?;
        let d = w.len();
        for (xr, or) in x.chunks_exact_mut(d).zip(o.chunks_exact(d)) {
            let s = inv_rms(or, self.eps);
            for ((x, o), w) in xr.iter_mut().zip(or).zip(w) {
                *x += o * s * w;
            }
        }
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        dst: &mut candle_core::CudaStorage,
        dl: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<()> {
        super::cuda::add_rms_norm(self.eps, dst, dl, [(s2, l2), (s3, l3)])
    }
}

/// Per head of x (rows × heads·hd): RMSNorm with w (hd), NEOX rope with the row's cos|sin
/// (rows × hd: cos in the first half, sin in the second), then × scale.
pub struct QkNormRope {
    pub heads: usize,
    pub head_dim: usize,
    pub eps: f32,
    pub scale: f32,
}

impl CustomOp3 for QkNormRope {
    fn name(&self) -> &'static str {
        "chimera-qk-norm-rope"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, cs) = (f32s(s1, l1)?, f32s(s2, l2)?, f32s(s3, l3)?);
        let (hd, half) = (self.head_dim, self.head_dim / 2);
        let width = self.heads * hd;
        let mut y = x.to_vec();
        for (r, row) in y.chunks_exact_mut(width).enumerate() {
            let (cos, sin) = (&cs[r * hd..r * hd + half], &cs[r * hd + half..(r + 1) * hd]);
            for h in row.chunks_exact_mut(hd) {
                let s = inv_rms(h, self.eps);
                h.iter_mut().zip(w).for_each(|(v, w)| *v = *v * s * w);
                for i in 0..half {
                    let (a, b) = (h[i], h[i + half]);
                    h[i] = a * cos[i] - b * sin[i];
                    h[i + half] = a * sin[i] + b * cos[i];
                }
                if self.scale != 1.0 {
                    h.iter_mut().for_each(|v| *v *= self.scale);
                }
            }
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::qk_norm_rope(self, [(s1, l1), (s2, l2), (s3, l3)])
    }
}

/// gelu(x) as ggml's f16 table gives it: f16(gelu(f16(x))), x for x ≥ 10, 0 for x ≤ −10.
pub fn gelu_f16(x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        let xh = half::f16::from_f32(x).to_f32();
        half::f16::from_f32(gelu_tanh(xh)).to_f32()
    }
}

/// gelu(gate) · up.
pub struct GeluMul;

impl CustomOp2 for GeluMul {
    fn name(&self) -> &'static str {
        "chimera-gelu-mul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, u) = (f32s(s1, l1)?, f32s(s2, l2)?);
        let y = g.iter().zip(u).map(|(g, u)| gelu_f16(*g) * u).collect();
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::gelu_mul(s1, l1, s2, l2)
    }
}

/// Attention of `n` consecutive tokens of one sequence (n × n_head·hd queries) over its cache
/// (2·cells × n_kv·hd: K rows then V rows); `meta` = [position of the first token] (i32, on
/// the device, so that a CUDA graph can replay it). Token t at p = p0 + t sees positions
/// start..=p, start = p + 1 − window on sliding layers, each at cell pos % cells. The CPU
/// reference is the cpu backend's own attention arithmetic (`cpu::ops::attend`).
pub struct DecodeAttention {
    pub n_head: usize,
    pub n_kv: usize,
    pub head_dim: usize,
    pub cells: usize,
    /// The sliding window; `None` on global layers.
    pub window: Option<usize>,
}

impl DecodeAttention {
    /// The reference over host slices: queries `q` of tokens at p0.., into `out`.
    pub fn reference(&self, q: &[f32], kv: &[f32], p0: usize, out: &mut [f32]) {
        let (hd, kvd, qd) = (self.head_dim, self.n_kv * self.head_dim, self.n_head * self.head_dim);
        let (k, v) = kv.split_at(self.cells * kvd);
        let group = self.n_head / self.n_kv;
        let n = q.len() / qd;
        let mut sc = vec![0f32; p0 + n];
        for t in 0..n {
            let p = p0 + t;
            let start = self.window.map_or(0, |w| (p + 1).saturating_sub(w));
            let len = p + 1 - start;
            for h in 0..self.n_head {
                let g = h / group;
                let qh = [&q[t * qd + h * hd..t * qd + (h + 1) * hd]];
                let at = |i: usize| (start + i) % self.cells * kvd + g * hd;
                let o = &mut out[t * qd + h * hd..t * qd + (h + 1) * hd];
                crate::backend::cpu::ops::attend(
                    qh,
                    |i| &k[at(i)..at(i) + hd],
                    |i| &v[at(i)..at(i) + hd],
                    len,
                    &mut sc,
                    0,
                    o,
                );
            }
        }
    }
}

impl CustomOp3 for DecodeAttention {
    fn name(&self) -> &'static str {
        "chimera-decode-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (q, kv, p0) = (f32s(s1, l1)?, f32s(s2, l2)?, i32s(s3, l3)?[0] as usize);
        let mut out = vec![0f32; q.len()];
        self.reference(q, kv, p0, &mut out);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::decode_attention(self, [(s1, l1), (s2, l2), (s3, l3)])
    }
}

/// Writes one row (1 × width) into the cache (rows × width) at the row `meta` = [row] names.
pub struct StoreKv {
    /// Cells of the cache (its ring length on sliding layers).
    pub cells: usize,
    /// The V half of the cache (rows cells..2·cells), else the K half.
    pub v: bool,
}

impl StoreKv {
    /// The cache row a token at `pos` goes to.
    pub fn row(&self, pos: usize) -> usize {
        pos % self.cells + if self.v { self.cells } else { 0 }
    }
}

impl InplaceOp3 for StoreKv {
    fn name(&self) -> &'static str {
        "chimera-store-kv"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dl: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        let row = f32s(s2, l2)?;
        let at = self.row(i32s(s3, l3)?[0] as usize);
        let cache = f32s_mut(dst, dl)?;
        let w = row.len();
        cache[at * w..(at + 1) * w].copy_from_slice(row);
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        dst: &mut candle_core::CudaStorage,
        dl: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<()> {
        super::cuda::store_kv(self, dst, dl, [(s2, l2), (s3, l3)])
    }
}

/// Host values written into the start of a contiguous tensor of the same dtype, in place.
pub enum HostWrite<'a> {
    F32(&'a [f32]),
    I32(&'a [i32]),
}

impl InplaceOp1 for HostWrite<'_> {
    fn name(&self) -> &'static str {
        "chimera-host-write"
    }

    fn cpu_fwd(&self, dst: &mut CpuStorage, l: &Layout) -> Result<()> {
        let Some((a, b)) = l.contiguous_offsets() else {
            bail!("chimera kernels need contiguous inputs")
        };
        match (self, dst) {
            (HostWrite::F32(src), CpuStorage::F32(d)) if src.len() <= b - a => {
                d[a..a + src.len()].copy_from_slice(src)
            }
            (HostWrite::I32(src), CpuStorage::I32(d)) if src.len() <= b - a => {
                d[a..a + src.len()].copy_from_slice(src)
            }
            _ => bail!("chimera-host-write: dtype or length mismatch"),
        }
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, dst: &mut candle_core::CudaStorage, l: &Layout) -> Result<()> {
        super::cuda::host_write(self, dst, l)
    }
}

/// The sampler's front end on the device: over one row of logits (n_vocab) and the penalty
/// window as (id, count) pairs (i32, each distinct id once), llama.cpp's penalties (repeat:
/// divide positive, multiply non-positive, once per distinct id; frequency × count; presence),
/// then the k highest: (k × 2) f32 of [id, logit], logit descending, ties by lower id — what
/// `sampler::Sampler` computes before its top-p stage.
pub struct SampleFront {
    pub k: usize,
    pub repeat_penalty: f32,
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
}

impl SampleFront {
    /// The reference on a host row.
    pub fn reference(&self, logits: &[f32], pairs: &[i32]) -> Vec<(u32, f32)> {
        let mut l = logits.to_vec();
        for p in pairs.chunks_exact(2) {
            let (id, count) = (p[0], p[1]);
            let Some(x) = usize::try_from(id).ok().and_then(|i| l.get_mut(i)) else { continue };
            *x = if *x <= 0.0 { *x * self.repeat_penalty } else { *x / self.repeat_penalty };
            *x -= count as f32 * self.frequency_penalty + self.presence_penalty;
        }
        let mut c: Vec<(u32, f32)> = l.iter().enumerate().map(|(i, &x)| (i as u32, x)).collect();
        let k = self.k.min(c.len()).max(1);
        let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        c.select_nth_unstable_by(k - 1, order);
        c.truncate(k);
        c.sort_unstable_by(order);
        c
    }
}

impl CustomOp2 for SampleFront {
    fn name(&self) -> &'static str {
        "chimera-sample-front"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let c = self.reference(f32s(s1, l1)?, i32s(s2, l2)?);
        let flat = c.iter().flat_map(|(i, x)| [*i as f32, *x]).collect();
        Ok((CpuStorage::F32(flat), Shape::from((c.len(), 2))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::sample_front(self, s1, l1, s2, l2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn rand(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                (s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn norms_match_the_cpu_backend() {
        let x = rand(3 * 8, 1);
        let w = rand(8, 2);
        let t = Tensor::from_slice(&x, (3, 8), &Device::Cpu).unwrap();
        let wt = Tensor::from_slice(&w, 8, &Device::Cpu).unwrap();
        let y: Vec<f32> = t
            .apply_op2_no_bwd(&wt, &RmsNorm { eps: 1e-6 })
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for r in 0..3 {
            let mut want = [0f32; 8];
            crate::backend::cpu::ops::rms_norm(&x[r * 8..(r + 1) * 8], &w, 1e-6, &mut want);
            assert_eq!(&y[r * 8..(r + 1) * 8], &want, "bit-identical to the cpu backend");
        }
        let o = rand(3 * 8, 3);
        let ot = Tensor::from_slice(&o, (3, 8), &Device::Cpu).unwrap();
        t.inplace_op3(&ot, &wt, &AddRmsNorm { eps: 1e-6 }).unwrap();
        let got: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        let mut o0 = o[..8].to_vec();
        crate::backend::cpu::ops::rms_norm_inplace(&mut o0, &w, 1e-6);
        for i in 0..8 {
            assert_eq!(got[i], x[i] + o0[i]);
        }
    }

    #[test]
    fn qk_norm_rope_and_gelu_match_the_cpu_backend() {
        let (heads, hd) = (2, 8);
        let x = rand(heads * hd, 4);
        let w = rand(hd, 5);
        let mut cs = vec![0f32; hd];
        let (c, s) = cs.split_at_mut(hd / 2);
        crate::backend::cpu::ops::rope_row(37, 10_000.0, 1.0, hd, c, s);
        let dev = Device::Cpu;
        let op = QkNormRope { heads, head_dim: hd, eps: 1e-6, scale: 0.25 };
        let y: Vec<f32> = Tensor::from_slice(&x, (1, heads * hd), &dev)
            .unwrap()
            .apply_op3_no_bwd(
                &Tensor::from_slice(&w, hd, &dev).unwrap(),
                &Tensor::from_slice(&cs, (1, hd), &dev).unwrap(),
                &op,
            )
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let mut want = x.clone();
        for h in want.chunks_exact_mut(hd) {
            crate::backend::cpu::ops::rms_norm_inplace(h, &w, 1e-6);
            crate::backend::cpu::ops::rope_neox(h, &cs[..hd / 2], &cs[hd / 2..]);
            h.iter_mut().for_each(|v| *v *= 0.25);
        }
        assert_eq!(y, want);
        let table = crate::backend::cpu::ops::gelu_table();
        for x in [-12.0f32, -3.3, -0.01, 0.0, 0.7, 2.9, 9.99, 11.0] {
            assert_eq!(gelu_f16(x), crate::backend::cpu::ops::gelu_f16(&table, x), "{x}");
        }
    }

    #[test]
    fn decode_attention_sees_the_window_of_its_ring() {
        // 2 heads sharing 1 KV head, hd 2, a ring of 4 cells, a window of 3, position 5
        let op = DecodeAttention { n_head: 2, n_kv: 1, head_dim: 2, cells: 4, window: Some(3) };
        let q = [1.0f32, 0.0, 0.0, 1.0];
        // cell c holds position c + 4 for c < 2 (positions 4, 5), else c (positions 2, 3);
        // K rows, then V rows
        let kv =
            [0.4f32, 0.1, 0.2, 0.3, 9.0, 9.0, 0.5, 0.6, 1.0, 2.0, 3.0, 4.0, 9.0, 9.0, 5.0, 6.0];
        let mut out = [0f32; 4];
        op.reference(&q, &kv, 5, &mut out);
        // positions 3, 4, 5 → cells 3, 0, 1; cell 2 (position 2, outside the window) unseen
        let s0 = [0.5f32, 0.4, 0.2];
        let e: Vec<f32> = s0.iter().map(|s| (s - 0.5).exp()).collect();
        let z: f32 = e.iter().sum();
        let want0 = (e[0] * 5.0 + e[1] * 1.0 + e[2] * 3.0) / z;
        assert!((out[0] - want0).abs() < 1e-6, "{out:?}");
        assert!(out.iter().all(|x| *x < 9.0), "the out-of-window cell is never read");
    }

    #[test]
    fn sample_front_penalizes_and_keeps_the_top_k() {
        let op = SampleFront {
            k: 3,
            repeat_penalty: 2.0,
            frequency_penalty: 0.1,
            presence_penalty: 0.0,
        };
        let logits = [1.0f32, 4.0, -1.0, 3.0, 2.0];
        let c = op.reference(&logits, &[1, 2, 2, 1]);
        // id 1: 4 / 2 − 2·0.1 = 1.8; id 2: −1 · 2 − 0.1 = −2.1
        assert_eq!(c, vec![(3, 3.0), (4, 2.0), (1, 1.8)]);
    }

    #[test]
    fn sample_front_continues_the_host_chain() {
        use crate::sampler::{Sampler, SamplerOptions};
        let nv = 262_144;
        let logits: Vec<f32> = rand(nv, 9).iter().map(|x| x * 8.0).collect();
        let lt = Tensor::from_slice(&logits, nv, &Device::Cpu).unwrap();
        for (k, o) in [
            (40, SamplerOptions { seed: 3, ..Default::default() }),
            (
                64,
                SamplerOptions {
                    seed: 5,
                    top_k: 64,
                    temperature: 1.5,
                    frequency_penalty: 0.3,
                    presence_penalty: 0.2,
                    ..Default::default()
                },
            ),
            (1, SamplerOptions { temperature: 0.0, repeat_penalty: 2.0, ..Default::default() }),
        ] {
            let (mut host, mut dev) = (
                Sampler::new(o.clone(), nv, 4096).unwrap(),
                Sampler::new(o.clone(), nv, 4096).unwrap(),
            );
            assert_eq!(dev.front_k(64), Some(k));
            for step in 0..30u32 {
                let a = host.sample(&logits);
                let op = SampleFront {
                    k,
                    repeat_penalty: o.repeat_penalty,
                    frequency_penalty: o.frequency_penalty,
                    presence_penalty: o.presence_penalty,
                };
                let pairs = dev.penalty_pairs().to_vec();
                let pt = Tensor::from_slice(&pairs, pairs.len(), &Device::Cpu).unwrap();
                let c: Vec<f32> = lt
                    .apply_op2_no_bwd(&pt, &op)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                let front: Vec<(u32, f32)> =
                    c.chunks_exact(2).map(|p| (p[0] as u32, p[1])).collect();
                let b = dev.sample_front(&front);
                assert_eq!(a, b, "k {k}, step {step}");
                host.accept(a);
                dev.accept(b);
            }
        }
    }
}
