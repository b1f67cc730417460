//! `chimera serve`: Ollama's and OpenAI's HTTP APIs over the engine, for the clients users
//! already have. `api` and `openai` read and write the two APIs' shapes, `sched` runs the
//! loaded model's batcher on its own thread (continuous batching over KV slots), `http` holds
//! the axum routes (`v1` the OpenAI answers, `responses` OpenAI's Responses API, `embed` the embeddings endpoints, `models` the
//! model listing ones, `manage` create/copy/delete/blobs), `reply` Ollama's response objects, `keep_alive` its durations, `tools`
//! tool calling for a template without it, `log` one line per request. The library never prints: log lines go to the `Logger` the caller gives.

pub mod api;
mod embed;
mod http;
pub mod keep_alive;
pub mod log;
mod manage;
mod models;
pub mod openai;
pub mod reply;
mod responses;
pub mod sched;
pub mod tools;
mod v1;

use crate::engine::LoadOptions;
use crate::error::{Error, Result};
use api::KeepAlive;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The server's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    /// Requests decoded together (KV slots of the loaded model).
    pub parallel: usize,
    /// Requests that may wait for a slot; more get 503.
    pub max_queue: usize,
    /// How long a model stays loaded after its last request, unless a request says.
    pub keep_alive: KeepAlive,
    /// Model names may be filesystem paths (else only registry names).
    pub allow_paths: bool,
    /// Load options every model starts from (num_ctx, threads, the GPU).
    pub load: LoadOptions,
    /// The largest request body accepted.
    pub body_limit: usize,
    /// Origins allowed besides Ollama's defaults (`OLLAMA_ORIGINS`).
    pub origins: Vec<String>,
    /// Log lines carry the options a request asked for.
    pub verbose: bool,
    /// Where the per-request log lines go.
    pub log: log::Logger,
}

impl Default for Config {
    fn default() -> Self {
        // ref: Ollama envconfig: 127.0.0.1:11434, OLLAMA_MAX_QUEUE 512, OLLAMA_KEEP_ALIVE 5m;
        // OLLAMA_NUM_PARALLEL 4 for a CPU runner of this size
        Config {
            host: "127.0.0.1".into(),
            port: 11434,
            parallel: 4,
            max_queue: 512,
            keep_alive: KeepAlive::For(std::time::Duration::from_secs(300)),
            allow_paths: false,
            load: LoadOptions::default(),
            body_limit: 32 << 20,
            origins: vec![],
            verbose: false,
            log: log::Logger::default(),
        }
    }
}

/// Whether an address is a loopback one.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Serves until SIGINT or SIGTERM: stops accepting, ends in-flight requests (they get an error
/// object) and returns. `on_ready` hears the bound address once the socket listens.
pub fn serve(cfg: Config, on_ready: &mut dyn FnMut(SocketAddr)) -> Result<()> {
    if cfg.parallel == 0 {
        return Err(Error::option("parallel", 0, "must be ≥ 1"));
    }
    let io = |e: std::io::Error| Error::Device(format!("serve: {e}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(io)?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind((cfg.host.as_str(), cfg.port)))
        .map_err(|e| Error::Device(format!("cannot listen on {}:{}: {e}", cfg.host, cfg.port)))?;
    on_ready(listener.local_addr().map_err(io)?);
    let shared = Arc::new(sched::Shared::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let mut load = cfg.load.clone();
    load.n_seq = cfg.parallel;
    let sched_cfg = sched::SchedConfig { load, keep_alive: cfg.keep_alive };
    let s2 = shared.clone();
    let scheduler = std::thread::Builder::new()
        .name("chimera-scheduler".into())
        .spawn(move || sched::run(rx, s2, sched_cfg))
        .map_err(io)?;
    let stop = tx.clone();
    let state = Arc::new(http::AppState { tx: Mutex::new(tx), shared, cfg });
    let app = http::router(state);
    let served = rt.block_on(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown_signal().await;
                // in-flight requests end now, so that their connections close
                let _ = stop.send(sched::Msg::Shutdown);
            })
            .await
    });
    let _ = scheduler.join();
    served.map_err(io)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
