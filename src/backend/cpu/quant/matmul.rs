//! Quantized matrix products on the pool: activations quantized once per kind, weight rows in
//! tiles that stay in cache while a batch streams past, several matrices per dispatch.

use super::*;
use crate::pool::{split, Pool};

/// Side data per Q8_0 activation block: a 32-byte bias, a 4-byte f32 scale, a 4-byte i32 sum.
pub(super) const SIDE_BYTES: usize = 40;

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

/// Tokens from which row tiles are claimed one at a time rather than split evenly.
const CLAIM_MIN_TOKENS: usize = 16;

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
    assert!(ops.len() <= 3, "invariant: at most three products share an input");
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
    // at most three products share an input (Q/K/V); a fixed array keeps the token path free of
    // allocation
    let mut outs: [Option<(QWeight, SyncPtr, Acts)>; 3] = [None, None, None];
    for (slot, ((w, o), s)) in outs.iter_mut().zip(ops.iter_mut().zip(slot_of)) {
        assert!(o.len() >= n * w.rows, "invariant: output sized for the batch");
        let acts = Acts {
            q: scratch.acts[s].1.as_slice(),
            stride: act_row_bytes(w.ty, k),
            side: scratch.side[s].as_slice(),
        };
        *slot = Some((*w, SyncPtr(o.as_mut_ptr()), acts));
    }
    let job = |range: std::ops::Range<usize>| {
        let mut base = 0;
        for (w, out, acts) in outs.iter().flatten() {
            let lo = range.start.max(base);
            let hi = range.end.min(base + w.rows);
            if lo < hi {
                // SAFETY: this thread owns rows lo-base..hi-base of this output for every batch row.
                unsafe { rows_kernel(w, lo - base..hi - base, acts, n, out.get()) };
            }
            base += span(w);
        }
    };
    // A prompt batch makes every tile heavy enough to be claimed one at a time, which evens out
    // the threads; a decode step's few tokens make tiles too light for that (measured on 2
    // threads: 4 tokens 3.3 ms a forward split evenly vs 5.3 ms claimed), and even already.
    if n >= CLAIM_MIN_TOKENS {
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
