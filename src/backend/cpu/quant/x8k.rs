//! Row-interleaved ("x8") Q4_K and Q6_K weights against Q8_K activations: eight rows' super-blocks
//! side by side, repacked at load, so that one integer dot instruction against four broadcast
//! activation bytes gives eight rows' partial sums (ref: llama.cpp ggml-cpu/repack.cpp,
//! block_q4_Kx8 and ggml_gemm_q4_K_8x8_q8_K).
//!
//! Arithmetic, the same at every instruction set and batch size: per row and super-block exact
//! integers (Q4_K: Σ scale·Σq·a and Σ min·Σa; Q6_K: Σ scale·Σ(q − 32)·a), each `fma`d with the
//! f32 product of the super-block scales over the super-blocks in order; Q4_K's mins go to a
//! second accumulator subtracted at the end, as llama.cpp's repacked Q4_K kernels do.

use crate::gguf::TensorType;

use super::x8::GROUP;

/// Bytes of a Q8_K activation block: d (f32), 256 i8, 16 i16 sums of 16 (ref: block_q8_K).
pub const Q8K: usize = 292;

/// Bytes of one record, eight rows' super-blocks. Q4_K: d[8], dmin[8] (f16), scales[8 sub][8 row]
/// and mins[8][8] (u8), then nibbles in 32-byte chunks (j, t) whose byte 4k + b is row k's
/// qs[32j + 4t + b]. Q6_K: d[8] (f16), scales[16][8] (i8), then the 6-bit values as bytes in 64
/// steps whose byte 4k + b is row k's element 4s + b.
pub fn record_bytes(ty: TensorType) -> usize {
    match ty {
        TensorType::Q4K => 32 + 128 + 1024,
        _ => 16 + 128 + 2048,
    }
}

/// ggml's get_scale_min_k4: sub-block j's 6-bit scale and min from the 12 packed bytes.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// Element `e` of a Q6_K block as its unsigned 6-bit value (ref: dequantize_row_q6_K).
fn q6_at(blk: &[u8], e: usize) -> u8 {
    let (n, r) = (e / 128, e % 128);
    let (ql, qh) = (&blk[64 * n..], &blk[128 + 32 * n..]);
    let l = r % 32;
    match r / 32 {
        0 => (ql[l] & 0xF) | (qh[l] & 3) << 4,
        1 => (ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4,
        2 => (ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4,
        _ => (ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4,
    }
}

/// Repacks whole groups of rows (`data`, `cols` values each) into `out`.
pub fn repack_into(ty: TensorType, cols: usize, data: &[u8], out: &mut [u8]) {
    let (nb, bb, rec) = (cols / 256, ty.block().1, record_bytes(ty));
    let groups = data.len() / (GROUP * nb * bb);
    assert!(out.len() == groups * nb * rec, "invariant: whole groups");
    for (r, dst) in out.chunks_exact_mut(rec).enumerate() {
        let (g, i) = (r / nb, r % nb);
        for k in 0..GROUP {
            let src = &data[((g * GROUP + k) * nb + i) * bb..][..bb];
            if ty == TensorType::Q4K {
                dst[2 * k..2 * k + 2].copy_from_slice(&src[..2]);
                dst[16 + 2 * k..18 + 2 * k].copy_from_slice(&src[2..4]);
                for j in 0..8 {
                    let (sc, m) = scale_min_k4(j, &src[4..16]);
                    dst[32 + 8 * j + k] = sc;
                    dst[96 + 8 * j + k] = m;
                }
                for j in 0..4 {
                    for t in 0..8 {
                        let at = 160 + 32 * (8 * j + t) + 4 * k;
                        dst[at..at + 4].copy_from_slice(&src[16 + 32 * j + 4 * t..][..4]);
                    }
                }
            } else {
                dst[2 * k..2 * k + 2].copy_from_slice(&src[208..210]);
                for s in 0..16 {
                    dst[16 + 8 * s + k] = src[192 + s];
                }
                for e in 0..256 {
                    dst[144 + 32 * (e / 4) + 4 * k + e % 4] = q6_at(src, e);
                }
            }
        }
    }
}

fn f16_at(p: &[u8]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([p[0], p[1]])).to_f32()
}

/// One group against one token in plain Rust: the reference the SIMD kernels equal bit for bit.
/// `recs` holds the group's `nb` records, `y` the token's `nb` Q8_K blocks.
pub fn group_scalar(ty: TensorType, nb: usize, recs: &[u8], y: &[u8]) -> [f32; GROUP] {
    let rb = record_bytes(ty);
    let (mut acc, mut accm) = ([0f32; GROUP], [0f32; GROUP]);
    for i in 0..nb {
        let rec = &recs[i * rb..(i + 1) * rb];
        let a = &y[i * Q8K..(i + 1) * Q8K];
        let da = f32::from_le_bytes([a[0], a[1], a[2], a[3]]);
        let q = |e: usize| a[4 + e] as i8 as i32;
        let bsum = |s: usize| i16::from_le_bytes([a[260 + 2 * s], a[261 + 2 * s]]) as i32;
        for (k, (acc, accm)) in acc.iter_mut().zip(&mut accm).enumerate() {
            let d = f16_at(&rec[2 * k..]) * da;
            if ty == TensorType::Q4K {
                let (mut isum, mut msum) = (0i32, 0i32);
                for sb in 0..8 {
                    let (j, hi) = (sb / 2, sb % 2);
                    let mut s = 0;
                    for e in 0..32 {
                        let byte = rec[160 + 32 * (8 * j + e / 4) + 4 * k + e % 4];
                        s += ((byte >> (4 * hi)) & 0xF) as i32 * q(32 * sb + e);
                    }
                    isum += rec[32 + 8 * sb + k] as i32 * s;
                    msum += rec[96 + 8 * sb + k] as i32 * (bsum(2 * sb) + bsum(2 * sb + 1));
                }
                let dmin = f16_at(&rec[16 + 2 * k..]) * da;
                *acc = d.mul_add(isum as f32, *acc);
                *accm = dmin.mul_add(msum as f32, *accm);
            } else {
                let mut isum = 0i32;
                for sb in 0..16 {
                    let mut s = 0;
                    for e in 16 * sb..16 * sb + 16 {
                        s += (rec[144 + 32 * (e / 4) + 4 * k + e % 4] as i32 - 32) * q(e);
                    }
                    isum += rec[16 + 8 * sb + k] as i8 as i32 * s;
                }
                *acc = d.mul_add(isum as f32, *acc);
            }
        }
    }
    std::array::from_fn(|k| acc[k] - accm[k])
}

#[cfg(target_arch = "x86_64")]
pub mod simd {
    use super::{record_bytes, Q8K};
    use crate::gguf::TensorType;
    use std::arch::x86_64::*;

    /// `acc + Σ` of four u8·i8 products per i32 lane, with AVX2 (exact here: weights ≤ 63, so
    /// `vpmaddubsw` cannot saturate).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn dpbusd_avx2(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
        _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), _mm256_set1_epi16(1)))
    }

    #[target_feature(enable = "avx2,fma,avx512f,avx512vnni,avx512vl")]
    #[inline]
    fn dpbusd_vnni(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(acc, w, a)
    }

    /// `acc + Σ` of two i16·i16 products per i32 lane.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn dpwssd_avx2(acc: __m256i, x: __m256i, y: __m256i) -> __m256i {
        _mm256_add_epi32(acc, _mm256_madd_epi16(x, y))
    }

    #[target_feature(enable = "avx2,fma,avx512f,avx512vnni,avx512vl")]
    #[inline]
    fn dpwssd_vnni(acc: __m256i, x: __m256i, y: __m256i) -> __m256i {
        _mm256_dpwssd_epi32(acc, x, y)
    }

    /// Four bytes at `p` in every i32 lane.
    #[inline(always)]
    unsafe fn bcast(p: *const u8) -> __m256i {
        _mm256_set1_epi32(std::ptr::read_unaligned(p as *const i32))
    }

    /// Eight bytes at `p` as eight i32 lanes, zero- or sign-extended.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn lanes_u8(p: *const u8) -> __m256i {
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(p as *const __m128i))
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn lanes_i8(p: *const u8) -> __m256i {
        _mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i))
    }

    macro_rules! kernels {
        ($q4:ident, $q6:ident, $feat:literal, $dpbusd:ident, $dpwssd:ident) => {
            /// Q4_K: `T` tokens against one group's `nb` records.
            #[target_feature(enable = $feat)]
            unsafe fn $q4<const T: usize>(
                nb: usize,
                recs: *const u8,
                y: [*const u8; T],
            ) -> [__m256; T] {
                let rb = record_bytes(TensorType::Q4K);
                let m4 = _mm256_set1_epi8(0x0F);
                let mut acc = [_mm256_setzero_ps(); T];
                let mut accm = [_mm256_setzero_ps(); T];
                for i in 0..nb {
                    let rec = recs.add(i * rb);
                    let ya: [*const u8; T] = std::array::from_fn(|t| y[t].add(i * Q8K));
                    let mut isum = [_mm256_setzero_si256(); T];
                    for j in 0..4 {
                        let (sc_lo, sc_hi) =
                            (lanes_u8(rec.add(32 + 16 * j)), lanes_u8(rec.add(40 + 16 * j)));
                        let mut lo = [_mm256_setzero_si256(); 8];
                        let mut hi = [_mm256_setzero_si256(); 8];
                        for u in 0..8 {
                            let b = _mm256_loadu_si256(
                                rec.add(160 + 32 * (8 * j + u)) as *const __m256i
                            );
                            lo[u] = _mm256_and_si256(b, m4);
                            hi[u] = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
                        }
                        for t in 0..T {
                            let a = ya[t].add(4 + 64 * j);
                            let z = _mm256_setzero_si256();
                            let (mut s0, mut s1, mut s2, mut s3) = (z, z, z, z);
                            for u in (0..8).step_by(2) {
                                s0 = $dpbusd(s0, lo[u], bcast(a.add(4 * u)));
                                s1 = $dpbusd(s1, lo[u + 1], bcast(a.add(4 * u + 4)));
                                s2 = $dpbusd(s2, hi[u], bcast(a.add(32 + 4 * u)));
                                s3 = $dpbusd(s3, hi[u + 1], bcast(a.add(36 + 4 * u)));
                            }
                            let p0 = _mm256_mullo_epi32(_mm256_add_epi32(s0, s1), sc_lo);
                            let p1 = _mm256_mullo_epi32(_mm256_add_epi32(s2, s3), sc_hi);
                            isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(p0, p1));
                        }
                    }
                    // mins against the sums of 32: lanes hold (min, min) i16 pairs against
                    // the pair of 16-sums (bsums 2sb, 2sb + 1)
                    let mins: [__m256i; 8] = std::array::from_fn(|sb| {
                        let m = lanes_u8(rec.add(96 + 8 * sb));
                        _mm256_or_si256(m, _mm256_slli_epi32(m, 16))
                    });
                    let d8 = _mm256_cvtph_ps(_mm_loadu_si128(rec as *const __m128i));
                    let dm8 = _mm256_cvtph_ps(_mm_loadu_si128(rec.add(16) as *const __m128i));
                    for t in 0..T {
                        let mut msum = _mm256_setzero_si256();
                        for (sb, m) in mins.iter().enumerate() {
                            msum = $dpwssd(msum, *m, bcast(ya[t].add(260 + 4 * sb)));
                        }
                        let da = _mm256_set1_ps(std::ptr::read_unaligned(ya[t] as *const f32));
                        let d = _mm256_mul_ps(d8, da);
                        acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(isum[t]), acc[t]);
                        let dm = _mm256_mul_ps(dm8, da);
                        accm[t] = _mm256_fmadd_ps(dm, _mm256_cvtepi32_ps(msum), accm[t]);
                    }
                }
                std::array::from_fn(|t| _mm256_sub_ps(acc[t], accm[t]))
            }

            /// Q6_K: `T` tokens against one group's `nb` records.
            #[target_feature(enable = $feat)]
            unsafe fn $q6<const T: usize>(
                nb: usize,
                recs: *const u8,
                y: [*const u8; T],
            ) -> [__m256; T] {
                let rb = record_bytes(TensorType::Q6K);
                let mut acc = [_mm256_setzero_ps(); T];
                for i in 0..nb {
                    let rec = recs.add(i * rb);
                    let ya: [*const u8; T] = std::array::from_fn(|t| y[t].add(i * Q8K));
                    let mut isum = [_mm256_setzero_si256(); T];
                    let mut bias = [_mm256_setzero_si256(); T];
                    for p in 0..8 {
                        let sc = rec.add(16 + 16 * p);
                        let (sc0, sc1) = (lanes_i8(sc), lanes_i8(sc.add(8)));
                        // (scale 2p, scale 2p + 1) i16 pairs against the 16-sums 2p, 2p + 1
                        let scp = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(
                            _mm_loadl_epi64(sc as *const __m128i),
                            _mm_loadl_epi64(sc.add(8) as *const __m128i),
                        ));
                        let w: [__m256i; 8] = std::array::from_fn(|u| {
                            _mm256_loadu_si256(rec.add(144 + 32 * (8 * p + u)) as *const __m256i)
                        });
                        for t in 0..T {
                            let a = ya[t].add(4 + 32 * p);
                            let z = _mm256_setzero_si256();
                            let (mut s0, mut s1, mut s2, mut s3) = (z, z, z, z);
                            for u in (0..4).step_by(2) {
                                s0 = $dpbusd(s0, w[u], bcast(a.add(4 * u)));
                                s1 = $dpbusd(s1, w[u + 1], bcast(a.add(4 * u + 4)));
                                s2 = $dpbusd(s2, w[u + 4], bcast(a.add(16 + 4 * u)));
                                s3 = $dpbusd(s3, w[u + 5], bcast(a.add(20 + 4 * u)));
                            }
                            let p0 = _mm256_mullo_epi32(_mm256_add_epi32(s0, s1), sc0);
                            let p1 = _mm256_mullo_epi32(_mm256_add_epi32(s2, s3), sc1);
                            isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(p0, p1));
                            bias[t] = $dpwssd(bias[t], scp, bcast(ya[t].add(260 + 4 * p)));
                        }
                    }
                    let d8 = _mm256_cvtph_ps(_mm_loadu_si128(rec as *const __m128i));
                    for t in 0..T {
                        // Σ scale·Σ(q − 32)·a = Σ scale·Σq·a − 32·Σ scale·Σa
                        let sum = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(bias[t], 5));
                        let da = _mm256_set1_ps(std::ptr::read_unaligned(ya[t] as *const f32));
                        let d = _mm256_mul_ps(d8, da);
                        acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sum), acc[t]);
                    }
                }
                acc
            }
        };
    }
    kernels!(q4k_avx2, q6k_avx2, "avx2,fma", dpbusd_avx2, dpwssd_avx2);
    kernels!(q4k_vnni, q6k_vnni, "avx2,fma,avx512f,avx512vnni,avx512vl", dpbusd_vnni, dpwssd_vnni);

    /// `T` tokens (`y`: `nb` Q8_K blocks each) against one group's `nb` Q4_K or Q6_K records.
    ///
    /// # Safety
    /// AVX2 and FMA must be present, and AVX512-VNNI/VL when `vnni`; the pointers must hold
    /// what they are said to.
    pub unsafe fn kernel<const T: usize>(
        ty: TensorType,
        vnni: bool,
        nb: usize,
        recs: *const u8,
        y: [*const u8; T],
    ) -> [__m256; T] {
        match (ty == TensorType::Q4K, vnni) {
            (true, true) => q4k_vnni::<T>(nb, recs, y),
            (true, false) => q4k_avx2::<T>(nb, recs, y),
            (false, true) => q6k_vnni::<T>(nb, recs, y),
            (false, false) => q6k_avx2::<T>(nb, recs, y),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::quant::quantize;
    use crate::backend::cpu::quant::tests::data;
    use candle_core::quantized::k_quants::BlockQ8K;

    fn q8k(x: &[f32]) -> Vec<u8> {
        crate::backend::cpu::quant::tests::candle_bytes::<BlockQ8K>(x)
    }

    /// The scalar reader of a record gives back each row's dequantized values (via the kernel:
    /// a one-hot activation picks one element).
    #[test]
    fn repack_keeps_every_value() {
        let (rows, cols) = (8, 512);
        let nb = cols / 256;
        for ty in [TensorType::Q4K, TensorType::Q6K] {
            let raw = quantize(ty, &data(rows * cols, 3));
            let mut x8 = vec![0u8; rows / GROUP * nb * record_bytes(ty)];
            repack_into(ty, cols, &raw, &mut x8);
            let bb = ty.block().1;
            let mut want = vec![0f32; cols];
            for e in (0..cols).step_by(37) {
                // activation: 1.0 at element e (d = 1/127, q = 127), so each row gives w[e]
                let mut x = vec![0f32; cols];
                x[e] = 1.0;
                let y = q8k(&x);
                let got = group_scalar(ty, nb, &x8, &y);
                for (k, got) in got.iter().enumerate() {
                    crate::backend::cpu::quant::dequantize(
                        ty,
                        &raw[k * nb * bb..(k + 1) * nb * bb],
                        &mut want,
                    );
                    let tol = 1e-4;
                    assert!(
                        (got - want[e]).abs() <= tol,
                        "{ty:?} row {k} e {e}: {got} vs {}",
                        want[e]
                    );
                }
            }
        }
    }

    /// Every SIMD kernel (AVX2, and AVX512-VNNI where present; four tokens and one) gives the
    /// scalar reference's bits.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn simd_kernels_equal_the_scalar_reference() {
        for n in [5, 6, 7] {
            kernels_at(n);
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn kernels_at(n: usize) {
        let (rows, cols) = (16, 512);
        let nb = cols / 256;
        let acts = q8k(&data(n * cols, 7));
        let aligned: Vec<u64> = {
            let mut v = vec![0u64; acts.len().div_ceil(8)];
            // SAFETY: v holds at least acts.len() bytes.
            unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, acts.len()) }
                .copy_from_slice(&acts);
            v
        };
        let ab = aligned.as_ptr() as *const u8;
        let a = |t: usize| (ab.wrapping_add(t * nb * Q8K), std::ptr::null(), std::ptr::null());
        for ty in [TensorType::Q4K, TensorType::Q6K] {
            let raw = quantize(ty, &data(rows * cols, 9));
            let rec = record_bytes(ty) * nb;
            let mut x8 = vec![0u8; rows / GROUP * rec];
            repack_into(ty, cols, &raw, &mut x8);
            let mut want = vec![0f32; n * rows];
            for g in 0..rows / GROUP {
                for t in 0..n {
                    let y = &acts[t * nb * Q8K..(t + 1) * nb * Q8K];
                    let r = group_scalar(ty, nb, &x8[g * rec..][..rec], y);
                    want[t * rows + g * GROUP..][..GROUP].copy_from_slice(&r);
                }
            }
            crate::backend::cpu::quant::x8::tests::assert_levels_match(ty, &want, &|vnni| {
                let mut got = vec![0f32; n * rows];
                let (recs, out) = (x8.as_ptr(), got.as_mut_ptr());
                // SAFETY: the instruction set was detected; buffers are sized as documented.
                unsafe {
                    crate::backend::cpu::quant::x8::simd::groups(
                        ty,
                        vnni,
                        nb,
                        recs,
                        0..rows / GROUP,
                        n,
                        &a,
                        out,
                        rows,
                    )
                };
                got
            });
        }
    }
}
