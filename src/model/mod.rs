//! The gemma3 model over its backends: the token embedding on the host, each block on the backend
//! its placement gives it, the head where the plan puts it; activations cross a backend boundary
//! once per direction per forward.
//!
//! Architecture (ref: llama.cpp src/models/gemma3.cpp; HF transformers modeling_gemma3.py):
//! token embedding × √n_embd; per block a "sandwich" of RMSNorms around attention and the MLP
//! ([`block`]); grouped-query attention with RMS-normed Q and K (QK-norm) and NEOX rope, base 10000
//! on sliding layers and `rope.freq_base` (optionally linearly scaled) on every sixth, global
//! layer; sliding layers see the last `sliding_window` positions; GELU-tanh gated MLP; output head
//! tied to the embedding unless `output.weight` exists; optional final logit soft-cap.

pub mod block;
pub mod dense;

pub use crate::config::{size_label, Gemma3Config};

use crate::backend::candle::safetensors::Folder;
use crate::backend::cpu::{quant, CpuBackend};
use crate::backend::lora::{self, Adapter};
pub use crate::backend::GpuDevice;
use crate::backend::{Backend, Batch, Buf, Front, Norm, Sizing, Step};
use crate::error::{Error, Result};
use crate::gguf::{Gguf, TensorType};
use crate::offload::{Placement, Plan};
use std::ops::Range;
use std::sync::Arc;

/// One slot's device, as `run --json` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SlotDevice {
    pub slot: String,
    pub device: String,
}

/// The token embedding, read on the host a row per token.
enum Embedding {
    /// A GGUF tensor in place in the mapped file.
    Gguf { gguf: Arc<Gguf>, ty: TensorType, offset: usize, row_bytes: usize },
    /// A safetensors folder's `embed_tokens` (bf16, f16 or f32) in place in its mapped files.
    Dense(Arc<Folder>),
}

/// A loaded gemma3 model.
pub struct Model {
    pub cfg: Gemma3Config,
    /// The GGUF file, for a model loaded from one.
    pub gguf: Option<Arc<Gguf>>,
    embd: Embedding,
    backends: Vec<Box<dyn Backend>>,
    /// The backend of each block, and of the head.
    block_on: Vec<usize>,
    head_on: usize,
    /// (num_batch, n_embd): the embedded batch and the residual stream at boundary hops.
    host: Vec<f32>,
    max_batch: usize,
    /// Projections after pooling (EmbeddingGemma), in order; none for gemma3.
    pub dense: Vec<dense::Dense>,
}

impl Model {
    /// Builds the backends the plan needs (the CPU one for CPU slots, the candle one on `gpu`
    /// for GPU slots; with no GPU backend every slot runs on the CPU), each with its weights,
    /// cache and buffers.
    pub fn load(
        gguf: Gguf,
        plan: &Plan,
        gpu: GpuDevice,
        s: &Sizing,
        adapters: &[Adapter],
    ) -> Result<Model> {
        let cfg = Gemma3Config::from_gguf(&gguf)?;
        let arch = gguf.metadata.get("general.architecture").and_then(|v| v.as_str());
        let lora = Arc::new(lora::load(adapters, arch.unwrap_or("gemma3"), &cfg)?);
        // the candle backend attends causally only: a bidirectional model runs on the CPU
        let gpu = if cfg.causal { gpu } else { GpuDevice::None };
        let gguf = Arc::new(gguf);
        let n = cfg.n_layer;
        let on_gpu = |p: Placement| p == Placement::Gpu && gpu != GpuDevice::None;
        let gpu_blocks: Vec<bool> = plan.blocks.iter().map(|p| on_gpu(*p)).collect();
        let head_gpu = on_gpu(plan.head);
        let cpu_blocks: Vec<bool> = gpu_blocks.iter().map(|g| !g).collect();
        let mut backends: Vec<Box<dyn Backend>> = vec![];
        let (mut cpu_at, mut gpu_at) = (None, None);
        if cpu_blocks.iter().any(|b| *b) || !head_gpu {
            backends.push(Box::new(CpuBackend::load(
                gguf.clone(),
                &cfg,
                &cpu_blocks,
                !head_gpu,
                s,
                lora.clone(),
            )?));
            cpu_at = Some(backends.len() - 1);
        }
        if gpu_blocks.iter().any(|b| *b) || head_gpu {
            let dev = crate::backend::candle::device(gpu)?;
            let src = crate::backend::candle::Weights::Gguf(gguf.clone());
            backends.push(Box::new(crate::backend::candle::CandleBackend::load(
                &src,
                &cfg,
                &gpu_blocks,
                head_gpu,
                dev,
                s,
                &lora,
            )?));
            gpu_at = Some(backends.len() - 1);
        }
        let at =
            |g: bool| if g { gpu_at } else { cpu_at }.expect("invariant: a backend for every slot");
        let t = gguf.tensor("token_embd.weight").ok_or_else(|| Error::Tensor {
            path: gguf.path.clone(),
            name: "token_embd.weight".into(),
            what: "missing".into(),
        })?;
        let embd = Embedding::Gguf {
            gguf: gguf.clone(),
            ty: t.ty,
            offset: t.offset as usize,
            row_bytes: t.bytes as usize / cfg.n_vocab,
        };
        let dense = dense::load(&gguf, cfg.n_embd)?;
        Ok(Model {
            dense,
            block_on: (0..n).map(|l| at(gpu_blocks[l])).collect(),
            head_on: at(head_gpu),
            host: vec![0f32; s.num_batch * cfg.n_embd],
            max_batch: s.num_batch,
            backends,
            embd,
            gguf: Some(gguf),
            cfg,
        })
    }

    /// A Hugging Face folder: every block and the head on the candle backend on `gpu` (candle's
    /// CPU device when there is no GPU), the embedding on the host.
    pub fn load_folder(folder: Folder, gpu: GpuDevice, s: &Sizing) -> Result<Model> {
        let gpu = if gpu == GpuDevice::None { GpuDevice::CandleCpu } else { gpu };
        let cfg = folder.cfg.clone();
        let folder = Arc::new(folder);
        let src = crate::backend::candle::Weights::Safetensors(folder.clone());
        let all = vec![true; cfg.n_layer];
        let dev = crate::backend::candle::device(gpu)?;
        let b = crate::backend::candle::CandleBackend::load(
            &src,
            &cfg,
            &all,
            true,
            dev,
            s,
            &Default::default(),
        )?;
        Ok(Model {
            block_on: vec![0; cfg.n_layer],
            head_on: 0,
            host: vec![0f32; s.num_batch * cfg.n_embd],
            max_batch: s.num_batch,
            backends: vec![Box::new(b)],
            embd: Embedding::Dense(folder),
            dense: vec![],
            gguf: None,
            cfg,
        })
    }

    /// Bytes of weights in block `l` (for the offload planner).
    pub fn layer_bytes(g: &Gguf, l: usize) -> u64 {
        let prefix = format!("blk.{l}.");
        g.tensors.iter().filter(|t| t.name.starts_with(&prefix)).map(|t| t.bytes).sum()
    }

    /// The device of every block and of the head (`output`).
    pub fn placement(&self) -> Vec<SlotDevice> {
        let slot =
            |name: String, b: usize| SlotDevice { slot: name, device: self.backends[b].device() };
        let mut v: Vec<SlotDevice> =
            self.block_on.iter().enumerate().map(|(l, &b)| slot(format!("blk.{l}"), b)).collect();
        v.push(slot("output".into(), self.head_on));
        v
    }

    /// Runs the batch through every block, writing K/V into each block's cache, and leaves the
    /// final-normed hidden state of each token on the head's backend. A single token on a model
    /// held by one backend is a decode step, which that backend may replay as a graph.
    pub fn forward(&mut self, tokens: &[u32], batch: &Batch) -> Result<()> {
        let n = tokens.len();
        assert_eq!(n, batch.len(), "invariant: one position per token");
        assert!(n <= self.max_batch, "invariant: the engine splits prompts into n_batch pieces");
        self.embed(tokens)?;
        for b in &mut self.backends {
            b.begin(batch)?;
        }
        if let ([b], 1) = (self.backends.as_mut_slice(), n) {
            return step(b.as_mut(), &self.host, self.cfg.n_layer, batch);
        }
        let mut cur: Option<usize> = None;
        for l in 0..self.cfg.n_layer {
            self.hop(&mut cur, self.block_on[l], n)?;
            block::forward(self.backends[self.block_on[l]].as_mut(), l, batch)?;
        }
        self.hop(&mut cur, self.head_on, n)?;
        self.backends[self.head_on].norm(Norm::Output, Buf::X, Buf::Hidden, n)
    }

    /// Whether the coming forwards hold every sequence whole from position 0 and need nothing
    /// kept in the cache (embeddings): backends attend within the batch ([`Backend::uncached`]).
    pub fn set_uncached(&mut self, on: bool) {
        self.backends.iter_mut().for_each(|b| b.uncached(on));
    }

    /// Moves the residual stream to backend `to` (through the host) when it is elsewhere; the
    /// first call uploads the embedded batch.
    fn hop(&mut self, cur: &mut Option<usize>, to: usize, n: usize) -> Result<()> {
        if *cur == Some(to) {
            return Ok(());
        }
        if let Some(from) = *cur {
            self.backends[from].download(Buf::X, &mut self.host, n)?;
        }
        self.backends[to].upload(Buf::X, &self.host, n)?;
        *cur = Some(to);
        Ok(())
    }

    /// embedding × √n_embd into the host buffer (ref: gemma3.cpp: ggml_scale(inpL, sqrtf(n_embd))).
    fn embed(&mut self, tokens: &[u32]) -> Result<()> {
        let (e, nv) = (self.cfg.n_embd, self.cfg.n_vocab);
        let scale = (e as f32).sqrt();
        for (b, &t) in tokens.iter().enumerate() {
            if t as usize >= nv {
                return Err(Error::TokenId { id: t, n_vocab: nv });
            }
            let x = &mut self.host[b * e..(b + 1) * e];
            match &self.embd {
                Embedding::Gguf { gguf, ty, offset, row_bytes } => {
                    let at = offset + t as usize * row_bytes;
                    quant::dequantize(*ty, &gguf.bytes()[at..at + row_bytes], x);
                }
                Embedding::Dense(f) => f.embed_row(t as usize, x)?,
            }
            x.iter_mut().for_each(|v| *v *= scale);
        }
        Ok(())
    }

    /// The final-normed hidden states of the last forward's first `n` rows (`n × n_embd`), in
    /// the host buffer the next forward overwrites.
    pub fn hidden(&mut self, n: usize) -> Result<&[f32]> {
        let e = self.cfg.n_embd;
        self.backends[self.head_on].download(Buf::Hidden, &mut self.host, n)?;
        self.backends[self.head_on].sync()?;
        Ok(&self.host[..n * e])
    }

    /// Logits for hidden rows `rows` of the last forward, into `out` (`rows.len() × n_vocab`).
    pub fn logits(&mut self, rows: Range<usize>, out: &mut [f32]) -> Result<()> {
        self.backends[self.head_on].logits(rows, out)
    }

    /// Whether the head's backend has a sampling front end.
    pub fn has_front(&self) -> bool {
        self.backends[self.head_on].has_front()
    }

    /// The sampler's front end next to the logits of hidden row `row`, where the head's backend
    /// has one (see [`Backend::sample_front`]); false when the host must sample the full row.
    pub fn sample_front(
        &mut self,
        row: usize,
        front: &Front,
        out: &mut Vec<(u32, f32)>,
    ) -> Result<bool> {
        self.backends[self.head_on].sample_front(row, front, out)
    }

    /// Kernel launches of one eager decode step, as the captured graph counts them, and a note
    /// when capture failed (CUDA graphs; `(None, None)` elsewhere).
    pub fn graph_info(&self) -> (Option<usize>, Option<String>) {
        self.backends[self.head_on].graph_info()
    }

    /// Whether sequence `seq`'s first `keep` of `len` cached positions can be reused.
    pub fn reusable(&self, seq: usize, keep: usize, len: usize) -> bool {
        self.backends.iter().all(|b| b.reusable(seq, keep, len))
    }

    /// Makes sequence `to`'s cache a copy of sequence `from`'s on every backend.
    pub fn copy_seq(&mut self, from: usize, to: usize) -> Result<()> {
        self.backends.iter_mut().try_for_each(|b| b.copy_seq(from, to))
    }

    /// Bytes of KV cache on every backend.
    pub fn kv_bytes(&self) -> u64 {
        self.backends.iter().map(|b| b.kv_bytes()).sum()
    }

    /// Waits for every backend's queued work.
    pub fn sync(&self) -> Result<()> {
        self.backends.iter().try_for_each(|b| b.sync())
    }

    /// Embedding rows in the file (the vocabulary size).
    pub fn n_vocab(&self) -> usize {
        self.cfg.n_vocab
    }

    /// Bytes of weights on every backend, and of the host embedding.
    pub fn weight_bytes(&self) -> u64 {
        self.backends.iter().map(|b| b.weight_bytes()).sum()
    }

    /// Bytes of weights and KV cache on each backend's device.
    pub fn device_bytes(&self) -> Vec<(String, u64)> {
        self.backends.iter().map(|b| (b.device(), b.weight_bytes() + b.kv_bytes())).collect()
    }

    /// The distinct devices the model runs on, in slot order (`cpu`, `candle-cpu`, `cuda:0`).
    pub fn devices(&self) -> Vec<String> {
        let mut v: Vec<String> = vec![];
        for d in self.placement().into_iter().map(|p| p.device) {
            if !v.contains(&d) {
                v.push(d);
            }
        }
        v
    }
}

/// One decode step on the backend that holds the whole model: the input uploaded, then the
/// blocks, the output norm and the head — eagerly, recorded into a graph, or replayed from one.
fn step(b: &mut dyn Backend, host: &[f32], n_layer: usize, batch: &Batch) -> Result<()> {
    let body = |b: &mut dyn Backend| -> Result<()> {
        for l in 0..n_layer {
            block::forward(b, l, batch)?;
        }
        b.norm(Norm::Output, Buf::X, Buf::Hidden, 1)?;
        b.head()
    };
    b.upload(Buf::X, host, 1)?;
    let seq = batch.seq(0);
    let mode = b.step_begin(seq)?;
    if mode == Step::Replayed {
        return b.step_end(seq, mode, true).map(|_| ());
    }
    let r = body(b);
    if b.step_end(seq, mode, r.is_ok())? {
        return body(b);
    }
    r
}
