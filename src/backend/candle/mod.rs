//! The `candle` backend: candle tensors on a `candle_core::Device` — the CPU (tests, CI,
//! `CHIMERA_DEVICE=candle-cpu`) or, with the `cuda` feature, a GPU. GGUF weights are candle
//! `QMatMul`s (candle's CUDA MMVQ/MMQ kernels on a GPU); safetensors weights dense tensors. The
//! KV cache is preallocated from num_ctx on the device; the fused element-wise and decode
//! attention ops are chimera's own (`kernels`). Activations stay f32 (gemma3 overflows f16).
//!
//! Departure from "allocate at load": candle allocates every op's result (on CUDA from the
//! stream-ordered pool, inside the graph once a decode step is captured); the cache, the
//! residual stream, the head's input and output and the per-forward tables (rope rows,
//! positions) are preallocated and written in place, so that a captured step reads its inputs
//! from the same addresses every time.

#[cfg(feature = "cuda")]
mod cuda;
pub mod kernels;
pub mod safetensors;
mod weights;
mod whole;

pub use weights::Weights;

use super::lora::Lora;
#[cfg(feature = "cuda")]
use super::Step;
use super::{Backend, Batch, Buf, Front, GpuDevice, Mat, Norm, Sizing};
use crate::config::Gemma3Config;
use crate::error::{Error, Result};
use candle_core::{DType, Device, Module, Tensor};
use kernels::{
    AddRmsNorm, DecodeAttention, GeluMul, HostWrite, QkNormRope, RmsNorm, SampleFront, StoreKv,
};
use std::ops::Range;
use weights::{HeadW, LayerW};

/// The candle device a GPU slot runs on.
pub fn device(gpu: GpuDevice) -> Result<Device> {
    match gpu {
        GpuDevice::CandleCpu => Ok(Device::Cpu),
        #[cfg(feature = "cuda")]
        GpuDevice::Cuda(i) => {
            let d = Device::new_cuda(i)?;
            cuda::prepare(d.as_cuda_device()?)?;
            Ok(d)
        }
        #[cfg(not(feature = "cuda"))]
        GpuDevice::Cuda(i) => Err(Error::Device(format!(
            "cuda:{i}: this build has no CUDA (build with --features cuda)"
        ))),
        GpuDevice::None => Err(Error::Device("no GPU device to place slots on".into())),
    }
}

/// The name placements give a device.
pub fn device_name(d: &Device) -> String {
    match d.location() {
        candle_core::DeviceLocation::Cpu => "candle-cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// Free memory on CUDA device `i` (the driver's count), for automatic fitting.
#[cfg(feature = "cuda")]
pub fn cuda_free(i: usize) -> Option<u64> {
    cuda::free_memory(i)
}

/// One sequence's cache of one layer on the device: 2 × cells rows of kv_dim, K rows then V rows.
struct Cache {
    kv: Tensor,
    cells: usize,
}

/// Per-forward tables: host scratch and the fixed device tensors they are written into.
struct Tables {
    /// Rope rows (num_batch × head_dim: cos | sin) for global and local layers.
    rope_g: Tensor,
    rope_l: Tensor,
    /// The first position of each run of the batch (i32, num_batch).
    pos: Tensor,
    host_g: Vec<f32>,
    host_l: Vec<f32>,
    host_pos: Vec<i32>,
    /// The batch's runs: (seq, first position, tokens).
    runs: Vec<(usize, usize, Range<usize>)>,
}

/// The candle backend for some blocks (and perhaps the head) of one model.
pub struct CandleBackend {
    cfg: Gemma3Config,
    dev: Device,
    layers: Vec<Option<LayerW>>,
    head: Option<HeadW>,
    /// `kv[l][seq]`; empty for layers placed elsewhere.
    kv: Vec<Vec<Cache>>,
    num_ctx: usize,
    /// The residual stream and the head's input (num_batch × n_embd), written in place.
    x: Tensor,
    hidden: Tensor,
    /// The logits of `hidden`'s first row (1 × n_vocab) when the head is here, and whether
    /// they are current.
    logits1: Option<Tensor>,
    fresh: bool,
    /// Every other buffer's current value (the first `n` rows).
    bufs: [Option<Tensor>; 10],
    t: Tables,
    /// The decode graphs (CUDA).
    #[cfg(feature = "cuda")]
    graphs: Option<cuda::Graphs>,
    /// Candidates of the sampler's front end, read back from the device.
    front: Vec<f32>,
    /// Forwards hold whole sequences and keep nothing ([`Backend::uncached`]); the current one
    /// attends within the batch through these masks.
    uncached: bool,
    masks: Option<whole::Masks>,
}

fn slot(b: Buf) -> usize {
    b as usize
}

impl CandleBackend {
    /// Loads the blocks `placed[l]` (and the head when `head`) from `src` onto `dev`, and
    /// allocates their cache and the residual stream.
    pub fn load(
        src: &Weights,
        cfg: &Gemma3Config,
        placed: &[bool],
        head: bool,
        dev: Device,
        s: &Sizing,
        lora: &Lora,
    ) -> Result<Self> {
        let layers = (0..cfg.n_layer)
            .map(|l| placed[l].then(|| LayerW::load(src, cfg, l, lora, &dev)).transpose())
            .collect::<Result<Vec<_>>>()?;
        let head = if head { Some(HeadW::load(src, cfg, &dev)?) } else { None };
        let kv_dim = cfg.kv_dim();
        let mut kv = vec![];
        for (l, &p) in placed.iter().enumerate() {
            let mut slots = vec![];
            if p {
                let cells =
                    super::cpu::kv::KvCache::cells_for(cfg, l, s.num_ctx, s.num_batch, s.swa_full);
                for _ in 0..s.n_seq {
                    let kv = Tensor::zeros((2 * cells, kv_dim), DType::F32, &dev)?;
                    slots.push(Cache { kv, cells });
                }
            }
            kv.push(slots);
        }
        let (nb, hd) = (s.num_batch, cfg.head_dim);
        let zeros = |r: usize, c: usize| Tensor::zeros((r, c), DType::F32, &dev);
        let t = Tables {
            rope_g: zeros(nb, hd)?,
            rope_l: zeros(nb, hd)?,
            pos: Tensor::zeros(nb, DType::I32, &dev)?,
            host_g: vec![0f32; nb * hd],
            host_l: vec![0f32; nb * hd],
            host_pos: Vec::with_capacity(nb),
            runs: Vec::with_capacity(nb),
        };
        Ok(CandleBackend {
            x: zeros(nb, cfg.n_embd)?,
            hidden: zeros(nb, cfg.n_embd)?,
            logits1: if head.is_some() { Some(zeros(1, cfg.n_vocab)?) } else { None },
            fresh: false,
            #[cfg(feature = "cuda")]
            // an adapter's dense products go through cuBLAS, which chimera's graphs do not capture
            graphs: (s.graphs && dev.is_cuda() && lora.is_empty())
                .then(|| cuda::Graphs::new(s.n_seq)),
            cfg: cfg.clone(),
            dev,
            layers,
            head,
            kv,
            num_ctx: s.num_ctx,
            bufs: Default::default(),
            t,
            front: Vec::with_capacity(128),
            uncached: false,
            masks: None,
        })
    }

    fn layer(&self, l: usize) -> &LayerW {
        self.layers[l].as_ref().expect("invariant: the model calls a backend for its own blocks")
    }

    /// The fixed tensor behind a buffer that has one.
    fn fixed(&self, b: Buf) -> Option<&Tensor> {
        match b {
            Buf::X => Some(&self.x),
            Buf::Hidden => Some(&self.hidden),
            _ => None,
        }
    }

    fn get(&self, b: Buf, n: usize) -> Result<Tensor> {
        if let Some(t) = self.fixed(b) {
            return Ok(t.narrow(0, 0, n)?);
        }
        self.bufs[slot(b)].clone().ok_or_else(|| {
            Error::Device(format!("candle backend: {b:?} read before it was written"))
        })
    }

    fn set(&mut self, b: Buf, t: Tensor, n: usize) -> Result<()> {
        if let Some(f) = self.fixed(b) {
            return Ok(f.slice_set(&t.narrow(0, 0, n)?, 0, 0)?);
        }
        self.bufs[slot(b)] = Some(t);
        Ok(())
    }

    fn norm_w(&self, w: Norm) -> &Tensor {
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

    /// Stores tokens `b0..b1` of one sequence (consecutive positions from `p0`) into layer
    /// `l`'s cache: one copy per contiguous run of cells, two where the ring wraps.
    fn store(&self, l: usize, seq: usize, p0: usize, rows: (&Tensor, &Tensor)) -> Result<()> {
        let c = &self.kv[l][seq];
        let n = rows.0.dim(0)?;
        let mut done = 0;
        while done < n {
            let cell = (p0 + done) % c.cells;
            let len = (n - done).min(c.cells - cell);
            c.kv.slice_set(&rows.0.narrow(0, done, len)?.contiguous()?, 0, cell)?;
            c.kv.slice_set(&rows.1.narrow(0, done, len)?.contiguous()?, 0, c.cells + cell)?;
            done += len;
        }
        Ok(())
    }

    /// Attention of one run of tokens (one sequence at consecutive positions) over its cache:
    /// run `r` of the batch, whose first position is row `r` of the position table.
    fn attend_run(&self, l: usize, seq: usize, r: usize, q: &Tensor) -> Result<Tensor> {
        let c = &self.cfg;
        let cache = &self.kv[l][seq];
        let window = if c.is_global(l) { None } else { c.sliding_window };
        let op = DecodeAttention {
            n_head: c.n_head,
            n_kv: c.n_head_kv,
            head_dim: c.head_dim,
            cells: cache.cells,
            window,
        };
        Ok(q.contiguous()?.apply_op3_no_bwd(&cache.kv, &self.t.pos.narrow(0, r, 1)?, &op)?)
    }

    /// The logits of `hidden` rows `rows`, soft-capped when the model says.
    fn head_logits(&self, rows: Range<usize>) -> Result<Tensor> {
        let h = self.hidden.narrow(0, rows.start, rows.len())?;
        let head = self.head.as_ref().expect("invariant: the head is placed here");
        let mut l = head.w.forward(&h)?;
        if let Some(cap) = self.cfg.final_softcap {
            // ref: gemma3.cpp: logits = tanh(logits / cap) * cap when final_logit_softcapping is set
            l = ((l / cap as f64)?.tanh()? * cap as f64)?;
        }
        Ok(l)
    }

    /// The logits of `hidden` row `row`: the ones [`Backend::head`] left when current.
    fn row_logits(&self, row: usize) -> Result<Tensor> {
        match (&self.logits1, self.fresh && row == 0) {
            (Some(l), true) => Ok(l.clone()),
            _ => self.head_logits(row..row + 1),
        }
    }
}

/// The batch's runs into `out`: tokens of one sequence at consecutive positions, as
/// (seq, p0, b0..b1).
fn runs(batch: &Batch, out: &mut Vec<(usize, usize, Range<usize>)>) {
    out.clear();
    for b in 0..batch.len() {
        let (s, p) = (batch.seq(b), batch.pos(b));
        match out.last_mut() {
            Some((rs, rp, r)) if *rs == s && *rp + r.len() == p => r.end = b + 1,
            _ => out.push((s, p, b..b + 1)),
        }
    }
}

impl Backend for CandleBackend {
    fn device(&self) -> String {
        device_name(&self.dev)
    }

    fn begin(&mut self, batch: &Batch) -> Result<()> {
        let c = &self.cfg;
        let (hd, half, n) = (c.head_dim, c.head_dim / 2, batch.len());
        let t = &mut self.t;
        for b in 0..n {
            let p = batch.pos(b);
            let (gc, gs) = t.host_g[b * hd..(b + 1) * hd].split_at_mut(half);
            crate::backend::cpu::ops::rope_row(
                p,
                c.rope_base_global,
                c.rope_scale_global,
                hd,
                gc,
                gs,
            );
            let (lc, ls) = t.host_l[b * hd..(b + 1) * hd].split_at_mut(half);
            crate::backend::cpu::ops::rope_row(p, c.rope_base_local, 1.0, hd, lc, ls);
        }
        runs(batch, &mut t.runs);
        t.host_pos.clear();
        t.host_pos.extend(t.runs.iter().map(|r| r.1 as i32));
        t.rope_g.inplace_op1(&HostWrite::F32(&t.host_g[..n * hd]))?;
        t.rope_l.inplace_op1(&HostWrite::F32(&t.host_l[..n * hd]))?;
        t.pos.inplace_op1(&HostWrite::I32(&t.host_pos))?;
        self.fresh = false;
        // one token keeps the cache path, which a decode graph may replay
        self.masks = match (self.uncached, n > 1) {
            (true, true) => Some(whole::Masks::new(
                n,
                |b| batch.seq(b),
                |b| batch.pos(b),
                c.sliding_window,
                &self.dev,
            )?),
            _ => None,
        };
        Ok(())
    }

    fn upload(&mut self, buf: Buf, host: &[f32], n: usize) -> Result<()> {
        let w = self.width(buf);
        let t = Tensor::from_slice(&host[..n * w], (n, w), &self.dev)?;
        self.set(buf, t, n)
    }

    fn download(&mut self, buf: Buf, host: &mut [f32], n: usize) -> Result<()> {
        let w = self.width(buf);
        let v: Vec<f32> = self.get(buf, n)?.flatten_all()?.to_vec1()?;
        host[..n * w].copy_from_slice(&v);
        Ok(())
    }

    fn norm(&mut self, w: Norm, from: Buf, to: Buf, n: usize) -> Result<()> {
        let x = self.get(from, n)?;
        let y = x.apply_op2_no_bwd(self.norm_w(w), &RmsNorm { eps: self.cfg.rms_eps })?;
        self.set(to, y, n)
    }

    fn add_norm(&mut self, w: Norm, o: Buf, x: Buf, n: usize) -> Result<()> {
        let (xt, ot) = (self.get(x, n)?, self.get(o, n)?);
        xt.inplace_op3(&ot, self.norm_w(w), &AddRmsNorm { eps: self.cfg.rms_eps })?;
        Ok(())
    }

    fn matmul(&mut self, layer: usize, from: Buf, ops: &[(Mat, Buf)], n: usize) -> Result<()> {
        let x = self.get(from, n)?;
        for &(m, out) in ops {
            let y = self.layer(layer).forward(m, &x)?;
            self.set(out, y, n)?;
        }
        Ok(())
    }

    fn qk_norm_rope_store(&mut self, layer: usize, batch: &Batch) -> Result<()> {
        let c = &self.cfg;
        let n = batch.len();
        let rope = if c.is_global(layer) { &self.t.rope_g } else { &self.t.rope_l };
        let rope = rope.narrow(0, 0, n)?;
        let l = self.layer(layer);
        let q = self.get(Buf::Q, n)?.apply_op3_no_bwd(
            &l.q_norm,
            &rope,
            &QkNormRope {
                heads: c.n_head,
                head_dim: c.head_dim,
                eps: c.rms_eps,
                scale: c.attn_scale,
            },
        )?;
        let k = self.get(Buf::K, n)?.apply_op3_no_bwd(
            &l.k_norm,
            &rope,
            &QkNormRope { heads: c.n_head_kv, head_dim: c.head_dim, eps: c.rms_eps, scale: 1.0 },
        )?;
        if self.masks.is_some() {
            // attention reads them from the batch; nothing is kept
            self.bufs[slot(Buf::K)] = Some(k);
            self.bufs[slot(Buf::Q)] = Some(q);
            return Ok(());
        }
        let v = self.get(Buf::V, n)?;
        for (i, (seq, p0, r)) in self.t.runs.iter().enumerate() {
            let (k, v) = (k.narrow(0, r.start, r.len())?, v.narrow(0, r.start, r.len())?);
            if r.len() == 1 {
                // one token: its position from the fixed table, so that a graph can replay it
                let cache = &self.kv[layer][*seq];
                let pos = self.t.pos.narrow(0, i, 1)?;
                cache.kv.inplace_op3(
                    &k.contiguous()?,
                    &pos,
                    &StoreKv { cells: cache.cells, v: false },
                )?;
                cache.kv.inplace_op3(
                    &v.contiguous()?,
                    &pos,
                    &StoreKv { cells: cache.cells, v: true },
                )?;
            } else {
                self.store(layer, *seq, *p0, (&k, &v))?;
            }
        }
        self.bufs[slot(Buf::Q)] = Some(q);
        Ok(())
    }

    fn attention(&mut self, layer: usize, batch: &Batch) -> Result<()> {
        let q = self.get(Buf::Q, batch.len())?;
        if let Some(m) = &self.masks {
            let n = batch.len();
            let (k, v) = (self.get(Buf::K, n)?, self.get(Buf::V, n)?);
            let mask = if self.cfg.is_global(layer) { &m.global } else { &m.sliding };
            let att = whole::attend(&q, &k, &v, mask, self.cfg.n_head)?;
            self.bufs[slot(Buf::Att)] = Some(att);
            return Ok(());
        }
        let mut outs = Vec::with_capacity(self.t.runs.len());
        for (i, (seq, _, r)) in self.t.runs.iter().enumerate() {
            outs.push(self.attend_run(layer, *seq, i, &q.narrow(0, r.start, r.len())?)?);
        }
        let att =
            if outs.len() == 1 { outs.pop().expect("one run") } else { Tensor::cat(&outs, 0)? };
        self.bufs[slot(Buf::Att)] = Some(att);
        Ok(())
    }

    fn uncached(&mut self, on: bool) {
        self.uncached = on;
    }

    fn gelu_mul(&mut self, n: usize) -> Result<()> {
        let (g, u) = (self.get(Buf::Gate, n)?, self.get(Buf::Up, n)?);
        let y = g.apply_op2_no_bwd(&u, &GeluMul)?;
        self.set(Buf::Gate, y, n)
    }

    fn logits(&mut self, rows: Range<usize>, out: &mut [f32]) -> Result<()> {
        let l = if rows == (0..1) { self.row_logits(0)? } else { self.head_logits(rows)? };
        let v: Vec<f32> = l.flatten_all()?.to_vec1()?;
        out[..v.len()].copy_from_slice(&v);
        Ok(())
    }

    fn head(&mut self) -> Result<()> {
        let Some(dst) = &self.logits1 else { return Ok(()) };
        dst.slice_set(&self.head_logits(0..1)?, 0, 0)?;
        self.fresh = true;
        Ok(())
    }

    fn has_front(&self) -> bool {
        self.head.is_some()
    }

    fn sample_front(&mut self, row: usize, f: &Front, out: &mut Vec<(u32, f32)>) -> Result<bool> {
        let op = SampleFront {
            k: f.k,
            repeat_penalty: f.repeat_penalty,
            frequency_penalty: f.frequency_penalty,
            presence_penalty: f.presence_penalty,
        };
        let pairs = Tensor::from_slice(f.pairs, f.pairs.len(), &self.dev)?;
        let c = self.row_logits(row)?.flatten_all()?.apply_op2_no_bwd(&pairs, &op)?;
        self.front.clear();
        self.front.extend(c.flatten_all()?.to_vec1::<f32>()?);
        out.clear();
        out.extend(self.front.chunks_exact(2).map(|p| (p[0] as u32, p[1])));
        Ok(true)
    }

    #[cfg(feature = "cuda")]
    fn step_begin(&mut self, seq: usize) -> Result<Step> {
        let Some(g) = self.graphs.as_mut() else { return Ok(Step::Eager) };
        let dev = self.dev.as_cuda_device()?;
        // nothing from an earlier step may be freed inside a capture
        self.bufs = Default::default();
        Ok(g.begin(dev, seq)?)
    }

    #[cfg(feature = "cuda")]
    fn step_end(&mut self, seq: usize, step: Step, ok: bool) -> Result<bool> {
        let Some(g) = self.graphs.as_mut() else { return Ok(false) };
        if step == Step::Capture {
            // the step's buffers are freed inside the graph that allocated them
            self.bufs = Default::default();
        }
        // a graph computed the head; an eager step's head() said so itself
        self.fresh |= step != Step::Eager;
        Ok(g.end(self.dev.as_cuda_device()?, seq, step, ok)?)
    }

    #[cfg(feature = "cuda")]
    fn graph_info(&self) -> (Option<usize>, Option<String>) {
        self.graphs.as_ref().map_or((None, None), |g| (g.kernels, g.note.clone()))
    }

    fn reusable(&self, _seq: usize, keep: usize, len: usize) -> bool {
        let Some(w) = self.cfg.sliding_window else { return true };
        self.kv
            .iter()
            .filter_map(|s| s.first())
            .all(|c| c.cells >= self.num_ctx || len - keep + w <= c.cells + 1)
    }

    fn copy_seq(&mut self, from: usize, to: usize) -> Result<()> {
        if from != to {
            for slots in &self.kv {
                if let (Some(f), Some(t)) = (slots.get(from), slots.get(to)) {
                    t.kv.slice_set(&f.kv, 0, 0)?;
                }
            }
        }
        Ok(())
    }

    fn kv_bytes(&self) -> u64 {
        self.kv.iter().flatten().map(|c| (2 * c.cells * self.cfg.kv_dim() * 4) as u64).sum()
    }

    fn weight_bytes(&self) -> u64 {
        self.layers.iter().flatten().map(|l| l.bytes).sum::<u64>()
            + self.head.as_ref().map_or(0, |h| h.bytes)
    }

    fn sync(&self) -> Result<()> {
        Ok(self.dev.synchronize()?)
    }
}
