//! `ingest`: walk a folder of benchmark artifacts and extract deterministic, complete facts.
//!
//! No model is involved. Files are visited in sorted order; CSV (csv crate; quoted fields, spaced
//! headers, ragged rows, UTF-8 and UTF-16 BOMs), JSON (serde_json) and Markdown (headings and pipe
//! tables) are parsed; every file that cannot be read is listed with its reason and never stops the
//! walk. Tables keep their rows ([`Dataset`]) for the findings; measurement columns, JSON leaves
//! and table cells become series with statistics over their successful rows. The data's time span
//! comes from stamps inside it and in its file and folder names, beside the file mtimes (which a
//! git checkout resets).

mod json;
pub mod names;
pub mod tables;

pub use names::{is_measurement, parse_num, unit_of};
pub use tables::Dataset;

use crate::stamp::{self, Unix};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Options for a walk.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Files larger than this are skipped with that reason.
    pub max_file_bytes: u64,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions { max_file_bytes: 64 << 20 }
    }
}

/// Everything ingest found, in a stable order.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Facts {
    pub root: String,
    pub files: FileFacts,
    pub latest_modified: Latest,
    pub time_span: TimeSpan,
    pub series: Vec<Series>,
    pub sweeps: Vec<Sweep>,
    /// Every failed row or record, with its error text.
    pub failures: Vec<FailedRow>,
    pub gaps: Vec<Gap>,
    /// Files that repeat another file's data (counted once by the findings).
    pub twins: Vec<Twin>,
    /// The tables behind the series, for the findings (not serialized: the series summarise them).
    #[serde(skip)]
    pub datasets: Vec<Dataset>,
}

/// File counts.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct FileFacts {
    /// Artifacts read (csv + json + md), the unreadable ones included.
    pub total: usize,
    pub by_type: ByType,
    /// Artifacts per top-level folder ("." for files at the root).
    pub by_dir: BTreeMap<String, usize>,
    /// Files of other types, not analysed.
    pub ignored: usize,
    /// Files skipped by the size cap, symlinked folders not followed.
    pub skipped: Vec<PathReason>,
    pub unreadable: Vec<PathReason>,
    /// Bytes of the artifacts.
    pub bytes: u64,
    /// Markdown headings, those stranded mid-line by collapsed newlines included.
    pub md_headings: usize,
}

#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct ByType {
    pub csv: usize,
    pub json: usize,
    pub md: usize,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct PathReason {
    pub path: String,
    pub reason: String,
}

/// Latest modification time per type and overall (RFC 3339, UTC).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Latest {
    pub csv: Option<String>,
    pub json: Option<String>,
    pub md: Option<String>,
    pub overall: Option<String>,
}

/// When the data was taken, by the stamps inside it, the stamps in its names, and file mtimes.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct TimeSpan {
    /// Earliest and latest stamp in the data (values of timestamp-like keys and columns).
    pub data: Option<(String, String)>,
    pub data_stamps: usize,
    /// Earliest and latest stamp in file and folder names.
    pub names: Option<(String, String)>,
    pub name_stamps: usize,
    /// Earliest and latest file mtime.
    pub mtimes: Option<(String, String)>,
}

/// Statistics of one measurement over the successful rows of one file.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Series {
    pub file: String,
    /// CSV/Markdown column, or JSON path with `[]` for array elements.
    pub column: String,
    pub unit: Option<String>,
    pub n: usize,
    pub n_failed: usize,
    /// Successful rows or records whose value is missing (null, empty, NaN).
    pub n_null: usize,
    pub mean: f64,
    pub sd: f64,
    pub min: f64,
    pub max: f64,
    pub p50: f64,
    pub p95: f64,
}

/// A parameter sweep: configurations ranked by throughput and by TTFT.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Sweep {
    pub file: String,
    pub config_columns: Vec<String>,
    pub configs: usize,
    pub throughput_column: Option<String>,
    pub ttft_column: Option<String>,
    pub best_throughput: Option<ConfigValue>,
    pub worst_throughput: Option<ConfigValue>,
    pub best_ttft: Option<ConfigValue>,
    pub worst_ttft: Option<ConfigValue>,
    /// best − worst throughput.
    pub throughput_spread: Option<f64>,
    /// Mean within-configuration sample sd of throughput (needs repeated configurations).
    pub run_to_run_sd: Option<f64>,
    /// Whether the spread exceeds twice the run-to-run sd; `None` without repeats.
    pub spread_exceeds_noise: Option<bool>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct ConfigValue {
    pub config: String,
    pub value: f64,
}

/// A row or record that failed.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct FailedRow {
    pub file: String,
    /// 1-based data row (header excluded) or record index.
    pub row: usize,
    /// What the row ran (its model, configuration or prompt), when a column says.
    pub ran: Option<String>,
    /// Its error text; `None` when it failed silently (success = false, all-zero metrics).
    pub message: Option<String>,
}

/// A file whose data another file already holds.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Twin {
    pub file: String,
    /// The file counted instead (CSV before JSON before Markdown; the raw file before its summary).
    pub of: String,
    /// "same data" or "derived summary".
    pub relation: String,
}

/// Something missing or broken in the data.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Gap {
    pub path: String,
    /// "empty file", "null value", "failed runs", "unreadable", "no measurements".
    pub kind: String,
    pub detail: String,
}

/// Stamps collected during the walk.
#[derive(Default)]
struct Stamps {
    data: Vec<Unix>,
    names: Vec<Unix>,
    mtimes: Vec<Unix>,
}

fn span(v: &[Unix]) -> Option<(String, String)> {
    let (lo, hi) = (v.iter().min()?, v.iter().max()?);
    Some((stamp::format(*lo), stamp::format(*hi)))
}

/// Ingests `root`. Fails only when `root` itself cannot be read.
pub fn ingest(root: &Path, opts: &IngestOptions) -> crate::Result<Facts> {
    let meta = std::fs::metadata(root).map_err(|e| crate::Error::io(root, e))?;
    if !meta.is_dir() {
        return Err(crate::Error::io(root, std::io::Error::other("not a directory")));
    }
    let mut facts = Facts { root: root.display().to_string(), ..Default::default() };
    let mut latest: BTreeMap<&str, std::time::SystemTime> = BTreeMap::new();
    let mut stamps = Stamps::default();
    for p in walk(root, &mut facts) {
        read_file(root, &p, opts, &mut facts, &mut latest, &mut stamps);
    }
    let fmt = |t: &std::time::SystemTime| stamp::rfc3339(*t);
    facts.latest_modified = Latest {
        csv: latest.get("csv").map(fmt),
        json: latest.get("json").map(fmt),
        md: latest.get("md").map(fmt),
        overall: latest.get("overall").map(fmt),
    };
    facts.time_span = TimeSpan {
        data: span(&stamps.data),
        data_stamps: stamps.data.len(),
        names: span(&stamps.names),
        name_stamps: stamps.names.len(),
        mtimes: span(&stamps.mtimes),
    };
    find_twins(&mut facts);
    Ok(facts)
}

/// Every file below `root`, sorted; unreadable folders and symlinked folders are recorded.
fn walk(root: &Path, facts: &mut Facts) -> Vec<PathBuf> {
    let mut stack = vec![root.to_path_buf()];
    let mut files: Vec<PathBuf> = vec![];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) => {
                facts
                    .files
                    .unreadable
                    .push(PathReason { path: rel(root, &dir), reason: e.to_string() });
                continue;
            }
        };
        entries.sort();
        // reversed so the stack pops in sorted order
        for p in entries.into_iter().rev() {
            let Ok(lm) = std::fs::symlink_metadata(&p) else { continue };
            if lm.is_dir() {
                stack.push(p);
            } else if lm.file_type().is_symlink() && p.is_dir() {
                facts.files.skipped.push(PathReason {
                    path: rel(root, &p),
                    reason: "symlink to a folder, not followed".into(),
                });
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

fn read_file(
    root: &Path,
    p: &Path,
    opts: &IngestOptions,
    facts: &mut Facts,
    latest: &mut BTreeMap<&'static str, std::time::SystemTime>,
    stamps: &mut Stamps,
) {
    let r = rel(root, p);
    let ext = p.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    let kind = match ext.as_str() {
        "csv" => "csv",
        "json" => "json",
        "md" | "markdown" => "md",
        _ => {
            facts.files.ignored += 1;
            return;
        }
    };
    let Ok(m) = std::fs::metadata(p) else {
        facts.files.unreadable.push(PathReason { path: r, reason: "cannot stat".into() });
        return;
    };
    if m.len() > opts.max_file_bytes {
        facts.files.skipped.push(PathReason {
            path: r,
            reason: format!("{} bytes, over the {}-byte cap", m.len(), opts.max_file_bytes),
        });
        return;
    }
    facts.files.total += 1;
    facts.files.bytes += m.len();
    match kind {
        "csv" => facts.files.by_type.csv += 1,
        "json" => facts.files.by_type.json += 1,
        _ => facts.files.by_type.md += 1,
    }
    let top = r.split('/').next().filter(|_| r.contains('/')).unwrap_or(".").to_string();
    *facts.files.by_dir.entry(top).or_default() += 1;
    if let Ok(t) = m.modified() {
        for k in [kind, "overall"] {
            let e = latest.entry(k).or_insert(t);
            if t > *e {
                *e = t;
            }
        }
        stamps.mtimes.extend(stamp::parse(&stamp::rfc3339(t)));
    }
    stamps.names.extend(r.split('/').flat_map(stamp::in_name).map(|s| s.time));
    let bytes = match std::fs::read(p) {
        Ok(b) => b,
        Err(e) => {
            facts.files.unreadable.push(PathReason { path: r, reason: e.to_string() });
            return;
        }
    };
    if bytes.is_empty() {
        facts.gaps.push(Gap { path: r, kind: "empty file".into(), detail: "0 bytes".into() });
        return;
    }
    let res = decode_text(&bytes).and_then(|t| match kind {
        "csv" => tables::csv(&r, &t).map(|d| add_tables(vec![d], facts, stamps)),
        "json" => json::facts(&r, &t, facts, &mut stamps.data),
        _ => {
            facts.files.md_headings += t.lines().map(tables::headings_in).sum::<usize>();
            add_tables(tables::markdown(&r, &t), facts, stamps);
            Ok(())
        }
    });
    if let Err(reason) = res {
        facts.gaps.push(Gap { path: r.clone(), kind: "unreadable".into(), detail: reason.clone() });
        facts.files.unreadable.push(PathReason { path: r, reason });
    }
}

/// Series, sweeps and failures of CSV and Markdown tables, and the stamps in their time columns.
fn add_tables(ds: Vec<Dataset>, facts: &mut Facts, stamps: &mut Stamps) {
    for d in ds {
        tables::table_facts(&d, facts);
        for c in (0..d.headers.len()).filter(|&c| stamp::is_time_key(&d.headers[c])) {
            stamps
                .data
                .extend((0..d.rows.len()).filter_map(|r| d.cell(r, c)).filter_map(stamp::parse));
        }
        facts.datasets.push(d);
    }
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).to_string_lossy().replace('\\', "/")
}

/// UTF-8 (BOM stripped) or UTF-16 with a BOM; anything else is unreadable.
fn decode_text(b: &[u8]) -> Result<String, String> {
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
    String::from_utf8(b.to_vec()).map_err(|_| "not UTF-8 or UTF-16 text".to_string())
}

/// Formats a time as RFC 3339 UTC with second precision.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    stamp::rfc3339(t)
}

/// Sample statistics of `v` (n ≥ 1): mean, sd, min, max, p50, p95.
pub fn stats(v: &[f64]) -> (f64, f64, f64, f64, f64, f64) {
    let s = crate::stats::Summary::of(v).unwrap_or_default();
    let mut sorted = v.to_vec();
    sorted.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        // linear interpolation between closest ranks (numpy's default)
        let h = (sorted.len() - 1) as f64 * p;
        let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
        sorted[lo] + (sorted[hi] - sorted[lo]) * (h - lo as f64)
    };
    (s.mean, s.sd, s.min, s.max, pct(0.5), pct(0.95))
}

/// The stem and extension of a relative path's file name.
fn stem_ext(path: &str) -> (String, String) {
    let (dir, name) = path.rsplit_once('/').map_or(("", path), |(d, n)| (d, n));
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
    (format!("{dir}/{stem}"), ext.to_ascii_lowercase())
}

/// Numbers of a file's datasets (cells) and series means, for recognising twins by content.
fn numbers_of(facts: &Facts, file: &str) -> Vec<f64> {
    let mut v: Vec<f64> = facts
        .datasets
        .iter()
        .filter(|d| d.file == file)
        .flat_map(|d| d.rows.iter().flatten().flatten().filter_map(|c| parse_num(c)))
        .collect();
    v.extend(facts.series.iter().filter(|s| s.file == file).flat_map(|s| [s.min, s.max]));
    v.retain(|x| *x != 0.0 && *x != 1.0);
    v
}

/// Twins: files of one folder and stem in several formats holding the same numbers (CSV is
/// kept, then JSON, then Markdown), and `<stem>_summary.*` files beside `<stem>.*` (derived).
fn find_twins(facts: &mut Facts) {
    let rank = |e: &str| match e {
        "csv" => 0,
        "json" => 1,
        _ => 2,
    };
    let mut files: Vec<String> = facts.datasets.iter().map(|d| d.file.clone()).collect();
    files.extend(facts.series.iter().map(|s| s.file.split('#').next().unwrap_or("").to_string()));
    files.sort();
    files.dedup();
    let mut twins = vec![];
    for f in &files {
        let (stem, ext) = stem_ext(f);
        let same_data = files.iter().find(|g| {
            let (s2, e2) = stem_ext(g);
            s2 == stem && rank(&e2) < rank(&ext) && {
                let (a, b) = (numbers_of(facts, f), numbers_of(facts, g));
                let shared =
                    a.iter().filter(|x| b.iter().any(|y| (*x - y).abs() <= 1e-9 * x.abs())).count();
                shared >= 3 || (!a.is_empty() && shared == a.len())
            }
        });
        if let Some(g) = same_data {
            twins.push(Twin { file: f.clone(), of: g.clone(), relation: "same data".into() });
            continue;
        }
        if let Some(base) = stem.strip_suffix("_summary") {
            if let Some(g) = files.iter().find(|g| stem_ext(g).0 == base) {
                twins.push(Twin {
                    file: f.clone(),
                    of: g.clone(),
                    relation: "derived summary".into(),
                });
            }
        }
    }
    for d in &mut facts.datasets {
        d.twin_of = twins.iter().find(|t| t.file == d.file).map(|t| t.of.clone());
    }
    facts.twins = twins;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_statistics() {
        let (mean, sd, min, max, p50, p95) = stats(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!((mean, min, max, p50), (2.5, 1.0, 4.0, 2.5));
        assert!((sd - 1.290_994).abs() < 1e-6);
        assert!((p95 - 3.85).abs() < 1e-9);
    }

    #[test]
    fn utf16_csv_is_decoded() {
        let mut b = vec![0xFF, 0xFE];
        for u in "a,tokens_s\nx,5\n".encode_utf16() {
            b.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(decode_text(&b).unwrap(), "a,tokens_s\nx,5\n");
    }

    #[test]
    fn stems_of_twins() {
        assert_eq!(stem_ext("a/b/x_1.CSV"), ("a/b/x_1".into(), "csv".into()));
        assert_eq!(stem_ext("x.json"), ("/x".into(), "json".into()));
    }
}
