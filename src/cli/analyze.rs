//! `chimera analyze`: maps the flags to an [`agent::analyze::Job`], prints progress and the
//! outcome; the workflow is the library's.

use super::{resolve, AnalyzeArgs, GenArgs, LoadArgs};
use anyhow::Result;
use chimera::agent::{self, analyze::Job, Event};
use chimera::engine::{GenerateOptions, LoadOptions};
use std::io::Write;
use std::path::PathBuf;

/// The configuration line: an option at its Ollama default prints `default`.
fn configuration(load: &LoadArgs, gen: &GenArgs) -> String {
    let d = GenerateOptions::default().sampler;
    let dl = LoadOptions::default();
    let f = |x: f32, def: f32| (x != def).then(|| format!("{x}"));
    agent::describe(&[
        ("num_gpu", (load.num_gpu != dl.num_gpu).then(|| load.num_gpu.to_string())),
        ("num_ctx", (load.num_ctx != dl.num_ctx).then(|| load.num_ctx.to_string())),
        ("temp", f(gen.temperature, d.temperature)),
        ("top_p", f(gen.top_p, d.top_p)),
        ("top_k", (gen.top_k != d.top_k).then(|| gen.top_k.to_string())),
        ("repeat_penalty", f(gen.repeat_penalty, d.repeat_penalty)),
    ])
}

/// Stage lines on stderr; on a terminal the token count updates live, elsewhere each stage ends
/// with one line giving its count.
fn progress() -> impl FnMut(Event) {
    use std::io::IsTerminal;
    let live = std::io::stderr().is_terminal();
    let mut stage = String::new();
    let mut last = 0;
    move |e| match e {
        Event::Ingested { study, seconds } => {
            let (data, read) = study.counts();
            eprintln!(
                "chimera: study: {read} files read ({data} with runs), {} runs ({} valid), {} experiments, {} findings in {seconds:.2} s",
                study.records,
                study.valid,
                study.experiments.len(),
                study.findings.len()
            );
        }
        Event::Warning(w) => eprintln!("warning: {w}"),
        Event::Stage { run, stage: s } => {
            if !stage.is_empty() && !live {
                eprintln!("chimera: {stage}: {last} tokens");
            } else if live && !stage.is_empty() {
                eprintln!();
            }
            stage = if run == 0 { s.to_string() } else { format!("{s} (run {run})") };
            last = 0;
            if live {
                eprint!("chimera: {stage}: 0 tokens");
            }
        }
        Event::Tokens { n } => {
            last = n;
            if live {
                eprint!("\rchimera: {stage}: {n} tokens");
            }
        }
        Event::Call { run, stage: s, tokens } => {
            if !stage.is_empty() {
                // the stage before the side-by-side calls (the warm-up) ends here
                if live {
                    eprintln!();
                } else {
                    eprintln!("chimera: {stage}: {last} tokens");
                }
                stage.clear();
            }
            eprintln!("chimera: {s} (run {run}): {tokens} tokens");
        }
        Event::Done => {
            if live {
                eprintln!();
            } else if !stage.is_empty() {
                eprintln!("chimera: {stage}: {last} tokens");
            }
            stage.clear();
        }
    }
}

pub fn run(a: AnalyzeArgs) -> Result<()> {
    a.load.options()?.validate()?;
    a.gen.options(0).sampler.validate()?;
    if a.runs == 0 {
        anyhow::bail!("invalid value for --runs: 0 (must be ≥ 1)");
    }
    let stamp = chimera::stamp::rfc3339(std::time::SystemTime::now())
        .replace([':', '-'], "")
        .replace('T', "-")
        .trim_end_matches('Z')
        .to_string();
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("reports/chimera-{stamp}")));
    let job = Job {
        dir: a.dir.clone(),
        out: out.clone(),
        allow_inside: a.allow_inside,
        max_file_bytes: a.max_file_bytes,
        model_path: resolve(&a.model)?,
        model_name: a.model.clone(),
        load: a.load.options()?,
        gen: a.gen.options(0),
        runs: a.runs,
        label: a.label.clone(),
        configuration: configuration(&a.load, &a.gen),
        compare: a.compare,
    };
    let o = agent::analyze::run(&job, &mut progress()).map_err(|e| match e {
        chimera::Error::InvalidOption { name, value, why } if name == "out" => {
            anyhow::anyhow!("--out {value}: {why}")
        }
        chimera::Error::InvalidOption { name, value, why } if name == "dir" => {
            anyhow::anyhow!("{value}: {why}")
        }
        e => e.into(),
    })?;
    eprintln!(
        "chimera: report: {} ({} findings, {} unverified figure(s)); total {:.2} s",
        o.out_dir.join("report.md").display(),
        o.findings,
        o.unverified_figures,
        o.workflow.total_seconds
    );
    let mut stdout = std::io::stdout().lock();
    if a.json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&o)?)?;
    } else {
        writeln!(stdout, "{}", o.out_dir.join("report.md").display())?;
    }
    Ok(())
}
