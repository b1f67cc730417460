//! `analyze`, the workflow: the study of the folder (read, experiments, analyses, findings; no
//! model) → the agents on the engine (grounded, the shared block cached) → the checks → the
//! report folder (report.md, metrics.json, catalogue.csv, findings.csv, one chart per leading
//! experiment; with `compare`, the baseline's report and the comparison), written atomically.

use super::calls::{self, CallSpec};
use super::grounding::{self, Known};
use super::narrative::{self, Style};
use super::render::{self, Workflow};
use super::{Aggregate, Analysis, Event, LlmCall, Rejected, RunText};
use crate::analysis::findings::{Finding, Kind};
use crate::analysis::{self as study_mod, Study};
use crate::engine::{Engine, GenerateOptions, LoadOptions};
use crate::error::{Error, Result};
use crate::stamp;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Findings the model writes one sentence of commentary (or one action) on.
pub const COMMENTARY_FINDINGS: usize = 3;

/// Tokens each stage may write when num_predict is unlimited: a base model may never end.
const BUDGET: [(&str, i64); 4] =
    [("collector", 96), ("insight", 128), ("commentary", 48), ("action", 40)];

/// Charts: one per leading experiment, at most this many.
const CHARTS: usize = 4;

/// One analysis to run.
#[derive(Debug, Clone)]
pub struct Job {
    pub dir: PathBuf,
    pub out: PathBuf,
    /// Allow the output folder inside the analysed folder.
    pub allow_inside: bool,
    pub max_file_bytes: u64,
    pub model_path: PathBuf,
    /// The model as the user named it (for the report).
    pub model_name: String,
    pub load: LoadOptions,
    pub gen: GenerateOptions,
    pub runs: usize,
    pub label: String,
    /// The configuration line (see [`super::describe`]).
    pub configuration: String,
    /// Also run Ollama's defaults as a baseline and write the comparison.
    pub compare: bool,
}

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub out_dir: PathBuf,
    pub files: Vec<String>,
    pub findings: usize,
    pub unverified_figures: usize,
    pub aggregate_metrics: Aggregate,
    pub workflow: Workflow,
    pub delta: Option<super::Delta>,
}

/// The nearest existing ancestor, canonicalized, with the rest appended.
fn absolute(p: &Path) -> PathBuf {
    let p = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    let mut base = p.clone();
    let mut rest = vec![];
    while !base.exists() {
        match (base.file_name(), base.parent()) {
            (Some(n), Some(parent)) => {
                rest.push(n.to_os_string());
                base = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut out = base.canonicalize().unwrap_or(base);
    out.extend(rest.iter().rev());
    out
}

/// Refusals before any work: an output folder inside the input or already there, no runs.
fn check(job: &Job) -> Result<()> {
    if job.runs == 0 {
        return Err(Error::option("runs", 0, "must be ≥ 1"));
    }
    if absolute(&job.out).starts_with(absolute(&job.dir)) && !job.allow_inside {
        return Err(Error::option(
            "out",
            job.out.display(),
            &format!(
                "inside the analysed folder {}; pass --allow-inside to write there",
                job.dir.display()
            ),
        ));
    }
    if job.out.exists() {
        return Err(Error::option("out", job.out.display(), "already exists"));
    }
    Ok(())
}

/// Runs the whole workflow.
pub fn run(job: &Job, progress: &mut dyn FnMut(Event)) -> Result<Outcome> {
    let t0 = Instant::now();
    check(job)?;
    let now = std::time::SystemTime::now();
    let study =
        study_mod::study(&job.dir, &study_mod::ScanOptions { max_file_bytes: job.max_file_bytes })?;
    if study.counts().0 == 0 {
        return Err(Error::option(
            "dir",
            job.dir.display(),
            "no artifacts with runs to analyze (csv, json, jsonl, md, sql, txt or log files)",
        ));
    }
    let ingest_seconds = t0.elapsed().as_secs_f64();
    progress(Event::Ingested { study: &study, seconds: ingest_seconds });
    let t_an = Instant::now();
    let baseline = if job.compare {
        let load = LoadOptions {
            num_thread: job.load.num_thread,
            n_seq: slots(job.runs),
            ..LoadOptions::default()
        };
        let gen =
            GenerateOptions { num_predict: job.gen.num_predict, ..GenerateOptions::default() };
        let mut engine = load_engine(&job.model_path, load, progress)?;
        Some(agents(&mut engine, &study, &gen, job.runs, "Baseline", "Ollama defaults", progress)?)
    } else {
        None
    };
    let load = LoadOptions { n_seq: slots(job.runs), ..job.load.clone() };
    let mut engine = load_engine(&job.model_path, load, progress)?;
    let base_model = engine.tokenizer.chat_template().is_none();
    let main =
        agents(&mut engine, &study, &job.gen, job.runs, &job.label, &job.configuration, progress)?;
    let analysis_seconds = t_an.elapsed().as_secs_f64();

    let t_rep = Instant::now();
    let date = stamp::rfc3339(now)[..10].to_string();
    let unverified: Vec<grounding::Unverified> = main
        .rejected
        .iter()
        .filter(|r| r.run_number == job.runs)
        .flat_map(|r| r.unverified.clone())
        .collect();
    let mut workflow = Workflow { ingest_seconds, analysis_seconds, ..Default::default() };
    workflow.report_seconds = t_rep.elapsed().as_secs_f64();
    workflow.total_seconds = t0.elapsed().as_secs_f64();
    let mut charts: Vec<(String, String)> = vec![];
    let mut chart_files: Vec<(String, Vec<u8>)> = vec![];
    for id in crate::analysis::report::chart_experiments(&study, CHARTS) {
        if let Some(svg) =
            study.experiment(&id).and_then(|(e, a)| crate::analysis::report::svg::chart(e, a))
        {
            let name = format!("chart-{id}.svg");
            charts.push((id, name.clone()));
            chart_files.push((name, svg.into_bytes()));
        }
    }
    let ctx = render::Context {
        study: &study,
        model: &job.model_name,
        date: &date,
        workflow: &workflow,
        charts: &charts,
        base_model,
    };
    let report = render::render_report(&ctx, &main, &unverified);
    let delta =
        baseline.as_ref().map(|b| super::delta(&b.aggregate_metrics, &main.aggregate_metrics));
    let metrics = serde_json::json!({
        "benchmark_type": "chimera_analyze",
        "model": job.model_name,
        "timestamp": stamp::rfc3339(now),
        "folder": job.dir,
        "configuration": job.configuration,
        "runs": job.runs,
        "study": crate::analysis::report::metrics(&study),
        "llm_calls": main.llm_calls,
        "aggregate_metrics": main.aggregate_metrics,
        "concurrency": main.concurrency,
        "workflow": workflow,
        "unverified_figures": {"count": unverified.len(), "items": unverified},
        "rejected_model_text": main.rejected,
        "baseline": baseline.as_ref().map(|b| serde_json::json!({"llm_calls": b.llm_calls, "aggregate_metrics": b.aggregate_metrics, "configuration": b.configuration})),
        "delta": delta,
    });
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("report.md".into(), report.into_bytes()),
        (
            "metrics.json".into(),
            serde_json::to_string_pretty(&metrics).unwrap_or_default().into_bytes(),
        ),
        ("catalogue.csv".into(), crate::analysis::report::catalogue_csv(&study).into_bytes()),
        ("findings.csv".into(), crate::analysis::report::findings_csv(&study).into_bytes()),
    ];
    files.extend(chart_files);
    if let (Some(b), Some(d)) = (&baseline, &delta) {
        files.push((
            "comparison_report.md".into(),
            render::render_comparison(b, &main, d, &job.model_name, &date).into_bytes(),
        ));
        let bu: Vec<_> = b.rejected.iter().flat_map(|r| r.unverified.clone()).collect();
        files.push(("baseline_report.md".into(), render::render_report(&ctx, b, &bu).into_bytes()));
    }
    write_folder(&job.out, &files)?;
    Ok(Outcome {
        out_dir: job.out.clone(),
        files: files.into_iter().map(|f| f.0).collect(),
        findings: study.findings.len(),
        unverified_figures: unverified.len(),
        aggregate_metrics: main.aggregate_metrics,
        workflow,
        delta,
    })
}

/// KV slots for `runs` side by side: one each, up to [`MAX_SIDE_BY_SIDE`] (more run one after
/// another).
fn slots(runs: usize) -> usize {
    if (2..=MAX_SIDE_BY_SIDE).contains(&runs) {
        runs
    } else {
        1
    }
}

/// The most runs that go side by side (each holds a KV slot of num_ctx positions).
pub const MAX_SIDE_BY_SIDE: usize = 8;

fn load_engine(path: &Path, opts: LoadOptions, progress: &mut dyn FnMut(Event)) -> Result<Engine> {
    let engine = Engine::load(path, opts)?;
    engine.warnings.iter().for_each(|w| progress(Event::Warning(w)));
    Ok(engine)
}

/// Writes every file into a fresh folder beside `out`, then renames it into place: a failure
/// leaves no partial output.
fn write_folder(out: &Path, files: &[(String, Vec<u8>)]) -> Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp-{}", out.display(), std::process::id()));
    let write = || -> Result<()> {
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        for (name, body) in files {
            crate::atomic_write(&tmp.join(name), |w| w.write_all(body))?;
        }
        std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e))
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&tmp);
    })
}

/// The numbers and dates the model's text may state: the study's, and the engine's
/// measurements of this analysis.
pub fn known(study: &Study, calls: &[LlmCall]) -> Known {
    let mut measured: Vec<f64> = vec![study.files.len() as f64];
    for c in calls {
        let m = &c.metrics;
        measured.extend([
            m.ttft_ms,
            m.throughput_tokens_per_sec,
            m.total_duration_ms,
            m.tokens_generated as f64,
        ]);
    }
    let mut k = Known::from_study(study, &measured);
    for f in &study.findings {
        k.values.extend(f.numbers.iter().filter_map(|n| n.replace(',', "").parse::<f64>().ok()));
        k.dates.extend(grounding::dates(&f.sentence));
    }
    k
}

/// The warm-up call (reported as the cold start; it also fills the cache with the shared block),
/// then `runs` × the model's calls: with a chat template the collector, the insight and a
/// commentary on each of the top findings; on a base model one action on each of them. One
/// run's calls go one after another, several runs side by side in their own KV slots.
#[allow(clippy::too_many_arguments)]
pub fn agents(
    engine: &mut Engine,
    study: &Study,
    opts: &GenerateOptions,
    runs: usize,
    label: &str,
    configuration: &str,
    progress: &mut dyn FnMut(Event),
) -> Result<Analysis> {
    if runs == 0 {
        return Err(Error::option("runs", 0, "must be ≥ 1"));
    }
    let t0 = Instant::now();
    let style =
        if engine.tokenizer.chat_template().is_some() { Style::Chat } else { Style::Completion };
    let summary = crate::analysis::report::summary_items(study);
    let facts_text = super::study_text(study);
    let shared = narrative::shared_block(&facts_text, &summary);
    let top: Vec<&Finding> = summary
        .iter()
        .copied()
        .filter(|f| style == Style::Chat || !narrative::action_options(f).is_empty())
        .take(COMMENTARY_FINDINGS)
        .collect();
    let top_text: String =
        summary.iter().map(|f| format!("{} {}\n", f.sentence, f.evidence.join(" "))).collect();
    let mut sources: Vec<String> =
        study.findings.iter().map(|f| format!("{} {}", f.sentence, f.evidence.join(" "))).collect();
    sources.push(facts_text.clone());
    let names = narrative::names_in(&summary);
    let collector = narrative::collector(style, &shared);
    let inventory_grammar =
        narrative::grounding_grammar(&grounding::allowed_numbers(&facts_text), &names, 5, true);
    let mut plan = Runs {
        style,
        top_numbers: grounding::allowed_numbers(&top_text),
        names,
        shared,
        top,
        collector,
        inventory_grammar,
        known: Checker { known: known(study, &[]), sources },
        texts: (1..=runs).map(|r| RunText { run_number: r, ..Default::default() }).collect(),
        rejected: vec![],
    };
    let mut a =
        Analysis { label: label.into(), configuration: configuration.into(), ..Default::default() };
    let warmup = match calls::Plan::call(&plan, 1, 0) {
        Some(first) => CallSpec { stage: "warmup", budget: 1, ..first },
        None => CallSpec {
            stage: "warmup",
            finding: None,
            prompt: plan.collector.clone(),
            grammar: plan.inventory_grammar.clone(),
            budget: 1,
        },
    };
    calls::one(engine, opts, 0, &warmup, progress, &mut a.llm_calls)?;
    a.concurrency = calls::runs(engine, opts, runs, &mut plan, progress, &mut a.llm_calls)?;
    progress(Event::Done);
    a.runs = plan.texts;
    a.rejected = plan.rejected;
    a.aggregate_metrics = Aggregate::of(&a.llm_calls);
    a.analysis_seconds = t0.elapsed().as_secs_f64();
    Ok(a)
}

/// Every run's calls, each response checked before it is kept.
struct Runs<'a> {
    style: Style,
    shared: String,
    collector: narrative::Prompt,
    inventory_grammar: crate::constraint::Grammar,
    top_numbers: Vec<String>,
    names: Vec<String>,
    top: Vec<&'a Finding>,
    known: Checker,
    texts: Vec<RunText>,
    rejected: Vec<Rejected>,
}

impl calls::Plan for Runs<'_> {
    fn call(&self, run: usize, step: usize) -> Option<CallSpec> {
        let spec = |stage, finding: Option<&Finding>, prompt, grammar| CallSpec {
            stage,
            finding: finding.map(|f| f.id.clone()),
            prompt,
            grammar,
            budget: budget(stage),
        };
        if self.style == Style::Completion {
            let f = self.top.get(step)?;
            return Some(spec(
                "action",
                Some(f),
                narrative::action(f),
                narrative::action_grammar(f),
            ));
        }
        match step {
            0 => Some(spec(
                "collector",
                None,
                self.collector.clone(),
                self.inventory_grammar.clone(),
            )),
            1 => {
                let p =
                    narrative::insight(self.style, &self.shared, &self.texts[run - 1].inventory);
                Some(spec(
                    "insight",
                    None,
                    p,
                    narrative::grounding_grammar(&self.top_numbers, &self.names, 1, false),
                ))
            }
            k => {
                let f = self.top.get(k - 2)?;
                let numbers =
                    grounding::allowed_numbers(&format!("{} {}", f.sentence, f.evidence.join(" ")));
                let g = narrative::grounding_grammar(&numbers, &self.names, 1, false);
                Some(spec("commentary", Some(f), narrative::commentary(&self.shared, f), g))
            }
        }
    }

    fn take(&mut self, run: usize, step: usize, response: String) {
        let (style, rejected, known) = (self.style, &mut self.rejected, &self.known);
        let text = &mut self.texts[run - 1];
        if style == Style::Completion {
            let f = self.top[step];
            let t = response.trim().to_string();
            match narrative::action_contradiction(&t) {
                None if !t.is_empty() => text.commentary.push((f.id.clone(), t)),
                why => rejected.push(Rejected {
                    run_number: run,
                    stage: "action".into(),
                    finding: Some(f.id.clone()),
                    text: t,
                    unverified: vec![],
                    contradiction: why.or(Some("empty".into())),
                }),
            }
            return;
        }
        match step {
            0 => {
                let inv =
                    format!("{} {response}", narrative::started(style, narrative::INVENTORY_START));
                text.inventory = keep(rejected, known, (run, "collector", None), inv.trim(), None);
            }
            1 => {
                let summary =
                    format!("{} {response}", narrative::started(style, narrative::SUMMARY_START));
                text.insight = keep(rejected, known, (run, "insight", None), summary.trim(), None);
            }
            k => {
                let f = self.top[k - 2];
                let c = keep(
                    rejected,
                    known,
                    (run, "commentary", Some(&f.id)),
                    &response,
                    Some(f.kind),
                );
                if !c.is_empty() {
                    text.commentary.push((f.id.clone(), c));
                }
            }
        }
    }
}

fn budget(stage: &str) -> i64 {
    BUDGET.iter().find(|b| b.0 == stage).map_or(64, |b| b.1)
}

/// The text when it passes the grounding check (and, for a commentary, does not contradict the
/// kind of its finding); otherwise "" and the text goes to `rejected` with the reason.
fn keep(
    rejected: &mut Vec<Rejected>,
    known: &Checker,
    (run, stage, finding): (usize, &str, Option<&str>),
    text: &str,
    kind: Option<Kind>,
) -> String {
    let text = text.trim();
    let mut bad = grounding::check(text, &known.known);
    let sources: Vec<&str> = known.sources.iter().map(String::as_str).collect();
    bad.extend(grounding::check_units(text, &sources));
    let contradiction = kind.and_then(|k| narrative::contradiction(k, text));
    if bad.is_empty() && contradiction.is_none() {
        return text.to_string();
    }
    rejected.push(Rejected {
        run_number: run,
        stage: stage.into(),
        finding: finding.map(String::from),
        text: text.into(),
        unverified: bad,
        contradiction,
    });
    String::new()
}

/// What model text is checked against: the known values and the texts that gave them units.
struct Checker {
    known: Known,
    sources: Vec<String>,
}
