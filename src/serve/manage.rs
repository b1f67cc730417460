//! Model management as Ollama's API has it: `/api/create` (from a model or uploaded blobs, with
//! parameters, a system message, a quantization), `HEAD`/`POST /api/blobs/{digest}` (sha256
//! checked, written atomically), `/api/copy`, `/api/delete`, and `/api/push` refused (chimera is
//! air-gapped by design). A model made here lends its parameters and system message to requests
//! that do not set them.

use super::api::{self, ApiError, Fields, Parsed, Prompt};
use super::http::{json_response, ollama_error, St};
use crate::chat::Message;
use crate::make::{self as create, CreateRequest};
use crate::registry::local::{self, UserModel};
use axum::body::{Body, Bytes};
use axum::extract::Path as UrlPath;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{json, Map, Value};

/// A model's defaults under a request: its parameters where the request set none, its system
/// message where the conversation has none.
pub fn apply_defaults(p: &mut Parsed, m: &UserModel) -> Result<(), ApiError> {
    let rest: Map<String, Value> = m
        .parameters
        .iter()
        .filter(|(k, _)| !p.given.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    api::apply_options(&rest, &mut p.opts, &mut p.load)?;
    p.load.adapters = Some(m.adapters.clone());
    if let Some(t) = &m.template {
        let t = crate::gotmpl::Template::parse(t)
            .map_err(|e| ApiError::bad(format!("model {}: {e}", m.name)))?;
        // a template that declares tools and renders calls: the model calls in that format
        if let (true, Some(tools)) = (t.uses("tools"), p.tools.as_mut()) {
            if let Some(f) = super::tools::CallFormat::of(&t) {
                tools.format = f;
                p.opts.grammar = tools.grammar();
            }
        }
        p.template = Some(std::sync::Arc::new(t));
    }
    // Ollama's generate: [system] + the model's messages + the prompt, unless it continues
    if let Prompt::Text { prompt, system, raw: false, context } = &p.prompt {
        if !m.messages.is_empty() && context.is_empty() && !prompt.is_empty() {
            let mut msgs: Vec<Message> = system.iter().map(|s| Message::new("system", s)).collect();
            msgs.push(Message::new("user", prompt));
            p.prompt = Prompt::Chat(msgs);
        }
    }
    match &mut p.prompt {
        Prompt::Text { system, .. } if system.is_none() => system.clone_from(&m.system),
        Prompt::Chat(msgs) if !msgs.is_empty() => {
            // as Ollama's chat: the model's messages first, its system message before them
            let own_system = msgs.iter().any(|x| x.role == "system");
            msgs.splice(0..0, m.messages.iter().cloned());
            if let Some(sys) = m.system.as_ref().filter(|_| !own_system) {
                msgs.insert(0, Message::new("system", sys));
            }
        }
        _ => {}
    }
    Ok(())
}

fn from_library(e: crate::Error) -> ApiError {
    match e {
        crate::Error::ModelNotFound { .. } => ApiError::not_found(e.to_string()),
        crate::Error::InvalidOption { .. }
        | crate::Error::Gguf { .. }
        | crate::Error::BadKey { .. }
        | crate::Error::MissingKeys { .. }
        | crate::Error::Architecture { .. }
        | crate::Error::Tensor { .. } => ApiError::bad(e.to_string()),
        _ => ApiError::internal(e.to_string()),
    }
}

/// `/api/create`'s body (Ollama ≥ 0.5's fields, or the older `modelfile`).
fn parse_create(body: &[u8], allow_paths: bool) -> Result<(CreateRequest, bool), ApiError> {
    let (name, o) = api::model_name(body)?;
    let f = Fields(&o);
    let mut r = CreateRequest { name, allow_paths, ..CreateRequest::default() };
    if let Some(text) = f.str("modelfile")? {
        let m =
            crate::registry::modelfile::parse(text).map_err(|e| ApiError::bad(e.to_string()))?;
        (r.from, r.parameters, r.system, r.template, r.adapters, r.messages) =
            (m.from, m.parameters, m.system, m.template, m.adapters, m.messages);
    }
    r.from = f.str("from")?.map(str::to_string).or(r.from);
    if let Some(files) = f.value("files") {
        let files = files
            .as_object()
            .ok_or_else(|| ApiError::bad("files: expected an object of file name → digest"))?;
        for (k, v) in files {
            let d =
                v.as_str().ok_or_else(|| ApiError::bad(format!("files.{k}: expected a digest")))?;
            r.files.push((k.clone(), d.to_string()));
        }
    }
    if let Some(p) = f.value("parameters") {
        let p = p.as_object().ok_or_else(|| ApiError::bad("parameters: expected an object"))?;
        r.parameters.extend(p.clone());
    }
    // the parameters must be options a request could carry
    let (mut g, mut l) = (crate::engine::GenerateOptions::default(), api::LoadOverrides::default());
    api::apply_options(&r.parameters, &mut g, &mut l)
        .map_err(|e| ApiError::bad(format!("parameters.{}", e.message)))?;
    r.system = f.str("system")?.map(str::to_string).or(r.system);
    r.template = f.str("template")?.map(str::to_string).or(r.template);
    if let Some(v) = f.value("messages") {
        r.messages = api::messages(Some(v)).map_err(|e| ApiError::bad(e.message))?;
    }
    if let Some(a) = f.value("adapters") {
        let a = a
            .as_object()
            .ok_or_else(|| ApiError::bad("adapters: expected an object of file name → digest"))?;
        for (k, v) in a {
            let d = v
                .as_str()
                .ok_or_else(|| ApiError::bad(format!("adapters.{k}: expected a digest")))?;
            r.adapter_files.push((k.clone(), d.to_string()));
        }
    }
    r.quantize = f.str("quantize")?.map(str::to_string);
    Ok((r, f.bool("stream")?.unwrap_or(true)))
}

/// `POST /api/create`: status lines then `success` (streamed, as Ollama), or one object.
pub async fn create(axum::extract::State(st): St, body: Bytes) -> Response {
    let (r, stream) = match parse_create(&body, st.cfg.allow_paths) {
        Ok(x) => x,
        Err(e) => return ollama_error(e),
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let job = tokio::task::spawn_blocking(move || {
        create::create(&r, &mut |s| drop(tx.send(s.to_string())))
    });
    if !stream {
        return match job.await {
            Ok(Ok(_)) => json_response(200, &json!({"status": "success"})),
            Ok(Err(e)) => ollama_error(from_library(e)),
            Err(e) => ollama_error(ApiError::internal(e.to_string())),
        };
    }
    let lines =
        tokio_stream::wrappers::UnboundedReceiverStream::new(rx).map(|s| json!({"status": s}));
    let end = futures_util::stream::once(async move {
        match job.await {
            Ok(Ok(_)) => json!({"status": "success"}),
            Ok(Err(e)) => json!({"error": from_library(e).message}),
            Err(e) => json!({"error": e.to_string()}),
        }
    });
    let body =
        lines.chain(end).map(|v| Ok::<_, std::convert::Infallible>(Bytes::from(format!("{v}\n"))));
    ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(body)).into_response()
}

/// `POST /api/copy`: `{source, destination}`.
pub async fn copy(body: Bytes) -> Response {
    let r = (|| {
        let o = api::object(&body)?;
        let f = Fields(&o);
        let need = |k: &str| {
            f.str(k).and_then(|v| {
                v.map(str::to_string).ok_or_else(|| ApiError::bad(format!("{k}: required")))
            })
        };
        Ok::<_, ApiError>((need("source")?, need("destination")?))
    })();
    let (src, dst) = match r {
        Ok(x) => x,
        Err(e) => return ollama_error(e),
    };
    match tokio::task::spawn_blocking(move || create::copy(&src, &dst)).await {
        Ok(Ok(_)) => StatusCode::OK.into_response(),
        Ok(Err(e)) => ollama_error(from_library(e)),
        Err(e) => ollama_error(ApiError::internal(e.to_string())),
    }
}

/// `DELETE /api/delete`: `{model}`.
pub async fn delete(body: Bytes) -> Response {
    let name = match api::model_name(&body) {
        Ok((n, _)) => n,
        Err(e) => return ollama_error(e),
    };
    match tokio::task::spawn_blocking(move || crate::registry::remove(&name)).await {
        Ok(Ok(())) => StatusCode::OK.into_response(),
        Ok(Err(e @ crate::Error::InvalidOption { .. })) => {
            ollama_error(ApiError { status: 403, message: e.to_string() })
        }
        Ok(Err(e)) => ollama_error(from_library(e)),
        Err(e) => ollama_error(ApiError::internal(e.to_string())),
    }
}

/// `POST /api/push`: refused.
pub async fn push() -> Response {
    ollama_error(ApiError {
        status: 403,
        message:
            "pushing is not supported: chimera makes no network connections (air-gapped by design)"
                .into(),
    })
}

/// `HEAD /api/blobs/{digest}`: 200 when the blob is here.
pub async fn has_blob(UrlPath(digest): UrlPath<String>) -> Response {
    match local::blob_path(&digest) {
        Ok(p) if p.is_file() => StatusCode::OK.into_response(),
        Ok(_) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => ollama_error(ApiError::bad(e.to_string())),
    }
}

/// `POST /api/blobs/{digest}`: the body written to a temporary file while it is hashed, kept
/// (201) only when its sha256 is the digest.
pub async fn upload_blob(UrlPath(digest): UrlPath<String>, body: Body) -> Response {
    let mut w = match local::BlobWriter::new(&digest) {
        Ok(w) => w,
        Err(e) => return ollama_error(ApiError::bad(e.to_string())),
    };
    let mut chunks = body.into_data_stream();
    while let Some(c) = chunks.next().await {
        let written = c
            .map_err(|e| ApiError::bad(format!("reading the upload: {e}")))
            .and_then(|b| w.write(&b).map_err(|e| ApiError::internal(e.to_string())));
        if let Err(e) = written {
            return ollama_error(e);
        }
    }
    match tokio::task::spawn_blocking(move || w.finish()).await {
        Ok(Ok(_)) => StatusCode::CREATED.into_response(),
        Ok(Err(e)) => ollama_error(ApiError::bad(e.to_string())),
        Err(e) => ollama_error(ApiError::internal(e.to_string())),
    }
}
