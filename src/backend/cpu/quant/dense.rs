//! f32 kernels: dot products (one or several chains summed in a fixed order) and the weighted
//! row sums of attention.

use super::*;

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
    let len = b[0].len();
    let mut acc = [[[0f32; 8]; N]; M];
    let whole = len / 8 * 8;
    assert!(
        a.iter().all(|a| a.len() == len) && b.iter().all(|b| b.len() == len),
        "invariant: equal lengths"
    );
    // The auto-vectorizer shuffles interleaved 8-lane sums through the stack; spelled out, each
    // lane is the same multiply then add as dot_f32's.
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    // SAFETY: AVX2 is enabled at compile time; every load is inside a slice of length ≥ whole.
    unsafe {
        use std::arch::x86_64::*;
        let mut v = [[_mm256_setzero_ps(); N]; M];
        for c in (0..whole).step_by(8) {
            let y: [__m256; M] = std::array::from_fn(|m| _mm256_loadu_ps(b[m].as_ptr().add(c)));
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
        for (c, y) in b[..whole].chunks_exact(8).enumerate() {
            for (acc, a) in acc.iter_mut().zip(&a) {
                let x = &a[c * 8..c * 8 + 8];
                for i in 0..8 {
                    acc[i] += x[i] * y[i];
                }
            }
        }
    }
    std::array::from_fn(|m| {
        std::array::from_fn(|j| {
            let mut s: f32 = acc[m][j].iter().sum();
            for (x, y) in a[j][whole..].iter().zip(&b[m][whole..]) {
                s += x * y;
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
unsafe fn weighted_rows_512<'a, const N: usize>(
    w: [&[f32]; N],
    row: &impl Fn(usize) -> &'a [f32],
    out: &mut [f32],
    d: usize,
) {
    use std::arch::x86_64::*;
    for c in (0..d).step_by(64) {
        let mut acc = [[_mm512_setzero_ps(); 4]; N];
        for i in 0..w[0].len() {
            let r = row(i);
            debug_assert!(r.len() == d);
            let v: [__m512; 4] =
                std::array::from_fn(|h| _mm512_loadu_ps(r.as_ptr().add(c + 16 * h)));
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
            use std::arch::x86_64::*;
            let mut acc = [[_mm256_setzero_ps(); 2]; N];
            for i in 0..len {
                let r = row(i);
                debug_assert!(r.len() == d);
                let v =
                    [_mm256_loadu_ps(r.as_ptr().add(c)), _mm256_loadu_ps(r.as_ptr().add(c + 8))];
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
            let r = &row(i)[whole..d];
            for (j, w) in w.iter().enumerate() {
                let wj = w[i];
                let o = &mut out[j * d + whole..(j + 1) * d];
                o.iter_mut().zip(r).for_each(|(o, v)| *o += wj * v);
            }
        }
    }
}
