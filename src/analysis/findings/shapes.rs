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
