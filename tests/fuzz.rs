//! Seeded fuzzing under one harness: mutated GGUF headers and metadata, the tokenizer on random
//! bytes and text, chat templates from the GGUF, artifact folders. Every case must end in a value
//! or a typed error, never a panic; the case counts are printed. `CHIMERA_FUZZ_SCALE=N` runs N
//! times the cases and `CHIMERA_FUZZ_SEED` another seed (scripts/fuzz.sh runs long sessions).

use crate::util::*;
use chimera::gguf::{Gguf, TensorType};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// xorshift64*: a mutator that needs no crate and replays from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(salt: u64) -> Rng {
        let seed = std::env::var("CHIMERA_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Rng((seed ^ salt.wrapping_mul(0x2545_F491_4F6C_DD1D)) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Runs `cases` × the scale through `case` with its own seeded generator, failing on the first
/// panic with the case number and seed; prints the count (outside the test capture, so that
/// `cargo test` shows it).
fn harness(name: &str, cases: usize, salt: u64, mut case: impl FnMut(&mut Rng, usize)) {
    let scale: usize =
        std::env::var("CHIMERA_FUZZ_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let n = cases * scale;
    let t0 = std::time::Instant::now();
    let mut rng = Rng::new(salt);
    for i in 0..n {
        let before = rng.0;
        if catch_unwind(AssertUnwindSafe(|| case(&mut rng, i))).is_err() {
            panic!("fuzz {name}: case {i} panicked (generator state {before:#x})");
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "fuzz {name}: {n} cases, no panic, {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

/// Numbers that break naive readers: lengths and counts at type limits.
const EDGES: [u64; 8] = [0, 1, 0x7F, 0xFF, 0xFFFF, 0xFFFF_FFFF, u64::MAX / 2, u64::MAX];

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>, header: usize) {
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(header.min(bytes.len()));
        match rng.below(6) {
            0 => bytes[at] ^= 1 << rng.below(8),
            1 => bytes[at] = rng.next() as u8,
            2 => {
                let v = EDGES[rng.below(EDGES.len())].to_le_bytes();
                let w = [1, 2, 4, 8][rng.below(4)];
                let end = (at + w).min(bytes.len());
                bytes[at..end].copy_from_slice(&v[..end - at]);
            }
            3 => bytes.truncate(at),
            4 => {
                let n = 1 + rng.below(16);
                bytes.splice(at..at, (0..n).map(|_| rng.next() as u8));
            }
            _ => {
                let n = (1 + rng.below(16)).min(bytes.len() - at);
                bytes.drain(at..at + n);
            }
        }
        if bytes.is_empty() {
            return;
        }
    }
}

/// Mutated headers and metadata of a valid tiny gemma3: open, config and tokenizer each end in
/// a value or an error naming the file.
#[test]
fn gguf_headers_and_metadata() {
    let d = tempdir();
    let src = d.path().join("ok.gguf");
    tiny_model(&src, TensorType::Q8_0, |md| {
        md.insert(
            "tokenizer.chat_template".into(),
            chimera::gguf::Value::String(
                "{% for m in messages %}{{ m.content }}{% endfor %}".into(),
            ),
        );
    });
    let good = std::fs::read(&src).unwrap();
    let header = Gguf::open(&src).unwrap().tensors.iter().map(|t| t.offset).min().unwrap() as usize;
    let p = d.path().join("case.gguf");
    let (mut opened, mut configured) = (0usize, 0usize);
    harness("gguf", 12_000, 1, |rng, _| {
        let mut bytes = good.clone();
        mutate(rng, &mut bytes, header);
        std::fs::write(&p, &bytes).unwrap();
        match Gguf::open(&p) {
            Ok(g) => {
                opened += 1;
                if chimera::config::Gemma3Config::from_gguf(&g).is_ok() {
                    configured += 1;
                }
                if let Ok(t) = chimera::tokenizer::Tokenizer::from_gguf(&g) {
                    let _ = t.encode("ab hi", true, true);
                }
            }
            Err(e) => assert!(e.to_string().contains("case.gguf"), "error without the file: {e}"),
        }
    });
    let _ = writeln!(std::io::stderr(), "fuzz gguf: {opened} opened, {configured} configured");
    assert!(opened > 0 && opened < 12_000, "the mutations must reach both outcomes");
}

/// Random text: a mix of scripts, whitespace runs, emoji, combining marks and vocabulary
/// pieces, as valid UTF-8.
fn random_text(rng: &mut Rng, pieces: &[String]) -> String {
    const ALPHABET: [&str; 14] =
        ["a", "Z", " ", "  ", "\n", "\t", "é", "ß", "日本", "🙂", "\u{301}", "0", ".", "\u{200d}"];
    let mut s = String::new();
    for _ in 0..rng.below(48) {
        if rng.below(3) == 0 && !pieces.is_empty() {
            s.push_str(&pieces[rng.below(pieces.len())].replace('▁', " "));
        } else if rng.below(4) == 0 {
            s.push(char::from_u32(rng.below(0x3_0000) as u32).unwrap_or('x'));
        } else {
            s.push_str(ALPHABET[rng.below(ALPHABET.len())]);
        }
    }
    s
}

/// The real tokenizer: random valid text round-trips exactly (special-token text and `▁` aside), and
/// random bytes and random ids never panic.
#[test]
fn tokenizer_round_trips_and_never_panics() {
    let g = Gguf::open(&real_model()).unwrap();
    let t = chimera::tokenizer::Tokenizer::from_gguf(&g).unwrap();
    let n_vocab = chimera::config::Gemma3Config::from_gguf(&g).unwrap().n_vocab;
    let pieces: Vec<String> = (0..n_vocab as u32)
        .step_by(97)
        .map(|i| t.token_text(i))
        .filter(|p| !p.starts_with('<'))
        .collect();
    harness("tokenizer text", 20_000, 2, |rng, _| {
        let s = random_text(rng, &pieces);
        // special-token text, and SentencePiece's space mark, which decodes as a space (as in
        // llama.cpp: the tokenizer writes every space as `▁`)
        if s.contains(['<', '▁']) {
            return;
        }
        let ids = t.encode(&s, false, false).unwrap();
        assert_eq!(t.decode(&ids), s, "round trip of {s:?}");
    });
    harness("tokenizer bytes", 20_000, 3, |rng, _| {
        let b: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
        let _ = t.encode(&String::from_utf8_lossy(&b), true, true);
        let ids: Vec<u32> = (0..rng.below(16)).map(|_| rng.below(n_vocab + 10) as u32).collect();
        let _ = t.decode(&ids);
    });
}

/// Chat templates as a GGUF might carry them, mutated: rendering ends in text or an error
/// naming the key (loops and explosions are stopped by fuel and the output cap).
#[test]
fn chat_templates() {
    const SEEDS: [&str; 3] = [
        "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] | trim }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system') }}{% endif %}[{{ m.role | upper }}] {{ m.content.strip() }}{% endfor %}",
        "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{{ loop.index }}:{{ m.content }}{% endfor %}{{ ns.n }}",
    ];
    const TOKENS: [&str; 14] = [
        "{%",
        "%}",
        "{{",
        "}}",
        " for x in range(999999) ",
        " endfor ",
        "loop",
        " recursive ",
        "'x' * 99999999",
        " ~ ",
        "(",
        ")",
        "messages",
        " if ",
    ];
    let msgs =
        [chimera::chat::Message::new("system", "s"), chimera::chat::Message::new("user", "Hi")];
    harness("chat templates", 20_000, 4, |rng, _| {
        let mut t = SEEDS[rng.below(SEEDS.len())].to_string();
        for _ in 0..1 + rng.below(4) {
            let at = (0..=rng.below(t.len())).rev().find(|&i| t.is_char_boundary(i)).unwrap_or(0);
            t.insert_str(at, TOKENS[rng.below(TOKENS.len())]);
        }
        if let Err(e) = chimera::chat::render(Some(&t), &msgs, "<bos>", "<eos>") {
            assert!(e.to_string().starts_with("tokenizer.chat_template: "), "{e}");
        }
    });
}

/// Artifact folders of random bytes under every extension the readers take (one to eight files
/// each, half with a fragment of a real artifact spliced in): the study never panics, every file
/// is listed with what became of it, and every statistic is finite.
#[test]
fn artifact_folders() {
    const SNIPPETS: [&[u8]; 9] = [
        b"a,b\n1,2\n",
        b"{\"tokens_s\": [1,",
        b"| x | ttft |\n|---|---|\n| 1 | ",
        b"\xff\xfe",
        b"\"",
        b"\n\n\n",
        b"{\"build_commit\": \"a\", \"n_prompt\": 512, \"n_gen\": 0, \"avg_ts\": null}\n",
        b"eval rate:   12.5 tokens/s\ntotal duration: 1m2.5s\n",
        b"{\"eval_count\": 10, \"eval_duration\": 0, \"done\": true}",
    ];
    harness("artifact folders", 400, 5, |rng, _| {
        let d = tempdir();
        let n = 1 + rng.below(8);
        for i in 0..n {
            let ext = ["csv", "json", "md", "jsonl", "txt", "log", "sql"][rng.below(7)];
            let mut bytes: Vec<u8> = (0..rng.below(400)).map(|_| rng.next() as u8).collect();
            if rng.below(2) == 0 {
                let s = SNIPPETS[rng.below(SNIPPETS.len())];
                let at = rng.below(bytes.len() + 1);
                bytes.splice(at..at, s.iter().copied());
            }
            std::fs::write(d.path().join(format!("f{i}.{ext}")), &bytes).unwrap();
        }
        let s = chimera::analysis::study(d.path(), &Default::default()).unwrap();
        assert_eq!(s.files.len(), n);
        for r in &s.catalogue {
            assert!(r.mean.is_finite() && r.sd.is_finite() && r.n > 0, "{r:?}");
        }
        for f in &s.findings {
            assert!(!f.sentence.contains("NaN") && !f.sentence.contains("inf "), "{}", f.sentence);
        }
    });
}
