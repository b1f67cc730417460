//! The `cpu` backend: chimera's own kernels (row-interleaved quantized products, attention over a
//! preallocated cache, a thread pool) over buffers allocated at load.
//!
//! Why not candle tensors here: candle allocates a new storage for every op's result, which breaks
//! "no allocation per token" and costs speed on a 2-core machine; candle's formats and reference
//! arithmetic are kept (see `quant`), and the `candle` backend uses candle proper.

pub mod kv;
pub mod ops;
pub mod quant;
pub mod weights;

use super::lora::Lora;
use super::{Backend, Batch, Buf, Mat, Norm, Sizing};
use crate::config::Gemma3Config;
use crate::error::Result;
use crate::gguf::Gguf;
use crate::pool::{split, Pool};
use kv::KvCache;
use ops::{per_token, SendPtr};
use quant::MatmulScratch;
use std::ops::Range;
use std::sync::Arc;
use weights::{Head, Layer};

/// Activation buffers, indexed by [`Buf`].
const N_BUFS: usize = 10;

fn idx(b: Buf) -> usize {
    b as usize
}

/// The CPU backend for some blocks (and perhaps the head) of one model.
pub struct CpuBackend {
    cfg: Gemma3Config,
    gguf: Arc<Gguf>,
    /// `layers[l]` for the blocks placed here.
    layers: Vec<Option<Layer>>,
    head: Option<Head>,
    /// Row-interleaved copies of the weights (see `quant::x8`).
    x8: Vec<memmap2::Mmap>,
    gelu: Vec<f32>,
    kv: KvCache,
    pool: Pool,
    mm: MatmulScratch,
    bufs: [Vec<f32>; N_BUFS],
    /// (batch, head_dim/2) rope tables of the current forward's positions.
    cos_g: Vec<f32>,
    sin_g: Vec<f32>,
    cos_l: Vec<f32>,
    sin_l: Vec<f32>,
    /// (threads, 4, num_ctx) attention weights, four heads per thread.
    scores: Vec<f32>,
    /// LoRA adapters' updates, and their (num_batch, max rank) scratch.
    lora: Arc<Lora>,
    lora_t: Vec<f32>,
    /// Forwards hold whole sequences and keep nothing ([`Backend::uncached`]): K and V go to
    /// the cache's batch rows and attention reads them there.
    uncached: bool,
}

impl CpuBackend {
    /// Loads the blocks `placed[l]` (and the head when `head`) from `gguf`, repacks their
    /// weights, and allocates their cache and every buffer.
    pub fn load(
        gguf: Arc<Gguf>,
        cfg: &Gemma3Config,
        placed: &[bool],
        head: bool,
        s: &Sizing,
        lora: Arc<Lora>,
    ) -> Result<Self> {
        let c = cfg;
        let mut layers: Vec<Option<Layer>> = (0..c.n_layer)
            .map(|l| placed[l].then(|| Layer::load(&gguf, c, l)).transpose())
            .collect::<Result<_>>()?;
        let mut head = if head {
            let w = if c.tied_output {
                weights::mat(&gguf, "token_embd.weight", c.n_embd, c.n_vocab)?
            } else {
                weights::mat(&gguf, "output.weight", c.n_embd, c.n_vocab)?
            };
            Some(Head { norm: weights::vec(&gguf, "output_norm.weight", c.n_embd)?, w })
        } else {
            None
        };
        // Products read the repacked copies, so the file's pages behind them are released as
        // each piece is copied (the token embedding's rows are read again, a page per token, by
        // the embedding lookup only).
        let mut x8 = Vec::new();
        let mats = layers
            .iter_mut()
            .flatten()
            .flat_map(|l| l.mats_mut())
            .chain(head.as_mut().map(|h| &mut h.w));
        weights::repack_all(&gguf, mats, &mut x8)?;
        let nb = s.num_batch;
        let z = |n: usize| vec![0f32; n];
        let widths = [
            c.n_embd,
            c.n_embd,
            c.q_dim(),
            c.kv_dim(),
            c.kv_dim(),
            c.q_dim(),
            c.n_embd,
            c.n_ff,
            c.n_ff,
            c.n_embd,
        ];
        let max_k = c.n_embd.max(c.n_ff).max(c.q_dim());
        let hd2 = nb * c.head_dim / 2;
        Ok(CpuBackend {
            kv: KvCache::new(c, placed, s.num_ctx, nb, s.swa_full, s.n_seq, s.kv_type),
            pool: Pool::new(s.threads),
            mm: MatmulScratch::new(nb, max_k),
            bufs: widths.map(|w| z(nb * w)),
            cos_g: z(hd2),
            sin_g: z(hd2),
            cos_l: z(hd2),
            sin_l: z(hd2),
            scores: z(s.threads.max(1) * 4 * s.num_ctx),
            lora_t: z(nb * lora.max_rank()),
            lora,
            cfg: c.clone(),
            gguf,
            layers,
            head,
            x8,
            gelu: ops::gelu_table(),
            uncached: false,
        })
    }

    fn layer(&self, l: usize) -> &Layer {
        self.layers[l].as_ref().expect("invariant: the model calls a backend for its own blocks")
    }

    fn norm_weights(&self, w: Norm) -> &[f32] {
        match w {
            Norm::Attn(l) => &self.layer(l).attn_norm,
            Norm::PostAttn(l) => &self.layer(l).post_attn_norm,
            Norm::Ffn(l) => &self.layer(l).ffn_norm,
            Norm::PostFfw(l) => &self.layer(l).post_ffw_norm,
            Norm::Output => &self.head.as_ref().expect("invariant: the head is placed here").norm,
        }
    }

    fn width(&self, b: Buf) -> usize {
        b.width(&self.cfg)
    }

    /// A buffer to write while others are read: the caller names distinct buffers.
    fn ptr(&mut self, b: Buf) -> SendPtr {
        SendPtr(self.bufs[idx(b)].as_mut_ptr())
    }

    /// Fills the rope tables with the batch's positions (once per forward).
    fn fill_rope(&mut self, batch: &Batch) {
        let c = &self.cfg;
        let half = c.head_dim / 2;
        for b in 0..batch.len() {
            let p = batch.pos(b);
            let r = b * half..(b + 1) * half;
            ops::rope_row(
                p,
                c.rope_base_global,
                c.rope_scale_global,
                c.head_dim,
                &mut self.cos_g[r.clone()],
                &mut self.sin_g[r.clone()],
            );
            ops::rope_row(
                p,
                c.rope_base_local,
                1.0,
                c.head_dim,
                &mut self.cos_l[r.clone()],
                &mut self.sin_l[r],
            );
        }
    }
}

impl Backend for CpuBackend {
    fn device(&self) -> String {
        "cpu".into()
    }

    fn begin(&mut self, batch: &Batch) -> Result<()> {
        self.fill_rope(batch);
        Ok(())
    }

    fn upload(&mut self, buf: Buf, host: &[f32], n: usize) -> Result<()> {
        let w = self.width(buf);
        self.bufs[idx(buf)][..n * w].copy_from_slice(&host[..n * w]);
        Ok(())
    }

    fn download(&mut self, buf: Buf, host: &mut [f32], n: usize) -> Result<()> {
        let w = self.width(buf);
        host[..n * w].copy_from_slice(&self.bufs[idx(buf)][..n * w]);
        Ok(())
    }

    fn norm(&mut self, w: Norm, from: Buf, to: Buf, n: usize) -> Result<()> {
        debug_assert_ne!(from, to);
        let (e, eps) = (self.cfg.n_embd, self.cfg.rms_eps);
        let out = self.ptr(to);
        let x = &self.bufs[idx(from)];
        let wts = self.norm_weights(w);
        per_token(&self.pool, n, &|b| {
            // SAFETY: row b of `to` (distinct from `from`) belongs to this call alone.
            let y = unsafe { std::slice::from_raw_parts_mut(out.get().add(b * e), e) };
            ops::rms_norm(&x[b * e..(b + 1) * e], wts, eps, y);
        });
        Ok(())
    }

    fn add_norm(&mut self, w: Norm, o: Buf, x: Buf, n: usize) -> Result<()> {
        debug_assert_ne!(o, x);
        let (e, eps) = (self.cfg.n_embd, self.cfg.rms_eps);
        let (xp, op) = (self.ptr(x), self.ptr(o));
        let wts = self.norm_weights(w);
        per_token(&self.pool, n, &|b| {
            // SAFETY: row b of x and of o belongs to this call alone.
            let (x, o) = unsafe {
                (
                    std::slice::from_raw_parts_mut(xp.get().add(b * e), e),
                    std::slice::from_raw_parts_mut(op.get().add(b * e), e),
                )
            };
            ops::rms_norm_inplace(o, wts, eps);
            x.iter_mut().zip(o.iter()).for_each(|(x, o)| *x += o);
        });
        Ok(())
    }

    fn matmul(&mut self, layer: usize, from: Buf, mats: &[(Mat, Buf)], n: usize) -> Result<()> {
        let l = self.layers[layer]
            .as_ref()
            .expect("invariant: the model calls a backend for its own blocks");
        let wref = |m: Mat| match m {
            Mat::Q => &l.wq,
            Mat::K => &l.wk,
            Mat::V => &l.wv,
            Mat::O => &l.wo,
            Mat::Gate => &l.w_gate,
            Mat::Up => &l.w_up,
            Mat::Down => &l.w_down,
        };
        let k = from.width(&self.cfg);
        let bufs = &self.bufs;
        let x = &bufs[idx(from)][..n * k];
        // SAFETY: outputs are distinct buffers, none of them `from` (asserted), written only by
        // the product; the slices end when it returns.
        let out = |b: Buf| {
            assert_ne!(b, from, "invariant: a product's output is not its input");
            let v = &bufs[idx(b)];
            unsafe { std::slice::from_raw_parts_mut(v.as_ptr() as *mut f32, v.len()) }
        };
        let (gguf, x8, pool, mm) = (&self.gguf, &self.x8, &self.pool, &mut self.mm);
        let w = |m: Mat| weights::qweight(gguf, x8, wref(m));
        match mats {
            [(a, oa)] => quant::matmul_many(pool, mm, x, n, k, &mut [(w(*a), out(*oa))]),
            [(a, oa), (b, ob)] => {
                quant::matmul_many(pool, mm, x, n, k, &mut [(w(*a), out(*oa)), (w(*b), out(*ob))])
            }
            [(a, oa), (b, ob), (c, oc)] => quant::matmul_many(
                pool,
                mm,
                x,
                n,
                k,
                &mut [(w(*a), out(*oa)), (w(*b), out(*ob)), (w(*c), out(*oc))],
            ),
            _ => unreachable!("invariant: a block multiplies one to three matrices at once"),
        }
        for &(m, ob) in mats {
            if let Some(lm) = self.lora.get(layer, m) {
                let o = &mut out(ob)[..n * ob.width(&self.cfg)];
                ops::lora_add(&self.pool, x, n, k, lm, o, &mut self.lora_t);
            }
        }
        Ok(())
    }

    fn qk_norm_rope_store(&mut self, layer: usize, batch: &Batch) -> Result<()> {
        let c = &self.cfg;
        let (hd, qd, kvd) = (c.head_dim, c.q_dim(), c.kv_dim());
        let global = c.is_global(layer);
        let (cos, sin) =
            if global { (&self.cos_g, &self.sin_g) } else { (&self.cos_l, &self.sin_l) };
        let (q, k) = (
            SendPtr(self.bufs[idx(Buf::Q)].as_mut_ptr()),
            SendPtr(self.bufs[idx(Buf::K)].as_mut_ptr()),
        );
        let v = &self.bufs[idx(Buf::V)];
        let l = self.layers[layer].as_ref().expect("invariant: own block");
        let (kv, within) = (&self.kv, self.uncached);
        per_token(&self.pool, batch.len(), &|b| {
            let cs = &cos[b * hd / 2..(b + 1) * hd / 2];
            let sn = &sin[b * hd / 2..(b + 1) * hd / 2];
            let (lc, cell) = match within {
                true => (kv.within(), b),
                false => {
                    let lc = kv.layer(layer, batch.seq(b));
                    (lc, batch.pos(b) % lc.cells)
                }
            };
            // SAFETY: token b's rows of q and k, and its cache cell (the positions of a sequence
            // in one batch map to distinct cells, as do batch rows), belong to this call alone.
            let (q, k) = unsafe {
                (
                    std::slice::from_raw_parts_mut(q.get().add(b * qd), qd),
                    std::slice::from_raw_parts_mut(k.get().add(b * kvd), kvd),
                )
            };
            for h in q.chunks_exact_mut(hd) {
                ops::rms_norm_inplace(h, &l.q_norm, c.rms_eps);
                ops::rope_neox(h, cs, sn);
                // ref: gemma3.cpp: Qcur = ggml_scale(Qcur, f_attention_scale), kq_scale 1.0
                h.iter_mut().for_each(|v| *v *= c.attn_scale);
            }
            for h in k.chunks_exact_mut(hd) {
                ops::rms_norm_inplace(h, &l.k_norm, c.rms_eps);
                ops::rope_neox(h, cs, sn);
            }
            // SAFETY: as above, the cell is this token's alone.
            unsafe { lc.store(cell, k, &v[b * kvd..(b + 1) * kvd]) };
        });
        Ok(())
    }

    fn attention(&mut self, layer: usize, batch: &Batch) -> Result<()> {
        let att = self.ptr(Buf::Att);
        let n = batch.len() * self.cfg.q_dim();
        // SAFETY: Att is written here and read by nothing else during the call.
        let att = unsafe { std::slice::from_raw_parts_mut(att.get(), n) };
        ops::attention(
            &self.pool,
            &self.cfg,
            &self.kv,
            layer,
            batch,
            &self.bufs[idx(Buf::Q)],
            att,
            &mut self.scores,
            self.uncached,
        );
        Ok(())
    }

    fn uncached(&mut self, on: bool) {
        self.uncached = on;
    }

    fn gelu_mul(&mut self, n: usize) -> Result<()> {
        let len = n * self.cfg.n_ff;
        let gate = self.ptr(Buf::Gate);
        let (table, up) = (&self.gelu, &self.bufs[idx(Buf::Up)]);
        self.pool.run(&|t, nt| {
            let r = split(len, t, nt, 64);
            // SAFETY: each thread owns the disjoint range r of gate.
            let g = unsafe { std::slice::from_raw_parts_mut(gate.get().add(r.start), r.len()) };
            for (g, u) in g.iter_mut().zip(&up[r]) {
                *g = ops::gelu_f16(table, *g) * u;
            }
        });
        Ok(())
    }

    fn logits(&mut self, rows: Range<usize>, out: &mut [f32]) -> Result<()> {
        let (e, nv) = (self.cfg.n_embd, self.cfg.n_vocab);
        let n = rows.len();
        let head = self.head.as_ref().expect("invariant: the head is placed here");
        let x = &self.bufs[idx(Buf::Hidden)][rows.start * e..rows.end * e];
        let w = weights::qweight(&self.gguf, &self.x8, &head.w);
        quant::matmul(&self.pool, &mut self.mm, x, n, w, &mut out[..n * nv]);
        if let Some(cap) = self.cfg.final_softcap {
            // ref: gemma3.cpp: logits = tanh(logits / cap) * cap when final_logit_softcapping is set
            out[..n * nv].iter_mut().for_each(|v| *v = (*v / cap).tanh() * cap);
        }
        Ok(())
    }

    fn reusable(&self, _seq: usize, keep: usize, len: usize) -> bool {
        self.kv.reusable(keep, len)
    }

    fn copy_seq(&mut self, from: usize, to: usize) -> Result<()> {
        self.kv.copy_seq(from, to);
        Ok(())
    }

    fn kv_bytes(&self) -> u64 {
        self.kv.bytes()
    }

    fn weight_bytes(&self) -> u64 {
        let mats = self
            .layers
            .iter()
            .flatten()
            .flat_map(|l| [l.wq, l.wk, l.wv, l.wo, l.w_gate, l.w_up, l.w_down]);
        mats.chain(self.head.as_ref().map(|h| h.w)).map(|w| w.bytes as u64).sum()
    }
}
