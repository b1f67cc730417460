//! Findings: the analyses read as sentences, ranked so that what the data was collected to answer
//! comes first (the largest effects on primary measures, with their certainty), then the data
//! problems that change a conclusion. One finding per factor and measure across the experiments
//! of one benchmark (a sweep run on four models is one finding, with the four in its evidence),
//! one per root cause of failure, one per pattern: never one per row.

mod effects;
mod problems;
mod shapes;

use super::Study;
use serde::{Deserialize, Serialize};

/// At most this many Key Findings; the rest go to the appendix.
pub const MAX_KEY: usize = 30;
/// At most this many items in the Executive Summary.
pub const MAX_SUMMARY: usize = 8;
/// No sentence shape more often than this among the Key Findings.
pub const MAX_SHAPE: usize = 3;

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A setting changes a measure (significant).
    Effect,
    /// A setting does not change a measure beyond noise.
    NoEffect,
    /// Cannot be tested (one run per level).
    Untested,
    /// Two settings interact.
    Interaction,
    /// A measure across a numeric factor.
    Scaling,
    /// Sessions of one benchmark differ.
    Drift,
    /// Runs that reported success but are not (an outage).
    Outage,
    /// Failures of one root cause.
    Failures,
    /// Cold starts as a pattern.
    ColdStarts,
    /// Report numbers checked against the runs.
    Claims,
    /// Copies and derived files counted once.
    Duplicates,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Effect => "effect",
            Kind::NoEffect => "no effect",
            Kind::Untested => "untestable",
            Kind::Interaction => "interaction",
            Kind::Scaling => "scaling",
            Kind::Drift => "drift",
            Kind::Outage => "outage",
            Kind::Failures => "failures",
            Kind::ColdStarts => "cold starts",
            Kind::Claims => "report claims",
            Kind::Duplicates => "duplicates",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub id: String,
    pub kind: Kind,
    /// One sentence, every number in it computed.
    pub sentence: String,
    /// Test statistics, per-experiment detail, caveats.
    pub evidence: Vec<String>,
    pub experiments: Vec<String>,
    pub files: Vec<String>,
    /// Whether it belongs in the Executive Summary when it ranks high enough.
    pub headline: bool,
    /// The names it is about, by role (`best`, `worst`, `factor`, `measure`, `file`): what an
    /// action on it may name.
    pub names: Vec<(String, String)>,
    /// Rank score (higher first).
    pub score: f64,
    /// Every number written in the sentence and the evidence.
    pub numbers: Vec<String>,
}

impl Finding {
    /// The name of a role, if the finding has one.
    pub fn name(&self, role: &str) -> Option<&str> {
        self.names.iter().find(|(r, _)| r == role).map(|(_, n)| n.as_str())
    }

    fn with(mut self, role: &str, name: &str) -> Finding {
        if !name.is_empty() {
            self.names.push((role.to_string(), name.to_string()));
        }
        self
    }

    fn new(kind: Kind, sentence: String, score: f64) -> Finding {
        Finding {
            id: String::new(),
            kind,
            sentence,
            evidence: vec![],
            experiments: vec![],
            files: vec![],
            headline: true,
            names: vec![],
            score,
            numbers: vec![],
        }
    }

    /// The sentence with numbers and quoted names blanked: findings of one shape differ only
    /// in those.
    pub fn shape(&self) -> String {
        let mut out = String::new();
        let mut in_tick = false;
        let mut last_num = false;
        for c in self.sentence.chars() {
            if c == '`' {
                in_tick = !in_tick;
                if in_tick {
                    out.push('N');
                }
                continue;
            }
            if in_tick {
                continue;
            }
            let numeric = c.is_ascii_digit() || (last_num && (c == '.' || c == ','));
            if numeric {
                if !last_num {
                    out.push('#');
                }
            } else {
                out.push(c);
            }
            last_num = numeric;
        }
        out
    }
}

/// Every finding, ranked, and how many lead as Key Findings: at most `MAX_KEY`, no shape more
/// than `MAX_SHAPE` times among them; the rest are the appendix's.
pub fn all(s: &Study) -> (Vec<Finding>, usize) {
    let mut out = vec![];
    problems::all(s, &mut out);
    effects::all(s, &mut out);
    // the same sentence from two experiments (one table read twice in a file) is one finding
    let mut seen: Vec<Finding> = vec![];
    for f in out {
        match seen.iter_mut().find(|x| x.sentence == f.sentence) {
            Some(x) => x.experiments.extend(f.experiments),
            None => seen.push(f),
        }
    }
    let mut out = seen;
    out.sort_by(|a, b| {
        b.score.total_cmp(&a.score).then(a.kind.cmp(&b.kind)).then(a.sentence.cmp(&b.sentence))
    });
    // shapes beyond the limit move behind every other finding
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    let (mut key, mut rest): (Vec<Finding>, Vec<Finding>) = (vec![], vec![]);
    for f in out {
        let c = counts.entry(f.shape()).or_default();
        *c += 1;
        if *c <= MAX_SHAPE && key.len() < MAX_KEY {
            key.push(f);
        } else {
            rest.push(f);
        }
    }
    let n_key = key.len();
    key.extend(rest);
    for (i, f) in key.iter_mut().enumerate() {
        f.id = format!("F{}", i + 1);
        let text = format!("{} {}", f.sentence, f.evidence.join(" "));
        f.numbers = numbers(&text);
    }
    (key, n_key)
}

/// The numbers written in a text, as written (`76.59`, `-64.4`, `0.0001`, `2025-10-02`).
pub fn numbers(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut out: Vec<String> = vec![];
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit()
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        {
            let mut j = i;
            while j < b.len()
                && (b[j].is_ascii_digit()
                    || (matches!(b[j], b'.' | b'-' | b':')
                        && j + 1 < b.len()
                        && b[j + 1].is_ascii_digit()))
            {
                j += 1;
            }
            let start = if i > 0 && matches!(b[i - 1], b'-' | b'+') { i - 1 } else { i };
            let s = text[start..j].to_string();
            if !out.contains(&s) {
                out.push(s);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_numbers() {
        let f = Finding::new(
            Kind::Effect,
            "`tag` changes `tokens_s`: q4_0 is +64.4 % over q8_0 (p < 0.0001).".into(),
            0.0,
        );
        assert_eq!(f.shape(), "N changes N: q#_# is +# % over q#_# (p < #).");
        assert_eq!(
            numbers("from 76.59 to -64.4 % on 2025-10-02, F(2, 12)"),
            vec!["76.59", "-64.4", "2025-10-02", "2", "12"]
        );
    }
}
