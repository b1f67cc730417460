//! Attention's kernels: dot products of f32 queries with key rows (one or several chains summed
//! in a fixed order) and the weighted row sums of values, over any KV cache element type
//! ([`KvElem`]: f32, f16, q8_0), each value widened to f32 as it is loaded, so no conversion
//! pass runs per token and every type sums in the same order.

use super::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// How the KV cache stores keys and values (`--kv-type`; Ollama's OLLAMA_KV_CACHE_TYPE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KvType {
    F32,
    /// llama.cpp's and Ollama's default (ref: llama.cpp common.h cache_type_k = F16).
    #[default]
    F16,
    Q8_0,
}

impl KvType {
    pub fn parse(s: &str) -> Option<KvType> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Some(KvType::F32),
            "f16" => Some(KvType::F16),
            "q8_0" => Some(KvType::Q8_0),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KvType::F32 => "f32",
            KvType::F16 => "f16",
            KvType::Q8_0 => "q8_0",
        }
    }

    /// Bytes of `n` values (a multiple of 32 for q8_0: 34-byte blocks of 32).
    pub fn bytes(self, n: usize) -> usize {
        match self {
            KvType::F32 => 4 * n,
            KvType::F16 => 2 * n,
            KvType::Q8_0 => n / 32 * 34,
        }
    }
}

/// A q8_0 block as a KV cache row holds it (ggml's `block_q8_0`: f16 scale, 32 int8 values).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct KvQ8 {
    pub d: f16,
    pub qs: [i8; 32],
}

impl KvQ8 {
    /// Quantizes 32 values as ggml's `quantize_row_q8_0_ref`: `d = amax / 127`, each value
    /// `x · (1/d)` rounded half away from zero.
    pub fn quantize(x: &[f32], out: &mut [KvQ8]) {
        for (xs, b) in x.chunks_exact(32).zip(out) {
            let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            b.d = f16::from_f32(d);
            b.qs.iter_mut().zip(xs).for_each(|(q, &v)| *q = (v * id).round() as i8);
        }
    }
}

/// An element of a KV cache row that the kernels widen to f32 as they load it.
pub trait KvElem: Copy + Send + Sync + 'static {
    /// Values one element holds (32 for a q8_0 block).
    const PER: usize;
    const TYPE: KvType;
    /// Value `i` of `row`.
    fn get(row: &[Self], i: usize) -> f32;
    /// Values `c..c + 8` of `row` (`c` a multiple of 8).
    ///
    /// # Safety
    /// AVX2 and F16C (compiled in) and `c + 8` ≤ the row's values.
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    unsafe fn load8(row: &[Self], c: usize) -> __m256;
    /// Values `c..c + 16` of `row` (`c` a multiple of 16).
    ///
    /// # Safety
    /// AVX512F must be present and `c + 16` ≤ the row's values.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load16(row: &[Self], c: usize) -> __m512;
}

impl KvElem for f32 {
    const PER: usize = 1;
    const TYPE: KvType = KvType::F32;
    #[inline(always)]
    fn get(row: &[f32], i: usize) -> f32 {
        row[i]
    }
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    #[inline(always)]
    unsafe fn load8(row: &[f32], c: usize) -> __m256 {
        unsafe { _mm256_loadu_ps(row.as_ptr().add(c)) }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load16(row: &[f32], c: usize) -> __m512 {
        unsafe { _mm512_loadu_ps(row.as_ptr().add(c)) }
    }
}

impl KvElem for f16 {
    const PER: usize = 1;
    const TYPE: KvType = KvType::F16;
    #[inline(always)]
    fn get(row: &[f16], i: usize) -> f32 {
        row[i].to_f32()
    }
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    #[inline(always)]
    unsafe fn load8(row: &[f16], c: usize) -> __m256 {
        // F16C is part of x86-64-v3, the baseline these kernels compile for
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(row.as_ptr().add(c) as *const __m128i)) }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load16(row: &[f16], c: usize) -> __m512 {
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(row.as_ptr().add(c) as *const __m256i)) }
    }
}

impl KvElem for KvQ8 {
    const PER: usize = 32;
    const TYPE: KvType = KvType::Q8_0;
    #[inline(always)]
    fn get(row: &[KvQ8], i: usize) -> f32 {
        let b = &row[i / 32];
        b.d.to_f32() * b.qs[i % 32] as f32
    }
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    #[inline(always)]
    unsafe fn load8(row: &[KvQ8], c: usize) -> __m256 {
        let b = &row[c / 32];
        unsafe {
            let q = _mm_loadl_epi64(b.qs.as_ptr().add(c % 32) as *const __m128i);
            let v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
            _mm256_mul_ps(v, _mm256_set1_ps(b.d.to_f32()))
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load16(row: &[KvQ8], c: usize) -> __m512 {
        let b = &row[c / 32];
        unsafe {
            let q = _mm_loadu_si128(b.qs.as_ptr().add(c % 32) as *const __m128i);
            let v = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q));
            _mm512_mul_ps(v, _mm512_set1_ps(b.d.to_f32()))
        }
    }
}

/// f32 dot product (the compiler vectorises the 8-lane accumulation).
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    dot_f32_n([a], b)[0]
}

/// `N` f32 dot products against one shared vector `b`, each summed exactly as [`dot_f32`] sums
/// (eight lanes, then the lanes in order, then the tail): `b` is read once and the `N` chains
/// overlap, where one product alone waits on its adds.
#[inline]
pub fn dot_f32_n<const N: usize>(a: [&[f32]; N], b: &[f32]) -> [f32; N] {
    dot_f32_nm(a, [b])[0]
}

/// `dot_f32_n` against `M` vectors at once: `N`·`M` independent chains (attention scores two
/// keys at a time), each summed exactly as [`dot_f32`] sums.
#[inline]
pub fn dot_f32_nm<const N: usize, const M: usize>(a: [&[f32]; N], b: [&[f32]; M]) -> [[f32; N]; M] {
    dot_kv_nm(a, b)
}

/// [`dot_f32_nm`] against rows of any KV element type, each value widened to f32 as loaded
/// and then summed exactly as f32 rows are.
#[inline]
pub fn dot_kv_nm<E: KvElem, const N: usize, const M: usize>(
    a: [&[f32]; N],
    b: [&[E]; M],
) -> [[f32; N]; M] {
    let len = a[0].len();
    let mut acc = [[[0f32; 8]; N]; M];
    let whole = len / 8 * 8;
    assert!(
        a.iter().all(|a| a.len() == len) && b.iter().all(|b| b.len() * E::PER == len),
        "invariant: equal lengths"
    );
    // The auto-vectorizer shuffles interleaved 8-lane sums through the stack; spelled out, each
    // lane is the same multiply then add as dot_f32's.
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    // SAFETY: AVX2 is enabled at compile time; every load is inside a slice of length ≥ whole.
    unsafe {
        let mut v = [[_mm256_setzero_ps(); N]; M];
        for c in (0..whole).step_by(8) {
            let y: [__m256; M] = std::array::from_fn(|m| E::load8(b[m], c));
            for j in 0..N {
                let x = _mm256_loadu_ps(a[j].as_ptr().add(c));
                for m in 0..M {
                    v[m][j] = _mm256_add_ps(v[m][j], _mm256_mul_ps(x, y[m]));
                }
            }
        }
        for m in 0..M {
            for j in 0..N {
                _mm256_storeu_ps(acc[m][j].as_mut_ptr(), v[m][j]);
            }
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
    for (acc, b) in acc.iter_mut().zip(&b) {
        for c in (0..whole).step_by(8) {
            for (acc, a) in acc.iter_mut().zip(&a) {
                for i in 0..8 {
                    acc[i] += a[c + i] * E::get(b, c + i);
                }
            }
        }
    }
    std::array::from_fn(|m| {
        std::array::from_fn(|j| {
            let mut s: f32 = acc[m][j].iter().sum();
            for (i, x) in a[j].iter().enumerate().skip(whole) {
                s += x * E::get(b[m], i);
            }
            s
        })
    })
}

/// [`weighted_rows_n`] with AVX-512's 32 registers: 64 columns of every output (N ≤ 4) stay in
/// registers, so the rows are passed 4 times for a 256-wide head instead of 16; the same
/// multiply and add per element in the same order.
///
/// # Safety
/// AVX512F must be present; every row must hold `d` values, `out` N·`d`, `d` a multiple of 64.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn weighted_rows_512<'a, E: KvElem, const N: usize>(
    w: [&[f32]; N],
    row: &impl Fn(usize) -> &'a [E],
    out: &mut [f32],
    d: usize,
) {
    for c in (0..d).step_by(64) {
        let mut acc = [[_mm512_setzero_ps(); 4]; N];
        for i in 0..w[0].len() {
            let r = row(i);
            debug_assert!(r.len() * E::PER == d);
            let v: [__m512; 4] = std::array::from_fn(|h| E::load16(r, c + 16 * h));
            for (j, acc) in acc.iter_mut().enumerate() {
                let wj = _mm512_set1_ps(*w[j].get_unchecked(i));
                for (a, v) in acc.iter_mut().zip(&v) {
                    *a = _mm512_add_ps(*a, _mm512_mul_ps(wj, *v));
                }
            }
        }
        for (j, acc) in acc.iter().enumerate() {
            for (h, a) in acc.iter().enumerate() {
                _mm512_storeu_ps(out.as_mut_ptr().add(j * d + c + 16 * h), *a);
            }
        }
    }
}

/// `out[j] = Σ_i w[j][i] · row(i)` for `N` weight vectors over the same rows (attention's
/// weighted sum of values). Each element is summed from 0 in `i` order, one multiply then one
/// add per row, so any lane layout gives the same bits; 16 columns of every output stay in
/// registers while the rows pass, where a row at a time would load and store all `N` outputs.
#[inline]
pub fn weighted_rows_n<'a, const N: usize>(
    w: [&[f32]; N],
    row: impl Fn(usize) -> &'a [f32],
    out: &mut [f32],
) {
    weighted_kv_n(w, row, out)
}

/// [`weighted_rows_n`] over rows of any KV element type, each value widened to f32 as loaded.
#[inline]
pub fn weighted_kv_n<'a, E: KvElem, const N: usize>(
    w: [&[f32]; N],
    row: impl Fn(usize) -> &'a [E],
    out: &mut [f32],
) {
    let len = w[0].len();
    let d = out.len() / N;
    assert!(w.iter().all(|w| w.len() == len) && out.len() == N * d, "invariant: shapes");
    #[cfg(target_arch = "x86_64")]
    if d.is_multiple_of(64) && simd() == Simd::Vnni {
        // SAFETY: VNNI implies AVX512F; shapes were checked above.
        unsafe { weighted_rows_512(w, &row, out, d) };
        return;
    }
    let whole =
        if cfg!(all(target_arch = "x86_64", target_feature = "avx2")) { d / 16 * 16 } else { 0 };
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    for c in (0..whole).step_by(16) {
        // SAFETY: AVX2 is enabled at compile time; rows hold d ≥ c + 16 values and out N·d.
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); 2]; N];
            for i in 0..len {
                let r = row(i);
                debug_assert!(r.len() * E::PER == d);
                let v = [E::load8(r, c), E::load8(r, c + 8)];
                for j in 0..N {
                    let wj = _mm256_set1_ps(*w[j].get_unchecked(i));
                    for h in 0..2 {
                        acc[j][h] = _mm256_add_ps(acc[j][h], _mm256_mul_ps(wj, v[h]));
                    }
                }
            }
            for (j, acc) in acc.iter().enumerate() {
                for (h, a) in acc.iter().enumerate() {
                    _mm256_storeu_ps(out.as_mut_ptr().add(j * d + c + 8 * h), *a);
                }
            }
        }
    }
    if whole < d {
        for j in 0..N {
            out[j * d + whole..(j + 1) * d].fill(0.0);
        }
        for i in 0..len {
            let r = row(i);
            for (j, w) in w.iter().enumerate() {
                let wj = w[i];
                let o = &mut out[j * d..(j + 1) * d];
                (whole..d).for_each(|c| o[c] += wj * E::get(r, c));
            }
        }
    }
}
