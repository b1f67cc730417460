//! The data of an analysis: one `Record` per measured run (its file and row, the factors it ran
//! under, what it measured, whether it is valid), and what a measure is (unit, direction).

use serde::Serialize;
use std::collections::BTreeMap;

/// Which way a measure improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Throughput, accuracy: more is better.
    Higher,
    /// Latency, durations, loss, size: less is better.
    Lower,
    /// Counts and descriptors: neither.
    Neutral,
}

/// What kind of quantity a measure is; it decides the canonical unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    /// Tokens per second (t/s, tok/s, tokens/s).
    TokenRate,
    /// Requests or operations per second.
    RequestRate,
    /// A duration, in milliseconds.
    Time,
    /// Tokens, characters, requests.
    Count,
    /// Bytes.
    Bytes,
    /// A fraction or percentage (accuracy, utilisation).
    Ratio,
    /// Anything else (a score, a loss).
    Other,
}

impl Quantity {
    /// The canonical unit values of this quantity are stored in.
    pub fn unit(self) -> &'static str {
        match self {
            Quantity::TokenRate => "tok/s",
            Quantity::RequestRate => "req/s",
            Quantity::Time => "ms",
            Quantity::Count => "",
            Quantity::Bytes => "B",
            Quantity::Ratio => "%",
            Quantity::Other => "",
        }
    }
}

/// How a measure is read: its quantity, direction and importance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeasureDef {
    pub quantity: Quantity,
    pub direction: Direction,
    /// A primary performance measure (throughput, TTFT, latency) that experiments are about.
    pub primary: bool,
    /// The measure includes model loading (TTFT, total duration, load time): a cold start
    /// inflates it.
    pub includes_load: bool,
    /// A spread or tail statistic of another measure (sd, min, max, p99): never the subject of
    /// a comparison of its own.
    pub spread: bool,
}

impl MeasureDef {
    pub fn unit(&self) -> &'static str {
        self.quantity.unit()
    }
}

/// A value of a factor: a number (with the text it was written as) or a label.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Level {
    Num { value: f64, text: String },
    Text(String),
}

impl Level {
    pub fn text(&self) -> &str {
        match self {
            Level::Num { text, .. } => text,
            Level::Text(t) => t,
        }
    }

    pub fn num(&self) -> Option<f64> {
        match self {
            Level::Num { value, .. } => Some(*value),
            Level::Text(_) => None,
        }
    }

    /// A level read from text: a number when the text is one.
    pub fn parse(s: &str) -> Level {
        let t = s.trim();
        match super::readers::columns::parse_num(t) {
            Some(v) if !t.is_empty() => Level::Num { value: v, text: t.to_string() },
            _ => Level::Text(t.to_string()),
        }
    }

    /// Ordering for display: numbers by value, labels by text.
    pub fn cmp_key(&self) -> (u8, f64, String) {
        match self {
            Level::Num { value, text } => (0, *value, text.clone()),
            Level::Text(t) => (1, 0.0, t.clone()),
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

/// One observation of a measure: a value, or a summary of `n` repetitions (mean and sd) when the
/// file keeps only aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Obs {
    pub value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
}

impl Obs {
    pub fn one(value: f64) -> Obs {
        Obs { value, sd: None, n: None }
    }
}

/// Whether a record's measures can be used.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum Validity {
    Ok,
    /// The run says it failed: an error field, `success` false, an HTTP error status, zero
    /// tokens, a timeout, a truncated prompt.
    Failed(String),
    /// The run says it succeeded but its content says otherwise (its generated text is an error
    /// message), or it sits after a gap in time inside its run.
    Suspect(String),
}

impl Validity {
    pub fn is_ok(&self) -> bool {
        matches!(self, Validity::Ok)
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Validity::Ok => None,
            Validity::Failed(r) | Validity::Suspect(r) => Some(r),
        }
    }
}

/// One measured run.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// The file, relative to the analysed folder.
    pub file: String,
    /// Where in the file: `row 3`, `results[2]`, `line 14`.
    pub locator: String,
    /// Position among the file's records, from 0 (the run order when nothing else says).
    pub order: usize,
    /// Configuration and workload, by factor name.
    pub factors: BTreeMap<String, Level>,
    /// Measures in their canonical units, by measure name.
    pub measures: BTreeMap<String, Obs>,
    pub validity: Validity,
    /// When it ran (Unix seconds), from the record or its file's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<i64>,
    /// Repetition index within its cell when the file says (llama-bench samples).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rep: Option<usize>,
}

impl Record {
    pub fn new(file: &str, locator: String, order: usize) -> Record {
        Record {
            file: file.to_string(),
            locator,
            order,
            factors: BTreeMap::new(),
            measures: BTreeMap::new(),
            validity: Validity::Ok,
            time: None,
            rep: None,
        }
    }

    /// Where it came from, as the report cites it: `file row 3`.
    pub fn cite(&self) -> String {
        format!("{} {}", self.file, self.locator)
    }

    /// Marks the record failed unless it already is.
    pub fn fail(&mut self, why: impl Into<String>) {
        if !matches!(self.validity, Validity::Failed(_)) {
            self.validity = Validity::Failed(why.into());
        }
    }

    /// Marks the record suspect unless it already failed or is suspect.
    pub fn suspect(&mut self, why: impl Into<String>) {
        if self.validity.is_ok() {
            self.validity = Validity::Suspect(why.into());
        }
    }
}
