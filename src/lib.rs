//! chimera: gemma3 GGUF inference in-process on the CPU (CUDA behind the `cuda` feature).
//!
//! Brief overview: [`gguf::Gguf`] opens and validates a file; [`model::Model`] holds typed views of
//! its weights and runs the forward pass into a [`model::State`] (KV cache and buffers allocated at
//! load); [`engine::Engine`] ties model, [`tokenizer::Tokenizer`] and [`sampler::Sampler`] together
//! and generates with Ollama's options and timing fields.

pub mod agent;
pub mod analysis;
pub mod backend;
pub mod bench;
pub mod chat;
pub mod config;
pub mod constraint;
pub mod convert;
pub mod engine;
pub mod error;
pub mod gguf;
pub mod gotmpl;
pub mod make;
pub mod model;
pub mod offload;
pub mod perplexity;
pub mod pool;
pub mod quantize;
pub mod registry;
pub mod sampler;
pub mod serve;
pub mod session;
pub mod stamp;
pub mod stats;
pub mod synthetic;
pub mod timing;
pub mod tokenizer;

pub use error::{Error, Result};

use std::io::Write;
use std::path::Path;

/// Writes a file atomically: a temp file beside it, then a rename, so a failure never leaves a
/// partial output behind.
pub fn atomic_write(
    path: &Path,
    f: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let res = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(file);
        f(&mut w)?;
        w.flush()?;
        w.get_ref().sync_all()?;
        Ok(())
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}
