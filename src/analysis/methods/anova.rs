//! Analysis of variance for factorial designs, balanced or not: least squares over dummy-coded
//! factors (nalgebra's SVD, so aliased columns do not break the fit), type II sums of squares
//! by model comparison (statsmodels' `anova_lm(typ=2)`), F-tests against the full model's
//! residual, and each term's share of the total variation (η²).

use nalgebra::{DMatrix, DVector};
use serde::Serialize;

/// One term's line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Factor indices of the term: one for a main effect, two for an interaction.
    pub term: Vec<usize>,
    pub df: f64,
    pub ss: f64,
    pub f: f64,
    pub p: f64,
    /// SS / total SS.
    pub eta2: f64,
}

/// The table.
#[derive(Debug, Clone, Serialize)]
pub struct Anova {
    pub rows: Vec<Row>,
    pub resid_df: f64,
    pub resid_ss: f64,
    pub total_ss: f64,
    pub n: usize,
}

impl Anova {
    pub fn row(&self, term: &[usize]) -> Option<&Row> {
        self.rows.iter().find(|r| r.term == term)
    }
}

/// The least-squares coefficients of `y` on `x` (minimum norm where columns are aliased) and
/// the rank of `x`.
fn solve(x: &DMatrix<f64>, y: &DVector<f64>) -> Option<(DVector<f64>, usize)> {
    let svd = x.clone().svd(true, true);
    let smax = svd.singular_values.iter().cloned().fold(0.0, f64::max);
    let tol = smax * 1e-10 * (x.nrows().max(x.ncols()) as f64);
    let beta = svd.solve(y, tol).ok()?;
    let rank = svd.singular_values.iter().filter(|s| **s > tol).count();
    Some((beta, rank))
}

/// Residual sum of squares and rank of the least-squares fit of `y` on `x`.
fn fit(x: &DMatrix<f64>, y: &DVector<f64>) -> Option<(f64, usize)> {
    let (beta, rank) = solve(x, y)?;
    Some(((y - x * beta).norm_squared(), rank))
}

/// The design matrix of an intercept and `terms` (dummy columns for levels 1.., products for
/// interactions).
fn design(levels: &[Vec<usize>], n_levels: &[usize], terms: &[Vec<usize>]) -> DMatrix<f64> {
    let n = levels.len();
    let mut cols: Vec<Vec<f64>> = vec![vec![1.0; n]];
    for t in terms {
        // every combination of non-baseline levels of the term's factors
        let mut combos: Vec<Vec<usize>> = vec![vec![]];
        for &f in t {
            combos = combos
                .into_iter()
                .flat_map(|c| (1..n_levels[f]).map(move |l| [c.clone(), vec![l]].concat()))
                .collect();
        }
        for c in combos {
            cols.push(
                (0..n)
                    .map(|i| f64::from(t.iter().zip(&c).all(|(&f, &l)| levels[i][f] == l)))
                    .collect(),
            );
        }
    }
    DMatrix::from_fn(n, cols.len(), |i, j| cols[j][i])
}

/// Type II ANOVA of `y` over the factors (`levels[i][f]` is observation i's level of factor f,
/// of `n_levels[f]`) with the given terms; `None` when the fit leaves no residual degree of
/// freedom or there is no variation.
pub fn anova(
    y: &[f64],
    levels: &[Vec<usize>],
    n_levels: &[usize],
    terms: &[Vec<usize>],
) -> Option<Anova> {
    let n = y.len();
    let yv = DVector::from_column_slice(y);
    let mean = y.iter().sum::<f64>() / n as f64;
    let total_ss: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    let (rss, rank) = fit(&design(levels, n_levels, terms), &yv)?;
    let resid_df = n as f64 - rank as f64;
    if resid_df < 1.0 || total_ss <= 0.0 {
        return None;
    }
    // a residual that is rounding noise: the model fits exactly
    let mse = if rss <= total_ss * 1e-12 { 0.0 } else { rss / resid_df };
    let mut rows = vec![];
    for t in terms {
        // the terms that do not contain t, with and without t
        let base: Vec<Vec<usize>> =
            terms.iter().filter(|u| !t.iter().all(|f| u.contains(f))).cloned().collect();
        let mut with = base.clone();
        with.push(t.clone());
        let (r1, k1) = fit(&design(levels, n_levels, &base), &yv)?;
        let (r2, k2) = fit(&design(levels, n_levels, &with), &yv)?;
        let df = k2 as f64 - k1 as f64;
        if df < 1.0 {
            continue;
        }
        let ss = (r1 - r2).max(0.0);
        let f = if mse > 0.0 { ss / df / mse } else { f64::INFINITY };
        let p = crate::stats::f_sf(f, df, resid_df);
        rows.push(Row { term: t.clone(), df, ss, f, p, eta2: ss / total_ss });
    }
    Some(Anova { rows, resid_df, resid_ss: rss, total_ss, n })
}

/// Each level's effect in the additive model of `y` over all the factors (least squares; 0 for
/// each factor's first level): the level's effect adjusted for the others, where cells are
/// missing too.
pub fn main_effects(y: &[f64], levels: &[Vec<usize>], n_levels: &[usize]) -> Option<Vec<Vec<f64>>> {
    let mains: Vec<Vec<usize>> = (0..n_levels.len()).map(|f| vec![f]).collect();
    let (beta, _) = solve(&design(levels, n_levels, &mains), &DVector::from_column_slice(y))?;
    let mut at = 1;
    let mut out = vec![];
    for &k in n_levels {
        let mut v = vec![0.0];
        for _ in 1..k {
            v.push(beta[at]);
            at += 1;
        }
        out.push(v);
    }
    Some(out)
}

/// One-way ANOVA from each group's n, mean and sd (files that keep only aggregates).
pub fn oneway_summaries(groups: &[(usize, f64, f64)]) -> Option<(f64, f64, f64, f64)> {
    let n: usize = groups.iter().map(|g| g.0).sum();
    let k = groups.len();
    if k < 2 || n <= k {
        return None;
    }
    let grand = groups.iter().map(|g| g.0 as f64 * g.1).sum::<f64>() / n as f64;
    let ssb: f64 = groups.iter().map(|g| g.0 as f64 * (g.1 - grand).powi(2)).sum();
    let ssw: f64 = groups.iter().map(|g| (g.0 as f64 - 1.0) * g.2.powi(2)).sum();
    let (d1, d2) = ((k - 1) as f64, (n - k) as f64);
    let f = if ssw > 0.0 { ssb / d1 / (ssw / d2) } else { f64::INFINITY };
    Some((f, d1, d2, crate::stats::f_sf(f, d1, d2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Montgomery, Design and Analysis of Experiments, Example 5.1 (battery life by material
    /// and temperature, four replicates); the sums of squares are the book's Table 5.5, the F
    /// and p values statsmodels 0.15.0's `anova_lm(ols("y ~ C(m) * C(t)"), typ=2)`.
    fn battery() -> (Vec<f64>, Vec<Vec<usize>>) {
        let data: [[[f64; 4]; 3]; 3] = [
            [[130., 155., 74., 180.], [34., 40., 80., 75.], [20., 70., 82., 58.]],
            [[150., 188., 159., 126.], [136., 122., 106., 115.], [25., 70., 58., 45.]],
            [[138., 110., 168., 160.], [174., 120., 150., 139.], [96., 104., 82., 60.]],
        ];
        let (mut y, mut lv) = (vec![], vec![]);
        for (m, temps) in data.iter().enumerate() {
            for (t, reps) in temps.iter().enumerate() {
                for v in reps {
                    y.push(*v);
                    lv.push(vec![m, t]);
                }
            }
        }
        (y, lv)
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-12)
    }

    #[test]
    fn two_way_with_interaction_matches_the_textbook() {
        let (y, lv) = battery();
        let a = anova(&y, &lv, &[3, 3], &[vec![0], vec![1], vec![0, 1]]).unwrap();
        let ss: Vec<f64> = a.rows.iter().map(|r| r.ss).collect();
        for (x, want) in ss.iter().zip([10683.722222, 39118.722222, 9613.777778]) {
            assert!(close(*x, want, 1e-9), "{ss:?}");
        }
        assert!(close(a.resid_ss, 18230.75, 1e-9) && a.resid_df == 27.0);
        assert!(close(a.rows[0].f, 7.911372, 1e-6) && close(a.rows[0].p, 1.976083e-03, 1e-5));
        assert!(close(a.rows[2].f, 3.559535, 1e-6) && close(a.rows[2].p, 1.861117e-02, 1e-5));
    }

    #[test]
    fn additive_and_unbalanced_match_statsmodels() {
        let (y, lv) = battery();
        let a = anova(&y, &lv, &[3, 3], &[vec![0], vec![1]]).unwrap();
        assert!(close(a.rows[1].f, 21.775919, 1e-6) && a.resid_df == 31.0);
        // rows 0, 5, 9 and 20 dropped: statsmodels 0.15.0, anova_lm(ols("y ~ C(m) + C(t)"), typ=2)
        let keep: Vec<usize> = (0..36).filter(|i| ![0, 5, 9, 20].contains(i)).collect();
        let y2: Vec<f64> = keep.iter().map(|&i| y[i]).collect();
        let lv2: Vec<Vec<usize>> = keep.iter().map(|&i| lv[i].clone()).collect();
        let a = anova(&y2, &lv2, &[3, 3], &[vec![0], vec![1]]).unwrap();
        assert!(close(a.rows[0].ss, 8736.862854, 1e-8), "{:?}", a.rows);
        assert!(close(a.rows[1].ss, 32257.925986, 1e-8));
        assert!(close(a.resid_ss, 22889.455328, 1e-8));
        assert!(close(a.rows[0].p, 0.012718, 1e-3));
    }

    #[test]
    fn main_effects_adjust_for_a_missing_cell() {
        // y = a + b exactly, with the cell (a1, b2) missing: the effects are still 10 and 1, 2
        let lv = vec![vec![0, 0], vec![0, 1], vec![0, 2], vec![1, 0], vec![1, 1]];
        let y = [0.0, 1.0, 2.0, 10.0, 11.0];
        let fx = main_effects(&y, &lv, &[2, 3]).unwrap();
        assert!(close(fx[0][1], 10.0, 1e-9) && close(fx[1][1], 1.0, 1e-9));
        assert!(close(fx[1][2], 2.0, 1e-9) && fx[0][0] == 0.0);
    }

    #[test]
    fn no_residual_freedom_is_none() {
        assert!(anova(&[1.0, 2.0], &[vec![0], vec![1]], &[2], &[vec![0]]).is_none());
    }
}
