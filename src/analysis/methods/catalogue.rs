//! The appendix's material: every measure of every family with its statistics and missing
//! values (the measurement catalogue), and the runs that stand far from their cell (outliers by
//! the modified z-score against the cell's median and MAD), which belong in an appendix, not in
//! the findings.

use crate::analysis::design::{Experiment, Family};
use crate::analysis::readers::known_def;
use crate::stats::{self, Summary};
use serde::Serialize;
use std::collections::BTreeSet;

/// One measure of one family.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub family: String,
    pub measure: String,
    pub unit: String,
    /// Valid runs with a value.
    pub n: usize,
    /// Valid runs of the family without a value for it.
    pub missing: usize,
    pub mean: f64,
    pub sd: f64,
    pub min: f64,
    pub max: f64,
    pub cv_percent: Option<f64>,
}

/// A run far from the others of its cell.
#[derive(Debug, Clone, Serialize)]
pub struct Outlier {
    pub experiment: String,
    pub measure: String,
    pub file: String,
    pub locator: String,
    pub value: f64,
    pub cell_median: f64,
    /// Iglewicz and Hoaglin's modified z-score.
    pub z: f64,
}

/// The catalogue of every family's measures.
pub fn catalogue(fams: &[Family]) -> Vec<Row> {
    let mut out = vec![];
    for f in fams {
        let valid: Vec<_> = f.records.iter().filter(|r| r.validity.is_ok()).collect();
        let names: BTreeSet<&String> = valid.iter().flat_map(|r| r.measures.keys()).collect();
        for m in names {
            let v: Vec<f64> =
                valid.iter().filter_map(|r| r.measures.get(m).map(|o| o.value)).collect();
            let Some(s) = Summary::of(&v) else { continue };
            out.push(Row {
                family: f.name.clone(),
                measure: m.clone(),
                unit: known_def(m).map_or("", |d| d.unit()).to_string(),
                n: s.n,
                missing: valid.len() - s.n,
                mean: s.mean,
                sd: s.sd,
                min: s.min,
                max: s.max,
                cv_percent: s.cv_percent(),
            });
        }
    }
    out
}

/// Runs whose modified z-score within their cell exceeds 3.5 (cells of four runs or more).
pub fn outliers(exps: &[Experiment]) -> Vec<Outlier> {
    let mut out = vec![];
    for e in exps {
        for idx in e.cells().values().filter(|c| c.len() >= 4) {
            let v: Vec<f64> = idx.iter().map(|&i| e.obs[i].y).collect();
            let s = Summary::of(&v).unwrap_or_default();
            for &i in idx {
                let o = &e.obs[i];
                if let Some(z) = stats::modified_z(o.y, s.median, s.mad).filter(|z| z.abs() > 3.5) {
                    out.push(Outlier {
                        experiment: e.id.clone(),
                        measure: e.measure.clone(),
                        file: o.file.clone(),
                        locator: o.locator.clone(),
                        value: o.y,
                        cell_median: s.median,
                        z,
                    });
                }
            }
        }
    }
    out.sort_by(|a, b| b.z.abs().total_cmp(&a.z.abs()));
    out
}
