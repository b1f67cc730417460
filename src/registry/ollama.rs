//! Models in Ollama's store (`$OLLAMA_MODELS`, default ~/.ollama/models), used in place: a name's
//! manifest under `manifests/<host>/<namespace>/<model>/<tag>` names its layers, and the layer
//! of media type `application/vnd.ollama.image.model` is the GGUF at `blobs/sha256-<digest>`,
//! verified against that digest (the verification remembered in chimera's home, never in
//! Ollama's store).

use super::{home_dir, Progress};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Ollama's default registry host and namespace (ref: ollama types/model/name.go defaults).
const HOST: &str = "registry.ollama.ai";
const NAMESPACE: &str = "library";
const TAG: &str = "latest";
/// The media type of a manifest's weights layer (ref: ollama server/images.go).
const MODEL_LAYER: &str = "application/vnd.ollama.image.model";
/// The layers Ollama runs a model with besides its weights (ref: ollama server/images.go,
/// server/create.go).
const TEMPLATE_LAYER: &str = "application/vnd.ollama.image.template";
const SYSTEM_LAYER: &str = "application/vnd.ollama.image.system";
const PARAMS_LAYER: &str = "application/vnd.ollama.image.params";
const MESSAGES_LAYER: &str = "application/vnd.ollama.image.messages";
const ADAPTER_LAYER: &str = "application/vnd.ollama.image.adapter";

/// One model in Ollama's store.
#[derive(Debug, Clone)]
pub struct Found {
    /// The name as Ollama shows it (`gemma3:4b`, `user/model:tag`).
    pub name: String,
    pub manifest: PathBuf,
    pub blob: PathBuf,
    /// Hex sha256 of the blob, from the manifest.
    pub digest: String,
    pub size: u64,
    /// The other layers: media type and blob path.
    pub layers: Vec<(String, PathBuf)>,
}

impl Found {
    /// The blob's path once its sha256 matches the manifest's digest.
    pub fn verified(&self, progress: Progress) -> Result<PathBuf> {
        let memo = home_dir().join("verified").join(format!("sha256-{}", self.digest));
        super::verify(&self.blob, &self.digest, &memo, progress)?;
        Ok(self.blob.clone())
    }

    /// The model's template, system message, parameters, messages and LoRA adapters, read from
    /// their layers.
    pub fn layers(&self) -> Result<super::local::Defaults> {
        let mut out = super::local::Defaults::default();
        for (media, blob) in &self.layers {
            let bad = |what: String| Error::Registry { path: blob.clone(), what };
            let read = || {
                std::fs::read_to_string(blob)
                    .map_err(|e| bad(format!("its {media} layer cannot be read: {e}")))
            };
            match media.as_str() {
                TEMPLATE_LAYER => out.template = Some(read()?),
                SYSTEM_LAYER => out.system = Some(read()?),
                PARAMS_LAYER => {
                    out.parameters = serde_json::from_str(&read()?)
                        .map_err(|e| bad(format!("its parameters are not a JSON object: {e}")))?
                }
                ADAPTER_LAYER => out.adapters.push(blob.clone()),
                MESSAGES_LAYER => {
                    out.messages = serde_json::from_str(&read()?)
                        .map_err(|e| bad(format!("its messages are not a JSON list: {e}")))?
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// Ollama's model folder.
pub fn models_dir() -> PathBuf {
    std::env::var_os("OLLAMA_MODELS").map(PathBuf::from).unwrap_or_else(|| {
        let h = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        h.join(".ollama").join("models")
    })
}

/// The manifest path components of a name (`model`, `ns/model`, `host/ns/model`, each with an
/// optional `:tag`), or None when it cannot be an Ollama name.
fn components(name: &str) -> Option<[String; 4]> {
    let (repo, tag) = match name.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (name, TAG),
    };
    let parts: Vec<&str> = repo.split('/').collect();
    let ok = |s: &str| {
        !s.is_empty() && s != "." && s != ".." && !s.contains(['\\', ':']) && !s.starts_with('.')
    };
    if !parts.iter().all(|p| ok(p)) || !ok(tag) {
        return None;
    }
    let [host, ns, model] = match parts[..] {
        [m] => [HOST, NAMESPACE, m],
        [n, m] => [HOST, n, m],
        [h, n, m] => [h, n, m],
        _ => return None,
    };
    Some([host, ns, model, tag].map(str::to_string))
}

/// The name Ollama shows for manifest components.
fn display_name([host, ns, model, tag]: &[String; 4]) -> String {
    match (host.as_str(), ns.as_str()) {
        (HOST, NAMESPACE) => format!("{model}:{tag}"),
        (HOST, _) => format!("{ns}/{model}:{tag}"),
        _ => format!("{host}/{ns}/{model}:{tag}"),
    }
}

/// The model `name` in Ollama's store, if it is there. A manifest that is there but malformed,
/// or names an absent blob, is an error naming the manifest.
pub fn find(name: &str) -> Result<Option<Found>> {
    let Some(c) = components(name) else { return Ok(None) };
    let root = models_dir();
    let manifest = c.iter().fold(root.join("manifests"), |p, s| p.join(s));
    if !manifest.is_file() {
        return Ok(None);
    }
    read(&root, &manifest, display_name(&c)).map(Some)
}

fn read(root: &Path, manifest: &Path, name: String) -> Result<Found> {
    let bad = |what: String| Error::Registry { path: manifest.into(), what };
    let text = std::fs::read_to_string(manifest).map_err(|e| Error::io(manifest, e))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not a manifest: {e}")))?;
    let layer = v["layers"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["mediaType"] == MODEL_LAYER))
        .ok_or_else(|| bad(format!("no layer of media type {MODEL_LAYER}")))?;
    let digest = layer["digest"].as_str().unwrap_or_default();
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| super::is_sha256(h))
        .ok_or_else(|| bad(format!("model layer digest '{digest}' is not sha256:<64 hex>")))?
        .to_ascii_lowercase();
    let blob = root.join("blobs").join(format!("sha256-{hex}"));
    let meta = std::fs::metadata(&blob)
        .map_err(|_| bad(format!("its model blob {} is absent", blob.display())))?;
    let mut layers = vec![];
    for l in v["layers"].as_array().into_iter().flatten() {
        let media = l["mediaType"].as_str().unwrap_or_default();
        let d = l["digest"].as_str().unwrap_or_default();
        if let Some(h) = d.strip_prefix("sha256:").filter(|h| super::is_sha256(h)) {
            let p = root.join("blobs").join(format!("sha256-{}", h.to_ascii_lowercase()));
            layers.push((media.to_string(), p));
        }
    }
    Ok(Found { name, manifest: manifest.into(), blob, digest: hex, size: meta.len(), layers })
}

/// Every model in Ollama's store whose manifest reads (one that does not is left out).
pub fn list() -> Vec<Found> {
    let root = models_dir();
    let dirs = |p: &Path| -> Vec<(String, PathBuf)> {
        let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.file_name().to_str()?.to_string(), e.path())))
            .collect();
        v.sort();
        v
    };
    let mut out = vec![];
    for (host, hp) in dirs(&root.join("manifests")) {
        for (ns, np) in dirs(&hp) {
            for (model, mp) in dirs(&np) {
                for (tag, tp) in dirs(&mp) {
                    let c = [host.clone(), ns.clone(), model.clone(), tag];
                    if let Ok(f) = read(&root, &tp, display_name(&c)) {
                        out.push(f);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_manifest_paths_as_ollama_does() {
        let c = |n: &str| components(n).map(|c| c.join("/"));
        assert_eq!(c("gemma3").as_deref(), Some("registry.ollama.ai/library/gemma3/latest"));
        assert_eq!(c("gemma3:4b").as_deref(), Some("registry.ollama.ai/library/gemma3/4b"));
        assert_eq!(c("me/m:q8").as_deref(), Some("registry.ollama.ai/me/m/q8"));
        assert_eq!(c("h.io/me/m").as_deref(), Some("h.io/me/m/latest"));
        for bad in ["../x", "a/../../b", "", "a//b", "x:", "a/b/c/d", ".hidden"] {
            assert_eq!(c(bad), None, "{bad}");
        }
        let back = |n: &str| display_name(&components(n).unwrap());
        assert_eq!(back("gemma3"), "gemma3:latest");
        assert_eq!(back("me/m:q8"), "me/m:q8");
    }
}
