//! Perplexity by llama-perplexity's method: chunks of num_ctx tokens, BOS as each chunk's first
//! token, only the second half of each chunk scored (ref: llama.cpp tools/perplexity perplexity()).

use crate::engine::Engine;
use crate::error::{Error, Result};

/// The outcome: PPL, its ± (standard error of the mean NLL propagated), and the running values.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Perplexity {
    pub ppl: f64,
    pub ppl_error: f64,
    pub n_chunks: usize,
    pub n_ctx: usize,
    pub n_scored: usize,
    /// exp(mean NLL so far) after each chunk, as llama-perplexity prints `[i]ppl`.
    pub running: Vec<f64>,
}

/// Runs the method on `text` with chunks of the engine's num_ctx (which must equal num_batch so a
/// chunk is one forward).
pub fn run(
    engine: &mut Engine,
    text: &str,
    on_chunk: &mut dyn FnMut(usize, usize, f64),
) -> Result<Perplexity> {
    let n_ctx = engine.opts.num_ctx;
    let tokens = engine.tokenizer.encode(text, true, true)?;
    if tokens.len() < 2 * n_ctx {
        return Err(Error::option(
            "num_ctx",
            n_ctx,
            &format!("the text has {} tokens; perplexity needs at least 2 × num_ctx", tokens.len()),
        ));
    }
    let bos = engine.tokenizer.specials().bos.unwrap_or(tokens[0]);
    let n_vocab = engine.model.n_vocab();
    let n_chunks = tokens.len() / n_ctx;
    let first = n_ctx / 2;
    // Logits are computed 32 rows at a time to keep the buffer small.
    const ROWS: usize = 32;
    let mut logits = vec![0f32; ROWS * n_vocab];
    let (mut nll, mut nll2, mut count) = (0f64, 0f64, 0usize);
    let mut running = Vec::with_capacity(n_chunks);
    let mut chunk = vec![0u32; n_ctx];
    for c in 0..n_chunks {
        chunk.copy_from_slice(&tokens[c * n_ctx..(c + 1) * n_ctx]);
        chunk[0] = bos;
        let truth = &tokens[c * n_ctx..(c + 1) * n_ctx];
        let mut row = first;
        // rows first..n_ctx−1 predict tokens first+1..n_ctx
        while row < n_ctx - 1 {
            let end = (row + ROWS).min(n_ctx - 1);
            if row == first {
                engine.eval_logits(&chunk, row..end, &mut logits)?;
            } else {
                engine.logits_rows(row..end, &mut logits)?;
            }
            for (i, r) in (row..end).enumerate() {
                let l = &logits[i * n_vocab..(i + 1) * n_vocab];
                let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let lse =
                    max as f64 + l.iter().map(|&x| ((x - max) as f64).exp()).sum::<f64>().ln();
                let v = lse - l[truth[r + 1] as usize] as f64;
                nll += v;
                nll2 += v * v;
                count += 1;
            }
            row = end;
        }
        let p = (nll / count as f64).exp();
        running.push(p);
        on_chunk(c + 1, n_chunks, p);
    }
    let mean = nll / count as f64;
    let var = (nll2 / count as f64 - mean * mean) / (count as f64 - 1.0);
    let ppl = mean.exp();
    Ok(Perplexity {
        ppl,
        ppl_error: ppl * var.max(0.0).sqrt(),
        n_chunks,
        n_ctx,
        n_scored: count,
        running,
    })
}
