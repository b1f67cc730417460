//! The report of a study: Markdown a person reads (an Executive Summary of at most eight items,
//! what was compared, at most thirty Key Findings, the data's problems, charts, an appendix with
//! the catalogue, outliers and the rest), `metrics.json`, CSV tables and one SVG chart per
//! leading experiment. The report presents; every number in it was computed before.

mod md;
pub mod svg;

use super::findings::{Finding, Kind, MAX_SUMMARY};
use super::Study;

pub use md::markdown;

/// What a caller adds to the computed report: who narrated, the model's grounded words.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    pub title: String,
    /// `**Model:** …` and similar header lines.
    pub header: Vec<(String, String)>,
    /// A paragraph of model text for the Executive Summary, already checked.
    pub summary: Option<String>,
    /// Why there is none, when there is none.
    pub summary_note: Option<String>,
    /// Model text per finding id (an action), already checked.
    pub notes: Vec<(String, String)>,
    /// Appendix sections (title, Markdown).
    pub appendix: Vec<(String, String)>,
}

/// The findings of the Executive Summary: the largest effects on the primary measures first
/// (what the data was collected to answer), then the data problems that change a conclusion;
/// at most `MAX_SUMMARY`, in rank order.
pub fn summary_items(s: &Study) -> Vec<&Finding> {
    let key = s.key_findings();
    let problem = |f: &&Finding| {
        matches!(
            f.kind,
            Kind::Outage | Kind::Failures | Kind::ColdStarts | Kind::Claims | Kind::Duplicates
        )
    };
    // one answer per benchmark, so that every experiment the folder holds gets its say
    let family =
        |f: &Finding| f.experiments.first().and_then(|id| s.experiment(id)).map(|(e, _)| e.family);
    let mut seen = vec![];
    let mut answers: Vec<&Finding> = vec![];
    for f in key.iter().filter(|f| f.headline && !problem(f)) {
        let fam = family(f);
        if fam.is_some() && seen.contains(&fam) {
            continue;
        }
        seen.push(fam);
        answers.push(f);
        if answers.len() == MAX_SUMMARY - 3 {
            break;
        }
    }
    // then the data's problems: an outage first, then what removes runs or configurations
    let mut problems: Vec<&Finding> = key.iter().filter(|f| f.headline && problem(f)).collect();
    problems.sort_by_key(|f| match f.kind {
        Kind::Outage => 0,
        // failures that remove a large share of the runs (their score grows with the share)
        Kind::Failures if f.score >= 560.0 => 1,
        Kind::ColdStarts => 2,
        Kind::Claims => 3,
        _ => 4,
    });
    problems.truncate(MAX_SUMMARY - answers.len());
    let mut out: Vec<&Finding> = answers.into_iter().chain(problems).collect();
    if out.len() < MAX_SUMMARY {
        for f in key.iter().filter(|f| f.headline) {
            if out.len() >= MAX_SUMMARY {
                break;
            }
            if !out.iter().any(|g| g.id == f.id) {
                out.push(f);
            }
        }
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

/// The experiments worth a chart: those of the first Executive Summary findings with a
/// treatment effect or a scaling view, at most `n`.
pub fn chart_experiments(s: &Study, n: usize) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for f in summary_items(s).into_iter().chain(s.key_findings()) {
        if !matches!(f.kind, Kind::Effect | Kind::Scaling | Kind::Drift) {
            continue;
        }
        for id in &f.experiments {
            if out.len() < n && !out.contains(id) {
                out.push(id.clone());
            }
        }
    }
    out
}

/// The measurement catalogue as CSV.
pub fn catalogue_csv(s: &Study) -> String {
    let mut w = csv::Writer::from_writer(vec![]);
    let _ = w.write_record([
        "family",
        "measure",
        "unit",
        "n",
        "missing",
        "mean",
        "sd",
        "min",
        "max",
        "cv_percent",
    ]);
    for r in &s.catalogue {
        let _ = w.write_record([
            r.family.clone(),
            r.measure.clone(),
            r.unit.clone(),
            r.n.to_string(),
            r.missing.to_string(),
            r.mean.to_string(),
            r.sd.to_string(),
            r.min.to_string(),
            r.max.to_string(),
            r.cv_percent.map(|c| c.to_string()).unwrap_or_default(),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// The findings as CSV (every one, Key Findings first).
pub fn findings_csv(s: &Study) -> String {
    let mut w = csv::Writer::from_writer(vec![]);
    let _ = w.write_record(["id", "kind", "key", "sentence", "experiments", "files"]);
    for (i, f) in s.findings.iter().enumerate() {
        let _ = w.write_record([
            f.id.clone(),
            f.kind.label().to_string(),
            (i < s.key_count).to_string(),
            f.sentence.clone(),
            f.experiments.join(" "),
            f.files.join(" "),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Everything computed, for `metrics.json`.
pub fn metrics(s: &Study) -> serde_json::Value {
    let experiments: Vec<serde_json::Value> = s
        .experiments
        .iter()
        .zip(&s.analyses)
        .map(|(e, a)| {
            serde_json::json!({
                "id": e.id,
                "title": e.title(),
                "family": s.families[e.family].name,
                "measure": e.measure,
                "unit": e.def.unit(),
                "direction": e.def.direction,
                "factors": e.factors,
                "held": e.held,
                "left_out": e.left_out,
                "notes": e.notes,
                "analysis": a,
            })
        })
        .collect();
    let families: Vec<serde_json::Value> = s
        .families
        .iter()
        .map(|f| serde_json::json!({"id": f.id, "name": f.name, "format": f.format, "files": f.files, "records": f.records.len(), "path_factors": f.path_factors}))
        .collect();
    serde_json::json!({
        "folder": s.root,
        "files": s.files,
        "records": s.records,
        "valid_records": s.valid,
        "span": s.span.map(|(a, b)| (crate::stamp::format(a), crate::stamp::format(b))),
        "families": families,
        "duplicates": s.duplicates,
        "experiments": experiments,
        "cold_starts": s.cold,
        "failures": s.failures,
        "claims": s.claims,
        "catalogue": s.catalogue,
        "outliers": s.outliers,
        "findings": s.findings,
        "executive_summary": summary_items(s).iter().map(|f| f.id.clone()).collect::<Vec<_>>(),
    })
}
