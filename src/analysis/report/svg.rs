//! One SVG chart per leading experiment: the levels of its main factor as means with 95 %
//! intervals, or, for a numeric scale factor, the measure as a line over the levels (a line per
//! level of a second factor when there is one).

use crate::analysis::design::{Experiment, Role};
use crate::analysis::fmt;
use crate::analysis::methods::Analysis;
use std::fmt::Write as _;

const W: f64 = 720.0;
const H: f64 = 360.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 70.0;
const COLORS: [&str; 6] = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn frame(title: &str, ylabel: &str) -> String {
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n<text x=\"{LEFT}\" y=\"20\" font-size=\"13\">{}</text>\n",
        esc(title)
    );
    let _ = writeln!(
        s,
        "<text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\">{}</text>",
        H / 2.0,
        H / 2.0,
        esc(ylabel)
    );
    let _ = writeln!(
        s,
        "<line x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>",
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM
    );
    let _ = writeln!(
        s,
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{}\" stroke=\"black\"/>",
        H - BOTTOM
    );
    s
}

/// The y range with a margin, from zero when the data sit close to it.
fn y_range(lo: f64, hi: f64) -> (f64, f64) {
    let lo = if lo > 0.0 && lo < 0.5 * hi { 0.0 } else { lo };
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 1e-3).max(1e-12);
    (lo - pad, hi + pad)
}

fn y_axis(s: &mut String, lo: f64, hi: f64) {
    for k in 0..=4 {
        let v = lo + (hi - lo) * k as f64 / 4.0;
        let y = H - BOTTOM - (H - BOTTOM - TOP) * k as f64 / 4.0;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 4.0,
            y + 4.0,
            fmt::num(v)
        );
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>",
            W - RIGHT
        );
    }
}

/// The chart of an experiment.
pub fn chart(e: &Experiment, a: &Analysis) -> Option<String> {
    let unit = e.def.unit();
    let ylabel =
        if unit.is_empty() { e.measure.clone() } else { format!("{} ({unit})", e.measure) };
    if let Some(sc) = a.scaling.first() {
        return Some(lines(e, &sc.factor, &ylabel));
    }
    let eff = a.effects.iter().find(|x| x.role == Role::Treatment).or(a.effects.first())?;
    let mut s = frame(&format!("{}: {} (means, 95 % intervals)", e.id, e.title()), &ylabel);
    let lv = &eff.levels;
    let lo = lv.iter().map(|l| l.ci95.map_or(l.mean, |c| c.0)).fold(f64::INFINITY, f64::min);
    let hi = lv.iter().map(|l| l.ci95.map_or(l.mean, |c| c.1)).fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = y_range(lo, hi);
    y_axis(&mut s, lo, hi);
    let y = |v: f64| H - BOTTOM - (v - lo) / (hi - lo) * (H - BOTTOM - TOP);
    let step = (W - LEFT - RIGHT) / lv.len().max(1) as f64;
    for (i, l) in lv.iter().enumerate() {
        let x = LEFT + step * (i as f64 + 0.5);
        if let Some((a, b)) = l.ci95 {
            let _ = writeln!(
                s,
                "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"black\"/>",
                y(a),
                y(b)
            );
        }
        let color = if i == eff.best {
            COLORS[2]
        } else if i == eff.worst {
            COLORS[3]
        } else {
            COLORS[0]
        };
        let _ =
            writeln!(s, "<circle cx=\"{x:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"{color}\"/>", y(l.mean));
        let label: String = l.level.chars().take(18).collect();
        let _ = writeln!(
            s,
            "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            H - BOTTOM + 16.0,
            esc(&label)
        );
        let _ = writeln!(
            s,
            "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">n = {}</text>",
            H - BOTTOM + 30.0,
            l.n
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n</svg>",
        (LEFT + W - RIGHT) / 2.0,
        H - 12.0,
        esc(&eff.name)
    );
    Some(s)
}

/// A line chart of the measure over a numeric factor, one line per level of the next treatment.
fn lines(e: &Experiment, factor: &str, ylabel: &str) -> String {
    let fi = e.factors.iter().position(|f| f.name == factor).unwrap_or(0);
    let series = e.factors.iter().position(|f| {
        f.name != factor && f.role == Role::Treatment && f.levels.len() <= COLORS.len()
    });
    let n_series = series.map_or(1, |s| e.factors[s].levels.len());
    let mut s = frame(&format!("{}: {}", e.id, e.title()), ylabel);
    let xs: Vec<f64> = e.factors[fi].levels.iter().filter_map(|l| l.num()).collect();
    let (xmin, xmax) =
        xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    let log = xmin > 0.0 && xmax / xmin >= 16.0;
    let tx = |v: f64| if log { v.log2() } else { v };
    let (a0, a1) = (tx(xmin), tx(xmax));
    let xpos =
        |v: f64| LEFT + (tx(v) - a0) / (a1 - a0).max(1e-12) * (W - LEFT - RIGHT - 20.0) + 10.0;
    // mean per (series level, x level)
    let mut pts: Vec<Vec<(f64, f64)>> = vec![vec![]; n_series];
    for (si, line) in pts.iter_mut().enumerate() {
        for (li, l) in e.factors[fi].levels.iter().enumerate() {
            let v: Vec<f64> = e
                .obs
                .iter()
                .filter(|o| o.levels[fi] == li && series.is_none_or(|sf| o.levels[sf] == si))
                .map(|o| o.y)
                .collect();
            if let (Some(x), false) = (l.num(), v.is_empty()) {
                line.push((x, v.iter().sum::<f64>() / v.len() as f64));
            }
        }
    }
    let all: Vec<f64> = pts.iter().flatten().map(|p| p.1).collect();
    let (lo, hi) = y_range(
        all.iter().cloned().fold(f64::INFINITY, f64::min),
        all.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
    );
    y_axis(&mut s, lo, hi);
    let y = |v: f64| H - BOTTOM - (v - lo) / (hi - lo) * (H - BOTTOM - TOP);
    for x in &xs {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            xpos(*x),
            H - BOTTOM + 16.0,
            fmt::num(*x)
        );
    }
    for (si, line) in pts.iter().enumerate() {
        let color = COLORS[si % COLORS.len()];
        let path: Vec<String> =
            line.iter().map(|(x, v)| format!("{:.1},{:.1}", xpos(*x), y(*v))).collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        for (x, v) in line {
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>",
                xpos(*x),
                y(*v)
            );
        }
        if let Some(sf) = series {
            let label = e.factors[sf].levels[si].text();
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" fill=\"{color}\">{} = {}</text>",
                LEFT + 10.0 + 130.0 * si as f64,
                H - 28.0,
                esc(&e.factors[sf].name),
                esc(label)
            );
        }
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}{}</text>\n</svg>",
        (LEFT + W - RIGHT) / 2.0,
        H - 12.0,
        esc(factor),
        if log { " (log scale)" } else { "" }
    );
    s
}
