//! Findings from the experiments: each factor's effect on each measure (one finding per factor
//! and measure across the experiments of one benchmark), interactions, scaling and drift.

use super::{Finding, Kind};
use crate::analysis::design::{Experiment, Role};
use crate::analysis::fmt;
use crate::analysis::methods::scaling::is_workload;
use crate::analysis::methods::{matched::Matched, Analysis, Effect};
use crate::analysis::record::{Direction, Quantity};
use crate::analysis::Study;
use std::collections::BTreeMap;

/// Experiments of one benchmark, measure, factor and context.
type GroupKey = (usize, String, String, Vec<(String, String)>);
/// An effect with its experiment and analysis.
type Item<'a> = (&'a Experiment, &'a Analysis, &'a Effect);

/// How much a measure matters to the ranking.
pub(super) fn weight(e: &Experiment) -> f64 {
    let d = &e.def;
    let mut w = if d.primary { 200.0 } else { -300.0 };
    if matches!(d.quantity, Quantity::Count | Quantity::Other) || d.direction == Direction::Neutral
    {
        w -= 250.0;
    }
    if matches!(d.quantity, Quantity::TokenRate | Quantity::RequestRate) {
        w += 20.0;
    }
    w
}

/// How much an effect's size counts in the ranking: fully for primary measures.
pub(super) fn mag(e: &Experiment) -> f64 {
    if e.def.primary {
        1.0
    } else {
        0.2
    }
}

fn word(e: &Experiment) -> &'static str {
    match e.def.direction {
        Direction::Lower => "lowest",
        Direction::Higher => "highest",
        Direction::Neutral => "highest",
    }
}

/// The family with the context its grouped experiments share (`device cuda`).
fn place_family(s: &Study, e: &Experiment) -> String {
    let mut p = format!("`{}`", s.families[e.family].name);
    let v: Vec<String> = e.context.iter().map(|(k, v)| format!("{k} {v}")).collect();
    if !v.is_empty() {
        p.push_str(&format!(" ({})", v.join(", ")));
    }
    p
}

/// `in `file`` or `in the 4 files `reports/*/x.csv``, and the split in parentheses.
pub(super) fn place(s: &Study, e: &Experiment) -> String {
    let fam = &s.families[e.family];
    let mut p = format!("`{}`", fam.name);
    let v: Vec<String> =
        e.split.iter().chain(&e.context).map(|(k, v)| format!("{k} {v}")).collect();
    if !v.is_empty() {
        p.push_str(&format!(" ({})", v.join(", ")));
    }
    p
}

pub(super) fn test_text(eff: &Effect) -> String {
    let mut t = match eff.p {
        Some(p) if eff.test.starts_with("Welch") => {
            format!("Welch t = {}, {}", fmt::sig(eff.stat, 3), fmt::p(p))
        }
        Some(p) => format!("{} {}, {}", eff.test, fmt::f(eff.stat, eff.df.0, eff.df.1), fmt::p(p)),
        None => "no test".into(),
    };
    if let Some(e2) = eff.eta2 {
        t.push_str(&format!(", η² = {}", fmt::share(e2)));
    }
    t
}

/// The fraction of a level's observations that are cold starts.
fn cold_share(s: &Study, e: &Experiment, f: usize, level: usize) -> f64 {
    let obs: Vec<_> = e.obs.iter().filter(|o| o.levels[f] == level).collect();
    if obs.is_empty() {
        return 0.0;
    }
    let cold = obs.iter().filter(|o| s.cold_set.contains(&(o.file.clone(), o.order))).count();
    cold as f64 / obs.len() as f64
}

/// One experiment's effect as a sentence.
fn single(s: &Study, e: &Experiment, a: &Analysis, eff: &Effect) -> Finding {
    let unit = e.def.unit();
    let (b, w) = (&eff.levels[eff.best], &eff.levels[eff.worst]);
    let pair = eff.extreme();
    let change = pair.map_or(0.0, |p| p.change_pct);
    let ci = pair
        .and_then(|p| p.ci_pct)
        .map(|(lo, hi)| format!(", 95 % CI {} to {}", fmt::pct(lo), fmt::pct(hi)))
        .unwrap_or_default();
    let mut f = if let Some(m) = pair.and_then(|p| p.matched.as_ref()).filter(|_| eff.significant())
    {
        Finding::new(
            Kind::Effect,
            format!(
                "In {}, `{}` {} gives the {} `{}`: {} against {} where the other settings match ({} pairs of runs{}{}; {}).",
                place(s, e),
                eff.name,
                b.level,
                word(e),
                e.measure,
                fmt::pct(change),
                w.level,
                m.cells,
                ci,
                along_text(m),
                test_text(eff),
            ),
            600.0
                + weight(e)
                + mag(e) * (change.abs().min(100.0) + 100.0 * eff.eta2.unwrap_or(0.0)),
        )
    } else if eff.significant() {
        let mut f = Finding::new(
            Kind::Effect,
            format!(
                "In {}, `{}` {} gives the {} `{}`: {} against {} for {} ({}{}; {}){}.",
                place(s, e),
                eff.name,
                b.level,
                word(e),
                e.measure,
                fmt::value(b.mean, unit),
                fmt::value(w.mean, unit),
                w.level,
                fmt::pct(change),
                ci,
                test_text(eff),
                if change.abs() < 1.0 {
                    ", a difference too small to matter in practice"
                } else {
                    ""
                }
            ),
            600.0
                + weight(e)
                + mag(e) * (change.abs().min(100.0) + 100.0 * eff.eta2.unwrap_or(0.0)),
        );
        let cold = cold_share(s, e, eff.factor, eff.worst);
        let others = (0..eff.levels.len())
            .filter(|&l| l != eff.worst)
            .map(|l| cold_share(s, e, eff.factor, l))
            .fold(0.0, f64::max);
        if cold >= 0.75 && others <= 0.25 {
            f.sentence = format!(
                "In {}, `{}` {} looks worst for `{}` ({} against {}, {}; {}), but every such run is the first request after a reload: the design cannot tell the setting from the cold start.",
                place(s, e),
                eff.name,
                w.level,
                e.measure,
                fmt::value(w.mean, unit),
                fmt::value(b.mean, unit),
                fmt::pct(-change / (1.0 + change / 100.0)),
                fmt::p(eff.p.unwrap_or(1.0))
            );
            f.kind = Kind::Untested;
            f.score -= 350.0;
        }
        f
    } else if let Some(m) = pair.and_then(|p| p.matched.as_ref()).filter(|_| eff.p.is_some()) {
        Finding::new(
            Kind::NoEffect,
            format!(
                "In {}, `{}` does not change `{}` beyond noise: {} against {} is {} where the other settings match ({} pairs of runs{}; {}).",
                place(s, e),
                eff.name,
                e.measure,
                b.level,
                w.level,
                fmt::pct(change),
                m.cells,
                ci,
                test_text(eff)
            ),
            300.0 + weight(e) * 0.5,
        )
    } else if eff.p.is_some() {
        Finding::new(
            Kind::NoEffect,
            format!(
                "In {}, `{}` does not change `{}` beyond noise: its levels span {} ({} to {}; {}).",
                place(s, e),
                eff.name,
                e.measure,
                fmt::pct(change.abs()).trim_start_matches('+'),
                fmt::value(w.mean, unit),
                fmt::value(b.mean, unit),
                test_text(eff)
            ),
            300.0 + weight(e) * 0.5,
        )
    } else {
        let mut f = Finding::new(
            Kind::Untested,
            format!(
                "In {}, `{}`'s effect on `{}` cannot be tested: {} runs for {} levels leave no spread to test against ({} to {}).",
                place(s, e),
                eff.name,
                e.measure,
                a.n,
                eff.levels.len(),
                fmt::value(w.mean, unit),
                fmt::value(b.mean, unit)
            ),
            150.0 + weight(e) * 0.3,
        );
        f.headline = false;
        f
    };
    if eff.role == Role::Block || is_workload(&eff.name) {
        f.score = f.score.min(250.0 + weight(e) * 0.2);
        f.headline = false;
    }
    f.evidence = evidence(s, e, a, eff);
    f.experiments.push(e.id.clone());
    f.files = s.families[e.family].files.clone();
    f = f.with("factor", &eff.name).with("measure", &e.measure);
    if f.kind == Kind::Effect {
        f = f.with("best", &b.level).with("worst", &w.level);
    }
    f
}

/// `, from +0.2 % at `n_depth` 0 to +53.7 % at 65536`: a matched ratio along a numeric factor.
fn along_text(m: &Matched) -> String {
    match &m.along {
        Some((name, pts)) if pts.len() >= 2 => format!(", from {}", ends(name, pts)),
        _ => String::new(),
    }
}

/// `+0.2 % at `n_depth` 0 to +53.7 % at 65536`: the first and last of ratios along a factor.
pub(super) fn ends(name: &str, pts: &[(String, f64)]) -> String {
    let (first, last) = (&pts[0], &pts[pts.len() - 1]);
    format!(
        "{} at `{name}` {} to {} at {}",
        fmt::pct((first.1 - 1.0) * 100.0),
        first.0,
        fmt::pct((last.1 - 1.0) * 100.0),
        last.0
    )
}

/// The evidence lines of an effect.
fn evidence(s: &Study, e: &Experiment, a: &Analysis, eff: &Effect) -> Vec<String> {
    let unit = e.def.unit();
    let mut ev = vec![];
    let lv: Vec<String> = eff
        .levels
        .iter()
        .map(|l| {
            let ci = l
                .ci95
                .map(|(lo, hi)| format!(" [{}, {}]", fmt::num(lo), fmt::num(hi)))
                .unwrap_or_default();
            format!("{} {}{} (n = {})", l.level, fmt::value(l.mean, unit), ci, l.n)
        })
        .collect();
    ev.push(format!("{} {}: {}", e.id, eff.name, lv.join("; ")));
    ev.push(format!(
        "{}: {} design, {} runs in {} cells ({}–{} per cell); {}",
        e.id,
        a.design,
        a.n,
        a.cells,
        a.reps.0,
        a.reps.1,
        test_text(eff)
    ));
    if let Some(k) = eff.kruskal {
        ev.push(format!("Kruskal–Wallis H = {}, {}", fmt::sig(k.h, 3), fmt::p(k.p)));
    }
    let sig_pairs: Vec<String> = eff
        .pairs
        .iter()
        .filter(|p| p.p_holm.is_some_and(|x| x < 0.05))
        .take(6)
        .map(|p| {
            format!(
                "{} vs {} {} (Holm {})",
                eff.levels[p.b].level,
                eff.levels[p.a].level,
                fmt::pct(p.change_pct),
                fmt::p(p.p_holm.unwrap_or(1.0))
            )
        })
        .collect();
    if !sig_pairs.is_empty() && eff.levels.len() > 2 {
        ev.push(format!("pairs that differ: {}", sig_pairs.join("; ")));
    }
    if !e.held.is_empty() {
        let h: Vec<String> = e.held.iter().take(6).map(|(k, v)| format!("{k} = {v}")).collect();
        ev.push(format!(
            "held fixed: {}{}",
            h.join(", "),
            if e.held.len() > 6 { ", …" } else { "" }
        ));
    }
    for c in a
        .caveats
        .iter()
        .filter(|c| c.contains(&format!("`{}`", eff.name)) || c.contains("back-to-back"))
    {
        ev.push(format!("caveat: {c}"));
    }
    for n in &e.notes {
        ev.push(format!("note: {n}"));
    }
    let lo = &e.left_out;
    if lo.failed + lo.suspect + lo.cold > 0 {
        ev.push(format!(
            "left out: {} failed, {} suspect, {} cold-start runs",
            lo.failed, lo.suspect, lo.cold
        ));
    }
    let _ = s;
    ev
}

/// Several settings of one experiment, none of which changes its measure.
fn no_effects(s: &Study, items: &[(&Experiment, &Analysis, &Effect)]) -> Finding {
    let (e, a, _) = items[0];
    let names: Vec<String> = items.iter().map(|(_, _, x)| format!("`{}`", x.name)).collect();
    let list = match names.len() {
        2 => names.join(" and "),
        _ => format!("{} and {}", names[..names.len() - 1].join(", "), names[names.len() - 1]),
    };
    let p_min = items.iter().filter_map(|(_, _, x)| x.p).fold(1.0, f64::min);
    let spread = items
        .iter()
        .filter_map(|(_, _, x)| x.extreme().map(|p| p.change_pct.abs()))
        .fold(0.0, f64::max);
    let mut f = Finding::new(
        Kind::NoEffect,
        format!(
            "In {}, none of {list} changes `{}` beyond noise ({}, every p ≥ {}; their levels at most {} apart).",
            place(s, e),
            e.measure,
            items[0].2.test,
            fmt::sig(p_min, 2),
            fmt::pct(spread).trim_start_matches('+')
        ),
        300.0 + weight(e) * 0.5,
    );
    for (_, _, x) in items {
        f.evidence.extend(evidence(s, e, a, x).into_iter().take(2));
    }
    f.experiments.push(e.id.clone());
    f.files = s.families[e.family].files.clone();
    for (_, _, x) in items {
        f = f.with("factor", &x.name);
    }
    f.with("measure", &e.measure)
}

/// Many experiments' effects of one factor on one measure as one finding.
fn grouped(s: &Study, items: &[(&Experiment, &Analysis, &Effect)]) -> Finding {
    let (e0, _, eff0) = items[0];
    let splits: Vec<String> = items
        .iter()
        .map(|(e, _, _)| e.split.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>().join("/"))
        .collect();
    let split_name = e0.split.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join("/");
    let sig: Vec<usize> = (0..items.len()).filter(|&i| items[i].2.significant()).collect();
    let changes: Vec<f64> =
        items.iter().filter_map(|(_, _, x)| x.extreme().map(|p| p.change_pct.abs())).collect();
    let sig_changes: Vec<f64> =
        sig.iter().filter_map(|&i| items[i].2.extreme().map(|p| p.change_pct.abs())).collect();
    let med = |v: &[f64]| if v.is_empty() { 0.0 } else { crate::stats::median(v) };
    let fam = &s.families[e0.family];
    let mut bests: BTreeMap<String, usize> = BTreeMap::new();
    for &i in &sig {
        *bests.entry(items[i].2.levels[items[i].2.best].level.clone()).or_default() += 1;
    }
    let top = bests.iter().max_by_key(|(_, n)| **n).map(|(l, n)| (l.clone(), *n));
    let p_min = items.iter().filter_map(|(_, _, x)| x.p).fold(1.0, f64::min);
    let tested = items.iter().any(|(_, _, x)| x.p.is_some());
    let mut f = if !tested {
        let mut f = Finding::new(
            Kind::Untested,
            format!(
                "Across {} {}s in {}, `{}`'s effect on `{}` cannot be tested: one run per level leaves no spread to test against (levels up to {} apart).",
                items.len(),
                split_name,
                place_family(s, e0),
                eff0.name,
                e0.measure,
                fmt::pct(changes.iter().cloned().fold(0.0, f64::max)).trim_start_matches('+')
            ),
            150.0 + weight(e0) * 0.3,
        );
        f.headline = false;
        f
    } else if sig.is_empty() {
        Finding::new(
            Kind::NoEffect,
            format!(
                "Across {} {}s in {}, `{}` does not change `{}` beyond noise in any (every p ≥ {}; levels at most {} apart).",
                items.len(),
                split_name,
                place_family(s, e0),
                eff0.name,
                e0.measure,
                fmt::sig(p_min, 2),
                fmt::pct(changes.iter().cloned().fold(0.0, f64::max)).trim_start_matches('+')
            ),
            300.0 + weight(e0) * 0.5,
        )
    } else {
        let (tl, tn) = top.clone().unwrap_or_default();
        Finding::new(
            Kind::Effect,
            format!(
                "Across {} {}s in {}, `{}` changes `{}` in {} of them; {} is best in {} of those, by a median {} over the worst level (range {} to {}).",
                items.len(),
                split_name,
                place_family(s, e0),
                eff0.name,
                e0.measure,
                sig.len(),
                tl,
                tn,
                fmt::pct(med(&sig_changes)).trim_start_matches('+'),
                fmt::pct(sig_changes.iter().cloned().fold(f64::MAX, f64::min)).trim_start_matches('+'),
                fmt::pct(sig_changes.iter().cloned().fold(0.0, f64::max)).trim_start_matches('+')
            ),
            600.0 + weight(e0) + mag(e0) * (med(&sig_changes).min(100.0) + 5.0 * sig.len() as f64),
        )
    };
    if eff0.role == Role::Block || is_workload(&eff0.name) {
        f.score = f.score.min(250.0 + weight(e0) * 0.2);
        f.headline = false;
    }
    for (i, (e, a, x)) in items.iter().enumerate() {
        let (b, w) = (&x.levels[x.best], &x.levels[x.worst]);
        let ch = x.extreme().map_or(0.0, |p| p.change_pct);
        let line = if x.extreme().is_some_and(|p| p.matched.is_some()) {
            format!(
                "{} ({}): {} vs {} {} where the other settings match; {}",
                splits[i],
                e.id,
                b.level,
                w.level,
                fmt::pct(ch),
                test_text(x)
            )
        } else {
            format!(
                "{} ({}): {} {} vs {} {} ({}); {}",
                splits[i],
                e.id,
                b.level,
                fmt::value(b.mean, e.def.unit()),
                w.level,
                fmt::value(w.mean, e.def.unit()),
                fmt::pct(ch),
                test_text(x)
            )
        };
        f.evidence.push(line);
        for c in a.caveats.iter().filter(|c| c.contains(&format!("`{}`", x.name))).take(1) {
            if !f.evidence.iter().any(|l| l.ends_with(c.as_str())) {
                f.evidence.push(format!("caveat: {c}"));
            }
        }
        for n in &e.notes {
            if !f.evidence.iter().any(|l| l.ends_with(n.as_str())) && n.contains(&x.name) {
                f.evidence.push(format!("note: {n}"));
            }
        }
        f.experiments.push(e.id.clone());
    }
    f.files = fam.files.clone();
    f = f.with("factor", &eff0.name).with("measure", &e0.measure);
    if let (Kind::Effect, Some((tl, _))) = (f.kind, &top) {
        f = f.with("best", tl);
    }
    f
}

/// Effect, interaction, scaling and drift findings.
pub fn all(s: &Study, out: &mut Vec<Finding>) {
    // (family, measure, factor) → the effects of the experiments split from one design
    let mut groups: BTreeMap<GroupKey, Vec<Item>> = BTreeMap::new();
    for (e, a) in s.experiments.iter().zip(&s.analyses) {
        for eff in &a.effects {
            if eff.role == Role::Session {
                drift(s, e, a, eff, out);
                continue;
            }
            if a.scaling
                .iter()
                .any(|x| x.factor == eff.name && super::shapes::notable(x, Some(eff)))
            {
                // its scaling finding says more
                continue;
            }
            if !eff.significant() && super::shapes::trend_of(e, eff).is_some() {
                // no effect on average, but a gap that changes along a scale: the trend says it
                continue;
            }
            groups
                .entry((e.family, e.measure.clone(), eff.name.clone(), e.context.clone()))
                .or_default()
                .push((e, a, eff));
        }
    }
    // settings without an effect on one experiment's measure: one finding for all of them
    let mut quiet: BTreeMap<String, Vec<(&Experiment, &Analysis, &Effect)>> = BTreeMap::new();
    for items in groups.values() {
        if items.len() == 1 {
            let (e, a, eff) = items[0];
            if eff.p.is_some() && !eff.significant() && eff.role == Role::Treatment {
                quiet.entry(e.id.clone()).or_default().push((e, a, eff));
                continue;
            }
            out.push(single(s, e, a, eff));
        } else {
            out.push(grouped(s, items));
        }
    }
    for items in quiet.values() {
        if items.len() == 1 {
            out.push(single(s, items[0].0, items[0].1, items[0].2));
        } else {
            out.push(no_effects(s, items));
        }
    }
    super::shapes::interactions(s, out);
    super::shapes::trends(s, out);
    super::shapes::scaling(s, out);
    super::shapes::offload(s, out);
}

fn drift(s: &Study, e: &Experiment, a: &Analysis, eff: &Effect, out: &mut Vec<Finding>) {
    if !eff.significant() {
        return;
    }
    let unit = e.def.unit();
    let (b, w) = (&eff.levels[eff.best], &eff.levels[eff.worst]);
    let ch = eff.extreme().map_or(0.0, |p| p.change_pct);
    let mut f = Finding::new(
        Kind::Drift,
        format!(
            "In {}, the same settings measured in different sessions differ: `{}` ranges from {} ({}) to {} ({}), {} ({}).",
            place(s, e),
            e.measure,
            fmt::value(w.mean, unit),
            w.level,
            fmt::value(b.mean, unit),
            b.level,
            fmt::pct(ch),
            test_text(eff)
        ),
        450.0 + weight(e) * 0.5 + ch.abs().min(50.0),
    );
    f.evidence = evidence(s, e, a, eff);
    f.experiments.push(e.id.clone());
    f.files = s.families[e.family].files.clone();
    out.push(f.with("measure", &e.measure).with("factor", &eff.name));
}
