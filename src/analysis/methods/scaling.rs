//! Scaling over a numeric factor (prompt length, depth, context size, batch, concurrency,
//! threads): the mean at each level, the ratio of the last level to the first, where the
//! measure peaks, and the step where it breaks (a worsening much larger than the others).

use crate::analysis::design::{Experiment, Role};
use crate::analysis::record::Direction;
use serde::Serialize;

/// Factors that are a size or a load, read as a scale.
const SCALE: &[&str] = &[
    "n_prompt",
    "n_gen",
    "n_depth",
    "num_ctx",
    "ctx",
    "ctx_size",
    "context_length",
    "context_size",
    "prompt_len",
    "input_len",
    "output_len",
    "seq_len",
    "batch_size",
    "n_batch",
    "n_ubatch",
    "concurrency",
    "max_concurrency",
    "n_parallel",
    "parallel",
    "pl",
    "pp",
    "tg",
    "b",
    "num_prompts",
    "request_rate",
    "n_threads",
    "threads",
    "num_thread",
    "longctx",
    "depth",
    "max_num_seqs",
];

impl Scaling {
    /// A level as its files write it.
    pub fn label(&self, v: f64) -> String {
        self.labels
            .iter()
            .find(|(x, _)| *x == v)
            .map_or_else(|| crate::analysis::fmt::num(v), |(_, t)| t.clone())
    }
}

pub fn is_scale(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SCALE.contains(&n.as_str())
        || n.ends_with("_len")
        || n.contains("ctx")
        || n.contains("depth")
        || n.contains("context")
}

/// A scale that is the work asked for, not a setting chosen (the context already filled, the
/// prompt and generation lengths): that throughput falls as it grows is expected, so its effect
/// is context for the comparisons, not one of them.
pub fn is_workload(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("depth")
        || n.starts_with("ending_")
        || n.starts_with("starting_")
        || n.ends_with("_len")
        || matches!(n.as_str(), "n_prompt" | "n_gen" | "pp" | "tg" | "longctx" | "prompt length")
}

#[derive(Debug, Clone, Serialize)]
pub struct Scaling {
    pub factor: String,
    /// (level, mean, n) in level order.
    pub points: Vec<(f64, f64, usize)>,
    /// Mean at the last level over the mean at the first.
    pub ratio: f64,
    /// The level with the best mean.
    pub peak: f64,
    /// (from, to, change %) of a step that worsens the measure far more than the others.
    pub breaks: Option<(f64, f64, f64)>,
    /// Each level's text as written (`48k`), by value.
    pub labels: Vec<(f64, String)>,
}

/// The scaling views of an experiment's numeric treatment factors with three levels or more.
pub fn all(e: &Experiment) -> Vec<Scaling> {
    let mut out = vec![];
    for (fi, f) in e.factors.iter().enumerate() {
        if f.role != Role::Treatment
            || f.levels.len() < 3
            || !is_scale(&f.name)
            || f.levels.iter().any(|l| l.num().is_none())
        {
            continue;
        }
        let mut points: Vec<(f64, f64, usize)> = f
            .levels
            .iter()
            .enumerate()
            .map(|(li, l)| {
                let v: Vec<f64> =
                    e.obs.iter().filter(|o| o.levels[fi] == li).map(|o| o.y).collect();
                (l.num().unwrap_or(0.0), v.iter().sum::<f64>() / v.len().max(1) as f64, v.len())
            })
            .filter(|p| p.2 > 0)
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        if points.len() < 3 || points[0].1 == 0.0 {
            continue;
        }
        let better =
            |a: f64, b: f64| if e.def.direction == Direction::Lower { a < b } else { a > b };
        let peak =
            points.iter().fold(points[0], |best, p| if better(p.1, best.1) { *p } else { best }).0;
        // worsening of each step, in % of the level before
        let steps: Vec<(f64, f64, f64)> = points
            .windows(2)
            .map(|w| {
                let ch = (w[1].1 - w[0].1) / w[0].1 * 100.0;
                (w[0].0, w[1].0, if e.def.direction == Direction::Lower { ch } else { -ch })
            })
            .collect();
        let mut worse: Vec<f64> = steps.iter().map(|s| s.2.abs()).collect();
        worse.sort_by(f64::total_cmp);
        let median = worse[worse.len() / 2];
        let breaks = steps
            .iter()
            .filter(|s| s.2 >= 20.0 && s.2 >= 2.0 * median)
            .max_by(|a, b| a.2.total_cmp(&b.2))
            .map(|s| (s.0, s.1, if e.def.direction == Direction::Lower { s.2 } else { -s.2 }));
        let ratio = points[points.len() - 1].1 / points[0].1;
        let labels =
            f.levels.iter().filter_map(|l| l.num().map(|v| (v, l.text().to_string()))).collect();
        out.push(Scaling { factor: f.name.clone(), points, ratio, peak, breaks, labels });
    }
    out
}
