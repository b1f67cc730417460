//! Structured outputs: a grammar (any JSON value, a JSON schema, a Lark grammar or a regular
//! expression) compiled once per request by llguidance against the model's vocabulary, and the
//! per-token mask the sampler applies before its other stages.
//!
//! llguidance (the engine behind llama.cpp's, vLLM's and SGLang's constrained decoding) walks a
//! trie of the vocabulary's byte strings; chimera gives it the tokenizer's pieces, control tokens
//! marked special, and lets every end-of-generation token through where the grammar may end.

use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;
use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{self, TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};
use llguidance::{Matcher, ParserFactory};
use std::sync::Arc;

/// What the output must be.
#[derive(Debug, Clone, PartialEq)]
pub enum Grammar {
    /// A JSON object (Ollama's `format: "json"`, OpenAI's `json_object`: llama.cpp's and Ollama's
    /// JSON grammar has an object at the root).
    Json,
    /// A JSON schema (Ollama's `format: {…}`).
    JsonSchema(serde_json::Value),
    /// A Lark grammar, as llguidance reads it.
    Lark(String),
    /// A regular expression the whole output must match.
    Regex(String),
}

impl Grammar {
    fn top_level(&self) -> TopLevelGrammar {
        match self {
            Grammar::Json => {
                TopLevelGrammar::from_json_schema(compact(serde_json::json!({"type": "object"})))
            }
            Grammar::JsonSchema(s) => TopLevelGrammar::from_json_schema(compact(closed(s.clone()))),
            Grammar::Lark(g) => TopLevelGrammar::from_lark(g.clone()),
            Grammar::Regex(r) => TopLevelGrammar::from_regex(r),
        }
    }
}

/// A schema whose objects admit no property they do not name, unless they say
/// `additionalProperties` themselves (llama.cpp's and Ollama's schema grammars close objects;
/// JSON Schema's own default would let a model invent keys).
pub fn closed(mut schema: serde_json::Value) -> serde_json::Value {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(o) => {
                let object = o.get("type").and_then(|t| t.as_str()) == Some("object")
                    || o.contains_key("properties");
                if object && !o.contains_key("additionalProperties") {
                    o.insert("additionalProperties".into(), serde_json::Value::Bool(false));
                }
                o.values_mut().for_each(walk);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut schema);
    schema
}

/// JSON without free whitespace between tokens (", " and ": " separators), unless the schema
/// sets llguidance's options itself: a model cannot spend its tokens on newlines and indents.
fn compact(mut schema: serde_json::Value) -> serde_json::Value {
    if let Some(o) = schema.as_object_mut() {
        o.entry("x-guidance").or_insert(serde_json::json!({"whitespace_flexible": false}));
    }
    schema
}

/// The tokenizer as llguidance sees it.
struct Env {
    trie: TokTrie,
    tok: Arc<Tokenizer>,
}

impl TokenizerEnv for Env {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        match std::str::from_utf8(s).ok().and_then(|t| self.tok.encode(t, false, false).ok()) {
            Some(ids) => ids,
            None => self.trie.greedy_tokenize(s),
        }
    }
}

/// A vocabulary compiled for llguidance once per loaded model; grammars are compiled against it.
pub struct Vocab {
    factory: ParserFactory,
    /// Every end-of-generation id (EOS and end-of-turn).
    eog: Vec<u32>,
}

impl Vocab {
    /// Builds the token trie of `tok` (control tokens as llguidance's special tokens).
    pub fn new(tok: Arc<Tokenizer>) -> Result<Vocab> {
        let sp = tok.specials().clone();
        let eos = sp.eos.or(sp.eot).ok_or_else(|| {
            Error::Tokenizer("structured output needs an end-of-sequence token".into())
        })?;
        let mut info = TokRxInfo::new(tok.len() as u32, eos);
        info.tok_bos = sp.bos;
        info.tok_end_of_turn = sp.eot;
        let mut piece = Vec::new();
        let words: Vec<Vec<u8>> = (0..tok.len() as u32)
            .map(|id| {
                piece.clear();
                tok.piece_bytes(id, &mut piece);
                if tok.is_control(id) || piece.is_empty() {
                    let mut w = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                    w.extend_from_slice(tok.token_text(id).as_bytes());
                    w
                } else {
                    piece.clone()
                }
            })
            .collect();
        let trie = TokTrie::from(&info, &words);
        let env: TokEnv = Arc::new(Env { trie, tok });
        let mut factory =
            ParserFactory::new_simple(&env).map_err(|e| Error::Grammar(e.to_string()))?;
        factory.quiet();
        let eog = [sp.eos, sp.eot].into_iter().flatten().collect();
        Ok(Vocab { factory, eog })
    }
}

/// One request's grammar state: the matcher and the mask of the next token.
pub struct Constraint {
    matcher: Matcher,
    mask: toktrie::SimpleVob,
    eog: Vec<u32>,
}

impl Constraint {
    /// Compiles `grammar` for one request; a grammar error names what is wrong.
    pub fn new(vocab: &Vocab, grammar: &Grammar) -> Result<Constraint> {
        let parser = vocab
            .factory
            .create_parser(grammar.top_level())
            .map_err(|e| Error::Grammar(e.to_string().replace('\n', " ")))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(Error::Grammar(e.replace('\n', " ")));
        }
        Ok(Constraint { matcher, mask: toktrie::SimpleVob::alloc(0), eog: vocab.eog.clone() })
    }

    /// Computes the tokens allowed next, as a bit mask (bit `i % 32` of word `i / 32`); where
    /// the grammar may end, every end-of-generation token is allowed.
    pub fn mask(&mut self) -> Result<&[u32]> {
        self.mask =
            self.matcher.compute_mask_or_eos().map_err(|e| Error::Grammar(e.to_string()))?;
        if self.eog.iter().any(|&t| self.mask.is_allowed(t)) {
            self.eog.iter().for_each(|&t| self.mask.allow_token(t));
        }
        if self.mask.is_zero() {
            return Err(Error::Grammar("no token can continue the output".into()));
        }
        Ok(self.mask.as_slice())
    }

    /// Advances past a sampled token (an end-of-generation token ends the grammar).
    pub fn accept(&mut self, id: u32) -> Result<()> {
        if self.eog.contains(&id) {
            return Ok(());
        }
        self.matcher.consume_token(id).map_err(|e| Error::Grammar(e.to_string()))
    }

    /// Whether the grammar is complete and only the end of generation can follow.
    pub fn is_stopped(&self) -> bool {
        self.matcher.is_stopped()
    }
}

/// Whether bit `id` of a mask is set.
#[inline]
pub fn allowed(mask: &[u32], id: u32) -> bool {
    mask.get(id as usize / 32).is_some_and(|w| w >> (id % 32) & 1 == 1)
}
