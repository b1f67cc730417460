//! The gemma3 forward pass on the CPU over buffers allocated at load.
//!
//! Architecture (ref: llama.cpp src/models/gemma3.cpp; HF transformers modeling_gemma3.py):
//! token embedding × √n_embd; per block a "sandwich" of RMSNorms around attention and the MLP;
//! grouped-query attention with RMS-normed Q and K (QK-norm) and NEOX rope, base 10000 on sliding
//! layers and `rope.freq_base` (optionally linearly scaled) on every sixth, global layer; sliding
//! layers see the last `sliding_window` positions; GELU-tanh gated MLP; output head tied to the
//! embedding unless `output.weight` exists; optional final logit soft-cap.

mod config;

pub use config::{size_label, Gemma3Config};

use crate::error::{Error, Result};
use crate::gguf::{Gguf, TensorInfo, TensorType};
use crate::kv_cache::KvCache;
use crate::pool::{split, Pool};
use crate::quant::{self, MatmulScratch, QWeight};
use std::ops::Range;

/// Where a 2-D weight lives in the file.
#[derive(Debug, Clone, Copy)]
struct WRef {
    ty: TensorType,
    rows: usize,
    cols: usize,
    offset: usize,
    bytes: usize,
    /// Index of the row-interleaved copy in `Model::x8`, when the type has one.
    x8: Option<usize>,
}

struct Layer {
    attn_norm: Vec<f32>,
    q_norm: Vec<f32>,
    k_norm: Vec<f32>,
    post_attn_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
    post_ffw_norm: Vec<f32>,
    wq: WRef,
    wk: WRef,
    wv: WRef,
    wo: WRef,
    w_gate: WRef,
    w_up: WRef,
    w_down: WRef,
}

/// A loaded gemma3 model: config, the mapped file and typed views of its weights.
pub struct Model {
    pub cfg: Gemma3Config,
    pub gguf: Gguf,
    layers: Vec<Layer>,
    embd: WRef,
    output: WRef,
    output_norm: Vec<f32>,
    /// gelu(x) for every f16 bit pattern x (ref: ggml-cpu vec.h GGML_GELU_FP16 table).
    gelu_table: Vec<f32>,
    /// Row-interleaved copies of the blocks' Q4_0/Q5_0/Q8_0 weights (see `quant::x8`).
    x8: Vec<memmap2::Mmap>,
}

impl Model {
    /// Builds typed views over an opened GGUF; checks every tensor's presence, type and shape.
    pub fn load(gguf: Gguf) -> Result<Model> {
        let cfg = Gemma3Config::from_gguf(&gguf)?;
        let c = &cfg;
        let find = |name: &str| -> Result<&TensorInfo> {
            gguf.tensor(name).ok_or_else(|| Error::Tensor {
                path: gguf.path.clone(),
                name: name.into(),
                what: "missing".into(),
            })
        };
        let shape_err = |t: &TensorInfo, want: &[usize]| Error::Tensor {
            path: gguf.path.clone(),
            name: t.name.clone(),
            what: format!("shape {:?}, expected {want:?}", t.dims),
        };
        let mat = |name: &str, cols: usize, rows: usize| -> Result<WRef> {
            let t = find(name)?;
            if t.dims != [cols as u64, rows as u64] {
                return Err(shape_err(t, &[cols, rows]));
            }
            let (offset, bytes) = (t.offset as usize, t.bytes as usize);
            Ok(WRef { ty: t.ty, rows, cols, offset, bytes, x8: None })
        };
        let vec = |name: &str, n: usize| -> Result<Vec<f32>> {
            let t = find(name)?;
            if t.dims != [n as u64] {
                return Err(shape_err(t, &[n]));
            }
            let mut out = vec![0f32; n];
            quant::dequantize(t.ty, gguf.data(t), &mut out);
            Ok(out)
        };
        let (e, hd) = (c.n_embd, c.head_dim);
        let mut layers = Vec::with_capacity(c.n_layer);
        for i in 0..c.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}.weight");
            layers.push(Layer {
                attn_norm: vec(&n("attn_norm"), e)?,
                q_norm: vec(&n("attn_q_norm"), hd)?,
                k_norm: vec(&n("attn_k_norm"), hd)?,
                post_attn_norm: vec(&n("post_attention_norm"), e)?,
                ffn_norm: vec(&n("ffn_norm"), e)?,
                post_ffw_norm: vec(&n("post_ffw_norm"), e)?,
                wq: mat(&n("attn_q"), e, c.q_dim())?,
                wk: mat(&n("attn_k"), e, c.kv_dim())?,
                wv: mat(&n("attn_v"), e, c.kv_dim())?,
                wo: mat(&n("attn_output"), c.q_dim(), e)?,
                w_gate: mat(&n("ffn_gate"), e, c.n_ff)?,
                w_up: mat(&n("ffn_up"), e, c.n_ff)?,
                w_down: mat(&n("ffn_down"), c.n_ff, e)?,
            });
        }
        let embd = mat("token_embd.weight", e, c.n_vocab)?;
        let output = if c.tied_output { embd } else { mat("output.weight", e, c.n_vocab)? };
        let output_norm = vec("output_norm.weight", e)?;
        let gelu_table = (0..=u16::MAX)
            .map(|bits| {
                let x = half::f16::from_bits(bits).to_f32();
                half::f16::from_f32(gelu_tanh(x)).to_f32()
            })
            .collect();
        // Products read the repacked copies, so the file's pages behind them are released as
        // each piece is copied (the token embedding's rows are read again, a page per token, by
        // the embedding lookup only).
        let mut x8 = Vec::new();
        let mut output = output;
        for w in layers
            .iter_mut()
            .flat_map(|l| {
                [
                    &mut l.wq,
                    &mut l.wk,
                    &mut l.wv,
                    &mut l.wo,
                    &mut l.w_gate,
                    &mut l.w_up,
                    &mut l.w_down,
                ]
            })
            .chain([&mut output])
        {
            if quant::x8::can_repack(w.ty, w.rows, w.cols) {
                x8.push(repack(&gguf, w)?);
                w.x8 = Some(x8.len() - 1);
            }
        }
        Ok(Model { cfg, gguf, layers, embd, output, output_norm, gelu_table, x8 })
    }

    fn w(&self, r: &WRef) -> QWeight<'_> {
        QWeight {
            ty: r.ty,
            rows: r.rows,
            cols: r.cols,
            data: &self.gguf.bytes()[r.offset..r.offset + r.bytes],
            x8: r.x8.map(|i| &self.x8[i][..]),
        }
    }

    /// Bytes of weights in block `l` (for the offload planner).
    pub fn layer_bytes(g: &Gguf, l: usize) -> u64 {
        let prefix = format!("blk.{l}.");
        g.tensors.iter().filter(|t| t.name.starts_with(&prefix)).map(|t| t.bytes).sum()
    }

    /// Runs `tokens` at positions `pos0..` through every block, writing K/V into `st.kv`, and
    /// leaves the final-normed hidden state of each token in `st.hidden`.
    pub fn forward(&self, st: &mut State, tokens: &[u32], pos0: usize) -> Result<()> {
        let c = &self.cfg;
        let n = tokens.len();
        assert!(n <= st.max_batch, "invariant: the engine splits prompts into n_batch pieces");
        assert!(pos0 + n <= st.kv.num_ctx, "invariant: the engine keeps positions below num_ctx");
        let (e, hd, qd, kvd) = (c.n_embd, c.head_dim, c.q_dim(), c.kv_dim());
        // embedding × √n_embd (ref: gemma3.cpp: ggml_scale(inpL, sqrtf(n_embd)))
        let emb = self.w(&self.embd);
        let scale = (e as f32).sqrt();
        for (b, &t) in tokens.iter().enumerate() {
            if t as usize >= c.n_vocab {
                return Err(Error::TokenId { id: t, n_vocab: c.n_vocab });
            }
            let x = &mut st.x[b * e..(b + 1) * e];
            emb.row(t as usize, x);
            x.iter_mut().for_each(|v| *v *= scale);
        }
        st.fill_rope(c, pos0, n);
        for (l, layer) in self.layers.iter().enumerate() {
            let global = c.is_global(l);
            // attention
            st.norm_input(&layer.attn_norm, c.rms_eps, e, n);
            quant::matmul_many(
                &st.pool,
                &mut st.mm,
                &st.xn,
                n,
                e,
                &mut [
                    (self.w(&layer.wq), &mut st.q[..]),
                    (self.w(&layer.wk), &mut st.k[..]),
                    (self.w(&layer.wv), &mut st.v[..]),
                ],
            );
            let (cos, sin) = if global { (&st.cos_g, &st.sin_g) } else { (&st.cos_l, &st.sin_l) };
            let (q, k) = (SendPtr(st.q.as_mut_ptr()), SendPtr(st.k.as_mut_ptr()));
            let lc = &mut st.kv.layers[l];
            let (kc, vc) = (SendPtr(lc.k.as_mut_ptr()), SendPtr(lc.v.as_mut_ptr()));
            let (kv, v) = (&st.kv, &st.v);
            per_token(&st.pool, n, &|b| {
                let cs = &cos[b * hd / 2..(b + 1) * hd / 2];
                let sn = &sin[b * hd / 2..(b + 1) * hd / 2];
                let cell = kv.cell(l, pos0 + b);
                // SAFETY: token b's rows of q and k, and its cache cell (positions in a batch
                // map to distinct cells), belong to this call alone.
                let (q, k, kc, vc) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(q.get().add(b * qd), qd),
                        std::slice::from_raw_parts_mut(k.get().add(b * kvd), kvd),
                        std::slice::from_raw_parts_mut(kc.get().add(cell * kvd), kvd),
                        std::slice::from_raw_parts_mut(vc.get().add(cell * kvd), kvd),
                    )
                };
                for h in q.chunks_exact_mut(hd) {
                    rms_norm_inplace(h, &layer.q_norm, c.rms_eps);
                    rope_neox(h, cs, sn);
                    // ref: gemma3.cpp: Qcur = ggml_scale(Qcur, f_attention_scale), kq_scale 1.0
                    h.iter_mut().for_each(|v| *v *= c.attn_scale);
                }
                for h in k.chunks_exact_mut(hd) {
                    rms_norm_inplace(h, &layer.k_norm, c.rms_eps);
                    rope_neox(h, cs, sn);
                }
                kc.copy_from_slice(k);
                vc.copy_from_slice(&v[b * kvd..(b + 1) * kvd]);
            });
            let window = if global { None } else { c.sliding_window };
            st.attention(c, l, pos0, n, window);
            quant::matmul(&st.pool, &mut st.mm, &st.att, n, self.w(&layer.wo), &mut st.o);
            st.add_normed_output(&layer.post_attn_norm, c.rms_eps, e, n);
            // MLP: down(gelu(gate(x)) * up(x))
            st.norm_input(&layer.ffn_norm, c.rms_eps, e, n);
            quant::matmul_many(
                &st.pool,
                &mut st.mm,
                &st.xn,
                n,
                e,
                &mut [
                    (self.w(&layer.w_gate), &mut st.gate[..]),
                    (self.w(&layer.w_up), &mut st.up[..]),
                ],
            );
            self.geglu(st, n * c.n_ff);
            quant::matmul(&st.pool, &mut st.mm, &st.gate, n, self.w(&layer.w_down), &mut st.o);
            st.add_normed_output(&layer.post_ffw_norm, c.rms_eps, e, n);
        }
        for b in 0..n {
            rms_norm(
                &st.x[b * e..(b + 1) * e],
                &self.output_norm,
                c.rms_eps,
                &mut st.hidden[b * e..(b + 1) * e],
            );
        }
        Ok(())
    }

    /// Logits for hidden rows `rows` of the last forward, into `out` (`rows.len() × n_vocab`).
    pub fn logits(&self, st: &mut State, rows: Range<usize>, out: &mut [f32]) {
        let e = self.cfg.n_embd;
        let n = rows.len();
        let x = &st.hidden[rows.start * e..rows.end * e];
        quant::matmul(
            &st.pool,
            &mut st.mm,
            x,
            n,
            self.w(&self.output),
            &mut out[..n * self.cfg.n_vocab],
        );
        if let Some(cap) = self.cfg.final_softcap {
            // ref: gemma3.cpp: logits = tanh(logits / cap) * cap when final_logit_softcapping is set
            out[..n * self.cfg.n_vocab].iter_mut().for_each(|v| *v = (*v / cap).tanh() * cap);
        }
    }

    /// gate ← gelu(gate) ⊙ up over the first `len` values, split across the pool.
    fn geglu(&self, st: &mut State, len: usize) {
        let table = &self.gelu_table;
        let gate = SendPtr(st.gate.as_mut_ptr());
        let up = &st.up;
        st.pool.run(&|t, nt| {
            let r = split(len, t, nt, 64);
            // SAFETY: each thread owns the disjoint range r of gate.
            let g = unsafe { std::slice::from_raw_parts_mut(gate.get().add(r.start), r.len()) };
            for (g, u) in g.iter_mut().zip(&up[r]) {
                let x = *g;
                // ref: ggml-cpu vec.h ggml_vec_geglu_f32 (GGML_GELU_FP16 branch)
                let y = if x <= -10.0 {
                    0.0
                } else if x >= 10.0 {
                    x
                } else {
                    table[half::f16::from_f32(x).to_bits() as usize]
                };
                *g = y * u;
            }
        });
    }

    /// Embedding rows in the file (the vocabulary size).
    pub fn n_vocab(&self) -> usize {
        self.cfg.n_vocab
    }
}

/// Runs `f(b)` for every token `b < n`, split over the pool when the batch is large enough to
/// pay for the dispatch (per-token work here is a few microseconds).
fn per_token(pool: &Pool, n: usize, f: &(dyn Fn(usize) + Sync)) {
    if n < 8 || pool.threads() == 1 {
        (0..n).for_each(f);
    } else {
        pool.run(&|t, nt| split(n, t, nt, 1).for_each(f));
    }
}

/// The row-interleaved copy of a weight, made a few MiB at a time on up to eight threads; each
/// piece's file pages are released once copied, so load never holds both forms of a large tensor.
fn repack(gguf: &Gguf, w: &WRef) -> Result<memmap2::Mmap> {
    const GROUPS: usize = 512;
    let rows = quant::x8::GROUP * GROUPS;
    let len = quant::x8::repacked_bytes(w.ty, w.rows, w.cols);
    // Anonymous memory with transparent huge pages where the kernel allows them: 512× fewer
    // page faults while it fills, and fewer TLB misses while decode streams it.
    let mut out = memmap2::MmapMut::map_anon(len).map_err(|e| Error::io(&gguf.path, e))?;
    #[cfg(target_os = "linux")]
    let _ = out.advise(memmap2::Advice::HugePage);
    let (src_piece, dst_piece) =
        (w.bytes / w.rows * rows, quant::x8::repacked_bytes(w.ty, rows, w.cols));
    let pieces: Vec<(usize, &mut [u8])> = out.chunks_mut(dst_piece).enumerate().collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let per = pieces.len().div_ceil(threads);
    let work = |part: Vec<(usize, &mut [u8])>| {
        for (i, dst) in part {
            let start = w.offset + i * src_piece;
            let src = start..(start + src_piece).min(w.offset + w.bytes);
            quant::x8::repack_into(w.ty, w.cols, &gguf.bytes()[src.clone()], dst);
            gguf.release(src);
        }
    };
    let mut parts: Vec<Vec<(usize, &mut [u8])>> = Vec::new();
    let mut it = pieces.into_iter();
    loop {
        let part: Vec<_> = it.by_ref().take(per.max(1)).collect();
        if part.is_empty() {
            break;
        }
        parts.push(part);
    }
    if parts.len() <= 1 {
        parts.into_iter().for_each(work);
    } else {
        std::thread::scope(|s| {
            for part in parts {
                s.spawn(|| work(part));
            }
        });
    }
    out.make_read_only().map_err(|e| Error::io(&gguf.path, e))
}

struct SendPtr(*mut f32);
// SAFETY: users hand each thread a disjoint range.
unsafe impl Sync for SendPtr {}
impl SendPtr {
    /// The pointer (a method, so closures capture the Sync wrapper rather than the raw field).
    fn get(&self) -> *mut f32 {
        self.0
    }
}

/// The tanh approximation of GELU (ref: ggml GELU_COEF_A, SQRT_2_OVER_PI).
pub fn gelu_tanh(x: f32) -> f32 {
    const A: f32 = 0.044715;
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + A * x * x)).tanh())
}

/// y = x / sqrt(mean(x²) + eps) · w (ref: ggml_compute_forward_rms_norm; the sum in f64 as ggml).
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, y: &mut [f32]) {
    let ss: f64 = x.iter().map(|v| (*v as f64) * (*v as f64)).sum();
    let s = 1.0 / ((ss / x.len() as f64) as f32 + eps).sqrt();
    for ((y, x), w) in y.iter_mut().zip(x).zip(w) {
        *y = x * s * w;
    }
}

fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    let ss: f64 = x.iter().map(|v| (*v as f64) * (*v as f64)).sum();
    let s = 1.0 / ((ss / x.len() as f64) as f32 + eps).sqrt();
    x.iter_mut().zip(w).for_each(|(x, w)| *x = *x * s * w);
}

/// NEOX rope: element i pairs with i + d/2 (ref: ggml rope_yarn, mode GGML_ROPE_TYPE_NEOX).
fn rope_neox(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = x.len() / 2;
    for i in 0..half {
        let (a, b) = (x[i], x[i + half]);
        x[i] = a * cos[i] - b * sin[i];
        x[i + half] = a * sin[i] + b * cos[i];
    }
}

/// Per-sequence state: KV cache, activations and scratch, all sized at load.
pub struct State {
    pub pool: Pool,
    pub kv: KvCache,
    pub max_batch: usize,
    mm: MatmulScratch,
    x: Vec<f32>,      // (batch, n_embd) residual stream
    xn: Vec<f32>,     // (batch, n_embd) normed input of a sub-block
    q: Vec<f32>,      // (batch, n_head·head_dim)
    k: Vec<f32>,      // (batch, n_head_kv·head_dim)
    v: Vec<f32>,      // (batch, n_head_kv·head_dim)
    att: Vec<f32>,    // (batch, n_head·head_dim) attention output
    o: Vec<f32>,      // (batch, n_embd) sub-block output
    gate: Vec<f32>,   // (batch, n_ff)
    up: Vec<f32>,     // (batch, n_ff)
    hidden: Vec<f32>, // (batch, n_embd) final-normed states
    cos_g: Vec<f32>,  // (batch, head_dim/2) rope tables of this batch's positions
    sin_g: Vec<f32>,
    cos_l: Vec<f32>,
    sin_l: Vec<f32>,
    scores: Vec<f32>, // (threads, 4, num_ctx) attention weights, four heads per thread
}

impl State {
    /// Allocates everything a forward over up to `max_batch` tokens in `num_ctx` positions needs
    /// (`swa_full`: sliding layers keep every position, see [`KvCache::new`]).
    pub fn new(
        cfg: &Gemma3Config,
        num_ctx: usize,
        max_batch: usize,
        threads: usize,
        swa_full: bool,
    ) -> State {
        let z = |n: usize| vec![0f32; n];
        let nb = max_batch;
        let max_k = cfg.n_embd.max(cfg.n_ff).max(cfg.q_dim());
        State {
            pool: Pool::new(threads),
            kv: KvCache::new(cfg, num_ctx, nb, swa_full),
            max_batch: nb,
            mm: MatmulScratch::new(nb, max_k),
            x: z(nb * cfg.n_embd),
            xn: z(nb * cfg.n_embd),
            q: z(nb * cfg.q_dim()),
            k: z(nb * cfg.kv_dim()),
            v: z(nb * cfg.kv_dim()),
            att: z(nb * cfg.q_dim()),
            o: z(nb * cfg.n_embd),
            gate: z(nb * cfg.n_ff),
            up: z(nb * cfg.n_ff),
            hidden: z(nb * cfg.n_embd),
            cos_g: z(nb * cfg.head_dim / 2),
            sin_g: z(nb * cfg.head_dim / 2),
            cos_l: z(nb * cfg.head_dim / 2),
            sin_l: z(nb * cfg.head_dim / 2),
            scores: z(threads.max(1) * 4 * num_ctx),
        }
    }

    /// Bytes of host memory this state holds (KV cache included).
    pub fn bytes(&self) -> u64 {
        let v = [
            &self.x,
            &self.xn,
            &self.q,
            &self.k,
            &self.v,
            &self.att,
            &self.o,
            &self.gate,
            &self.up,
            &self.hidden,
            &self.scores,
        ];
        self.kv.bytes() + v.iter().map(|b| b.len() as u64 * 4).sum::<u64>()
    }

    /// xn ← RMSNorm(x)·w for each of the first `n` rows (the pre-norm of a sub-block).
    fn norm_input(&mut self, w: &[f32], eps: f32, e: usize, n: usize) {
        let (x, xn) = (&self.x, SendPtr(self.xn.as_mut_ptr()));
        per_token(&self.pool, n, &|b| {
            // SAFETY: row b of xn belongs to this call alone.
            let xn = unsafe { std::slice::from_raw_parts_mut(xn.get().add(b * e), e) };
            rms_norm(&x[b * e..(b + 1) * e], w, eps, xn);
        });
    }

    /// x += RMSNorm(o)·w for each of the first `n` rows (the post-norm and residual add).
    fn add_normed_output(&mut self, w: &[f32], eps: f32, e: usize, n: usize) {
        let (x, o) = (SendPtr(self.x.as_mut_ptr()), SendPtr(self.o.as_mut_ptr()));
        per_token(&self.pool, n, &|b| {
            // SAFETY: row b of x and of o belongs to this call alone.
            let (x, o) = unsafe {
                (
                    std::slice::from_raw_parts_mut(x.get().add(b * e), e),
                    std::slice::from_raw_parts_mut(o.get().add(b * e), e),
                )
            };
            rms_norm_inplace(o, w, eps);
            x.iter_mut().zip(o.iter()).for_each(|(x, o)| *x += o);
        });
    }

    fn fill_rope(&mut self, c: &Gemma3Config, pos0: usize, n: usize) {
        let half = c.head_dim / 2;
        for b in 0..n {
            let p = (pos0 + b) as f64;
            for i in 0..half {
                // theta_i = p · scale · base^(-2i/d) (ref: ggml rope: theta_scale = base^(-2/n_dims))
                let inv = |base: f32| (base as f64).powf(-2.0 * i as f64 / c.head_dim as f64);
                let tg = p * c.rope_scale_global as f64 * inv(c.rope_base_global);
                let tl = p * inv(c.rope_base_local);
                self.cos_g[b * half + i] = tg.cos() as f32;
                self.sin_g[b * half + i] = tg.sin() as f32;
                self.cos_l[b * half + i] = tl.cos() as f32;
                self.sin_l[b * half + i] = tl.sin() as f32;
            }
        }
    }

    /// Causal attention of the batch's queries over the cache; a query at p sees keys
    /// p − window < k ≤ p on sliding layers (ref: llama-hparams.cpp is_masked_swa). The query
    /// heads that share a KV head are taken up to four at a time, so each key and value row is
    /// read once for all of them; every head's arithmetic is the same however they are grouped.
    fn attention(
        &mut self,
        c: &Gemma3Config,
        l: usize,
        pos0: usize,
        n: usize,
        window: Option<usize>,
    ) {
        let group = c.n_head / c.n_head_kv;
        let threads = self.pool.threads();
        // the widest head chunk that divides the group and still gives every thread a task
        let ht = [4, 2, 1]
            .into_iter()
            .find(|&h| group.is_multiple_of(h) && (n * c.n_head / h >= threads || h == 1))
            .unwrap_or(1);
        match ht {
            4 => self.attention_n::<4>(c, l, pos0, n, window),
            2 => self.attention_n::<2>(c, l, pos0, n, window),
            _ => self.attention_n::<1>(c, l, pos0, n, window),
        }
    }

    fn attention_n<const HT: usize>(
        &mut self,
        c: &Gemma3Config,
        l: usize,
        pos0: usize,
        n: usize,
        window: Option<usize>,
    ) {
        let (hd, qd, kvd) = (c.head_dim, c.q_dim(), c.kv_dim());
        let group = c.n_head / c.n_head_kv;
        let num_ctx = self.kv.num_ctx;
        let lc = &self.kv.layers[l];
        let cells = lc.cells;
        let q = &self.q;
        let att = SendPtr(self.att.as_mut_ptr());
        let scores = SendPtr(self.scores.as_mut_ptr());
        let chunks = c.n_head / HT;
        let tasks = n * chunks;
        self.pool.run(&|t, nt| {
            // SAFETY: thread t owns scores rows t·4..t·4+HT and the att rows of its tasks.
            let sc = unsafe {
                std::slice::from_raw_parts_mut(scores.get().add(t * 4 * num_ctx), HT * num_ctx)
            };
            // Later queries see more keys: dealing tasks round-robin balances causal rows.
            for task in (t..tasks).step_by(nt) {
                let (b, h0) = (task / chunks, task % chunks * HT);
                let p = pos0 + b;
                let start = window.map_or(0, |w| (p + 1).saturating_sub(w));
                let len = p + 1 - start;
                let g = h0 / group;
                let qh: [&[f32]; HT] =
                    std::array::from_fn(|j| &q[b * qd + (h0 + j) * hd..b * qd + (h0 + j + 1) * hd]);
                let key = |pos: usize| {
                    let cell = pos % cells;
                    &lc.k[cell * kvd + g * hd..cell * kvd + (g + 1) * hd]
                };
                let mut max = [f32::NEG_INFINITY; HT];
                let mut keep = |i: usize, s: [f32; HT]| {
                    for j in 0..HT {
                        sc[j * num_ctx + i] = s[j];
                        max[j] = max[j].max(s[j]);
                    }
                };
                // two keys at a time: twice the independent add chains
                let mut i = 0;
                while i + 2 <= len {
                    let [s0, s1] = quant::dot_f32_nm(qh, [key(start + i), key(start + i + 1)]);
                    keep(i, s0);
                    keep(i + 1, s1);
                    i += 2;
                }
                if i < len {
                    keep(i, quant::dot_f32_n(qh, key(start + i)));
                }
                for (j, &max) in max.iter().enumerate() {
                    let w = &mut sc[j * num_ctx..j * num_ctx + len];
                    let mut sum = 0f32;
                    for s in w.iter_mut() {
                        *s = (*s - max).exp();
                        sum += *s;
                    }
                    let inv = 1.0 / sum;
                    w.iter_mut().for_each(|s| *s *= inv);
                }
                // SAFETY: query b's heads h0..h0+HT are this task's alone.
                let out = unsafe {
                    std::slice::from_raw_parts_mut(att.get().add(b * qd + h0 * hd), HT * hd)
                };
                let w: [&[f32]; HT] = std::array::from_fn(|j| &sc[j * num_ctx..j * num_ctx + len]);
                let value = |i: usize| {
                    let cell = (start + i) % cells;
                    &lc.v[cell * kvd + g * hd..cell * kvd + (g + 1) * hd]
                };
                quant::weighted_rows_n(w, value, out);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_tanh_reference_points() {
        assert_eq!(gelu_tanh(0.0), 0.0);
        assert!((gelu_tanh(1.0) - 0.841_192).abs() < 1e-5);
        assert!((gelu_tanh(-1.0) + 0.158_808).abs() < 1e-5);
    }

    #[test]
    fn rms_norm_unit_weights_gives_unit_rms() {
        let x = [3.0f32, -4.0, 0.0, 5.0];
        let mut y = [0f32; 4];
        rms_norm(&x, &[1.0; 4], 0.0, &mut y);
        let rms = (y.iter().map(|v| v * v).sum::<f32>() / 4.0).sqrt();
        assert!((rms - 1.0).abs() < 1e-6);
    }

    /// NEOX pairs i with i + d/2; a rotation by θ then −θ is the identity.
    #[test]
    fn rope_neox_rotates_halves() {
        let mut x = [1.0f32, 0.0, 0.0, 1.0];
        let (c, s) = ((0.5f32).cos(), (0.5f32).sin());
        rope_neox(&mut x, &[c, 1.0], &[s, 0.0]);
        assert!((x[0] - c).abs() < 1e-6 && (x[2] - s).abs() < 1e-6);
        assert_eq!((x[1], x[3]), (0.0, 1.0));
        rope_neox(&mut x, &[c, 1.0], &[-s, 0.0]);
        assert!((x[0] - 1.0).abs() < 1e-6 && x[2].abs() < 1e-6);
    }
}
