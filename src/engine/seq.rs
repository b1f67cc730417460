//! One request's generation state, whoever drives it (a lone `generate` or the batcher): its
//! fitted prompt, sampler chain, grammar, text with stop strings held back, log-probabilities and
//! timings.

use super::{Arrival, DoneReason, GenerateOptions, Output, TokenLogprob};
use crate::constraint::Constraint;
use crate::error::Result;
use crate::sampler::Sampler;
use crate::timing::{since, Timings};
use crate::tokenizer::{TextStream, Tokenizer};
use std::time::Instant;

/// A request being generated in a KV slot.
pub(crate) struct Seq {
    /// The prompt as it is evaluated (truncated when it exceeds num_ctx).
    pub prompt: Vec<u32>,
    pub opts: GenerateOptions,
    pub sampler: Sampler,
    constraint: Option<Constraint>,
    /// Candidates a device front end returns for this chain, when the request can use one.
    pub front_k: Option<usize>,
    max_new: u64,
    out: Decoded,
    t: Timings,
    /// The request's start (its arrival), its prompt's first batch and its first logits.
    t0: Instant,
    t_prompt: Option<Instant>,
    t_eval: Option<Instant>,
    warnings: Vec<String>,
    /// The logits with `logit_bias` added (sized on first use, once per request).
    biased: Vec<f32>,
    /// The prompt's log-probabilities, when asked for.
    prompt_lps: Vec<TokenLogprob>,
}

impl Seq {
    /// A request that arrived at `at`. The prompt is already fitted; its tokens enter the
    /// penalty window.
    pub fn new(
        prompt: Vec<u32>,
        opts: &GenerateOptions,
        (mut sampler, constraint): (Sampler, Option<Constraint>),
        num_ctx: usize,
        at: Arrival,
        warnings: Vec<String>,
    ) -> Seq {
        prompt.iter().for_each(|&t| sampler.accept(t));
        // the chain's first stages run next to the logits where the head's backend can, so that
        // only k candidates leave the device; log-probabilities and grammars need every logit
        let front_k = if opts.logprobs == 0 && constraint.is_none() && opts.logit_bias.is_empty() {
            sampler.front_k(super::MAX_FRONT_K)
        } else {
            None
        };
        let max_new =
            if opts.num_predict < 0 { 10 * num_ctx as u64 } else { opts.num_predict as u64 };
        Seq {
            prompt,
            opts: opts.clone(),
            sampler,
            constraint,
            front_k,
            max_new,
            out: Decoded::default(),
            t: Timings { load_duration: at.load_ns, ..Default::default() },
            t0: at.t0,
            t_prompt: None,
            t_eval: None,
            warnings,
            biased: vec![],
            prompt_lps: vec![],
        }
    }

    /// Notes a prompt row's logits: the log-probability of `next`, the prompt token after it.
    pub fn prompt_row(&mut self, logits: &[f32], next: u32) {
        let mut lp = top_logprobs(logits, self.opts.logprobs.max(1));
        lp.id = next;
        lp.logprob = log_softmax_at(logits, next);
        self.prompt_lps.push(lp);
    }

    /// The prompt tokens' log-probabilities noted so far.
    pub fn prompt_logprobs(&self) -> &[TokenLogprob] {
        &self.prompt_lps
    }

    /// The prompt's first batch is about to run.
    pub fn prompt_started(&mut self) {
        self.t_prompt.get_or_insert_with(Instant::now);
    }

    /// The prompt's last logits are ready (the device synchronized); `cached` of its tokens
    /// were reused from the slot's cache.
    pub fn prompt_done(&mut self, cached: usize) {
        self.t.prompt_eval_duration = self.t_prompt.map_or(0, since);
        self.t.prompt_cached_count = cached as u64;
        self.t.prompt_eval_count = (self.prompt.len() - cached) as u64;
        self.t_eval = Some(Instant::now());
    }

    /// The next token from a row of logits on the host: through the chain's front end where the
    /// request allows (`scratch` holds its candidates), else over the full row after the
    /// grammar's mask.
    pub fn sample_host(&mut self, logits: &[f32], scratch: &mut Vec<(u32, f32)>) -> Result<u32> {
        if let Some(k) = self.front_k {
            self.sampler.front_host(logits, k, scratch);
            return Ok(self.sampler.sample_front(scratch));
        }
        let mut biased = std::mem::take(&mut self.biased);
        let logits = if self.opts.logit_bias.is_empty() {
            logits
        } else {
            biased.clear();
            biased.extend_from_slice(logits);
            for &(id, b) in &self.opts.logit_bias {
                if let Some(x) = biased.get_mut(id as usize) {
                    *x += b;
                }
            }
            &biased[..]
        };
        let r = self.sample_row(logits);
        self.biased = biased;
        r
    }

    /// The chain over a full row of logits (after the grammar's mask), with log-probabilities.
    fn sample_row(&mut self, logits: &[f32]) -> Result<u32> {
        if self.opts.logprobs > 0 {
            self.out.logprobs.push(top_logprobs(logits, self.opts.logprobs));
        }
        let mask = match self.constraint.as_mut() {
            Some(c) => Some(c.mask()?),
            None => None,
        };
        let id = self.sampler.sample_masked(logits, mask);
        if let Some(lp) = self.out.logprobs.last_mut() {
            lp.id = id;
            lp.logprob = log_softmax_at(logits, id);
        }
        Ok(id)
    }

    /// Takes a sampled token: true when the request is finished (an end-of-generation token, a
    /// stop string, a complete grammar, num_predict reached, or `on_text` refusing more).
    pub fn accept(&mut self, tok: &Tokenizer, id: u32, on_text: &mut OnText) -> Result<bool> {
        self.sampler.accept(id);
        if self.out.ids.is_empty() {
            self.t.ttft = since(self.t0);
        }
        self.out.ids.push(id);
        if tok.is_eog(id) {
            self.out.done = DoneReason::Stop;
            return Ok(true);
        }
        if let Some(c) = self.constraint.as_mut() {
            c.accept(id)?;
        }
        let (stopped, open) = self.out.push_text(tok, id, &self.opts.stop, on_text);
        if stopped || self.constraint.as_ref().is_some_and(Constraint::is_stopped) {
            self.out.done = DoneReason::Stop;
            return Ok(true);
        }
        Ok(!open || self.out.ids.len() as u64 >= self.max_new)
    }

    /// Whether a shift of the full context is allowed (else the request ends with `length`).
    pub fn may_shift(&self) -> bool {
        self.opts.shift
    }

    /// Flushes held text and fills the timings (the device synchronized).
    pub fn finish(mut self, on_text: &mut OnText) -> Output {
        self.out.finish(&self.opts.stop, on_text);
        self.t.eval_count = self.out.ids.len() as u64;
        self.t.eval_duration = self.t_eval.map_or(0, since);
        self.t.total_duration = since(self.t0);
        Output {
            response: self.out.response,
            prompt_ids: self.prompt,
            ids: self.out.ids,
            done_reason: self.out.done,
            timings: self.t,
            logprobs: self.out.logprobs,
            prompt_logprobs: self.prompt_lps,
            warnings: self.warnings,
            graph_kernels: None,
        }
    }
}

/// What a request has decoded so far: ids, text (stop strings held back while they may still
/// match), log-probabilities and why it ended.
struct Decoded {
    ids: Vec<u32>,
    logprobs: Vec<TokenLogprob>,
    /// Log-probabilities already given out with a piece of text.
    lp_sent: usize,
    stream: TextStream,
    held: String,
    response: String,
    done: DoneReason,
}

impl Default for Decoded {
    fn default() -> Self {
        Decoded {
            ids: vec![],
            logprobs: vec![],
            lp_sent: 0,
            stream: TextStream::default(),
            held: String::new(),
            response: String::new(),
            done: DoneReason::Length,
        }
    }
}

impl Decoded {
    /// Adds a token's text: (a stop string ended the output, `on_text` still wants more).
    fn push_text(
        &mut self,
        tok: &Tokenizer,
        id: u32,
        stop: &[String],
        on_text: &mut OnText,
    ) -> (bool, bool) {
        self.held.push_str(&self.stream.push(tok, id));
        if let Some(cut) = stop.iter().filter_map(|s| self.held.find(s.as_str())).min() {
            self.held.truncate(cut);
            let n = self.held.len();
            return (true, self.emit(n, on_text));
        }
        let hold = stop.iter().map(|s| partial_suffix(&self.held, s)).max().unwrap_or(0);
        let n = self.held.len() - hold;
        (false, self.emit(n, on_text))
    }

    /// Flushes held text at the end (a stop string that matched is never shown).
    fn finish(&mut self, stop: &[String], on_text: &mut OnText) {
        if self.done == DoneReason::Length || !self.held.is_empty() {
            self.held.push_str(&self.stream.finish());
            if !stop.iter().any(|s| self.held.contains(s.as_str())) {
                let n = self.held.len();
                self.emit(n, on_text);
            }
        }
    }

    /// Moves the first `n` bytes of the held text to the response and the callback, with the
    /// log-probabilities of the tokens sampled since the last piece; false when the callback
    /// wants no more.
    fn emit(&mut self, n: usize, on_text: &mut OnText) -> bool {
        if n == 0 {
            return true;
        }
        let n = (0..=n).rev().find(|&i| self.held.is_char_boundary(i)).unwrap_or(0);
        let open = on_text(&self.held[..n], &self.logprobs[self.lp_sent..]);
        self.lp_sent = self.logprobs.len();
        self.response.push_str(&self.held[..n]);
        self.held.drain(..n);
        open
    }
}

/// What takes each final piece of text, with the log-probabilities (when asked for) of the
/// tokens sampled since the previous piece; false stops the request.
pub type OnText<'a> = dyn FnMut(&str, &[TokenLogprob]) -> bool + 'a;

/// Length of the longest suffix of `text` that is a proper prefix of `stop`.
fn partial_suffix(text: &str, stop: &str) -> usize {
    (1..stop.len().min(text.len() + 1))
        .rev()
        .find(|&k| stop.is_char_boundary(k) && text.ends_with(&stop[..k]))
        .unwrap_or(0)
}

fn log_softmax_at(logits: &[f32], id: u32) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    logits[id as usize] - max - sum.ln() as f32
}

/// The top-N `(id, logprob)` pairs of the raw logits (softmax over the whole vocabulary).
pub fn top_logprobs(logits: &[f32], n: usize) -> TokenLogprob {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + logits.iter().map(|&l| ((l - max) as f64).exp()).sum::<f64>().ln() as f32;
    let mut top: Vec<(u32, f32)> = Vec::with_capacity(n + 1);
    for (i, &l) in logits.iter().enumerate() {
        if top.len() < n || l > top[top.len() - 1].1 {
            let at = top.partition_point(|x| x.1 >= l);
            top.insert(at, (i as u32, l));
            top.truncate(n);
        }
    }
    top.iter_mut().for_each(|x| x.1 -= lse);
    TokenLogprob { id: 0, logprob: 0.0, top }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_stop_suffixes_are_held_back() {
        assert_eq!(partial_suffix("hello wor", "world"), 3);
        assert_eq!(partial_suffix("hello", "world"), 0);
        assert_eq!(partial_suffix("ab<end", "<end_of_turn>"), 4);
    }

    #[test]
    fn top_logprobs_are_sorted_and_normalised() {
        let l = [0.0f32, 2.0, 1.0, -1.0];
        let t = top_logprobs(&l, 2);
        assert_eq!(t.top.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2]);
        let total: f32 = l.iter().map(|&x| (x - 2.0).exp()).sum();
        assert!((t.top[0].1 + total.ln()).abs() < 1e-5);
    }
}
