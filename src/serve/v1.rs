//! OpenAI's `/v1/chat/completions` and `/v1/completions` answers: `n` choices run as parallel
//! sequences (choice i samples with seed + i), each streamed under its own index; a tool call is
//! held back until it is whole; usage counts the prompt once.

use super::api::ApiError;
use super::http::{
    collect, first, json_response, openai_error, submit, with_defaults, AppState, Held, Whole,
};
use super::log::{Entry, OnDrop};
use super::openai::{self, Extras, OpenAi};
use super::sched::{Done, Event};
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_stream::wrappers::UnboundedReceiverStream;

/// Queues the request's `n` choices and answers with their first events.
async fn start(
    st: &AppState,
    r: &OpenAi,
) -> Result<Vec<(Event, UnboundedReceiver<Event>)>, ApiError> {
    let mut rxs = Vec::with_capacity(r.parsed.n);
    for i in 0..r.parsed.n {
        let mut p = r.parsed.clone();
        if p.opts.sampler.seed >= 0 {
            p.opts.sampler.seed += i as i64;
        }
        rxs.push(submit(st, p)?);
    }
    let mut heads = Vec::with_capacity(rxs.len());
    for mut rx in rxs {
        match first(&mut rx).await? {
            Event::Loaded(_) => return Err(ApiError::bad("the prompt is empty")),
            ev => heads.push((ev, rx)),
        }
    }
    Ok(heads)
}

/// The text that `echo` puts before a completion ("" for token ids: their tokens' text, known
/// when the prompt has been scored).
fn echo(r: &OpenAi) -> Result<Option<String>, ApiError> {
    match (&r.parsed.prompt, r.parsed.echo) {
        (_, false) => Ok(None),
        (super::api::Prompt::Text { prompt, context, .. }, true) if context.is_empty() => {
            Ok(Some(prompt.clone()))
        }
        _ if r.parsed.opts.prompt_logprobs => Ok(Some(String::new())),
        _ => Err(ApiError::bad("echo: needs the prompt as text, or logprobs, for token ids")),
    }
}

/// An OpenAI request: server-sent chunks ending with `[DONE]`, or one response.
pub async fn run(st: Arc<AppState>, log: Arc<Entry>, mut r: OpenAi, chat: bool) -> Response {
    log.model(&r.parsed.model);
    // the model's template may say how it calls tools: the answer is read in that format
    r.parsed = match with_defaults(r.parsed) {
        Ok(p) => p,
        Err(e) => return openai_error(e),
    };
    let echoed = match echo(&r) {
        Ok(e) => e,
        Err(e) => return openai_error(e),
    };
    let heads = match start(&st, &r).await {
        Ok(h) => h,
        Err(e) => return openai_error(e),
    };
    let id = openai::id(if chat { "chatcmpl" } else { "cmpl" });
    let ctx = Ctx { chat, id, model: r.parsed.model.clone(), r, echoed, log };
    if ctx.r.parsed.stream {
        stream(ctx, heads)
    } else {
        whole(ctx, heads).await
    }
}

/// What the answer's pieces share.
struct Ctx {
    chat: bool,
    id: String,
    model: String,
    r: OpenAi,
    echoed: Option<String>,
    log: Arc<Entry>,
}

impl Ctx {
    fn extras(&self) -> Extras<'_> {
        Extras {
            logprobs: self.r.parsed.logprobs,
            tools: self.r.parsed.tools.as_ref(),
            echo: self.echoed.as_deref(),
        }
    }

    /// Completions' first chunk under echo with logprobs: the prompt with its tokens' scores;
    /// and where the answer's text starts (as the whole response's `text_offset` counts).
    fn scored_prompt_chunk(
        &self,
        i: usize,
        lps: &[super::sched::Lp],
    ) -> (serde_json::Value, usize) {
        let text = match self.echoed.as_deref() {
            Some(e) if !e.is_empty() => e.to_string(),
            _ => lps.iter().map(|l| l.token.as_str()).collect(),
        };
        let mut ch = openai::chunk(false, &self.id, &self.model, &text, true, i);
        let k = self.r.parsed.logprobs.unwrap_or(0);
        ch["choices"][0]["logprobs"] = openai::chunk_logprobs(false, lps, k, 0);
        (ch, lps.iter().map(|l| l.token.len()).sum())
    }

    fn log_tokens(&self, dones: &[Box<Done>]) {
        let p = dones.first().map_or(0, |d| d.out.timings.prompt_eval_count);
        self.log.tokens(p, dones.iter().map(|d| d.out.timings.eval_count).sum());
    }
}

/// Every choice whole, in one response.
async fn whole(ctx: Ctx, heads: Vec<(Event, UnboundedReceiver<Event>)>) -> Response {
    let mut texts = vec![];
    let mut dones = vec![];
    for (head, mut rx) in heads {
        match collect(head, &mut rx).await {
            Ok(Whole::Done(text, d)) => {
                texts.push(text);
                dones.push(d);
            }
            Ok(Whole::Loaded(_)) => return openai_error(ApiError::bad("the prompt is empty")),
            Err(e) => return openai_error(e),
        }
    }
    ctx.log_tokens(&dones);
    let choices = texts
        .iter()
        .zip(&dones)
        .enumerate()
        .map(|(i, (t, d))| openai::choice(ctx.chat, i, t, d, ctx.extras()))
        .collect();
    let outs: Vec<_> = dones.iter().map(|d| &d.out).collect();
    json_response(200, &openai::response(ctx.chat, &ctx.id, &ctx.model, choices, &outs))
}

/// One stream of server-sent events for all choices, each chunk under its choice's index.
fn stream(ctx: Ctx, heads: Vec<(Event, UnboundedReceiver<Event>)>) -> Response {
    ctx.log.streaming();
    let guard = OnDrop(ctx.log.clone());
    let n = heads.len();
    let tools = ctx.r.parsed.tools.as_ref().filter(|_| ctx.chat);
    let mut started = vec![false; n];
    let mut held: Vec<Held> = (0..n).map(|_| Held::new(tools)).collect();
    // completions' text_offset: where choice i's next piece starts in its text
    let mut offset = vec![ctx.echoed.as_deref().map_or(0, str::len); n];
    let mut dones: Vec<Box<Done>> = Vec::with_capacity(n);
    let mut closed = false;
    let streams = heads.into_iter().enumerate().map(|(i, (head, rx))| {
        futures_util::stream::iter([head])
            .chain(UnboundedReceiverStream::new(rx))
            .map(move |e| (i, e))
            .boxed()
    });
    let body = futures_util::stream::select_all(streams).map(move |(i, ev)| {
        let _ = &guard;
        let (c, m) = (ctx.chat, ctx.model.as_str());
        let mut chunks = vec![];
        let mut end = false;
        // completions' echo: the prompt before choice i's first piece
        let lead =
            |started: bool| if started || c { "" } else { ctx.echoed.as_deref().unwrap_or("") };
        match ev {
            _ if closed => {}
            Event::Text(t, lps) => {
                if let Some((t, lps)) = held[i].push(&t, lps) {
                    let mut ch = openai::chunk(
                        c,
                        &ctx.id,
                        m,
                        &format!("{}{t}", lead(started[i])),
                        !started[i],
                        i,
                    );
                    if let Some(k) = ctx.r.parsed.logprobs {
                        ch["choices"][0]["logprobs"] =
                            openai::chunk_logprobs(c, &lps, k, offset[i]);
                    }
                    offset[i] += t.len();
                    chunks.push(ch);
                    started[i] = true;
                }
            }
            Event::Done(mut d) => {
                if !c && !started[i] && !d.prompt.is_empty() {
                    // nothing was generated (max_tokens 0): the scored prompt is the answer
                    let ch;
                    (ch, offset[i]) = ctx.scored_prompt_chunk(i, &d.prompt);
                    chunks.push(ch);
                    started[i] = true;
                }
                let rest = held[i].rest(&mut d, ctx.r.parsed.tools.as_ref());
                if !rest.is_empty() || !started[i] {
                    let t = format!("{}{rest}", lead(started[i]));
                    chunks.push(openai::chunk(c, &ctx.id, m, &t, !started[i], i));
                }
                let x = ctx.extras();
                chunks.extend(openai::last_chunks(c, &ctx.id, m, &d, i, x, offset[i]));
                dones.push(d);
                if dones.len() == n {
                    ctx.log_tokens(&dones);
                    if ctx.r.include_usage {
                        let outs: Vec<_> = dones.iter().map(|d| &d.out).collect();
                        chunks.push(openai::usage_chunk(c, &ctx.id, m, &outs));
                    }
                    end = true;
                }
            }
            // echo with logprobs: the prompt, scored, before the first piece
            Event::Prompt(lps) if !c && !started[i] => {
                let ch;
                (ch, offset[i]) = ctx.scored_prompt_chunk(i, &lps);
                chunks.push(ch);
                started[i] = true;
            }
            Event::Loaded(_) | Event::Embedded(_) | Event::Prompt(_) => {}
            Event::Error(e) => {
                chunks.push(openai::error(&e));
                end = true;
            }
        }
        let mut s: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
        if end {
            s.push_str("data: [DONE]\n\n");
            closed = true;
        }
        Ok::<_, std::convert::Infallible>(Bytes::from(s))
    });
    let body = body.filter(|b| std::future::ready(!matches!(b, Ok(b) if b.is_empty())));
    (
        [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")],
        Body::from_stream(body),
    )
        .into_response()
}
