//! AVX2 beside candle: four-token kernels for Q4_K and Q6_K weights against Q8_K activations
//! (each weight super-block unpacked once for four tokens, per token exactly the operations of
//! candle's one-token AVX2 kernels `vec_dot_q4k_q8k`, `vec_dot_q6k_q8k`, themselves llama.cpp's,
//! so a token's result is bit-identical alone or in a batch), and the Q8_K and Q8_0 activation
//! quantizers with candle's exact bytes.

use half::f16;
use std::arch::x86_64::*;

/// Bytes of a Q4_K super-block: d, dmin (f16), 12 bytes of packed 6-bit scales and mins, 128 of
/// nibbles (ref: ggml-common.h block_q4_K).
const Q4K: usize = 144;
/// Bytes of a Q6_K super-block: 128 of low nibbles, 64 of high bits, 16 i8 scales, d (f16).
const Q6K: usize = 210;
/// Bytes of a Q8_K super-block: d (f32), 256 i8, 16 i16 sums of 16.
const Q8K: usize = 292;

/// # Safety
/// `p` must point at two readable bytes.
unsafe fn f16_at(p: *const u8) -> f32 {
    f16::from_bits(std::ptr::read_unaligned(p as *const u16)).to_f32()
}

/// # Safety
/// `p` must point at four readable bytes.
unsafe fn f32_at(p: *const u8) -> f32 {
    std::ptr::read_unaligned(p as *const f32)
}

/// candle's hsum_float_8.
#[target_feature(enable = "avx2,fma")]
fn hsum8(x: __m256) -> f32 {
    let res = _mm256_extractf128_ps(x, 1);
    let res = _mm_add_ps(res, _mm256_castps256_ps128(x));
    let res = _mm_add_ps(res, _mm_movehl_ps(res, res));
    let res = _mm_add_ss(res, _mm_movehdup_ps(res));
    _mm_cvtss_f32(res)
}

/// sumi + Σ a·b over pairs of i16 lanes (`vpmaddwd` + `vpaddd`).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn madd_add(sumi: __m256i, a: __m256i, b: __m256i) -> __m256i {
    _mm256_add_epi32(sumi, _mm256_madd_epi16(a, b))
}

/// [`madd_add`] in one AVX512-VNNI `vpdpwssd`: the same exact i32 lanes.
#[target_feature(enable = "avx2,fma,avx512f,avx512vnni,avx512vl")]
#[inline]
fn madd_add_vnni(sumi: __m256i, a: __m256i, b: __m256i) -> __m256i {
    _mm256_dpwssd_epi32(sumi, a, b)
}

/// The four-token kernels once per instruction set. Their integer sums are exact, and the
/// lanes hold the same integers whichever way they are formed (summing each block's products
/// into a lane in any order gives the same i32), so both sets give candle's bits.
macro_rules! kquant_kernels {
    ($q4:ident, $q6:ident, $feat:literal, $madd:ident) => {
        /// Q4_K weights · four Q8_K activation rows, `nb` super-blocks.
        ///
        /// # Safety
        /// AVX2 and FMA must be available; `x` must point at `nb` Q4_K blocks and each `y[t]` at `nb`
        /// Q8_K blocks.
        #[target_feature(enable = $feat)]
        pub unsafe fn $q4(nb: usize, x: *const u8, y: [*const u8; 4]) -> [f32; 4] {
            const KMASK1: u32 = 0x3f3f3f3f;
            const KMASK2: u32 = 0x0f0f0f0f;
            const KMASK3: u32 = 0x03030303;
            let m4 = _mm256_set1_epi8(0xF);
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut acc_m = [_mm_setzero_ps(); 4];
            for i in 0..nb {
                let xb = x.add(i * Q4K);
                let (xd, xdmin) = (f16_at(xb), f16_at(xb.add(2)));
                let mut utmp = [0u32; 4];
                for (k, u) in utmp[..3].iter_mut().enumerate() {
                    *u = std::ptr::read_unaligned(xb.add(4 + 4 * k) as *const u32).to_le();
                }
                utmp[3] = ((utmp[2] >> 4) & KMASK2) | (((utmp[1] >> 6) & KMASK3) << 4);
                let uaux = utmp[1] & KMASK1;
                utmp[1] = (utmp[2] & KMASK2) | (((utmp[0] >> 6) & KMASK3) << 4);
                utmp[2] = uaux;
                utmp[0] &= KMASK1;
                let mins_and_scales = _mm256_cvtepu8_epi16(_mm_set_epi32(
                    utmp[3] as i32,
                    utmp[2] as i32,
                    utmp[1] as i32,
                    utmp[0] as i32,
                ));
                let mins = _mm256_extracti128_si256(mins_and_scales, 1);
                let sc128 = _mm256_extracti128_si256(mins_and_scales, 0);
                let scales = _mm256_insertf128_si256(_mm256_castsi128_si256(sc128), sc128, 1);
                let yb: [*const u8; 4] = std::array::from_fn(|t| y[t].add(i * Q8K));
                let mut d = [0f32; 4];
                for t in 0..4 {
                    let yd = f32_at(yb[t]);
                    d[t] = yd * xd;
                    let dmin = -yd * xdmin;
                    let q8sums = _mm256_loadu_si256(yb[t].add(260) as *const __m256i);
                    let q8s = _mm_hadd_epi16(
                        _mm256_extracti128_si256(q8sums, 0),
                        _mm256_extracti128_si256(q8sums, 1),
                    );
                    let prod = _mm_madd_epi16(mins, q8s);
                    acc_m[t] = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m[t]);
                }
                let mut sumi = [_mm256_setzero_si256(); 4];
                for j in 0..4 {
                    // scale bytes (2j, 2j+1) and (2j+2, 2j+3) in every 16-bit lane (ref: candle
                    // get_scale_shuffle_k4)
                    let pair = |s: i32| _mm256_set1_epi16((((2 * s + 1) << 8) | (2 * s)) as i16);
                    let scale_l = _mm256_shuffle_epi8(scales, pair(2 * j as i32));
                    let scale_h = _mm256_shuffle_epi8(scales, pair(2 * j as i32 + 1));
                    let q4bits = _mm256_loadu_si256(xb.add(16 + 32 * j) as *const __m256i);
                    let q4l = _mm256_and_si256(q4bits, m4);
                    let q4h = _mm256_and_si256(_mm256_srli_epi16(q4bits, 4), m4);
                    for t in 0..4 {
                        let q8 = yb[t].add(4 + 64 * j);
                        let q8l = _mm256_loadu_si256(q8 as *const __m256i);
                        let q8h = _mm256_loadu_si256(q8.add(32) as *const __m256i);
                        sumi[t] = $madd(sumi[t], scale_l, _mm256_maddubs_epi16(q4l, q8l));
                        sumi[t] = $madd(sumi[t], scale_h, _mm256_maddubs_epi16(q4h, q8h));
                    }
                }
                for t in 0..4 {
                    acc[t] =
                        _mm256_fmadd_ps(_mm256_set1_ps(d[t]), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
                }
            }
            std::array::from_fn(|t| {
                let m = _mm_add_ps(acc_m[t], _mm_movehl_ps(acc_m[t], acc_m[t]));
                let m = _mm_add_ss(m, _mm_movehdup_ps(m));
                hsum8(acc[t]) + _mm_cvtss_f32(m)
            })
        }

        /// Q6_K weights · four Q8_K activation rows, `nb` super-blocks.
        ///
        /// # Safety
        /// AVX2 and FMA must be available; `x` must point at `nb` Q6_K blocks and each `y[t]` at `nb`
        /// Q8_K blocks.
        #[target_feature(enable = $feat)]
        pub unsafe fn $q6(nb: usize, x: *const u8, y: [*const u8; 4]) -> [f32; 4] {
            let m4 = _mm256_set1_epi8(0xF);
            let m2 = _mm256_set1_epi8(3);
            let m32s = _mm256_set1_epi8(32);
            let mut acc = [_mm256_setzero_ps(); 4];
            for i in 0..nb {
                let xb = x.add(i * Q6K);
                let xd = f16_at(xb.add(208));
                let yb: [*const u8; 4] = std::array::from_fn(|t| y[t].add(i * Q8K));
                let scales = _mm_loadu_si128(xb.add(192) as *const __m128i);
                let mut sumi = [_mm256_setzero_si256(); 4];
                for j in 0..2 {
                    // scale byte s in bytes 0..8, s+1 in 8..16 (ref: candle get_scale_shuffle)
                    let shuf = |s: i64| {
                        let sc = _mm_shuffle_epi8(
                            scales,
                            _mm_set_epi64x(
                                (2 * s + 1) * 0x0101010101010101,
                                2 * s * 0x0101010101010101,
                            ),
                        );
                        _mm256_cvtepi8_epi16(sc)
                    };
                    let is = 4 * j as i64;
                    let sc = [shuf(is), shuf(is + 1), shuf(is + 2), shuf(is + 3)];
                    let q4bits1 = _mm256_loadu_si256(xb.add(64 * j) as *const __m256i);
                    let q4bits2 = _mm256_loadu_si256(xb.add(64 * j + 32) as *const __m256i);
                    let q4bits_h = _mm256_loadu_si256(xb.add(128 + 32 * j) as *const __m256i);
                    let hi = |s: i32| {
                        let h = match s {
                            0 => q4bits_h,
                            2 => _mm256_srli_epi16(q4bits_h, 2),
                            4 => _mm256_srli_epi16(q4bits_h, 4),
                            _ => _mm256_srli_epi16(q4bits_h, 6),
                        };
                        _mm256_slli_epi16(_mm256_and_si256(h, m2), 4)
                    };
                    let q4 = [
                        _mm256_or_si256(_mm256_and_si256(q4bits1, m4), hi(0)),
                        _mm256_or_si256(_mm256_and_si256(q4bits2, m4), hi(2)),
                        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits1, 4), m4), hi(4)),
                        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits2, 4), m4), hi(6)),
                    ];
                    for t in 0..4 {
                        let q8 = yb[t].add(4 + 128 * j);
                        for k in 0..4 {
                            let q8k = _mm256_loadu_si256(q8.add(32 * k) as *const __m256i);
                            let q8s = _mm256_maddubs_epi16(m32s, q8k);
                            let p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(q4[k], q8k), q8s);
                            sumi[t] = $madd(sumi[t], sc[k], p16);
                        }
                    }
                }
                for t in 0..4 {
                    let d = f32_at(yb[t]) * xd;
                    acc[t] =
                        _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
                }
            }
            std::array::from_fn(|t| hsum8(acc[t]))
        }
    };
}

kquant_kernels!(dot4_q4k_q8k, dot4_q6k_q8k, "avx2,fma", madd_add);
kquant_kernels!(
    dot4_q4k_q8k_vnni,
    dot4_q6k_q8k_vnni,
    "avx2,fma,avx512f,avx512vnni,avx512vl",
    madd_add_vnni
);

/// Quantizes `x` (whole blocks of 256) into Q8_K blocks at `y` (`Q8K` bytes each) with exactly
/// the results of candle's `BlockQ8K::from_float` (ggml's quantize_row_q8_K_ref): the first value
/// of largest magnitude sets `d = max / −127`, each value is `iscale·x` rounded half away from
/// zero (trunc, then ±1 where the dropped part is ≥ 0.5, all exact), and the 16-sums follow.
///
/// # Safety
/// AVX2 and FMA must be present; `y` must hold `x.len() / 256` blocks.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn quantize_q8k(x: &[f32], y: *mut u8) {
    let sign = _mm256_set1_ps(-0.0);
    for (i, xs) in x.chunks_exact(256).enumerate() {
        let yb = y.add(i * Q8K);
        let p = xs.as_ptr();
        let mut m = _mm256_setzero_ps();
        for c in 0..32 {
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(p.add(8 * c))));
        }
        let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_movehdup_ps(m2)));
        if amax == 0.0 {
            std::ptr::write_bytes(yb, 0, Q8K);
            continue;
        }
        let max = xs.iter().copied().find(|v| v.abs() == amax).unwrap_or(amax);
        let iscale = -127f32 / max;
        let vs = _mm256_set1_ps(iscale);
        let q = |c: usize| round_to_i32(_mm256_mul_ps(vs, _mm256_loadu_ps(p.add(8 * c))));
        for c in 0..8 {
            let b = pack_i8([q(4 * c), q(4 * c + 1), q(4 * c + 2), q(4 * c + 3)]);
            _mm256_storeu_si256(yb.add(4 + 32 * c) as *mut __m256i, b);
        }
        for j in 0..16 {
            let s: i32 = (0..16).map(|k| *yb.add(4 + 16 * j + k) as i8 as i32).sum();
            std::ptr::write_unaligned(yb.add(260 + 2 * j) as *mut i16, s as i16);
        }
        std::ptr::write_unaligned(yb as *mut f32, 1.0 / iscale);
    }
}

/// `t` rounded half away from zero (Rust's `f32::round`), clamped to the i8 range, as i32 lanes:
/// trunc, then ±1 where the dropped part is ≥ 0.5; every step is exact.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn round_to_i32(t: __m256) -> __m256i {
    let sign = _mm256_set1_ps(-0.0);
    let r = _mm256_round_ps(t, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    let up =
        _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_sub_ps(t, r)), _mm256_set1_ps(0.5), _CMP_GE_OQ);
    let step = _mm256_or_ps(_mm256_and_ps(t, sign), _mm256_set1_ps(1.0));
    let r = _mm256_add_ps(r, _mm256_and_ps(up, step));
    _mm256_cvtps_epi32(_mm256_min_ps(
        _mm256_max_ps(r, _mm256_set1_ps(-128.0)),
        _mm256_set1_ps(127.0),
    ))
}

/// Four vectors of i32 lanes (in the i8 range) as 32 bytes in order.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn pack_i8(v: [__m256i; 4]) -> __m256i {
    let p01 = _mm256_packs_epi32(v[0], v[1]);
    let p23 = _mm256_packs_epi32(v[2], v[3]);
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23), order)
}

/// Quantizes `x` (whole blocks of 32) into 34-byte Q8_0 blocks at `y` with exactly the results of
/// candle's `BlockQ8_0::from_float`: `d = amax / 127` (stored as f16), each value `x · (1/d)`
/// rounded half away from zero.
///
/// # Safety
/// AVX2 and FMA must be present; `y` must hold `x.len() / 32` blocks.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn quantize_q8_0(x: &[f32], y: *mut u8) {
    let sign = _mm256_set1_ps(-0.0);
    for (i, xs) in x.chunks_exact(32).enumerate() {
        let yb = y.add(i * 34);
        let v: [__m256; 4] = std::array::from_fn(|c| _mm256_loadu_ps(xs.as_ptr().add(8 * c)));
        let m =
            v.iter().fold(_mm256_setzero_ps(), |m, v| _mm256_max_ps(m, _mm256_andnot_ps(sign, *v)));
        let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_movehdup_ps(m2)));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        std::ptr::write_unaligned(yb as *mut u16, f16::from_f32(d).to_bits());
        let vid = _mm256_set1_ps(id);
        let b = pack_i8(v.map(|v| round_to_i32(_mm256_mul_ps(v, vid))));
        _mm256_storeu_si256(yb.add(2) as *mut __m256i, b);
    }
}
