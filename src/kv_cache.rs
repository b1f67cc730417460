//! The KV cache, allocated once at load from `num_ctx`: global layers linear, sliding layers a ring.
//!
//! A sliding layer keeps `window + n_batch` cells (capped at num_ctx), as llama.cpp's iSWA cache
//! does (`n_swa + n_ubatch`): a prompt batch of up to n_batch tokens is written before it is
//! attended, and its first query still needs the `window - 1` keys before the batch.

use crate::model::Gemma3Config;

/// K and V rows of one layer, `cells × kv_dim` f32 each.
pub struct LayerCache {
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    pub cells: usize,
}

/// Every layer's cache.
pub struct KvCache {
    pub layers: Vec<LayerCache>,
    pub kv_dim: usize,
    pub num_ctx: usize,
    /// The sliding window, where the model has one.
    window: Option<usize>,
}

impl KvCache {
    /// Allocates every layer for `num_ctx` positions and prompt batches of up to `n_batch`;
    /// `swa_full` gives sliding layers every position too (llama.cpp's `--swa-full`), so that any
    /// cached prefix can be reused.
    pub fn new(cfg: &Gemma3Config, num_ctx: usize, n_batch: usize, swa_full: bool) -> KvCache {
        let kv_dim = cfg.kv_dim();
        let layers = (0..cfg.n_layer)
            .map(|l| {
                let cells = Self::cells_for(cfg, l, num_ctx, n_batch, swa_full);
                LayerCache { k: vec![0.0; cells * kv_dim], v: vec![0.0; cells * kv_dim], cells }
            })
            .collect();
        KvCache { layers, kv_dim, num_ctx, window: cfg.sliding_window }
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

    /// Bytes the cache takes for a config (K and V, f32).
    pub fn bytes_for(cfg: &Gemma3Config, num_ctx: usize, n_batch: usize, swa_full: bool) -> u64 {
        (0..cfg.n_layer)
            .map(|l| {
                let cells = Self::cells_for(cfg, l, num_ctx, n_batch, swa_full) as u64;
                cells * cfg.kv_dim() as u64 * 2 * 4
            })
            .sum()
    }

    /// Whether the first `keep` of `len` cached positions can be reused for a continuation:
    /// every ring must still hold the `window − 1` positions before `keep`, which the positions
    /// written after it (`keep..len`) may have overwritten.
    pub fn reusable(&self, keep: usize, len: usize) -> bool {
        let Some(w) = self.window else { return true };
        self.layers.iter().all(|l| l.cells >= self.num_ctx || len - keep + w <= l.cells + 1)
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.layers.iter().map(|l| (l.k.len() + l.v.len()) as u64 * 4).sum()
    }

    /// The cell of position `pos` in layer `l`.
    #[inline]
    pub fn cell(&self, l: usize, pos: usize) -> usize {
        pos % self.layers[l].cells
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
        }
    }

    #[test]
    fn sliding_layers_are_rings_global_layers_span_num_ctx() {
        let c = cfg();
        let kv = KvCache::new(&c, 4096, 512, false);
        assert_eq!(kv.layers[5].cells, 4096);
        assert_eq!(kv.layers[11].cells, 4096);
        assert_eq!(kv.layers[0].cells, 1024);
        assert_eq!(kv.cell(0, 1025), 1);
        assert_eq!(kv.cell(5, 1025), 1025);
        assert_eq!(kv.bytes(), KvCache::bytes_for(&c, 4096, 512, false));
        // a small context caps the ring; swa_full makes every layer linear
        assert_eq!(KvCache::cells_for(&c, 0, 256, 512, false), 256);
        assert_eq!(KvCache::cells_for(&c, 0, 4096, 512, true), 4096);
    }

    /// A ring of 1024 cells and a window of 512: a prefix stays reusable while at most 513
    /// positions were written after it.
    #[test]
    fn prefixes_are_reusable_while_the_ring_holds_their_window() {
        let c = cfg();
        let kv = KvCache::new(&c, 4096, 512, false);
        assert!(kv.reusable(1000, 1513));
        assert!(!kv.reusable(1000, 1514));
        assert!(KvCache::new(&c, 4096, 512, true).reusable(10, 4000));
    }
}
