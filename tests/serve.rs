//! `chimera serve` as its users meet it: the real `ollama` and `openai` Python packages as
//! clients, the error statuses, a full queue, a disconnect that frees its slot, batched greedy
//! requests that equal the sequential ones, and a clean stop on SIGTERM. `clients` drives the
//! other client software (LangChain, LiteLLM) and the browser's view (CORS).

use crate::util::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MODEL: &str = "gemma3:270m";

/// A running `chimera serve` on a free port.
pub(crate) struct Server {
    child: Child,
    pub(crate) url: String,
    pub(crate) log: Arc<Mutex<String>>,
}

impl Server {
    pub(crate) fn start(args: &[&str]) -> Server {
        Server::start_env(args, &[])
    }

    /// A server with environment variables of its own.
    pub(crate) fn start_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        real_model(); // present in the store before the server resolves it
        let mut child = Command::new(env!("CARGO_BIN_EXE_chimera"))
            .args(["serve", "--port", "0"])
            .args(args)
            .env_remove("OLLAMA_HOST")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chimera serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut log = String::new();
        let url = loop {
            let line = lines.next().expect("serve exited before listening").unwrap();
            log.push_str(&line);
            log.push('\n');
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        let log = Arc::new(Mutex::new(log));
        let l2 = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                l2.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        Server { child, url, log }
    }

    pub(crate) fn post(&self, path: &str, body: &str) -> (u16, serde_json::Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        let mut r = agent
            .post(&format!("{}{path}", self.url))
            .content_type("application/json")
            .send(body)
            .unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap();
        let v = serde_json::from_str(&text).unwrap_or_else(|_| serde_json::json!({"raw": text}));
        (status, v)
    }

    pub(crate) fn get(&self, path: &str) -> serde_json::Value {
        let mut r = ureq::get(&format!("{}{path}", self.url)).call().unwrap();
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
    }

    pub(crate) fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The client packages (ollama, openai, langchain-ollama, litellm): .ci/run installs them into
/// target/pyclients; a test run without them installs them there first.
const PY_CLIENTS: [&str; 4] = ["ollama", "openai", "langchain-ollama", "litellm"];

fn py_clients() -> PathBuf {
    static ONCE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ONCE.get_or_init(install_py_clients).clone()
}

fn install_py_clients() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pyclients");
    let ok = |d: &PathBuf| {
        Command::new("python3")
            .args(["-c", "import ollama, openai, langchain_ollama, litellm"])
            .env("PYTHONPATH", d)
            // LiteLLM fetches its price list on import unless told to use the bundled one
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok(&dir) {
        let st = Command::new("python3")
            .args(["-m", "pip", "install", "-q", "--target"])
            .arg(&dir)
            .args(PY_CLIENTS)
            .status()
            .expect("run pip");
        assert!(
            st.success() && ok(&dir),
            "the client Python packages must install into {}",
            dir.display()
        );
    }
    dir
}

/// Runs one of tests/data/serve's client scripts against the server; its JSON summary.
pub(crate) fn client(script: &str, s: &Server) -> serde_json::Value {
    client_with(script, s, &[])
}

/// A client script with arguments after URL and MODEL.
pub(crate) fn client_with(script: &str, s: &Server, extra: &[&str]) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/serve").join(script);
    let o = Command::new("python3")
        .arg(path)
        .args([&s.url, MODEL])
        .args(extra)
        .env("PYTHONPATH", py_clients())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{script}: {}\nserver: {}",
        String::from_utf8_lossy(&o.stderr),
        s.log.lock().unwrap()
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn the_ollama_python_client_works() {
    let s = Server::start(&[]);
    let v = client("ollama_client.py", &s);
    let g = &v["generate"];
    assert_eq!(
        (g["done"].as_bool(), g["done_reason"].as_str(), g["eval_count"].as_u64()),
        (Some(true), Some("length"), Some(12))
    );
    assert!(g["response"].as_str().unwrap().contains("capital"), "{g}");
    assert!(
        g["total_duration"].as_u64() > g["eval_duration"].as_u64()
            && g["context"].as_u64() > Some(12)
    );
    assert_eq!(v["generate_stream"], g["response"], "streamed pieces join to the same greedy text");
    assert!(v["generate_stream_pieces"].as_u64() > Some(3));
    assert_eq!(v["chat"]["role"], "assistant");
    assert_eq!(v["chat_stream"], v["chat"]["content"]);
    let j: serde_json::Value =
        serde_json::from_str(v["format_json"].as_str().unwrap()).expect("format json gives JSON");
    assert!(j.is_object(), "format json is an object at the root, as Ollama's: {j}");
    let cat: serde_json::Value =
        serde_json::from_str(v["format_schema"].as_str().unwrap()).expect("schema output parses");
    assert!(cat["name"].is_string() && cat["age"].is_i64(), "{cat}");
    assert_eq!(v["list"], serde_json::json!([MODEL]));
    assert_eq!(
        (v["show"]["family"].as_str(), v["show"]["format"].as_str(), v["show"]["arch"].as_str()),
        (Some("gemma3"), Some("gguf"), Some("gemma3"))
    );
    assert_eq!(v["ps"], serde_json::json!([MODEL]));
    assert_eq!(v["missing"][0], 404);
    assert_eq!(v["bad_option"][0], 400);
    assert!(v["bad_option"][1].as_str().unwrap().contains("top_p"));
    assert_eq!(v["version"]["version"], "0.12.11", "an Ollama version clients compare against");
    assert_eq!(v["version"]["chimera"], env!("CARGO_PKG_VERSION"));
    let lp = v["logprobs"].as_array().unwrap();
    assert_eq!(lp.len(), 3, "one entry per generated token: {lp:?}");
    let joined: String = lp.iter().map(|l| l["token"].as_str().unwrap()).collect();
    assert_eq!(joined, v["logprobs_text"].as_str().unwrap());
    for l in lp {
        assert!(l["logprob"].as_f64().unwrap() <= 0.0);
        // greedy: the chosen token is the most likely one
        assert_eq!((l["top"].as_array().unwrap().len(), &l["top"][0]), (2, &l["token"]));
    }
    streamed_logprobs(&v, &lp.iter().map(|l| l["token"].clone()).collect::<Vec<_>>());
    tool_round_trip(&v["tool_calls"], &v["after_tool"], "add");
    assert_eq!(v["tool_calls_stream"], serde_json::json!(["add"]), "a streamed call arrives whole");
    assert_eq!(v["tool_calls_stream_text"], "", "a call's JSON is not streamed as text");
    let e = &v["embed"];
    assert_eq!((e["n"].as_u64(), e["dims"].as_u64()), (Some(2), Some(640)));
    assert!((e["norm"].as_f64().unwrap() - 1.0).abs() < 1e-4, "embeddings are L2-normalised");
    assert!(e["prompt_eval_count"].as_u64() > Some(6));
    assert_eq!((v["embed_64"].as_u64(), v["embeddings_legacy"].as_u64()), (Some(64), Some(640)));
    assert_eq!(v["embed_too_long"][0], 400);
    assert!(v["embed_too_long"][1].as_str().unwrap().contains("num_ctx 512"));
    assert_eq!(v["think"][0], 400);
    assert!(v["think"][1].as_str().unwrap().contains("does not support thinking"));
}

/// A one-shot prompt's tool call (a base model answers as the conversation before it did): one
/// call of `name` with integer arguments, and the tool's result accepted back into the prompt.
pub(crate) fn tool_round_trip(calls: &serde_json::Value, after: &serde_json::Value, name: &str) {
    let c = calls.as_array().unwrap();
    assert_eq!(c.len(), 1, "{calls}");
    assert_eq!(c[0]["name"], name);
    let args = c[0].get("arguments").or(c[0].get("args")).unwrap();
    assert!(args["a"].is_i64() && args["b"].is_i64(), "arguments match the schema: {args}");
    let toks =
        after.get("prompt_eval_count").or(after.get("prompt_tokens")).and_then(|t| t.as_u64());
    assert!(toks > Some(0), "the tool's result went back into the prompt: {after}");
}

#[test]
fn the_openai_python_client_works() {
    let s = Server::start(&[]);
    let v = client("openai_client.py", &s);
    let c = &v["chat"];
    assert_eq!(
        (c["role"].as_str(), c["finish_reason"].as_str()),
        (Some("assistant"), Some("length"))
    );
    assert_eq!(c["usage"][1], 8);
    assert_eq!(c["usage"][2].as_u64().unwrap(), c["usage"][0].as_u64().unwrap() + 8);
    assert_eq!(v["chat_stream"], c["content"]);
    assert_eq!(v["chat_stream_finish"], "length");
    assert_eq!(v["chat_stream_usage"], serde_json::json!([8]));
    let j = serde_json::from_str::<serde_json::Value>(v["json_object"].as_str().unwrap())
        .expect("json_object output parses");
    assert!(j.is_object(), "json_object is an object: {j}");
    assert!(v["completion"].as_str().unwrap().contains("capital"));
    assert_eq!(v["models"], serde_json::json!([MODEL]));
    assert_eq!(v["missing"], 404);
    assert_eq!(v["n2"]["indexes"], serde_json::json!([0, 1]));
    assert_eq!(
        (v["n2"]["completion_tokens"].as_u64(), v["n2"]["distinct"].as_u64()),
        (Some(12), Some(2))
    );
    assert_eq!(v["n2_stream"], serde_json::json!([0, 1]), "both choices stream under their index");
    let lp = v["logprobs"].as_array().unwrap();
    let joined: String = lp.iter().map(|l| l["token"].as_str().unwrap()).collect();
    assert_eq!((lp.len(), joined.as_str()), (3, v["logprobs_text"].as_str().unwrap()));
    assert!(lp.iter().all(|l| l["top"] == 2 && l["logprob"].as_f64() <= Some(0.0)));
    streamed_logprobs(&v, &lp.iter().map(|l| l["token"].clone()).collect::<Vec<_>>());
    let echo = v["echo"]["text"].as_str().unwrap();
    assert!(echo.starts_with("The capital of France is") && echo.len() > 24, "{echo}");
    // echo with logprobs streamed (3 tokens, and the prompt alone) is the whole answer in pieces
    for pair in v["echo_stream"].as_array().unwrap() {
        let (w, s) = (&pair[0], &pair[1]);
        assert_eq!((&w["text"], &w["tokens"]), (&s["text"], &s["tokens"]), "{pair}");
        let (a, b) = (w["logprobs"].as_array().unwrap(), s["logprobs"].as_array().unwrap());
        assert!(a.len() == b.len() && a.len() > 5 && a[0].is_null() && b[0].is_null(), "{pair}");
        for (x, y) in a[1..].iter().zip(&b[1..]) {
            assert!((x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-3, "{pair}");
        }
    }
    scored_prompt(&v["score"]);
    assert_eq!(v["tools"]["finish"], "tool_calls");
    assert_eq!(v["tools"]["calls"][0][0], "get_weather");
    assert!(v["tools"]["calls"][0][1]["city"].is_string(), "{}", v["tools"]);
    assert!(v["after_tool"]["finish"].is_string(), "a tool message goes back into the prompt");
    assert_eq!(
        v["tools_stream"],
        serde_json::json!({"names": ["get_weather"], "finish": "tool_calls"})
    );
    assert_eq!(v["embeddings"]["n"], 2);
    assert_eq!(v["embeddings"]["dims"], 640);
    assert_eq!(v["embeddings_base64_equal"], true, "base64 decodes to the float vector");
    assert_eq!(v["embeddings_dims"], 32);
    assert_eq!(v["retrieve"], MODEL);
    assert_eq!(v["retrieve_missing"][0], 404);
    assert!(v["retrieve_missing"][1].as_str().unwrap().contains("does not exist"));
    assert_eq!(v["bad_n"][0], 400);
    let r = &v["responses"];
    assert_eq!((r["status"].as_str(), r["output_tokens"].as_u64()), (Some("incomplete"), Some(8)));
    assert!(r["text"].as_str().unwrap().contains("capital"), "{r}");
    let rs = &v["responses_stream"];
    assert_eq!(
        (rs["first"].as_str(), rs["last"].as_str()),
        (Some("response.created"), Some("response.completed"))
    );
    assert!(rs["deltas"].as_u64() > Some(1) && rs["text"].is_string(), "{rs}");
}

#[test]
fn bad_requests_get_4xx_error_objects() {
    let s = Server::start(&[]);
    let cases = [
        ("/api/generate", "{not json", 400, "invalid JSON"),
        ("/api/generate", r#"{"prompt": "x"}"#, 400, "model"),
        ("/api/generate", r#"{"model": "nope:1b", "prompt": "x"}"#, 404, "not found"),
        (
            "/api/generate",
            r#"{"model": "gemma3:270m", "prompt": "x", "options": {"temperature": -1}}"#,
            400,
            "temperature",
        ),
        (
            "/api/generate",
            r#"{"model": "gemma3:270m", "prompt": "x", "images": ["aGk="]}"#,
            400,
            "images",
        ),
        (
            "/api/chat",
            r#"{"model": "gemma3:270m", "messages": [], "tools": [{"type": "function"}]}"#,
            400,
            "tools[0].function.name",
        ),
        (
            "/api/chat",
            r#"{"model": "gemma3:270m", "messages": [{"role": "user", "content": "x"}], "think": true}"#,
            400,
            "does not support thinking",
        ),
        ("/api/embed", r#"{"model": "gemma3:270m", "input": [1, 2]}"#, 400, "input[0]"),
        (
            "/api/embed",
            r#"{"model": "gemma3:270m", "input": "x", "dimensions": 0}"#,
            400,
            "dimensions",
        ),
        ("/v1/embeddings", r#"{"model": "gemma3:270m"}"#, 400, "input"),
        (
            "/v1/embeddings",
            r#"{"model": "gemma3:270m", "input": [[999999999]]}"#,
            400,
            "vocabulary",
        ),
        (
            "/v1/embeddings",
            r#"{"model": "gemma3:270m", "input": "x", "encoding_format": "hex"}"#,
            400,
            "encoding_format",
        ),
        (
            "/v1/chat/completions",
            r#"{"model": "gemma3:270m", "messages": [], "logprobs": true, "top_logprobs": 21}"#,
            400,
            "top_logprobs",
        ),
        (
            "/v1/chat/completions",
            r#"{"model": "gemma3:270m", "messages": [], "tool_choice": {"type": "function", "function": {"name": "f"}}, "tools": [{"type": "function", "function": {"name": "g"}}]}"#,
            400,
            "tool_choice",
        ),
        (
            "/v1/chat/completions",
            r#"{"model": "gemma3:270m", "messages": [], "logit_bias": {"x": 1}}"#,
            400,
            "logit_bias",
        ),
        (
            "/v1/completions",
            r#"{"model": "gemma3:270m", "prompt": [2, 3], "echo": true}"#,
            400,
            "echo",
        ),
        ("/v1/nope", "{}", 404, "no such endpoint"),
        (
            "/api/generate",
            r#"{"model": "gemma3:270m", "prompt": "x", "format": {"type": "nonsense"}}"#,
            400,
            "grammar",
        ),
        ("/api/generate", r#"{"model": "/etc/passwd", "prompt": "x"}"#, 404, "not found"),
        ("/v1/chat/completions", r#"{"model": "gemma3:270m", "messages": [], "n": 9}"#, 400, "n:"),
    ];
    for (path, body, status, needle) in cases {
        let (st, v) = s.post(path, body);
        let msg =
            v["error"].as_str().or(v["error"]["message"].as_str()).unwrap_or_default().to_string();
        assert_eq!(st, status, "{path} {body}: {v}");
        assert!(msg.contains(needle), "{path} {body}: {msg}");
    }
    let (st, v) = s.post("/api/generate", r#"{"model": "gemma3:270m"}"#);
    assert_eq!(
        (st, v["done_reason"].as_str()),
        (200, Some("load")),
        "an empty prompt loads the model"
    );
    assert!(!s.log.lock().unwrap().contains("panicked"));
}

/// A raw POST of `body` to /api/generate (`close`: the server closes after answering), for the
/// tests that read or drop the connection themselves.
fn raw_generate(addr: &str, body: &str, close: bool) -> std::net::TcpStream {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    let conn = if close { "Connection: close\r\n" } else { "" };
    write!(
        c,
        "POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{conn}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    c
}

/// A raw streaming request whose connection is dropped after a few lines.
fn stream_then_drop(addr: &str, body: &str) {
    let mut c = raw_generate(addr, body, false);
    let mut buf = [0u8; 4096];
    let mut seen = 0;
    while seen < 3 {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended early");
        seen += buf[..n].iter().filter(|&&b| b == b'\n').count();
    }
}

#[test]
fn a_full_queue_is_503_and_a_disconnect_frees_its_slot() {
    let s = Server::start(&["--parallel", "1", "--max-queue", "1"]);
    let long = r#"{"model": "gemma3:270m", "prompt": "Once upon a time", "options": {"num_predict": 100000, "temperature": 1}}"#;
    // one request runs (a client that then goes away), one waits, a third is refused
    stream_then_drop(&s.addr(), long);
    let addr = s.addr();
    let waiting = std::thread::spawn(move || {
        let body = r#"{"model": "gemma3:270m", "prompt": "Hi", "stream": false, "options": {"num_predict": 4}}"#;
        let mut c = raw_generate(&addr, body, true);
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    });
    // the dropped stream's slot frees within a token or two; the waiting request then runs
    let t0 = Instant::now();
    let out = waiting.join().unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "the slot of a client that went away was freed"
    );
    // one request holds the slot, one waits in the queue: a third is refused
    let mut holder = raw_generate(&s.addr(), &long.replace("100000", "3000"), false);
    let mut first = [0u8; 64];
    assert!(holder.read(&mut first).unwrap() > 0, "the holder runs");
    // two more at once: whichever comes second is refused at once, the first waits for the
    // holder (no sleep decides which is which, so a slow machine cannot reorder them)
    let (tx, rx) = std::sync::mpsc::channel();
    for prompt in ["Hi", "x"] {
        let (addr, tx) = (s.addr(), tx.clone());
        std::thread::spawn(move || {
            let body = format!(
                r#"{{"model": "gemma3:270m", "prompt": "{prompt}", "stream": false, "options": {{"num_predict": 2}}}}"#
            );
            let mut c = raw_generate(&addr, &body, true);
            let mut out = String::new();
            c.read_to_string(&mut out).unwrap();
            tx.send(out).unwrap();
        });
    }
    let refused = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(refused.starts_with("HTTP/1.1 503"), "a request beyond --max-queue: {refused}");
    assert!(refused.contains("busy"), "{refused}");
    drop(holder);
    let queued = rx.recv_timeout(Duration::from_secs(120)).unwrap();
    assert!(queued.starts_with("HTTP/1.1 200"), "the queued request runs once the slot frees");
}

#[test]
fn four_concurrent_greedy_requests_equal_the_sequential_ones() {
    let s = Server::start(&["--parallel", "4"]);
    let body = |i: usize| {
        format!(
            r#"{{"model": "gemma3:270m", "prompt": "Story {i}: the old lighthouse keeper", "stream": false, "options": {{"temperature": 0, "num_predict": 48}}}}"#
        )
    };
    let seq: Vec<serde_json::Value> =
        (0..4).map(|i| s.post("/api/generate", &body(i)).1["context"].clone()).collect();
    let s = Arc::new(s);
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let s = s.clone();
            let b = body(i);
            std::thread::spawn(move || s.post("/api/generate", &b).1["context"].clone())
        })
        .collect();
    let par: Vec<serde_json::Value> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(seq, par, "batched greedy output equals the sequential output");
    assert!(seq.iter().all(|c| c.as_array().is_some_and(|a| a.len() > 48)));
}

#[test]
fn one_prompt_sent_twice_at_once_is_evaluated_once() {
    // three slots (requests that do not stream take two at most), both requests running
    // together (96 tokens each): without sharing, each slot
    // would evaluate the whole prompt; with it, the second copies the first's KV
    let s = Arc::new(Server::start(&["--parallel", "3"]));
    let prompt = "The history of the lighthouse keepers of the northern coast, told year by year: "
        .repeat(4);
    let body = format!(
        r#"{{"model": "gemma3:270m", "prompt": "{prompt}", "stream": false, "options": {{"temperature": 0, "num_predict": 96}}}}"#
    );
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (s, b) = (s.clone(), body.clone());
            std::thread::spawn(move || s.post("/api/generate", &b).1)
        })
        .collect();
    let v: Vec<serde_json::Value> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        v[0]["response"], v[1]["response"],
        "the copied KV gives the evaluated one's tokens"
    );
    let mut counts: Vec<u64> = v.iter().map(|x| x["prompt_eval_count"].as_u64().unwrap()).collect();
    counts.sort();
    assert!(counts[0] == 1 && counts[1] > 64, "evaluated once, then one token: {counts:?}");
}

#[test]
fn sigterm_ends_in_flight_requests_and_exits_0() {
    let mut s = Server::start(&[]);
    let addr = s.addr();
    let reader = std::thread::spawn(move || {
        let body =
            r#"{"model": "gemma3:270m", "prompt": "Once", "options": {"num_predict": 100000}}"#;
        let mut c = raw_generate(&addr, body, false);
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    });
    std::thread::sleep(Duration::from_secs(2));
    let pid = s.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "serve did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{}", s.log.lock().unwrap());
    let out = reader.join().unwrap();
    assert!(
        out.contains("shutting down"),
        "the in-flight request is told: {}",
        &out[out.len().saturating_sub(300)..]
    );
}

#[test]
fn models_load_on_demand_and_unload_after_keep_alive() {
    let s = Server::start(&["--keep-alive", "1h"]);
    assert_eq!(s.get("/api/ps")["models"], serde_json::json!([]), "nothing loads before a request");
    let body = r#"{"model": "gemma3:270m", "prompt": "Hi", "stream": false, "options": {"num_predict": 2}}"#;
    let (_, first) = s.post("/api/generate", body);
    let (_, second) = s.post("/api/generate", body);
    assert!(
        first["load_duration"].as_u64() > Some(0),
        "the request that loaded the model counts its load"
    );
    assert_eq!(second["load_duration"], 0);
    assert!(first["total_duration"].as_u64() >= first["load_duration"].as_u64());
    let ps = s.get("/api/ps");
    assert_eq!(ps["models"][0]["name"], MODEL);
    assert!(ps["models"][0]["size"].as_u64() > Some(200_000_000));
    // keep_alive 0 unloads it before the answer goes out: /api/ps agrees at once
    let (_, v) = s.post("/api/generate", r#"{"model": "gemma3:270m", "keep_alive": 0}"#);
    assert_eq!(v["done_reason"], "unload");
    assert_eq!(
        s.get("/api/ps")["models"],
        serde_json::json!([]),
        "keep_alive 0 unloaded the model"
    );
    let (_, _) = s.post("/api/generate", body);
    let (_, v) =
        s.post("/api/generate", &body.replace("\"stream\"", "\"keep_alive\": 0, \"stream\""));
    assert_eq!(v["done"], true);
    assert_eq!(
        s.get("/api/ps")["models"],
        serde_json::json!([]),
        "a generation with keep_alive 0 unloads too"
    );
    // one log line per request: status, method, path, model, tokens
    let log = s.log.lock().unwrap().clone();
    assert!(
        log.contains("200 POST /api/generate") && log.contains("model=gemma3:270m prompt_eval="),
        "{log}"
    );
    assert!(log.contains("200 GET /api/ps"), "{log}");
}

/// A stream's pieces each carry the log-probabilities of their own tokens: the tokens of a
/// piece spell it, and all of them together are the whole answer's (`tokens`, not streamed).
fn streamed_logprobs(v: &serde_json::Value, tokens: &[serde_json::Value]) {
    let pieces = v["logprobs_stream"].as_array().unwrap();
    let texts = v["logprobs_stream_text"].as_array().unwrap();
    assert!(!pieces.is_empty(), "{v}");
    for (p, t) in pieces.iter().zip(texts) {
        let spelled: String = p.as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
        assert_eq!(spelled.as_str(), t.as_str().unwrap(), "a piece's tokens spell it");
    }
    let all: Vec<serde_json::Value> =
        pieces.iter().flat_map(|p| p.as_array().unwrap().clone()).collect();
    assert_eq!(all, tokens, "streamed = whole");
}

/// `echo` with `logprobs` scores the prompt: the first token has none, every other one its
/// log-probability given the tokens before it, which for tokens that were generated greedily is
/// the one they had then (the rows are computed in batches of another size: within 1e-3).
fn scored_prompt(s: &serde_json::Value) {
    let f = |v: &serde_json::Value| v.as_array().unwrap().clone();
    let (scored, generated) = (f(&s["scored"]), f(&s["generated"]));
    assert_eq!((s["completion_tokens"].as_u64(), scored[0].is_null()), (Some(0), true), "{s}");
    assert_eq!(f(&s["tokens"]).len(), scored.len());
    let tail = &scored[scored.len() - generated.len()..];
    for (a, b) in tail.iter().zip(&generated) {
        assert!((a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-3, "{s}");
    }
    let tokens = f(&s["tokens"]);
    assert_eq!(tokens[tokens.len() - generated.len()..], f(&s["gen_tokens"])[..]);
    assert!(s["text"].as_str().unwrap().starts_with("The capital of France is"));
    assert_eq!(s["ids_text"], "The capital of France is", "token ids echo as their text");
    let ids = f(&s["ids_logprobs"]);
    assert!(ids.len() == 6 && ids[1..].iter().all(|x| x.as_f64().unwrap() < 0.0), "{s}");
}
