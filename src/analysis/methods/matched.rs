//! Two levels of a factor compared on matched cells: in a design with one run per cell, each run
//! of one level is set against the run of the other at the same levels of every other factor
//! (the same model and context depth), so that a factor that multiplies the measure (depth
//! divides throughput by ten) does not drown the comparison. The effect is the geometric mean
//! of the ratios with a paired t interval on their logarithms; along a numeric factor, the ratio
//! at each level and whether it trends (Spearman's ρ with its exact permutation p).

use crate::analysis::design::{Experiment, Role};
use crate::stats;
use serde::Serialize;
use std::collections::BTreeMap;

/// Level b against level a of one factor, over the cells where both ran.
#[derive(Debug, Clone, Serialize)]
pub struct Matched {
    /// Matched cells.
    pub cells: usize,
    /// Geometric mean of b / a.
    pub ratio: f64,
    /// 95 % interval of the ratio (paired t on the log ratios).
    pub ci: Option<(f64, f64)>,
    pub t: f64,
    pub df: f64,
    pub p: Option<f64>,
    /// The ratio at each level of the one other factor when it is a scale (depth, prompt
    /// length): (name, (level, ratio)).
    pub along: Option<(String, Vec<(String, f64)>)>,
    /// Spearman's ρ of the ratio against that factor and its exact two-sided p.
    pub trend: Option<(f64, f64)>,
}

/// Mean log value of each cell of level `l` of factor `f`, keyed by the other factors' levels.
/// Sessions are not matched on: they say when a run was taken, not how.
fn cell_logs(e: &Experiment, f: usize, l: usize) -> BTreeMap<Vec<usize>, f64> {
    let keyed = others(e, f);
    let mut sums: BTreeMap<Vec<usize>, (f64, usize)> = BTreeMap::new();
    for o in e.obs.iter().filter(|o| o.levels[f] == l) {
        let key: Vec<usize> = keyed.iter().map(|&i| o.levels[i]).collect();
        let s = sums.entry(key).or_default();
        s.0 += o.y.ln();
        s.1 += 1;
    }
    sums.into_iter().map(|(k, (s, n))| (k, s / n as f64)).collect()
}

/// The factors a comparison of factor `f` matches on: the others but sessions.
pub fn others(e: &Experiment, f: usize) -> Vec<usize> {
    (0..e.factors.len()).filter(|&i| i != f && e.factors[i].role != Role::Session).collect()
}

/// Compares level `b` with level `a` of factor `f`; `None` with fewer than two matched cells or
/// a value that is not positive.
pub fn compare(e: &Experiment, f: usize, a: usize, b: usize) -> Option<Matched> {
    if e.obs.iter().any(|o| o.y <= 0.0 || o.y.is_nan()) {
        return None;
    }
    let (la, lb) = (cell_logs(e, f, a), cell_logs(e, f, b));
    let d: Vec<(&Vec<usize>, f64)> =
        la.iter().filter_map(|(k, x)| lb.get(k).map(|y| (k, y - x))).collect();
    let n = d.len();
    if n < 2 {
        return None;
    }
    let logs: Vec<f64> = d.iter().map(|(_, v)| *v).collect();
    let s = stats::Summary::of(&logs)?;
    let df = (n - 1) as f64;
    let se = s.sd / (n as f64).sqrt();
    let (t, p, ci) = if se > 0.0 {
        let t = s.mean / se;
        let h = stats::t_quantile(df, 0.05) * se;
        (t, stats::t_two_sided(t, df), Some(((s.mean - h).exp(), (s.mean + h).exp())))
    } else {
        (f64::NAN, Some(if s.mean == 0.0 { 1.0 } else { 0.0 }), Some((s.mean.exp(), s.mean.exp())))
    };
    let mut m = Matched { cells: n, ratio: s.mean.exp(), ci, t, df, p, along: None, trend: None };
    // along the one other factor, when it is numeric
    if let [g] = others(e, f)[..] {
        let fac = &e.factors[g];
        let scale = super::scaling::is_scale(&fac.name);
        if scale && fac.levels.iter().all(|l| l.num().is_some()) && n >= 3 {
            let mut pts: Vec<(f64, String, f64)> = d
                .iter()
                .map(|(k, v)| {
                    let l = &fac.levels[k[0]];
                    (l.num().unwrap_or(0.0), l.text().to_string(), v.exp())
                })
                .collect();
            pts.sort_by(|x, y| x.0.total_cmp(&y.0));
            let xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
            let ys: Vec<f64> = pts.iter().map(|p| p.2).collect();
            m.trend = spearman_exact(&xs, &ys);
            m.along = Some((fac.name.clone(), pts.into_iter().map(|(_, t, r)| (t, r)).collect()));
        }
    }
    Some(m)
}

/// Ranks (average ranks for ties), 1-based.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|a, b| v[*a].total_cmp(&v[*b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        for k in i..=j {
            r[idx[k]] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    r
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    if sxx == 0.0 || syy == 0.0 {
        f64::NAN
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// Spearman's ρ and its two-sided p over every permutation of `y` (3 to 8 points; the share of
/// orderings at least as extreme); `None` outside that range or without variation.
pub fn spearman_exact(x: &[f64], y: &[f64]) -> Option<(f64, f64)> {
    let n = x.len();
    if !(3..=8).contains(&n) || y.len() != n {
        return None;
    }
    let (rx, ry) = (ranks(x), ranks(y));
    let rho = pearson(&rx, &ry);
    if rho.is_nan() {
        return None;
    }
    let mut perm = ry.clone();
    let (mut hits, mut total) = (0u64, 0u64);
    permute(&mut perm, 0, &mut |p| {
        total += 1;
        if pearson(&rx, p).abs() >= rho.abs() - 1e-12 {
            hits += 1;
        }
    });
    Some((rho, hits as f64 / total as f64))
}

fn permute(v: &mut Vec<f64>, k: usize, visit: &mut dyn FnMut(&[f64])) {
    if k == v.len() {
        visit(v);
        return;
    }
    for i in k..v.len() {
        v.swap(k, i);
        permute(v, k + 1, visit);
        v.swap(k, i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_known_answers() {
        // a perfectly monotone series of 5: 1 of the 120 orderings on each side, p = 2/120
        let (rho, p) =
            spearman_exact(&[0.0, 1.0, 2.0, 3.0, 4.0], &[5.0, 4.0, 3.0, 2.0, 1.0]).unwrap();
        assert!((rho + 1.0).abs() < 1e-12);
        assert!((p - 2.0 / 120.0).abs() < 1e-12);
        // ρ = 0.8 for n = 4 (Σd² = 2): Σd² ≤ 2 in 4 of the 24 orderings (the tables' one-sided
        // P = 0.167), and as many at the other end
        let (rho, p) = spearman_exact(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]).unwrap();
        assert!((rho - 0.8).abs() < 1e-12);
        assert!((p - 8.0 / 24.0).abs() < 1e-12, "{p}");
        assert!(spearman_exact(&[1.0, 2.0], &[1.0, 2.0]).is_none());
    }
}
