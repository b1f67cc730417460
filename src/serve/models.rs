//! The routes about models: `/api/tags`, `/api/show`, `/api/ps`, `/api/pull`, `/api/version`,
//! `/v1/models` and `/v1/models/{id}`.

use super::api::{self, ApiError};
use super::http::{json_response, ollama_error, openai_error, resolve, St};
use super::openai;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tokio::sync::mpsc::unbounded_channel;
use tokio_stream::wrappers::UnboundedReceiverStream;

/// The Ollama version whose API chimera speaks (`logprobs` came in 0.12.11), beside chimera's
/// own: clients compare the first against Ollama's releases.
pub const OLLAMA_API_VERSION: &str = "0.12.11";

pub async fn version() -> Response {
    json_response(
        200,
        &json!({"version": OLLAMA_API_VERSION, "chimera": env!("CARGO_PKG_VERSION")}),
    )
}

/// The models present on this machine (the registry's and Ollama's store's).
pub(super) fn local_models() -> Vec<(crate::registry::Listed, PathBuf)> {
    let rows = crate::registry::installed().unwrap_or_default();
    rows.into_iter().filter_map(|r| r.local.clone().map(|(p, _)| (r, p))).collect()
}

fn modified(p: &Path) -> (String, u64) {
    let t = std::fs::metadata(p).and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
    let secs = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    (crate::stamp::format(secs as i64), secs)
}

/// Ollama's `details` of a model file (or Hugging Face folder).
fn details(path: &Path, quant: Option<&str>) -> Value {
    let (format, params, level) = if crate::config::is_folder(path) {
        let f = crate::backend::candle::safetensors::Folder::open(path).ok();
        let (params, level) = f.map_or((0, String::new()), |f| (f.n_params(), f.dtype_name()));
        ("safetensors", params, level)
    } else {
        let g = crate::gguf::Gguf::open(path).ok();
        let level = g.as_ref().and_then(crate::gguf::Gguf::file_type_name).unwrap_or_default();
        ("gguf", g.as_ref().map_or(0, crate::gguf::Gguf::n_params), level.to_string())
    };
    let level = quant.map_or(level, str::to_string);
    json!({"parent_model": "", "format": format, "family": "gemma3", "families": ["gemma3"], "parameter_size": param_size(params), "quantization_level": level})
}

/// A parameter count as Ollama writes it (`268.10M`, `1.0B`).
fn param_size(params: u64) -> String {
    if params >= 1_000_000_000 {
        format!("{:.1}B", params as f64 / 1e9)
    } else {
        format!("{:.2}M", params as f64 / 1e6)
    }
}

pub async fn tags() -> Response {
    let models: Vec<Value> = tokio::task::spawn_blocking(|| {
        local_models()
            .into_iter()
            .map(|(r, p)| {
                let size = crate::registry::local::size_of(&p).unwrap_or(0);
                json!({"name": r.name, "model": r.name, "modified_at": modified(&p).0, "size": size, "digest": r.digest, "details": details(&p, r.quant.as_deref())})
            })
            .collect()
    })
    .await
    .unwrap_or_default();
    json_response(200, &json!({"models": models}))
}

pub async fn v1_models() -> Response {
    let names = tokio::task::spawn_blocking(|| {
        local_models().into_iter().map(|(r, p)| (r.name, modified(&p).1)).collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    json_response(200, &openai::models(&names))
}

pub async fn show(State(st): St, body: Bytes) -> Response {
    let (name, _) = match api::model_name(&body) {
        Ok(x) => x,
        Err(e) => return ollama_error(e),
    };
    let path = match resolve(&st.cfg, &name) {
        Ok(p) => p,
        Err(e) => return ollama_error(e),
    };
    let r = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let (info, template) = model_info(&path).map_err(|e| ApiError::internal(e.to_string()))?;
        let quant = crate::registry::Registry::load()
            .ok()
            .and_then(|r| r.get(&name).and_then(|s| s.quant.clone()));
        let user = crate::registry::defaults(&name).ok().flatten();
        let (modelfile, parameters, system) =
            crate::registry::modelfile::render(&path, user.as_ref());
        let template = user.as_ref().and_then(|m| m.template.clone()).unwrap_or(template);
        Ok(json!({
            "modelfile": modelfile,
            "parameters": parameters,
            "system": system,
            "template": template,
            "details": details(&path, quant.as_deref()),
            "model_info": info,
            "capabilities": capabilities(&info),
            "modified_at": modified(&path).0,
        }))
    })
    .await;
    match r {
        Ok(Ok(v)) => json_response(200, &v),
        Ok(Err(e)) => ollama_error(e),
        Err(e) => ollama_error(ApiError::internal(e.to_string())),
    }
}

/// `/api/show`'s `model_info` and the model's chat template: a GGUF's scalar metadata, or for a
/// Hugging Face folder the same keys read from its config.
fn model_info(path: &Path) -> crate::Result<(serde_json::Map<String, Value>, String)> {
    let mut info = serde_json::Map::new();
    if crate::config::is_folder(path) {
        let f = crate::backend::candle::safetensors::Folder::open(path)?;
        let c = &f.cfg;
        let template = f.tokenizer()?.chat_template().map(str::to_string).unwrap_or_default();
        for (k, v) in [
            ("general.architecture", json!("gemma3")),
            ("general.parameter_count", json!(f.n_params())),
            ("gemma3.block_count", json!(c.n_layer)),
            ("gemma3.context_length", json!(c.context_length)),
            ("gemma3.embedding_length", json!(c.n_embd)),
            ("gemma3.feed_forward_length", json!(c.n_ff)),
            ("gemma3.attention.head_count", json!(c.n_head)),
            ("gemma3.attention.head_count_kv", json!(c.n_head_kv)),
        ] {
            info.insert(k.into(), v);
        }
        return Ok((info, template));
    }
    let g = crate::gguf::Gguf::open(path)?;
    for (k, v) in &g.metadata {
        if let Some(x) = scalar(v) {
            info.insert(k.clone(), x);
        }
    }
    let template = crate::tokenizer::Tokenizer::from_gguf(&g)
        .ok()
        .and_then(|t| t.chat_template().map(str::to_string))
        .unwrap_or_default();
    Ok((info, template))
}

/// A metadata value as JSON when it is a scalar (arrays such as the vocabulary are left out,
/// as Ollama leaves them out unless asked).
fn scalar(v: &crate::gguf::Value) -> Option<Value> {
    use crate::gguf::Value as V;
    Some(match v {
        V::String(s) => json!(s),
        V::Bool(b) => json!(b),
        V::Array(_) => return None,
        V::F32(_) | V::F64(_) => json!(v.as_f64()?),
        other => json!(other.as_i64()?),
    })
}

pub async fn ps(State(st): St) -> Response {
    let entries = st.shared.ps.lock().map(|p| p.clone()).unwrap_or_default();
    let reg = crate::registry::Registry::load().ok();
    let models: Vec<Value> = entries
        .iter()
        .map(|e| {
            let spec = reg.as_ref().and_then(|r| r.get(&e.name));
            let (digest, quant) = (spec.map_or("", |s| s.digest()), spec.and_then(|s| s.quant.as_deref()));
            let secs = e.expires_at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            json!({"name": e.name, "model": e.name, "size": e.size, "digest": digest, "details": details(&e.path, quant), "expires_at": crate::stamp::format(secs as i64), "size_vram": e.size_vram})
        })
        .collect();
    json_response(200, &json!({"models": models}))
}

/// `/api/pull`: the registry's fetch, its progress as Ollama's status objects.
pub async fn pull(body: Bytes) -> Response {
    let (name, o) = match api::model_name(&body) {
        Ok(x) => x,
        Err(e) => return ollama_error(e),
    };
    let stream = o.get("stream").and_then(Value::as_bool).unwrap_or(true);
    let reg = match crate::registry::Registry::load() {
        Ok(r) => r,
        Err(e) => return ollama_error(ApiError::internal(e.to_string())),
    };
    let Some(spec) = reg.get(&name).cloned() else {
        return ollama_error(ApiError::not_found(format!("model '{name}' is not in the registry")));
    };
    let (tx, rx) = unbounded_channel::<Value>();
    let task = tokio::task::spawn_blocking(move || {
        let _ = tx.send(json!({"status": "pulling manifest"}));
        let mut last = Instant::now();
        let r = crate::registry::pull(&spec, &mut |what, done, total| {
            if last.elapsed().as_millis() >= 200 {
                last = Instant::now();
                let _ = tx.send(json!({"status": what, "digest": format!("sha256:{}", spec.digest()), "total": total, "completed": done}));
            }
        });
        let _ = tx.send(match r {
            Ok(_) => json!({"status": "success"}),
            Err(e) => json!({"error": e.to_string()}),
        });
    });
    if !stream {
        let _ = task.await;
        let mut rx = rx;
        let mut last = json!({"status": "success"});
        while let Ok(v) = rx.try_recv() {
            last = v;
        }
        let status = if last.get("error").is_some() { 500 } else { 200 };
        return json_response(status, &last);
    }
    let body = UnboundedReceiverStream::new(rx)
        .map(|v| Ok::<_, std::convert::Infallible>(Bytes::from(format!("{v}\n"))));
    ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(body)).into_response()
}

/// `/v1/models/{id}`: the model, or OpenAI's 404.
pub async fn v1_model(UrlPath(name): UrlPath<String>) -> Response {
    let n2 = name.clone();
    let found = tokio::task::spawn_blocking(move || {
        local_models()
            .into_iter()
            .find(|(r, _)| r.name == n2 || r.name == format!("{n2}:latest"))
            .map(|(r, p)| (r.name, modified(&p).1))
    })
    .await
    .ok()
    .flatten();
    match found {
        Some((n, t)) => json_response(200, &openai::model(&n, t)),
        None => openai_error(ApiError::not_found(format!("The model '{name}' does not exist"))),
    }
}

/// What a model can do, in Ollama's words: an embedding model (EmbeddingGemma) only embeds.
fn capabilities(info: &serde_json::Map<String, Value>) -> Value {
    match info.get("general.architecture").and_then(Value::as_str) {
        Some("gemma-embedding") => json!(["embedding"]),
        _ => json!(["completion", "tools"]),
    }
}
