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

/// A chimera home of its own whose store is the real one (models made in a test stay in it).
fn home_with_store() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let store = crate::util::real_model().parent().unwrap().to_path_buf();
    std::os::unix::fs::symlink(store, d.path().join("models")).unwrap();
    d
}

#[test]
fn ollama_model_management_works() {
    let home = home_with_store();
    let s = Server::start_env(&[], &[("CHIMERA_HOME", home.path().to_str().unwrap())]);
    let gguf = crate::util::real_model();
    let adapter = home.path().join("adapter.gguf");
    crate::util::write_lora(&gguf, &adapter, 4, None, 0.05, 11, |_| true);
    let folder = crate::util::hf_folder(home.path(), true);
    let (g, a, f) = (gguf.to_str().unwrap(), adapter.to_str().unwrap(), folder.to_str().unwrap());
    let v = crate::serve::client_with("ollama_manage.py", &s, &[g, a, f]);
    assert_eq!(v["create"], "success");
    assert_eq!(v["list"], serde_json::json!(["gemma3:270m", "terse:latest"]));
    let mf = v["show"]["modelfile"].as_str().unwrap();
    assert!(
        mf.contains("PARAMETER num_predict") && mf.contains("SYSTEM \"\"\"You are terse.\"\"\""),
        "{mf}"
    );
    assert_eq!(
        (v["defaults"].as_u64(), v["override"].as_u64()),
        (Some(3), Some(5)),
        "the model's parameters are defaults"
    );
    assert_eq!(
        v["after_copy"],
        serde_json::json!(["gemma3:270m", "terse2:latest", "terse:latest"])
    );
    assert_eq!(v["delete_missing"][0], 404);
    assert!(v["blob"].as_str().unwrap().starts_with("sha256:a5fd3b62"));
    assert_eq!(
        (v["from_blob"].as_str(), v["from_blob_generates"].as_bool()),
        (Some("success"), Some(true))
    );
    let q = v["quantize"].as_array().unwrap();
    assert!(
        q.iter().any(|x| x.as_str().unwrap().contains("quantizing"))
            && q.last().unwrap() == "success",
        "{q:?}"
    );
    assert_eq!(v["quantized_generates"], true);
    assert_eq!(v["push"][0], 403);
    assert!(v["push"][1].as_str().unwrap().contains("air-gapped"));
    assert_eq!(v["templated"], "success");
    assert_eq!(v["templated_same"], true, "the TEMPLATE and MESSAGEs made the prompt: {v}");
    let show = &v["templated_show"];
    assert!(show["template"].as_str().unwrap().starts_with("{{- range .Messages }}"), "{show}");
    let mf = show["modelfile"].as_str().unwrap();
    assert!(
        mf.contains("TEMPLATE \"\"\"{{- range") && mf.contains("MESSAGE assistant Hello"),
        "{mf}"
    );
    let t = v["tools_in_template"].as_array().unwrap();
    assert_eq!(t[0], t[1], "a template that reads .Tools gets them, not a system turn");
    let own = &v["own_format"];
    assert_eq!(
        (own["finish"].as_str(), &own["calls"][0][0]),
        (Some("tool_calls"), &serde_json::json!("get_weather")),
        "{own}"
    );
    assert!(own["calls"][0][1]["city"].is_string(), "{own}");
    assert!(
        own["raw"].as_str().unwrap().starts_with("<tool_call>"),
        "the template's format: {own}"
    );
    assert_eq!((v["template"][0].as_u64(), v["bad_parameter"][0].as_u64()), (Some(400), Some(400)));
    assert!(
        v["template"][1]
            .as_str()
            .unwrap()
            .contains("template: {{ .Prompt (line 1: unclosed action)"),
        "{v}"
    );
    assert_eq!(v["message_role"][0], 400);
    assert!(v["message_role"][1].as_str().unwrap().contains("robot"), "{v}");
    assert!(v["bad_parameter"][1].as_str().unwrap().contains("top_p"));
    assert!(v["missing_blob"][1].as_str().unwrap().contains("was not uploaded"));
    // the adapter answers as `run --lora` does, not as the base model
    assert_eq!(v["lora_create"], "success", "{v}");
    // what `chimera run --raw` answers greedily
    let cli = |model: &str, prompt: &str, n: &str, extra: &[&str]| {
        let args =
            ["run", model, prompt, "--raw", "--json", "--temperature", "0", "--num-predict", n];
        let o = crate::util::chimera(&[&args[..], extra].concat());
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["response"].clone()
    };
    assert_eq!(v["lora_response"], cli(g, "The capital of France is", "6", &["--lora", a]), "{v}");
    assert_ne!(v["lora_response"], v["base_response"], "{v}");
    assert!(v["lora_show"].as_str().unwrap().contains("ADAPTER "), "{v}");
    assert_eq!(v["lora_not_adapter"][0], 400, "{v}");
    assert!(v["lora_not_adapter"][1].as_str().unwrap().contains("general.type"), "{v}");
    // the uploaded safetensors answer as `run FOLDER` does
    assert_eq!(v["import"], "success", "{v}");
    assert_eq!(v["import_response"], cli(f, "hi ab", "3", &[]), "{v}");
    assert_eq!(v["import_details"], serde_json::json!(["safetensors", "BF16"]), "{v}");
    assert_eq!(v["import_listed"], true, "{v}");
    assert_eq!(v["import_missing"][0], 400, "{v}");
    assert!(v["import_missing"][1].as_str().unwrap().contains("tokenizer.json"), "{v}");
    // quantized, it is a GGUF that answers as the folder quantized on the command line does
    assert_eq!(v["import_quantize"], "success", "{v}");
    assert_eq!(v["import_quantize_details"], serde_json::json!(["gguf", "Q8_0"]), "{v}");
    let q8 = home.path().join("folder-q8.gguf");
    let o = crate::util::chimera(&["quantize", f, q8.to_str().unwrap(), "Q8_0"]);
    assert!(o.status.success(), "{}", crate::util::stderr(&o));
    assert_eq!(v["import_quantize_response"], cli(q8.to_str().unwrap(), "hi ab", "3", &[]), "{v}");
    std::fs::remove_file(&q8).unwrap();
    assert_eq!(v["import_quantize_no_spm"][0], 400, "{v}");
    assert!(v["import_quantize_no_spm"][1].as_str().unwrap().contains("tokenizer.model"), "{v}");
    let imports = home.path().join("imports");
    assert!(std::fs::read_dir(&imports).map_or(true, |mut d| d.next().is_none()), "{imports:?}");
    assert_eq!(v["final"], serde_json::json!(["gemma3:270m"]));
    let left: Vec<_> = std::fs::read_dir(home.path().join("blobs")).unwrap().collect();
    assert!(
        left.is_empty(),
        "deleting the models removed their blobs and no upload was left half-written"
    );
    // a blob whose bytes are not its digest is refused and leaves nothing
    let (st, e) = s.post(&format!("/api/blobs/sha256:{}", "0".repeat(64)), "not those bytes");
    assert_eq!(st, 400, "{e}");
    assert!(std::fs::read_dir(home.path().join("blobs")).unwrap().next().is_none());
}

#[test]
fn create_cp_and_rm_on_the_command_line() {
    let home = home_with_store();
    let mf = home.path().join("Modelfile");
    std::fs::write(
        &mf,
        "FROM gemma3:270m\nPARAMETER temperature 0\nPARAMETER num_predict 3\nSYSTEM \"\"\"Be brief.\"\"\"\n",
    )
    .unwrap();
    let run = |args: &[&str]| crate::util::chimera_in(home.path(), args);
    let o = run(&["create", "brief", "-f", mf.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&run(&["list"]).stdout).contains("brief:latest"));
    // `run` takes the model's parameters and system message; the command line's options win
    let json = |args: &[&str]| -> serde_json::Value {
        let o = run(args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let made = json(&["run", "brief", "Hi", "--json"]);
    let plain = json(&["run", "gemma3:270m", "Hi", "--json", "--num-predict", "3"]);
    assert_eq!(made["eval_count"], 3, "PARAMETER num_predict 3");
    let (m, p) = (made["prompt_ids"].as_array().unwrap(), plain["prompt_ids"].as_array().unwrap());
    assert!(m.len() > p.len(), "the system message is in the prompt: {m:?} vs {p:?}");
    assert_eq!(json(&["run", "brief", "Hi", "--json", "--num-predict", "5"])["eval_count"], 5);
    assert!(run(&["cp", "brief", "brief2"]).status.success());
    assert!(run(&["rm", "brief", "brief2"]).status.success());
    assert!(!String::from_utf8_lossy(&run(&["list"]).stdout).contains("brief"));
    let o = run(&["rm", "brief"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("'brief' not found"));
    // an older template (.System, .Prompt, .Response) and a MESSAGE: `run` makes the prompt as
    // Ollama would, the same ids as the text given raw
    std::fs::write(
        &mf,
        "FROM gemma3:270m\nTEMPLATE \"\"\"{{ if .System }}S: {{ .System }}\n{{ end }}Q: {{ .Prompt }}\nA: {{ .Response }}\n\"\"\"\nSYSTEM Be brief.\nMESSAGE user Hi\nMESSAGE assistant Hello\nPARAMETER num_predict 1\n",
    )
    .unwrap();
    let o = run(&["create", "qa", "-f", mf.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let made = json(&["run", "qa", "Bye", "--json"]);
    let text = "S: Be brief.\nQ: Hi\nA: Hello\nQ: Bye\nA: ";
    let raw = json(&["run", "gemma3:270m", text, "--raw", "--json", "--num-predict", "1"]);
    assert_eq!(made["prompt_ids"], raw["prompt_ids"]);
    std::fs::write(&mf, "FROM gemma3:270m\nTEMPLATE {{ if .Prompt }}\n").unwrap();
    let o = run(&["create", "bad", "-f", mf.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("template") && err.contains("{{if}} has no end"), "{err}");
}
