//! Comparisons wherever the data supports one: runs of one benchmark at different times (the same
//! name under dated folders or with a date stamp), baseline vs tuned files, and the settings of a
//! parameter sweep (the winner, the loser, the default).

use super::health::cold_rows;
use super::{num, num1, p_text, pct, Comparison, Finding, Kind, Side, Verdict, ALPHA};
use crate::agent::ingest::names::{role, unit_of, Role};
use crate::agent::ingest::{tables, Dataset, Facts};
use crate::stamp;
use crate::stats::{self, Summary};
use std::collections::BTreeMap;

pub(super) fn all(facts: &Facts, out: &mut Vec<Finding>) {
    let primary: Vec<&Dataset> = facts.datasets.iter().filter(|d| d.twin_of.is_none()).collect();
    dated_runs(&primary, out);
    pairs(&primary, out);
    sweeps(&primary, out);
}

/// Compares `b` (the candidate) with `a` (the baseline) on one metric.
fn compare(
    design: &str,
    metric: &str,
    role: Role,
    a: (Side, Vec<f64>),
    b: (Side, Vec<f64>),
) -> Comparison {
    let (a, av) = a;
    let (b, bv) = b;
    let higher = role == Role::Throughput;
    let welch = stats::welch(&av, &bv);
    let change =
        if a.mean.abs() > f64::EPSILON { (b.mean - a.mean) / a.mean.abs() * 100.0 } else { 0.0 };
    let ci95_percent = welch
        .filter(|_| a.mean.abs() > f64::EPSILON)
        .map(|w| (w.ci95.0 / a.mean.abs() * 100.0, w.ci95.1 / a.mean.abs() * 100.0));
    let verdict = match welch {
        None => Verdict::CannotJudge,
        Some(w) if w.p < ALPHA => {
            if (w.diff > 0.0) == higher {
                Verdict::Better
            } else {
                Verdict::Worse
            }
        }
        Some(_) => Verdict::NoSignificantDifference,
    };
    Comparison {
        design: design.into(),
        metric: metric.into(),
        unit: unit_of(metric),
        higher_is_better: higher,
        mann_whitney: stats::mann_whitney(&av, &bv),
        welch,
        change_percent: change,
        ci95_percent,
        baseline: a,
        candidate: b,
        verdict,
    }
}

fn side(label: &str, file: &str, v: Vec<f64>) -> (Side, Vec<f64>) {
    let s = Summary::of(&v).unwrap_or_default();
    (Side { label: label.into(), file: file.into(), n: s.n, mean: s.mean, sd: s.sd }, v)
}

fn unit_text(c: &Comparison) -> String {
    c.unit.as_deref().map(|u| format!(" {u}")).unwrap_or_default()
}

/// The evidence line of a comparison: both sides, both tests, the interval.
fn evidence(c: &Comparison) -> String {
    let s = |x: &Side| format!("{} (n = {}, mean {}, sd {})", x.label, x.n, num(x.mean), num(x.sd));
    let mut e = format!("`{}`: {} vs {}", c.metric, s(&c.baseline), s(&c.candidate));
    match (&c.welch, c.ci95_percent) {
        (Some(w), Some((lo, hi))) if w.t.is_finite() => e.push_str(&format!(
            "; Welch t = {}, df = {}, {}; 95 % CI of the difference [{}, {}]{} ({} % to {} %)",
            num(w.t),
            num(w.df),
            p_text(w.p),
            num(w.ci95.0),
            num(w.ci95.1),
            unit_text(c),
            pct(lo),
            pct(hi)
        )),
        (Some(w), _) => e.push_str(&format!("; no spread on either side, {}", p_text(w.p))),
        (None, _) => e.push_str("; one value on a side: no test"),
    }
    if let Some(m) = &c.mann_whitney {
        e.push_str(&format!("; Mann–Whitney U = {}, {}", num(m.u), p_text(m.p)));
        let min_p = stats::mann_whitney_min_p(c.baseline.n, c.candidate.n);
        if min_p >= ALPHA && c.baseline.n > 1 && c.candidate.n > 1 {
            e.push_str(&format!(
                " (with n = {} and {} the U test cannot go below p = {})",
                c.baseline.n,
                c.candidate.n,
                num(min_p)
            ));
        }
    }
    e
}

/// "fell 10.8 %" / "rose 2.4 %".
fn moved(c: &Comparison) -> String {
    let dir = if c.change_percent < 0.0 { "fell" } else { "rose" };
    format!("{dir} {} %", pct(c.change_percent.abs()).trim_start_matches('+'))
}

/// The finding of a two-sided comparison (dated runs, baseline vs tuned).
fn finding(c: Comparison, what: &str, files: Vec<String>) -> Finding {
    let u = unit_text(&c);
    let (a, b) = (&c.baseline, &c.candidate);
    let values = format!("{} → {}{u}", num(a.mean), num(b.mean));
    let (kind, sentence) = match c.verdict {
        Verdict::Worse => (
            Kind::Regression,
            format!("Regression: `{}` {what} {} ({values}; {}).", c.metric, moved(&c), p_text(c.welch.map_or(1.0, |w| w.p))),
        ),
        Verdict::Better => (
            Kind::Improvement,
            format!("Improvement: `{}` {what} {} ({values}; {}).", c.metric, moved(&c), p_text(c.welch.map_or(1.0, |w| w.p))),
        ),
        Verdict::NoSignificantDifference => {
            let ci = c.ci95_percent.map_or(String::new(), |(lo, hi)| format!(", 95 % CI {} % to {} %", pct(lo), pct(hi)));
            (
                Kind::NoChange,
                format!(
                    "No significant difference: `{}` {what} ({} %{ci}; {}).",
                    c.metric,
                    pct(c.change_percent),
                    p_text(c.welch.map_or(1.0, |w| w.p))
                ),
            )
        }
        Verdict::CannotJudge => (
            Kind::Unjudged,
            format!(
                "`{}` {what} cannot be judged: n = {} vs {}, and one value per side says nothing about the spread ({values}).",
                c.metric, a.n, b.n
            ),
        ),
    };
    let ev = evidence(&c);
    let effect = c.change_percent;
    let mut f = Finding::new(kind, sentence, ev, files).column(&c.metric);
    if matches!(kind, Kind::Regression | Kind::Improvement) {
        f = f.effect(effect);
    }
    f.comparison = Some(c);
    f
}

/// Values of column `c` for comparisons; cold-start rows are left out of latency columns.
fn metric_values(d: &Dataset, c: usize, role: Role) -> Vec<f64> {
    let cold = if role == Role::Latency {
        cold_rows(d).map(|x| x.rows).unwrap_or_default()
    } else {
        vec![]
    };
    d.ok_values(c).into_iter().filter(|(r, _)| !cold.contains(r)).map(|(_, v)| v).collect()
}

/// The shared metric columns of two datasets.
fn shared_metrics(a: &Dataset, b: &Dataset) -> Vec<(usize, usize, Role)> {
    (0..a.headers.len())
        .filter_map(|i| {
            let r = role(&a.headers[i])?;
            let j = b.headers.iter().position(|h| h.trim() == a.headers[i].trim())?;
            Some((i, j, r))
        })
        .collect()
}

/// A dataset name with every stamp in its path replaced by `*`, and the latest stamp found.
fn undated(name: &str) -> Option<(String, stamp::Unix, String)> {
    let mut latest: Option<(stamp::Unix, String)> = None;
    let parts: Vec<String> = name
        .split('/')
        .map(|part| {
            let mut s = part.to_string();
            for st in stamp::in_name(part).into_iter().rev() {
                if latest.as_ref().is_none_or(|(t, _)| st.time > *t) {
                    latest = Some((st.time, st.text.clone()));
                }
                s.replace_range(st.at, "*");
            }
            s
        })
        .collect();
    latest.map(|(t, text)| (parts.join("/"), t, text))
}

/// Consecutive dated runs of the same benchmark, older as the baseline.
fn dated_runs(ds: &[&Dataset], out: &mut Vec<Finding>) {
    let mut groups: BTreeMap<String, Vec<(stamp::Unix, String, &Dataset)>> = BTreeMap::new();
    for d in ds {
        if let Some((key, t, text)) = undated(&d.name) {
            groups.entry(key).or_default().push((t, text, d));
        }
    }
    for (key, mut runs) in groups {
        runs.sort_by_key(|r| r.0);
        runs.dedup_by_key(|r| r.0);
        for w in runs.windows(2) {
            let ((ta, _, a), (tb, _, b)) = (&w[0], &w[1]);
            let (la, lb) = (stamp::date(*ta), stamp::date(*tb));
            let (la, lb) =
                if la == lb { (stamp::format(*ta), stamp::format(*tb)) } else { (la, lb) };
            for (i, j, r) in shared_metrics(a, b) {
                let metric = a.headers[i].trim();
                let c = compare(
                    "dated runs",
                    metric,
                    r,
                    side(&format!("{la} run"), &a.file, metric_values(a, i, r)),
                    side(&format!("{lb} run"), &b.file, metric_values(b, j, r)),
                );
                if c.baseline.n == 0 || c.candidate.n == 0 {
                    continue;
                }
                let what = format!("of `{key}` from the {la} run to the {lb} run");
                out.push(finding(c, &what, vec![a.file.clone(), b.file.clone()]));
            }
        }
    }
}

/// Names a tuned counterpart of a baseline file may have.
const TUNED: [&str; 5] = ["tuned", "optimized", "optimised", "chimera", "optimal"];

/// Baseline files against their tuned counterparts in the same folder.
fn pairs(ds: &[&Dataset], out: &mut Vec<Finding>) {
    for a in ds.iter().filter(|d| d.name.rsplit('/').next().is_some_and(|n| n.contains("baseline")))
    {
        let (dir, name) = a.name.rsplit_once('/').unwrap_or(("", &a.name));
        for t in TUNED {
            let want = format!("{dir}/{}", name.replacen("baseline", t, 1));
            let Some(b) = ds.iter().find(|d| d.name == want.trim_start_matches('/')) else {
                continue;
            };
            for (i, j, r) in shared_metrics(a, b) {
                let metric = a.headers[i].trim();
                let c = compare(
                    "baseline vs tuned",
                    metric,
                    r,
                    side("baseline", &a.file, metric_values(a, i, r)),
                    side(t, &b.file, metric_values(b, j, r)),
                );
                if c.baseline.n == 0 || c.candidate.n == 0 {
                    continue;
                }
                let what = format!("of `{}` against `{}`", b.file, a.file);
                out.push(finding(c, &what, vec![a.file.clone(), b.file.clone()]));
            }
        }
    }
}

/// The settings of each sweep: the loser against the next slowest, the winner against the
/// runner-up, a default or baseline setting against the winner, and the whole spread.
fn sweeps(ds: &[&Dataset], out: &mut Vec<Finding>) {
    for d in ds {
        let Some(tp) = d.col(|h| role(h) == Some(Role::Throughput)) else { continue };
        let mut groups: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for (r, v) in d.ok_values(tp) {
            if let Some(k) = tables::config_key(d, r) {
                groups.entry(k).or_default().push(v);
            }
        }
        if groups.len() < 2 {
            continue;
        }
        let metric = d.headers[tp].trim();
        let name = &d.name;
        if groups.values().all(|g| g.len() < 2) {
            let s = format!(
                "The sweep `{name}` has one run per setting ({} settings): the differences between its settings cannot be judged.",
                groups.len()
            );
            let e = format!(
                "`{metric}`: {}",
                groups
                    .iter()
                    .map(|(k, v)| format!("{k} {}", num(v[0])))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            out.push(Finding::new(Kind::Unjudged, s, e, vec![d.file.clone()]).column(metric));
            continue;
        }
        let mut rank: Vec<(String, f64, Vec<f64>)> = groups
            .into_iter()
            .map(|(k, v)| (k, v.iter().sum::<f64>() / v.len() as f64, v))
            .collect();
        rank.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let cmp = |base: &(String, f64, Vec<f64>), cand: &(String, f64, Vec<f64>)| {
            compare(
                "sweep",
                metric,
                Role::Throughput,
                side(&base.0, &d.file, base.2.clone()),
                side(&cand.0, &d.file, cand.2.clone()),
            )
        };
        let n = rank.len();
        let cvs: Vec<f64> =
            rank.iter().filter_map(|r| Summary::of(&r.2).and_then(|s| s.cv_percent())).collect();
        let run_cv = (!cvs.is_empty()).then(|| cvs.iter().sum::<f64>() / cvs.len() as f64);
        let noise = run_cv
            .map_or(String::new(), |cv| format!("; run-to-run CV within a setting {} %", num1(cv)));
        let u = unit_of(metric).map(|u| format!(" {u}")).unwrap_or_default();
        let files = vec![d.file.clone()];
        // the loser: the slowest setting against the next slowest
        let loser = cmp(&rank[n - 2], &rank[n - 1]);
        if loser.verdict == Verdict::Worse {
            let s = format!(
                "In the sweep `{name}`, {} is slower than every other setting: {}{u}, {} % against the next slowest ({}, {}{u}; {}).",
                rank[n - 1].0,
                num(rank[n - 1].1),
                pct(loser.change_percent),
                rank[n - 2].0,
                num(rank[n - 2].1),
                p_text(loser.welch.map_or(1.0, |w| w.p))
            );
            let f = Finding::new(Kind::SweepLoser, s, evidence(&loser) + &noise, files.clone())
                .column(metric);
            let mut f = f.effect(loser.change_percent);
            f.comparison = Some(loser);
            out.push(f);
        }
        if n > 2 {
            let best = cmp(&rank[1], &rank[0]);
            let s = if best.verdict == Verdict::Better {
                format!(
                    "In the sweep `{name}`, {} is faster than every other setting: {}{u}, {} % against the runner-up ({}; {}).",
                    rank[0].0,
                    num(rank[0].1),
                    pct(best.change_percent),
                    rank[1].0,
                    p_text(best.welch.map_or(1.0, |w| w.p))
                )
            } else {
                format!(
                    "No significant difference between the two fastest settings of the sweep `{name}`: {} ({}{u}) and {} ({}{u}), {} % ({}).",
                    rank[0].0,
                    num(rank[0].1),
                    rank[1].0,
                    num(rank[1].1),
                    pct(best.change_percent),
                    p_text(best.welch.map_or(1.0, |w| w.p))
                )
            };
            let kind = match best.verdict {
                Verdict::Better => Kind::SweepBest,
                Verdict::CannotJudge => Kind::Unjudged,
                _ => Kind::NoChange,
            };
            let mut f =
                Finding::new(kind, s, evidence(&best) + &noise, files.clone()).column(metric);
            f.comparison = Some(best);
            out.push(f);
        }
        let span = cmp(&rank[n - 1], &rank[0]);
        if span.verdict == Verdict::NoSignificantDifference {
            let s = format!(
                "The sweep `{name}` is within run-to-run noise: its fastest and slowest settings ({} and {}) differ by {} % ({}).",
                rank[0].0,
                rank[n - 1].0,
                pct(span.change_percent),
                p_text(span.welch.map_or(1.0, |w| w.p))
            );
            let mut f = Finding::new(Kind::SweepNoise, s, evidence(&span) + &noise, files.clone())
                .column(metric);
            f.comparison = Some(span);
            out.push(f);
        }
        default_setting(d, &rank, metric, &u, out);
    }
}

/// A setting named default or baseline, against the sweep's winner.
fn default_setting(
    d: &Dataset,
    rank: &[(String, f64, Vec<f64>)],
    metric: &str,
    u: &str,
    out: &mut Vec<Finding>,
) {
    let is_default = |k: &str| {
        let k = k.to_ascii_lowercase();
        k.contains("default") || k.contains("baseline")
    };
    let Some(def) = rank.iter().skip(1).find(|r| is_default(&r.0)) else { return };
    let c = compare(
        "sweep",
        metric,
        Role::Throughput,
        side(&def.0, &d.file, def.2.clone()),
        side(&rank[0].0, &d.file, rank[0].2.clone()),
    );
    let p = p_text(c.welch.map_or(1.0, |w| w.p));
    let (kind, s) = match c.verdict {
        Verdict::Better => (
            Kind::Improvement,
            format!(
                "In the sweep `{}`, {} beats the default setting {} by {} % ({} vs {}{u}; {p}).",
                d.name, rank[0].0, def.0, pct(c.change_percent), num(rank[0].1), num(def.1)
            ),
        ),
        Verdict::CannotJudge => return,
        _ => (
            Kind::NoChange,
            format!(
                "No significant difference between the sweep `{}`'s fastest setting {} and its default {} ({} %; {p}).",
                d.name, rank[0].0, def.0, pct(c.change_percent)
            ),
        ),
    };
    let mut f = Finding::new(kind, s, evidence(&c), vec![d.file.clone()]).column(metric);
    f.comparison = Some(c);
    out.push(f);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_names_group_by_their_undated_form() {
        let (k, t, text) = undated("reports/ollama/20251114-101500/prompt_suite_runs.csv").unwrap();
        assert_eq!(
            (k.as_str(), text.as_str()),
            ("reports/ollama/*/prompt_suite_runs.csv", "20251114-101500")
        );
        assert_eq!(stamp::format(t), "2025-11-14T10:15:00Z");
        assert_eq!(
            undated("reports/c/conv_bench_20251008-120000.json:backends{}").unwrap().0,
            "reports/c/conv_bench_*.json:backends{}"
        );
        assert!(undated("reports/gemma3/gemma3_baseline.csv").is_none());
    }

    #[test]
    fn a_difference_within_noise_is_not_a_change() {
        let a = side("a", "x", vec![101.0, 102.0, 103.0, 104.0]);
        let b = side("b", "x", vec![103.0, 101.5, 104.0, 102.0]);
        let c = compare("t", "tokens_s", Role::Throughput, a.clone(), b);
        assert_eq!(c.verdict, Verdict::NoSignificantDifference);
        let slower = side("b", "x", vec![90.0, 91.0, 89.5, 90.5]);
        assert_eq!(
            compare("t", "tokens_s", Role::Throughput, a.clone(), slower.clone()).verdict,
            Verdict::Worse
        );
        // for a latency, lower is better
        assert_eq!(
            compare("t", "ttft_s", Role::Latency, a.clone(), slower).verdict,
            Verdict::Better
        );
        let one = side("b", "x", vec![90.0]);
        assert_eq!(
            compare("t", "tokens_s", Role::Throughput, a, one).verdict,
            Verdict::CannotJudge
        );
    }
}
