//! criterion benches of the CPU hot paths that need no model file: the sampler over gemma3's
//! 262,144 logits and quantized matrix products at gemma-3-270m's shapes.

use chimera::gguf::TensorType;
use chimera::pool::Pool;
use chimera::quant::{matmul, quantize, MatmulScratch, QWeight};
use chimera::sampler::{Sampler, SamplerOptions};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn data(n: usize) -> Vec<f32> {
    let mut s = 1u32;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

fn sampler(c: &mut Criterion) {
    let logits: Vec<f32> = data(262_144).iter().map(|x| x * 20.0).collect();
    let mut s =
        Sampler::new(SamplerOptions { seed: 1, ..Default::default() }, logits.len(), 4096).unwrap();
    c.bench_function("sampler_default_chain_262144", |b| b.iter(|| s.sample(&logits)));
}

fn matvec(c: &mut Criterion) {
    let pool = Pool::new(2);
    let mut g = c.benchmark_group("matvec_2_threads");
    // (type, rows, cols): Q/gate/up are Q5_0 640→1024/2048; down Q6_K 2048→640
    for (ty, rows, cols) in [
        (TensorType::Q5_0, 2048, 640),
        (TensorType::Q8_0, 2048, 640),
        (TensorType::Q6K, 640, 2048),
        (TensorType::Q4K, 640, 1024),
    ] {
        let bytes = quantize(ty, &data(rows * cols));
        let mut aligned = vec![0u64; bytes.len().div_ceil(8)];
        // SAFETY: the u64 buffer holds at least bytes.len() bytes.
        let view =
            unsafe { std::slice::from_raw_parts_mut(aligned.as_mut_ptr() as *mut u8, bytes.len()) };
        view.copy_from_slice(&bytes);
        let w = QWeight { ty, rows, cols, data: view };
        let x = data(cols);
        let mut out = vec![0f32; rows];
        let mut scratch = MatmulScratch::new(1, cols);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(format!("{}_{rows}x{cols}", ty.name()), |b| {
            b.iter(|| matmul(&pool, &mut scratch, &x, 1, w, &mut out))
        });
    }
    g.finish();
}

criterion_group!(benches, sampler, matvec);
criterion_main!(benches);
