//! The client software people put in front of Ollama, against `chimera serve` as it is:
//! LangChain's langchain-ollama (chat, streaming, JSON mode, structured output, a tool call round
//! trip, embeddings), LiteLLM (Ollama's and OpenAI's providers, streaming, embeddings), and a
//! browser page's view: CORS as Ollama answers it.

use crate::serve::{client, tool_round_trip, Server};
use std::io::{Read, Write};

#[test]
fn langchain_ollama_works() {
    let s = Server::start(&[]);
    let v = client("langchain_client.py", &s);
    let i = &v["invoke"];
    assert_eq!(
        (i["done_reason"].as_str(), i["output_tokens"].as_u64()),
        (Some("length"), Some(12))
    );
    assert!(i["content"].as_str().unwrap().contains("capital"), "{i}");
    assert_eq!(v["stream"], i["content"], "streamed pieces join to the same greedy text");
    let j: serde_json::Value = serde_json::from_str(v["json_mode"].as_str().unwrap()).unwrap();
    assert!(j.is_object(), "JSON mode gives an object: {j}");
    let cat = &v["structured"];
    assert!(cat["name"].is_string() && cat["age"].is_i64(), "{cat}");
    assert_eq!(
        cat.as_object().unwrap().len(),
        2,
        "a schema without additionalProperties is closed"
    );
    tool_round_trip(&v["tool_calls"], &v["after_tool"], "add");
    let e = &v["embeddings"];
    assert_eq!((e["docs"].as_u64(), e["dims"].as_u64()), (Some(2), Some(640)));
    assert!((e["norm"].as_f64().unwrap() - 1.0).abs() < 1e-4);
}

#[test]
fn litellm_works() {
    let s = Server::start(&[]);
    let v = client("litellm_client.py", &s);
    assert_eq!(v["chat"]["finish_reason"], "length");
    assert_eq!(v["chat"]["completion_tokens"], 8);
    assert!(v["chat"]["content"].as_str().unwrap().contains("capital"), "{v}");
    assert_eq!(v["chat_stream"], v["chat"]["content"]);
    assert!(!v["generate"].as_str().unwrap().is_empty());
    assert_eq!(v["openai"], v["chat"]["content"], "the same greedy answer through /v1");
    assert_eq!(v["embedding"], serde_json::json!({"n": 2, "dims": 640}));
    assert_eq!(v["embedding_openai"], serde_json::json!({"n": 1, "dims": 640}));
}

/// The response head of a raw request.
fn head(addr: &str, request: &str) -> String {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out.to_ascii_lowercase()
}

#[test]
fn cors_as_ollama_answers_it() {
    let s = Server::start(&[]);
    let preflight = |origin: &str| {
        head(&s.addr(), &format!("OPTIONS /api/chat HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\nConnection: close\r\n\r\n"))
    };
    let ok = preflight("http://localhost:3000");
    assert!(ok.starts_with("http/1.1 200"), "{ok}");
    assert!(ok.contains("access-control-allow-origin: http://localhost:3000"), "{ok}");
    assert!(ok.contains("access-control-allow-methods:") && ok.contains("post"), "{ok}");
    let other = preflight("http://evil.example");
    assert!(
        !other.contains("access-control-allow-origin"),
        "other origins are not allowed: {other}"
    );
    let get = head(&s.addr(), "GET /api/version HTTP/1.1\r\nHost: x\r\nOrigin: http://127.0.0.1:8080\r\nConnection: close\r\n\r\n");
    assert!(get.contains("access-control-allow-origin: http://127.0.0.1:8080"), "{get}");
    // OLLAMA_ORIGINS adds origins
    let s2 = Server::start_env(
        &[],
        &[("OLLAMA_ORIGINS", "https://app.example.org,chrome-extension://*")],
    );
    let ext = head(&s2.addr(), "GET /api/version HTTP/1.1\r\nHost: x\r\nOrigin: chrome-extension://abc\r\nConnection: close\r\n\r\n");
    assert!(ext.contains("access-control-allow-origin: chrome-extension://abc"), "{ext}");
    let wrong =
        head(&s.addr(), "DELETE /api/chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(wrong.starts_with("http/1.1 405") && wrong.contains("{\"error\":"), "{wrong}");
}
