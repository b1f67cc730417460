//! The analysis of a folder of benchmark artifacts, as data → model → summary (statsmodels'
//! separation): `readers` turn files into records (one measured run each), `design` groups
//! records into experiments (a measure, the factors that vary, what is held fixed), `methods`
//! choose the analysis each design supports, `findings` read the results as ranked sentences.
//! No model is involved and nothing in the folder is written.
//!
//! Invariants: a reader never analyses, an analysis never reads files, the report never
//! computes; every figure carries the records it came from.

pub mod design;
pub mod findings;
pub mod fmt;
pub mod methods;
pub mod readers;
pub mod record;
pub mod report;
pub mod scan;

use design::{Duplicate, Experiment, Family};
use methods::claims::Claim;
use methods::failures::FailureGroup;
use methods::patterns::ColdStarts;
use methods::Analysis;
use scan::FileEntry;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;

pub use scan::ScanOptions;

/// Everything known about a folder.
#[derive(Debug, Clone, Serialize)]
pub struct Study {
    pub root: String,
    pub files: Vec<FileEntry>,
    pub families: Vec<Family>,
    pub duplicates: Vec<Duplicate>,
    pub experiments: Vec<Experiment>,
    /// One per experiment, in the same order.
    pub analyses: Vec<Analysis>,
    pub cold: Vec<ColdStarts>,
    #[serde(skip)]
    pub cold_set: BTreeSet<(String, usize)>,
    pub failures: Vec<FailureGroup>,
    pub claims: Vec<Claim>,
    /// Every measure of every family (the appendix and catalogue.csv).
    pub catalogue: Vec<methods::catalogue::Row>,
    pub outliers: Vec<methods::catalogue::Outlier>,
    pub findings: Vec<findings::Finding>,
    /// How many of `findings` are Key Findings (they come first).
    pub key_count: usize,
    /// Earliest and latest run time in the data.
    pub span: Option<(i64, i64)>,
    /// Records read (runs and repetitions), valid ones among them.
    pub records: usize,
    pub valid: usize,
}

impl Study {
    /// Files with records, and files read at all.
    pub fn counts(&self) -> (usize, usize) {
        let data = self.files.iter().filter(|f| f.records > 0).count();
        let read = self.files.iter().filter(|f| f.kind != "other").count();
        (data, read)
    }

    /// The Key Findings (at most `MAX_KEY`).
    pub fn key_findings(&self) -> &[findings::Finding] {
        &self.findings[..self.key_count.min(self.findings.len())]
    }

    pub fn experiment(&self, id: &str) -> Option<(&Experiment, &Analysis)> {
        let i = self.experiments.iter().position(|e| e.id == id)?;
        Some((&self.experiments[i], &self.analyses[i]))
    }
}

/// Reads and analyses `root`.
pub fn study(root: &Path, opts: &ScanOptions) -> crate::Result<Study> {
    let sc = scan::scan(root, opts)?;
    let claims_input = sc.reports.clone();
    let (families, duplicates) = design::families(sc.batches);
    let cold: Vec<ColdStarts> =
        families.iter().filter_map(methods::patterns::cold_starts).collect();
    let cold_set: BTreeSet<(String, usize)> =
        cold.iter().flat_map(|c| c.cold.iter().cloned()).collect();
    let mut next = 0;
    let experiments: Vec<Experiment> =
        families.iter().flat_map(|f| design::experiments(f, &cold_set, &mut next)).collect();
    let analyses: Vec<Analysis> = experiments.iter().map(methods::analyse).collect();
    let failures = methods::failures::groups(&families);
    let claims = methods::claims::check(&claims_input, &families);
    let times: Vec<i64> =
        families.iter().flat_map(|f| f.records.iter().filter_map(|r| r.time)).collect();
    let records = families.iter().map(|f| f.records.len()).sum();
    let valid = families.iter().flat_map(|f| &f.records).filter(|r| r.validity.is_ok()).count();
    let mut s = Study {
        root: root.display().to_string(),
        files: sc.files,
        families,
        duplicates,
        experiments,
        analyses,
        cold,
        cold_set,
        failures,
        claims,
        catalogue: vec![],
        outliers: vec![],
        findings: vec![],
        key_count: 0,
        span: times.iter().min().zip(times.iter().max()).map(|(a, b)| (*a, *b)),
        records,
        valid,
    };
    // files whose runs another file holds
    for d in &s.duplicates {
        if let Some(f) = s.files.iter_mut().find(|f| f.path == d.file) {
            f.status = format!("same runs as {}", d.of);
        }
    }
    s.catalogue = methods::catalogue::catalogue(&s.families);
    s.outliers = methods::catalogue::outliers(&s.experiments);
    (s.findings, s.key_count) = findings::all(&s);
    Ok(s)
}
