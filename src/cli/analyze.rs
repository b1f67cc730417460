//! `chimera analyze`: ingest, the two agents on the engine, the grounded report, metrics.json and
//! the chart, written atomically to the output folder.

use super::{load, AnalyzeArgs, GenArgs, LoadArgs};
use anyhow::{bail, Context, Result};
use chimera::agent::grounding::{self, Known};
use chimera::agent::ingest::{self, rfc3339, Facts, IngestOptions};
use chimera::agent::{self, render_comparison, render_report, svg_chart, Analysis, Event};
use chimera::engine::{GenerateOptions, LoadOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

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

/// Stage lines on stderr; on a terminal the token count updates live, elsewhere each stage ends
/// with one line giving its count.
fn progress() -> impl FnMut(Event) {
    use std::io::IsTerminal;
    let live = std::io::stderr().is_terminal();
    let mut stage = String::new();
    let mut last = 0;
    move |e| match e {
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

fn run_agents(
    a: &AnalyzeArgs,
    facts: &Facts,
    load_opts: LoadOptions,
    gen: &GenArgs,
    label: &str,
    config: &str,
) -> Result<Analysis> {
    let mut engine = load(&a.model, load_opts)?;
    let mut opts = gen.options(0);
    if opts.num_predict < 0 {
        // a base model may never emit end-of-turn: bound each agent's answer
        opts.num_predict = 512;
    }
    Ok(agent::analyze(&mut engine, facts, &opts, a.runs, label, config, &mut progress())?)
}

pub fn run(a: AnalyzeArgs) -> Result<()> {
    let t0 = Instant::now();
    a.load.options().validate()?;
    a.gen.options(0).sampler.validate()?;
    if a.runs == 0 {
        bail!("invalid value for --runs: 0 (must be ≥ 1)");
    }
    let now = std::time::SystemTime::now();
    let stamp =
        rfc3339(now).replace([':', '-'], "").replace('T', "-").trim_end_matches('Z').to_string();
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("reports/chimera-{stamp}")));
    let (dir_abs, out_abs) = (absolute(&a.dir), absolute(&out));
    if out_abs.starts_with(&dir_abs) && !a.allow_inside {
        bail!(
            "--out {} is inside the analysed folder {}; pass --allow-inside to write there",
            out.display(),
            a.dir.display()
        );
    }
    if out.exists() {
        bail!("--out {}: already exists", out.display());
    }
    let facts = ingest::ingest(&a.dir, &IngestOptions { max_file_bytes: a.max_file_bytes })?;
    if facts.files.total == 0 {
        bail!("{}: no artifacts (csv, json or md files) to analyze", a.dir.display());
    }
    let ingest_seconds = t0.elapsed().as_secs_f64();
    eprintln!(
        "chimera: ingest: {} artifacts ({} csv, {} json, {} md), {} series in {:.2} s",
        facts.files.total,
        facts.files.by_type.csv,
        facts.files.by_type.json,
        facts.files.by_type.md,
        facts.series.len(),
        ingest_seconds
    );
    let t_an = Instant::now();
    let config = configuration(&a.load, &a.gen);
    let baseline = if a.compare {
        let mut g = a.gen.clone();
        let d = GenerateOptions::default().sampler;
        (g.temperature, g.top_p, g.top_k, g.repeat_penalty, g.min_p) =
            (d.temperature, d.top_p, d.top_k, d.repeat_penalty, d.min_p);
        let l = LoadOptions { num_thread: a.load.num_thread, ..LoadOptions::default() };
        Some(run_agents(&a, &facts, l, &g, "Baseline", "Ollama defaults")?)
    } else {
        None
    };
    let main = run_agents(&a, &facts, a.load.options(), &a.gen, &a.label, &config)?;
    let analysis_seconds = t_an.elapsed().as_secs_f64();

    let t_rep = Instant::now();
    let model = format!("{} ({})", a.model, main.llm_calls.len());
    let model = model.rsplit_once(" (").map_or(model.clone(), |(m, _)| m.to_string());
    let date = rfc3339(now)[..10].to_string();
    // known values: the facts plus every measured metric and workflow time
    let mut measured: Vec<f64> = vec![ingest_seconds, analysis_seconds, facts.files.total as f64];
    for an in std::iter::once(&main).chain(baseline.as_ref()) {
        let m = &an.aggregate_metrics;
        measured.extend([
            m.throughput.mean,
            m.throughput.sd,
            m.ttft_ms.mean,
            m.ttft_ms.sd,
            m.sum_total_duration_ms,
            m.sum_tokens_generated as f64,
        ]);
        for c in &an.llm_calls {
            let x = &c.metrics;
            measured.extend([
                x.ttft_ms,
                x.throughput_tokens_per_sec,
                x.total_duration_ms,
                x.tokens_generated as f64,
                x.prompt_eval_duration_ms,
                x.eval_duration_ms,
                x.load_duration_ms,
            ]);
        }
    }
    let mut known = Known::from_facts(&facts, &measured);
    known.dates.push(date.clone());
    let model_text =
        main.runs.last().map(|r| format!("{}\n{}", r.inventory, r.insight)).unwrap_or_default();
    let unverified = grounding::check(&model_text, &known);
    let mut workflow = agent::render::Workflow {
        ingest_seconds,
        analysis_seconds,
        report_seconds: 0.0,
        total_seconds: 0.0,
    };
    workflow.report_seconds = t_rep.elapsed().as_secs_f64();
    workflow.total_seconds = t0.elapsed().as_secs_f64();
    let report = render_report(&facts, &main, &model, &date, &workflow, &unverified);
    let delta =
        baseline.as_ref().map(|b| agent::delta(&b.aggregate_metrics, &main.aggregate_metrics));
    let metrics = serde_json::json!({
        "benchmark_type": "chimera_analyze",
        "model": model,
        "timestamp": rfc3339(now),
        "folder": a.dir,
        "configuration": config,
        "runs": a.runs,
        "llm_calls": main.llm_calls,
        "aggregate_metrics": main.aggregate_metrics,
        "workflow": workflow,
        "unverified_figures": {"count": unverified.len(), "items": unverified},
        "baseline": baseline.as_ref().map(|b| serde_json::json!({"llm_calls": b.llm_calls, "aggregate_metrics": b.aggregate_metrics, "configuration": b.configuration})),
        "delta": delta,
    });
    // write everything into a fresh folder, then rename it into place
    let tmp = PathBuf::from(format!("{}.tmp-{}", out.display(), std::process::id()));
    let write = || -> Result<Vec<String>> {
        std::fs::create_dir_all(&tmp).with_context(|| format!("{}", tmp.display()))?;
        let mut files = vec![];
        let mut put = |name: &str, body: &[u8]| -> Result<()> {
            chimera::atomic_write(&tmp.join(name), |w| w.write_all(body))?;
            files.push(name.to_string());
            Ok(())
        };
        put("report.md", report.as_bytes())?;
        put("metrics.json", serde_json::to_string_pretty(&metrics)?.as_bytes())?;
        put("chart.svg", svg_chart(&main.llm_calls).as_bytes())?;
        if let (Some(b), Some(d)) = (&baseline, &delta) {
            put("comparison_report.md", render_comparison(b, &main, d, &model, &date).as_bytes())?;
            let bw = agent::render::Workflow { analysis_seconds, ..workflow.clone() };
            put(
                "baseline_report.md",
                render_report(&facts, b, &model, &date, &bw, &[]).as_bytes(),
            )?;
        }
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).with_context(|| format!("{}", parent.display()))?;
        }
        std::fs::rename(&tmp, &out).with_context(|| format!("{}", out.display()))?;
        Ok(files)
    };
    let files = match write() {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    eprintln!(
        "chimera: report: {} ({} unverified figure(s)); total {:.2} s",
        out.join("report.md").display(),
        unverified.len(),
        t0.elapsed().as_secs_f64()
    );
    if a.json {
        let summary = serde_json::json!({
            "out_dir": out, "files": files, "unverified_figures": unverified.len(),
            "aggregate_metrics": main.aggregate_metrics, "workflow": workflow, "delta": delta,
        });
        writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(&summary)?)?;
    } else {
        writeln!(std::io::stdout().lock(), "{}", out.join("report.md").display())?;
    }
    Ok(())
}
