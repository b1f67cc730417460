//! Analyses chosen by the design. Two levels with repeats: Welch's t-test with the U test beside
//! it (benchstat). k levels: one-way ANOVA and Kruskal–Wallis, pairs by Welch with Holm's
//! correction. Several factors, or one with workload blocks or sessions: a type II ANOVA of the
//! additive model (with one run per cell, its F-tests are the ones the design allows) plus
//! two-factor interactions where cells repeat, each factor's share of the variation (η²), and
//! its levels' means with pairs compared as above. Numeric scale factors get the scaling view;
//! fixed run orders, pseudo-replication and session confounds are named.

pub mod anova;
pub mod catalogue;
pub mod caveats;
pub mod claims;
pub mod failures;
pub mod matched;
pub mod patterns;
pub mod scaling;

use super::design::{Experiment, Role};
use super::record::Direction;
use crate::stats::{self, KruskalWallis, MannWhitney, Summary, Welch};
use serde::Serialize;

/// α of every test.
pub const ALPHA: f64 = 0.05;

/// The statistics of one level of a factor (marginal: over every other factor's levels).
#[derive(Debug, Clone, Serialize)]
pub struct LevelStat {
    pub level: String,
    pub n: usize,
    pub mean: f64,
    pub sd: f64,
    /// Student-t 95 % interval of the mean (n ≥ 2).
    pub ci95: Option<(f64, f64)>,
}

/// Two levels compared.
#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    /// Index of the baseline and the candidate level.
    pub a: usize,
    pub b: usize,
    /// (mean b − mean a) / mean a × 100.
    pub change_pct: f64,
    /// 95 % interval of the difference, as a percentage of mean a.
    pub ci_pct: Option<(f64, f64)>,
    pub welch: Option<Welch>,
    pub mann_whitney: Option<MannWhitney>,
    /// Holm-adjusted p over the factor's pairs.
    pub p_holm: Option<f64>,
    /// The comparison on matched cells (designs with one run per cell), which the change and
    /// its interval then come from.
    pub matched: Option<matched::Matched>,
}

/// What one factor does to the measure.
#[derive(Debug, Clone, Serialize)]
pub struct Effect {
    pub factor: usize,
    pub name: String,
    pub role: Role,
    pub levels: Vec<LevelStat>,
    /// Best and worst level by the measure's direction.
    pub best: usize,
    pub worst: usize,
    /// The test of the factor: `Welch`, `one-way ANOVA`, `ANOVA (additive)`, …, its statistic,
    /// degrees of freedom and p.
    pub test: String,
    pub stat: f64,
    pub df: (f64, f64),
    pub p: Option<f64>,
    /// Share of the total variation it explains.
    pub eta2: Option<f64>,
    pub kruskal: Option<KruskalWallis>,
    /// Best against worst, and the pairs (Holm-corrected) when there are more than two levels.
    pub pairs: Vec<Pair>,
}

impl Effect {
    pub fn significant(&self) -> bool {
        self.p.is_some_and(|p| p < ALPHA)
    }

    /// The best-vs-worst pair.
    pub fn extreme(&self) -> Option<&Pair> {
        self.pairs.iter().find(|p| p.a == self.worst && p.b == self.best)
    }
}

/// An interaction of two factors (cells repeat).
#[derive(Debug, Clone, Serialize)]
pub struct Interaction {
    pub a: String,
    pub b: String,
    pub f: f64,
    pub df: (f64, f64),
    pub p: f64,
    pub eta2: f64,
}

/// Everything computed for one experiment.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub experiment: String,
    /// `two levels`, `k levels`, `factorial`, `blocks`, `one condition`.
    pub design: String,
    pub n: usize,
    pub cells: usize,
    /// Fewest and most observations in a cell.
    pub reps: (usize, usize),
    pub effects: Vec<Effect>,
    pub interactions: Vec<Interaction>,
    /// Whether the F-tests come from the additive model (one run per cell).
    pub additive: bool,
    pub scaling: Vec<scaling::Scaling>,
    pub caveats: Vec<String>,
    /// Mean, sd and CV of the whole experiment.
    pub overall: Summary,
}

/// Statistics of one sample as a level.
fn level_stat(name: &str, v: &[f64]) -> LevelStat {
    let s = Summary::of(v).unwrap_or_default();
    let ci95 = (s.n >= 2).then(|| {
        let h = stats::t_quantile((s.n - 1) as f64, 0.05) * s.sd / (s.n as f64).sqrt();
        (s.mean - h, s.mean + h)
    });
    LevelStat { level: name.to_string(), n: s.n, mean: s.mean, sd: s.sd, ci95 }
}

/// Compares level b against level a.
pub fn pair(a: usize, b: usize, va: &[f64], vb: &[f64]) -> Pair {
    let (ma, mb) = (mean(va), mean(vb));
    let welch = stats::welch(va, vb);
    // an interval reaching below -100 % of a positive measure says only that there are too few
    // runs: it is not stated
    let ci_pct = welch
        .and_then(|w| (ma.abs() > 0.0).then(|| (w.ci95.0 / ma * 100.0, w.ci95.1 / ma * 100.0)))
        .filter(|(lo, _)| *lo > -100.0 || va.iter().chain(vb).any(|v| *v <= 0.0));
    Pair {
        a,
        b,
        change_pct: if ma.abs() > 0.0 { (mb - ma) / ma * 100.0 } else { 0.0 },
        ci_pct,
        welch,
        mann_whitney: stats::mann_whitney(va, vb),
        p_holm: None,
        matched: None,
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Values of each level of factor f.
fn groups(e: &Experiment, f: usize) -> Vec<Vec<f64>> {
    let mut g = vec![vec![]; e.factors[f].levels.len()];
    for o in &e.obs {
        g[o.levels[f]].push(o.y);
    }
    g
}

/// Best and worst level indices by the direction (neutral measures: highest as "best").
fn best_worst(stats: &[LevelStat], dir: Direction) -> (usize, usize) {
    let idx: Vec<usize> = (0..stats.len()).filter(|&i| stats[i].n > 0).collect();
    let by = |i: &usize| stats[*i].mean;
    let hi = idx.iter().copied().max_by(|a, b| by(a).total_cmp(&by(b))).unwrap_or(0);
    let lo = idx.iter().copied().min_by(|a, b| by(a).total_cmp(&by(b))).unwrap_or(0);
    match dir {
        Direction::Lower => (lo, hi),
        _ => (hi, lo),
    }
}

/// Pairs of a factor: best vs worst always; all pairs (Holm) for up to 8 levels.
fn pairs(g: &[Vec<f64>], best: usize, worst: usize) -> Vec<Pair> {
    let k = g.len();
    let mut out = vec![];
    if k <= 8 {
        for a in 0..k {
            for b in a + 1..k {
                if g[a].is_empty() || g[b].is_empty() {
                    continue;
                }
                // each pair written from the worse level to the better one when they are the extremes
                let (x, y) = if a == best && b == worst { (b, a) } else { (a, b) };
                out.push(pair(x, y, &g[x], &g[y]));
            }
        }
        let ps: Vec<f64> = out.iter().map(|p| p.welch.map_or(1.0, |w| w.p)).collect();
        for (p, adj) in out.iter_mut().zip(stats::holm(&ps)) {
            if p.welch.is_some() {
                p.p_holm = Some(adj);
            }
        }
    }
    if !out.iter().any(|p| p.a == worst && p.b == best) && best != worst {
        out.push(pair(worst, best, &g[worst], &g[best]));
    }
    out
}

/// Analyses one experiment.
pub fn analyse(e: &Experiment) -> Analysis {
    let y: Vec<f64> = e.obs.iter().map(|o| o.y).collect();
    let cells = e.cells();
    let reps = (
        cells.values().map(Vec::len).min().unwrap_or(0),
        cells.values().map(Vec::len).max().unwrap_or(0),
    );
    let mut a = Analysis {
        experiment: e.id.clone(),
        design: String::new(),
        n: e.obs.len(),
        cells: cells.len(),
        reps,
        effects: vec![],
        interactions: vec![],
        additive: false,
        scaling: vec![],
        caveats: vec![],
        overall: Summary::of(&y).unwrap_or_default(),
    };
    let nf = e.factors.len();
    if nf == 0 {
        a.design = "one condition".into();
    } else if nf == 1 {
        one_factor(e, &mut a);
    } else {
        factorial(e, &mut a);
    }
    a.scaling = scaling::all(e);
    a.caveats = caveats::all(e, &a);
    a
}

fn one_factor(e: &Experiment, a: &mut Analysis) {
    let g = groups(e, 0);
    let f = &e.factors[0];
    let k = f.levels.len();
    a.design = if f.role == Role::Treatment {
        if k == 2 {
            "two levels"
        } else {
            "k levels"
        }
    } else {
        "sessions"
    }
    .into();
    let stats: Vec<LevelStat> =
        f.levels.iter().zip(&g).map(|(l, v)| level_stat(l.text(), v)).collect();
    let (best, worst) = best_worst(&stats, e.def.direction);
    let mut eff = Effect {
        factor: 0,
        name: f.name.clone(),
        role: f.role,
        levels: stats,
        best,
        worst,
        test: String::new(),
        stat: f64::NAN,
        df: (f64::NAN, f64::NAN),
        p: None,
        eta2: None,
        kruskal: None,
        pairs: vec![],
    };
    if let Some(sums) = level_summaries(e, &g) {
        // levels as summaries (mean ± sd of n): Welch / one-way ANOVA from the summaries
        for (i, s) in sums.iter().enumerate() {
            eff.levels[i].n = s.0;
            eff.levels[i].sd = s.2;
        }
        if let Some((fv, d1, d2, p)) = anova::oneway_summaries(&sums) {
            eff.test = "one-way ANOVA (from summaries)".into();
            eff.stat = fv;
            eff.df = (d1, d2);
            eff.p = Some(p);
        }
        let summ = |i: usize| Summary {
            n: sums[i].0,
            mean: sums[i].1,
            sd: sums[i].2,
            ..Default::default()
        };
        let w = stats::welch_summaries(&summ(worst), &summ(best));
        let ma = sums[worst].1;
        eff.pairs.push(Pair {
            a: worst,
            b: best,
            change_pct: if ma != 0.0 { (sums[best].1 - ma) / ma * 100.0 } else { 0.0 },
            ci_pct: w.map(|w| (w.ci95.0 / ma * 100.0, w.ci95.1 / ma * 100.0)),
            welch: w,
            mann_whitney: None,
            p_holm: None,
            matched: None,
        });
        a.effects.push(eff);
        return;
    }
    eff.pairs = pairs(&g, best, worst);
    eff.kruskal = stats::kruskal_wallis(&g);
    if k == 2 {
        if let Some(w) = eff.pairs[0].welch {
            eff.test = "Welch t-test".into();
            eff.stat = w.t;
            eff.df = (w.df, f64::NAN);
            eff.p = Some(w.p);
        }
    } else {
        let lv: Vec<Vec<usize>> = e.obs.iter().map(|o| o.levels.clone()).collect();
        let y: Vec<f64> = e.obs.iter().map(|o| o.y).collect();
        if let Some(t) = anova::anova(&y, &lv, &[k], &[vec![0]]) {
            if let Some(r) = t.rows.first() {
                eff.test = "one-way ANOVA".into();
                eff.stat = r.f;
                eff.df = (r.df, t.resid_df);
                eff.p = Some(r.p);
                eff.eta2 = Some(r.eta2);
            }
        }
    }
    a.effects.push(eff);
}

/// Each level of a one-factor experiment as (n, mean, sd) where some level is known only as a
/// summary (mean ± sd of n runs) and every other is one too or has runs enough of its own: the
/// tests then run from the summaries, as they would from the runs behind them.
fn level_summaries(e: &Experiment, g: &[Vec<f64>]) -> Option<Vec<(usize, f64, f64)>> {
    let summary = |o: &super::design::Ob| o.n.is_some_and(|n| n >= 2) && o.sd.is_some();
    if !e.obs.iter().any(summary) {
        return None;
    }
    (0..g.len())
        .map(|l| {
            let obs: Vec<&super::design::Ob> = e.obs.iter().filter(|o| o.levels[0] == l).collect();
            match obs[..] {
                [o] if summary(o) => Some((o.n?, o.y, o.sd?)),
                _ if obs.len() >= 2 && !obs.iter().any(|o| summary(o)) => {
                    let s = Summary::of(&g[l])?;
                    Some((s.n, s.mean, s.sd))
                }
                _ => None,
            }
        })
        .collect()
}

fn factorial(e: &Experiment, a: &mut Analysis) {
    let nf = e.factors.len();
    let n_levels: Vec<usize> = e.factors.iter().map(|f| f.levels.len()).collect();
    let lv: Vec<Vec<usize>> = e.obs.iter().map(|o| o.levels.clone()).collect();
    let y: Vec<f64> = e.obs.iter().map(|o| o.y).collect();
    let treatments = e.treatments();
    a.design = if treatments.len() >= 2 { "factorial" } else { "blocks" }.into();
    let mains: Vec<Vec<usize>> = (0..nf).map(|f| vec![f]).collect();
    // interactions among treatments when most cells repeat and the model still leaves freedom
    let replicated = a.reps.0 >= 2 || (a.reps.1 >= 2 && a.cells * 2 <= e.obs.len());
    let mut terms = mains.clone();
    if replicated {
        for (i, &x) in treatments.iter().enumerate() {
            for &z in &treatments[i + 1..] {
                terms.push(vec![x, z]);
            }
        }
    }
    // one run per cell of positive values: levels compared on matched cells, the F-tests on
    // logarithms, since the factors multiply the measure (depth divides throughput)
    let logs = a.reps.1 == 1 && y.iter().all(|v| *v > 0.0);
    let ln: Vec<f64> = y.iter().map(|v| v.ln()).collect();
    let yy = if logs { &ln } else { &y };
    let mut table = anova::anova(yy, &lv, &n_levels, &terms);
    if table.is_none() && terms.len() > nf {
        table = anova::anova(yy, &lv, &n_levels, &mains);
        terms = mains.clone();
    }
    a.additive = terms.len() == nf;
    // levels ranked by their effects adjusted for the settings (sessions left out: a level
    // that ran in a session of its own would have its effect split with the session)
    let kept: Vec<usize> = (0..nf).filter(|&f| e.factors[f].role != Role::Session).collect();
    let adjusted = if logs {
        let klv: Vec<Vec<usize>> =
            lv.iter().map(|l| kept.iter().map(|&f| l[f]).collect()).collect();
        let kn: Vec<usize> = kept.iter().map(|&f| n_levels[f]).collect();
        anova::main_effects(&ln, &klv, &kn).map(|fx| {
            (0..nf)
                .map(|f| kept.iter().position(|&k| k == f).map(|i| fx[i].clone()))
                .collect::<Vec<_>>()
        })
    } else {
        None
    };
    for f in 0..nf {
        let g = groups(e, f);
        let mut stats: Vec<LevelStat> =
            e.factors[f].levels.iter().zip(&g).map(|(l, v)| level_stat(l.text(), v)).collect();
        let (mut best, mut worst) = best_worst(&stats, e.def.direction);
        let mut pairs = vec![];
        if let Some(fx) = adjusted.as_ref().and_then(|v| v[f].as_ref()) {
            // marginal intervals span the other factors' levels: not shown
            stats.iter_mut().for_each(|s| s.ci95 = None);
            (best, worst) = ranked(fx, &g, e.def.direction);
            pairs = matched_pairs(e, f, fx, best, worst);
        }
        if pairs.is_empty() {
            pairs = self::pairs(&g, best, worst);
        }
        let row = table.as_ref().and_then(|t| t.row(&[f]).map(|r| (r.clone(), t.resid_df)));
        let mut eff = Effect {
            factor: f,
            name: e.factors[f].name.clone(),
            role: e.factors[f].role,
            levels: stats,
            best,
            worst,
            test: match (a.additive, logs) {
                (true, true) => "ANOVA of log values, additive model (type II)",
                (true, false) => "ANOVA, additive model (type II)",
                _ => "ANOVA with interactions (type II)",
            }
            .into(),
            stat: f64::NAN,
            df: (f64::NAN, f64::NAN),
            p: None,
            eta2: None,
            kruskal: stats::kruskal_wallis(&g),
            pairs,
        };
        if let Some((r, rdf)) = row {
            eff.stat = r.f;
            eff.df = (r.df, rdf);
            eff.p = Some(r.p);
            eff.eta2 = Some(r.eta2);
        }
        a.effects.push(eff);
    }
    if let Some(t) = &table {
        for r in t.rows.iter().filter(|r| r.term.len() == 2) {
            a.interactions.push(Interaction {
                a: e.factors[r.term[0]].name.clone(),
                b: e.factors[r.term[1]].name.clone(),
                f: r.f,
                df: (r.df, t.resid_df),
                p: r.p,
                eta2: r.eta2,
            });
        }
    }
}

/// Best and worst levels by their adjusted effects (levels without runs never chosen).
fn ranked(fx: &[f64], g: &[Vec<f64>], dir: Direction) -> (usize, usize) {
    let idx: Vec<usize> = (0..fx.len()).filter(|&i| !g[i].is_empty()).collect();
    let hi = idx.iter().copied().max_by(|a, b| fx[*a].total_cmp(&fx[*b])).unwrap_or(0);
    let lo = idx.iter().copied().min_by(|a, b| fx[*a].total_cmp(&fx[*b])).unwrap_or(0);
    match dir {
        Direction::Lower => (lo, hi),
        _ => (hi, lo),
    }
}

/// A factor's pairs on matched cells, each from the level with the smaller adjusted effect to
/// the larger (worst to best for the extremes), Holm-corrected; empty where a pair does not
/// match on two cells.
fn matched_pairs(e: &Experiment, f: usize, fx: &[f64], best: usize, worst: usize) -> Vec<Pair> {
    let k = fx.len();
    let mut out = vec![];
    let mut order: Vec<(usize, usize)> = vec![(worst, best)];
    if k <= 8 {
        for a in 0..k {
            for b in a + 1..k {
                if (a, b) != (worst.min(best), worst.max(best)) {
                    order.push(if fx[a] <= fx[b] { (a, b) } else { (b, a) });
                }
            }
        }
    }
    for (a, b) in order {
        let Some(m) = matched::compare(e, f, a, b) else {
            if (a, b) == (worst, best) {
                return vec![];
            }
            continue;
        };
        out.push(Pair {
            a,
            b,
            change_pct: (m.ratio - 1.0) * 100.0,
            ci_pct: m.ci.map(|(lo, hi)| ((lo - 1.0) * 100.0, (hi - 1.0) * 100.0)),
            welch: None,
            mann_whitney: None,
            p_holm: None,
            matched: Some(m),
        });
    }
    let ps: Vec<f64> =
        out.iter().map(|p| p.matched.as_ref().and_then(|m| m.p).unwrap_or(1.0)).collect();
    for (p, adj) in out.iter_mut().zip(stats::holm(&ps)) {
        p.p_holm = Some(adj);
    }
    out
}
