//! criterion benches: one decode step and a 512-token prefill on the real gemma-3-270m file,
//! tokenizer throughput, the sampler over 262,144 logits, quantized matrix × vector products
//! at the model's shapes, and the study of artifact folders of 700 and 7,000 records (~15 MB:
//! Ollama responses with their texts, sweep CSVs, llama-bench JSONL) to show reading and
//! analysis grow linearly with the data. The CPU engine's results are complete when a call returns, so timing
//! needs no device synchronization.

use chimera::backend::cpu::quant::{matmul, quantize, MatmulScratch, QWeight};
use chimera::gguf::TensorType;
use chimera::pool::Pool;
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
    for threads in [1, 2] {
        matvec_threads(c, threads);
    }
}

fn matvec_threads(c: &mut Criterion, threads: usize) {
    let pool = Pool::new(threads);
    let mut g = c.benchmark_group(format!("matvec_{threads}_threads"));
    // (type, rows, cols): Q/gate/up are Q5_0 640→1024/2048; down Q6_K 2048→640; the tied LM
    // head is the Q8_0 token embedding, 262144×640 (178 MB: streamed from DRAM every token)
    for (ty, rows, cols) in [
        (TensorType::Q5_0, 2048, 640),
        (TensorType::Q8_0, 2048, 640),
        (TensorType::Q6K, 640, 2048),
        (TensorType::Q4K, 640, 1024),
        (TensorType::Q8_0, 262144, 640),
    ] {
        let bytes = quantize(ty, &data(rows * cols));
        let mut aligned = vec![0u64; bytes.len().div_ceil(8)];
        // SAFETY: the u64 buffer holds at least bytes.len() bytes.
        let view =
            unsafe { std::slice::from_raw_parts_mut(aligned.as_mut_ptr() as *mut u8, bytes.len()) };
        view.copy_from_slice(&bytes);
        // repacked as the model repacks its blocks' Q4_0/Q5_0/Q8_0 weights
        let x8 = chimera::backend::cpu::quant::x8::can_repack(ty, rows, cols)
            .then(|| chimera::backend::cpu::quant::x8::repack(ty, rows, cols, view));
        let w = QWeight { ty, rows, cols, data: view, x8: x8.as_deref() };
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

fn real_model() -> std::path::PathBuf {
    chimera::registry::resolve("gemma3:270m", &mut |_, _, _| {})
        .expect("the real model (chimera pull gemma3:270m)")
}

fn engine(c: &mut Criterion) {
    use chimera::engine::{Engine, LoadOptions};
    let mut e = Engine::load(
        &real_model(),
        LoadOptions { num_ctx: 1024, num_thread: 2, ..Default::default() },
    )
    .unwrap();
    let n_vocab = e.model.n_vocab() as u32;
    let prompt: Vec<u32> =
        std::iter::once(2).chain((1..512).map(|i| (i * 7919) % n_vocab)).collect();
    let mut g = c.benchmark_group("gemma3_270m_q4_k_m_2_threads");
    g.sample_size(10);
    g.throughput(Throughput::Elements(512));
    g.bench_function("prefill_512", |b| b.iter(|| e.eval_at(&prompt, 0).unwrap()));
    e.eval_at(&prompt[..100], 0).unwrap();
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_step_at_100", |b| b.iter(|| e.eval_at(&[506], 100).unwrap()));
    g.finish();
}

fn tokenizer(c: &mut Criterion) {
    let gguf = chimera::gguf::Gguf::open(&real_model()).unwrap();
    let tok = chimera::tokenizer::Tokenizer::from_gguf(&gguf).unwrap();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/goldens/perplexity-corpus-GPL-3.txt"
    ))
    .unwrap_or_else(|_| "The quick brown fox jumps over the lazy dog. ".repeat(800));
    let mut g = c.benchmark_group("tokenizer");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("encode_corpus", |b| b.iter(|| tok.encode(&text, true, true).unwrap()));
    g.finish();
}

/// A folder of `records` runs in the formats real folders hold, ~2 KB a record.
fn corpus(dir: &std::path::Path, records: usize) {
    use std::fmt::Write as _;
    let text =
        "The player raises the sword and the crowd roars as the final boss falls. ".repeat(20);
    let files = records / 100;
    for f in 0..files {
        let kind = f % 3;
        let mut s = String::new();
        let path = match kind {
            0 => {
                s.push('[');
                for i in 0..100 {
                    let ns = 1_000_000_000 + 10_000_000 * ((i * 7 + f) % 13) as u64;
                    let _ = write!(
                        s,
                        "{}{{\"model\":\"gemma3:{}b\",\"created_at\":\"2030-01-02T04:{:02}:{:02}Z\",\"response\":\"{text}\",\"done\":true,\"total_duration\":{},\"load_duration\":20000000,\"prompt_eval_count\":26,\"prompt_eval_duration\":50000000,\"eval_count\":{},\"eval_duration\":{ns}}}",
                        if i == 0 { "" } else { "," },
                        1 + 3 * (i % 2),
                        i / 60,
                        i % 60,
                        ns + 70_000_000,
                        100 + i % 7
                    );
                }
                s.push(']');
                format!("ollama/run_{f}.json")
            }
            1 => {
                s.push_str("timestamp,model,num_gpu,num_ctx,temperature,ttft_s,tokens_s,load_s,eval_count,response,error\n");
                for i in 0..100 {
                    let _ = writeln!(
                        s,
                        "2030-01-02T05:{:02}:{:02},llama3.1:8b,{},{},{},0.09,{},0.08,120,\"{text}\",",
                        i / 60,
                        i % 60,
                        [40, 999][i % 2],
                        [1024, 2048, 4096][(i / 2) % 3],
                        [0.2, 0.8][(i / 6) % 2],
                        77.0 + ((i * 13 + f) % 7) as f64 * 0.1
                    );
                }
                format!("sweeps/{f}/ollama_param_tuning.csv")
            }
            _ => {
                for i in 0..20 {
                    let t = [4, 8][i % 2];
                    let samples: Vec<String> = (0..5)
                        .map(|k| format!("{:.3}", 40.0 + t as f64 + ((k + i + f) % 5) as f64 * 0.2))
                        .collect();
                    let _ = writeln!(
                        s,
                        "{{\"build_commit\": \"abc{f}\", \"model_type\": \"llama 7B Q4_0\", \"n_threads\": {t}, \"n_prompt\": 0, \"n_gen\": {}, \"n_depth\": 0, \"avg_ts\": 45.0, \"stddev_ts\": 0.5, \"samples_ts\": [{}], \"cpu_info\": \"{}\"}}",
                        [64, 128][(i / 2) % 2],
                        samples.join(", "),
                        &text[..600]
                    );
                }
                format!("bench/{f}.jsonl")
            }
        };
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    }
}

fn study(c: &mut Criterion) {
    let mut g = c.benchmark_group("study");
    g.sample_size(10);
    for records in [700, 7000] {
        let d = tempfile::tempdir().unwrap();
        corpus(d.path(), records);
        g.throughput(Throughput::Elements(records as u64));
        g.bench_function(format!("records_{records}"), |b| {
            b.iter(|| chimera::analysis::study(d.path(), &Default::default()).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, sampler, matvec, tokenizer, engine, study);
criterion_main!(benches);
