//! The walk over the analysed folder: every file in sorted order (symlinked folders not followed,
//! a size cap), its bytes hashed so that copies count once, decoded (UTF-8, UTF-16 with a BOM),
//! and handed to the reader its name and content call for. A file that cannot be read is listed
//! with its reason and never stops the walk; nothing is written.

use super::readers::{self, Batch};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// One file of the folder and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct FileEntry {
    pub path: String,
    pub bytes: u64,
    /// `csv`, `json`, `md`, `text`, `sql`, or `other` (not read).
    pub kind: String,
    /// The formats its tables were read as.
    pub formats: Vec<String>,
    pub records: usize,
    /// Why it gave nothing, or what was repaired.
    pub status: String,
    /// The first file with the same bytes, if it is a copy.
    pub copy_of: Option<String>,
    /// Last modification (RFC 3339).
    pub modified: Option<String>,
}

/// The folder as read.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub files: Vec<FileEntry>,
    /// (file, batch) for every table read.
    pub batches: Vec<(String, Batch)>,
    /// Markdown texts, for the claims check.
    pub reports: Vec<(String, String)>,
}

/// Options of the walk.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Files larger than this are listed and skipped.
    pub max_file_bytes: u64,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions { max_file_bytes: 64 << 20 }
    }
}

/// Walks and reads `root`. Fails only when `root` itself cannot be read or is not a folder.
pub fn scan(root: &Path, opts: &ScanOptions) -> crate::Result<Scan> {
    let meta = std::fs::metadata(root).map_err(|e| crate::Error::io(root, e))?;
    if !meta.is_dir() {
        return Err(crate::Error::io(root, std::io::Error::other("not a directory")));
    }
    let mut out = Scan::default();
    let mut hashes: Vec<([u8; 32], String)> = vec![];
    for (p, note) in walk(root) {
        let rel = rel(root, &p);
        let mut e = FileEntry {
            path: rel.clone(),
            bytes: 0,
            kind: "other".into(),
            formats: vec![],
            records: 0,
            status: String::new(),
            copy_of: None,
            modified: None,
        };
        if let Some(n) = note {
            e.status = n;
            out.files.push(e);
            continue;
        }
        let Ok(m) = std::fs::metadata(&p) else {
            e.status = "cannot be read: no metadata".into();
            out.files.push(e);
            continue;
        };
        e.bytes = m.len();
        e.modified = m.modified().ok().map(crate::stamp::rfc3339);
        let Some(kind) = readers::kind(&rel) else {
            e.status = "not a format analyze reads".into();
            out.files.push(e);
            continue;
        };
        e.kind = kind.into();
        if m.len() > opts.max_file_bytes {
            e.status =
                format!("skipped: {} bytes, over the {}-byte cap", m.len(), opts.max_file_bytes);
            out.files.push(e);
            continue;
        }
        read_one(&p, &rel, &mut e, &mut out, &mut hashes);
        out.files.push(e);
    }
    Ok(out)
}

fn read_one(
    p: &Path,
    rel: &str,
    e: &mut FileEntry,
    out: &mut Scan,
    hashes: &mut Vec<([u8; 32], String)>,
) {
    let bytes = match std::fs::read(p) {
        Ok(b) => b,
        Err(err) => {
            e.status = format!("cannot be read: {err}");
            return;
        }
    };
    if bytes.is_empty() {
        e.status = "empty file".into();
        return;
    }
    let h: [u8; 32] = Sha256::digest(&bytes).into();
    if let Some((_, first)) = hashes.iter().find(|(x, _)| *x == h) {
        e.copy_of = Some(first.clone());
        e.status = format!("identical to {first}");
        return;
    }
    hashes.push((h, rel.to_string()));
    let text = match decode(&bytes) {
        Ok(t) => t,
        Err(why) => {
            e.status = format!("cannot be read: {why}");
            return;
        }
    };
    if e.kind == "md" {
        out.reports.push((rel.to_string(), text.clone()));
    }
    match readers::read(rel, &text) {
        Ok(parsed) => {
            e.records = parsed.batches.iter().filter(|b| !b.derived).map(|b| b.records.len()).sum();
            for b in &parsed.batches {
                if !e.formats.contains(&b.format) {
                    e.formats.push(b.format.clone());
                }
            }
            e.status = match (&parsed.note, e.records) {
                (Some(n), _) => format!("read ({n})"),
                (None, 0) if e.kind == "md" => {
                    "a report (its numbers are checked as claims)".into()
                }
                (None, 0) => "no runs in it".into(),
                (None, _) => "read".into(),
            };
            out.batches.extend(parsed.batches.into_iter().map(|b| (rel.to_string(), b)));
        }
        Err(why) => e.status = format!("cannot be read: {why}"),
    }
}

/// Every file below `root`, sorted; symlinked folders and unreadable folders come back with a
/// note instead of being entered.
fn walk(root: &Path) -> Vec<(PathBuf, Option<String>)> {
    let mut stack = vec![root.to_path_buf()];
    let mut files = vec![];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) => {
                files.push((dir, Some(format!("folder cannot be read: {e}"))));
                continue;
            }
        };
        entries.sort();
        for p in entries.into_iter().rev() {
            let Ok(lm) = std::fs::symlink_metadata(&p) else { continue };
            if lm.is_dir() {
                stack.push(p);
            } else if lm.file_type().is_symlink() && p.is_dir() {
                files.push((p, Some("symlink to a folder, not followed".into())));
            } else {
                files.push((p, None));
            }
        }
    }
    files.sort();
    files
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).to_string_lossy().replace('\\', "/")
}

/// UTF-8 (BOM stripped) or UTF-16 with a BOM.
pub fn decode(b: &[u8]) -> Result<String, String> {
    if let Some(rest) = b.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return String::from_utf8(rest.to_vec()).map_err(|_| "invalid UTF-8".to_string());
    }
    let utf16 = |rest: &[u8], le: bool| {
        if !rest.len().is_multiple_of(2) {
            return Err("UTF-16 text with an odd byte count".to_string());
        }
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16(&units).map_err(|_| "invalid UTF-16".to_string())
    };
    if let Some(rest) = b.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(rest, true);
    }
    if let Some(rest) = b.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(rest, false);
    }
    match String::from_utf8(b.to_vec()) {
        Ok(t) => Ok(t),
        // a Windows tool's 8-bit text: Latin-1 maps every byte, and nothing numeric changes;
        // control bytes other than whitespace say it is binary
        Err(_) if !b.iter().any(|&c| c < 0x09 || (0x0e..0x20).contains(&c)) => {
            Ok(b.iter().map(|&c| c as char).collect())
        }
        Err(_) => Err("binary, not text".to_string()),
    }
}
