//! Quantized weights on the CPU: dequantization, activation quantization and matrix products.
//!
//! Block formats and their reference arithmetic come from candle's `k_quants` (bit-identical to
//! ggml's). chimera adds what candle lacks for gemma3's Q4_K_M mix: an AVX2 Q5_0·Q8_0 dot product
//! (candle's is scalar, and most of this model's non-embedding weights are Q5_0), batched products
//! that keep a weight row in L1 across every token of a prompt, and one pool dispatch for several
//! matrices that read the same input (Q/K/V, gate/up).

use crate::gguf::TensorType;
use crate::pool::{split, Pool};
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

/// Side data per Q8_0 activation block: a 32-byte bias, a 4-byte f32 scale, a 4-byte i32 sum.
const SIDE_BYTES: usize = 40;

/// Side data that the Q4_0/Q5_0/Q8_0 kernels read beside `n` rows of `nb` Q8_0 activation
/// blocks (`acts`, 34 bytes each), written into `side`: first every block's bias, −16 × the sum
/// of each group of four values (eight i32), which takes back the +16 offset of unsigned Q4_0 and
/// Q5_0 weight bytes; then every block's scale as f32; then every block's sum (for [`x8`]).
pub(crate) fn q8_0_side(
    acts: &[u8],
    rows: std::ops::Range<usize>,
    n: usize,
    nb: usize,
    side: *mut u8,
) {
    for b in rows {
        for i in b * nb..(b + 1) * nb {
            let blk = &acts[i * 34..(i + 1) * 34];
            let mut bias = [0i32; 8];
            for (l, g) in blk[2..].chunks_exact(4).enumerate() {
                bias[l] = -16 * g.iter().map(|&q| q as i8 as i32).sum::<i32>();
            }
            let d = half::f16::from_bits(u16::from_le_bytes([blk[0], blk[1]])).to_f32();
            let sum = blk[2..].iter().map(|&q| q as i8 as i32).sum::<i32>();
            // SAFETY (callers): `side` holds n·nb biases, then n·nb scales, then n·nb sums; rows
            // are disjoint between threads.
            unsafe {
                std::ptr::write_unaligned((side as *mut [i32; 8]).add(i), bias);
                std::ptr::write_unaligned((side.add(n * nb * 32) as *mut f32).add(i), d);
                std::ptr::write_unaligned((side.add(n * nb * 36) as *mut i32).add(i), sum);
            }
        }
    }
}

struct SyncPtr(*mut f32);
// SAFETY: threads write disjoint row ranges (see `matmul_many`).
unsafe impl Sync for SyncPtr {}
impl SyncPtr {
    fn get(&self) -> *mut f32 {
        self.0
    }
}

/// Rows of weights the per-row kernels process together, so that they stay in L1 while a batch
/// streams past.
const ROW_TILE: usize = 16;

/// Rows of weights a thread takes at a time (a multiple of `ROW_TILE` and of the x8 group): the
/// row-interleaved kernels pass a batch's tokens over all of them four at a time, so the tile's
/// records stay in L2 and each token's activations are read once per tile (1 thread: ~5 % less
/// prefill time than 16 rows).
const CLAIM_ROWS: usize = 64;

/// For each `(w, out)`: `out[b * w.rows + r] = dot(w.row(r), x[b])` for every row `b` of `x`
/// (`n` rows of `k` values). All products share one quantization of `x` per activation kind and
/// one pool dispatch.
pub fn matmul_many(
    pool: &Pool,
    scratch: &mut MatmulScratch,
    x: &[f32],
    n: usize,
    k: usize,
    ops: &mut [(QWeight, &mut [f32])],
) {
    debug_assert!(x.len() >= n * k);
    // Quantize the input once per distinct activation kind.
    let mut slot_of = [usize::MAX; 3];
    let mut used = 0;
    for (i, (w, _)) in ops.iter().enumerate() {
        assert_eq!(w.cols, k, "invariant: weight and input widths agree");
        let kind = act_kind(w.ty);
        let slot = match scratch.acts[..used].iter().position(|(kk, _)| *kk == kind) {
            Some(s) => s,
            None => {
                let s = used;
                used += 1;
                scratch.acts[s].0 = kind;
                let side = &mut scratch.side[s];
                quantize_acts(pool, w.ty, x, n, k, &mut scratch.acts[s].1, side);
                s
            }
        };
        slot_of[i] = slot;
    }
    // Each product's rows start at a multiple of CLAIM_ROWS in the shared row space, so that every
    // range handed out covers whole groups of a repacked weight.
    let span = |w: &QWeight| w.rows.next_multiple_of(CLAIM_ROWS);
    let total_rows: usize = ops.iter().map(|(w, _)| span(w)).sum();
    let outs: Vec<(QWeight, SyncPtr, Acts)> = ops
        .iter_mut()
        .zip(slot_of)
        .map(|((w, o), s)| {
            assert!(o.len() >= n * w.rows, "invariant: output sized for the batch");
            let acts = Acts {
                q: scratch.acts[s].1.as_slice(),
                stride: act_row_bytes(w.ty, k),
                side: scratch.side[s].as_slice(),
            };
            (*w, SyncPtr(o.as_mut_ptr()), acts)
        })
        .collect();
    let job = |range: std::ops::Range<usize>| {
        let mut base = 0;
        for (w, out, acts) in &outs {
            let lo = range.start.max(base);
            let hi = range.end.min(base + w.rows);
            if lo < hi {
                // SAFETY: this thread owns rows lo-base..hi-base of this output for every batch row.
                unsafe { rows_kernel(w, lo - base..hi - base, acts, n, out.get()) };
            }
            base += span(w);
        }
    };
    // A batch makes every tile heavy enough to be claimed one at a time, which evens out the
    // threads; one token's tiles are too light for that, and even already.
    if n >= 4 {
        pool.run_chunks(total_rows, CLAIM_ROWS, &job);
    } else {
        pool.run(&|t, nt| job(split(total_rows, t, nt, CLAIM_ROWS)));
    }
}

/// Single-matrix convenience form of [`matmul_many`].
pub fn matmul(
    pool: &Pool,
    scratch: &mut MatmulScratch,
    x: &[f32],
    n: usize,
    w: QWeight,
    out: &mut [f32],
) {
    matmul_many(pool, scratch, x, n, w.cols, &mut [(w, out)]);
}

/// Quantized activation rows as the kernels read them.
struct Acts<'a> {
    /// `n` rows of activation blocks, `stride` bytes each.
    q: &'a [u64],
    stride: usize,
    /// For Q8_0 activations, their side data (see [`q8_0_side`]).
    side: &'a [u64],
}

fn quantize_acts(
    pool: &Pool,
    ty: TensorType,
    x: &[f32],
    n: usize,
    k: usize,
    buf: &mut [u64],
    side: &mut [u64],
) {
    let with_side = act_kind(ty) == act_kind(TensorType::Q8_0);
    let q8k = act_kind(ty) == act_kind(TensorType::Q4K);
    assert!(!with_side || side.len() * 8 >= n * k / 32 * SIDE_BYTES, "invariant: side sized");
    let side = side.as_mut_ptr() as usize;
    with_block!(ty, T => {
        type A = <T as GgmlType>::VecDotType;
        let per_row = k / A::BLCK_SIZE;
        let acts = blocks_mut::<A>(buf, n * per_row);
        let ptr = acts.as_mut_ptr() as usize;
        let job = |rows: std::ops::Range<usize>| {
            for b in rows.clone() {
                // SAFETY: each caller writes the disjoint block range of its own batch rows.
                let dst = unsafe { std::slice::from_raw_parts_mut((ptr as *mut A).add(b * per_row), per_row) };
                #[cfg(target_arch = "x86_64")]
                if (q8k || with_side) && simd() != Simd::Scalar {
                    let (xb, y) = (&x[b * k..(b + 1) * k], dst.as_mut_ptr() as *mut u8);
                    // SAFETY: AVX2 was checked; dst is per_row Q8_K or Q8_0 blocks.
                    unsafe {
                        if q8k {
                            kquants::quantize_q8k(xb, y)
                        } else {
                            kquants::quantize_q8_0(xb, y)
                        }
                    };
                    continue;
                }
                A::from_float(&x[b * k..(b + 1) * k], dst);
            }
            if with_side {
                // SAFETY: the blocks of these rows were just written; Q8_0 blocks are 34 bytes.
                let q = unsafe { std::slice::from_raw_parts(ptr as *const u8, n * per_row * 34) };
                q8_0_side(q, rows, n, per_row, side as *mut u8);
            }
        };
        if n == 1 {
            job(0..1);
        } else {
            pool.run(&|t, nt| job(split(n, t, nt, 1)));
        }
    })
}

/// # Safety
/// `out` must hold `n * w.rows` floats and no other thread may write `rows` of it.
unsafe fn rows_kernel(
    w: &QWeight,
    rows: std::ops::Range<usize>,
    acts: &Acts,
    n: usize,
    out: *mut f32,
) {
    let rb = w.row_bytes();
    let act_bytes = std::slice::from_raw_parts(acts.q.as_ptr() as *const u8, acts.q.len() * 8);
    let stride = acts.stride;
    // side data of activation row b (only read for Q8_0 activations)
    let nb = w.cols / 32;
    let side = acts.side.as_ptr() as *const u8;
    let bias = |b: usize| (side as *const [i32; 8]).wrapping_add(b * nb);
    let scales = |b: usize| (side.wrapping_add(n * nb * 32) as *const f32).wrapping_add(b * nb);
    let sums = |b: usize| (side.wrapping_add(n * nb * 36) as *const i32).wrapping_add(b * nb);
    if let Some(x8) = w.x8 {
        assert!(
            rows.start.is_multiple_of(x8::GROUP) && rows.end.is_multiple_of(x8::GROUP),
            "invariant: products hand out whole groups of rows"
        );
        let groups = rows.start / x8::GROUP..rows.end / x8::GROUP;
        #[cfg(target_arch = "x86_64")]
        if simd() != Simd::Scalar {
            let kquant = matches!(w.ty, TensorType::Q4K | TensorType::Q6K);
            let nb = w.cols / w.ty.block().0;
            let a = |b: usize| {
                let y = act_bytes[b * stride..].as_ptr();
                if kquant {
                    (y, std::ptr::null(), std::ptr::null())
                } else {
                    (y, scales(b), sums(b))
                }
            };
            let vnni = simd() == Simd::Vnni;
            // SAFETY: the instruction set was checked; x8 holds rows/8 groups of nb records;
            // each activation row has nb blocks (Q8_0 ones with side data); out holds n·rows.
            x8::simd::groups(w.ty, vnni, nb, x8.as_ptr(), groups, n, &a, out, w.rows);
            return;
        }
        if matches!(w.ty, TensorType::Q4K | TensorType::Q6K) {
            let nb = w.cols / 256;
            let rec = x8k::record_bytes(w.ty) * nb;
            for g in groups {
                for b in 0..n {
                    let a = &act_bytes[b * stride..(b + 1) * stride];
                    let r = x8k::group_scalar(w.ty, nb, &x8[g * rec..(g + 1) * rec], a);
                    for (k, v) in r.iter().enumerate() {
                        *out.add(b * w.rows + g * x8::GROUP + k) = *v;
                    }
                }
            }
            return;
        }
        let rec = x8::record_bytes(w.ty) * nb;
        for g in groups {
            for b in 0..n {
                let y = &act_bytes[b * stride..(b + 1) * stride];
                let yd = std::slice::from_raw_parts(scales(b), nb);
                let ys = std::slice::from_raw_parts(sums(b), nb);
                let r = x8::group_scalar(w.ty, nb, &x8[g * rec..(g + 1) * rec], y, yd, ys);
                for (k, v) in r.iter().enumerate() {
                    *out.add(b * w.rows + g * x8::GROUP + k) = *v;
                }
            }
        }
        return;
    }
    // Q4_0, Q5_0, Q8_0, Q4_K and Q6_K weights against four tokens at once: each block is
    // unpacked once. The K-quant ones copy candle's one-token AVX2 kernels, which candle
    // compiles in only when AVX2 is a compile-time target feature.
    #[cfg(target_arch = "x86_64")]
    let quad = n >= 4
        && match w.ty {
            TensorType::Q4_0 | TensorType::Q5_0 | TensorType::Q8_0 => simd() != Simd::Scalar,
            TensorType::Q4K | TensorType::Q6K => cfg!(target_feature = "avx2"),
            _ => false,
        };
    #[cfg(not(target_arch = "x86_64"))]
    let quad = false;
    // Tiles keep weight rows in L1 while the batch's tokens pass; one token reuses nothing.
    let tile = if n == 1 { rows.len().max(1) } else { ROW_TILE };
    let mut r0 = rows.start;
    while r0 < rows.end {
        let r1 = (r0 + tile).min(rows.end);
        let mut b = 0;
        while quad && b + 4 <= n {
            let a: [*const u8; 4] = std::array::from_fn(|j| act_bytes[(b + j) * stride..].as_ptr());
            let yd: [*const f32; 4] = std::array::from_fn(|j| scales(b + j));
            let yb: [*const [i32; 8]; 4] = std::array::from_fn(|j| bias(b + j));
            let mut r = r0;
            #[cfg(target_arch = "x86_64")]
            if simd() == Simd::Vnni
                && matches!(w.ty, TensorType::Q4_0 | TensorType::Q5_0 | TensorType::Q8_0)
            {
                while r + 2 <= r1 {
                    let wr = [w.data[r * rb..].as_ptr(), w.data[(r + 1) * rb..].as_ptr()];
                    // SAFETY: VNNI checked; both rows hold nb blocks, each activation row nb
                    // Q8_0 blocks with their side data.
                    let d = avx2::dot8_q8_0_vnni(w.ty, nb, wr, a, yd, yb);
                    for (rr, d) in d.iter().enumerate() {
                        for (j, v) in d.iter().enumerate() {
                            *out.add((b + j) * w.rows + r + rr) = *v;
                        }
                    }
                    r += 2;
                }
            }
            for r in r..r1 {
                let wr = w.data[r * rb..(r + 1) * rb].as_ptr();
                #[cfg(target_arch = "x86_64")]
                {
                    // SAFETY: the instruction set was checked; the row holds nb blocks, each
                    // activation row nb Q8_0 blocks with their side data.
                    let d = match w.ty {
                        TensorType::Q4K if simd() == Simd::Vnni => {
                            kquants::dot4_q4k_q8k_vnni(w.cols / 256, wr, a)
                        }
                        TensorType::Q6K if simd() == Simd::Vnni => {
                            kquants::dot4_q6k_q8k_vnni(w.cols / 256, wr, a)
                        }
                        TensorType::Q4K => kquants::dot4_q4k_q8k(w.cols / 256, wr, a),
                        TensorType::Q6K => kquants::dot4_q6k_q8k(w.cols / 256, wr, a),
                        _ if simd() == Simd::Vnni => avx2::dot4_q8_0_vnni(w.ty, nb, wr, a, yd, yb),
                        _ => avx2::dot4_q8_0(w.ty, nb, wr, a, yd, yb),
                    };
                    for (j, v) in d.iter().enumerate() {
                        *out.add((b + j) * w.rows + r) = *v;
                    }
                }
            }
            b += 4;
        }
        for b in b..n {
            let a = &act_bytes[b * stride..(b + 1) * stride];
            #[cfg(target_arch = "x86_64")]
            if matches!(w.ty, TensorType::Q4_0 | TensorType::Q5_0 | TensorType::Q8_0) {
                let (x, y, o) = (w.data[r0 * rb..].as_ptr(), a.as_ptr(), out.add(b * w.rows + r0));
                let (yd, yb, len) = (scales(b), bias(b), r1 - r0);
                // SAFETY: the instruction set was checked; rows r0..r1 hold nb blocks each, the
                // activation row nb Q8_0 blocks with their side data; o has r1 − r0 slots.
                match simd() {
                    Simd::Vnni => {
                        avx2::rows_q8_0_vnni(w.ty, nb, x, rb, len, y, yd, yb, o);
                        continue;
                    }
                    Simd::Avx2 => {
                        avx2::rows_q8_0(w.ty, nb, x, rb, len, y, yd, yb, o);
                        continue;
                    }
                    Simd::Scalar => {}
                }
            }
            for r in r0..r1 {
                let wr = &w.data[r * rb..(r + 1) * rb];
                *out.add(b * w.rows + r) = dot(w.ty, w.cols, wr, a, scales(b), bias(b));
            }
        }
        r0 = r1;
    }
}

/// One weight row against one quantized activation row (`yd`, `yb`: its Q8_0 side data, read
/// only by our Q4_0/Q5_0/Q8_0 kernels).
#[inline]
fn dot(ty: TensorType, k: usize, w: &[u8], a: &[u8], yd: *const f32, yb: *const [i32; 8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if matches!(ty, TensorType::Q4_0 | TensorType::Q5_0 | TensorType::Q8_0) {
        let (nb, x, y) = (k / 32, w.as_ptr(), a.as_ptr());
        // SAFETY: the instruction set was checked; both slices hold k/32 blocks and the side
        // data k/32 entries.
        match simd() {
            Simd::Vnni => return unsafe { avx2::dot_q8_0_vnni(ty, nb, x, y, yd, yb) },
            Simd::Avx2 => return unsafe { avx2::dot_q8_0(ty, nb, x, y, yd, yb) },
            Simd::Scalar => {}
        }
    }
    let _ = (yd, yb);
    with_block!(ty, T => T::vec_dot(k, blocks::<T>(w), blocks::<<T as GgmlType>::VecDotType>(a)))
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
mod kquants;
pub mod x8;
pub mod x8k;

#[cfg(target_arch = "x86_64")]
mod avx2 {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

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
