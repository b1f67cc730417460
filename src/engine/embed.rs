//! Embeddings: each input's final-normed hidden states, mean-pooled, through the model's
//! projections (EmbeddingGemma's dense layers) and L2-normalised, as llama.cpp's
//! `llama-embedding --pooling mean` (embd_normalize 2) computes them. Inputs that fit a forward
//! lie whole in one, side by side with others up to num_batch rows, and attend within it (no KV
//! slot, so a request of many short inputs costs few forwards however few slots are free);
//! a causal model's longer inputs run through free slots' caches.

use super::Engine;
use crate::backend::Batch;
use crate::error::{Error, Result};

/// Where an input run through a slot's cache stands: its slot and its next token.
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
    /// their caches are overwritten and forgotten). Inputs that fit a forward go side by side,
    /// as many as num_batch holds, attending within it whatever the slots; longer ones (causal
    /// models only) run through the slots' caches.
    pub fn embed(&mut self, inputs: &[Vec<u32>], slots: &[usize]) -> Result<Vec<Vec<f32>>> {
        assert!(!slots.is_empty(), "invariant: the caller holds a free slot");
        let e = self.model.cfg.n_embd;
        let mut sums = vec![vec![0f64; e]; inputs.len()];
        let (whole, long): (Vec<usize>, Vec<usize>) =
            (0..inputs.len()).partition(|&i| inputs[i].len() <= self.opts.num_batch);
        self.model.set_uncached(true);
        let done = self.embed_whole(inputs, &whole, slots[0], &mut sums);
        self.model.set_uncached(false);
        done?;
        self.embed_cached(inputs, &long, slots, &mut sums)?;
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

    /// Inputs `which` (each at most num_batch tokens), packed in order into forwards of whole
    /// inputs: the k-th input of a forward is sequence k there, or `free` (a slot the forward
    /// may write) when it is the forward's only token.
    fn embed_whole(
        &mut self,
        inputs: &[Vec<u32>],
        which: &[usize],
        free: usize,
        sums: &mut [Vec<f64>],
    ) -> Result<()> {
        let mut rest = which;
        let mut rows: Vec<usize> = Vec::with_capacity(self.opts.num_batch);
        while !rest.is_empty() {
            self.batch.clear();
            rows.clear();
            let mut k = 0;
            while let Some((&i, after)) = rest.split_first() {
                if self.batch.tokens.len() + inputs[i].len() > self.opts.num_batch {
                    break;
                }
                for (p, &t) in inputs[i].iter().enumerate() {
                    self.batch.push(t, k, p);
                    rows.push(i);
                }
                (k, rest) = (k + 1, after);
            }
            if self.batch.tokens.len() == 1 {
                self.batch.seq[0] = free;
            }
            self.pool_rows(&rows, sums)?;
        }
        Ok(())
    }

    /// Inputs `which` through the caches of `slots`, a freed slot taking the next input, their
    /// tokens packed into shared forwards of up to num_batch rows.
    fn embed_cached(
        &mut self,
        inputs: &[Vec<u32>],
        which: &[usize],
        slots: &[usize],
        sums: &mut [Vec<f64>],
    ) -> Result<()> {
        let mut next = which.iter();
        let mut open: Vec<Cursor> = vec![];
        let mut rows: Vec<usize> = Vec::with_capacity(self.opts.num_batch);
        loop {
            for &slot in slots {
                if !open.iter().any(|c| c.slot == slot) {
                    if let Some(&input) = next.next() {
                        self.ctx[slot].clear();
                        open.push(Cursor { input, slot, at: 0 });
                    }
                }
            }
            if open.is_empty() {
                return Ok(());
            }
            self.batch.clear();
            rows.clear();
            for c in open.iter_mut() {
                let room = self.opts.num_batch - self.batch.tokens.len();
                let ids = &inputs[c.input];
                let take = (ids.len() - c.at).min(room);
                for (p, &t) in ids.iter().enumerate().skip(c.at).take(take) {
                    self.batch.push(t, c.slot, p);
                    rows.push(c.input);
                }
                c.at += take;
            }
            self.pool_rows(&rows, sums)?;
            open.retain(|c| c.at < inputs[c.input].len());
        }
    }

    /// Runs the forward in `self.batch` and adds each row's final hidden state to the sum of
    /// its input (`rows[r]`).
    fn pool_rows(&mut self, rows: &[usize], sums: &mut [Vec<f64>]) -> Result<()> {
        let e = self.model.cfg.n_embd;
        let batch = Batch::Mixed { seq: &self.batch.seq, pos: &self.batch.pos };
        self.model.forward(&self.batch.tokens, &batch)?;
        let h = self.model.hidden(rows.len())?;
        for (r, &i) in rows.iter().enumerate() {
            let sum = &mut sums[i];
            sum.iter_mut().zip(&h[r * e..(r + 1) * e]).for_each(|(s, &x)| *s += f64::from(x));
        }
        Ok(())
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
