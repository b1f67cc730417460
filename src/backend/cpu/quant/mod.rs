//! Quantized weights on the CPU: dequantization, activation quantization and matrix products.
//!
//! Block formats and their reference arithmetic come from candle's `k_quants` (bit-identical to
//! ggml's). chimera adds what candle lacks for gemma3's Q4_K_M mix: an AVX2 Q5_0·Q8_0 dot product
//! (candle's is scalar, and most of this model's non-embedding weights are Q5_0), batched products
//! that keep a weight row in L1 across every token of a prompt, and one pool dispatch for several
//! matrices that read the same input (Q/K/V, gate/up).

use crate::gguf::TensorType;
use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8_0, GgmlType,
};
use half::{bf16, f16};

/// Expands `$body` with `$T` bound to the candle block type of `$ty`.
macro_rules! with_block {
    ($ty:expr, $T:ident => $body:expr) => {
        match $ty {
            TensorType::F32 => {
                type $T = f32;
                $body
            }
            TensorType::F16 => {
                type $T = f16;
                $body
            }
            TensorType::BF16 => {
                type $T = bf16;
                $body
            }
            TensorType::Q4_0 => {
                type $T = BlockQ4_0;
                $body
            }
            TensorType::Q4_1 => {
                type $T = BlockQ4_1;
                $body
            }
            TensorType::Q5_0 => {
                type $T = BlockQ5_0;
                $body
            }
            TensorType::Q5_1 => {
                type $T = BlockQ5_1;
                $body
            }
            TensorType::Q8_0 => {
                type $T = BlockQ8_0;
                $body
            }
            TensorType::Q2K => {
                type $T = BlockQ2K;
                $body
            }
            TensorType::Q3K => {
                type $T = BlockQ3K;
                $body
            }
            TensorType::Q4K => {
                type $T = BlockQ4K;
                $body
            }
            TensorType::Q5K => {
                type $T = BlockQ5K;
                $body
            }
            TensorType::Q6K => {
                type $T = BlockQ6K;
                $body
            }
        }
    };
}

/// Views raw bytes as blocks. The GGUF reader guarantees whole blocks; the alignment holds because
/// tensor data is 32-byte aligned in the file and the map is page aligned.
fn blocks<T>(bytes: &[u8]) -> &[T] {
    let n = bytes.len() / std::mem::size_of::<T>();
    assert!(
        (bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>()),
        "invariant: aligned tensor data"
    );
    // SAFETY: candle's block types are repr(C) plain data valid for any bit pattern, the length is
    // in whole blocks and the alignment was asserted above.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const T, n) }
}

fn blocks_mut<T>(words: &mut [u64], n: usize) -> &mut [T] {
    assert!(n * std::mem::size_of::<T>() <= words.len() * 8, "invariant: scratch sized at load");
    // SAFETY: u64 storage is 8-byte aligned (enough for every block type), the length was checked
    // above, and every block is written by `from_float` before it is read.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr() as *mut T, n) }
}

/// Dequantizes `out.len()` elements from the start of `bytes` (a whole number of blocks).
pub fn dequantize(ty: TensorType, bytes: &[u8], out: &mut [f32]) {
    with_block!(ty, T => {
        let nb = out.len() / T::BLCK_SIZE;
        T::to_float(&blocks::<T>(bytes)[..nb], out)
    })
}

/// Quantizes f32 values into `ty`'s blocks (the reference quantizer, as llama-quantize's).
pub fn quantize(ty: TensorType, xs: &[f32]) -> Vec<u8> {
    with_block!(ty, T => {
        let nb = xs.len() / T::BLCK_SIZE;
        let mut out = vec![0u8; nb * std::mem::size_of::<T>()];
        // SAFETY: `out` holds exactly nb blocks; block types are plain data. Vec<u8> is 1-aligned,
        // so the blocks are built in an aligned scratch first and copied.
        let mut scratch = vec![0u64; (out.len()).div_ceil(8)];
        let ys = blocks_mut::<T>(&mut scratch, nb);
        T::from_float(xs, ys);
        let src = unsafe { std::slice::from_raw_parts(ys.as_ptr() as *const u8, out.len()) };
        out.copy_from_slice(src);
        out
    })
}

/// The activation format a weight type's dot product consumes, as a small key.
fn act_kind(ty: TensorType) -> usize {
    with_block!(ty, T => <T as GgmlType>::VecDotType::DTYPE as usize)
}

/// Bytes of activation scratch for one row of `k` inputs against a weight of type `ty`.
fn act_row_bytes(ty: TensorType, k: usize) -> usize {
    with_block!(ty, T => k / T::BLCK_SIZE * std::mem::size_of::<<T as GgmlType>::VecDotType>())
}

/// A 2-D weight used in place from the model file: `rows` outputs of `cols` inputs each.
#[derive(Debug, Clone, Copy)]
pub struct QWeight<'a> {
    pub ty: TensorType,
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [u8],
    /// The same weights row-interleaved ([`x8::repack`]), which products then use.
    pub x8: Option<&'a [u8]>,
}

impl QWeight<'_> {
    fn row_bytes(&self) -> usize {
        let (be, bb) = self.ty.block();
        self.cols / be * bb
    }
    /// Dequantizes row `r` into `out` (length `cols`).
    pub fn row(&self, r: usize, out: &mut [f32]) {
        let rb = self.row_bytes();
        dequantize(self.ty, &self.data[r * rb..(r + 1) * rb], out)
    }
}

/// Reusable buffers for products: quantized activations, one slot per activation kind.
pub struct MatmulScratch {
    /// One buffer per activation kind in use at once (at most 3: Q/K/V may mix Q8_0 and Q8_K).
    acts: Vec<(usize, Vec<u64>)>,
    /// Per slot, the side data of Q8_0 activations (see [`q8_0_side`]).
    side: Vec<Vec<u64>>,
}

impl MatmulScratch {
    /// Sizes scratch for `max_rows` activation rows of at most `max_k` inputs.
    pub fn new(max_rows: usize, max_k: usize) -> Self {
        // f32 activations (for F32 weights) are the widest form: 4 bytes per element.
        let words = (max_rows * max_k * 4).div_ceil(8) + 64;
        let side_words = (max_rows * max_k.div_ceil(32) * SIDE_BYTES).div_ceil(8) + 8;
        MatmulScratch {
            acts: (0..3).map(|_| (usize::MAX, vec![0u64; words])).collect(),
            side: (0..3).map(|_| vec![0u64; side_words]).collect(),
        }
    }
}

/// The instruction set our quantized kernels use; results are bit-identical across them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simd {
    /// candle's kernels only.
    Scalar,
    /// AVX2 + FMA (x86-64-v3).
    Avx2,
    /// AVX2 with AVX512-VNNI's `vpdpbusd` and AVX512-BW's byte masks, on 256-bit lanes.
    Vnni,
}

/// Detected once; `CHIMERA_SIMD=avx2` or `scalar` caps it (for A/B runs and tests).
pub fn simd() -> Simd {
    use std::sync::OnceLock;
    static LEVEL: OnceLock<Simd> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = std::env::var("CHIMERA_SIMD").unwrap_or_default();
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            let vnni = is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vnni")
                && is_x86_feature_detected!("avx512vl");
            match cap.as_str() {
                "scalar" => Simd::Scalar,
                _ if !avx2 => Simd::Scalar,
                "avx2" => Simd::Avx2,
                _ if vnni => Simd::Vnni,
                _ => Simd::Avx2,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = cap;
            Simd::Scalar
        }
    })
}

#[cfg(target_arch = "x86_64")]
mod avx2;
mod dense;
#[cfg(target_arch = "x86_64")]
mod kquants;
mod matmul;
pub mod x8;
pub mod x8k;

pub use dense::*;
pub use matmul::*;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pool::Pool;

    /// `bytes` copied into 8-aligned storage, as tensor data is in the file map.
    fn aligned(bytes: &[u8]) -> Vec<u64> {
        let mut v = vec![0u64; bytes.len().div_ceil(8)];
        // SAFETY: the u64 storage holds at least bytes.len() bytes.
        unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, bytes.len()) }
            .copy_from_slice(bytes);
        v
    }

    /// The first `len` bytes of aligned storage.
    fn view(v: &[u64], len: usize) -> &[u8] {
        assert!(len <= v.len() * 8);
        // SAFETY: checked above; u8 has no alignment needs.
        unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, len) }
    }

    /// Deterministic values in [−1, 1) (an LCG), shared by the quant tests.
    pub(super) fn data(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                ((s >> 8) as f32 / (1u32 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Every type's batched product equals the dequantized reference within quantization noise.
    #[test]
    fn matmul_matches_dequantized_reference() {
        let (rows, k, n) = (37, 512, 6);
        let pool = Pool::new(2);
        let mut scratch = MatmulScratch::new(n, k);
        let x = data(n * k, 7);
        for ty in [
            TensorType::F32,
            TensorType::F16,
            TensorType::BF16,
            TensorType::Q4_0,
            TensorType::Q4_1,
            TensorType::Q5_0,
            TensorType::Q5_1,
            TensorType::Q8_0,
            TensorType::Q2K,
            TensorType::Q3K,
            TensorType::Q4K,
            TensorType::Q5K,
            TensorType::Q6K,
        ] {
            let wf = data(rows * k, 3);
            let bytes = quantize(ty, &wf);
            // keep the bytes 8-aligned like file data
            let store = aligned(&bytes);
            let ab = view(&store, bytes.len());
            let w = QWeight { ty, rows, cols: k, data: ab, x8: None };
            let mut out = vec![0f32; n * rows];
            matmul(&pool, &mut scratch, &x, n, w, &mut out);
            // the row-interleaved form, on whole groups of rows, within the same bound
            let rows8 = rows / x8::GROUP * x8::GROUP;
            if x8::can_repack(ty, rows8, k) {
                let packed = x8::repack(ty, rows8, k, &ab[..rows8 * w.row_bytes()]);
                let w8 = QWeight { rows: rows8, x8: Some(&packed), ..w };
                let mut out8 = vec![0f32; n * rows8];
                matmul(&pool, &mut scratch, &x, n, w8, &mut out8);
                for b in 0..n {
                    for r in 0..rows8 {
                        let (a, c) = (out[b * rows + r], out8[b * rows8 + r]);
                        assert!(
                            (a - c).abs() < 1e-3 * a.abs().max(1.0),
                            "{ty:?} x8 {r}: {c} vs {a}"
                        );
                    }
                }
            }
            let mut row = vec![0f32; k];
            for r in 0..rows {
                w.row(r, &mut row);
                for b in 0..n {
                    let want = dot_f32(&row, &x[b * k..(b + 1) * k]);
                    let got = out[b * rows + r];
                    // activation quantization (8-bit) adds ~1% of the row norm at most
                    let tol = 0.02 * (k as f32).sqrt() * 0.6;
                    assert!((want - got).abs() < tol, "{ty:?} row {r} batch {b}: {got} vs {want}");
                }
            }
        }
    }

    /// f16 and q8_0 cache rows: the kernels widen each value exactly as the scalar reads do and
    /// then sum as for f32 rows, so scores and value sums equal the f32 kernels' on the widened
    /// rows bit for bit; q8_0 quantizes within half a step of each block's scale.
    #[test]
    fn kv_rows_of_every_type_sum_as_their_widened_f32() {
        fn check<E: KvElem>(rows: &[E], d: usize, len: usize) {
            let wide: Vec<f32> =
                (0..len * d).map(|i| E::get(&rows[i / d * d / E::PER..], i % d)).collect();
            let per = d / E::PER;
            let a = data(4 * d, 1);
            let qa: [&[f32]; 4] = std::array::from_fn(|j| &a[j * d..(j + 1) * d]);
            let got = dot_kv_nm(qa, [&rows[..per], &rows[per..2 * per]]);
            let want = dot_f32_nm(qa, [&wide[..d], &wide[d..2 * d]]);
            assert_eq!(format!("{got:?}"), format!("{want:?}"));
            let w = data(2 * len, 4);
            let (mut o1, mut o2) = (vec![0f32; 2 * d], vec![0f32; 2 * d]);
            weighted_kv_n([&w[..len], &w[len..]], |i| &rows[i * per..(i + 1) * per], &mut o1);
            weighted_rows_n([&w[..len], &w[len..]], |i| &wide[i * d..(i + 1) * d], &mut o2);
            assert!(o1.iter().zip(&o2).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        for (d, len) in [(32, 7), (256, 9)] {
            let x = data(len * d, 9);
            let h: Vec<f16> = x.iter().map(|v| f16::from_f32(*v)).collect();
            check(&h, d, len);
            let mut q = vec![KvQ8::default(); len * d / 32];
            KvQ8::quantize(&x, &mut q);
            for (b, xs) in q.iter().zip(x.chunks(32)) {
                let step = b.d.to_f32();
                // half a step, and the f16 rounding of the scale over up to 127 steps
                let tol = step * (0.5 + 127.0 / 2048.0) + 1e-6;
                assert!(xs.iter().zip(&b.qs).all(|(v, &q)| (v - step * q as f32).abs() <= tol));
            }
            check(&q, d, len);
        }
    }

    /// Attention's f32 helpers sum exactly as the one-vector forms: scores two keys at a time
    /// equal `dot_f32` bit for bit, and the weighted sum of rows equals `o += w·v` row by row.
    #[test]
    fn f32_helpers_keep_the_one_vector_order() {
        // 20: 16 columns in registers, 4 in the tail; 128: AVX-512's 64-column passes
        for (d, len) in [(20, 9), (128, 9)] {
            let a = data(4 * d, 1);
            let b = data(2 * d, 2);
            let qa: [&[f32]; 4] = std::array::from_fn(|j| &a[j * d..(j + 1) * d]);
            let s = dot_f32_nm(qa, [&b[..d], &b[d..]]);
            for (m, kb) in [&b[..d], &b[d..]].into_iter().enumerate() {
                for j in 0..4 {
                    assert_eq!(s[m][j].to_bits(), dot_f32(qa[j], kb).to_bits());
                }
            }
            let rows = data(len * d, 3);
            let w = data(2 * len, 4);
            let mut out = vec![0f32; 2 * d];
            weighted_rows_n([&w[..len], &w[len..]], |i| &rows[i * d..(i + 1) * d], &mut out);
            for j in 0..2 {
                let mut want = vec![0f32; d];
                for i in 0..len {
                    let wj = w[j * len + i];
                    want.iter_mut().zip(&rows[i * d..]).for_each(|(o, v)| *o += wj * v);
                }
                assert!(want.iter().zip(&out[j * d..]).all(|(a, b)| a.to_bits() == b.to_bits()));
            }
        }
    }

    /// The AVX2 Q8_K and Q8_0 quantizers give candle's bytes, ties and all-zero blocks included.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn q8k_quantizer_matches_candle() {
        use candle_core::quantized::k_quants::BlockQ8K;
        // chimera's x86-64 builds target x86-64-v3 (.cargo/config.toml)
        assert!(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"));
        let mut x = data(256 * 6, 21);
        x[256..512].fill(0.0); // an all-zero block
        for (j, v) in x[512..768].iter_mut().enumerate() {
            *v = (j as f32 - 128.0) * 0.5 / 127.0 * 3.0; // many exact halves after scaling
        }
        x[800] = -7.0; // the first largest magnitude is negative
        x[900] = 7.0;
        type Quantizer = unsafe fn(&[f32], *mut u8);
        let cases: [(Vec<u8>, Quantizer); 2] = [
            (candle_bytes::<BlockQ8K>(&x), kquants::quantize_q8k),
            (candle_bytes::<BlockQ8_0>(&x), kquants::quantize_q8_0),
        ];
        for (want, ours) in cases {
            let mut got = vec![0u8; want.len()];
            // SAFETY: AVX2 checked above; got holds as many blocks as want.
            unsafe { ours(&x, got.as_mut_ptr()) };
            assert_eq!(got, want);
        }
    }

    /// `x` quantized by candle's `from_float` into `T` blocks, as bytes.
    pub(crate) fn candle_bytes<T: GgmlType + Clone>(x: &[f32]) -> Vec<u8> {
        let mut blocks = vec![T::zeros(); x.len() / T::BLCK_SIZE];
        T::from_float(x, &mut blocks);
        let len = blocks.len() * std::mem::size_of::<T>();
        // SAFETY: candle's block types are plain repr(C) data of size_of::<T>() bytes.
        unsafe { std::slice::from_raw_parts(blocks.as_ptr() as *const u8, len) }.to_vec()
    }

    /// The AVX2 Q5_0 kernel agrees with candle's scalar reference to float rounding.
    #[test]
    fn avx2_kernels_match_candle_scalar() {
        let k = 640;
        let x = data(k, 12);
        let pool = Pool::new(1);
        let mut scratch = MatmulScratch::new(1, k);
        for ty in [TensorType::Q4_0, TensorType::Q5_0, TensorType::Q8_0] {
            let w = quantize(ty, &data(k, 11));
            let wa = aligned(&w);
            let wb = view(&wa, w.len());
            let a = quantize(TensorType::Q8_0, &x);
            let reference = with_block!(ty, T => {
                let aa = aligned(&a);
                T::vec_dot_unopt(k, blocks::<T>(wb), blocks(view(&aa, a.len())))
            });
            let mut fast = [0f32];
            matmul(
                &pool,
                &mut scratch,
                &x,
                1,
                QWeight { ty, rows: 1, cols: k, data: wb, x8: None },
                &mut fast,
            );
            assert!(
                (reference - fast[0]).abs() <= 1e-4 * reference.abs().max(1.0),
                "{ty:?}: {} vs {reference}",
                fast[0]
            );
        }
    }

    /// The VNNI kernels give the AVX2 kernels' bits. Only machines with AVX512-VNNI can run them;
    /// elsewhere this checks that `simd()` did not pick them.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vnni_kernels_are_bit_identical_to_avx2() {
        let has = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
            && is_x86_feature_detected!("avx512vl");
        if !has {
            assert_ne!(simd(), Simd::Vnni);
            return;
        }
        let nb = 64;
        let acts = quantize(TensorType::Q8_0, &data(4 * nb * 32, 20));
        let mut side = vec![0u8; 4 * nb * SIDE_BYTES];
        q8_0_side(&acts, 0..4, 4, nb, side.as_mut_ptr());
        let a: [*const u8; 4] = std::array::from_fn(|j| acts[j * nb * 34..].as_ptr());
        let yb: [*const [i32; 8]; 4] =
            std::array::from_fn(|j| (side.as_ptr() as *const [i32; 8]).wrapping_add(j * nb));
        let yd: [*const f32; 4] = std::array::from_fn(|j| {
            (side[4 * nb * 32..].as_ptr() as *const f32).wrapping_add(j * nb)
        });
        for ty in [TensorType::Q4_0, TensorType::Q5_0, TensorType::Q8_0] {
            let w = quantize(ty, &data(nb * 32, 13));
            // SAFETY: AVX2, FMA and VNNI are present; the buffers hold nb blocks each.
            unsafe {
                let (one, vnni) = (
                    avx2::dot_q8_0(ty, nb, w.as_ptr(), a[0], yd[0], yb[0]),
                    avx2::dot_q8_0_vnni(ty, nb, w.as_ptr(), a[0], yd[0], yb[0]),
                );
                assert_eq!(one.to_bits(), vnni.to_bits(), "{ty:?}");
                let (four, vnni4) = (
                    avx2::dot4_q8_0(ty, nb, w.as_ptr(), a, yd, yb),
                    avx2::dot4_q8_0_vnni(ty, nb, w.as_ptr(), a, yd, yb),
                );
                assert_eq!(four.map(f32::to_bits), vnni4.map(f32::to_bits), "{ty:?}");
                assert_eq!(four[0].to_bits(), one.to_bits(), "{ty:?}");
                let w2 = quantize(ty, &data(nb * 32, 14));
                let eight = avx2::dot8_q8_0_vnni(ty, nb, [w.as_ptr(), w2.as_ptr()], a, yd, yb);
                let second = avx2::dot4_q8_0(ty, nb, w2.as_ptr(), a, yd, yb);
                assert_eq!(eight[0].map(f32::to_bits), four.map(f32::to_bits), "{ty:?}");
                assert_eq!(eight[1].map(f32::to_bits), second.map(f32::to_bits), "{ty:?}");
            }
        }
    }

    /// A token's products are bit-identical alone and at any place in a batch (the four-token
    /// and one-token kernels sum in the same order), so logits do not depend on batching.
    #[test]
    fn products_do_not_depend_on_batch_position() {
        let (rows, n) = (19, 7);
        let pool = Pool::new(2);
        let mut scratch = MatmulScratch::new(n, 1280);
        // 672 = 21 blocks of 32 (an odd count: the kernels' tail); 1280 = 5 super-blocks of 256
        for (ty, k) in [
            (TensorType::Q4_0, 672),
            (TensorType::Q5_0, 672),
            (TensorType::Q8_0, 672),
            (TensorType::Q5_0, 1280),
            (TensorType::Q4K, 1280),
            (TensorType::Q6K, 1280),
        ] {
            let x = data(n * k, 5);
            let bytes = quantize(ty, &data(rows * k, 9));
            let store = aligned(&bytes);
            let ab = view(&store, bytes.len());
            let packed = x8::can_repack(ty, 16, k)
                .then(|| x8::repack(ty, 16, k, &ab[..16 * k / ty.block().0 * ty.block().1]));
            let plain = QWeight { ty, rows, cols: k, data: ab, x8: None };
            for w in [plain].into_iter().chain(packed.as_deref().map(|p| QWeight {
                rows: 16,
                x8: Some(p),
                ..plain
            })) {
                let rows = w.rows;
                let mut batch = vec![0f32; n * rows];
                matmul(&pool, &mut scratch, &x, n, w, &mut batch);
                for b in 0..n {
                    let mut one = vec![0f32; rows];
                    matmul(&pool, &mut scratch, &x[b * k..(b + 1) * k], 1, w, &mut one);
                    let same = one.iter().zip(&batch[b * rows..(b + 1) * rows]);
                    assert!(
                        same.into_iter().all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{ty:?} x8 {} row {b}",
                        w.x8.is_some()
                    );
                }
            }
        }
    }
}
