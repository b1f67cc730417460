//! Tokenizers: llama.cpp's SentencePiece ("llama") algorithm from GGUF metadata, token for token,
//! and a `tokenizer.json` one (tokenizers crate) for safetensors model folders.
//!
//! The SPM path follows llama.cpp src/llama-vocab.cpp: split out special pieces (CONTROL and
//! UNKNOWN when parsing specials, USER_DEFINED always; longest first), then per raw fragment merge
//! UTF-8 characters by the highest-scoring adjacent bigram (ties to the leftmost), and fall back
//! to `<0xNN>` byte tokens for characters that formed no token.

use crate::error::{Error, Result};
use crate::gguf::{Array, Gguf, Value};
use std::collections::{BinaryHeap, HashMap};

/// `tokenizer.ggml.token_type` values (ref: llama.h enum llama_token_type).
pub mod token_type {
    pub const NORMAL: i64 = 1;
    pub const UNKNOWN: i64 = 2;
    pub const CONTROL: i64 = 3;
    pub const USER_DEFINED: i64 = 4;
    pub const UNUSED: i64 = 5;
    pub const BYTE: i64 = 6;
}
use token_type::*;

/// Special token ids a generator needs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Specials {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// `<end_of_turn>` for gemma (ref: llama-vocab.cpp adds it to the end-of-generation set).
    pub eot: Option<u32>,
    pub add_bos: bool,
    /// Whether an input ends with EOS when its special tokens are added (ref: llama-vocab.cpp
    /// add_eos; EmbeddingGemma's vocabulary sets it).
    pub add_eos: bool,
}

/// A tokenizer of either kind.
pub enum Tokenizer {
    Spm(Box<Spm>),
    Hf(Box<tokenizers::Tokenizer>, Specials, Option<String>),
}

/// The SentencePiece vocabulary and its lookup tables.
pub struct Spm {
    tokens: Vec<String>,
    scores: Vec<f32>,
    types: Vec<i64>,
    map: HashMap<String, u32>,
    /// CONTROL, USER_DEFINED and UNKNOWN ids, longest text first.
    specials_by_len: Vec<u32>,
    byte_tokens: [Option<u32>; 256],
    add_space_prefix: bool,
    specials: Specials,
    pub chat_template: Option<String>,
}

impl Tokenizer {
    /// Builds the tokenizer a GGUF describes (`tokenizer.ggml.model` = "llama").
    pub fn from_gguf(g: &Gguf) -> Result<Tokenizer> {
        let path = g.path.display();
        let md = &g.metadata;
        let bad = |key: &str, what: &str| Error::Tokenizer(format!("{path}: {key}: {what}"));
        match md.get("tokenizer.ggml.model").and_then(Value::as_str) {
            Some("llama") => {}
            Some(other) => {
                return Err(bad(
                    "tokenizer.ggml.model",
                    &format!("'{other}' is not supported (llama)"),
                ))
            }
            None => return Err(bad("tokenizer.ggml.model", "missing")),
        }
        let tokens = match md.get("tokenizer.ggml.tokens") {
            Some(Value::Array(Array::Strings(t))) => t.clone(),
            _ => return Err(bad("tokenizer.ggml.tokens", "missing or not a string array")),
        };
        let n = tokens.len();
        let scores = match md.get("tokenizer.ggml.scores") {
            Some(Value::Array(Array::Floats(s))) if s.len() == n => {
                s.iter().map(|v| *v as f32).collect()
            }
            None => vec![0.0; n],
            _ => return Err(bad("tokenizer.ggml.scores", &format!("expected {n} floats"))),
        };
        let types = match md.get("tokenizer.ggml.token_type") {
            Some(Value::Array(Array::Ints(t))) if t.len() == n => t.clone(),
            None => vec![NORMAL; n],
            _ => return Err(bad("tokenizer.ggml.token_type", &format!("expected {n} integers"))),
        };
        let id = |key: &str| -> Result<Option<u32>> {
            match md.get(key).map(|v| v.as_i64()) {
                None => Ok(None),
                Some(Some(i)) if i >= 0 && (i as usize) < n => Ok(Some(i as u32)),
                Some(_) => Err(bad(key, &format!("not a token id below {n}"))),
            }
        };
        let flag =
            |key: &str, default: bool| md.get(key).and_then(Value::as_bool).unwrap_or(default);
        let mut map = HashMap::with_capacity(n);
        for (i, t) in tokens.iter().enumerate() {
            // llama.cpp keeps the last id for duplicated texts (token_to_id[text] = id)
            map.insert(t.clone(), i as u32);
        }
        let mut eot = id("tokenizer.ggml.eot_token_id")?;
        let mut types = types;
        if eot.is_none() {
            // ref: llama-vocab.cpp: "<end_of_turn>" is recognised as end-of-turn and forced CONTROL
            eot = map.get("<end_of_turn>").copied();
        }
        if let Some(e) = eot {
            types[e as usize] = CONTROL;
        }
        let mut specials_by_len: Vec<u32> = (0..n as u32)
            .filter(|&i| matches!(types[i as usize], CONTROL | USER_DEFINED | UNKNOWN))
            .collect();
        specials_by_len.sort_by(|a, b| {
            tokens[*b as usize].len().cmp(&tokens[*a as usize].len()).then(a.cmp(b))
        });
        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            // ref: llama-vocab.cpp byte_to_token: "<0xXX>", else the one-byte text
            *slot = map
                .get(&format!("<0x{b:02X}>"))
                .copied()
                .or_else(|| std::str::from_utf8(&[b as u8]).ok().and_then(|s| map.get(s).copied()));
        }
        let specials = Specials {
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            eot,
            add_bos: flag("tokenizer.ggml.add_bos_token", true),
            add_eos: flag("tokenizer.ggml.add_eos_token", false),
        };
        Ok(Tokenizer::Spm(Box::new(Spm {
            tokens,
            scores,
            types,
            map,
            specials_by_len,
            byte_tokens,
            // ref: llama-vocab.cpp: SPM defaults add_space_prefix to true when the key is absent
            add_space_prefix: flag("tokenizer.ggml.add_space_prefix", true),
            specials,
            chat_template: md
                .get("tokenizer.chat_template")
                .and_then(Value::as_str)
                .map(String::from),
        })))
    }

    /// Loads a Hugging Face `tokenizer.json`; `<end_of_turn>` is found in its vocabulary when
    /// `specials` names no end-of-turn id (ref: llama-vocab.cpp's end-of-generation set).
    pub fn from_json(
        path: &std::path::Path,
        mut specials: Specials,
        chat_template: Option<String>,
    ) -> Result<Tokenizer> {
        let t = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        if specials.eot.is_none() {
            specials.eot = t.token_to_id("<end_of_turn>");
        }
        Ok(Tokenizer::Hf(Box::new(t), specials, chat_template))
    }

    /// Token ids of `text`: BOS first when `add_bos` and the vocabulary adds it; special pieces
    /// recognised when `parse_special`.
    pub fn encode(&self, text: &str, add_bos: bool, parse_special: bool) -> Result<Vec<u32>> {
        match self {
            Tokenizer::Spm(s) => Ok(s.encode(text, add_bos, parse_special)),
            Tokenizer::Hf(t, sp, _) => {
                let enc = t.encode(text, false).map_err(|e| Error::Tokenizer(e.to_string()))?;
                let mut ids = Vec::with_capacity(enc.len() + 1);
                if add_bos && sp.add_bos {
                    ids.extend(sp.bos);
                }
                ids.extend_from_slice(enc.get_ids());
                Ok(ids)
            }
        }
    }

    /// The bytes a token stands for when printed (control tokens print nothing).
    pub fn piece_bytes(&self, id: u32, out: &mut Vec<u8>) {
        match self {
            Tokenizer::Spm(s) => s.piece_bytes(id, out),
            Tokenizer::Hf(t, ..) => {
                if let Ok(s) = t.decode(&[id], true) {
                    out.extend_from_slice(s.as_bytes())
                }
            }
        }
    }

    /// Whether a token is a control token, which prints nothing (BOS, EOS, turn markers, unused
    /// slots): what grammar engines treat as special.
    pub fn is_control(&self, id: u32) -> bool {
        match self {
            Tokenizer::Spm(s) => {
                s.types.get(id as usize).is_none_or(|t| matches!(*t, CONTROL | UNKNOWN | UNUSED))
            }
            Tokenizer::Hf(t, ..) => t.decode(&[id], true).map_or(true, |s| s.is_empty()),
        }
    }

    /// The vocabulary text of a token (`▁` kept), for `--json` listings.
    pub fn token_text(&self, id: u32) -> String {
        match self {
            Tokenizer::Spm(s) => s.tokens.get(id as usize).cloned().unwrap_or_default(),
            Tokenizer::Hf(t, ..) => t.id_to_token(id).unwrap_or_default(),
        }
    }

    /// Decodes ids to text (invalid UTF-8 replaced).
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut b = Vec::new();
        ids.iter().for_each(|&i| self.piece_bytes(i, &mut b));
        String::from_utf8_lossy(&b).into_owned()
    }

    /// Special ids.
    pub fn specials(&self) -> &Specials {
        match self {
            Tokenizer::Spm(s) => &s.specials,
            Tokenizer::Hf(_, sp, _) => sp,
        }
    }

    /// Ids that end generation: EOS and end-of-turn.
    pub fn is_eog(&self, id: u32) -> bool {
        let s = self.specials();
        Some(id) == s.eos || Some(id) == s.eot
    }

    /// The text of the BOS (`bos`) or EOS token, for chat templates ("" when there is none).
    pub fn special_text(&self, bos: bool) -> String {
        let s = self.specials();
        (if bos { s.bos } else { s.eos }).map(|id| self.token_text(id)).unwrap_or_default()
    }

    /// The GGUF's chat template, if any.
    pub fn chat_template(&self) -> Option<&str> {
        match self {
            Tokenizer::Spm(s) => s.chat_template.as_deref(),
            Tokenizer::Hf(_, _, t) => t.as_deref(),
        }
    }

    /// Vocabulary size.
    pub fn len(&self) -> usize {
        match self {
            Tokenizer::Spm(s) => s.tokens.len(),
            Tokenizer::Hf(t, ..) => t.get_vocab_size(true),
        }
    }

    /// True for an empty vocabulary.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

#[derive(Clone, Copy)]
struct Sym {
    start: usize,
    len: usize,
    prev: isize,
    next: isize,
}

#[derive(PartialEq)]
struct Bigram {
    left: usize,
    right: usize,
    score: f32,
    size: usize,
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Bigram {
    /// Max-heap on score; among equal scores the leftmost pops first (ref: llm_bigram_spm::comparator).
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.score.total_cmp(&o.score).then(o.left.cmp(&self.left))
    }
}

impl Spm {
    fn encode(&self, text: &str, add_bos: bool, parse_special: bool) -> Vec<u32> {
        let mut frags = vec![Fragment::Text(text)];
        for &sid in &self.specials_by_len {
            let ty = self.types[sid as usize];
            if !parse_special && (ty == CONTROL || ty == UNKNOWN) {
                continue;
            }
            let st = self.tokens[sid as usize].as_str();
            if st.is_empty()
                || !frags.iter().any(|f| matches!(f, Fragment::Text(t) if t.contains(st)))
            {
                continue;
            }
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                match f {
                    Fragment::Text(t) => {
                        let mut rest = t;
                        while let Some(i) = rest.find(st) {
                            if i > 0 {
                                next.push(Fragment::Text(&rest[..i]));
                            }
                            next.push(Fragment::Token(sid));
                            rest = &rest[i + st.len()..];
                        }
                        if !rest.is_empty() {
                            next.push(Fragment::Text(rest));
                        }
                    }
                    tok => next.push(tok),
                }
            }
            frags = next;
        }
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_bos && self.specials.add_bos {
            out.extend(self.specials.bos);
        }
        let mut prev_special = true;
        for f in frags {
            match f {
                Fragment::Token(t) => {
                    out.push(t);
                    prev_special = true;
                }
                Fragment::Text(t) => {
                    let mut s = String::with_capacity(t.len() + 3);
                    if self.add_space_prefix && prev_special {
                        s.push(' ');
                    }
                    s.push_str(t);
                    let s = s.replace(' ', "\u{2581}");
                    self.merge(&s, &mut out);
                    prev_special = false;
                }
            }
        }
        out
    }

    /// The SPM bigram merge over one escaped fragment (ref: llm_tokenizer_spm_session::tokenize).
    fn merge(&self, text: &str, out: &mut Vec<u32>) {
        let bytes = text.as_bytes();
        let mut syms: Vec<Sym> = Vec::with_capacity(text.len());
        let mut offs = 0;
        while offs < bytes.len() {
            let len = utf8_len(bytes[offs]).min(bytes.len() - offs);
            let i = syms.len() as isize;
            syms.push(Sym {
                start: offs,
                len,
                prev: i - 1,
                next: if offs + len == bytes.len() { -1 } else { i + 1 },
            });
            offs += len;
        }
        let mut heap = BinaryHeap::new();
        let try_add = |l: isize, r: isize, syms: &[Sym], heap: &mut BinaryHeap<Bigram>| {
            if l < 0 || r < 0 {
                return;
            }
            let (ls, rs) = (syms[l as usize], syms[r as usize]);
            let piece = &bytes[ls.start..ls.start + ls.len + rs.len];
            if let Some(tok) = std::str::from_utf8(piece).ok().and_then(|p| self.map.get(p)) {
                heap.push(Bigram {
                    left: l as usize,
                    right: r as usize,
                    score: self.scores[*tok as usize],
                    size: piece.len(),
                });
            }
        };
        for i in 1..syms.len() {
            try_add(i as isize - 1, i as isize, &syms, &mut heap);
        }
        while let Some(bg) = heap.pop() {
            let (l, r) = (syms[bg.left], syms[bg.right]);
            if l.len == 0 || r.len == 0 || l.len + r.len != bg.size {
                continue;
            }
            syms[bg.left].len += r.len;
            syms[bg.right].len = 0;
            syms[bg.left].next = r.next;
            if r.next >= 0 {
                syms[r.next as usize].prev = bg.left as isize;
            }
            let (lp, ln) = (syms[bg.left].prev, syms[bg.left].next);
            try_add(lp, bg.left as isize, &syms, &mut heap);
            try_add(bg.left as isize, ln, &syms, &mut heap);
        }
        // Every merge above forms a vocabulary token, so a final symbol is either a token or a
        // single unmerged character; llama.cpp's rev_merge resegmentation never fires for SPM and
        // only the byte fallback remains.
        let mut i: isize = if syms.is_empty() { -1 } else { 0 };
        while i != -1 {
            let s = syms[i as usize];
            let piece = &bytes[s.start..s.start + s.len];
            match std::str::from_utf8(piece).ok().and_then(|p| self.map.get(p)) {
                Some(t) => out.push(*t),
                None => piece.iter().for_each(|&b| out.extend(self.byte_tokens[b as usize])),
            }
            i = s.next;
        }
    }

    fn piece_bytes(&self, id: u32, out: &mut Vec<u8>) {
        let Some(text) = self.tokens.get(id as usize) else { return };
        match self.types[id as usize] {
            NORMAL => out.extend_from_slice(text.replace('\u{2581}', " ").as_bytes()),
            USER_DEFINED => out.extend_from_slice(text.as_bytes()),
            BYTE => {
                if let Some(b) = text.strip_prefix("<0x").and_then(|t| t.strip_suffix('>')) {
                    if let Ok(v) = u8::from_str_radix(b, 16) {
                        out.push(v);
                    }
                }
            }
            CONTROL | UNKNOWN | UNUSED => {}
            _ => out.extend_from_slice(text.as_bytes()),
        }
    }
}

/// Length of the UTF-8 sequence a lead byte starts; an invalid lead counts as one byte
/// (ref: llama-unicode.cpp unicode_len_utf8).
fn utf8_len(b: u8) -> usize {
    const LOOKUP: [usize; 16] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4];
    LOOKUP[(b >> 4) as usize]
}

/// Turns a stream of tokens into text without ever splitting a UTF-8 character.
#[derive(Default)]
pub struct TextStream {
    pending: Vec<u8>,
}

impl TextStream {
    /// Adds a token and returns whatever text is now complete.
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> String {
        tok.piece_bytes(id, &mut self.pending);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match e.error_len() {
                        // an incomplete character at the end: hold it back
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Flushes any held bytes (lossily) at the end of generation.
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}
