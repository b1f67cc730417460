//! Findings on the shape of a design: measures across a numeric factor (scaling, and where it
//! breaks), settings that interact, and `num_gpu` sweeps that never varied offload.

use super::effects::{mag, place, test_text, weight};
use super::{Finding, Kind};
use crate::analysis::design::Experiment;
use crate::analysis::fmt;
use crate::analysis::methods::Effect;
use crate::analysis::Study;
use std::collections::BTreeMap;

/// A scaling view with its experiment.
type ScaleItem<'a> = (&'a Experiment, &'a crate::analysis::methods::scaling::Scaling);

pub(super) fn interactions(s: &Study, out: &mut Vec<Finding>) {
    for (e, a) in s.experiments.iter().zip(&s.analyses) {
        for i in a.interactions.iter().filter(|i| i.p < 0.05 && i.eta2 >= 0.01) {
            let mut f = Finding::new(
                Kind::Interaction,
                format!(
                    "In {}, `{}` and `{}` interact on `{}`: the effect of one depends on the level of the other ({}, {}, η² = {}).",
                    place(s, e),
                    i.a,
                    i.b,
                    e.measure,
                    fmt::f(i.f, i.df.0, i.df.1),
                    fmt::p(i.p),
                    fmt::share(i.eta2)
                ),
                400.0 + weight(e) * 0.5 + 100.0 * i.eta2,
            );
            f.headline = false;
            f.experiments.push(e.id.clone());
            f.files = s.families[e.family].files.clone();
            out.push(f.with("factor", &i.a).with("factor", &i.b).with("measure", &e.measure));
        }
    }
}

/// A scaling worth its own finding: the measure moves by a tenth or more, or breaks, and the
/// factor's effect is not refuted by its test.
pub(super) fn notable(
    sc: &crate::analysis::methods::scaling::Scaling,
    eff: Option<&Effect>,
) -> bool {
    let moves = (1.0 - sc.ratio).abs() >= 0.1 || sc.breaks.is_some();
    moves && eff.is_none_or(|e| e.p.is_none() || e.significant())
}

pub(super) fn scaling(s: &Study, out: &mut Vec<Finding>) {
    let mut groups: BTreeMap<(usize, String, String), Vec<ScaleItem>> = BTreeMap::new();
    for (e, a) in s.experiments.iter().zip(&s.analyses) {
        for sc in &a.scaling {
            let eff = a.effects.iter().find(|x| x.name == sc.factor);
            if notable(sc, eff) {
                groups
                    .entry((e.family, e.measure.clone(), sc.factor.clone()))
                    .or_default()
                    .push((e, sc));
            }
        }
    }
    for ((fam, measure, factor), items) in groups {
        let (e0, sc0) = items[0];
        let unit = e0.def.unit();
        let first = sc0.points[0].0;
        let last = sc0.points[sc0.points.len() - 1].0;
        let ratios: Vec<f64> = items.iter().map(|(_, x)| x.ratio).collect();
        let med = crate::stats::median(&ratios);
        let sentence = if items.len() == 1 {
            let p = &sc0.points;
            let brk = sc0
                .breaks
                .map(|(a, b, ch)| {
                    format!(
                        "; it breaks between {} and {} ({})",
                        sc0.label(a),
                        sc0.label(b),
                        fmt::pct(ch)
                    )
                })
                .unwrap_or_default();
            format!(
                "In {}, `{}` goes from {} at `{}` {} to {} at {} ({}×), best at {}{}.",
                place(s, e0),
                measure,
                fmt::value(p[0].1, unit),
                factor,
                sc0.label(first),
                fmt::value(p[p.len() - 1].1, unit),
                sc0.label(last),
                fmt::sig(sc0.ratio, 3),
                sc0.label(sc0.peak),
                brk
            )
        } else {
            let splits = e0.split.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join("/");
            let breaks: Vec<String> = items
                .iter()
                .filter_map(|(e, x)| {
                    let (a, b, ch) = x.breaks?;
                    let who = e.split.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>().join("/");
                    Some(format!(
                        "{who} between {} and {} ({})",
                        x.label(a),
                        x.label(b),
                        fmt::pct(ch)
                    ))
                })
                .collect();
            let brk = match breaks.len() {
                0 => String::new(),
                n if n <= 4 => format!("; it breaks for {}", breaks.join(", ")),
                n => format!("; it breaks for {n} of them, {}, …", breaks[..3].join(", ")),
            };
            format!(
                "Across {} {}s in `{}`, `{}` at `{}` {} is {}× its value at {} (median; range {}× to {}×){}.",
                items.len(),
                splits,
                s.families[fam].name,
                measure,
                factor,
                sc0.label(last),
                fmt::sig(med, 3),
                sc0.label(first),
                fmt::sig(ratios.iter().cloned().fold(f64::MAX, f64::min), 3),
                fmt::sig(ratios.iter().cloned().fold(0.0, f64::max), 3),
                brk
            )
        };
        let change = (1.0 - med).abs() * 100.0;
        let mut f =
            Finding::new(Kind::Scaling, sentence, 500.0 + weight(e0) + mag(e0) * change.min(100.0));
        for (e, x) in &items {
            let pts: Vec<String> = x
                .points
                .iter()
                .map(|(l, m, _)| format!("{} → {}", x.label(*l), fmt::num(*m)))
                .collect();
            let split = e.split.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>().join("/");
            f.evidence.push(format!(
                "{}{}: {}",
                e.id,
                if split.is_empty() { String::new() } else { format!(" ({split})") },
                pts.join(", ")
            ));
            if let Some((_, a)) = s.experiment(&e.id) {
                if let Some(eff) = a.effects.iter().find(|x| x.name == factor) {
                    f.evidence.push(format!("{}: {}", e.id, test_text(eff)));
                }
                for c in a.caveats.iter().filter(|c| c.contains(&format!("`{factor}`"))) {
                    if !f.evidence.iter().any(|l| l.ends_with(c.as_str())) {
                        f.evidence.push(format!("caveat: {c}"));
                    }
                }
            }
            f.experiments.push(e.id.clone());
        }
        f.files = s.families[fam].files.clone();
        out.push(f.with("factor", &factor).with("measure", &measure));
    }
}

/// `num_gpu` levels that were all full offload: the sweep never varied offload.
pub(super) fn offload(s: &Study, out: &mut Vec<Finding>) {
    let mut by: BTreeMap<usize, Vec<(&Experiment, &String)>> = BTreeMap::new();
    for e in &s.experiments {
        if let Some(n) = e.notes.iter().find(|n| n.contains("full offload")) {
            by.entry(e.family).or_default().push((e, n));
        }
    }
    for (fam, items) in by {
        let mut notes: Vec<&String> = items.iter().map(|(_, n)| *n).collect();
        notes.sort();
        notes.dedup();
        let models = notes.len();
        let mut f = Finding::new(
            Kind::NoEffect,
            format!(
                "In `{}`, every `num_gpu` level tried is at or above the layer count of {}, which Ollama and llama.cpp clamp to full offload: offload was never varied, and differences between those levels are run-to-run noise or drift.",
                s.families[fam].name,
                if models == 1 { "its model".to_string() } else { format!("each of its {models} models") }
            ),
            520.0,
        );
        for n in notes {
            f.evidence.push(format!("note: {n}"));
        }
        f.experiments = items.iter().map(|(e, _)| e.id.clone()).collect();
        f.experiments.dedup();
        f.files = s.families[fam].files.clone();
        out.push(f.with("factor", "num_gpu"));
    }
}

/// A gap between two levels that trends along a numeric factor, with its experiment: (the
/// experiment, the factor, the level in the numerator and the denominator, the ratio at each
/// level of the numeric factor, ρ and p).
pub(super) struct Trend<'a> {
    e: &'a Experiment,
    factor: String,
    num: String,
    den: String,
    along: String,
    pts: Vec<(String, f64)>,
    rho: f64,
    p: f64,
}

impl Trend<'_> {
    /// How far the ratio moves from the first level to the last, as a log.
    fn span(&self) -> f64 {
        (self.pts[self.pts.len() - 1].1 / self.pts[0].1).ln().abs()
    }

    fn ends(&self) -> String {
        super::effects::ends(&self.along, &self.pts)
    }

    fn test(&self) -> String {
        format!("Spearman ρ = {}, exact p = {}", fmt::sig(self.rho, 2), fmt::sig(self.p, 2))
    }
}

/// The widest significant trend among an effect's matched pairs, written with the level that
/// sorts first as the denominator.
pub(super) fn trend_of<'a>(e: &'a Experiment, eff: &Effect) -> Option<Trend<'a>> {
    let mut best: Option<Trend> = None;
    for p in &eff.pairs {
        let Some(m) = &p.matched else { continue };
        let (Some((along, pts)), Some((rho, pv))) = (&m.along, m.trend) else { continue };
        if pv >= 0.05 || pts.len() < 3 {
            continue;
        }
        let flip = p.a > p.b;
        let (num, den) = if flip { (p.a, p.b) } else { (p.b, p.a) };
        let pts: Vec<(String, f64)> =
            pts.iter().map(|(l, r)| (l.clone(), if flip { 1.0 / r } else { *r })).collect();
        let t = Trend {
            e,
            factor: eff.name.clone(),
            num: eff.levels[num].level.clone(),
            den: eff.levels[den].level.clone(),
            along: along.clone(),
            pts,
            rho: if flip { -rho } else { rho },
            p: pv,
        };
        // a gap that moves by a tenth or more
        if t.span() >= 1.1f64.ln() && best.as_ref().is_none_or(|b| t.span() > b.span()) {
            best = Some(t);
        }
    }
    best
}

/// Gaps between levels that grow or shrink along a numeric factor (one run per cell, so no
/// interaction test: the matched ratios' rank correlation with the factor), one finding per
/// benchmark and factor.
pub(super) fn trends(s: &Study, out: &mut Vec<Finding>) {
    let mut groups: BTreeMap<(usize, String, String, String), Vec<Trend>> = BTreeMap::new();
    for (e, a) in s.experiments.iter().zip(&s.analyses) {
        for eff in a.effects.iter().filter(|x| x.role == crate::analysis::design::Role::Treatment) {
            if let Some(t) = trend_of(e, eff) {
                let key = (e.family, e.measure.clone(), t.factor.clone(), t.along.clone());
                groups.entry(key).or_default().push(t);
            }
        }
    }
    for mut items in groups.into_values() {
        items.sort_by(|a, b| b.span().total_cmp(&a.span()));
        let t = &items[0];
        let e = t.e;
        let sentence = if items.len() == 1 {
            format!(
                "In {}, `{}` {} against {} on `{}` depends on `{}`: from {} ({}).",
                place(s, e),
                t.factor,
                t.num,
                t.den,
                e.measure,
                t.along,
                t.ends(),
                t.test()
            )
        } else {
            format!(
                "In `{}`, the gap between `{}` levels on `{}` changes with `{}` in {} experiments; the widest: {} against {} ({}) goes from {} ({}).",
                s.families[e.family].name,
                t.factor,
                e.measure,
                t.along,
                items.len(),
                t.num,
                t.den,
                e.split.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
                t.ends(),
                t.test()
            )
        };
        let span = (t.span().exp() - 1.0) * 100.0;
        let mut f = Finding::new(
            Kind::Interaction,
            sentence,
            620.0 + weight(e) + mag(e) * span.min(100.0) + 5.0 * items.len() as f64,
        );
        for t in &items {
            let pts: Vec<String> =
                t.pts.iter().map(|(l, r)| format!("{l} → {}×", fmt::sig(*r, 3))).collect();
            f.evidence.push(format!(
                "{} ({}; `{}`): {} / {} by `{}`: {} ({})",
                t.e.id,
                t.e.split.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>().join(", "),
                t.e.measure,
                t.num,
                t.den,
                t.along,
                pts.join(", "),
                t.test()
            ));
            f.experiments.push(t.e.id.clone());
        }
        f.evidence.push(
            "one run per cell: the ratios are matched runs (same settings but this one), and a monotone trend is tested by rank correlation, not an interaction F-test".into(),
        );
        f.files = s.families[e.family].files.clone();
        // which level is ahead where the gap is widest
        let up = t.pts[t.pts.len() - 1].1 > 1.0;
        let higher = e.def.direction != crate::analysis::record::Direction::Lower;
        let (b, w) = if up == higher { (&t.num, &t.den) } else { (&t.den, &t.num) };
        f = f
            .with("factor", &t.factor)
            .with("best", b)
            .with("worst", w)
            .with("measure", &e.measure);
        out.push(f);
    }
}
