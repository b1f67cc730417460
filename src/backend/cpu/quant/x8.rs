//! Row-interleaved ("x8") Q4_0/Q5_0/Q8_0 weights and their kernels: eight rows' blocks side by
//! side, repacked at load, so that one integer dot instruction against four activation bytes
//! broadcast gives eight rows' partial sums, and each block's scaling is one multiply-add for
//! eight rows (ref: llama.cpp ggml-cpu/repack.cpp, block_q4_0x8 and ggml_gemm_q4_0_8x8_q8_0).
//!
//! Arithmetic, the same at every instruction set and batch size: per row and block the exact
//! integer Σ w·a, then `acc = fma(d_w · d_a, Σ, acc)` over the blocks in order. Weights are
//! stored unsigned (value + [`offset`]); the offset comes back as −offset·Σa per activation block.

use crate::gguf::TensorType;

/// Rows per interleaved group.
pub const GROUP: usize = 8;

/// Whether a weight of this type and shape is repacked (whole groups of rows, whole blocks):
/// Q4_0, Q5_0 and Q8_0 here, Q4_K and Q6_K in [`super::x8k`].
pub fn can_repack(ty: TensorType, rows: usize, cols: usize) -> bool {
    let block = match ty {
        TensorType::Q4_0 | TensorType::Q5_0 | TensorType::Q8_0 => 32,
        TensorType::Q4K | TensorType::Q6K => 256,
        _ => return false,
    };
    rows.is_multiple_of(GROUP) && cols.is_multiple_of(block)
}

/// Bytes of the repacked form of `rows` (whole groups) rows of `cols` values.
pub fn repacked_bytes(ty: TensorType, rows: usize, cols: usize) -> usize {
    let (be, _) = ty.block();
    let rec = match ty {
        TensorType::Q4K | TensorType::Q6K => super::x8k::record_bytes(ty),
        _ => record_bytes(ty),
    };
    rows / GROUP * (cols / be) * rec
}

/// What the stored unsigned weight bytes exceed the values by.
pub const fn offset(ty: TensorType) -> i32 {
    match ty {
        TensorType::Q4_0 => 8,
        TensorType::Q5_0 => 16,
        _ => 128,
    }
}

/// Bytes of one record: a block of each of the group's eight rows (the same bytes, permuted).
pub fn record_bytes(ty: TensorType) -> usize {
    ty.block().1 * GROUP
}

/// Repacks `rows` rows of `cols` values from the file's layout. A record holds the eight rows'
/// f16 scales, then (Q5_0) eight u32 masks of fifth bits, mask `s` holding bit `4s + b` of row
/// `k`'s `qh` at bit `4k + b`, then the quants in 32-byte steps whose byte `4k + b` belongs to row
/// `k`: Q8_0's eight steps are elements `4s..4s + 4` (+128); Q4_0's and Q5_0's four steps are
/// bytes `4q..4q + 4` of each row's nibbles (low nibbles: elements `4q + b`, high: `16 + 4q + b`).
pub fn repack(ty: TensorType, rows: usize, cols: usize, data: &[u8]) -> Vec<u8> {
    assert!(can_repack(ty, rows, cols), "invariant: checked by can_repack");
    let mut out = vec![0u8; repacked_bytes(ty, rows, cols)];
    repack_into(ty, cols, data, &mut out);
    out
}

/// [`repack`] of whole groups of rows (`data`) into `out` ([`repacked_bytes`] long), so that a
/// large tensor can be repacked a piece at a time.
pub fn repack_into(ty: TensorType, cols: usize, data: &[u8], out: &mut [u8]) {
    if matches!(ty, TensorType::Q4K | TensorType::Q6K) {
        return super::x8k::repack_into(ty, cols, data, out);
    }
    let (nb, bb, rec) = (cols / 32, ty.block().1, record_bytes(ty));
    assert!(data.len() == out.len() && data.len().is_multiple_of(nb * rec), "invariant: groups");
    for (r, dst) in out.chunks_exact_mut(rec).enumerate() {
        let (g, i) = (r / nb, r % nb);
        let mut masks = [0u32; 8];
        for k in 0..GROUP {
            let src = &data[((g * GROUP + k) * nb + i) * bb..][..bb];
            dst[2 * k..2 * k + 2].copy_from_slice(&src[..2]);
            match ty {
                TensorType::Q8_0 => {
                    for s in 0..8 {
                        let q: [u8; 4] = src[2 + 4 * s..6 + 4 * s].try_into().expect("4 bytes");
                        let u = u32::from_ne_bytes(q) ^ 0x8080_8080;
                        dst[16 + 32 * s + 4 * k..20 + 32 * s + 4 * k]
                            .copy_from_slice(&u.to_ne_bytes());
                    }
                }
                TensorType::Q4_0 => {
                    for q in 0..4 {
                        dst[16 + 32 * q + 4 * k..][..4].copy_from_slice(&src[2 + 4 * q..][..4]);
                    }
                }
                _ => {
                    let qh = u32::from_le_bytes([src[2], src[3], src[4], src[5]]);
                    for (s, m) in masks.iter_mut().enumerate() {
                        *m |= ((qh >> (4 * s)) & 0xF) << (4 * k);
                    }
                    for q in 0..4 {
                        dst[48 + 32 * q + 4 * k..][..4].copy_from_slice(&src[6 + 4 * q..][..4]);
                    }
                }
            }
        }
        if ty == TensorType::Q5_0 {
            for (s, m) in masks.iter().enumerate() {
                dst[16 + 4 * s..20 + 4 * s].copy_from_slice(&m.to_le_bytes());
            }
        }
    }
}

/// The stored unsigned byte of row `k`, element `e` of a record (the scalar kernel's reader).
fn unsigned_at(ty: TensorType, rec: &[u8], k: usize, e: usize) -> i32 {
    let (s, b) = (e / 4, e % 4);
    match ty {
        TensorType::Q8_0 => rec[16 + 32 * s + 4 * k + b] as i32,
        TensorType::Q4_0 => (rec[16 + 32 * (s % 4) + 4 * k + b] >> (4 * (s / 4)) & 0xF) as i32,
        _ => {
            let nib = (rec[48 + 32 * (s % 4) + 4 * k + b] >> (4 * (s / 4))) & 0xF;
            let m = u32::from_le_bytes([
                rec[16 + 4 * s],
                rec[17 + 4 * s],
                rec[18 + 4 * s],
                rec[19 + 4 * s],
            ]);
            (nib | (((m >> (4 * k + b)) & 1) as u8) << 4) as i32
        }
    }
}

/// One group against one token in plain Rust: the reference the SIMD kernels equal bit for bit.
/// `recs` holds the group's `nb` records, `y` the token's `nb` 34-byte Q8_0 blocks, `yd`/`ysum`
/// their scales and sums.
pub fn group_scalar(
    ty: TensorType,
    nb: usize,
    recs: &[u8],
    y: &[u8],
    yd: &[f32],
    ysum: &[i32],
) -> [f32; GROUP] {
    let rb = record_bytes(ty);
    let mut acc = [0f32; GROUP];
    for i in 0..nb {
        let rec = &recs[i * rb..(i + 1) * rb];
        let a = &y[i * 34 + 2..i * 34 + 34];
        for (k, acc) in acc.iter_mut().enumerate() {
            let mut sum = -offset(ty) * ysum[i];
            for (e, &a) in a.iter().enumerate() {
                sum += unsigned_at(ty, rec, k, e) * a as i8 as i32;
            }
            let dw = half::f16::from_bits(u16::from_le_bytes([rec[2 * k], rec[2 * k + 1]]));
            *acc = (dw.to_f32() * yd[i]).mul_add(sum as f32, *acc);
        }
    }
    acc
}

#[cfg(target_arch = "x86_64")]
pub mod simd {
    use super::{offset, record_bytes, GROUP};
    use crate::gguf::TensorType;
    use std::arch::x86_64::*;

    const fn wtype(w: u8) -> TensorType {
        match w {
            0 => TensorType::Q4_0,
            1 => TensorType::Q5_0,
            _ => TensorType::Q8_0,
        }
    }

    /// Calls `$call` with the const `$w` naming `ty`'s kernel instance.
    macro_rules! per_wtype {
        ($ty:expr, $w:ident => $call:expr) => {
            match $ty {
                TensorType::Q4_0 => {
                    const $w: u8 = 0;
                    $call
                }
                TensorType::Q5_0 => {
                    const $w: u8 = 1;
                    $call
                }
                _ => {
                    const $w: u8 = 2;
                    $call
                }
            }
        };
    }

    /// Q5_0's fifth bits of step `s` as 0x10 in each byte whose bit is set (AVX2: the u32
    /// spread to bytes, then compared; ref: ggml bytes_from_bits_32).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn bits_to_0x10(m: u32) -> __m256i {
        let shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
        let bh = _mm256_shuffle_epi8(_mm256_set1_epi32(m as i32), shuf);
        let bh = _mm256_cmpeq_epi8(
            _mm256_or_si256(bh, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe)),
            _mm256_set1_epi64x(-1),
        );
        _mm256_and_si256(bh, _mm256_set1_epi8(0x10))
    }

    /// The eight kernels: `T` tokens against one group, once per instruction set.
    macro_rules! group_kernel {
        ($name:ident, $feat:literal, $vnni:literal) => {
            /// # Safety
            /// The instruction set must be present; `recs` must point at `nb` records of type
            /// `W`, each `y[t]` at `nb` 34-byte Q8_0 blocks, `yd[t]`/`ys[t]` at their `nb`
            /// scales and sums.
            #[target_feature(enable = $feat)]
            unsafe fn $name<const W: u8, const T: usize>(
                nb: usize,
                recs: *const u8,
                y: [*const u8; T],
                yd: [*const f32; T],
                ys: [*const i32; T],
            ) -> [__m256; T] {
                let ty = wtype(W);
                let rb = record_bytes(ty);
                let o = offset(ty);
                let m4 = _mm256_set1_epi8(0x0F);
                let mut acc = [_mm256_setzero_ps(); T];
                for i in 0..nb {
                    let rec = recs.add(i * rb);
                    let d8 = _mm256_cvtph_ps(_mm_loadu_si128(rec as *const __m128i));
                    let mut v = [_mm256_setzero_si256(); 8];
                    if W == 2 {
                        for (s, v) in v.iter_mut().enumerate() {
                            *v = _mm256_loadu_si256(rec.add(16 + 32 * s) as *const __m256i);
                        }
                    } else {
                        let at = if W == 0 { 16 } else { 48 };
                        for q in 0..4 {
                            let b = _mm256_loadu_si256(rec.add(at + 32 * q) as *const __m256i);
                            v[q] = _mm256_and_si256(b, m4);
                            v[q + 4] = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
                        }
                        if W == 1 {
                            for (s, v) in v.iter_mut().enumerate() {
                                let m = std::ptr::read_unaligned(rec.add(16 + 4 * s) as *const u32);
                                *v = if $vnni {
                                    _mm256_mask_blend_epi8(
                                        m,
                                        *v,
                                        _mm256_or_si256(*v, _mm256_set1_epi8(0x10)),
                                    )
                                } else {
                                    _mm256_or_si256(*v, bits_to_0x10(m))
                                };
                            }
                        }
                    }
                    // AVX2's vpmaddubsw would saturate on Q8_0's 0..255: it takes the signed
                    // bytes back and uses the sign trick, with no offset to undo.
                    let signed = !$vnni && W == 2;
                    if signed {
                        for v in &mut v {
                            *v = _mm256_xor_si256(*v, _mm256_set1_epi8(-128));
                        }
                    }
                    for t in 0..T {
                        let q = y[t].add(i * 34 + 2);
                        let a = |s: usize| {
                            _mm256_set1_epi32(std::ptr::read_unaligned(q.add(4 * s) as *const i32))
                        };
                        let corr = if signed { 0 } else { -o * *ys[t].add(i) };
                        let sum = if $vnni {
                            let mut c = [
                                _mm256_set1_epi32(corr),
                                _mm256_setzero_si256(),
                                _mm256_setzero_si256(),
                                _mm256_setzero_si256(),
                            ];
                            for s in 0..8 {
                                c[s % 4] = _mm256_dpbusd_epi32(c[s % 4], v[s], a(s));
                            }
                            _mm256_add_epi32(
                                _mm256_add_epi32(c[0], c[1]),
                                _mm256_add_epi32(c[2], c[3]),
                            )
                        } else {
                            let ones = _mm256_set1_epi16(1);
                            let p: [__m256i; 8] = std::array::from_fn(|s| {
                                let pairs = if signed {
                                    _mm256_maddubs_epi16(
                                        _mm256_sign_epi8(v[s], v[s]),
                                        _mm256_sign_epi8(a(s), v[s]),
                                    )
                                } else {
                                    _mm256_maddubs_epi16(v[s], a(s))
                                };
                                _mm256_madd_epi16(ones, pairs)
                            });
                            let s01 = _mm256_add_epi32(p[0], p[1]);
                            let s23 = _mm256_add_epi32(p[2], p[3]);
                            let s45 = _mm256_add_epi32(p[4], p[5]);
                            let s67 = _mm256_add_epi32(p[6], p[7]);
                            let s = _mm256_add_epi32(
                                _mm256_add_epi32(s01, s23),
                                _mm256_add_epi32(s45, s67),
                            );
                            _mm256_add_epi32(s, _mm256_set1_epi32(corr))
                        };
                        let d = _mm256_mul_ps(d8, _mm256_set1_ps(*yd[t].add(i)));
                        acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sum), acc[t]);
                    }
                }
                acc
            }
        };
    }
    group_kernel!(group_avx2, "avx2,fma", false);
    group_kernel!(group_vnni, "avx2,fma,avx512f,avx512bw,avx512vnni,avx512vl", true);

    /// Groups `groups` of a repacked weight (`nb` blocks per row, records from `recs`) against
    /// `n` tokens, into `out[t * stride + 8 g + k]`: four tokens at a time against every group,
    /// so that the groups' records (a row tile's worth) stay in L1 and each token's activations
    /// are read once per tile, not once per group. `acts(t)` gives token `t`'s blocks (Q8_0, or Q8_K for
    /// Q4_K and Q6_K) and, for Q8_0, their scales and sums.
    ///
    /// # Safety
    /// AVX2 and FMA must be present, and AVX512-VNNI/BW/VL when `vnni`; `recs` must hold the
    /// groups' records; for each token `t < n`, `acts(t)` must point at its `nb` blocks (and
    /// scales and sums); `out` must hold `(n − 1) · stride + 8 · groups.end` floats.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn groups(
        ty: TensorType,
        vnni: bool,
        nb: usize,
        recs: *const u8,
        groups: std::ops::Range<usize>,
        n: usize,
        acts: &dyn Fn(usize) -> (*const u8, *const f32, *const i32),
        out: *mut f32,
        stride: usize,
    ) {
        let group_bytes = super::repacked_bytes(ty, GROUP, nb * ty.block().0);
        // T tokens against every group of the tile
        let pass = |t: usize, a: &[(*const u8, *const f32, *const i32)]| match a.len() {
            4 => pass_n::<4>(ty, vnni, nb, recs, group_bytes, groups.clone(), a, t, out, stride),
            3 => pass_n::<3>(ty, vnni, nb, recs, group_bytes, groups.clone(), a, t, out, stride),
            2 => pass_n::<2>(ty, vnni, nb, recs, group_bytes, groups.clone(), a, t, out, stride),
            _ => pass_n::<1>(ty, vnni, nb, recs, group_bytes, groups.clone(), a, t, out, stride),
        };
        let mut t = 0;
        while t + 4 <= n {
            let a: [_; 4] = std::array::from_fn(|j| acts(t + j));
            pass(t, &a);
            t += 4;
        }
        // the last one to three tokens in one pass (decode batches of 2 or 3 read the weights
        // once); each token's chain is the same whatever T is
        if t < n {
            let a: [_; 3] = std::array::from_fn(|j| acts((t + j).min(n - 1)));
            pass(t, &a[..n - t]);
        }
    }

    /// Tokens `t..t + T` (activations `a`) against groups `groups`, into `out` as [`groups`].
    ///
    /// # Safety
    /// As [`groups`]'.
    #[allow(clippy::too_many_arguments)]
    unsafe fn pass_n<const T: usize>(
        ty: TensorType,
        vnni: bool,
        nb: usize,
        recs: *const u8,
        group_bytes: usize,
        groups: std::ops::Range<usize>,
        a: &[(*const u8, *const f32, *const i32)],
        t: usize,
        out: *mut f32,
        stride: usize,
    ) {
        let y: [*const u8; T] = std::array::from_fn(|j| a[j].0);
        let (yd, ys): ([*const f32; T], [*const i32; T]) =
            (std::array::from_fn(|j| a[j].1), std::array::from_fn(|j| a[j].2));
        for g in groups {
            let r = recs.add(g * group_bytes);
            let acc = match ty {
                TensorType::Q4K | TensorType::Q6K => {
                    crate::backend::cpu::quant::x8k::simd::kernel::<T>(ty, vnni, nb, r, y)
                }
                _ => per_wtype!(ty, W => if vnni {
                    group_vnni::<W, T>(nb, r, y, yd, ys)
                } else {
                    group_avx2::<W, T>(nb, r, y, yd, ys)
                }),
            };
            for (j, acc) in acc.into_iter().enumerate() {
                _mm256_storeu_ps(out.add((t + j) * stride + g * GROUP), acc);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::backend::cpu::quant::quantize;
    use crate::backend::cpu::quant::tests::data;

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
        let (rows, cols) = (16, 160);
        let nb = cols / 32;
        let acts = quantize(TensorType::Q8_0, &data(n * cols, 7));
        let mut side = vec![0u32; n * nb * 10];
        crate::backend::cpu::quant::q8_0_side(&acts, 0..n, n, nb, side.as_mut_ptr() as *mut u8);
        let yd = |t: usize| &side[n * nb * 8 + t * nb..][..nb];
        let ys = |t: usize| &side[n * nb * 9 + t * nb..][..nb];
        let ysi = |t: usize| -> &[i32] {
            // SAFETY: u32 and i32 share size and alignment.
            unsafe { std::slice::from_raw_parts(ys(t).as_ptr() as *const i32, nb) }
        };
        let ydf = |t: usize| -> &[f32] {
            // SAFETY: the scales were written as f32 bits into u32 storage.
            unsafe { std::slice::from_raw_parts(yd(t).as_ptr() as *const f32, nb) }
        };
        let a = |t: usize| (acts[t * nb * 34..].as_ptr(), ydf(t).as_ptr(), ysi(t).as_ptr());
        for ty in [TensorType::Q4_0, TensorType::Q5_0, TensorType::Q8_0] {
            let x8 = repack(ty, rows, cols, &quantize(ty, &data(rows * cols, 9)));
            let rec = record_bytes(ty) * nb;
            let mut want = vec![0f32; n * rows];
            for g in 0..rows / GROUP {
                for t in 0..n {
                    let y = &acts[t * nb * 34..(t + 1) * nb * 34];
                    let r = group_scalar(ty, nb, &x8[g * rec..][..rec], y, ydf(t), ysi(t));
                    want[t * rows + g * GROUP..][..GROUP].copy_from_slice(&r);
                }
            }
            assert_levels_match(ty, &want, &|vnni| {
                let mut got = vec![0f32; n * rows];
                let (recs, out) = (x8.as_ptr(), got.as_mut_ptr());
                // SAFETY: the instruction set was detected; buffers are sized as documented.
                unsafe { simd::groups(ty, vnni, nb, recs, 0..rows / GROUP, n, &a, out, rows) };
                got
            });
        }
    }

    /// Runs `kernel(vnni)` at each SIMD level this machine has (AVX2; AVX512-VNNI) and checks
    /// its bits against the scalar reference's `want`.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn assert_levels_match(
        ty: TensorType,
        want: &[f32],
        kernel: &dyn Fn(bool) -> Vec<f32>,
    ) {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        let vnni = avx2
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
            && is_x86_feature_detected!("avx512vl");
        for (level, present) in [(false, avx2), (true, vnni)] {
            if present {
                let got = kernel(level);
                let same = got.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{ty:?} vnni={level}: {got:?} vs {want:?}");
            }
        }
    }

    /// The repacked bytes hold every weight: the scalar kernel's readers give back each row's
    /// dequantized values.
    #[test]
    fn repack_keeps_every_value() {
        let (rows, cols) = (16, 96);
        for ty in [TensorType::Q4_0, TensorType::Q5_0, TensorType::Q8_0] {
            let raw = quantize(ty, &data(rows * cols, 3));
            let x8 = repack(ty, rows, cols, &raw);
            assert_eq!(x8.len(), raw.len());
            let mut want = vec![0f32; cols];
            let (nb, rb) = (cols / 32, record_bytes(ty));
            for r in 0..rows {
                let bb = ty.block().1;
                crate::backend::cpu::quant::dequantize(
                    ty,
                    &raw[r * nb * bb..(r + 1) * nb * bb],
                    &mut want,
                );
                for (e, &want) in want.iter().enumerate() {
                    let rec = &x8[((r / 8) * nb + e / 32) * rb..][..rb];
                    let k = r % 8;
                    let d = half::f16::from_bits(u16::from_le_bytes([rec[2 * k], rec[2 * k + 1]]));
                    let v = (unsigned_at(ty, rec, k, e % 32) - offset(ty)) as f32 * d.to_f32();
                    assert_eq!(v, want, "{ty:?} row {r} element {e}");
                }
            }
        }
    }
}
