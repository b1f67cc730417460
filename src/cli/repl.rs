//! `chimera run MODEL` on a terminal with no prompt: `ollama run`'s interactive chat over a
//! [`chimera::session::Session`], with rustyline's line editing and history. Ctrl-C stops the
//! answer being written (at the prompt it says how to leave), Ctrl-D and `/bye` exit.

use anyhow::Result;
use chimera::engine::{Engine, GenerateOptions};
use chimera::session::Session;
use rustyline::error::ReadlineError;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const HELP: &str = "Available Commands:
  /set parameter NAME VALUE   Set a parameter (temperature, top_k, top_p, min_p, seed,
                              num_predict, repeat_penalty, repeat_last_n, stop, ...)
  /set system TEXT            Set the system message
  /set verbose | quiet        Show or hide timings after each answer
  /show info                  Show details for this model
  /show parameters            Show the parameters that differ from the defaults
  /show system                Show the system message
  /clear                      Clear the session context
  /bye                        Exit
  /?, /help                   Help for a command

Use Ctrl + c to stop an answer, Ctrl + d or /bye to exit.";

/// Runs the chat until `/bye` or Ctrl-D.
pub fn chat(
    engine: &mut Engine,
    opts: GenerateOptions,
    system: Option<String>,
    earlier: &[chimera::chat::Message],
    mut verbose: bool,
) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    let mut rl = rustyline::DefaultEditor::new()?;
    let history = chimera::registry::home_dir().join("history");
    let _ = rl.load_history(&history);
    let mut session = Session::new(opts);
    session.system = system;
    session.start_from(earlier);
    loop {
        let line = match rl.readline(">>> ") {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => {
                println!("Use Ctrl + d or /bye to exit.");
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = rl.add_history_entry(line);
        if line.starts_with('/') {
            match command(line, engine, &mut session, &mut verbose) {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => println!("error: {e}"),
            }
            continue;
        }
        stop.store(false, Ordering::Relaxed);
        let mut out = std::io::stdout().lock();
        let answer = session.turn(engine, line, &mut |piece| {
            let _ = out.write_all(piece.as_bytes());
            let _ = out.flush();
            !stop.load(Ordering::Relaxed)
        });
        drop(out);
        println!("\n");
        match answer {
            Ok(o) if verbose => eprint!("{}", super::stats_block(&o)),
            Ok(_) => {}
            Err(e) => println!("error: {e}"),
        }
    }
    if let Some(dir) = history.parent() {
        let _ = std::fs::create_dir_all(dir);
        let _ = rl.save_history(&history);
    }
    Ok(())
}

/// A `/` command; true to exit.
fn command(line: &str, e: &Engine, s: &mut Session, verbose: &mut bool) -> Result<bool> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words[..] {
        ["/bye"] | ["/exit"] => return Ok(true),
        ["/?"] | ["/help"] | ["/?", ..] | ["/help", ..] => println!("{HELP}"),
        ["/clear"] => {
            s.clear();
            println!("Cleared session context");
        }
        ["/set", "system", ..] => {
            let text = line.split_once("system").map_or("", |(_, t)| t).trim();
            s.system = (!text.is_empty()).then(|| text.to_string());
            println!("Set system message.");
        }
        ["/set", "parameter", name, ref values @ ..] if !values.is_empty() => {
            set_parameter(&mut s.opts, name, values)?;
            println!("Set parameter '{name}' to '{}'", values.join(", "));
        }
        ["/set", "verbose"] => {
            *verbose = true;
            println!("Set 'verbose' mode.");
        }
        ["/set", "quiet"] => {
            *verbose = false;
            println!("Set 'quiet' mode.");
        }
        ["/show", "info"] => show_info(e),
        ["/show", "parameters"] => show_parameters(&s.opts),
        ["/show", "system"] => match &s.system {
            Some(t) => println!("{t}"),
            None => println!("No system message was specified for this model."),
        },
        _ => anyhow::bail!("unknown command '{line}' (type /? for help)"),
    }
    Ok(false)
}

/// `/set parameter`: the value read as Ollama's API reads it, through the same validation.
fn set_parameter(opts: &mut GenerateOptions, name: &str, values: &[&str]) -> Result<()> {
    let value = if name == "stop" {
        serde_json::json!(values)
    } else {
        let v = values.join(" ");
        serde_json::from_str::<serde_json::Value>(&v)
            .ok()
            .filter(|x| x.is_number() || x.is_boolean())
            .unwrap_or(serde_json::Value::String(v))
    };
    let map = serde_json::Map::from_iter([(name.to_string(), value)]);
    let mut next = opts.clone();
    let mut load = chimera::serve::api::LoadOverrides::default();
    chimera::serve::api::apply_options(&map, &mut next, &mut load)
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    if load != chimera::serve::api::LoadOverrides::default() {
        anyhow::bail!(
            "{name} applies when the model loads: restart with --{}",
            name.replace('_', "-")
        );
    }
    if next == *opts && !chimera::serve::api::is_option(name) {
        anyhow::bail!("unknown parameter '{name}'");
    }
    *opts = next;
    Ok(())
}

fn show_info(e: &Engine) {
    let c = &e.model.cfg;
    let params = e.model.gguf.as_ref().map_or(0, |g| g.n_params());
    println!("  Model");
    println!("    {:<20}gemma3", "architecture");
    println!("    {:<20}{:.2}M", "parameters", params as f64 / 1e6);
    println!("    {:<20}{}", "context length", c.context_length);
    println!("    {:<20}{}", "embedding length", c.n_embd);
    println!("    {:<20}{}", "quantization", chimera::bench::file_type(e));
    println!();
}

fn show_parameters(o: &GenerateOptions) {
    let d = GenerateOptions::default();
    let (s, ds) = (&o.sampler, &d.sampler);
    let rows = [
        ("temperature", s.temperature != ds.temperature, s.temperature.to_string()),
        ("top_k", s.top_k != ds.top_k, s.top_k.to_string()),
        ("top_p", s.top_p != ds.top_p, s.top_p.to_string()),
        ("min_p", s.min_p != ds.min_p, s.min_p.to_string()),
        ("seed", s.seed != ds.seed, s.seed.to_string()),
        ("repeat_penalty", s.repeat_penalty != ds.repeat_penalty, s.repeat_penalty.to_string()),
        ("num_predict", o.num_predict != d.num_predict, o.num_predict.to_string()),
        ("stop", o.stop != d.stop, format!("{:?}", o.stop)),
    ];
    println!("Model defined parameters:");
    for (name, changed, v) in rows {
        if changed {
            println!("{name:<20}{v}");
        }
    }
}
