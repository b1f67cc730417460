//! Recommendations and risks derived from the findings by rule, each naming the findings it rests
//! on: adopt a configuration only when its gain is significant, add repetitions where n is too
//! small to judge, chase the dominant failure message, and so on.

use super::findings::{Finding, Kind};
use serde::Serialize;

/// One recommendation and the findings behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub text: String,
    pub rests_on: Vec<String>,
}

/// One risk, its evidence and its mitigation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Risk {
    pub risk: String,
    pub mitigation: String,
    pub rests_on: Vec<String>,
}

fn ids<'a>(fs: impl Iterator<Item = &'a Finding>) -> Vec<String> {
    fs.map(|f| f.id.clone()).collect()
}

fn of<'a>(found: &'a [Finding], kinds: &[Kind]) -> Vec<&'a Finding> {
    found.iter().filter(|f| kinds.contains(&f.kind)).collect()
}

/// The recommendations the findings support, most important first.
pub fn recommendations(found: &[Finding]) -> Vec<Recommendation> {
    let mut out = vec![];
    let mut push = |text: String, rests: Vec<String>| {
        if !rests.is_empty() {
            out.push(Recommendation { text, rests_on: rests });
        }
    };
    for f in of(found, &[Kind::Regression]) {
        let what = f.comparison.as_ref().map_or("the metric".into(), |c| format!("`{}`", c.metric));
        push(
            format!(
                "Find what changed between the runs compared in {} before adopting the newer one: {what} is significantly worse.",
                f.id
            ),
            vec![f.id.clone()],
        );
    }
    // the dominant failure message: the failure finding with the most rows (findings are ranked)
    if let Some(f) = of(found, &[Kind::Failures]).first() {
        push(
            format!("Chase the dominant failure first ({}): {}", f.id, f.sentence),
            vec![f.id.clone()],
        );
    }
    let never = of(found, &[Kind::NeverCompleted]);
    push(
        "Re-run what never completed, after checking that its server was reachable: it has no measurements to compare.".into(),
        ids(never.into_iter()),
    );
    for f in of(found, &[Kind::Improvement, Kind::SweepBest]) {
        push(
            format!(
                "Adopt the faster configuration of {}: its gain is significant at α = 0.05.",
                f.id
            ),
            vec![f.id.clone()],
        );
    }
    let loser = of(found, &[Kind::SweepLoser]);
    push(
        "Avoid the settings that are significantly slower than every other setting of their sweep."
            .into(),
        ids(loser.into_iter()),
    );
    let same = of(found, &[Kind::NoChange, Kind::SweepNoise]);
    push(
        "Do not adopt a configuration whose difference is not significant: keep the baseline (or the simpler setting) until a rerun with more repetitions shows a gain.".into(),
        ids(same.into_iter()),
    );
    let thin: Vec<&Finding> = found
        .iter()
        .filter(|f| {
            f.kind == Kind::Unjudged
                || f.comparison.as_ref().is_some_and(|c| c.baseline.n < 4 || c.candidate.n < 4)
        })
        .collect();
    push(
        "Add repetitions: with fewer than 4 runs per side the non-parametric test cannot reach p < 0.05, and one run per side cannot be judged at all.".into(),
        ids(thin.into_iter()),
    );
    let cold = of(found, &[Kind::ColdStart]);
    push(
        "Report cold and warm TTFT apart: send one warm-up request after each model load and keep it out of the statistics.".into(),
        ids(cold.into_iter()),
    );
    let broken = of(found, &[Kind::Nulls, Kind::EmptyFile, Kind::Unreadable]);
    push(
        "Fix the exporters that wrote empty, unreadable or null-valued files, so that the next report can read them.".into(),
        ids(broken.into_iter()),
    );
    out
}

/// The risks the findings show, with mitigations.
pub fn risks(found: &[Finding]) -> Vec<Risk> {
    let table: [(&[Kind], &str, &str); 6] = [
        (
            &[Kind::Regression],
            "A performance regression ships with the newer build or configuration.",
            "Gate releases on the suite's comparison; bisect between the compared runs.",
        ),
        (
            &[Kind::Failures, Kind::NeverCompleted],
            "Runs fail or never complete, so comparisons rest on fewer measurements than planned.",
            "Health-check the server before each run, retry failed requests, and report failures beside the means.",
        ),
        (
            &[Kind::ColdStart],
            "Cold starts inflate mean TTFT and make warm performance look worse than it is.",
            "Warm up after each load and report cold and warm TTFT separately.",
        ),
        (
            &[Kind::NoChange, Kind::SweepNoise, Kind::Unjudged],
            "Tuning is adopted for a difference that is within run-to-run noise.",
            "Require a significant difference (α = 0.05, n ≥ 4 per side) before changing the defaults.",
        ),
        (
            &[Kind::Outlier, Kind::Noise],
            "Outliers and noisy series move the means.",
            "Inspect the outlying rows; compare medians (Mann–Whitney) beside means.",
        ),
        (
            &[Kind::Nulls, Kind::EmptyFile, Kind::Unreadable],
            "Missing telemetry: some artifacts hold no usable values.",
            "Validate exporters' output (encoding, nulls, empty documents) when it is written.",
        ),
    ];
    table
        .iter()
        .filter_map(|(kinds, risk, mitigation)| {
            let rests = ids(of(found, kinds).into_iter());
            (!rests.is_empty()).then(|| Risk {
                risk: (*risk).into(),
                mitigation: (*mitigation).into(),
                rests_on: rests,
            })
        })
        .collect()
}
