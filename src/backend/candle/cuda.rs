//! The CUDA side of chimera's custom ops: the PTX build.rs compiles from `kernels/*.cu`, loaded
//! through candle's custom-kernel API (`CudaDevice::get_or_load_custom_func`) and launched on
//! candle's stream; and the driver's free-memory count for automatic fitting.

use super::kernels::{DecodeAttention, HostWrite, QkNormRope, SampleFront, StoreKv};
use crate::backend::Step;
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, CudaViewMut, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaDevice, CudaStorage, WrapErr};
use candle_core::{bail, Layout, Result, Shape};

const NORM: &str = include_str!(concat!(env!("OUT_DIR"), "/norm.ptx"));
const MLP: &str = include_str!(concat!(env!("OUT_DIR"), "/mlp.ptx"));
const ATTENTION: &str = include_str!(concat!(env!("OUT_DIR"), "/attention.ptx"));
const SAMPLE: &str = include_str!(concat!(env!("OUT_DIR"), "/sample.ptx"));

fn view<'a>(s: &'a CudaStorage, l: &Layout) -> Result<CudaView<'a, f32>> {
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("chimera kernels need contiguous inputs")
    };
    Ok(s.as_cuda_slice::<f32>()?.slice(a..b))
}

fn view_i32<'a>(s: &'a CudaStorage, l: &Layout) -> Result<CudaView<'a, i32>> {
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("chimera kernels need contiguous inputs")
    };
    Ok(s.as_cuda_slice::<i32>()?.slice(a..b))
}

fn view_mut<'a>(s: &'a mut CudaStorage, l: &Layout) -> Result<CudaViewMut<'a, f32>> {
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("chimera kernels need contiguous inputs")
    };
    Ok(s.as_cuda_slice_mut::<f32>()?.slice_mut(a..b))
}

fn grid(x: u32, y: u32, block: u32) -> LaunchConfig {
    LaunchConfig { grid_dim: (x, y, 1), block_dim: (block, 1, 1), shared_mem_bytes: 0 }
}

/// Threads for a row of `d`: a multiple of 32, at most 1024.
fn row_block(d: usize) -> u32 {
    (d.next_multiple_of(32)).clamp(32, 1024) as u32
}

fn wrap(out: CudaSlice<f32>, dev: &CudaDevice, shape: &Shape) -> (CudaStorage, Shape) {
    (CudaStorage::wrap_cuda_slice(out, dev.clone()), shape.clone())
}

pub fn rms_norm(
    eps: f32,
    s1: &CudaStorage,
    l1: &Layout,
    s2: &CudaStorage,
    l2: &Layout,
) -> Result<(CudaStorage, Shape)> {
    let dev = &s1.device;
    let (x, w) = (view(s1, l1)?, view(s2, l2)?);
    let d = w.len();
    let rows = x.len() / d;
    // SAFETY: every element is written by the kernel.
    let y = unsafe { dev.alloc::<f32>(x.len())? };
    let f = dev.get_or_load_custom_func("chimera_rms_norm", "chimera_norm", NORM)?;
    let mut b = f.builder();
    b.arg(&x);
    b.arg(&w);
    b.arg(&y);
    let (d32, e) = (d as i32, eps);
    b.arg(&d32);
    b.arg(&e);
    // SAFETY: the kernel's arguments are the slices and scalars above, in its order.
    unsafe { b.launch(grid(rows as u32, 1, row_block(d))) }.w()?;
    Ok(wrap(y, dev, l1.shape()))
}

pub fn add_rms_norm(
    eps: f32,
    dst: &mut CudaStorage,
    dl: &Layout,
    srcs: [(&CudaStorage, &Layout); 2],
) -> Result<()> {
    let dev = dst.device.clone();
    let (o, w) = (view(srcs[0].0, srcs[0].1)?, view(srcs[1].0, srcs[1].1)?);
    let d = w.len();
    let rows = o.len() / d;
    let mut x = view_mut(dst, dl)?;
    let f = dev.get_or_load_custom_func("chimera_add_rms_norm", "chimera_norm", NORM)?;
    let mut b = f.builder();
    b.arg(&mut x);
    b.arg(&o);
    b.arg(&w);
    let (d32, e) = (d as i32, eps);
    b.arg(&d32);
    b.arg(&e);
    // SAFETY: as in rms_norm.
    unsafe { b.launch(grid(rows as u32, 1, row_block(d))) }.w()?;
    Ok(())
}

pub fn qk_norm_rope(
    op: &QkNormRope,
    s: [(&CudaStorage, &Layout); 3],
) -> Result<(CudaStorage, Shape)> {
    let dev = &s[0].0.device;
    let (x, w, cs) = (view(s[0].0, s[0].1)?, view(s[1].0, s[1].1)?, view(s[2].0, s[2].1)?);
    let rows = x.len() / (op.heads * op.head_dim);
    // SAFETY: every element is written by the kernel.
    let y = unsafe { dev.alloc::<f32>(x.len())? };
    let f = dev.get_or_load_custom_func("chimera_qk_norm_rope", "chimera_norm", NORM)?;
    let mut b = f.builder();
    b.arg(&x);
    b.arg(&w);
    b.arg(&cs);
    b.arg(&y);
    let (heads, hd) = (op.heads as i32, op.head_dim as i32);
    b.arg(&heads);
    b.arg(&hd);
    b.arg(&op.eps);
    b.arg(&op.scale);
    // SAFETY: as in rms_norm; one thread per pair of a head's elements.
    unsafe { b.launch(grid(rows as u32, op.heads as u32, (op.head_dim / 2) as u32)) }.w()?;
    Ok(wrap(y, dev, s[0].1.shape()))
}

pub fn gelu_mul(
    s1: &CudaStorage,
    l1: &Layout,
    s2: &CudaStorage,
    l2: &Layout,
) -> Result<(CudaStorage, Shape)> {
    let dev = &s1.device;
    let (g, u) = (view(s1, l1)?, view(s2, l2)?);
    let n = g.len();
    // SAFETY: every element is written by the kernel.
    let y = unsafe { dev.alloc::<f32>(n)? };
    let f = dev.get_or_load_custom_func("chimera_gelu_mul", "chimera_mlp", MLP)?;
    let mut b = f.builder();
    b.arg(&g);
    b.arg(&u);
    b.arg(&y);
    let n32 = n as i32;
    b.arg(&n32);
    // SAFETY: as in rms_norm.
    unsafe { b.launch(grid(n.div_ceil(256) as u32, 1, 256)) }.w()?;
    Ok(wrap(y, dev, l1.shape()))
}

pub fn decode_attention(
    op: &DecodeAttention,
    s: [(&CudaStorage, &Layout); 3],
) -> Result<(CudaStorage, Shape)> {
    let dev = &s[0].0.device;
    if !op.head_dim.is_multiple_of(32) || op.head_dim > 256 {
        bail!("chimera_attention needs head_dim a multiple of 32 up to 256, not {}", op.head_dim);
    }
    let (q, kv, meta) = (view(s[0].0, s[0].1)?, view(s[1].0, s[1].1)?, view_i32(s[2].0, s[2].1)?);
    let n = q.len() / (op.n_head * op.head_dim);
    // SAFETY: every element is written by the kernel.
    let out = unsafe { dev.alloc::<f32>(q.len())? };
    let f = dev.get_or_load_custom_func("chimera_attention", "chimera_attention", ATTENTION)?;
    let mut b = f.builder();
    b.arg(&q);
    b.arg(&kv);
    b.arg(&meta);
    b.arg(&out);
    let (nh, nkv, hd, cells) =
        (op.n_head as i32, op.n_kv as i32, op.head_dim as i32, op.cells as i32);
    let window = op.window.map_or(0, |w| w as i32);
    b.arg(&nh);
    b.arg(&nkv);
    b.arg(&hd);
    b.arg(&cells);
    b.arg(&window);
    // SAFETY: as in rms_norm; 4 warps per (token, head).
    unsafe { b.launch(grid(n as u32, op.n_head as u32, 128)) }.w()?;
    Ok(wrap(out, dev, s[0].1.shape()))
}

pub fn store_kv(
    op: &StoreKv,
    dst: &mut CudaStorage,
    dl: &Layout,
    srcs: [(&CudaStorage, &Layout); 2],
) -> Result<()> {
    let dev = dst.device.clone();
    let (row, meta) = (view(srcs[0].0, srcs[0].1)?, view_i32(srcs[1].0, srcs[1].1)?);
    let width = row.len();
    let mut cache = view_mut(dst, dl)?;
    let f = dev.get_or_load_custom_func("chimera_store_kv", "chimera_attention", ATTENTION)?;
    let mut b = f.builder();
    b.arg(&mut cache);
    b.arg(&row);
    b.arg(&meta);
    let (w32, cells, half) = (width as i32, op.cells as i32, op.v as i32);
    b.arg(&w32);
    b.arg(&cells);
    b.arg(&half);
    // SAFETY: as in rms_norm.
    unsafe { b.launch(grid(width.div_ceil(256) as u32, 1, 256)) }.w()?;
    Ok(())
}

/// Host values into a fixed device buffer: a plain copy on the stream, outside any capture.
pub fn host_write(op: &HostWrite, dst: &mut CudaStorage, l: &Layout) -> Result<()> {
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("chimera kernels need contiguous inputs")
    };
    let stream = dst.device.cuda_stream();
    match op {
        HostWrite::F32(src) if src.len() <= b - a => {
            let mut d = dst.as_cuda_slice_mut::<f32>()?.slice_mut(a..a + src.len());
            stream.memcpy_htod(*src, &mut d).w()
        }
        HostWrite::I32(src) if src.len() <= b - a => {
            let mut d = dst.as_cuda_slice_mut::<i32>()?.slice_mut(a..a + src.len());
            stream.memcpy_htod(*src, &mut d).w()
        }
        _ => bail!("chimera-host-write: dtype or length mismatch"),
    }
}

/// Slice of the vocabulary each block of the first top-k stage takes (kernels/sample.cu SLICE).
const SLICE: usize = 4096;

pub fn sample_front(
    op: &SampleFront,
    s1: &CudaStorage,
    l1: &Layout,
    s2: &CudaStorage,
    l2: &Layout,
) -> Result<(CudaStorage, Shape)> {
    let dev = &s1.device;
    let (logits, pairs) = (view(s1, l1)?, view_i32(s2, l2)?);
    let n = logits.len();
    let k = op.k.min(n).max(1);
    let blocks = n.div_ceil(SLICE);
    if k > 64 || blocks * k > SLICE {
        bail!("chimera's device top-k takes k ≤ 64 over at most {} logits", SLICE / k * SLICE);
    }
    // SAFETY: written by the copy, the slice stage and the merge before any read.
    let (scratch, cand, out) = unsafe {
        (dev.alloc::<f32>(n)?, dev.alloc::<f32>(2 * blocks * k)?, dev.alloc::<f32>(2 * k)?)
    };
    let (n32, k32) = (n as i32, k as i32);
    let f = dev.get_or_load_custom_func("chimera_copy", "chimera_sample", SAMPLE)?;
    let mut b = f.builder();
    b.arg(&logits);
    b.arg(&scratch);
    b.arg(&n32);
    // SAFETY: the kernels' arguments are the slices and scalars given, in their order.
    unsafe { b.launch(grid(n.div_ceil(256) as u32, 1, 256)) }.w()?;
    let np = (pairs.len() / 2) as i32;
    if np > 0 {
        let f = dev.get_or_load_custom_func("chimera_penalize", "chimera_sample", SAMPLE)?;
        let mut b = f.builder();
        b.arg(&scratch);
        b.arg(&pairs);
        b.arg(&np);
        b.arg(&n32);
        b.arg(&op.repeat_penalty);
        b.arg(&op.frequency_penalty);
        b.arg(&op.presence_penalty);
        unsafe { b.launch(grid((np as usize).div_ceil(64) as u32, 1, 64)) }.w()?;
    }
    let f = dev.get_or_load_custom_func("chimera_topk_slice", "chimera_sample", SAMPLE)?;
    let mut b = f.builder();
    b.arg(&scratch);
    b.arg(&cand);
    b.arg(&n32);
    b.arg(&k32);
    unsafe { b.launch(grid(blocks as u32, 1, 256)) }.w()?;
    let m32 = (blocks * k) as i32;
    let f = dev.get_or_load_custom_func("chimera_topk_merge", "chimera_sample", SAMPLE)?;
    let mut b = f.builder();
    b.arg(&cand);
    b.arg(&out);
    b.arg(&m32);
    b.arg(&k32);
    unsafe { b.launch(grid(1, 1, 256)) }.w()?;
    Ok((CudaStorage::wrap_cuda_slice(out, dev.clone()), Shape::from((k, 2))))
}

/// Free bytes on CUDA device `i`, as the driver counts them.
pub fn free_memory(i: usize) -> Option<u64> {
    let ctx = candle_core::cuda_backend::cudarc::driver::CudaContext::new(i).ok()?;
    ctx.bind_to_thread().ok()?;
    candle_core::cuda_backend::cudarc::driver::result::mem_get_info()
        .ok()
        .map(|(free, _)| free as u64)
}

/// Prepares a CUDA device for chimera: one stream, so cudarc's per-tensor events are not needed
/// (and an event recorded outside a capture must not be waited on inside one); and a memory
/// pool that keeps freed blocks, so that candle's per-op allocations do not go back to the
/// driver at every synchronize (mistral.rs sets the same release threshold).
pub fn prepare(dev: &CudaDevice) -> Result<()> {
    use candle_core::cuda_backend::cudarc::driver::sys;
    // SAFETY: chimera issues all work on candle's one stream.
    unsafe { dev.disable_event_tracking() };
    let stream = dev.cuda_stream();
    let ctx = stream.context();
    ctx.bind_to_thread().w()?;
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    let mut threshold = u64::MAX;
    // SAFETY: pool is written by the driver; threshold outlives the call.
    unsafe {
        sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device()).result().w()?;
        sys::cuMemPoolSetAttribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut threshold as *mut u64).cast(),
        )
        .result()
        .w()?;
    }
    Ok(())
}

/// A captured decode step of one sequence.
struct Graph(candle_core::cuda_backend::cudarc::driver::CudaGraph);

// SAFETY: a Graph is only touched through its backend's `&mut self`, one thread at a time, as
// cudarc's CudaGraph requires ("must not be accessed concurrently").
unsafe impl Send for Graph {}

enum State {
    /// Not yet run: the next step runs eagerly with candle's parameter cache on, so that every
    /// small host copy the step needs is made once, before any capture.
    Cold,
    /// Warmed: the next step is captured.
    Warm,
    Ready(Graph),
    /// Capture failed once: eager from now on.
    Off,
}

/// Single-token decode steps as CUDA graphs, one per sequence (the KV slot is part of the
/// graph): warm once, capture once, replay every later step. The step's inputs (the residual
/// row, rope rows, the position) live in fixed buffers written before each launch; everything
/// the step allocates is allocated and freed inside the graph.
pub struct Graphs {
    states: Vec<State>,
    /// candle's parameter-cache guard while a step warms or captures (its type is not exported).
    guard: Option<Box<dyn std::any::Any + Send>>,
    /// Kernel nodes of the last captured graph: the launches one eager step makes.
    pub kernels: Option<usize>,
    pub note: Option<String>,
}

impl Graphs {
    pub fn new(n_seq: usize) -> Graphs {
        Graphs {
            states: (0..n_seq).map(|_| State::Cold).collect(),
            guard: None,
            kernels: None,
            note: None,
        }
    }

    pub fn begin(&mut self, dev: &CudaDevice, seq: usize) -> Result<Step> {
        use candle_core::cuda_backend::cudarc::driver::sys::CUstreamCaptureMode;
        match &self.states[seq] {
            State::Ready(g) => {
                g.0.launch().w()?;
                Ok(Step::Replayed)
            }
            State::Off => Ok(Step::Eager),
            State::Cold => {
                self.guard = Some(Box::new(dev.enable_cuda_graph_htod_cache()));
                Ok(Step::Eager)
            }
            State::Warm => {
                // relaxed, as llama.cpp and mistral.rs capture: other threads' calls are not checked
                self.guard = Some(Box::new(dev.enable_cuda_graph_htod_cache()));
                dev.cuda_stream()
                    .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED)
                    .w()?;
                Ok(Step::Capture)
            }
        }
    }

    /// Ends a step begun in `mode`; true when a failed capture leaves the step to run eagerly.
    pub fn end(&mut self, dev: &CudaDevice, seq: usize, mode: Step, ok: bool) -> Result<bool> {
        use candle_core::cuda_backend::cudarc::driver::sys::CUgraphInstantiate_flags;
        self.guard = None;
        match mode {
            Step::Replayed => Ok(false),
            Step::Eager => {
                if ok && matches!(self.states[seq], State::Cold) {
                    self.states[seq] = State::Warm;
                }
                Ok(false)
            }
            Step::Capture => {
                let flags =
                    CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH;
                let graph = dev.cuda_stream().end_capture(flags);
                match (ok, graph) {
                    (true, Ok(Some(g))) => {
                        self.kernels = kernel_nodes(&g);
                        g.upload().w()?;
                        g.launch().w()?;
                        self.states[seq] = State::Ready(Graph(g));
                        Ok(false)
                    }
                    (_, r) => {
                        self.note = Some(format!(
                            "CUDA graph capture failed ({}); decoding without graphs",
                            r.err().map_or("the step failed".into(), |e| e.to_string())
                        ));
                        self.states[seq] = State::Off;
                        Ok(true)
                    }
                }
            }
        }
    }
}

/// Kernel nodes in a graph.
fn kernel_nodes(g: &candle_core::cuda_backend::cudarc::driver::CudaGraph) -> Option<usize> {
    use candle_core::cuda_backend::cudarc::driver::sys;
    let mut n = 0usize;
    // SAFETY: the graph is alive; a null node array asks for the count, then the driver fills
    // exactly n nodes.
    unsafe {
        sys::cuGraphGetNodes(g.cu_graph(), std::ptr::null_mut(), &mut n).result().ok()?;
        let mut nodes = vec![std::ptr::null_mut(); n];
        sys::cuGraphGetNodes(g.cu_graph(), nodes.as_mut_ptr(), &mut n).result().ok()?;
        let mut kernels = 0;
        for node in nodes {
            let mut ty = sys::CUgraphNodeType::CU_GRAPH_NODE_TYPE_EMPTY;
            sys::cuGraphNodeGetType(node, &mut ty).result().ok()?;
            kernels += (ty == sys::CUgraphNodeType::CU_GRAPH_NODE_TYPE_KERNEL) as usize;
        }
        Some(kernels)
    }
}
