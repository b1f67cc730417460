//! What an experiment's design cannot tell apart, said beside its results: levels run in a
//! fixed order (a drift over the session reads as an effect), repeats that sit in one session
//! (pseudo-replication: their spread understates run-to-run variation), and settings whose levels
//! each ran in a different session (confounded with the session).

use super::Analysis;
use crate::analysis::design::{Experiment, Role};
use std::collections::{BTreeMap, BTreeSet};

/// The caveats of an experiment, for its significant treatment effects.
pub fn all(e: &Experiment, a: &Analysis) -> Vec<String> {
    let mut out = vec![];
    for eff in a.effects.iter().filter(|x| x.role == Role::Treatment && x.significant()) {
        let f = eff.factor;
        if let Some(c) = fixed_order(e, f) {
            out.push(c);
        }
        if let Some(c) = one_session_per_level(e, f) {
            out.push(c);
        }
    }
    if e.obs.iter().filter(|o| o.locator.contains(" sample ")).count() * 2 > e.obs.len() {
        out.push(
            "the repetitions are back-to-back samples of one run (llama-bench's -r), so intervals reflect within-run noise only"
                .into(),
        );
    }
    out.dedup();
    out
}

/// Whether factor f's levels ran in sorted blocks in every file (one change per new level).
fn fixed_order(e: &Experiment, f: usize) -> Option<String> {
    let mut by_file: BTreeMap<&str, Vec<(usize, usize)>> = BTreeMap::new();
    for o in &e.obs {
        by_file.entry(&o.file).or_default().push((o.order, o.levels[f]));
    }
    let mut sorted_blocks = 0;
    let mut multi = 0;
    for seq in by_file.values_mut() {
        seq.sort();
        let levels: Vec<usize> = seq.iter().map(|x| x.1).collect();
        let distinct: BTreeSet<usize> = levels.iter().copied().collect();
        if distinct.len() < 2 {
            continue;
        }
        multi += 1;
        let changes = levels.windows(2).filter(|w| w[0] != w[1]).count();
        if changes + 1 == distinct.len() {
            sorted_blocks += 1;
        }
    }
    (multi > 0 && sorted_blocks == multi).then(|| {
        format!(
            "`{}` levels ran one after another in a fixed order, never interleaved: a drift during the run would read as an effect of `{}`",
            e.factors[f].name, e.factors[f].name
        )
    })
}

/// Whether each level of factor f comes from its own file (session) and no file holds two.
fn one_session_per_level(e: &Experiment, f: usize) -> Option<String> {
    let mut files: BTreeMap<usize, BTreeSet<&str>> = BTreeMap::new();
    for o in &e.obs {
        files.entry(o.levels[f]).or_default().insert(&o.file);
    }
    let all: BTreeSet<&str> = e.obs.iter().map(|o| o.file.as_str()).collect();
    let separate =
        files.values().all(|s| s.len() == 1) && files.len() == all.len() && all.len() >= 2;
    let repeats = e.obs.len() > files.len();
    (separate && repeats).then(|| {
        format!(
            "each `{}` level's runs come from one file, taken in one session: the comparison is between sessions as much as between levels, and the repeats within a session understate run-to-run variation (pseudo-replication)",
            e.factors[f].name
        )
    })
}
