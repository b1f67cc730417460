//! One integration-test binary (ripgrep's layout): each module's subject is in its first line.

/// Shared helpers: the real model, the built binary, a tiny generated gemma3 GGUF.
mod util;

/// Parity with llama.cpp's goldens on the real model (tokenizer, logits, perplexity).
mod golden;

/// The built `chimera` binary: bad inputs, options, run behaviour.
mod cli;

/// The backends: candle on its CPU device against the cpu backend, placements, safetensors.
mod backends;

/// The study of a folder (no model): readers, experiments, analyses and findings on corpora the
/// tests write in the tools' own formats, with the traps real folders hold.
mod study;

/// Structured outputs, grounded decoding and the prompt cache on the real model.
mod constraint;

/// `analyze`: the report agent end to end, its refusals and its grounding check.
mod agent;

/// `bench`: llama-bench's method, formats and plot on a tiny model.
mod bench;

/// `quantize`: llama.cpp's per-tensor choices, sizes and perplexity of requants.
mod quantize;

/// The CUDA backend (`--features cuda`, on a machine with a GPU): each kernel against its CPU
/// reference, the model against the cpu backend, graphs against eager steps.
#[cfg(feature = "cuda")]
mod cuda;

/// `chimera serve`: the ollama and openai Python clients, errors, queueing, batching, shutdown.
mod serve;

/// LangChain, LiteLLM and a browser page (CORS) against `chimera serve`.
mod clients;

/// EmbeddingGemma (`gemma-embedding`) against llama.cpp's embeddings, on synthetic weights.
mod embedding;

/// LoRA adapters: the merged weights' logits, refusals, `--lora`, ADAPTER and the ollama package.
mod lora;

/// Model stores: Ollama's store in place; killed, concurrent and out-of-space pulls.
mod store;

/// `run` on a pseudo-terminal: the interactive chat, its commands, Ctrl-C and Ctrl-D.
mod repl;

/// Seeded fuzzing: GGUF headers and metadata, the tokenizer, chat templates, artifact folders.
mod fuzz;
