//! What chimera knows about the programs and models behind the data: how many layers a model
//! has, so that Ollama's `num_gpu` (and llama.cpp's `-ngl`) values at or above the layer count,
//! which both clamp to full offload, read as one level.

/// Repeating blocks of models by Ollama name stem and size (each model's `block_count`, the
/// GGUF key `<arch>.block_count` = config.json `num_hidden_layers`; gemma3's from
/// ollama-llamacpp-semantics.md §5).
const BLOCKS: &[(&str, &str, usize)] = &[
    ("gemma3", "270m", 18),
    ("gemma3", "1b", 26),
    ("gemma3", "4b", 34),
    ("gemma3", "12b", 48),
    ("gemma3", "27b", 62),
    ("gemma2", "2b", 26),
    ("gemma2", "9b", 42),
    ("gemma2", "27b", 46),
    ("llama3.1", "8b", 32),
    ("llama3.1", "70b", 80),
    ("llama3.2", "1b", 16),
    ("llama3.2", "3b", 28),
    ("llama3", "8b", 32),
    ("llama3", "70b", 80),
    ("qwen2.5", "0.5b", 24),
    ("qwen2.5", "1.5b", 28),
    ("qwen2.5", "3b", 36),
    ("qwen2.5", "7b", 28),
    ("qwen2.5", "14b", 48),
    ("qwen2.5", "32b", 64),
    ("mistral", "7b", 32),
    ("phi3", "3.8b", 32),
    ("phi3", "mini", 32),
];

/// Ollama's default tag of a bare name (`gemma3` and `gemma3:latest` are the 4B).
const LATEST: &[(&str, &str)] = &[
    ("gemma3", "4b"),
    ("llama3.1", "8b"),
    ("llama3", "8b"),
    ("llama3.2", "3b"),
    ("mistral", "7b"),
    ("qwen2.5", "7b"),
    ("gemma2", "9b"),
];

/// The repeating blocks of a model named as Ollama names it (`llama3.1:8b-instruct-q4_0`,
/// `gemma3:1b-it-qat`, `gemma3:latest`), when chimera knows it.
pub fn blocks(model: &str) -> Option<usize> {
    let m = model.trim().to_ascii_lowercase();
    let m = m.rsplit('/').next().unwrap_or(&m);
    let (stem, tag) = m.split_once(':').unwrap_or((m, "latest"));
    let size = if tag == "latest" || tag.is_empty() {
        LATEST.iter().find(|(s, _)| *s == stem).map(|(_, z)| *z)?
    } else {
        let first = tag.split('-').next().unwrap_or(tag);
        BLOCKS.iter().find(|(s, z, _)| *s == stem && *z == first).map(|(_, z, _)| *z)?
    };
    BLOCKS.iter().find(|(s, z, _)| *s == stem && *z == size).map(|(_, _, b)| *b)
}

/// The offload a `num_gpu` value gives a model of `blocks` blocks: values at or above blocks +
/// 1 (the head's slot) are all full offload (Ollama `min(len(layers), requested)`, llama.cpp
/// `min(ngl, n_layer + 1)`).
pub fn offload_level(num_gpu: f64, blocks: usize) -> Option<String> {
    (num_gpu >= (blocks + 1) as f64).then(|| format!("all ({} layers)", blocks + 1))
}

/// Whether a factor name is the number of offloaded layers.
pub fn is_num_gpu(name: &str) -> bool {
    matches!(name, "num_gpu" | "n_gpu_layers" | "ngl" | "gpu_layers")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_counts_by_ollama_name() {
        assert_eq!(blocks("llama3.1:8b-instruct-q4_0"), Some(32));
        assert_eq!(blocks("gemma3:1b-it-qat"), Some(26));
        assert_eq!(blocks("gemma3:latest"), Some(34));
        assert_eq!(blocks("gemma3"), Some(34));
        assert_eq!(blocks("unknown:7b"), None);
        assert_eq!(offload_level(40.0, 32).as_deref(), Some("all (33 layers)"));
        assert_eq!(offload_level(33.0, 32).as_deref(), Some("all (33 layers)"));
        assert_eq!(offload_level(32.0, 32), None);
    }
}
