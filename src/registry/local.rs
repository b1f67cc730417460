//! Models made on this machine (`chimera create` and `cp`, Ollama's /api/create and /api/copy):
//! one manifest per name under `$CHIMERA_HOME/manifests`, naming a weights file, its sha256, and
//! the Modelfile's PARAMETERs (Ollama option names) and SYSTEM; uploaded or quantized weights live
//! as `$CHIMERA_HOME/blobs/sha256-<hex>`, safetensors imports as folders of links to their blobs
//! under `$CHIMERA_HOME/imports`. Writes are atomic (a temporary file, then a rename).

use super::{home_dir, sha256_file};
use crate::error::{Error, Result};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A model made here.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UserModel {
    pub name: String,
    /// The weights (a GGUF file).
    pub file: PathBuf,
    /// The weights' sha256.
    pub digest: String,
    /// Option defaults under Ollama's names (a request's own options win).
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// The system message used when a request has none.
    #[serde(default)]
    pub system: Option<String>,
    /// A Modelfile's TEMPLATE (Ollama's Go template), used instead of the GGUF's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// A Modelfile's MESSAGEs: a conversation every chat starts with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<crate::chat::Message>,
    /// A Modelfile's ADAPTERs: LoRA adapter GGUFs applied to the weights at load.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adapters: Vec<PathBuf>,
    /// What it was made from (a model name or a blob).
    pub from: String,
    /// Seconds since the epoch.
    pub created: u64,
}

/// A name with Ollama's default tag (`name` → `name:latest`).
pub fn normalize(name: &str) -> String {
    let tail = name.rsplit('/').next().unwrap_or(name);
    if tail.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// Checks a name as Ollama's: letters, digits, `.`, `-`, `_`, one `:` before the tag, `/` between
/// a namespace and the model.
pub fn check_name(name: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "._-:/".contains(c);
    let parts_ok = name.split('/').all(|p| !p.is_empty() && p != "." && p != "..");
    if name.is_empty()
        || name.len() > 250
        || !name.chars().all(ok_char)
        || !parts_ok
        || name.matches(':').count() > 1
    {
        return Err(Error::option(
            "model",
            name,
            "not a valid model name (letters, digits, . - _ / and one :tag)",
        ));
    }
    Ok(())
}

fn manifests_dir() -> PathBuf {
    home_dir().join("manifests")
}

/// Where uploaded and made weights live.
pub fn blobs_dir() -> PathBuf {
    home_dir().join("blobs")
}

fn manifest_path(name: &str) -> PathBuf {
    manifests_dir().join(format!("{}.json", normalize(name).replace('/', "%2F")))
}

/// The model made here under `name`, if there is one.
pub fn get(name: &str) -> Option<UserModel> {
    if check_name(name).is_err() {
        return None;
    }
    let text = std::fs::read_to_string(manifest_path(name)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Every model made here, by name.
pub fn list() -> Vec<UserModel> {
    let Ok(rd) = std::fs::read_dir(manifests_dir()) else { return vec![] };
    let mut v: Vec<UserModel> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_str(&std::fs::read_to_string(e.path()).ok()?).ok())
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, then a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Saves a model's manifest (replacing one of the same name).
pub fn save(m: &UserModel) -> Result<()> {
    check_name(&m.name)?;
    let text = serde_json::to_string_pretty(m).map_err(|e| Error::Device(e.to_string()))?;
    write_atomic(&manifest_path(&m.name), text.as_bytes())
}

/// Removes a model made here; blobs (weights, adapters) no other model uses go with it. False
/// when there is none.
pub fn remove(name: &str) -> Result<bool> {
    let Some(m) = get(name) else { return Ok(false) };
    let p = manifest_path(name);
    std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
    let others = list();
    let used = |f: &PathBuf| others.iter().any(|o| &o.file == f || o.adapters.contains(f));
    for f in std::iter::once(&m.file).chain(&m.adapters) {
        if f.starts_with(blobs_dir()) && !used(f) {
            let _ = std::fs::remove_file(f);
        }
        if f.starts_with(imports_dir()) && !used(f) {
            remove_import(f, &used);
        }
    }
    Ok(true)
}

/// Removes an imported folder no model was made from (its import failed); its blobs stay, as
/// uploads do.
pub fn drop_import(dir: &Path) {
    if dir.starts_with(imports_dir()) && !list().iter().any(|m| m.file == dir) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Removes an imported folder and the uploaded blobs it was made of that nothing else holds
/// (no other folder links them, no model names them).
fn remove_import(dir: &Path, used: &dyn Fn(&PathBuf) -> bool) {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let inodes: Vec<(u64, u64)> =
        rd.filter_map(|e| e.ok()?.metadata().ok()).map(|m| (m.dev(), m.ino())).collect();
    if std::fs::remove_dir_all(dir).is_err() {
        return;
    }
    let Ok(rd) = std::fs::read_dir(blobs_dir()) else { return };
    for p in rd.filter_map(|e| Some(e.ok()?.path())) {
        let Ok(m) = std::fs::metadata(&p) else { continue };
        if m.nlink() == 1 && inodes.contains(&(m.dev(), m.ino())) && !used(&p) {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// A digest as Ollama writes it (`sha256:<hex>`, or `sha256-<hex>`), as its 64 hex digits.
pub fn digest_hex(digest: &str) -> Result<String> {
    let hex = digest.strip_prefix("sha256:").or(digest.strip_prefix("sha256-")).unwrap_or("");
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex.to_ascii_lowercase())
    } else {
        Err(Error::option("digest", digest, "expected sha256:<64 hex digits>"))
    }
}

/// The path of blob `digest`.
pub fn blob_path(digest: &str) -> Result<PathBuf> {
    Ok(blobs_dir().join(format!("sha256-{}", digest_hex(digest)?)))
}

/// A blob being written: bytes go to a temporary file and into the hash; `finish` keeps it only
/// when the hash is the digest it was sent under.
pub struct BlobWriter {
    tmp: PathBuf,
    file: std::fs::File,
    hash: Sha256,
    want: String,
}

impl BlobWriter {
    pub fn new(digest: &str) -> Result<BlobWriter> {
        let want = digest_hex(digest)?;
        let dir = blobs_dir();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".upload-{want}-{}-{n}", std::process::id()));
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(BlobWriter { tmp, file, hash: Sha256::new(), want })
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.hash.update(bytes);
        self.file.write_all(bytes).map_err(|e| Error::io(&self.tmp, e))
    }

    /// Keeps the blob when its sha256 is the one it was sent under (else `Drop` removes it).
    pub fn finish(self) -> Result<PathBuf> {
        let got = format!("{:x}", self.hash.clone().finalize());
        self.file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        if got != self.want {
            return Err(Error::option(
                "digest",
                format!("sha256:{}", self.want),
                &format!("the uploaded bytes hash to sha256:{got}"),
            ));
        }
        let path = blobs_dir().join(format!("sha256-{got}"));
        std::fs::rename(&self.tmp, &path).map_err(|e| Error::io(&path, e))?;
        Ok(path)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // an upload that did not finish leaves nothing behind
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// What a model made here says besides its weights: option defaults, a system message, a
/// template, a conversation to start from and LoRA adapters.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    pub parameters: Map<String, Value>,
    pub system: Option<String>,
    pub template: Option<String>,
    pub messages: Vec<crate::chat::Message>,
    pub adapters: Vec<PathBuf>,
}

/// Where imported safetensors folders live, one per set of files, named by their digests.
pub fn imports_dir() -> PathBuf {
    home_dir().join("imports")
}

/// A Hugging Face folder made of uploaded blobs, each under its file name (`files`: name →
/// digest), as hard links (copies where the file system refuses one); the same files give the
/// same folder. Nothing is left behind when it fails.
pub fn import_folder(files: &[(String, String)]) -> Result<PathBuf> {
    let mut list = vec![];
    for (name, digest) in files {
        if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
            return Err(Error::option("files", name, "a file name, without folders"));
        }
        let p = blob_path(digest)?;
        if !p.is_file() {
            let why = format!("blob {digest} was not uploaded (POST /api/blobs/{digest})");
            return Err(Error::option("files", name, &why));
        }
        list.push((name.clone(), digest_hex(digest)?, p));
    }
    list.sort();
    let mut h = Sha256::new();
    list.iter().for_each(|(n, d, _)| h.update(format!("{n} {d}\n")));
    let root = imports_dir();
    let dir = root.join(format!("sha256-{:x}", h.finalize()));
    if dir.is_dir() {
        return Ok(dir);
    }
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = root.join(format!(".import-{}-{n}", std::process::id()));
    let made = (|| {
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        for (name, _, blob) in &list {
            let to = tmp.join(name);
            if std::fs::hard_link(blob, &to).is_err() {
                std::fs::copy(blob, &to).map_err(|e| Error::io(&to, e))?;
            }
        }
        std::fs::rename(&tmp, &dir).map_err(|e| Error::io(&dir, e))
    })();
    if made.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        // another import of the same files may have renamed its folder first
        if !dir.is_dir() {
            made?;
        }
    }
    Ok(dir)
}

/// The sha256 of a model's weights: a file's, or for a folder the sha256 of its files' names
/// and sha256s (`name hex` lines, sorted), which is an imported folder's name.
pub fn digest_of(path: &Path) -> Result<String> {
    if !path.is_dir() {
        return sha256_file(path, &mut |_, _, _| {});
    }
    let mut lines = vec![];
    for e in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
        let p = e.map_err(|e| Error::io(path, e))?.path();
        if p.is_file() {
            let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            lines.push(format!("{name} {}\n", sha256_file(&p, &mut |_, _, _| {})?));
        }
    }
    lines.sort();
    let mut h = Sha256::new();
    lines.iter().for_each(|l| h.update(l));
    Ok(format!("{:x}", h.finalize()))
}

/// Bytes of a model's weights: a file's length, or the sum of a folder's files.
pub fn size_of(path: &Path) -> Option<u64> {
    let md = std::fs::metadata(path).ok()?;
    if !md.is_dir() {
        return Some(md.len());
    }
    let rd = std::fs::read_dir(path).ok()?;
    Some(rd.filter_map(|e| e.ok()?.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum())
}

/// A new model: the weights at `file` (hashed here), with its defaults.
pub fn make(name: &str, file: &Path, from: &str, d: Defaults) -> Result<UserModel> {
    check_name(name)?;
    let digest = digest_of(file)?;
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let m = UserModel {
        name: normalize(name),
        file: file.to_path_buf(),
        digest,
        parameters: d.parameters,
        system: d.system,
        template: d.template,
        messages: d.messages,
        adapters: d.adapters,
        from: from.to_string(),
        created,
    };
    save(&m)?;
    Ok(m)
}

/// Moves a finished file (a quantization's output) into the blobs, named by its sha256.
pub fn adopt_blob(tmp: &Path) -> Result<PathBuf> {
    let hex = sha256_file(tmp, &mut |_, _, _| {})?;
    let path = blobs_dir().join(format!("sha256-{hex}"));
    std::fs::rename(tmp, &path).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_digests() {
        assert_eq!(normalize("mine"), "mine:latest");
        assert_eq!(normalize("me/mine:v2"), "me/mine:v2");
        assert!(check_name("me/mine:v2").is_ok());
        assert!(
            check_name("../x").is_err()
                && check_name("a b").is_err()
                && check_name("a:b:c").is_err()
        );
        assert_eq!(digest_hex(&format!("sha256:{}", "A".repeat(64))).unwrap(), "a".repeat(64));
        assert!(digest_hex("md5:abc").is_err());
    }
}
