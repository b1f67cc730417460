//! `ingest`: walk a folder of benchmark artifacts and extract deterministic, complete facts.
//!
//! No model is involved. Files are visited in sorted order; CSV (csv crate; quoted fields, spaced
//! headers, ragged rows, UTF-8 and UTF-16 BOMs), JSON (serde_json) and Markdown (headings and pipe
//! tables) are parsed; every file that cannot be read is listed with its reason and never stops the
//! walk. Numeric columns, JSON leaves and table cells whose names denote a measurement become
//! series with statistics over their successful rows.

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
    pub series: Vec<Series>,
    pub sweeps: Vec<Sweep>,
    pub cold_starts: Vec<ColdStart>,
    pub gaps: Vec<Gap>,
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

/// Statistics of one measurement over the successful rows of one file.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Series {
    pub file: String,
    /// CSV/Markdown column, or JSON path with `[]` for array elements.
    pub column: String,
    pub unit: Option<String>,
    pub n: usize,
    pub n_failed: usize,
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

/// Rows whose load time dominates TTFT (cold starts) told apart from warm rows.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct ColdStart {
    pub file: String,
    pub ttft_column: String,
    pub load_column: String,
    pub cold_rows: usize,
    pub warm_rows: usize,
    pub cold_mean_ttft: Option<f64>,
    pub warm_mean_ttft: Option<f64>,
}

/// Something missing or broken in the data.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Gap {
    pub path: String,
    /// "empty file", "null value", "failed runs", "unreadable", "no measurements".
    pub kind: String,
    pub detail: String,
}

// ── names ──

/// Keywords that make a column a measurement (case-insensitive substring).
const MEASURE: &[&str] = &[
    "throughput",
    "tokens_s",
    "tok/s",
    "tokens/s",
    "tokens per second",
    "tokens_per_second",
    "latency",
    "ttft",
    "duration",
    "time_ms",
    "_ms",
    "(ms)",
    "load",
    "eval",
    "speed",
    "time_s",
    "p50",
    "p95",
    "p99",
    "avg_ts",
    "stddev_ts",
    "avg_ns",
    "stddev_ns",
    "t/s",
];
/// Configuration columns of a sweep.
const CONFIG: &[&str] = &["num_gpu", "num_ctx", "temperature", "config_name", "top_p", "top_k"];

/// Whether a column or key name denotes a measurement.
pub fn is_measurement(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    !CONFIG.contains(&n.as_str()) && MEASURE.iter().any(|k| n.contains(k))
}

/// The unit a name implies, when it says.
pub fn unit_of(name: &str) -> Option<String> {
    let n = name.to_ascii_lowercase();
    let u = if [
        "tokens_s",
        "tok/s",
        "tokens/s",
        "tokens per second",
        "tokens_per_second",
        "throughput",
        "avg_ts",
        "stddev_ts",
        "t/s",
    ]
    .iter()
    .any(|k| n.contains(k))
    {
        "tok/s"
    } else if n.ends_with("_ms")
        || n.contains("(ms)")
        || n.contains("time_ms")
        || n.contains("_ms_")
    {
        "ms"
    } else if n.ends_with("_ns") {
        "ns"
    } else if n.ends_with("_s") || n.contains("(s)") {
        "s"
    } else if n.ends_with("count") || n == "tokens" {
        "tokens"
    } else {
        return None;
    };
    Some(u.into())
}

fn is_throughput(name: &str) -> bool {
    unit_of(name).as_deref() == Some("tok/s")
}
fn is_ttft(name: &str) -> bool {
    name.to_ascii_lowercase().contains("ttft")
}
fn is_load(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("load") && !n.contains("download")
}

// ── the walk ──

/// Ingests `root`. Fails only when `root` itself cannot be read.
pub fn ingest(root: &Path, opts: &IngestOptions) -> crate::Result<Facts> {
    let meta = std::fs::metadata(root).map_err(|e| crate::Error::io(root, e))?;
    if !meta.is_dir() {
        return Err(crate::Error::io(root, std::io::Error::other("not a directory")));
    }
    let mut facts = Facts { root: root.display().to_string(), ..Default::default() };
    let mut latest: BTreeMap<&str, std::time::SystemTime> = BTreeMap::new();
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
    for p in files {
        let r = rel(root, &p);
        let ext =
            p.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        let kind = match ext.as_str() {
            "csv" => "csv",
            "json" => "json",
            "md" | "markdown" => "md",
            _ => {
                facts.files.ignored += 1;
                continue;
            }
        };
        let Ok(m) = std::fs::metadata(&p) else {
            facts.files.unreadable.push(PathReason { path: r, reason: "cannot stat".into() });
            continue;
        };
        if m.len() > opts.max_file_bytes {
            facts.files.skipped.push(PathReason {
                path: r,
                reason: format!("{} bytes, over the {}-byte cap", m.len(), opts.max_file_bytes),
            });
            continue;
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
        }
        let bytes = match std::fs::read(&p) {
            Ok(b) => b,
            Err(e) => {
                facts.files.unreadable.push(PathReason { path: r, reason: e.to_string() });
                continue;
            }
        };
        if bytes.is_empty() {
            facts.gaps.push(Gap { path: r, kind: "empty file".into(), detail: "0 bytes".into() });
            continue;
        }
        let res = match kind {
            "csv" => decode_text(&bytes).and_then(|t| csv_facts(&r, &t, &mut facts)),
            "json" => decode_text(&bytes).and_then(|t| json_facts(&r, &t, &mut facts)),
            _ => decode_text(&bytes).map(|t| md_facts(&r, &t, &mut facts)),
        };
        if let Err(reason) = res {
            facts.gaps.push(Gap {
                path: r.clone(),
                kind: "unreadable".into(),
                detail: reason.clone(),
            });
            facts.files.unreadable.push(PathReason { path: r, reason });
        }
    }
    let fmt = |t: &std::time::SystemTime| rfc3339(*t);
    facts.latest_modified = Latest {
        csv: latest.get("csv").map(fmt),
        json: latest.get("json").map(fmt),
        md: latest.get("md").map(fmt),
        overall: latest.get("overall").map(fmt),
    };
    Ok(facts)
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
    let s = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, sod) = (s.div_euclid(86_400), s.rem_euclid(86_400));
    // civil-from-days (H. Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", sod / 3600, sod % 3600 / 60, sod % 60)
}

/// Parses a number as artifacts write them: quotes, thousands commas, a trailing % or unit s.
pub fn parse_num(s: &str) -> Option<f64> {
    let t = s.trim().trim_matches('"').trim();
    let t = t.strip_suffix('%').unwrap_or(t).trim();
    let t = t.replace(',', "");
    let v: f64 = t.parse().ok()?;
    v.is_finite().then_some(v)
}

// ── statistics ──

/// Sample statistics of `v` (n ≥ 1).
pub fn stats(v: &[f64]) -> (f64, f64, f64, f64, f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = if v.len() > 1 {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        // linear interpolation between closest ranks (numpy's default)
        let h = (s.len() - 1) as f64 * p;
        let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
        s[lo] + (s[hi] - s[lo]) * (h - lo as f64)
    };
    (mean, sd, s[0], s[s.len() - 1], pct(0.5), pct(0.95))
}

fn series(file: &str, column: &str, values: &[f64], n_failed: usize) -> Option<Series> {
    if values.is_empty() {
        return None;
    }
    let (mean, sd, min, max, p50, p95) = stats(values);
    Some(Series {
        file: file.into(),
        column: column.into(),
        unit: unit_of(column),
        n: values.len(),
        n_failed,
        mean,
        sd,
        min,
        max,
        p50,
        p95,
    })
}

// ── tables (CSV and Markdown) ──

/// A parsed table: headers and rows of raw cells.
struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn col(&self, pred: impl Fn(&str) -> bool) -> Option<usize> {
        self.headers.iter().position(|h| pred(h))
    }
    fn num(&self, row: usize, col: usize) -> Option<f64> {
        self.rows[row].get(col).and_then(|c| parse_num(c))
    }
}

fn table_facts(file: &str, t: &Table, facts: &mut Facts) {
    let measures: Vec<usize> =
        (0..t.headers.len()).filter(|&c| is_measurement(&t.headers[c])).collect();
    let err_col = t.col(|h| h.trim().eq_ignore_ascii_case("error"));
    let success_col = t.col(|h| h.trim().eq_ignore_ascii_case("success"));
    // a row failed when it carries an error text, says success=false, or has all-zero metrics
    let failed: Vec<bool> = (0..t.rows.len())
        .map(|r| {
            let err = err_col.and_then(|c| t.rows[r].get(c)).is_some_and(|e| !e.trim().is_empty());
            let unsuccessful = success_col.and_then(|c| t.rows[r].get(c)).is_some_and(|s| {
                matches!(s.trim().to_ascii_lowercase().as_str(), "false" | "0" | "no")
            });
            let nums: Vec<f64> = measures.iter().filter_map(|&c| t.num(r, c)).collect();
            err || unsuccessful || (!nums.is_empty() && nums.iter().all(|v| *v == 0.0))
        })
        .collect();
    let n_failed = failed.iter().filter(|f| **f).count();
    let mut any = false;
    for &c in &measures {
        let vals: Vec<f64> =
            (0..t.rows.len()).filter(|&r| !failed[r]).filter_map(|r| t.num(r, c)).collect();
        if let Some(s) = series(file, t.headers[c].trim(), &vals, n_failed) {
            facts.series.push(s);
            any = true;
        }
    }
    if n_failed > 0 {
        facts.gaps.push(Gap {
            path: file.into(),
            kind: "failed runs".into(),
            detail: format!(
                "{n_failed} of {} rows failed (error text or all-zero metrics)",
                t.rows.len()
            ),
        });
    }
    if !any && !measures.is_empty() {
        facts.gaps.push(Gap {
            path: file.into(),
            kind: "no measurements".into(),
            detail: "measurement columns hold no numbers".into(),
        });
    }
    sweep_facts(file, t, &failed, facts);
    cold_facts(file, t, &failed, facts);
}

type Samples = (Vec<f64>, Vec<f64>);

fn sweep_facts(file: &str, t: &Table, failed: &[bool], facts: &mut Facts) {
    let cfg_cols: Vec<usize> = (0..t.headers.len())
        .filter(|&c| CONFIG.contains(&t.headers[c].trim().to_ascii_lowercase().as_str()))
        .collect();
    if cfg_cols.is_empty() {
        return;
    }
    let name_col =
        cfg_cols.iter().copied().find(|&c| t.headers[c].trim().eq_ignore_ascii_case("config_name"));
    let key = |r: usize| -> String {
        match name_col {
            Some(c) => t.rows[r].get(c).map(|s| s.trim().to_string()).unwrap_or_default(),
            None => cfg_cols
                .iter()
                .map(|&c| {
                    format!("{}={}", t.headers[c].trim(), t.rows[r].get(c).map_or("", |s| s.trim()))
                })
                .collect::<Vec<_>>()
                .join(", "),
        }
    };
    let tp = t.col(is_throughput);
    let tt = t.col(is_ttft);
    // configuration → (throughput values, TTFT values)
    let mut groups: BTreeMap<String, Samples> = BTreeMap::new();
    for r in (0..t.rows.len()).filter(|&r| !failed[r]) {
        let g = groups.entry(key(r)).or_default();
        if let Some(v) = tp.and_then(|c| t.num(r, c)) {
            g.0.push(v);
        }
        if let Some(v) = tt.and_then(|c| t.num(r, c)) {
            g.1.push(v);
        }
    }
    let means = |sel: fn(&Samples) -> &Vec<f64>| -> Vec<(String, f64)> {
        groups
            .iter()
            .filter(|(_, g)| !sel(g).is_empty())
            .map(|(k, g)| (k.clone(), sel(g).iter().sum::<f64>() / sel(g).len() as f64))
            .collect()
    };
    let tput = means(|g| &g.0);
    let ttft = means(|g| &g.1);
    let pick = |v: &[(String, f64)], best_high: bool, best: bool| -> Option<ConfigValue> {
        let it = v.iter();
        let m = if best == best_high {
            it.max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
        } else {
            it.min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
        };
        m.map(|(k, v)| ConfigValue { config: k.clone(), value: *v })
    };
    let best_t = pick(&tput, true, true);
    let worst_t = pick(&tput, true, false);
    let sds: Vec<f64> = groups.values().filter(|g| g.0.len() > 1).map(|g| stats(&g.0).1).collect();
    let run_sd = (!sds.is_empty()).then(|| sds.iter().sum::<f64>() / sds.len() as f64);
    let spread = best_t.as_ref().zip(worst_t.as_ref()).map(|(b, w)| b.value - w.value);
    facts.sweeps.push(Sweep {
        file: file.into(),
        config_columns: cfg_cols.iter().map(|&c| t.headers[c].trim().to_string()).collect(),
        configs: groups.len(),
        throughput_column: tp.map(|c| t.headers[c].trim().to_string()),
        ttft_column: tt.map(|c| t.headers[c].trim().to_string()),
        best_throughput: best_t,
        worst_throughput: worst_t,
        best_ttft: pick(&ttft, false, true),
        worst_ttft: pick(&ttft, false, false),
        throughput_spread: spread,
        run_to_run_sd: run_sd,
        spread_exceeds_noise: spread.zip(run_sd).map(|(s, sd)| s > 2.0 * sd),
    });
}

fn cold_facts(file: &str, t: &Table, failed: &[bool], facts: &mut Facts) {
    let (Some(tt), Some(ld)) = (t.col(is_ttft), t.col(is_load)) else { return };
    let (mut cold, mut warm) = (vec![], vec![]);
    for r in (0..t.rows.len()).filter(|&r| !failed[r]) {
        if let (Some(ttft), Some(load)) = (t.num(r, tt), t.num(r, ld)) {
            // load dominates TTFT: more than half of it
            if ttft > 0.0 && load > 0.5 * ttft {
                cold.push(ttft);
            } else {
                warm.push(ttft);
            }
        }
    }
    if cold.is_empty() && warm.is_empty() {
        return;
    }
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    facts.cold_starts.push(ColdStart {
        file: file.into(),
        ttft_column: t.headers[tt].trim().into(),
        load_column: t.headers[ld].trim().into(),
        cold_rows: cold.len(),
        warm_rows: warm.len(),
        cold_mean_ttft: mean(&cold),
        warm_mean_ttft: mean(&warm),
    });
}

fn csv_facts(file: &str, text: &str, facts: &mut Facts) -> Result<(), String> {
    let mut rd =
        csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers: Vec<String> =
        rd.headers().map_err(|e| format!("CSV: {e}"))?.iter().map(String::from).collect();
    if headers.iter().all(|h| h.is_empty()) {
        return Err("CSV: no header row".into());
    }
    let mut rows = vec![];
    for rec in rd.records() {
        let rec = rec.map_err(|e| format!("CSV: {e}"))?;
        rows.push(rec.iter().map(String::from).collect());
    }
    table_facts(file, &Table { headers, rows }, facts);
    Ok(())
}

/// Headings in a Markdown line: one at its start, and any ` ## ` left mid-line when newlines
/// collapsed.
fn headings_in(line: &str) -> usize {
    let is_mark = |t: &str| {
        let hashes = t.len() - t.trim_start_matches('#').len();
        (1..=6).contains(&hashes) && t[hashes..].starts_with(' ')
    };
    let t = line.trim_start();
    let first = usize::from(is_mark(t));
    let rest = t.match_indices(" #").filter(|(i, _)| is_mark(&t[i + 1..])).count();
    first + rest
}

fn md_facts(file: &str, text: &str, facts: &mut Facts) {
    let lines: Vec<&str> = text.lines().collect();
    facts.files.md_headings += lines.iter().map(|l| headings_in(l)).sum::<usize>();
    // a header row may sit at the end of a line whose newlines collapsed ("# Title | a | b |")
    let cells = |l: &str| -> Vec<String> {
        let l = l.find('|').map_or(l, |i| &l[i..]);
        l.trim()
            .trim_start_matches('|')
            .trim_end_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let is_sep = |l: &str| {
        let t = l.trim();
        t.starts_with('|') && t.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
    };
    let mut i = 0;
    let mut n_table = 0;
    while i + 1 < lines.len() {
        if lines[i].contains('|') && is_sep(lines[i + 1]) {
            let headers = cells(lines[i]);
            let mut rows = vec![];
            let mut j = i + 2;
            while j < lines.len() && lines[j].trim().starts_with('|') {
                rows.push(cells(lines[j]));
                j += 1;
            }
            n_table += 1;
            let name =
                if n_table == 1 { file.to_string() } else { format!("{file}#table{n_table}") };
            table_facts(&name, &Table { headers, rows }, facts);
            i = j;
        } else {
            i += 1;
        }
    }
}

fn json_facts(file: &str, text: &str, facts: &mut Facts) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("JSON: {e}"))?;
    if v.as_object().is_some_and(|o| o.is_empty()) || v.as_array().is_some_and(|a| a.is_empty()) {
        facts.gaps.push(Gap {
            path: file.into(),
            kind: "empty file".into(),
            detail: "an empty JSON document".into(),
        });
        return Ok(());
    }
    // path → (values from successful records, failed count)
    let mut acc: BTreeMap<String, (Vec<f64>, usize)> = BTreeMap::new();
    let mut nulls: Vec<String> = vec![];
    walk_json(&v, String::new(), false, &mut acc, &mut nulls);
    let mut any = false;
    for (path, (vals, failed)) in &acc {
        if let Some(s) = series(file, path, vals, *failed) {
            facts.series.push(s);
            any = true;
        }
        if *failed > 0 {
            facts.gaps.push(Gap {
                path: file.into(),
                kind: "failed runs".into(),
                detail: format!("{path}: {failed} failed records"),
            });
        }
    }
    for p in nulls {
        facts.gaps.push(Gap { path: file.into(), kind: "null value".into(), detail: p });
    }
    let _ = any;
    Ok(())
}

/// True for a record (object) that reports an error or whose measurements are all zero.
fn record_failed(o: &serde_json::Map<String, serde_json::Value>) -> bool {
    let err = o.iter().any(|(k, v)| {
        let k = k.to_ascii_lowercase();
        (k == "error" || k == "error_message") && v.as_str().is_some_and(|s| !s.trim().is_empty())
    }) || o.get("success").and_then(|s| s.as_bool()) == Some(false);
    let nums: Vec<f64> =
        o.iter().filter(|(k, _)| is_measurement(k)).filter_map(|(_, v)| json_num(v)).collect();
    err || (!nums.is_empty() && nums.iter().all(|v| *v == 0.0))
}

fn json_num(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => parse_num(s),
        _ => None,
    }
}

fn walk_json(
    v: &serde_json::Value,
    path: String,
    in_failed: bool,
    acc: &mut BTreeMap<String, (Vec<f64>, usize)>,
    nulls: &mut Vec<String>,
) {
    match v {
        serde_json::Value::Object(o) => {
            let failed = in_failed || record_failed(o);
            for (k, child) in o {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                if is_measurement(k) {
                    if child.is_null() {
                        nulls.push(p.clone());
                    } else if let Some(x) = json_num(child) {
                        let e = acc.entry(p.clone()).or_default();
                        if failed {
                            e.1 += 1;
                        } else {
                            e.0.push(x);
                        }
                        continue;
                    }
                }
                walk_json(child, p, failed, acc, nulls);
            }
        }
        serde_json::Value::Array(a) => {
            let p = format!("{path}[]");
            for x in a {
                if let Some(n) = json_num(x) {
                    // a bare array of numbers under a measurement key (e.g. samples)
                    if is_measurement(&path) {
                        acc.entry(p.clone()).or_default().0.push(n);
                    }
                } else {
                    walk_json(x, p.clone(), in_failed, acc, nulls);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurement_names_and_units() {
        assert!(
            is_measurement("tokens_s")
                && is_measurement("Tokens per Second")
                && is_measurement("ttft_s")
        );
        assert!(
            !is_measurement("num_gpu")
                && !is_measurement("prompt")
                && !is_measurement("temperature")
        );
        assert_eq!(unit_of("mean_tokens_s").as_deref(), Some("tok/s"));
        assert_eq!(unit_of("ttft_s").as_deref(), Some("s"));
        assert_eq!(unit_of("Generation Time (ms)").as_deref(), Some("ms"));
    }

    #[test]
    fn numbers_as_artifacts_write_them() {
        assert_eq!(parse_num("\"1,234.5\""), Some(1234.5));
        assert_eq!(parse_num("12%"), Some(12.0));
        assert_eq!(parse_num("n/a"), None);
    }

    #[test]
    fn sample_statistics() {
        let (mean, sd, min, max, p50, p95) = stats(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!((mean, min, max, p50), (2.5, 1.0, 4.0, 2.5));
        assert!((sd - 1.290_994).abs() < 1e-6);
        assert!((p95 - 3.85).abs() < 1e-9);
    }

    #[test]
    fn rfc3339_of_known_instants() {
        let t = |s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
        assert_eq!(rfc3339(t(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(t(1_763_100_000)), "2025-11-14T06:00:00Z");
    }

    #[test]
    fn utf16_csv_is_decoded() {
        let mut b = vec![0xFF, 0xFE];
        for u in "a,tokens_s\nx,5\n".encode_utf16() {
            b.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(decode_text(&b).unwrap(), "a,tokens_s\nx,5\n");
    }
}
