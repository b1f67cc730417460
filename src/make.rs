//! Making and copying models, as Ollama's `create` and `cp` (and its /api/create, /api/copy): a
//! new name over weights already here (a model's, an uploaded blob's or safetensors folder's, or a
//! quantization) with option defaults, a system message, a template, messages and adapters,
//! checked by loading what the engine will load. Above the registry, which stores them.

use crate::backend::lora::Adapter;
use crate::error::{Error, Result};
use crate::registry::find_local;
use crate::registry::local::{self, UserModel};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// What a new model is made of.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub name: String,
    /// A model name (or, where the caller allows paths, a GGUF path or a Hugging Face folder).
    pub from: Option<String>,
    /// Uploaded files: name → digest (`sha256:<hex>`); the GGUF among them is the weights, else
    /// the safetensors with their config.json and tokenizer.json, made into a folder.
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
    if let Some((fname, _)) = r.files.iter().find(|(n, _)| n.ends_with(".safetensors")) {
        for need in ["config.json", "tokenizer.json"] {
            if !r.files.iter().any(|(n, _)| n == need) {
                let why = format!("a safetensors import needs {need} beside the weights");
                return Err(refuse("files", fname, &why));
            }
        }
        return Ok((local::import_folder(&r.files)?, fname.clone(), None));
    }
    if let Some((fname, _)) = r.files.first() {
        return Err(refuse(
            "files",
            fname,
            "the weights are a GGUF file or safetensors (with config.json and tokenizer.json)",
        ));
    }
    let from = r
        .from
        .as_deref()
        .filter(|f| !f.is_empty())
        .ok_or_else(|| refuse("from", "", "required (a model name, or files)"))?;
    let inherited = local::get(from).or_else(|| local::get(&local::normalize(from)));
    let p = Path::new(from);
    if r.allow_paths && (p.is_file() || crate::config::is_folder(p)) {
        // kept absolute: the model must load from wherever it is run later
        let abs = std::fs::canonicalize(p).map_err(|e| Error::io(p, e))?;
        return Ok((abs, from.to_string(), None));
    }
    if r.fetch && inherited.is_none() {
        return Ok((crate::registry::resolve(from, &mut |_, _, _| {})?, from.to_string(), None));
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
    let folder = crate::config::is_folder(&file);
    let (cfg, arch) = if folder {
        progress("checking safetensors");
        // a folder that does not load is the request's files' fault
        let open = || {
            let f = crate::backend::candle::safetensors::Folder::open(&file)?;
            f.tokenizer()?;
            Ok::<_, Error>(f.cfg)
        };
        let cfg = open().map_err(|e| {
            local::drop_import(&file);
            refuse("files", &from, &e.to_string())
        })?;
        (Ok(cfg), "gemma3".to_string())
    } else {
        let g = crate::gguf::Gguf::open(&file)?;
        let arch = g.metadata.get("general.architecture").and_then(|v| v.as_str());
        let arch = arch.unwrap_or("gemma3").to_string();
        (crate::config::Gemma3Config::from_gguf(&g), arch)
    };
    let mut adapters = inherited.as_ref().map(|m| m.adapters.clone()).unwrap_or_default();
    adapters.extend(adapter_paths(r)?);
    if !adapters.is_empty() {
        progress("checking adapters");
        let list: Vec<Adapter> =
            adapters.iter().map(|p| Adapter { path: p.clone(), scale: 1.0 }).collect();
        crate::backend::lora::load(&list, &arch, &cfg?)?;
    }
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
        // a folder is written as a GGUF first, which needs its tokenizer.model
        let done = crate::quantize::run(&file, &tmp, target, true, &mut |_, _| {});
        if let Err(e) = done {
            let _ = std::fs::remove_file(&tmp);
            local::drop_import(&file);
            return Err(if folder { refuse("quantize", q, &e.to_string()) } else { e });
        }
        let quantized = local::adopt_blob(&tmp)?;
        // the model is the GGUF now: an imported folder is not kept (its uploads are)
        local::drop_import(&file);
        file = quantized;
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
    let m = crate::registry::modelfile::parse(text)?;
    let near = |f: String| {
        let rel = dir.join(f.strip_prefix("./").unwrap_or(&f));
        let here = rel.is_file() || crate::config::is_folder(&rel);
        if (f.starts_with("./") || f.starts_with("../")) && here {
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
