//! Embeddings: each input's final-normed hidden states, mean-pooled, through the model's
//! projections (EmbeddingGemma's dense layers) and L2-normalised, as llama.cpp's
//! `llama-embedding --pooling mean` (embd_normalize 2) computes them. Inputs run side by side
//! in free KV slots, their tokens packed into shared forwards of up to num_batch rows, so that
//! many short inputs cost few forwards; a bidirectional model's inputs each lie whole in one.

use super::Engine;
use crate::backend::Batch;
use crate::error::{Error, Result};

/// Where one input stands: its slot, its next token, its running sum.
struct Cursor {
    input: usize,
    slot: usize,
    at: usize,
}

impl Engine {
    /// Token ids of an embedding input: BOS, the text, and EOS where the vocabulary adds it
    /// (EmbeddingGemma's does), special tokens parsed (as llama-embedding tokenizes); longer than
    /// the model takes is an error unless `truncate`, which keeps the first tokens.
    pub fn embed_ids(&self, text: &str, truncate: bool) -> Result<Vec<u32>> {
        let mut ids = self.tokenizer.encode(text, true, true)?;
        let sp = self.tokenizer.specials();
        if let (true, Some(eos)) = (sp.add_eos, sp.eos) {
            ids.push(eos);
        }
        self.fit_embed(ids, truncate)
    }

    /// Checks (or truncates) an input given as token ids: num_ctx tokens at most, and num_batch
    /// for a bidirectional model (one forward sees the whole input).
    pub fn fit_embed(&self, mut ids: Vec<u32>, truncate: bool) -> Result<Vec<u32>> {
        let n_ctx = if self.model.cfg.causal {
            self.opts.num_ctx
        } else {
            self.opts.num_ctx.min(self.opts.num_batch)
        };
        if ids.len() > n_ctx {
            if !truncate {
                return Err(Error::PromptTooLong { n_prompt: ids.len(), num_ctx: n_ctx });
            }
            ids.truncate(n_ctx);
        }
        if let Some(&t) = ids.iter().find(|&&t| t as usize >= self.model.n_vocab()) {
            return Err(Error::TokenId { id: t, n_vocab: self.model.n_vocab() });
        }
        Ok(ids)
    }

    /// The embedding of each input (token ids, none empty), computed in KV slots `slots` (free:
    /// their caches are overwritten and forgotten).
    pub fn embed(&mut self, inputs: &[Vec<u32>], slots: &[usize]) -> Result<Vec<Vec<f32>>> {
        assert!(!slots.is_empty(), "invariant: the caller holds a free slot");
        let e = self.model.cfg.n_embd;
        let mut sums = vec![vec![0f64; e]; inputs.len()];
        let mut next = 0;
        let mut open: Vec<Cursor> = vec![];
        let mut rows: Vec<usize> = Vec::with_capacity(self.opts.num_batch);
        while next < inputs.len() || !open.is_empty() {
            // a freed slot takes the next input
            for &slot in slots {
                if next < inputs.len() && !open.iter().any(|c| c.slot == slot) {
                    self.ctx[slot].clear();
                    open.push(Cursor { input: next, slot, at: 0 });
                    next += 1;
                }
            }
            self.batch.clear();
            rows.clear();
            let whole = !self.model.cfg.causal;
            // every input of this forward lies whole in it: nothing needs the cache
            let mut uncached = true;
            for (k, c) in open.iter_mut().enumerate() {
                let room = self.opts.num_batch - self.batch.tokens.len();
                let ids = &inputs[c.input];
                let mut take = (ids.len() - c.at).min(room);
                if whole && take < ids.len() - c.at {
                    take = 0; // the next forward takes it whole
                }
                if take > 0 && (c.at > 0 || take < ids.len()) {
                    uncached = false;
                }
                for (p, &t) in ids.iter().enumerate().skip(c.at).take(take) {
                    self.batch.push(t, c.slot, p);
                    rows.push(k);
                }
                c.at += take;
            }
            let batch = Batch::Mixed { seq: &self.batch.seq, pos: &self.batch.pos };
            self.model.set_uncached(uncached);
            let done = self.model.forward(&self.batch.tokens, &batch);
            self.model.set_uncached(false);
            done?;
            let h = self.model.hidden(rows.len())?;
            for (r, &k) in rows.iter().enumerate() {
                let sum = &mut sums[open[k].input];
                sum.iter_mut().zip(&h[r * e..(r + 1) * e]).for_each(|(s, &x)| *s += f64::from(x));
            }
            open.retain(|c| c.at < inputs[c.input].len());
        }
        let out = sums.into_iter().zip(inputs).map(|(s, ids)| {
            if self.model.dense.is_empty() {
                return normalize(&s);
            }
            let mut v: Vec<f32> = s.iter().map(|x| (x / ids.len() as f64) as f32).collect();
            for d in &self.model.dense {
                v = d.apply(&v);
            }
            normalize(&v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>())
        });
        Ok(out.collect())
    }
}

/// The mean's direction: the sum L2-normalised (the mean's length cancels).
fn normalize(sum: &[f64]) -> Vec<f32> {
    let norm = sum.iter().map(|x| x * x).sum::<f64>().sqrt();
    let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
    sum.iter().map(|x| (x * scale) as f32).collect()
}

/// The first `dims` values of an embedding, L2-normalised again (Matryoshka truncation, as
/// Ollama's and OpenAI's `dimensions`).
pub fn shorten(v: &[f32], dims: usize) -> Vec<f32> {
    let head: Vec<f64> = v.iter().take(dims).map(|&x| f64::from(x)).collect();
    normalize(&head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_and_shortened() {
        assert_eq!(normalize(&[3.0, 4.0]), vec![0.6, 0.8]);
        assert_eq!(normalize(&[0.0, 0.0]), vec![0.0, 0.0]);
        assert_eq!(shorten(&[0.6, 0.8, 0.0], 1), vec![1.0]);
    }
}
