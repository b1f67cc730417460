//! AVX2 dot products of quantized weight rows against Q8_0 activations (Q4_0, Q5_0, Q8_0 with
//! precomputed side data), one row or several at a time; bit-identical to the scalar reference.

use crate::gguf::TensorType;
use std::arch::x86_64::*;

/// A Q4_0, Q5_0 or Q8_0 block's 32 values as bytes, in the form its product consumes: Q8_0's
/// signed; Q4_0's and Q5_0's offset to unsigned (value + 16), an offset that the activation
/// block's bias takes back (ref: ggml-cpu/arch/x86/quants.c bytes_from_nibbles_32,
/// bytes_from_bits_32).
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn block_bytes(ty: TensorType, xb: *const u8) -> __m256i {
    if ty == TensorType::Q8_0 {
        return _mm256_loadu_si256(xb.add(2) as *const __m256i);
    }
    // low nibbles are elements 0..16, high nibbles 16..32
    let at = if ty == TensorType::Q4_0 { 2 } else { 6 };
    let tmp = _mm_loadu_si128(xb.add(at) as *const __m128i);
    let bytes = _mm256_insertf128_si256(_mm256_castsi128_si256(tmp), _mm_srli_epi16(tmp, 4), 1);
    let nib = _mm256_and_si256(_mm256_set1_epi8(0x0F), bytes);
    if ty == TensorType::Q4_0 {
        // (nibble − 8) + 16
        return _mm256_add_epi8(nib, _mm256_set1_epi8(8));
    }
    // Q5_0 fifth bits: byte j is 0xFF when bit j of qh is set
    let qh = std::ptr::read_unaligned(xb.add(2) as *const u32);
    let shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    let bh = _mm256_shuffle_epi8(_mm256_set1_epi32(qh as i32), shuf);
    let bh = _mm256_cmpeq_epi8(
        _mm256_or_si256(bh, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe)),
        _mm256_set1_epi64x(-1),
    );
    // (nibble | bit << 4) − 16 + 16
    _mm256_or_si256(nib, _mm256_and_si256(bh, _mm256_set1_epi8(0x10)))
}

/// [`block_bytes`] with AVX512-BW: Q5_0's fifth bits become a byte mask in one `kmovd`, and
/// one masked blend sets bit 4 (the same bytes).
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl")]
#[inline]
unsafe fn block_bytes_bw(ty: TensorType, xb: *const u8) -> __m256i {
    if ty != TensorType::Q5_0 {
        return block_bytes(ty, xb);
    }
    let tmp = _mm_loadu_si128(xb.add(6) as *const __m128i);
    let bytes = _mm256_insertf128_si256(_mm256_castsi128_si256(tmp), _mm_srli_epi16(tmp, 4), 1);
    let nib = _mm256_and_si256(_mm256_set1_epi8(0x0F), bytes);
    let qh = std::ptr::read_unaligned(xb.add(2) as *const u32);
    _mm256_mask_blend_epi8(qh, nib, _mm256_or_si256(nib, _mm256_set1_epi8(0x10)))
}

/// Σ x·y over each group of four bytes of a block (eight i32 lanes), as f32. Q8_0 weights
/// (`SIGNED`) use the sign trick, since `maddubs` needs one unsigned operand (ref: ggml
/// mul_sum_i8_pairs_float); Q4_0/Q5_0 weights come unsigned (x + 16) and `bias` holds
/// −16·Σy per lane. Either way the lanes are the exact integer sums, with no 16-bit
/// saturation (|x|, |y| ≤ 127, and x + 16 ≤ 31).
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn block_dot<const SIGNED: bool>(
    qx: __m256i,
    yb: *const u8,
    bias: *const [i32; 8],
) -> __m256 {
    let qy = _mm256_loadu_si256(yb.add(2) as *const __m256i);
    let ones = _mm256_set1_epi16(1);
    let s = if SIGNED {
        let dot = _mm256_maddubs_epi16(_mm256_sign_epi8(qx, qx), _mm256_sign_epi8(qy, qx));
        _mm256_madd_epi16(ones, dot)
    } else {
        let b = _mm256_loadu_si256(bias as *const __m256i);
        _mm256_add_epi32(_mm256_madd_epi16(ones, _mm256_maddubs_epi16(qx, qy)), b)
    };
    _mm256_cvtepi32_ps(s)
}

/// [`block_dot`] with AVX512-VNNI: one `vpdpbusd` (accumulating onto the bias) instead of
/// `vpmaddubsw` + `vpmaddwd` (+ `vpaddd`); the same exact lanes, so results are bit-identical
/// to the AVX2 path.
#[target_feature(enable = "avx2,fma,avx512f,avx512vnni,avx512vl")]
#[inline]
unsafe fn block_dot_vnni<const SIGNED: bool>(
    qx: __m256i,
    yb: *const u8,
    bias: *const [i32; 8],
) -> __m256 {
    let qy = _mm256_loadu_si256(yb.add(2) as *const __m256i);
    let s = if SIGNED {
        let (ax, sy) = (_mm256_sign_epi8(qx, qx), _mm256_sign_epi8(qy, qx));
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy)
    } else {
        _mm256_dpbusd_epi32(_mm256_loadu_si256(bias as *const __m256i), qx, qy)
    };
    _mm256_cvtepi32_ps(s)
}

/// A block's f16 scale in all eight lanes (`vpbroadcastw` + `vcvtph2ps`, no scalar trip).
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn scale8(p: *const u8) -> __m256 {
    _mm256_cvtph_ps(_mm_set1_epi16(std::ptr::read_unaligned(p as *const i16)))
}

#[target_feature(enable = "avx2,fma")]
unsafe fn hsum(acc: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

/// The weight type of a kernel instance, from its const parameter.
const fn wtype(w: u8) -> TensorType {
    match w {
        0 => TensorType::Q4_0,
        1 => TensorType::Q5_0,
        _ => TensorType::Q8_0,
    }
}

/// The const parameter of a kernel instance for weight type `ty`.
fn wcode(ty: TensorType) -> u8 {
    match ty {
        TensorType::Q4_0 => 0,
        TensorType::Q5_0 => 1,
        _ => 2,
    }
}

/// Calls `$call` with the const `$w` set to `ty`'s kernel instance (see [`wcode`]).
macro_rules! per_wtype {
    ($ty:expr, $w:ident => $call:expr) => {
        match wcode($ty) {
            0 => {
                const $w: u8 = 0;
                $call
            }
            1 => {
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

/// The one- and four-token Q8_0-activation kernels, once per instruction set, each
/// monomorphized per weight type. Block i's product goes to accumulator i mod 2, so that two
/// FMA chains overlap, and the two are added at the end; both kernels sum in this order, so a
/// token's result does not depend on its place in a batch. An activation row comes with its
/// side data (see `q8_0_side`): each block's scale as f32 (`yd`) and bias (`yb`).
macro_rules! q8_0_kernels {
    (
        $single:ident,
        $rows:ident,
        $quad:ident,
        $one:ident,
        $feat:literal,
        $bytes:ident,
        $bdot:ident
    ) => {
        /// Q4_0, Q5_0 or Q8_0 weights · Q8_0 activations, `nb` blocks of 32 (ref:
        /// ggml-cpu/arch/x86/quants.c ggml_vec_dot_q5_0_q8_0, AVX2 branch).
        #[target_feature(enable = $feat)]
        unsafe fn $one<const W: u8>(
            nb: usize,
            x: *const u8,
            y: *const u8,
            yd: *const f32,
            yb: *const [i32; 8],
        ) -> f32 {
            let ty = wtype(W);
            let wb = ty.block().1;
            let prod = |i: usize| {
                let xb = x.add(i * wb);
                let qx = $bytes(ty, xb);
                let dx = scale8(xb);
                let d = _mm256_mul_ps(dx, _mm256_broadcast_ss(&*yd.add(i)));
                let p = if W == 2 {
                    $bdot::<true>(qx, y.add(i * 34), yb)
                } else {
                    $bdot::<false>(qx, y.add(i * 34), yb.add(i))
                };
                (d, p)
            };
            let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let mut i = 0;
            while i + 2 <= nb {
                let (d0, p0) = prod(i);
                let (d1, p1) = prod(i + 1);
                acc0 = _mm256_fmadd_ps(d0, p0, acc0);
                acc1 = _mm256_fmadd_ps(d1, p1, acc1);
                i += 2;
            }
            if i < nb {
                let (d0, p0) = prod(i);
                acc0 = _mm256_fmadd_ps(d0, p0, acc0);
            }
            hsum(_mm256_add_ps(acc0, acc1))
        }

        /// One weight row of type `ty` against one activation row.
        ///
        /// # Safety
        /// The kernel's instruction set must be available; `x` must point at `nb` weight
        /// blocks of type `ty`, `y` at `nb` 34-byte Q8_0 blocks, and `yd`, `yb` at their
        /// `nb` scales and biases.
        pub unsafe fn $single(
            ty: TensorType,
            nb: usize,
            x: *const u8,
            y: *const u8,
            yd: *const f32,
            yb: *const [i32; 8],
        ) -> f32 {
            per_wtype!(ty, W => $one::<W>(nb, x, y, yd, yb))
        }

        /// `rows` consecutive weight rows (`rb` bytes apart) against one activation row,
        /// into `out[..rows]`: one call per range rather than per row.
        ///
        /// # Safety
        /// As the one-row kernel's for every row; `out` must hold `rows` floats.
        #[allow(clippy::too_many_arguments)]
        pub unsafe fn $rows(
            ty: TensorType,
            nb: usize,
            x: *const u8,
            rb: usize,
            rows: usize,
            y: *const u8,
            yd: *const f32,
            yb: *const [i32; 8],
            out: *mut f32,
        ) {
            #[target_feature(enable = $feat)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn go<const W: u8>(
                nb: usize,
                x: *const u8,
                rb: usize,
                rows: usize,
                y: *const u8,
                yd: *const f32,
                yb: *const [i32; 8],
                out: *mut f32,
            ) {
                for r in 0..rows {
                    *out.add(r) = $one::<W>(nb, x.add(r * rb), y, yd, yb);
                }
            }
            per_wtype!(ty, W => go::<W>(nb, x, rb, rows, y, yd, yb, out))
        }

        /// One Q4_0, Q5_0 or Q8_0 weight row against four Q8_0 activation rows: each weight
        /// block is unpacked once and reused.
        ///
        /// # Safety
        /// As the one-token kernel's, for each of the four activation rows.
        pub unsafe fn $quad(
            ty: TensorType,
            nb: usize,
            x: *const u8,
            y: [*const u8; 4],
            yd: [*const f32; 4],
            yb: [*const [i32; 8]; 4],
        ) -> [f32; 4] {
            #[target_feature(enable = $feat)]
            unsafe fn inner<const W: u8>(
                nb: usize,
                x: *const u8,
                y: [*const u8; 4],
                yd: [*const f32; 4],
                yb: [*const [i32; 8]; 4],
            ) -> [f32; 4] {
                let ty = wtype(W);
                let wb = ty.block().1;
                let mut acc0 = [_mm256_setzero_ps(); 4];
                let mut acc1 = [_mm256_setzero_ps(); 4];
                let step = |i: usize, acc: &mut [__m256; 4]| {
                    let xb = x.add(i * wb);
                    let (dx, qx) = (scale8(xb), $bytes(ty, xb));
                    for j in 0..4 {
                        // the same f32 product as the one-token kernel's, lane-wise
                        let d = _mm256_mul_ps(dx, _mm256_broadcast_ss(&*yd[j].add(i)));
                        let p = if W == 2 {
                            $bdot::<true>(qx, y[j].add(i * 34), yb[j])
                        } else {
                            $bdot::<false>(qx, y[j].add(i * 34), yb[j].add(i))
                        };
                        acc[j] = _mm256_fmadd_ps(d, p, acc[j]);
                    }
                };
                let mut i = 0;
                while i + 2 <= nb {
                    step(i, &mut acc0);
                    step(i + 1, &mut acc1);
                    i += 2;
                }
                if i < nb {
                    step(i, &mut acc0);
                }
                let h = |j: usize| hsum(_mm256_add_ps(acc0[j], acc1[j]));
                [h(0), h(1), h(2), h(3)]
            }
            per_wtype!(ty, W => inner::<W>(nb, x, y, yd, yb))
        }
    };
}
q8_0_kernels!(dot_q8_0, rows_q8_0, dot4_q8_0, one_avx2, "avx2,fma", block_bytes, block_dot);
q8_0_kernels!(
    dot_q8_0_vnni,
    rows_q8_0_vnni,
    dot4_q8_0_vnni,
    one_vnni,
    "avx2,fma,avx512f,avx512bw,avx512vnni,avx512vl",
    block_bytes_bw,
    block_dot_vnni
);

/// Two weight rows against four Q8_0 activation rows with AVX512-VNNI (whose 32 vector
/// registers hold the sixteen accumulators): each activation block is loaded once for both
/// rows. Per (row, token) the same operations in the same order as [`dot_q8_0_vnni`].
///
/// # Safety
/// As [`dot4_q8_0_vnni`]'s, for both rows `x`.
pub unsafe fn dot8_q8_0_vnni(
    ty: TensorType,
    nb: usize,
    x: [*const u8; 2],
    y: [*const u8; 4],
    yd: [*const f32; 4],
    yb: [*const [i32; 8]; 4],
) -> [[f32; 4]; 2] {
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vnni,avx512vl")]
    unsafe fn inner<const W: u8>(
        nb: usize,
        x: [*const u8; 2],
        y: [*const u8; 4],
        yd: [*const f32; 4],
        yb: [*const [i32; 8]; 4],
    ) -> [[f32; 4]; 2] {
        let ty = wtype(W);
        let wb = ty.block().1;
        let mut acc0 = [[_mm256_setzero_ps(); 4]; 2];
        let mut acc1 = [[_mm256_setzero_ps(); 4]; 2];
        let step = |i: usize, acc: &mut [[__m256; 4]; 2]| {
            let xb = [x[0].add(i * wb), x[1].add(i * wb)];
            let dx = [scale8(xb[0]), scale8(xb[1])];
            let qx = [block_bytes_bw(ty, xb[0]), block_bytes_bw(ty, xb[1])];
            for j in 0..4 {
                let dy = _mm256_broadcast_ss(&*yd[j].add(i));
                for r in 0..2 {
                    let d = _mm256_mul_ps(dx[r], dy);
                    let p = if W == 2 {
                        block_dot_vnni::<true>(qx[r], y[j].add(i * 34), yb[j])
                    } else {
                        block_dot_vnni::<false>(qx[r], y[j].add(i * 34), yb[j].add(i))
                    };
                    acc[r][j] = _mm256_fmadd_ps(d, p, acc[r][j]);
                }
            }
        };
        let mut i = 0;
        while i + 2 <= nb {
            step(i, &mut acc0);
            step(i + 1, &mut acc1);
            i += 2;
        }
        if i < nb {
            step(i, &mut acc0);
        }
        std::array::from_fn(|r| {
            std::array::from_fn(|j| hsum(_mm256_add_ps(acc0[r][j], acc1[r][j])))
        })
    }
    per_wtype!(ty, W => inner::<W>(nb, x, y, yd, yb))
}
