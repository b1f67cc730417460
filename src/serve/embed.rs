//! The embeddings endpoints: Ollama's `/api/embed` (input string or list, `truncate`,
//! `dimensions`) and its older `/api/embeddings` (`prompt` → `embedding`), and OpenAI's
//! `/v1/embeddings` (strings or token ids, `encoding_format` float or base64, `dimensions`). All
//! three run one scheduler job whose inputs share forwards.

use super::api::{self, ApiError, EmbedInput, Fields, Parsed, Prompt};
use super::http::{first, json_response, ollama_error, openai_error, submit, St};
use super::log::Entry;
use super::sched::{Embedded, Event};
use axum::body::Bytes;
use axum::response::Response;
use axum::Extension;
use base64::Engine as _;
use serde_json::{json, Value};
use std::sync::Arc;

/// A parsed embeddings request and the length to cut its vectors to.
struct Request {
    parsed: Parsed,
    dimensions: Option<usize>,
}

/// Ollama's fields: model, options (num_ctx and the like), keep_alive.
fn ollama_common(f: &Fields, inputs: Vec<EmbedInput>, truncate: bool) -> Result<Parsed, ApiError> {
    let model = f
        .str("model")?
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::bad("model: required"))?;
    let mut opts = crate::engine::GenerateOptions::default();
    let mut load = api::LoadOverrides::default();
    match f.value("options") {
        None => {}
        Some(Value::Object(o)) => api::apply_options(o, &mut opts, &mut load)?,
        Some(_) => return Err(ApiError::bad("options: expected an object")),
    }
    let keep_alive = f
        .value("keep_alive")
        .map(api::KeepAlive::parse)
        .transpose()
        .map_err(|e| ApiError::bad(format!("keep_alive: {e}")))?;
    let prompt = Prompt::Embed { inputs, truncate };
    Ok(Parsed { load, keep_alive, ..Parsed::new(model.to_string(), prompt, opts, false) })
}

/// `dimensions`: a positive length.
fn dimensions(f: &Fields) -> Result<Option<usize>, ApiError> {
    match f.i64("dimensions")? {
        None => Ok(None),
        Some(d) if d > 0 => Ok(Some(d as usize)),
        Some(d) => Err(ApiError::bad(format!("dimensions: {d} is not a positive integer"))),
    }
}

/// Texts: a string or a list of strings.
fn texts(v: Option<&Value>, key: &str) -> Result<Vec<EmbedInput>, ApiError> {
    match v {
        None => Ok(vec![]),
        Some(Value::String(s)) => Ok(vec![EmbedInput::Text(s.clone())]),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_str()
                    .map(|s| EmbedInput::Text(s.to_string()))
                    .ok_or_else(|| ApiError::bad(format!("{key}[{i}]: expected a string")))
            })
            .collect(),
        Some(_) => Err(ApiError::bad(format!("{key}: expected a string or a list of strings"))),
    }
}

/// `/api/embed`'s body.
fn parse_ollama(body: &[u8]) -> Result<Request, ApiError> {
    let o = api::object(body)?;
    let f = Fields(&o);
    let inputs = texts(f.value("input"), "input")?;
    let truncate = f.bool("truncate")?.unwrap_or(true);
    Ok(Request { parsed: ollama_common(&f, inputs, truncate)?, dimensions: dimensions(&f)? })
}

/// `/api/embeddings`' body: one `prompt` (empty: only load the model).
fn parse_legacy(body: &[u8]) -> Result<Request, ApiError> {
    let o = api::object(body)?;
    let f = Fields(&o);
    let inputs = match f.str("prompt")? {
        None | Some("") => vec![],
        Some(p) => vec![EmbedInput::Text(p.to_string())],
    };
    Ok(Request { parsed: ollama_common(&f, inputs, true)?, dimensions: None })
}

/// Token ids of an input.
fn token_ids(v: &[Value], key: &str) -> Result<EmbedInput, ApiError> {
    let ids: Option<Vec<u32>> =
        v.iter().map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok())).collect();
    match ids {
        Some(ids) if !ids.is_empty() => Ok(EmbedInput::Ids(ids)),
        _ => Err(ApiError::bad(format!("{key}: expected a non-empty list of token ids"))),
    }
}

/// `/v1/embeddings`' body: `input` a string, strings, token ids, or lists of token ids.
fn parse_openai(body: &[u8]) -> Result<(Request, bool), ApiError> {
    let o = api::object(body)?;
    let f = Fields(&o);
    let model = f
        .str("model")?
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::bad("model: required"))?;
    let inputs = match f.value("input") {
        None => return Err(ApiError::bad("input: required")),
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_number) => {
            vec![token_ids(a, "input")?]
        }
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_array) => a
            .iter()
            .enumerate()
            .map(|(i, x)| {
                token_ids(x.as_array().map_or(&[][..], Vec::as_slice), &format!("input[{i}]"))
            })
            .collect::<Result<_, _>>()?,
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(ApiError::bad("input: must not be empty"))
        }
        v => texts(v, "input")?,
    };
    let base64 = match f.str("encoding_format")? {
        None | Some("float") => false,
        Some("base64") => true,
        Some(x) => {
            return Err(ApiError::bad(format!("encoding_format: '{x}' is not float or base64")))
        }
    };
    let prompt = Prompt::Embed { inputs, truncate: true };
    let parsed =
        Parsed::new(model.to_string(), prompt, crate::engine::GenerateOptions::default(), false);
    Ok((Request { parsed, dimensions: dimensions(&f)? }, base64))
}

/// Runs the request: its vectors cut to `dimensions` where asked.
async fn run(st: St, log: &Entry, r: Request) -> Result<Embedded, ApiError> {
    log.model(&r.parsed.model);
    let mut rx = submit(&st.0, r.parsed)?;
    let mut e = match first(&mut rx).await? {
        Event::Embedded(e) => *e,
        _ => return Err(ApiError::internal("the request ended without a result")),
    };
    log.tokens(e.prompt_tokens, 0);
    if let Some(d) = r.dimensions {
        e.vectors = e.vectors.iter().map(|v| crate::engine::embed::shorten(v, d)).collect();
    }
    Ok(e)
}

/// `POST /api/embed`.
pub async fn ollama(st: St, Extension(log): Extension<Arc<Entry>>, body: Bytes) -> Response {
    let r = match parse_ollama(&body) {
        Ok(r) => r,
        Err(e) => return ollama_error(e),
    };
    let model = r.parsed.model.clone();
    match run(st, &log, r).await {
        Ok(e) => json_response(
            200,
            &json!({"model": model, "embeddings": e.vectors, "total_duration": e.total_ns, "load_duration": e.load_ns, "prompt_eval_count": e.prompt_tokens}),
        ),
        Err(e) => ollama_error(e),
    }
}

/// `POST /api/embeddings` (Ollama's older endpoint).
pub async fn legacy(st: St, Extension(log): Extension<Arc<Entry>>, body: Bytes) -> Response {
    let r = match parse_legacy(&body) {
        Ok(r) => r,
        Err(e) => return ollama_error(e),
    };
    match run(st, &log, r).await {
        Ok(e) => json_response(
            200,
            &json!({"embedding": e.vectors.into_iter().next().unwrap_or_default()}),
        ),
        Err(e) => ollama_error(e),
    }
}

/// An embedding as OpenAI's `base64`: the little-endian f32 bytes.
fn base64(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `POST /v1/embeddings`.
pub async fn openai(st: St, Extension(log): Extension<Arc<Entry>>, body: Bytes) -> Response {
    let (r, b64) = match parse_openai(&body) {
        Ok(x) => x,
        Err(e) => return openai_error(e),
    };
    let model = r.parsed.model.clone();
    match run(st, &log, r).await {
        Ok(e) => {
            let data: Vec<Value> = e
                .vectors
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let emb = if b64 { json!(base64(v)) } else { json!(v) };
                    json!({"object": "embedding", "embedding": emb, "index": i})
                })
                .collect();
            let usage = json!({"prompt_tokens": e.prompt_tokens, "total_tokens": e.prompt_tokens});
            json_response(
                200,
                &json!({"object": "list", "data": data, "model": model, "usage": usage}),
            )
        }
        Err(e) => openai_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_in_every_shape() {
        let r = parse_ollama(
            br#"{"model": "m", "input": ["a", "b"], "truncate": false, "dimensions": 8}"#,
        )
        .unwrap();
        assert!(
            matches!(&r.parsed.prompt, Prompt::Embed { inputs, truncate: false } if inputs.len() == 2)
        );
        assert_eq!(r.dimensions, Some(8));
        assert!(parse_ollama(br#"{"model": "m", "input": [1]}"#)
            .err()
            .unwrap()
            .message
            .contains("input[0]"));
        let (o, b64) =
            parse_openai(br#"{"model": "m", "input": [[2, 3], [4]], "encoding_format": "base64"}"#)
                .unwrap();
        assert!(b64);
        assert!(
            matches!(&o.parsed.prompt, Prompt::Embed { inputs, .. } if inputs[1] == EmbedInput::Ids(vec![4]))
        );
        assert!(parse_openai(br#"{"model": "m", "input": "x", "encoding_format": "hex"}"#).is_err());
        assert!(parse_openai(br#"{"model": "m", "input": []}"#).is_err());
        assert_eq!(base64(&[1.0]), "AACAPw==");
    }
}
