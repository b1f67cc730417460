//! The CUDA backend, on a GPU (`--features cuda`): each of chimera's kernels against its CPU
//! reference (the op's `cpu_fwd`), CUDA against the cpu backend teacher-forced on the golden
//! prompts (the synthetic 270M with the real file's shapes and types; the real model when
//! `CHIMERA_PARITY_MODEL` names it), and graph replays against eager decode steps.

use crate::util::*;
use candle_core::{DType, Device, Tensor};
use chimera::backend::candle::kernels::*;
use chimera::engine::{Engine, GenerateOptions, LoadOptions};
use chimera::model::GpuDevice;
use chimera::sampler::SamplerOptions;
use std::path::PathBuf;

fn rand(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            (s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

fn gpu() -> Device {
    Device::new_cuda(0).expect("a CUDA device (these tests run only in a CUDA build, on a GPU)")
}

fn on(d: &Device, v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape, d).unwrap()
}

fn host(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

#[test]
fn kernels_match_their_cpu_references() {
    let (c, g) = (Device::Cpu, gpu());
    let (rows, d) = (5, 640);
    let (x, w, o) = (rand(rows * d, 1), rand(d, 2), rand(rows * d, 3));
    let both = |v: &[f32], s: &[usize]| (on(&c, v, s), on(&g, v, s));
    let ((xc, xg), (wc, wg), (oc, og)) =
        (both(&x, &[rows, d]), both(&w, &[d]), both(&o, &[rows, d]));
    let op = RmsNorm { eps: 1e-6 };
    let dn = max_diff(
        &host(&xc.apply_op2_no_bwd(&wc, &op).unwrap()),
        &host(&xg.apply_op2_no_bwd(&wg, &op).unwrap()),
    );
    assert!(dn < 1e-5, "rms_norm {dn}");
    xc.inplace_op3(&oc, &wc, &AddRmsNorm { eps: 1e-6 }).unwrap();
    xg.inplace_op3(&og, &wg, &AddRmsNorm { eps: 1e-6 }).unwrap();
    let da = max_diff(&host(&xc), &host(&xg));
    assert!(da < 1e-5, "add_rms_norm {da}");
    // QK-norm + rope: 4 heads of 256 at positions 0..rows
    let (heads, hd) = (4, 256);
    let q = rand(rows * heads * hd, 4);
    let qw = rand(hd, 5);
    let mut cs = vec![0f32; rows * hd];
    for (p, row) in cs.chunks_mut(hd).enumerate() {
        let (co, si) = row.split_at_mut(hd / 2);
        chimera::backend::cpu::ops::rope_row(p * 97, 1e6, 1.0, hd, co, si);
    }
    let op = QkNormRope { heads, head_dim: hd, eps: 1e-6, scale: 0.0625 };
    let run = |dev: &Device| {
        host(
            &on(dev, &q, &[rows, heads * hd])
                .apply_op3_no_bwd(&on(dev, &qw, &[hd]), &on(dev, &cs, &[rows, hd]), &op)
                .unwrap(),
        )
    };
    let dq = max_diff(&run(&c), &run(&g));
    assert!(dq < 1e-5, "qk_norm_rope {dq}");
    // GELU-tanh × up, across the f16 table's range and both clamps
    let gate: Vec<f32> = rand(4096, 6).iter().map(|v| v * 12.0).collect();
    let up = rand(4096, 7);
    let run = |dev: &Device| {
        host(&on(dev, &gate, &[4096]).apply_op2_no_bwd(&on(dev, &up, &[4096]), &GeluMul).unwrap())
    };
    // measured 2.1e-6 on the H200: where x is very negative, 1 + tanh(…) cancels and the last
    // bits of tanh on the GPU and on the host show; a wrong formula is off by far more
    let dg = max_diff(&run(&c), &run(&g));
    assert!(dg < 1e-5, "gelu_mul {dg}");
    // decode attention over a ring that has wrapped, global and sliding, one token and four
    let (nh, nkv, cells) = (4, 1, 96);
    let kv = rand(2 * cells * nkv * hd, 8);
    for (window, p0, n) in [(None, 40i32, 1), (Some(64), 200, 1), (Some(64), 301, 4), (None, 0, 1)]
    {
        let op = DecodeAttention {
            n_head: nh,
            n_kv: nkv,
            head_dim: hd,
            cells: if window.is_some() { cells } else { 512 },
            window,
        };
        let kvn = if window.is_some() { kv.clone() } else { rand(2 * 512 * nkv * hd, 9) };
        let qv = rand(n * nh * hd, 10);
        let run = |dev: &Device| {
            let meta = Tensor::from_slice(&[p0], 1, dev).unwrap();
            host(
                &on(dev, &qv, &[n, nh * hd])
                    .apply_op3_no_bwd(
                        &on(dev, &kvn, &[kvn.len() / (nkv * hd), nkv * hd]),
                        &meta,
                        &op,
                    )
                    .unwrap(),
            )
        };
        let dd = max_diff(&run(&c), &run(&g));
        assert!(dd < 1e-5, "attention window {window:?} p0 {p0} n {n}: {dd}");
    }
    // store a row at a position's cell, and host writes into a fixed buffer
    for v in [false, true] {
        let op = StoreKv { cells: 8, v };
        let run = |dev: &Device| {
            let cache = Tensor::zeros((16, 4), DType::F32, dev).unwrap();
            let meta = Tensor::from_slice(&[13i32], 1, dev).unwrap();
            cache.inplace_op3(&on(dev, &[1.0, 2.0, 3.0, 4.0], &[1, 4]), &meta, &op).unwrap();
            host(&cache)
        };
        let (a, b) = (run(&c), run(&g));
        assert_eq!(a, b);
        assert_eq!(&a[op.row(13) * 4..op.row(13) * 4 + 4], &[1.0, 2.0, 3.0, 4.0]);
    }
    let t = Tensor::zeros(8, DType::F32, &g).unwrap();
    t.inplace_op1(&HostWrite::F32(&[5.0, 6.0])).unwrap();
    assert_eq!(host(&t)[..3], [5.0, 6.0, 0.0]);
    // the sampler's front end over a full vocabulary: penalties, then the top k
    let nv = 262_144;
    let logits: Vec<f32> = rand(nv, 11).iter().map(|v| v * 10.0).collect();
    let pairs: Vec<i32> = [7, 1, 1000, 3, 262_143, 2, 5, 1].to_vec();
    for k in [1, 40, 64] {
        let op =
            SampleFront { k, repeat_penalty: 1.1, frequency_penalty: 0.2, presence_penalty: 0.1 };
        let run = |dev: &Device| {
            host(
                &on(dev, &logits, &[nv])
                    .apply_op2_no_bwd(&Tensor::from_slice(&pairs, pairs.len(), dev).unwrap(), &op)
                    .unwrap(),
            )
        };
        assert_eq!(run(&c), run(&g), "sample front k {k}");
    }
}

/// The model the parity test runs: `CHIMERA_PARITY_MODEL`, else the synthetic 270M (the real
/// file's shapes and tensor types), written once into the synthetic store.
fn parity_model() -> PathBuf {
    if let Ok(p) = std::env::var("CHIMERA_PARITY_MODEL") {
        return PathBuf::from(p);
    }
    let dir = chimera::registry::store_dir().with_file_name("synthetic");
    let target: chimera::quantize::Target = "Q4_K_M".parse().unwrap();
    chimera::synthetic::ensure(&dir, "270m", target, "Q4_K_M").unwrap()
}

/// CUDA against the cpu backend on this machine. With f32 weights (nothing quantized on either
/// side) at full offload: the same arg-max and a worst top-10 |Δlogprob| ≤ 0.05. With the
/// synthetic 270M's quantized weights at num_gpu 9, 18 and full offload, beside candle's own CPU
/// device at the same placements: the same arg-max wherever the reference's top two are 0.1
/// apart, and spreads within 2 × (mean) and 2.5 × (worst) candle's CPU device's on the same
/// file. Random weights spread further than the real ones (candle's CPU device reaches a worst
/// of 2.66 here against 0.70 on the real model): int8 activation flips in quantized products
/// cascade, and CUDA's products quantize activations as q8_1 where candle's CPU device uses
/// q8_K, so a factor, not the real model's bounds. Every figure is printed before any is
/// checked.
#[test]
fn cuda_matches_the_cpu_backend() {
    // f32 weights first: no activation is quantized on either side, so only the order of sums
    // differs and the spread must be small
    let dir = chimera::registry::store_dir().with_file_name("synthetic");
    let f32_target: chimera::quantize::Target = "F32".parse().unwrap();
    let exact = chimera::synthetic::ensure(&dir, "270m", f32_target, "F32").unwrap();
    let cpu = teacher_forced(&exact, GpuDevice::None, 0);
    let f = spread(&cpu, &teacher_forced(&exact, GpuDevice::Cuda(0), 19));
    let f_what = format!("f32 weights, full offload: worst top-10 |Δlogprob| {:.5}, p90 {:.5}, mean {:.5}, arg-max off {}", f.worst, f.p90_step, f.mean, f.argmax_off);
    eprintln!("parity cuda {f_what}");
    let m = parity_model();
    let cpu = teacher_forced(&m, GpuDevice::None, 0);
    let mut checks = vec![];
    for num_gpu in [9, 18, 19] {
        let c = spread(&cpu, &teacher_forced(&m, GpuDevice::CandleCpu, num_gpu));
        let s = spread(&cpu, &teacher_forced(&m, GpuDevice::Cuda(0), num_gpu));
        let fig = |s: &Spread| {
            format!("worst top-10 |Δlogprob| {:.4}, p90 {:.4}, mean {:.4}, first-position Δprob {:.4}, arg-max off {}", s.worst, s.p90_step, s.mean, s.first_dprob, s.argmax_off)
        };
        eprintln!("parity cuda num_gpu {num_gpu}: {}", fig(&s));
        eprintln!("parity candle-cpu num_gpu {num_gpu}: {}", fig(&c));
        checks.push((format!("num_gpu {num_gpu}: cuda {}; candle-cpu {}", fig(&s), fig(&c)), s, c));
    }
    assert!(f.argmax_off == 0 && f.worst <= 0.05, "{f_what}");
    for (what, s, c) in checks {
        assert_eq!(s.argmax_off, 0, "{what}");
        assert!(s.first_dprob <= 0.03, "{what}");
        assert!(s.mean <= 2.0 * c.mean + 0.02 && s.worst <= 2.5 * c.worst, "{what}");
    }
}

/// Decode steps replayed from a CUDA graph compute what eager steps compute: the same greedy
/// tokens and the same sampled ones, with the launches one step makes reported.
#[test]
fn graphs_replay_what_eager_steps_compute() {
    let g = read_json(&goldens().join("goldens-greedy.json"));
    let prompt = ids(&g["prompts"][0]["prompt_ids"]);
    let run = |graphs: bool| {
        let opts = LoadOptions {
            num_ctx: 512,
            num_gpu: -1,
            gpu: GpuDevice::Cuda(0),
            cuda_graphs: graphs,
            ..Default::default()
        };
        let mut e = Engine::load(&parity_model(), opts).unwrap();
        let mut outs = vec![];
        for s in [
            SamplerOptions { temperature: 0.0, repeat_penalty: 1.0, ..Default::default() },
            SamplerOptions { seed: 5, ..Default::default() },
        ] {
            let o = GenerateOptions { num_predict: 48, sampler: s, ..Default::default() };
            let out = e.generate(&prompt, &o, &mut |_| {}).unwrap();
            assert!(out.warnings.is_empty(), "{:?}", out.warnings);
            outs.push((out.ids, out.graph_kernels));
        }
        outs
    };
    let (eager, graph) = (run(false), run(true));
    for ((a, ka), (b, kb)) in eager.iter().zip(&graph) {
        assert_eq!(a, b);
        assert_eq!(*ka, None);
        let k = kb.expect("a captured graph");
        eprintln!("graphs: one decode step is {k} kernel launches eager, 1 graph launch replayed");
        assert!(k > 18, "{k} kernels for 18 blocks");
    }
}
