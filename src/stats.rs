//! Statistics for small benchmark samples: summaries, Welch's t-test with the 95 % interval of the
//! difference of means, the Mann–Whitney U test, and robust (median/MAD) spread.
//!
//! benchstat's two assumptions (golang.org/x/perf/benchmath: `AssumeNormal` compares means with
//! Welch's t-test, `AssumeNothing` medians with the U test) are both computed; the report's verdict
//! uses Welch's test because with three or fewer runs per side the U test cannot reach p < 0.05 at
//! all (its smallest two-sided p for 3 vs 3 is 0.1), which is the common case in these artifacts.
//! The distributions come from statrs; the tests' arithmetic is written out here, a few lines each.

use statrs::distribution::{ChiSquared, ContinuousCDF, FisherSnedecor, Normal, StudentsT};

/// Descriptive statistics of one sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 for n = 1.
    pub sd: f64,
    pub median: f64,
    /// Median absolute deviation from the median (unscaled).
    pub mad: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    /// Statistics of `v`; `None` when it is empty.
    pub fn of(v: &[f64]) -> Option<Summary> {
        if v.is_empty() {
            return None;
        }
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let sd = if n > 1 {
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        let median = median(v);
        let dev: Vec<f64> = v.iter().map(|x| (x - median).abs()).collect();
        let (min, max) =
            v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
        Some(Summary { n, mean, sd, median, mad: self::median(&dev), min, max })
    }

    /// Coefficient of variation in percent; `None` when the mean is zero or n < 2.
    pub fn cv_percent(&self) -> Option<f64> {
        (self.n > 1 && self.mean.abs() > f64::EPSILON).then(|| self.sd / self.mean.abs() * 100.0)
    }
}

/// The median (mean of the two middle values for even n); NaN for an empty slice.
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// Iglewicz and Hoaglin's modified z-score, 0.6745 (x − median) / MAD; `None` when MAD is 0.
pub fn modified_z(x: f64, median: f64, mad: f64) -> Option<f64> {
    (mad > 0.0).then(|| 0.6745 * (x - median) / mad)
}

/// The 1 − α/2 quantile of Student's t with `df` degrees of freedom.
pub fn t_quantile(df: f64, two_sided_alpha: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => t.inverse_cdf(1.0 - two_sided_alpha / 2.0),
        Err(_) => f64::NAN,
    }
}

/// The two-sided p of Student's t statistic `t` with `df` degrees of freedom.
pub fn t_two_sided(t: f64, df: f64) -> Option<f64> {
    let dist = StudentsT::new(0.0, 1.0, df).ok()?;
    Some((2.0 * dist.sf(t.abs())).min(1.0))
}

/// Welch's unequal-variance t-test of `b` against `a` (the difference is mean(b) − mean(a)).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Welch {
    pub diff: f64,
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// 95 % confidence interval of the difference.
    pub ci95: (f64, f64),
}

/// Welch's test; `None` when either side has fewer than two values.
///
/// Both sides without spread give p = 1 for equal means and p = 0 otherwise (the difference is
/// then exact).
pub fn welch(a: &[f64], b: &[f64]) -> Option<Welch> {
    welch_summaries(&Summary::of(a)?, &Summary::of(b)?)
}

/// Welch's test from each side's n, mean and sd.
pub fn welch_summaries(sa: &Summary, sb: &Summary) -> Option<Welch> {
    if sa.n < 2 || sb.n < 2 {
        return None;
    }
    let (va, vb) = (sa.sd.powi(2) / sa.n as f64, sb.sd.powi(2) / sb.n as f64);
    let diff = sb.mean - sa.mean;
    let se = (va + vb).sqrt();
    if se == 0.0 {
        let p = if diff == 0.0 { 1.0 } else { 0.0 };
        return Some(Welch { diff, t: f64::NAN, df: f64::NAN, p, ci95: (diff, diff) });
    }
    let df = (va + vb).powi(2) / (va.powi(2) / (sa.n - 1) as f64 + vb.powi(2) / (sb.n - 1) as f64);
    let t = diff / se;
    let dist = StudentsT::new(0.0, 1.0, df).ok()?;
    let p = (2.0 * dist.sf(t.abs())).min(1.0);
    let h = dist.inverse_cdf(0.975) * se;
    Some(Welch { diff, t, df, p, ci95: (diff - h, diff + h) })
}

/// The Mann–Whitney U test of `b` against `a`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MannWhitney {
    /// U of `b`: the number of pairs (a, b) with b > a, ties counting one half.
    pub u: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// Whether `p` is exact (no ties, a side below 8 values) or the normal approximation with
    /// tie and continuity corrections (scipy.stats.mannwhitneyu's `method="auto"`).
    pub exact: bool,
}

/// The U test; `None` when either side is empty.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> Option<MannWhitney> {
    let (na, nb) = (a.len(), b.len());
    if na == 0 || nb == 0 {
        return None;
    }
    // midranks over the pooled sample
    let mut all: Vec<(f64, bool)> =
        a.iter().map(|&x| (x, false)).chain(b.iter().map(|&x| (x, true))).collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = all.len();
    let (mut rank_b, mut ties, mut tie_term) = (0.0, false, 0.0);
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        if t > 1.0 {
            ties = true;
            tie_term += t.powi(3) - t;
        }
        rank_b += r * all[i..=j].iter().filter(|x| x.1).count() as f64;
        i = j + 1;
    }
    let u = rank_b - (nb * (nb + 1)) as f64 / 2.0;
    let mean_u = (na * nb) as f64 / 2.0;
    if !ties && (na < 8 || nb < 8) {
        let p = exact_two_sided(na, nb, u);
        return Some(MannWhitney { u, p, exact: true });
    }
    let nf = n as f64;
    let var = (na * nb) as f64 / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)));
    if var <= 0.0 {
        return Some(MannWhitney { u, p: 1.0, exact: false });
    }
    // continuity correction towards the mean, as scipy's use_continuity=True
    let z = ((u - mean_u).abs() - 0.5).max(0.0) / var.sqrt();
    let p = match Normal::new(0.0, 1.0) {
        Ok(norm) => (2.0 * norm.sf(z)).min(1.0),
        Err(_) => f64::NAN,
    };
    Some(MannWhitney { u, p, exact: false })
}

/// Exact two-sided p of U = `u` for sides of `na` and `nb` values without ties: twice the smaller
/// tail of the null distribution, counted by the recurrence f(m, n, u) = f(m−1, n, u−n) + f(m, n−1, u).
fn exact_two_sided(na: usize, nb: usize, u: f64) -> f64 {
    let max_u = na * nb;
    // counts[k][u] for sides (k, nb) built up row by row, each row from the one before
    let mut prev: Vec<Vec<f64>> = (0..=nb).map(|_| vec![1.0]).collect();
    for k in 1..=na {
        let mut cur: Vec<Vec<f64>> = Vec::with_capacity(nb + 1);
        for m in 0..=nb {
            let len = k * m + 1;
            let mut row = vec![0.0; len];
            for (v, slot) in row.iter_mut().enumerate() {
                // the largest value is one of `a`'s (it beats all m of b's) or one of b's
                let from_a = if v >= m { prev[m].get(v - m).copied().unwrap_or(0.0) } else { 0.0 };
                let from_b = if m > 0 { cur[m - 1].get(v).copied().unwrap_or(0.0) } else { 0.0 };
                *slot = from_a + from_b;
            }
            cur.push(row);
        }
        prev = cur;
    }
    let counts = &prev[nb];
    let total: f64 = counts.iter().sum();
    // U counts pairs with b > a; the recurrence counts pairs with a > b: the same distribution
    let k = u.round() as usize;
    let lower: f64 = counts[..=k.min(max_u)].iter().sum::<f64>() / total;
    let upper: f64 = counts[k.min(max_u)..].iter().sum::<f64>() / total;
    (2.0 * lower.min(upper)).min(1.0)
}

/// The smallest two-sided p the U test can give for `na` vs `nb` values (all of one side above
/// all of the other): 2 / C(na + nb, na).
pub fn mann_whitney_min_p(na: usize, nb: usize) -> f64 {
    let mut c = 1.0;
    for i in 0..na.min(nb) {
        c = c * (na + nb - i) as f64 / (i + 1) as f64;
    }
    (2.0 / c).min(1.0)
}

/// The upper tail of Snedecor's F with (d1, d2) degrees of freedom at `f`: an ANOVA's p-value.
pub fn f_sf(f: f64, d1: f64, d2: f64) -> f64 {
    if !f.is_finite() {
        return if f > 0.0 { 0.0 } else { f64::NAN };
    }
    match FisherSnedecor::new(d1, d2) {
        Ok(d) => d.sf(f.max(0.0)),
        Err(_) => f64::NAN,
    }
}

/// The Kruskal–Wallis H test of k groups.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KruskalWallis {
    /// H, corrected for ties (scipy.stats.kruskal).
    pub h: f64,
    pub df: f64,
    /// From the χ² distribution with k − 1 degrees of freedom.
    pub p: f64,
}

/// Kruskal–Wallis over the groups; `None` with fewer than two non-empty groups or when every
/// value is the same.
pub fn kruskal_wallis(groups: &[Vec<f64>]) -> Option<KruskalWallis> {
    let groups: Vec<&Vec<f64>> = groups.iter().filter(|g| !g.is_empty()).collect();
    if groups.len() < 2 {
        return None;
    }
    let mut all: Vec<(f64, usize)> =
        groups.iter().enumerate().flat_map(|(g, v)| v.iter().map(move |&x| (x, g))).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = all.len() as f64;
    let mut rank_sum = vec![0.0; groups.len()];
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        tie_term += t.powi(3) - t;
        for x in &all[i..=j] {
            rank_sum[x.1] += r;
        }
        i = j + 1;
    }
    let mut h = 12.0 / (n * (n + 1.0))
        * groups.iter().zip(&rank_sum).map(|(g, r)| r * r / g.len() as f64).sum::<f64>()
        - 3.0 * (n + 1.0);
    let c = 1.0 - tie_term / (n.powi(3) - n);
    if c <= 0.0 {
        return None;
    }
    h /= c;
    let df = (groups.len() - 1) as f64;
    let p = ChiSquared::new(df).map(|d| d.sf(h.max(0.0))).unwrap_or(f64::NAN);
    Some(KruskalWallis { h, df, p })
}

/// Holm's step-down adjustment of p-values (statsmodels `multipletests(method="holm")`), in the
/// order given.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut idx: Vec<usize> = (0..m).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in idx.iter().enumerate() {
        let adj = ((m - rank) as f64 * p[i]).min(1.0);
        running = running.max(adj);
        out[i] = running;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kruskal_holm_and_f_match_scipy_and_statsmodels() {
        // scipy 1.17.1: scipy.stats.kruskal([1,2,3,4],[5,6,7],[8,9,9,10])
        let k = kruskal_wallis(&[
            vec![1.0, 2.0, 3.0, 4.0],
            vec![5.0, 6.0, 7.0],
            vec![8.0, 9.0, 9.0, 10.0],
        ])
        .unwrap();
        assert!(close(k.h, 8.949771689497721, 1e-12), "{k:?}");
        assert!(close(k.p, 0.011391522452398746, 1e-9), "{k:?}");
        // statsmodels 0.15.0: multipletests([0.01, 0.04, 0.03, 0.005], method="holm")[1]
        let h = holm(&[0.01, 0.04, 0.03, 0.005]);
        for (x, y) in h.iter().zip([0.03, 0.06, 0.06, 0.02]) {
            assert!(close(*x, y, 1e-12), "{h:?}");
        }
        // scipy.stats.f.sf(4.0, 2, 12)
        assert!(close(f_sf(4.0, 2.0, 12.0), 0.04665599999999999, 1e-9));
    }

    // Reference values from scipy 1.17.1: scipy.stats.ttest_ind(b, a, equal_var=False) with its
    // .confidence_interval(0.95), scipy.stats.mannwhitneyu(b, a) (method "auto"),
    // scipy.stats.t.ppf.
    const A: [f64; 6] = [301.0, 305.0, 298.0, 302.0, 307.0, 299.0];
    const B: [f64; 5] = [270.0, 268.0, 272.0, 265.0, 269.0];

    fn close(x: f64, y: f64, tol: f64) -> bool {
        (x - y).abs() <= tol * y.abs().max(1e-300)
    }

    #[test]
    fn welch_matches_scipy() {
        let w = welch(&A, &B).unwrap();
        assert!(close(w.t, -18.166231751464142, 1e-9), "{w:?}");
        assert!(close(w.df, 8.93234045960445, 1e-9), "{w:?}");
        assert!(close(w.p, 2.3240508316187547e-08, 1e-6), "{w:?}");
        assert!(close(w.ci95.0, -37.33902160095256, 1e-9), "{w:?}");
        assert!(close(w.ci95.1, -29.060978399047414, 1e-9), "{w:?}");
        assert!(welch(&[1.0], &B).is_none(), "n = 1 cannot be judged");
        let flat = welch(&[2.0, 2.0], &[2.0, 2.0]).unwrap();
        assert_eq!((flat.p, flat.ci95), (1.0, (0.0, 0.0)));
    }

    #[test]
    fn mann_whitney_matches_scipy() {
        let m = mann_whitney(&A, &B).unwrap();
        assert_eq!(m.u, 0.0);
        assert!(m.exact);
        assert!(close(m.p, 0.004329004329004329, 1e-12), "{m:?}");
        let m = mann_whitney(&[4.0, 5.0, 6.0, 7.0], &[1.0, 2.0, 3.0]).unwrap();
        assert!(close(m.p, 0.05714285714285714, 1e-12), "{m:?}");
        // ties: the normal approximation with tie and continuity corrections
        let m = mann_whitney(&[2.0, 4.0, 5.0, 6.0, 7.0, 8.0], &[1.0, 2.0, 2.0, 3.0, 5.0]).unwrap();
        assert_eq!(m.u, 4.5);
        assert!(!m.exact);
        assert!(close(m.p, 0.06476896969888761, 1e-9), "{m:?}");
        assert!(close(mann_whitney_min_p(3, 3), 0.1, 1e-12));
        assert!(close(mann_whitney_min_p(4, 4), 0.02857142857142857, 1e-12));
    }

    #[test]
    fn quantiles_summaries_and_robust_spread() {
        assert!(close(t_quantile(4.5, 0.05), 2.6589123472044034, 1e-9));
        let s = Summary::of(&[1.0, 2.0, 3.0, 4.0, 100.0]).unwrap();
        assert_eq!((s.n, s.median, s.mad, s.min, s.max), (5, 3.0, 1.0, 1.0, 100.0));
        assert!(modified_z(100.0, s.median, s.mad).unwrap() > 3.5);
        assert_eq!(modified_z(1.0, 1.0, 0.0), None);
        assert_eq!(Summary::of(&[5.0]).unwrap().cv_percent(), None);
        assert!(Summary::of(&[]).is_none());
    }
}
