//! The library's one error type: every failure names the file, key, flag or value it is about.

use std::path::PathBuf;

/// Result alias used across the library.
pub type Result<T> = std::result::Result<T, Error>;

/// Every error the library returns. The CLI prints `Display` on one line and exits with 2.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // === files ===
    /// An I/O failure on a named file.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    // === GGUF ===
    /// The file is not a well-formed GGUF; `what` says which part is wrong.
    #[error("{path}: not a valid GGUF file: {what}")]
    Gguf { path: PathBuf, what: String },
    /// Required metadata keys are absent (all of them are listed).
    #[error("{path}: missing required metadata key(s): {}", keys.join(", "))]
    MissingKeys { path: PathBuf, keys: Vec<String> },
    /// A metadata key holds a value of the wrong type or out of range.
    #[error("{path}: metadata key '{key}': {what}")]
    BadKey { path: PathBuf, key: String, what: String },
    /// The file is a GGUF of another architecture.
    #[error("{path}: general.architecture is '{found}', chimera runs 'gemma3'")]
    Architecture { path: PathBuf, found: String },
    /// A tensor is missing, has the wrong shape, or an unsupported type.
    #[error("{path}: tensor '{name}': {what}")]
    Tensor { path: PathBuf, name: String, what: String },

    // === options and input ===
    /// An option value is out of its domain.
    #[error("invalid value for {name}: {value} ({why})")]
    InvalidOption { name: String, value: String, why: String },
    /// The prompt does not fit and truncation was refused.
    #[error("the prompt has {n_prompt} tokens, more than num_ctx {num_ctx} (truncation disabled)")]
    PromptTooLong { n_prompt: usize, num_ctx: usize },
    /// A token id is outside the vocabulary.
    #[error("token id {id} is outside the vocabulary (size {n_vocab})")]
    TokenId { id: u32, n_vocab: usize },
    /// Tokenizer construction or use failed.
    #[error("tokenizer.chat_template: {0}")]
    Template(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A structured-output grammar (JSON schema, Lark, regex) that cannot be compiled or followed.
    #[error("grammar: {0}")]
    Grammar(String),

    // === models and registry ===
    /// A model name or path could not be resolved; every source tried is listed.
    #[error("model '{name}' not found; tried: {}", tried.join("; "))]
    ModelNotFound { name: String, tried: Vec<String> },
    /// A file's sha256 differs from the registry's.
    #[error("{path}: sha256 {found} does not match the expected {expected}")]
    Checksum { path: PathBuf, expected: String, found: String },
    /// models.toml is malformed.
    #[error("{path}: {what}")]
    Registry { path: PathBuf, what: String },

    // === devices ===
    /// A device could not be used.
    #[error("device: {0}")]
    Device(String),
    /// An error from candle.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// Shorthand for an option-domain error.
    pub fn option(name: &str, value: impl ToString, why: &str) -> Self {
        Error::InvalidOption { name: name.into(), value: value.to_string(), why: why.into() }
    }
}
