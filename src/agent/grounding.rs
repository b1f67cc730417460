//! The grounding check: every number and date in model-written text is matched against the
//! study (its findings, experiments and catalogue) and the measured metrics; what matches
//! nothing is an "unverified figure".

use crate::analysis::Study;

/// A figure from model text that matched no known value.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Unverified {
    /// The figure as written.
    pub text: String,
    /// The sentence around it.
    pub context: String,
}

/// Known values: every number in the facts and the metrics, and every date in the data.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub values: Vec<f64>,
    pub dates: Vec<String>,
}

impl Known {
    /// Collects every number the study states (its computed results, serialized so nothing is
    /// missed) and every number in `metrics`.
    pub fn from_study(study: &Study, metrics: &[f64]) -> Known {
        let mut k = Known::default();
        let json = crate::analysis::report::metrics(study);
        for key in [
            "findings",
            "experiments",
            "catalogue",
            "failures",
            "claims",
            "cold_starts",
            "span",
            "records",
            "valid_records",
        ] {
            collect(&json[key], &mut k);
        }
        k.values.extend_from_slice(metrics);
        k.values.retain(|v| v.is_finite());
        k
    }

    /// Whether `x`, written with `decimals` decimals, is some known value after rounding and the
    /// usual unit conversions (s↔ms, ns→ms/s, fraction→%).
    pub fn matches(&self, x: f64, decimals: usize) -> bool {
        let tol = 0.5 * 10f64.powi(-(decimals as i32)) + 1e-9 * x.abs();
        const SCALES: [f64; 7] = [1.0, 1e3, 1e-3, 1e-6, 1e-9, 100.0, 1e-2];
        self.values.iter().any(|v| SCALES.iter().any(|s| ((v * s).abs() - x.abs()).abs() <= tol))
    }
}

fn collect(v: &serde_json::Value, k: &mut Known) {
    match v {
        serde_json::Value::Number(n) => k.values.extend(n.as_f64()),
        serde_json::Value::String(s) => {
            // every digit run inside names counts as known (g999_c1024_t0.2 holds 999, 1024, 0.2)
            let spaced: String =
                s.chars().map(|c| if c.is_ascii_digit() || c == '.' { c } else { ' ' }).collect();
            k.values.extend(
                spaced.split_whitespace().filter_map(|t| t.trim_matches('.').parse::<f64>().ok()),
            );
            k.dates.extend(dates(s));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect(x, k)),
        serde_json::Value::Object(o) => o.values().for_each(|x| collect(x, k)),
        _ => {}
    }
}

/// Numbers in text: (as written, byte start, decimals). Digits glued to letters on the left
/// (`gemma3`, `Q4`) are names, not figures.
pub fn numbers(s: &str) -> Vec<(String, usize, usize)> {
    let b = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit()
            && (i == 0
                || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b'.'))
        {
            let start = i;
            while i < b.len()
                && (b[i].is_ascii_digit()
                    || (b[i] == b','
                        && i + 3 < b.len() + 1
                        && b.get(i + 1).is_some_and(|c| c.is_ascii_digit())))
            {
                i += 1;
            }
            let mut decimals = 0;
            if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                    decimals += 1;
                }
            }
            out.push((s[start..i].to_string(), start, decimals));
        } else {
            i += 1;
        }
    }
    out
}

/// Dates written YYYY-MM-DD (or YYYYMMDD inside names), normalised to YYYY-MM-DD.
pub fn dates(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let mut out = vec![];
    let digit = |i: usize| b.get(i).is_some_and(|c| c.is_ascii_digit());
    let mut i = 0;
    while i + 8 <= b.len() {
        let lead_ok = i == 0 || !b[i - 1].is_ascii_digit();
        if lead_ok
            && (0..4).all(|k| digit(i + k))
            && (b[i..].starts_with(b"19") || b[i..].starts_with(b"20"))
        {
            if i + 10 <= b.len()
                && b[i + 4] == b'-'
                && digit(i + 5)
                && digit(i + 6)
                && b[i + 7] == b'-'
                && digit(i + 8)
                && digit(i + 9)
            {
                out.push(s[i..i + 10].to_string());
                i += 10;
                continue;
            }
            if (0..8).all(|k| digit(i + k)) && !digit(i + 8) {
                let (m, d) = (&s[i + 4..i + 6], &s[i + 6..i + 8]);
                if ("01".."13").contains(&m) && ("01".."32").contains(&d) {
                    out.push(format!("{}-{m}-{d}", &s[i..i + 4]));
                }
                i += 8;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// Figures in `text` that match nothing known. Integers up to 10 are exempt: they number lists,
/// sections and recommendations ("three recommendations", "1.").
pub fn check(text: &str, known: &Known) -> Vec<Unverified> {
    let mut out = vec![];
    let found_dates = dates(text);
    for d in &found_dates {
        if !known.dates.contains(d) {
            out.push(Unverified {
                text: d.clone(),
                context: around(text, text.find(d.as_str()).unwrap_or(0)),
            });
        }
    }
    for (t, at, decimals) in numbers(text) {
        // parts of dates were checked as dates
        let lo = (0..=at.saturating_sub(8)).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        let hi = ((at + t.len() + 6).min(text.len())..=text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        if found_dates.iter().any(|d| text[lo..hi].contains(d.as_str())) {
            continue;
        }
        let Ok(x) = t.replace(',', "").parse::<f64>() else { continue };
        if decimals == 0 && x <= 10.0 {
            continue;
        }
        // a bare year is verified by any date in the data from that year
        if decimals == 0
            && (1900.0..2100.0).contains(&x)
            && known.dates.iter().any(|d| d.starts_with(&t))
        {
            continue;
        }
        if !known.matches(x, decimals) {
            out.push(Unverified { text: t, context: around(text, at) });
        }
    }
    out
}

/// Words that give a number its unit ("12 ms", "3 rows", "2.5 ×").
const UNITS: &[&str] = &[
    "%",
    "tok/s",
    "t/s",
    "ms",
    "s",
    "ns",
    "seconds",
    "second",
    "minutes",
    "minute",
    "hours",
    "hour",
    "days",
    "day",
    "weeks",
    "months",
    "month",
    "years",
    "rows",
    "row",
    "files",
    "file",
    "artifacts",
    "tokens",
    "bytes",
    "×",
    "x",
    "times",
    "runs",
    "run",
    "prompts",
    "settings",
    "records",
    "stamps",
    "series",
    "sweeps",
    "configs",
    "gb",
    "mb",
    "kb",
    "gib",
    "mib",
];

/// Each number of `text` with the unit word right after it, if the next word is one.
pub fn number_units(text: &str) -> Vec<(String, Option<String>)> {
    numbers(text)
        .into_iter()
        .map(|(n, at, _)| {
            let rest = text[at + n.len()..].trim_start();
            let word: String = rest
                .chars()
                .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | ';' | ')' | '(' | ':'))
                .collect();
            let word = word.trim_end_matches('.').to_lowercase();
            let unit = UNITS.contains(&word.as_str()).then_some(word);
            (n, unit)
        })
        .collect()
}

/// Numbers of model text written with a unit that the same number never has in `sources` (the
/// facts and findings it was given): "7.458 months" where the findings say "df = 7.458".
pub fn check_units(text: &str, sources: &[&str]) -> Vec<Unverified> {
    let known: Vec<(String, Option<String>)> =
        sources.iter().flat_map(|s| number_units(s)).collect();
    let mut out = vec![];
    for (n, unit) in number_units(text) {
        let Some(u) = unit else { continue };
        if !known.iter().any(|(k, ku)| *k == n && ku.as_deref() == Some(u.as_str())) {
            let at = text.find(&n).unwrap_or(0);
            out.push(Unverified { text: format!("{n} {u}"), context: around(text, at) });
        }
    }
    out
}

/// The number strings of a text as a grammar may allow them: dates whole (YYYY-MM-DD, never
/// their parts), every other number as written.
pub fn allowed_numbers(text: &str) -> Vec<String> {
    let ds = dates(text);
    let mut out: Vec<String> = ds.clone();
    let spans: Vec<(usize, usize)> = ds
        .iter()
        .flat_map(|d| {
            text.match_indices(d.as_str()).map(|(i, m)| (i, i + m.len())).collect::<Vec<_>>()
        })
        .collect();
    for (n, at, _) in numbers(text) {
        if !spans.iter().any(|&(a, b)| at >= a && at < b) {
            out.push(n);
        }
    }
    out.sort();
    out.dedup();
    out
}

fn around(text: &str, at: usize) -> String {
    let lo = (0..=at.saturating_sub(40)).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    let hi = (at + 40).min(text.len());
    let hi = (hi..=text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
    text[lo..hi].replace('\n', " ").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Known {
        Known { values: vec![102.5, 0.125, 2.3, 18.0, 1.2909944], dates: vec!["2025-11-14".into()] }
    }

    #[test]
    fn fabricated_numbers_are_flagged_true_ones_pass() {
        let text =
            "Throughput averaged 102.5 tok/s (sd 1.29) with TTFT of 125 ms; the cold start took \
                    2.3 s. The GPU fan speed reached 85 RPM and compilation took 125.4 s.";
        let bad: Vec<String> = check(text, &known()).into_iter().map(|u| u.text).collect();
        assert_eq!(bad, vec!["85", "125.4"]);
    }

    #[test]
    fn names_small_ordinals_and_known_dates_pass() {
        let text = "1. gemma3 on Q4_K_M, three points; data from 2025-11-14, not 2024-01-02; in 2025, not 2023.";
        let bad: Vec<String> = check(text, &known()).into_iter().map(|u| u.text).collect();
        assert_eq!(bad, vec!["2024-01-02", "2023"]);
    }

    #[test]
    fn non_ascii_text_around_numbers() {
        let k = Known { values: vec![17.7], dates: vec!["2025-11-14".into()] };
        assert!(check("ttft 17.7× the warm median, ×× 2025-11-14 ×", &k).is_empty());
    }

    #[test]
    fn units_must_match_the_sources() {
        let src = ["df = 7.458; throughput fell 11.2 % over 6 runs"];
        let bad: Vec<String> =
            check_units("a length of 7.458 months and 11.2 % over 6 runs, 6 rows", &src)
                .into_iter()
                .map(|u| u.text)
                .collect();
        assert_eq!(bad, vec!["7.458 months", "6 rows"]);
        assert_eq!(
            allowed_numbers("from 2025-10-08 to 2025-11-14, 14 stamps"),
            vec!["14", "2025-10-08", "2025-11-14"]
        );
    }

    #[test]
    fn dates_in_file_names_are_read() {
        assert_eq!(dates("conv_bench_20251008-120000.json"), vec!["2025-10-08"]);
        assert_eq!(dates("run 2025-11-14T10:15:00Z"), vec!["2025-11-14"]);
    }
}
