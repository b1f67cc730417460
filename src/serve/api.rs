//! Ollama's API shapes: request bodies read field by field (every error names the field), the
//! `options` object with Ollama's names mapped onto chimera's options and validated as the CLI
//! validates them, `keep_alive` durations, and the response objects (ref: ollama api/types.go,
//! docs/api.md).

use crate::chat::Message;
use crate::constraint::Grammar;
use crate::engine::GenerateOptions;
use serde_json::{Map, Value};

/// An HTTP error: its status and the message for `{"error": …}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError { status: 400, message: message.into() }
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError { status: 404, message: message.into() }
    }
    pub fn busy(message: impl Into<String>) -> ApiError {
        ApiError { status: 503, message: message.into() }
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError { status: 500, message: message.into() }
    }

    /// The status an engine error deserves: the request's fault (400) or the server's (500).
    pub fn from_engine(e: &crate::Error) -> ApiError {
        use crate::Error as E;
        match e {
            E::InvalidOption { .. }
            | E::PromptTooLong { .. }
            | E::TokenId { .. }
            | E::Template(_)
            | E::Grammar(_) => ApiError::bad(e.to_string()),
            E::ModelNotFound { .. } => ApiError::not_found(e.to_string()),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

pub use super::keep_alive::KeepAlive;

/// Load-time options a request may ask for (a different value reloads the model, as Ollama).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOverrides {
    pub num_ctx: Option<usize>,
    pub num_batch: Option<usize>,
    pub num_gpu: Option<i64>,
    pub num_thread: Option<usize>,
    /// A model's LoRA adapters (from its Modelfile; requests cannot set them).
    pub adapters: Option<Vec<std::path::PathBuf>>,
}

/// What a request asks the model to continue.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// `/api/generate` and `/v1/completions`: the prompt under the chat template unless raw, a
    /// system message, and the ids of an earlier response to continue (`context`).
    Text { prompt: String, system: Option<String>, raw: bool, context: Vec<u32> },
    /// `/api/chat` and `/v1/chat/completions`: the conversation under the chat template.
    Chat(Vec<Message>),
    /// The embeddings endpoints: inputs to embed (none: only load the model); an input longer
    /// than num_ctx is cut to it when `truncate`, else refused.
    Embed { inputs: Vec<EmbedInput>, truncate: bool },
}

/// One input to embed: text (BOS added) or token ids as they are.
#[derive(Debug, Clone, PartialEq)]
pub enum EmbedInput {
    Text(String),
    Ids(Vec<u32>),
}

/// A parsed generation request.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub model: String,
    pub prompt: Prompt,
    pub opts: GenerateOptions,
    pub load: LoadOverrides,
    pub keep_alive: Option<KeepAlive>,
    pub stream: bool,
    /// Tools the model may call: described in the system turn when the prompt is made, or
    /// given to a model's template that reads them.
    pub tools: Option<super::tools::Tools>,
    /// A model's own Go template (a Modelfile's TEMPLATE), used instead of the GGUF's.
    pub template: Option<std::sync::Arc<crate::gotmpl::Template>>,
    /// Log-probabilities asked for: `Some(k)` with k alternatives per token.
    pub logprobs: Option<usize>,
    /// Choices to generate (OpenAI's `n`).
    pub n: usize,
    /// Return the prompt with the completion (OpenAI completions' `echo`).
    pub echo: bool,
    /// The options the request set itself (Ollama's names): a model's defaults fill the rest.
    pub given: Vec<String>,
    /// Whether the model's own defaults have been applied (once: they add messages).
    pub with_defaults: bool,
}

impl Parsed {
    /// A request with the defaults for everything a client did not say.
    pub fn new(model: String, prompt: Prompt, opts: GenerateOptions, stream: bool) -> Parsed {
        Parsed {
            model,
            prompt,
            opts,
            load: LoadOverrides::default(),
            keep_alive: None,
            stream,
            tools: None,
            template: None,
            logprobs: None,
            n: 1,
            echo: false,
            given: vec![],
            with_defaults: false,
        }
    }
}

/// The body as a JSON object.
pub fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad("the request body must be a JSON object")),
        Err(e) => Err(ApiError::bad(format!("invalid JSON: {e}"))),
    }
}

/// Typed reads of an object's fields; each error names the field.
pub struct Fields<'a>(pub &'a Map<String, Value>);

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    pub fn str(&self, key: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::bad(format!("{key}: expected a string"))),
        }
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::bad(format!("{key}: expected true or false"))),
        }
    }

    pub fn f32(&self, key: &str) -> Result<Option<f32>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(|x| Some(x as f32))
                .ok_or_else(|| ApiError::bad(format!("{key}: expected a number"))),
        }
    }

    pub fn i64(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| ApiError::bad(format!("{key}: expected an integer"))),
        }
    }

    pub fn usize(&self, key: &str) -> Result<Option<usize>, ApiError> {
        match self.i64(key)? {
            None => Ok(None),
            Some(n) => usize::try_from(n)
                .map(Some)
                .map_err(|_| ApiError::bad(format!("{key}: must be ≥ 0, not {n}"))),
        }
    }

    pub fn value(&self, key: &str) -> Option<&'a Value> {
        self.get(key)
    }

    /// A string or an array of strings (`stop`).
    pub fn strings(&self, key: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| ApiError::bad(format!("{key}: expected strings")))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => {
                Err(ApiError::bad(format!("{key}: expected a string or an array of strings")))
            }
        }
    }

    /// Token ids (`context`).
    pub fn ids(&self, key: &str) -> Result<Vec<u32>, ApiError> {
        match self.get(key) {
            None => Ok(vec![]),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_u64()
                        .and_then(|x| u32::try_from(x).ok())
                        .ok_or_else(|| ApiError::bad(format!("{key}: expected token ids")))
                })
                .collect(),
            Some(_) => Err(ApiError::bad(format!("{key}: expected an array of token ids"))),
        }
    }

    /// A non-empty array (images, tools): chimera runs text-only gemma3 without tools.
    pub fn refuse_nonempty(&self, key: &str, what: &str) -> Result<(), ApiError> {
        match self.get(key) {
            Some(Value::Array(a)) if !a.is_empty() => Err(ApiError::bad(format!("{key}: {what}"))),
            Some(Value::String(s)) if !s.is_empty() => Err(ApiError::bad(format!("{key}: {what}"))),
            _ => Ok(()),
        }
    }
}

/// Options Ollama accepts that change nothing here (runner and sampler knobs chimera does not
/// have); they are read and ignored, as Ollama ignores the ones its runner lacks.
const IGNORED: [&str; 13] = [
    "typical_p",
    "penalize_newline",
    "mirostat_tau",
    "mirostat_eta",
    "tfs_z",
    "numa",
    "low_vram",
    "f16_kv",
    "vocab_only",
    "use_mmap",
    "use_mlock",
    "main_gpu",
    "num_gqa",
];

/// The option names [`apply_options`] reads (Ollama's, less the ignored ones).
const KNOWN: [&str; 17] = [
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "repeat_penalty",
    "repeat_last_n",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "num_predict",
    "num_keep",
    "stop",
    "mirostat",
    "num_ctx",
    "num_batch",
    "num_gpu",
    "num_thread",
];

/// Whether `name` is an option Ollama has (read here, or read and ignored).
pub fn is_option(name: &str) -> bool {
    KNOWN.contains(&name) || IGNORED.contains(&name)
}

/// Applies an `options` object with Ollama's names; a value of the wrong type or out of its
/// domain is a 400 naming it. Unknown names are ignored, as Ollama ignores them.
pub fn apply_options(
    opts: &Map<String, Value>,
    g: &mut GenerateOptions,
    l: &mut LoadOverrides,
) -> Result<(), ApiError> {
    let f = Fields(opts);
    let s = &mut g.sampler;
    if let Some(v) = f.f32("temperature")? {
        s.temperature = v;
    }
    if let Some(v) = f.i64("top_k")? {
        s.top_k =
            i32::try_from(v).map_err(|_| ApiError::bad(format!("top_k: {v} is out of range")))?;
    }
    if let Some(v) = f.f32("top_p")? {
        s.top_p = v;
    }
    if let Some(v) = f.f32("min_p")? {
        s.min_p = v;
    }
    if let Some(v) = f.f32("repeat_penalty")? {
        s.repeat_penalty = v;
    }
    if let Some(v) = f.i64("repeat_last_n")? {
        s.repeat_last_n = i32::try_from(v)
            .map_err(|_| ApiError::bad(format!("repeat_last_n: {v} is out of range")))?;
    }
    if let Some(v) = f.f32("presence_penalty")? {
        s.presence_penalty = v;
    }
    if let Some(v) = f.f32("frequency_penalty")? {
        s.frequency_penalty = v;
    }
    if let Some(v) = f.i64("seed")? {
        s.seed = v;
    }
    if let Some(v) = f.i64("num_predict")? {
        g.num_predict = v;
    }
    if let Some(v) = f.usize("num_keep")? {
        g.num_keep = v;
    }
    if let Some(v) = f.strings("stop")? {
        g.stop = v;
    }
    if let Some(v) = f.i64("mirostat")? {
        if v != 0 {
            return Err(ApiError::bad(format!("mirostat: {v} is not supported (0 = off)")));
        }
    }
    l.num_ctx = f.usize("num_ctx")?.or(l.num_ctx);
    l.num_batch = f.usize("num_batch")?.or(l.num_batch);
    l.num_gpu = f.i64("num_gpu")?.or(l.num_gpu);
    l.num_thread = f.usize("num_thread")?.or(l.num_thread);
    for k in IGNORED {
        let _ = f.value(k);
    }
    g.sampler.validate().map_err(|e| ApiError::bad(e.to_string()))?;
    if g.num_predict < -2 {
        return Err(ApiError::bad(format!(
            "invalid value for num_predict: {} (must be ≥ −2)",
            g.num_predict
        )));
    }
    for (name, v) in [("num_ctx", l.num_ctx), ("num_batch", l.num_batch)] {
        if v == Some(0) {
            return Err(ApiError::bad(format!("invalid value for {name}: 0 (must be ≥ 1)")));
        }
    }
    if l.num_gpu.is_some_and(|n| n < -1) {
        return Err(ApiError::bad("invalid value for num_gpu: must be ≥ −1 (−1 = automatic)"));
    }
    Ok(())
}

/// Ollama's `format`: "json", a JSON schema, or nothing ("" or absent).
pub fn format(v: Option<&Value>) -> Result<Option<Grammar>, ApiError> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s == "json" => Ok(Some(Grammar::Json)),
        Some(Value::String(s)) => {
            Err(ApiError::bad(format!("format: '{s}' is not \"json\" or a JSON schema")))
        }
        Some(schema @ Value::Object(_)) => Ok(Some(Grammar::JsonSchema(schema.clone()))),
        Some(_) => Err(ApiError::bad("format: expected \"json\" or a JSON schema object")),
    }
}

/// `think`: gemma3 has no thinking mode, and Ollama says so with a 400.
fn think(f: &Fields, model: &str) -> Result<(), ApiError> {
    match f.value("think") {
        None | Some(Value::Bool(false)) => Ok(()),
        Some(Value::Bool(true)) | Some(Value::String(_)) => {
            Err(ApiError::bad(format!("\"{model}\" does not support thinking")))
        }
        Some(_) => {
            Err(ApiError::bad("think: expected true, false, \"low\", \"medium\" or \"high\""))
        }
    }
}

/// Ollama's `logprobs` (true/false) and `top_logprobs` (0–20).
fn logprobs(f: &Fields, opts: &mut GenerateOptions) -> Result<Option<usize>, ApiError> {
    if !f.bool("logprobs")?.unwrap_or(false) {
        return Ok(None);
    }
    let top = f.usize("top_logprobs")?.unwrap_or(0);
    if top > 20 {
        return Err(ApiError::bad(format!("top_logprobs: {top} is more than 20")));
    }
    // the engine keeps at least the chosen token's entry; the rest is trimmed when written
    opts.logprobs = top.max(1);
    Ok(Some(top))
}

/// The option names an `options` object sets.
fn given(f: &Fields) -> Vec<String> {
    f.value("options").and_then(Value::as_object).map_or(vec![], |o| o.keys().cloned().collect())
}

/// The fields `/api/generate` and `/api/chat` share: model, options, format, keep_alive, stream.
fn common(
    f: &Fields,
) -> Result<(String, GenerateOptions, LoadOverrides, Option<KeepAlive>, bool), ApiError> {
    let model = f
        .str("model")?
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::bad("model: required"))?;
    let mut opts = GenerateOptions::default();
    let mut load = LoadOverrides::default();
    match f.value("options") {
        None => {}
        Some(Value::Object(o)) => apply_options(o, &mut opts, &mut load)?,
        Some(_) => return Err(ApiError::bad("options: expected an object")),
    }
    opts.grammar = format(f.value("format"))?;
    think(f, model)?;
    let keep_alive = f
        .value("keep_alive")
        .map(KeepAlive::parse)
        .transpose()
        .map_err(|e| ApiError::bad(format!("keep_alive: {e}")))?;
    let stream = f.bool("stream")?.unwrap_or(true);
    Ok((model.to_string(), opts, load, keep_alive, stream))
}

/// `/api/generate`'s body.
pub fn generate(body: &[u8]) -> Result<Parsed, ApiError> {
    let o = object(body)?;
    let f = Fields(&o);
    f.refuse_nonempty("images", "images are not supported: chimera runs text-only gemma3")?;
    f.refuse_nonempty("suffix", "fill-in-the-middle (suffix) is not supported")?;
    f.refuse_nonempty(
        "template",
        "a request template is not supported; the model's chat template applies (raw skips it)",
    )?;
    let (model, mut opts, load, keep_alive, stream) = common(&f)?;
    let lp = logprobs(&f, &mut opts)?;
    let prompt = Prompt::Text {
        prompt: f.str("prompt")?.unwrap_or("").to_string(),
        system: f.str("system")?.map(str::to_string),
        raw: f.bool("raw")?.unwrap_or(false),
        context: f.ids("context")?,
    };
    Ok(Parsed {
        load,
        keep_alive,
        logprobs: lp,
        given: given(&f),
        ..Parsed::new(model, prompt, opts, stream)
    })
}

/// Messages of a chat request; images and tool calls are refused.
pub fn messages(v: Option<&Value>) -> Result<Vec<Message>, ApiError> {
    let Some(Value::Array(items)) = v else {
        return match v {
            None => Ok(vec![]),
            Some(_) => Err(ApiError::bad("messages: expected an array")),
        };
    };
    items
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let Value::Object(m) = m else {
                return Err(ApiError::bad(format!("messages[{i}]: expected an object")));
            };
            let f = Fields(m);
            f.refuse_nonempty("images", "images are not supported: chimera runs text-only gemma3")?;
            let role = f
                .str("role")?
                .ok_or_else(|| ApiError::bad(format!("messages[{i}].role: required")))?;
            if !["system", "user", "assistant", "developer", "tool"].contains(&role) {
                return Err(ApiError::bad(format!(
                    "messages[{i}].role: '{role}' is not system, developer, user, assistant or tool"
                )));
            }
            let content = match f.value("content") {
                None => String::new(),
                Some(Value::String(s)) => s.clone(),
                // OpenAI's content parts: text parts joined, anything else refused
                Some(Value::Array(parts)) => parts
                    .iter()
                    .map(|p| {
                        match (
                            p.get("type").and_then(Value::as_str),
                            p.get("text").and_then(Value::as_str),
                        ) {
                            (Some("text"), Some(t)) => Ok(t),
                            _ => Err(ApiError::bad(format!(
                                "messages[{i}].content: only text parts are supported"
                            ))),
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .join(""),
                Some(_) => {
                    return Err(ApiError::bad(format!("messages[{i}].content: expected a string")))
                }
            };
            Ok(match role {
                // OpenAI's developer messages are its system messages
                "developer" => Message::new("system", &content),
                "tool" => {
                    let name = f.str("name")?.or(f.str("tool_name")?).map(str::to_string);
                    Message { tool_name: name, ..Message::new("tool", &content) }
                }
                "assistant" => match f.value("tool_calls") {
                    Some(Value::Array(calls)) if !calls.is_empty() => {
                        let calls = super::tools::normalize_calls(calls)
                            .map_err(|e| ApiError::bad(format!("messages[{i}].{}", e.message)))?;
                        Message { tool_calls: calls, ..Message::new("assistant", &content) }
                    }
                    _ => Message::new("assistant", &content),
                },
                _ => Message::new(role, &content),
            })
        })
        .collect()
}

/// `/api/chat`'s body.
pub fn chat(body: &[u8]) -> Result<Parsed, ApiError> {
    let o = object(body)?;
    let f = Fields(&o);
    let (model, mut opts, load, keep_alive, stream) = common(&f)?;
    let lp = logprobs(&f, &mut opts)?;
    let tools = super::tools::parse(f.value("tools"), None)?;
    let prompt = Prompt::Chat(messages(f.value("messages"))?);
    if let Some(g) = tools.as_ref().and_then(super::tools::Tools::grammar) {
        if opts.grammar.is_some() {
            return Err(ApiError::bad("format: cannot be combined with tools"));
        }
        opts.grammar = Some(g);
    }
    Ok(Parsed {
        load,
        keep_alive,
        logprobs: lp,
        tools,
        given: given(&f),
        ..Parsed::new(model, prompt, opts, stream)
    })
}

/// The conversation with the tools' description in its system turn (added first when there is
/// none).
pub fn with_tools(mut msgs: Vec<Message>, tools: Option<&super::tools::Tools>) -> Vec<Message> {
    let Some(text) = tools.and_then(super::tools::Tools::system_text) else { return msgs };
    match msgs.iter_mut().find(|m| m.role == "system") {
        Some(m) => m.content = format!("{}\n\n{text}", m.content),
        None => msgs.insert(0, Message::new("system", &text)),
    }
    msgs
}

/// The model name of a `/api/show`, `/api/pull` or `/api/delete` body (`model`, or the older
/// `name`).
pub fn model_name(body: &[u8]) -> Result<(String, Map<String, Value>), ApiError> {
    let o = object(body)?;
    let f = Fields(&o);
    let m = f
        .str("model")?
        .or(f.str("name")?)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::bad("model: required"))?;
    Ok((m.to_string(), o.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_bodies_and_options_are_400s_naming_the_field() {
        let e = |b: &str| generate(b.as_bytes()).unwrap_err();
        assert_eq!(e("{").status, 400);
        assert!(e("[1]").message.contains("object"));
        assert!(e(r#"{"prompt": "hi"}"#).message.contains("model"));
        assert!(e(r#"{"model": "m", "options": {"temperature": "hot"}}"#)
            .message
            .contains("temperature"));
        assert!(e(r#"{"model": "m", "options": {"top_p": 1.5}}"#).message.contains("top_p"));
        assert!(e(r#"{"model": "m", "options": {"num_ctx": 0}}"#).message.contains("num_ctx"));
        assert!(e(r#"{"model": "m", "images": ["aGk="]}"#).message.contains("images"));
        assert!(e(r#"{"model": "m", "format": "yaml"}"#).message.contains("format"));
        let c = chat(br#"{"model": "m", "messages": [{"role": "robot", "content": "x"}]}"#)
            .unwrap_err();
        assert!(c.message.contains("messages[0].role"), "{c:?}");
        // a tool's result keeps its tool; for gemma's turns it becomes a user turn naming it
        let t = chat(br#"{"model": "m", "messages": [{"role": "tool", "content": "7", "tool_name": "add"}, {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "add", "arguments": "{\"a\": 1}"}}]}]}"#)
            .unwrap();
        let Prompt::Chat(m) = &t.prompt else { panic!("a chat") };
        assert_eq!((m[0].role.as_str(), m[0].tool_name.as_deref()), ("tool", Some("add")));
        assert_eq!(m[1].tool_calls[0]["function"]["arguments"]["a"], 1);
        let plain = super::super::tools::as_turns(m.clone());
        assert_eq!(plain[0], Message::new("user", "Result of add: 7"));
        assert_eq!(plain[1].content, "{\"name\":\"add\",\"arguments\":{\"a\":1}}");
        let ok = generate(br#"{"model": "m", "prompt": "hi", "stream": false, "options": {"temperature": 0, "stop": "x", "num_ctx": 512, "use_mmap": true, "whatever": 1}}"#).unwrap();
        assert_eq!(
            (ok.stream, ok.opts.sampler.temperature, ok.load.num_ctx),
            (false, 0.0, Some(512))
        );
        assert_eq!(ok.opts.stop, vec!["x".to_string()]);
    }

    #[test]
    fn random_bodies_never_panic() {
        // a seeded mutator over valid bodies: every outcome is Ok or a 400
        let seeds: [&[u8]; 3] = [
            br#"{"model": "gemma3:270m", "prompt": "hi", "options": {"temperature": 0.5, "stop": ["a"]}, "format": {"type": "object"}, "keep_alive": "5m"}"#,
            br#"{"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}], "stream": false}"#,
            br#"{"model": "m", "context": [1, 2, 3], "raw": true, "system": "s"}"#,
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut cases = 0;
        for round in 0..6000 {
            let mut b = seeds[round % 3].to_vec();
            for _ in 0..(next() % 6 + 1) {
                let i = next() as usize % b.len();
                match next() % 3 {
                    0 => b[i] = next() as u8,
                    1 => {
                        b.remove(i);
                    }
                    _ => {
                        let alphabet = b"{}[]\",:0-e.\\";
                        b.insert(i, alphabet[next() as usize % alphabet.len()]);
                    }
                }
                if b.is_empty() {
                    b.push(b'{');
                }
            }
            for r in [generate(&b).err(), chat(&b).err()].into_iter().flatten() {
                assert_eq!(r.status, 400);
            }
            cases += 2;
        }
        assert_eq!(cases, 12_000);
    }
}
