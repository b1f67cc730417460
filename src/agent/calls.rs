//! Running the agents' calls: one run's calls one after another through `Engine::generate`, or
//! several runs side by side, each in its own KV slot, their calls batched into shared forwards
//! by the engine's batcher. Side by side, the same calls are then replayed one after another so
//! that the speedup the report states is measured, not estimated.

use super::{CallMetrics, Event, LlmCall};
use crate::agent::narrative::Prompt;
use crate::constraint::Grammar;
use crate::engine::{Arrival, Batcher, DoneReason, Engine, GenerateOptions, Output, Request, Sink};
use crate::error::Result;
use std::cell::RefCell;
use std::time::Instant;

/// One agent call.
pub struct CallSpec {
    pub stage: &'static str,
    pub finding: Option<String>,
    pub prompt: Prompt,
    pub grammar: Grammar,
    pub budget: i64,
}

/// The calls of every run: what comes next in a run given what it got, and what to do with a
/// response.
pub trait Plan {
    /// Run `run`'s call number `step`, or `None` when the run is complete.
    fn call(&self, run: usize, step: usize) -> Option<CallSpec>;
    /// The response of that call.
    fn take(&mut self, run: usize, step: usize, response: String);
}

/// Side-by-side runs, measured against the same calls one after another.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Concurrency {
    pub runs: usize,
    /// Wall time of the runs side by side, sharing forwards.
    pub batched_seconds: f64,
    /// Wall time of the same calls (same prompts, grammars and seeds) one after another.
    pub sequential_seconds: f64,
    pub speedup: f64,
    /// The replay produced the same tokens as the batched runs.
    pub identical: bool,
}

/// Options of one call: the request's, its grammar, its budget, and a fixed seed where the
/// request's is random (so that a replay draws the same tokens).
fn call_opts(opts: &GenerateOptions, spec: &CallSpec, seed: Option<i64>) -> GenerateOptions {
    let mut o = opts.clone();
    o.grammar = Some(spec.grammar.clone());
    o.num_predict = match o.num_predict {
        n if n < 0 => spec.budget,
        n => n.min(spec.budget.max(1)),
    };
    if let Some(s) = seed {
        o.sampler.seed = s;
    }
    o
}

/// The response kept from an output: a reply cut by its budget keeps its complete part.
fn response(stage: &str, out: &Output) -> String {
    let text = match out.done_reason {
        DoneReason::Length if stage != "warmup" => super::narrative::complete_part(&out.response),
        _ => out.response.as_str(),
    };
    text.trim().to_string()
}

fn record(calls: &mut Vec<LlmCall>, run: usize, spec: &CallSpec, out: &Output, response: &str) {
    calls.push(LlmCall {
        run_number: run,
        stage: spec.stage.into(),
        finding: spec.finding.clone(),
        prompt: spec.prompt.text.clone(),
        response: response.to_string(),
        metrics: CallMetrics::from(&out.timings),
        failed: spec.stage != "warmup" && (out.timings.eval_count == 0 || response.is_empty()),
        timings: out.timings.clone(),
    });
}

/// One call alone (the warm-up, and every call of a single run), recorded.
pub fn one(
    engine: &mut Engine,
    opts: &GenerateOptions,
    run: usize,
    spec: &CallSpec,
    progress: &mut dyn FnMut(Event),
    calls: &mut Vec<LlmCall>,
) -> Result<String> {
    progress(Event::Stage { run, stage: spec.stage });
    let ids = engine.prompt_ids(&spec.prompt.text, !spec.prompt.chat)?;
    let mut n = 0;
    let out = engine.generate(&ids, &call_opts(opts, spec, None), &mut |_| {
        n += 1;
        progress(Event::Tokens { n });
    })?;
    let r = response(spec.stage, &out);
    record(calls, run, spec, &out, &r);
    Ok(r)
}

/// Runs 1..=runs one after another (a single run) or side by side (several), feeding each
/// response back to the plan.
pub fn runs(
    engine: &mut Engine,
    opts: &GenerateOptions,
    runs: usize,
    plan: &mut dyn Plan,
    progress: &mut dyn FnMut(Event),
    calls: &mut Vec<LlmCall>,
) -> Result<Option<Concurrency>> {
    if runs <= 1 || engine.opts.n_seq < runs {
        for run in 1..=runs {
            let mut step = 0;
            while let Some(spec) = plan.call(run, step) {
                let r = one(engine, opts, run, &spec, progress, calls)?;
                plan.take(run, step, r);
                step += 1;
            }
        }
        return Ok(None);
    }
    side_by_side(engine, opts, runs, plan, progress, calls).map(Some)
}

/// A call's result, filled by its sink.
type Slot = RefCell<Option<Result<Output>>>;

struct Into<'a>(&'a Slot);

impl Sink for Into<'_> {
    fn text(&mut self, _: &str, _: &[crate::engine::TokenLogprob]) -> bool {
        true
    }
    fn done(&mut self, out: Result<Output>) {
        *self.0.borrow_mut() = Some(out);
    }
}

/// A finished side-by-side call, for its replay.
struct Done {
    run: usize,
    step: usize,
    spec: CallSpec,
    prompt: Vec<u32>,
    ids: Vec<u32>,
}

fn side_by_side(
    engine: &mut Engine,
    opts: &GenerateOptions,
    runs: usize,
    plan: &mut dyn Plan,
    progress: &mut dyn FnMut(Event),
    calls: &mut Vec<LlmCall>,
) -> Result<Concurrency> {
    // every run starts from the warm-up's cache: the shared block is evaluated once
    for slot in 1..runs {
        engine.copy_slot(0, slot)?;
    }
    let base_seed = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos()) as i64)
        << 8;
    let seed = |run: usize, step: usize| {
        (opts.sampler.seed < 0).then_some(base_seed + (run * 64 + step) as i64)
    };
    let slots: Vec<Slot> = (0..runs).map(|_| RefCell::new(None)).collect();
    let mut steps = vec![0usize; runs];
    let mut live: Vec<Option<CallSpec>> = (0..runs).map(|_| None).collect();
    let mut done_calls: Vec<Done> = vec![];
    let t0 = Instant::now();
    let mut b = Batcher::new();
    loop {
        for r in 0..runs {
            if live[r].is_some() {
                continue;
            }
            let Some(spec) = plan.call(r + 1, steps[r]) else { continue };
            let ids = engine.prompt_ids(&spec.prompt.text, !spec.prompt.chat)?;
            let o = call_opts(opts, &spec, seed(r + 1, steps[r]));
            b.admit_at(
                engine,
                r,
                Request {
                    prompt: ids,
                    opts: o,
                    sink: Box::new(Into(&slots[r])),
                    arrival: Arrival::now(),
                },
            );
            live[r] = Some(spec);
        }
        if b.is_empty() {
            break;
        }
        if let Err(e) = b.step(engine) {
            b.fail_all(engine, &e);
            return Err(e);
        }
        for r in 0..runs {
            let Some(out) = slots[r].borrow_mut().take() else { continue };
            let out = out?;
            let spec = live[r].take().expect("a finished call was live");
            progress(Event::Call {
                run: r + 1,
                stage: spec.stage,
                tokens: out.timings.eval_count as usize,
            });
            let text = response(spec.stage, &out);
            record(calls, r + 1, &spec, &out, &text);
            plan.take(r + 1, steps[r], text);
            done_calls.push(Done {
                run: r,
                step: steps[r],
                spec,
                prompt: out.prompt_ids,
                ids: out.ids,
            });
            steps[r] += 1;
        }
    }
    drop(b);
    let batched_seconds = t0.elapsed().as_secs_f64();
    // the same calls, one after another
    let t1 = Instant::now();
    let mut identical = true;
    for d in &done_calls {
        let o = call_opts(opts, &d.spec, seed(d.run + 1, d.step));
        identical &= engine.generate(&d.prompt, &o, &mut |_| {})?.ids == d.ids;
    }
    let sequential_seconds = t1.elapsed().as_secs_f64();
    Ok(Concurrency {
        runs,
        batched_seconds,
        sequential_seconds,
        speedup: sequential_seconds / batched_seconds.max(1e-9),
        identical,
    })
}
