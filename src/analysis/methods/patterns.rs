//! Patterns over events: cold starts. A run whose load-bearing measure (load time, else TTFT,
//! else total time) stands far above its file's typical value is a cold start; what matters is
//! when they happen — at the first request after a setting that forces a reload changed — so they
//! are reported as one pattern per measure, and left out of that measure's comparisons.

use crate::analysis::design::Family;
use crate::analysis::readers::{columns, known_def};
use crate::analysis::record::Record;
use crate::stats::{self, median};
use serde::Serialize;
use std::collections::BTreeSet;

/// Cold starts of one family.
#[derive(Debug, Clone, Serialize)]
pub struct ColdStarts {
    pub family: usize,
    /// The measure that shows them.
    pub measure: String,
    /// (file, order) of each cold record.
    pub cold: Vec<(String, usize)>,
    /// Records with the measure (valid).
    pub rows: usize,
    pub cold_median: f64,
    pub warm_median: f64,
    /// Settings whose every change (and the file's first run) coincides with a cold start.
    pub triggers: Vec<String>,
    /// Cold starts that are the first run of their file or follow a change of a trigger.
    pub at_changes: usize,
    /// Cold starts that are the first run of their file.
    pub first_of_file: usize,
}

/// The measure that carries loading: `load…`, else TTFT, else a total.
fn load_measure(fam: &Family) -> Option<String> {
    let names: BTreeSet<&String> = fam.records.iter().flat_map(|r| r.measures.keys()).collect();
    let pick = |pred: &dyn Fn(&str) -> bool| {
        names.iter().find(|n| pred(&n.to_ascii_lowercase())).map(|n| n.to_string())
    };
    pick(&|n| n.contains("load") && known_def(n).is_some_and(|d| d.includes_load))
        .or_else(|| pick(&|n| n.contains("ttft") || n.contains("first_token")))
        .or_else(|| pick(&|n| n.contains("total") && known_def(n).is_some_and(|d| d.includes_load)))
}

/// Finds the cold starts of a family.
pub fn cold_starts(fam: &Family) -> Option<ColdStarts> {
    let m = load_measure(fam)?;
    let mut cold = vec![];
    let mut cold_v = vec![];
    let mut warm_v = vec![];
    let mut rows = 0;
    let mut trig_hits: Vec<(String, usize, usize)> = vec![];
    let mut files: Vec<&String> = fam.files.iter().collect();
    files.dedup();
    let mut change_sets: Vec<(String, BTreeSet<(String, usize)>)> = vec![];
    let mut firsts: BTreeSet<(String, usize)> = BTreeSet::new();
    for file in files {
        let mut recs: Vec<&Record> = fam
            .records
            .iter()
            .filter(|r| &r.file == file && r.validity.is_ok() && r.measures.contains_key(&m))
            .collect();
        recs.sort_by_key(|r| r.order);
        if recs.len() < 4 {
            continue;
        }
        rows += recs.len();
        firsts.insert((recs[0].file.clone(), recs[0].order));
        let v: Vec<f64> = recs.iter().map(|r| r.measures[&m].value).collect();
        let med = median(&v);
        let s = stats::Summary::of(&v).unwrap_or_default();
        for (r, x) in recs.iter().zip(&v) {
            let far = match stats::modified_z(*x, med, s.mad) {
                Some(z) => z > 3.5 && *x >= 3.0 * med,
                None => *x >= 10.0 * med,
            };
            if far && med > 0.0 {
                cold.push((r.file.clone(), r.order));
                cold_v.push(*x);
            } else {
                warm_v.push(*x);
            }
        }
        // where each configuration factor changes (and the first run)
        let names: BTreeSet<&String> = recs.iter().flat_map(|r| r.factors.keys()).collect();
        for n in names {
            if columns::factor(n) == Some(true) {
                continue;
            }
            let mut set = BTreeSet::new();
            for (i, r) in recs.iter().enumerate() {
                if i == 0 || recs[i - 1].factors.get(n) != r.factors.get(n) {
                    set.insert((r.file.clone(), r.order));
                }
            }
            match change_sets.iter_mut().find(|(k, _)| k == n) {
                Some((_, s)) => s.extend(set),
                None => change_sets.push((n.clone(), set)),
            }
        }
    }
    if cold.len() < 2 {
        return None;
    }
    let cold_set: BTreeSet<(String, usize)> = cold.iter().cloned().collect();
    for (n, set) in &change_sets {
        let hit = set.intersection(&cold_set).count();
        trig_hits.push((n.clone(), hit, set.len()));
    }
    // a trigger: it changes more often than once per file, and most of its changes are cold
    let n_files = fam.files.len().max(1);
    let triggers: Vec<String> = trig_hits
        .iter()
        .filter(|(_, hit, all)| *all > n_files && *hit * 4 >= *all * 3)
        .map(|(n, _, _)| n.clone())
        .collect();
    let mut at: BTreeSet<(String, usize)> = BTreeSet::new();
    for (n, set) in &change_sets {
        if triggers.contains(n) {
            at.extend(set.intersection(&cold_set).cloned());
        }
    }
    Some(ColdStarts {
        family: fam.id,
        measure: m,
        at_changes: at.len(),
        first_of_file: cold_set.intersection(&firsts).count(),
        rows,
        cold_median: median(&cold_v),
        warm_median: median(&warm_v),
        triggers,
        cold,
    })
}
