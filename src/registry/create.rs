//! Making, copying and removing models, as Ollama's `create`, `cp` and `rm` (and its /api/create,
//! /api/copy, /api/delete): a new name over weights already here (a model's, an uploaded blob's,
//! or a quantization of either) with option defaults and a system message. Models in Ollama's
//! store are read-only; registry models in chimera's store may be removed.

use super::local::{self, UserModel};
use super::{find_local, store_dir, Registry};
use crate::backend::lora::Adapter;
use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// What a new model is made of.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub name: String,
    /// A model name (or, where the caller allows paths, a GGUF path).
    pub from: Option<String>,
    /// Uploaded files: name → digest (`sha256:<hex>`); the GGUF among them is the weights.
    pub files: Vec<(String, String)>,
    pub parameters: Map<String, Value>,
    pub system: Option<String>,
    pub template: Option<String>,
    /// A conversation every chat starts with (a Modelfile's MESSAGEs).
    pub messages: Vec<crate::chat::Message>,
    /// LoRA adapters: GGUF paths (where the caller allows paths) and uploaded files (name →
    /// digest), applied in this order after the inherited model's.
    pub adapters: Vec<String>,
    pub adapter_files: Vec<(String, String)>,
    /// Quantize the weights to this type first (`chimera quantize`'s names).
    pub quantize: Option<String>,
    /// Whether `from` may be a filesystem path.
    pub allow_paths: bool,
    /// Whether a registry model named by `from` may be downloaded (the CLI; never the server).
    pub fetch: bool,
}

fn refuse(name: &str, value: &str, why: &str) -> Error {
    Error::option(name, value, why)
}

/// The weights a request names, and the model they come from (its defaults are inherited).
fn source(r: &CreateRequest) -> Result<(PathBuf, String, Option<UserModel>)> {
    if let Some((fname, digest)) = r.files.iter().find(|(n, _)| n.ends_with(".gguf")) {
        let p = local::blob_path(digest)?;
        if !p.is_file() {
            return Err(refuse(
                "files",
                fname,
                &format!("blob {digest} was not uploaded (POST /api/blobs/{digest})"),
            ));
        }
        return Ok((p, digest.clone(), None));
    }
    if let Some((fname, _)) = r.files.first() {
        return Err(refuse(
            "files",
            fname,
            "only a GGUF file can be the weights (safetensors imports are not supported)",
        ));
    }
    let from = r
        .from
        .as_deref()
        .filter(|f| !f.is_empty())
        .ok_or_else(|| refuse("from", "", "required (a model name, or files)"))?;
    let inherited = local::get(from).or_else(|| local::get(&local::normalize(from)));
    let p = Path::new(from);
    if r.allow_paths && p.is_file() {
        // kept absolute: the model must load from wherever it is run later
        let abs = std::fs::canonicalize(p).map_err(|e| Error::io(p, e))?;
        return Ok((abs, from.to_string(), None));
    }
    if r.fetch && inherited.is_none() {
        return Ok((super::resolve(from, &mut |_, _, _| {})?, from.to_string(), None));
    }
    if let Some(p) = find_local(from)? {
        return Ok((p, from.to_string(), inherited));
    }
    Err(Error::ModelNotFound {
        name: from.into(),
        tried: vec!["not a model on this machine (pull it first)".into()],
    })
}

/// Makes model `r.name`; `progress` hears what is being done.
pub fn create(r: &CreateRequest, progress: &mut dyn FnMut(&str)) -> Result<UserModel> {
    local::check_name(&r.name)?;
    if let Some(t) = r.template.as_deref().filter(|t| !t.is_empty()) {
        if let Err(crate::Error::Template(why)) = crate::gotmpl::Template::parse(t) {
            let head: String = t.chars().take(40).collect();
            return Err(refuse("template", head.trim(), &why));
        }
    }
    if let Some(m) =
        r.messages.iter().find(|m| !["system", "user", "assistant"].contains(&m.role.as_str()))
    {
        return Err(refuse("messages", &m.role, "a role is system, user or assistant"));
    }
    progress("reading model metadata");
    let (mut file, from, inherited) = source(r)?;
    let g = crate::gguf::Gguf::open(&file)?;
    let mut adapters = inherited.as_ref().map(|m| m.adapters.clone()).unwrap_or_default();
    adapters.extend(adapter_paths(r)?);
    if !adapters.is_empty() {
        progress("checking adapters");
        let cfg = crate::config::Gemma3Config::from_gguf(&g)?;
        let arch = g.metadata.get("general.architecture").and_then(|v| v.as_str());
        let list: Vec<Adapter> =
            adapters.iter().map(|p| Adapter { path: p.clone(), scale: 1.0 }).collect();
        crate::backend::lora::load(&list, arch.unwrap_or("gemma3"), &cfg)?;
    }
    drop(g);
    let mut parameters = inherited.as_ref().map(|m| m.parameters.clone()).unwrap_or_default();
    parameters.extend(r.parameters.clone());
    let d = local::Defaults {
        parameters,
        system: r.system.clone().or(inherited.as_ref().and_then(|m| m.system.clone())),
        template: r
            .template
            .clone()
            .filter(|t| !t.is_empty())
            .or(inherited.as_ref().and_then(|m| m.template.clone())),
        messages: if r.messages.is_empty() {
            inherited.map(|m| m.messages).unwrap_or_default()
        } else {
            r.messages.clone()
        },
        adapters,
    };
    if let Some(q) = &r.quantize {
        let target: crate::quantize::Target = q.parse()?;
        progress(&format!("quantizing to {q}"));
        let dir = local::blobs_dir();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let tmp = dir.join(format!(".quantize-{}", std::process::id()));
        let done = crate::quantize::run(&file, &tmp, target, true, &mut |_, _| {});
        if let Err(e) = done {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        file = local::adopt_blob(&tmp)?;
    }
    progress("writing manifest");
    local::make(&r.name, &file, &from, d)
}

/// The files a request's adapters name: paths where allowed, uploaded blobs by digest.
fn adapter_paths(r: &CreateRequest) -> Result<Vec<PathBuf>> {
    let mut out = vec![];
    for a in &r.adapters {
        let p = Path::new(a);
        if !r.allow_paths {
            return Err(refuse("adapters", a, "paths are not allowed here; upload it as a blob"));
        }
        if !p.is_file() {
            return Err(refuse("adapters", a, "no such file"));
        }
        out.push(std::fs::canonicalize(p).map_err(|e| Error::io(p, e))?);
    }
    for (name, digest) in &r.adapter_files {
        let p = local::blob_path(digest)?;
        if !p.is_file() {
            let why = format!("blob {digest} was not uploaded (POST /api/blobs/{digest})");
            return Err(refuse("adapters", name, &why));
        }
        out.push(p);
    }
    Ok(out)
}

/// A request from a Modelfile's text (`chimera create -f`); a relative FROM path is read from
/// the Modelfile's folder, as Ollama reads it.
pub fn from_modelfile(name: &str, text: &str, dir: &Path) -> Result<CreateRequest> {
    let m = super::modelfile::parse(text)?;
    let near = |f: String| {
        let rel = dir.join(f.strip_prefix("./").unwrap_or(&f));
        if (f.starts_with("./") || f.starts_with("../")) && rel.is_file() {
            rel.display().to_string()
        } else {
            f
        }
    };
    let from = m.from.map(near);
    let adapters = m.adapters.into_iter().map(near).collect();
    Ok(CreateRequest {
        name: name.to_string(),
        from,
        parameters: m.parameters,
        system: m.system,
        template: m.template,
        messages: m.messages,
        adapters,
        allow_paths: true,
        fetch: true,
        ..CreateRequest::default()
    })
}

/// `cp SOURCE DESTINATION`: a new name for a model here (its defaults copied).
pub fn copy(src: &str, dst: &str) -> Result<UserModel> {
    local::check_name(dst)?;
    if let Some(mut m) = local::get(src).or_else(|| local::get(&local::normalize(src))) {
        m.name = local::normalize(dst);
        local::save(&m)?;
        return Ok(m);
    }
    let file = find_local(src)?.ok_or_else(|| Error::ModelNotFound {
        name: src.into(),
        tried: vec!["not a model on this machine".into()],
    })?;
    local::make(dst, &file, src, local::Defaults::default())
}

/// `rm NAME`: a model made here, or a registry model's file in chimera's store. Models in
/// Ollama's store are Ollama's to remove.
pub fn remove(name: &str) -> Result<()> {
    if local::remove(name)? || local::remove(&local::normalize(name))? {
        return Ok(());
    }
    let reg = Registry::load()?;
    if let Some(spec) = reg.get(name) {
        let p = store_dir().join(&spec.file);
        if p.is_file() {
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            let _ = std::fs::remove_file(super::fetch::sidecar(&p));
            return Ok(());
        }
    }
    if super::ollama::find(name)?.is_some() {
        return Err(refuse(
            "model",
            name,
            "it is in Ollama's store, which chimera only reads; remove it with `ollama rm`",
        ));
    }
    Err(Error::ModelNotFound {
        name: name.into(),
        tried: vec!["no model of that name on this machine".into()],
    })
}
