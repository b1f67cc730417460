//! The operations a gemma3 block is made of, at the granularity of chimera's kernels, as one
//! interface over backends (as llama.cpp's one graph runs over ggml backends): `cpu` (chimera's
//! own kernels over preallocated buffers) and `candle` (candle tensors on a `candle_core::Device`,
//! the CPU or, with the `cuda` feature, a GPU). Each backend owns the weights, the KV cache and
//! the activation buffers of the blocks placed on it; the block is written once, in
//! `model::block`, against this trait.
//!
//! A batch may carry tokens of several sequences, each token with its own position and KV slot
//! (sequence), so that one forward can serve several requests (continuous batching).

pub use cpu::quant::KvType;
pub mod candle;
pub mod cpu;
pub mod lora;

use crate::error::Result;
use std::ops::Range;

/// Activation buffers; each backend holds its own, sized at load for `num_batch` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Buf {
    /// The residual stream (batch, n_embd).
    X,
    /// The normed input of a sub-block (batch, n_embd).
    Xn,
    /// Queries (batch, n_head·head_dim).
    Q,
    /// Keys and values of the batch (batch, n_head_kv·head_dim).
    K,
    V,
    /// Attention output (batch, n_head·head_dim).
    Att,
    /// A sub-block's output (batch, n_embd).
    O,
    /// The MLP's gate and up projections (batch, n_ff).
    Gate,
    Up,
    /// Final-normed states (batch, n_embd), the head's input.
    Hidden,
}

impl Buf {
    /// Values per row.
    pub fn width(self, c: &crate::config::Gemma3Config) -> usize {
        match self {
            Buf::Q | Buf::Att => c.q_dim(),
            Buf::K | Buf::V => c.kv_dim(),
            Buf::Gate | Buf::Up => c.n_ff,
            _ => c.n_embd,
        }
    }
}

/// The norm weights of a block, or the output norm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Norm {
    Attn(usize),
    PostAttn(usize),
    Ffn(usize),
    PostFfw(usize),
    Output,
}

/// The matrices of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mat {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

/// Where each token of a forward goes: its sequence (KV slot) and position. The common case, one
/// sequence at consecutive positions, needs no per-token storage.
#[derive(Debug, Clone, Copy)]
pub enum Batch<'a> {
    /// `n` tokens of sequence `seq` at positions `pos0..pos0 + n`.
    Run { seq: usize, pos0: usize, n: usize },
    /// Token `b` belongs to sequence `seq[b]` at position `pos[b]`; a sequence's tokens come in
    /// position order.
    Mixed { seq: &'a [usize], pos: &'a [usize] },
}

impl Batch<'_> {
    /// Tokens in the batch.
    #[inline]
    pub fn len(&self) -> usize {
        match self {
            Batch::Run { n, .. } => *n,
            Batch::Mixed { pos, .. } => pos.len(),
        }
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The position of token `b`.
    #[inline]
    pub fn pos(&self, b: usize) -> usize {
        match self {
            Batch::Run { pos0, .. } => pos0 + b,
            Batch::Mixed { pos, .. } => pos[b],
        }
    }

    /// The sequence (KV slot) of token `b`.
    #[inline]
    pub fn seq(&self, b: usize) -> usize {
        match self {
            Batch::Run { seq, .. } => *seq,
            Batch::Mixed { seq, .. } => seq[b],
        }
    }
}

/// What runs the plan's GPU slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum GpuDevice {
    /// No GPU backend: every slot runs on the CPU.
    None,
    /// The candle backend on candle's CPU device (`CHIMERA_DEVICE=candle-cpu`): every placement
    /// testable without a GPU.
    CandleCpu,
    /// The candle backend on CUDA device N (the `cuda` feature).
    Cuda(usize),
}

impl GpuDevice {
    /// What a build runs GPU slots on when nothing is asked: CUDA device `main_gpu` in a CUDA
    /// build, nothing otherwise.
    pub fn for_build(main_gpu: usize) -> GpuDevice {
        if cfg!(feature = "cuda") {
            GpuDevice::Cuda(main_gpu)
        } else {
            GpuDevice::None
        }
    }
}

/// Free memory of the device that runs GPU slots, for automatic fitting (`num_gpu` −1): the
/// driver's count for CUDA, the host's available memory for candle's CPU device, `None` without
/// a GPU backend.
pub fn free_memory(gpu: GpuDevice) -> Option<u64> {
    match gpu {
        GpuDevice::None => None,
        GpuDevice::CandleCpu => host_available(),
        #[cfg(feature = "cuda")]
        GpuDevice::Cuda(i) => candle::cuda_free(i),
        #[cfg(not(feature = "cuda"))]
        GpuDevice::Cuda(_) => None,
    }
}

/// MemAvailable from /proc/meminfo, in bytes.
fn host_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// How a backend runs a single-token decode step (see [`Backend::step_begin`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The step's operations run as they are called.
    Eager,
    /// The step's operations are recorded into a graph, launched at [`Backend::step_end`].
    Capture,
    /// A recorded graph ran the whole step: the operations must not be called.
    Replayed,
}

/// The sampler chain's first stages, for a backend that runs them next to the logits.
#[derive(Debug, Clone, Copy)]
pub struct Front<'a> {
    /// Candidates to return (1 for greedy decoding).
    pub k: usize,
    pub repeat_penalty: f32,
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
    /// The penalty window as (id, count) pairs, each distinct id once.
    pub pairs: &'a [i32],
}

/// What a backend is asked to hold, fixed at load.
#[derive(Debug, Clone)]
pub struct Sizing {
    pub num_ctx: usize,
    /// Tokens per forward at most.
    pub num_batch: usize,
    /// KV slots (sequences) at once.
    pub n_seq: usize,
    /// Sliding-window layers keep every position (llama.cpp's `--swa-full`).
    pub swa_full: bool,
    /// How the cpu backend's KV cache stores K and V (the candle backend's is f32).
    pub kv_type: KvType,
    pub threads: usize,
    /// Single-token decode steps may be replayed as device graphs (CUDA).
    pub graphs: bool,
}

/// One backend: the operations of the gemma3 block over its own buffers, weights and KV cache.
/// Every operation works on the first `n` rows of its buffers (`batch.len()` tokens).
pub trait Backend: Send {
    /// The device it runs on, as placements name it (`cpu`, `candle-cpu`, `cuda:0`).
    fn device(&self) -> String;

    /// Prepares a forward over `batch` (rope tables, masks), before its first block here.
    fn begin(&mut self, batch: &Batch) -> Result<()>;

    /// Copies `n` rows from the host into a buffer (the first block's input, a boundary hop).
    fn upload(&mut self, buf: Buf, host: &[f32], n: usize) -> Result<()>;

    /// Copies `n` rows of a buffer to the host.
    fn download(&mut self, buf: Buf, host: &mut [f32], n: usize) -> Result<()>;

    /// `to ← RMSNorm(from) · w` row by row.
    fn norm(&mut self, w: Norm, from: Buf, to: Buf, n: usize) -> Result<()>;

    /// `x ← x + RMSNorm(o) · w` row by row (a post-norm and the residual add, fused).
    fn add_norm(&mut self, w: Norm, o: Buf, x: Buf, n: usize) -> Result<()>;

    /// For each `(m, out)`: `out ← from · mᵀ` with the matrices of `layer`; matrices that read
    /// the same input share one activation quantization and one dispatch.
    fn matmul(&mut self, layer: usize, from: Buf, ops: &[(Mat, Buf)], n: usize) -> Result<()>;

    /// Q and K per head: RMSNorm with the layer's QK-norm weights, NEOX rope at each token's
    /// position (the layer's base), Q scaled by the attention scale; K and V then stored in the
    /// layer's cache at each token's sequence and position.
    fn qk_norm_rope_store(&mut self, layer: usize, batch: &Batch) -> Result<()>;

    /// `Att ←` each token's queries over its sequence's cached keys and values: causal, and on
    /// sliding layers only the last `sliding_window` positions.
    fn attention(&mut self, layer: usize, batch: &Batch) -> Result<()>;

    /// Whether the coming forwards hold every sequence whole from position 0, in order and
    /// side by side, and need nothing kept (an embedding request's inputs): a backend then
    /// attends within the batch and leaves its cache alone, for the sequence ids of such a
    /// forward are not KV slots — any number of inputs share one forward. A forward of one
    /// token is the exception: its id is a free slot, whose cache it may use.
    fn uncached(&mut self, on: bool);

    /// `Gate ← gelu(Gate) ⊙ Up` (GELU-tanh, as ggml's f16 table rounds it).
    fn gelu_mul(&mut self, n: usize) -> Result<()>;

    /// Logits of `Hidden` rows `rows` into `out` (`rows.len() × n_vocab`), soft-capped when the
    /// model says; the head must be on this backend.
    fn logits(&mut self, rows: Range<usize>, out: &mut [f32]) -> Result<()>;

    /// Computes the logits of the first `Hidden` row where the backend keeps them for
    /// [`Backend::logits`] and [`Backend::sample_front`] to read — a device backend, so that a
    /// decode graph holds the head too. A backend that computes logits as they are read does
    /// nothing.
    fn head(&mut self) -> Result<()> {
        Ok(())
    }

    /// Whether [`Backend::sample_front`] runs here.
    fn has_front(&self) -> bool {
        false
    }

    /// The sampler's front end next to the logits of `Hidden` row `row`: penalties, then the
    /// `k` best `(id, logit)` pairs, descending (ties to the lower id), into `out`. False when
    /// the backend has none, and the host samples the whole row.
    fn sample_front(
        &mut self,
        _row: usize,
        _front: &Front,
        _out: &mut Vec<(u32, f32)>,
    ) -> Result<bool> {
        Ok(false)
    }

    /// Begins a single-token decode step of sequence `seq` whose input is already uploaded
    /// (a backend that holds the whole model); see [`Step`].
    fn step_begin(&mut self, _seq: usize) -> Result<Step> {
        Ok(Step::Eager)
    }

    /// Ends the step begun in `step` (`ok`: its operations succeeded). True when a capture
    /// failed and the step must run again eagerly.
    fn step_end(&mut self, _seq: usize, _step: Step, _ok: bool) -> Result<bool> {
        Ok(false)
    }

    /// Kernel launches in one captured decode step (a graph's kernel nodes), once captured; a
    /// note when capture failed.
    fn graph_info(&self) -> (Option<usize>, Option<String>) {
        (None, None)
    }

    /// Whether sequence `seq`'s first `keep` of `len` cached positions survive for reuse in every
    /// sliding-window ring of this backend.
    fn reusable(&self, seq: usize, keep: usize, len: usize) -> bool;

    /// Makes sequence `to`'s cache a copy of sequence `from`'s.
    fn copy_seq(&mut self, from: usize, to: usize) -> Result<()>;

    /// Bytes of KV cache this backend holds.
    fn kv_bytes(&self) -> u64;

    /// Bytes of weights this backend holds.
    fn weight_bytes(&self) -> u64;

    /// Waits for queued work (a device backend), so that a clock read after it is true.
    fn sync(&self) -> Result<()> {
        Ok(())
    }
}

/// Rows `b` of a buffer of rows `width` wide.
#[inline]
pub fn rows(b: Range<usize>, width: usize) -> Range<usize> {
    b.start * width..b.end * width
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_say_where_each_token_goes() {
        let run = Batch::Run { seq: 2, pos0: 10, n: 3 };
        assert_eq!((run.len(), run.pos(2), run.seq(1)), (3, 12, 2));
        let (seq, pos) = ([0, 0, 1], [5, 6, 0]);
        let mixed = Batch::Mixed { seq: &seq, pos: &pos };
        assert_eq!((mixed.len(), mixed.pos(1), mixed.seq(2), mixed.pos(2)), (3, 6, 1, 0));
    }
}
