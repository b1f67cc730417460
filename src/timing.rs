//! Timings in Ollama's fields and meanings, integer nanoseconds, plus time to first token.

use std::time::Instant;

/// One request's measured durations (never inferred).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Timings {
    /// Request start → done, load included when this request loaded the model.
    pub total_duration: u64,
    /// Reading the GGUF, building the model, allocating the cache and the warm-up forward.
    pub load_duration: u64,
    /// Prompt tokens evaluated (those reused from the cache are not counted, as Ollama).
    pub prompt_eval_count: u64,
    /// Prompt tokens whose K/V were reused from the previous request (llama.cpp's cache_prompt).
    pub prompt_cached_count: u64,
    /// First prompt batch dispatched → logits of the last prompt token available.
    pub prompt_eval_duration: u64,
    /// Tokens sampled, the terminating end-of-generation token included.
    pub eval_count: u64,
    /// Logits of the last prompt token → the last token sampled.
    pub eval_duration: u64,
    /// Request start (load included when it loaded) → first token sampled.
    pub ttft: u64,
}

impl Timings {
    /// Prompt tokens per second.
    pub fn prompt_rate(&self) -> f64 {
        rate(self.prompt_eval_count, self.prompt_eval_duration)
    }
    /// Generated tokens per second.
    pub fn eval_rate(&self) -> f64 {
        rate(self.eval_count, self.eval_duration)
    }
}

fn rate(n: u64, ns: u64) -> f64 {
    if ns == 0 {
        0.0
    } else {
        n as f64 * 1e9 / ns as f64
    }
}

/// Nanoseconds since `t`. The CPU engine's results are complete when a forward returns; a device
/// backend synchronizes before this is read.
pub fn since(t: Instant) -> u64 {
    t.elapsed().as_nanos() as u64
}
