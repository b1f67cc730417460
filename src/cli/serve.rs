//! `chimera serve`: maps flags and Ollama's environment variables (OLLAMA_HOST,
//! OLLAMA_NUM_PARALLEL, OLLAMA_MAX_QUEUE, OLLAMA_KEEP_ALIVE, OLLAMA_ORIGINS, OLLAMA_DEBUG; a flag
//! wins) to a [`chimera::serve::Config`], prints where it listens and one line per request.

use super::{LoadArgs, ServeArgs};
use anyhow::{Context, Result};
use chimera::serve::{api::KeepAlive, Config};

/// OLLAMA_HOST's forms: `host`, `host:port`, `:port`, with or without `http://`.
fn ollama_host(v: &str) -> Result<(Option<String>, Option<u16>)> {
    let v =
        v.trim().trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/');
    let (host, port) = match v.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') || h.starts_with('[') => (h, Some(p)),
        _ => (v, None),
    };
    let port = port
        .map(|p| {
            p.parse::<u16>().with_context(|| format!("invalid value for OLLAMA_HOST: port '{p}'"))
        })
        .transpose()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok(((!host.is_empty()).then(|| host.to_string()), port))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn number<T: std::str::FromStr>(name: &str, v: &str) -> Result<T> {
    v.trim().parse().map_err(|_| anyhow::anyhow!("invalid value for {name}: '{v}'"))
}

/// The configuration the flags and the environment give.
fn config(a: &ServeArgs, load: &LoadArgs) -> Result<Config> {
    let mut c = Config { load: load.options()?, ..Config::default() };
    if let Some(v) = env("OLLAMA_HOST") {
        let (h, p) = ollama_host(&v)?;
        c.host = h.unwrap_or(c.host);
        c.port = p.unwrap_or(c.port);
    }
    if let Some(v) = env("OLLAMA_NUM_PARALLEL") {
        c.parallel = number("OLLAMA_NUM_PARALLEL", &v)?;
    }
    if let Some(v) = env("OLLAMA_MAX_QUEUE") {
        c.max_queue = number("OLLAMA_MAX_QUEUE", &v)?;
    }
    if let Some(v) = env("OLLAMA_KEEP_ALIVE") {
        c.keep_alive = KeepAlive::parse(&serde_json::Value::String(v.clone()))
            .map_err(|e| anyhow::anyhow!("invalid value for OLLAMA_KEEP_ALIVE: {e}"))?;
    }
    c.host = a.host.clone().unwrap_or(c.host);
    c.port = a.port.unwrap_or(c.port);
    c.parallel = a.parallel.unwrap_or(c.parallel);
    c.max_queue = a.max_queue.unwrap_or(c.max_queue);
    if let Some(k) = &a.keep_alive {
        c.keep_alive = KeepAlive::parse(&serde_json::Value::String(k.clone()))
            .map_err(|e| anyhow::anyhow!("invalid value for --keep-alive: {e}"))?;
    }
    if c.parallel == 0 {
        anyhow::bail!("invalid value for --parallel: 0 (must be ≥ 1)");
    }
    c.allow_paths = a.allow_paths;
    if let Some(v) = env("OLLAMA_ORIGINS") {
        c.origins = v.split(',').map(|o| o.trim().to_string()).filter(|o| !o.is_empty()).collect();
    }
    c.verbose = a.verbose || env("OLLAMA_DEBUG").is_some_and(|v| v != "0" && v != "false");
    if !a.quiet {
        c.log = chimera::serve::log::Logger(std::sync::Arc::new(|line| {
            eprintln!("chimera: {} {line}", chimera::stamp::format(now()));
        }));
    }
    Ok(c)
}

fn now() -> i64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    t.map_or(0, |d| d.as_secs() as i64)
}

pub fn run(a: ServeArgs) -> Result<()> {
    let cfg = config(&a, &a.load)?;
    if !chimera::serve::is_loopback(&cfg.host) {
        eprintln!("chimera: warning: listening on {} is reachable from other machines; the API has no authentication", cfg.host);
    }
    let parallel = cfg.parallel;
    chimera::serve::serve(cfg, &mut |addr| {
        eprintln!("chimera: listening on http://{addr} ({parallel} parallel)");
    })?;
    eprintln!("chimera: stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ollama_host_forms() {
        assert_eq!(ollama_host("0.0.0.0:8080").unwrap(), (Some("0.0.0.0".into()), Some(8080)));
        assert_eq!(
            ollama_host("http://127.0.0.1:11435/").unwrap(),
            (Some("127.0.0.1".into()), Some(11435))
        );
        assert_eq!(ollama_host(":9000").unwrap(), (None, Some(9000)));
        assert_eq!(ollama_host("localhost").unwrap(), (Some("localhost".into()), None));
        assert_eq!(ollama_host("[::1]:7000").unwrap(), (Some("::1".into()), Some(7000)));
        assert!(ollama_host("h:port").is_err());
    }
}
