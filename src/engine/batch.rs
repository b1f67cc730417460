//! Continuous batching: up to n_seq requests, each in its own KV slot, share every forward. A
//! step carries one token of every decoding request and the next prompt chunk of the oldest
//! request still in its prompt (llama-server's unified batch), so a new prompt never stalls the
//! running ones by more than one chunk; then every decoding request samples from its own row.
//! A lone request (`Engine::generate`) runs through the same steps.

use super::seq::Seq;
use super::{Engine, GenerateOptions, Output};
use crate::backend::{Batch, Front};
use crate::error::{Error, Result};
use std::time::Instant;

/// Where a request's text and end go.
pub trait Sink {
    /// A piece of final text, with the log-probabilities (when asked for) of the tokens sampled
    /// since the previous piece; false cancels the request (its client went away).
    fn text(&mut self, piece: &str, logprobs: &[super::TokenLogprob]) -> bool;
    /// The prompt's scores (asked for with `prompt_logprobs`): its first token, then the
    /// log-probability of each later one; once the prompt is evaluated, before any text.
    fn prompt_scored(&mut self, _first: Option<u32>, _prompt_logprobs: &[super::TokenLogprob]) {}
    /// The request's end: its output, or the error that ended it.
    fn done(&mut self, out: Result<Output>);
}

/// A request for the batcher.
pub struct Request<'a> {
    pub prompt: Vec<u32>,
    pub opts: GenerateOptions,
    pub sink: Box<dyn Sink + 'a>,
    pub arrival: Arrival,
}

/// When a request started — its arrival, before the model load it waited for — and that load
/// (Ollama counts it on the request that loaded the model); total_duration and ttft count from
/// `t0`.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub t0: Instant,
    pub load_ns: u64,
}

impl Arrival {
    /// Now, with no load.
    pub fn now() -> Arrival {
        Arrival { t0: Instant::now(), load_ns: 0 }
    }
}

enum Phase {
    /// Prompt tokens `at..` are still to be evaluated; the first `keep` came from the cache.
    Prompt { keep: usize, at: usize },
    /// `next` is sampled and goes into the next step.
    Decode { next: u32 },
    /// Waits for the request in slot `from` to finish evaluating a prompt that shares a longer
    /// prefix with this one than any cache does, then copies its KV (`n` choices, or clients
    /// sending one prompt at once: the shared prefix is evaluated once).
    Wait { from: usize },
}

/// Where a shared prompt prefix comes from: a slot still evaluating it, or one holding it.
#[derive(Clone, Copy)]
enum Donor {
    Evaluating(usize),
    Holds(usize),
}

/// The shortest prefix worth waiting for or copying a slot's cache for (a copy moves the whole
/// cache; a few tokens are cheaper to evaluate).
const MIN_SHARED: usize = 32;

struct Active<'a> {
    seq: Seq,
    sink: Box<dyn Sink + 'a>,
    phase: Phase,
    slot: usize,
    /// Admission order: the oldest prompt goes first.
    order: u64,
    /// How it ended, once it has (reported and its slot freed by `sweep`).
    ended: Option<Result<()>>,
}

/// The requests being generated, at most one per KV slot.
#[derive(Default)]
pub struct Batcher<'a> {
    active: Vec<Active<'a>>,
    admitted: u64,
}

impl<'a> Batcher<'a> {
    pub fn new() -> Self {
        Batcher::default()
    }

    /// Requests in progress.
    pub fn len(&self) -> usize {
        self.active.len()
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// Whether a KV slot is free for another request.
    pub fn has_room(&self, e: &Engine) -> bool {
        self.active.len() < e.opts.n_seq
    }

    /// The KV slots no request holds.
    pub fn free_slots(&self, e: &Engine) -> Vec<usize> {
        (0..e.opts.n_seq).filter(|&s| !self.active.iter().any(|a| a.slot == s)).collect()
    }

    /// Starts a request in the free slot whose cache shares the longest reusable prefix with its
    /// prompt (llama-server's slot selection). A request that cannot start (a bad grammar, a
    /// prompt too long) is ended through its sink; with no slot free it comes back.
    pub fn admit(&mut self, e: &mut Engine, req: Request<'a>) -> Option<Request<'a>> {
        let busy = |s: usize| self.active.iter().any(|a| a.slot == s);
        let best = (0..e.opts.n_seq)
            .filter(|&s| !busy(s))
            .max_by_key(|&s| (e.reusable_prefix_in(s, &req.prompt), std::cmp::Reverse(s)));
        match best {
            Some(slot) => {
                self.admit_at(e, slot, req);
                None
            }
            None => Some(req),
        }
    }

    /// Starts a request in KV slot `slot` (free).
    pub(crate) fn admit_at(&mut self, e: &mut Engine, slot: usize, mut req: Request<'a>) {
        let seq = match e.start(&req.prompt, &req.opts, req.arrival) {
            Ok(s) => s,
            Err(err) => return req.sink.done(Err(err)),
        };
        // prompt log-probabilities need every prompt row's logits: nothing reused
        let scored = seq.opts.prompt_logprobs;
        let mut keep = if scored { 0 } else { e.reusable_prefix_in(slot, &seq.prompt) };
        let mut phase = Phase::Prompt { keep, at: keep };
        match self.donor(e, &seq.prompt, keep).filter(|_| !scored) {
            Some(Donor::Evaluating(from)) => phase = Phase::Wait { from },
            Some(Donor::Holds(from)) => {
                if let Err(err) = e.copy_slot(from, slot) {
                    return req.sink.done(Err(err));
                }
                keep = e.reusable_prefix_in(slot, &seq.prompt);
                phase = Phase::Prompt { keep, at: keep };
            }
            None => {}
        }
        e.ctx[slot].truncate(keep);
        self.admitted += 1;
        self.active.push(Active {
            seq,
            sink: req.sink,
            phase,
            slot,
            order: self.admitted,
            ended: None,
        });
    }

    /// The running request whose prompt shares more than `keep` tokens (and at least
    /// [`MIN_SHARED`]) with `prompt`: one still evaluating it, or one whose slot holds it.
    fn donor(&self, e: &Engine, prompt: &[u32], keep: usize) -> Option<Donor> {
        let common = |a: &[u32]| a.iter().zip(prompt).take_while(|(x, y)| x == y).count();
        let (n, donor) = self
            .active
            .iter()
            .filter(|a| a.ended.is_none())
            .map(|a| match a.phase {
                Phase::Prompt { .. } => (common(&a.seq.prompt), Donor::Evaluating(a.slot)),
                _ => (e.reusable_prefix_in(a.slot, prompt), Donor::Holds(a.slot)),
            })
            .max_by_key(|(n, _)| *n)?;
        let n = n.min(prompt.len().saturating_sub(1));
        (n > keep && n >= MIN_SHARED).then_some(donor)
    }

    /// Requests waiting on another's prompt start once it is evaluated (or gone), with its KV
    /// copied: the shared prefix is theirs where the slot still holds it.
    fn resume(&mut self, e: &mut Engine) -> Result<()> {
        for i in 0..self.active.len() {
            let Phase::Wait { from } = self.active[i].phase else { continue };
            let evaluating = self.active.iter().any(|a| {
                a.slot == from && a.ended.is_none() && matches!(a.phase, Phase::Prompt { .. })
            });
            if evaluating {
                continue;
            }
            let slot = self.active[i].slot;
            e.copy_slot(from, slot)?;
            let keep = e.reusable_prefix_in(slot, &self.active[i].seq.prompt);
            e.ctx[slot].truncate(keep);
            self.active[i].phase = Phase::Prompt { keep, at: keep };
        }
        Ok(())
    }

    /// One forward over the batch, then sampling; requests that end report to their sinks and
    /// free their slots. An error here is the forward's (every request is then failed by the
    /// caller, see [`Batcher::fail_all`]); a request's own error ends only that request.
    pub fn step(&mut self, e: &mut Engine) -> Result<()> {
        self.resume(e)?;
        self.make_room(e)?;
        let (n_dec, prefill) = self.build(e);
        let n = e.batch.tokens.len();
        if n == 0 {
            return self.sweep(e);
        }
        let batch = if n_dec == 0 || (n == 1) {
            let slot = e.batch.seq[0];
            Batch::Run { seq: slot, pos0: e.batch.pos[0], n }
        } else {
            Batch::Mixed { seq: &e.batch.seq, pos: &e.batch.pos }
        };
        e.model.forward(&e.batch.tokens, &batch)?;
        for b in 0..n {
            e.ctx[e.batch.seq[b]].push(e.batch.tokens[b]);
        }
        let nv = e.model.n_vocab();
        let host = !e.model.has_front()
            || self
                .active
                .iter()
                .any(|a| matches!(a.phase, Phase::Decode { .. }) && a.seq.front_k.is_none());
        if n_dec > 0 && host {
            e.model.logits(0..n_dec, &mut e.logits[..n_dec * nv])?;
        }
        if let Some((i, m)) = prefill {
            self.prompt_rows(e, i, n_dec, m)?;
        }
        let finished = prefill.filter(|&(i, m)| match self.active[i].phase {
            Phase::Prompt { at, .. } => at + m == self.active[i].seq.prompt.len(),
            Phase::Decode { .. } | Phase::Wait { .. } => false,
        });
        if finished.is_some() {
            e.model.logits(n - 1..n, &mut e.logits[n_dec * nv..(n_dec + 1) * nv])?;
        }
        e.model.sync()?;
        // every decoding request's row, in the order build() laid them
        let mut row = 0;
        for i in 0..self.active.len() {
            let a = &self.active[i];
            if a.ended.is_some() || !matches!(a.phase, Phase::Decode { .. }) {
                continue;
            }
            let id = if host {
                self.active[i].seq.sample_host(&e.logits[row * nv..(row + 1) * nv], &mut e.front)
            } else {
                sample_front(e, &mut self.active[i].seq, row)
            };
            self.take(e, i, id);
            row += 1;
        }
        if let Some((i, m)) = prefill {
            let Phase::Prompt { keep, at } = self.active[i].phase else {
                unreachable!("build() picked a prompt")
            };
            self.active[i].phase = Phase::Prompt { keep, at: at + m };
            if finished.is_some() {
                self.active[i].seq.prompt_done(keep);
                if self.active[i].seq.opts.num_predict == 0 {
                    self.end(i, Ok(()));
                } else {
                    let row = &e.logits[n_dec * nv..(n_dec + 1) * nv];
                    let id = self.active[i].seq.sample_host(row, &mut e.front);
                    self.take(e, i, id);
                }
            }
        }
        self.sweep(e)
    }

    /// The log-probabilities of request `i`'s prompt tokens whose predecessors were rows
    /// `n_dec..n_dec + m` of this forward, when it asked for them.
    fn prompt_rows(&mut self, e: &mut Engine, i: usize, n_dec: usize, m: usize) -> Result<()> {
        let a = &mut self.active[i];
        let Phase::Prompt { at, .. } = a.phase else { return Ok(()) };
        if !a.seq.opts.prompt_logprobs {
            return Ok(());
        }
        let nv = e.model.n_vocab();
        let row = &mut e.logits[n_dec * nv..(n_dec + 1) * nv];
        for k in 0..m {
            let Some(&next) = a.seq.prompt.get(at + k + 1) else { break };
            e.model.logits(n_dec + k..n_dec + k + 1, row)?;
            e.model.sync()?;
            a.seq.prompt_row(row, next);
        }
        Ok(())
    }

    /// Ends every request with `err` (a forward failed; the slots' caches are dropped).
    pub fn fail_all(&mut self, e: &mut Engine, err: &Error) {
        for mut a in self.active.drain(..) {
            e.ctx[a.slot].clear();
            a.sink.done(Err(Error::Device(err.to_string())));
        }
    }

    /// Full contexts before the batch is built: shifted where the request allows, else ended
    /// with `length`.
    fn make_room(&mut self, e: &mut Engine) -> Result<()> {
        for i in 0..self.active.len() {
            let a = &self.active[i];
            let full = e.ctx[a.slot].len() >= e.opts.num_ctx;
            if a.ended.is_some() || !matches!(a.phase, Phase::Decode { .. }) || !full {
                continue;
            }
            if a.seq.may_shift() {
                let (slot, keep) = (a.slot, a.seq.opts.num_keep);
                e.shift_context(slot, keep)?;
            } else {
                self.end(i, Ok(()));
            }
        }
        Ok(())
    }

    /// Lays out the next batch in the engine's buffers: one token per decoding request, then a
    /// chunk of the oldest prompt. Returns the decode rows and (request, chunk length).
    fn build(&mut self, e: &mut Engine) -> (usize, Option<(usize, usize)>) {
        e.batch.clear();
        for a in self.active.iter().filter(|a| a.ended.is_none()) {
            if let Phase::Decode { next } = a.phase {
                e.batch.push(next, a.slot, e.ctx[a.slot].len());
            }
        }
        let n_dec = e.batch.tokens.len();
        let room = e.opts.num_batch - n_dec;
        let oldest = self
            .active
            .iter()
            .enumerate()
            .filter(|(_, a)| a.ended.is_none() && matches!(a.phase, Phase::Prompt { .. }))
            .min_by_key(|(_, a)| a.order)
            .map(|(i, _)| i);
        let prefill = oldest.filter(|_| room > 0).map(|i| {
            let a = &mut self.active[i];
            let Phase::Prompt { at, .. } = a.phase else { unreachable!("filtered on prompts") };
            let m = room.min(a.seq.prompt.len() - at);
            a.seq.prompt_started();
            for (k, &t) in a.seq.prompt[at..at + m].iter().enumerate() {
                e.batch.push(t, a.slot, at + k);
            }
            (i, m)
        });
        (n_dec, prefill)
    }

    /// Takes request `i`'s sampled token (or the error sampling gave).
    fn take(&mut self, e: &mut Engine, i: usize, id: Result<u32>) {
        let a = &mut self.active[i];
        let sink = &mut a.sink;
        if matches!(a.phase, Phase::Prompt { .. }) && a.seq.opts.prompt_logprobs {
            sink.prompt_scored(a.seq.prompt.first().copied(), a.seq.prompt_logprobs());
        }
        let done = id.and_then(|id| {
            a.phase = Phase::Decode { next: id };
            a.seq.accept(&e.tokenizer, id, &mut |s, lp| sink.text(s, lp))
        });
        match done {
            Ok(false) => {}
            Ok(true) => self.end(i, Ok(())),
            Err(err) => self.end(i, Err(err)),
        }
    }

    /// Marks request `i` ended; `sweep` reports it and frees its slot.
    fn end(&mut self, i: usize, r: Result<()>) {
        self.active[i].ended.get_or_insert(r);
    }

    /// Reports the ended requests and frees their slots; the KV keeps their tokens for the next
    /// prompt that shares them.
    fn sweep(&mut self, e: &Engine) -> Result<()> {
        let mut i = self.active.len();
        while i > 0 {
            i -= 1;
            if self.active[i].ended.is_none() {
                continue;
            }
            let Active { seq, mut sink, ended, .. } = self.active.swap_remove(i);
            let out = ended.expect("checked above").map(|()| {
                let mut out = seq.finish(&mut |s, lp| sink.text(s, lp));
                let (kernels, note) = e.graph_info();
                out.graph_kernels = kernels;
                out.warnings.extend(note);
                out
            });
            sink.done(out);
        }
        Ok(())
    }
}

/// Request `seq`'s next token through the head backend's front end on row `row`.
fn sample_front(e: &mut Engine, seq: &mut Seq, row: usize) -> Result<u32> {
    let k = seq.front_k.expect("invariant: front sampling only where the chain allows it");
    let o = &seq.sampler.opts;
    let (repeat_penalty, frequency_penalty, presence_penalty) =
        (o.repeat_penalty, o.frequency_penalty, o.presence_penalty);
    let front = Front {
        k,
        repeat_penalty,
        frequency_penalty,
        presence_penalty,
        pairs: seq.sampler.penalty_pairs(),
    };
    if !e.model.sample_front(row, &front, &mut e.front)? {
        return Err(Error::Device("the head's backend has no sampling front end".into()));
    }
    Ok(seq.sampler.sample_front(&e.front))
}
