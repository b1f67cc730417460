//! The CPU backend's KV cache, allocated once at load from `num_ctx`, one slot per sequence for
//! each block placed on the CPU: global layers linear, sliding layers a ring.
//!
//! A sliding layer keeps `window + n_batch` cells (capped at num_ctx), as llama.cpp's iSWA cache
//! does (`n_swa + n_ubatch`): a prompt batch of up to n_batch tokens is written before it is
//! attended, and its first query still needs the `window - 1` keys before the batch.

use super::quant::{KvElem, KvQ8, KvType};
use crate::config::Gemma3Config;
use half::f16;

/// K and V rows of one layer and one sequence, `cells × kv_dim` values each in the cache's
/// [`KvType`]. Every access goes through the pointers made when the storage was allocated (it is
/// never moved or resized), so threads may write distinct cells while nothing reads them.
pub struct LayerCache {
    k: *mut u8,
    v: *mut u8,
    pub cells: usize,
    kv_dim: usize,
    pub ty: KvType,
}

// SAFETY: the pointers address storage owned by the KvCache for its whole life; the backend
// writes cells from one task each and reads only after the writes have joined.
unsafe impl Send for LayerCache {}
unsafe impl Sync for LayerCache {}

impl LayerCache {
    /// All keys and all values (cells × kv_dim values each) as `E`, the cache's element type.
    pub fn rows<E: KvElem>(&self) -> (&[E], &[E]) {
        assert_eq!(E::TYPE, self.ty, "invariant: the cache's element type");
        let n = self.cells * self.kv_dim / E::PER;
        // SAFETY: the storage holds cells × kv_dim values of the cache's type, which E is
        // (checked above); no write is in flight while a reader holds these.
        unsafe {
            (
                std::slice::from_raw_parts(self.k as *const E, n),
                std::slice::from_raw_parts(self.v as *const E, n),
            )
        }
    }

    fn row_bytes(&self) -> usize {
        self.ty.bytes(self.kv_dim)
    }

    /// Copies every cell of `from` (same layer, another sequence) into this one.
    ///
    /// # Safety
    /// Nothing may read or write either cache meanwhile.
    pub unsafe fn copy_from(&self, from: &LayerCache) {
        let n = self.cells * self.row_bytes();
        debug_assert_eq!(n, from.cells * from.row_bytes());
        unsafe {
            std::ptr::copy_nonoverlapping(from.k, self.k, n);
            std::ptr::copy_nonoverlapping(from.v, self.v, n);
        }
    }

    /// Writes the key and value rows of `cell`, converted to the cache's type.
    ///
    /// # Safety
    /// Nothing else may read or write this cell meanwhile.
    pub unsafe fn store(&self, cell: usize, k: &[f32], v: &[f32]) {
        let d = self.kv_dim;
        debug_assert!(k.len() == d && v.len() == d);
        let at = cell * self.row_bytes();
        for (dst, src) in [(self.k, k), (self.v, v)] {
            // SAFETY: the row is inside the storage and this call's alone; the storage is
            // aligned for every element type.
            unsafe {
                let p = dst.add(at);
                match self.ty {
                    KvType::F32 => {
                        std::slice::from_raw_parts_mut(p as *mut f32, d).copy_from_slice(src)
                    }
                    KvType::F16 => std::slice::from_raw_parts_mut(p as *mut f16, d)
                        .iter_mut()
                        .zip(src)
                        .for_each(|(o, x)| *o = f16::from_f32(*x)),
                    KvType::Q8_0 => {
                        KvQ8::quantize(src, std::slice::from_raw_parts_mut(p as *mut KvQ8, d / 32))
                    }
                }
            }
        }
    }
}

/// Every placed layer's cache, `n_seq` slots each.
pub struct KvCache {
    /// `layers[l][seq]`; empty for layers placed elsewhere.
    layers: Vec<Vec<LayerCache>>,
    /// One layer's K and V of a whole batch, a cell per row: the keys a forward of whole
    /// sequences attends within (embeddings), which no later forward reads, so every layer
    /// writes it in turn and no slot is touched.
    within: LayerCache,
    /// The storage the caches point into (K then V of each), never touched after allocation;
    /// u32 words, so that it is aligned for f32, f16 and q8_0 rows alike.
    _storage: Vec<Vec<u32>>,
    pub kv_dim: usize,
    pub num_ctx: usize,
    pub ty: KvType,
    /// The sliding window, where the model has one.
    window: Option<usize>,
}

impl KvCache {
    /// Allocates `n_seq` slots of `num_ctx` positions for each layer in `placed`, for prompt
    /// batches of up to `n_batch`; `swa_full` gives sliding layers every position too (llama.cpp's
    /// `--swa-full`), so that any cached prefix can be reused.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: &Gemma3Config,
        placed: &[bool],
        num_ctx: usize,
        n_batch: usize,
        swa_full: bool,
        n_seq: usize,
        ty: KvType,
    ) -> KvCache {
        let kv_dim = cfg.kv_dim();
        let mut storage = vec![];
        let mut layers = vec![];
        for (l, &here) in placed.iter().enumerate().take(cfg.n_layer) {
            let mut slots = vec![];
            if here {
                let cells = Self::cells_for(cfg, l, num_ctx, n_batch, swa_full);
                let words = (cells * ty.bytes(kv_dim)).div_ceil(4);
                for _ in 0..n_seq {
                    let (mut k, mut v) = (vec![0u32; words], vec![0u32; words]);
                    let (kp, vp) = (k.as_mut_ptr() as *mut u8, v.as_mut_ptr() as *mut u8);
                    slots.push(LayerCache { k: kp, v: vp, cells, kv_dim, ty });
                    storage.push(k);
                    storage.push(v);
                }
            }
            layers.push(slots);
        }
        let words = (n_batch * ty.bytes(kv_dim)).div_ceil(4);
        let (mut k, mut v) = (vec![0u32; words], vec![0u32; words]);
        let (kp, vp) = (k.as_mut_ptr() as *mut u8, v.as_mut_ptr() as *mut u8);
        let within = LayerCache { k: kp, v: vp, cells: n_batch, kv_dim, ty };
        storage.push(k);
        storage.push(v);
        let window = cfg.sliding_window;
        KvCache { layers, within, _storage: storage, kv_dim, num_ctx, ty, window }
    }

    /// Cells layer `l` needs (pure, so `show` can report sizes without allocating).
    pub fn cells_for(
        cfg: &Gemma3Config,
        l: usize,
        num_ctx: usize,
        n_batch: usize,
        swa_full: bool,
    ) -> usize {
        match cfg.sliding_window {
            Some(w) if !cfg.is_global(l) && !swa_full => (w + n_batch).min(num_ctx),
            _ => num_ctx,
        }
    }

    /// Bytes one sequence's cache takes for layer `l` (K and V).
    pub fn layer_bytes(
        cfg: &Gemma3Config,
        l: usize,
        num_ctx: usize,
        n_batch: usize,
        swa_full: bool,
        ty: KvType,
    ) -> u64 {
        let cells = Self::cells_for(cfg, l, num_ctx, n_batch, swa_full) as u64;
        cells * ty.bytes(cfg.kv_dim()) as u64 * 2
    }

    /// Bytes one sequence's cache takes for every layer.
    pub fn bytes_for(
        cfg: &Gemma3Config,
        num_ctx: usize,
        n_batch: usize,
        swa_full: bool,
        ty: KvType,
    ) -> u64 {
        (0..cfg.n_layer).map(|l| Self::layer_bytes(cfg, l, num_ctx, n_batch, swa_full, ty)).sum()
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        let held = |l: &LayerCache| (2 * l.cells * l.row_bytes()) as u64;
        self.layers.iter().flatten().map(held).sum::<u64>() + held(&self.within)
    }

    /// Makes sequence `to`'s cache a copy of sequence `from`'s in every placed layer (llama.cpp's
    /// `llama_memory_seq_cp`), so that a prefix evaluated once serves another slot.
    pub fn copy_seq(&mut self, from: usize, to: usize) {
        if from == to {
            return;
        }
        for slots in &self.layers {
            if let (Some(f), Some(t)) = (slots.get(from), slots.get(to)) {
                // SAFETY: `&mut self`: no forward is running; the two slots are distinct.
                unsafe { t.copy_from(f) };
            }
        }
    }

    /// Layer `l`'s cache of sequence `seq`.
    #[inline]
    pub fn layer(&self, l: usize, seq: usize) -> &LayerCache {
        &self.layers[l][seq]
    }

    /// The current layer's keys and values of a forward of whole sequences, at batch rows.
    #[inline]
    pub fn within(&self) -> &LayerCache {
        &self.within
    }

    /// Whether the first `keep` of `len` cached positions can be reused for a continuation:
    /// every ring must still hold the `window − 1` positions before `keep`, which the positions
    /// written after it (`keep..len`) may have overwritten.
    pub fn reusable(&self, keep: usize, len: usize) -> bool {
        let Some(w) = self.window else { return true };
        self.layers
            .iter()
            .filter_map(|slots| slots.first())
            .all(|l| l.cells >= self.num_ctx || len - keep + w <= l.cells + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Gemma3Config {
        Gemma3Config {
            n_vocab: 10,
            n_embd: 8,
            n_layer: 12,
            n_ff: 16,
            n_head: 2,
            n_head_kv: 1,
            head_dim: 4,
            context_length: 4096,
            rms_eps: 1e-6,
            sliding_window: Some(512),
            rope_base_global: 1e6,
            rope_base_local: 1e4,
            rope_scale_global: 1.0,
            attn_scale: 0.5,
            final_softcap: None,
            tied_output: true,
            causal: true,
        }
    }

    #[test]
    fn sliding_layers_are_rings_global_layers_span_num_ctx() {
        let c = cfg();
        let kv = KvCache::new(&c, &[true; 12], 4096, 512, false, 2, KvType::F32);
        assert_eq!(kv.layer(5, 1).cells, 4096);
        assert_eq!(kv.layer(11, 0).cells, 4096);
        assert_eq!(kv.layer(0, 1).cells, 1024);
        // two slots, and one batch of rows (512 × kv_dim 4 × f32, K and V) to attend within
        let within = 512 * 4 * 4 * 2;
        assert_eq!(kv.bytes(), 2 * KvCache::bytes_for(&c, 4096, 512, false, KvType::F32) + within);
        // a small context caps the ring; swa_full makes every layer linear
        assert_eq!(KvCache::cells_for(&c, 0, 256, 512, false), 256);
        assert_eq!(KvCache::cells_for(&c, 0, 4096, 512, true), 4096);
        // only placed layers hold memory
        let mut half = [false; 12];
        half[6..].iter_mut().for_each(|p| *p = true);
        let kv = KvCache::new(&c, &half, 4096, 512, false, 1, KvType::Q8_0);
        assert_eq!(
            kv.bytes(),
            (6..12)
                .map(|l| KvCache::layer_bytes(&c, l, 4096, 512, false, KvType::Q8_0))
                .sum::<u64>()
                + 512 * KvType::Q8_0.bytes(4) as u64 * 2
        );
    }

    /// A ring of 1024 cells and a window of 512: a prefix stays reusable while at most 513
    /// positions were written after it.
    #[test]
    fn prefixes_are_reusable_while_the_ring_holds_their_window() {
        let c = cfg();
        let kv = KvCache::new(&c, &[true; 12], 4096, 512, false, 1, KvType::F16);
        assert!(kv.reusable(1000, 1513));
        assert!(!kv.reusable(1000, 1514));
        assert!(KvCache::new(&c, &[true; 12], 4096, 512, true, 1, KvType::F16).reusable(10, 4000));
    }
}
