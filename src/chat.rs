//! Chat prompts from a GGUF's `tokenizer.chat_template`, as llama.cpp applies them: gemma's turn
//! format where the template is gemma's, otherwise the Jinja template itself (minijinja).

use crate::error::{Error, Result};
use minijinja::{context, Environment, ErrorKind};

/// Instructions a template may run per render: far beyond any chat template over a long
/// conversation, and it stops a template that loops.
const FUEL: u64 = 2_000_000;
/// The most text a template may produce (a prompt far longer than any context).
const MAX_OUTPUT: usize = 16 << 20;

/// One message of a conversation (`system`, `user`, `assistant`; `model` is read as assistant).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
    /// An assistant turn's tool calls (`{"function": {"name", "arguments"}}`), for a template
    /// that prints them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<serde_json::Value>,
    /// A tool turn's tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Message {
        Message { role: role.into(), content: content.into(), tool_calls: vec![], tool_name: None }
    }
}

/// The prompt text for one user message under `template` (None: the text as it is).
pub fn prompt(template: Option<&str>, user: &str, bos: &str, eos: &str) -> Result<String> {
    match template {
        None => Ok(user.to_string()),
        Some(_) => render(template, &[Message::new("user", user)], bos, eos),
    }
}

/// The prompt text for a conversation, ending where the model's next turn starts.
///
/// A template that contains `<start_of_turn>` gets gemma's turn format, which is what llama.cpp
/// does by default (ref: llama-chat.cpp llm_chat_detect_template → LLM_CHAT_TEMPLATE_GEMMA), so
/// chimera's prompts match llama.cpp's token for token; so does a model without a template (a
/// gemma3 base model), since the family's turns are gemma's. Any other template is rendered with
/// `messages`, `add_generation_prompt = true`, `bos_token` and `eos_token`, and
/// `raise_exception`. A leading `bos_token` is dropped because the tokenizer adds BOS itself
/// (llama.cpp warns about the double BOS otherwise).
pub fn render(
    template: Option<&str>,
    messages: &[Message],
    bos: &str,
    eos: &str,
) -> Result<String> {
    let template = match template {
        Some(t) if !t.contains("<start_of_turn>") => t,
        _ => return Ok(gemma_turns(messages)),
    };
    let err = |e: minijinja::Error| {
        let mut what = e.to_string();
        if let Some(detail) = e.detail() {
            what = format!("{what}: {detail}");
        }
        Error::Template(what.replace('\n', " "))
    };
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    // a namespace assigned into itself would recurse without end when printed
    env.set_formatter(|out, state, v| {
        shallow(v, 0)?;
        minijinja::escape_formatter(out, state, v)
    });
    env.add_filter("string", |state: &minijinja::State, v: minijinja::Value| {
        shallow(&v, 0)?;
        minijinja::filters::string(state, &v)
    });
    env.add_filter("pprint", |v: minijinja::Value| {
        shallow(&v, 0).map(|()| minijinja::filters::pprint(&v))
    });
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> std::result::Result<String, _> {
        Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
    });
    env.add_template("chat", template).map_err(err)?;
    let msgs: Vec<_> =
        messages.iter().map(|m| context! { role => m.role, content => m.content }).collect();
    let mut out = Capped(Vec::new());
    env.get_template("chat")
        .map_err(err)?
        .render_captured_to(
            context! {
                messages => msgs,
                add_generation_prompt => true,
                bos_token => bos,
                eos_token => eos,
            },
            &mut out,
        )
        .map_err(|e| match e.kind() {
            ErrorKind::WriteFailure => {
                Error::Template(format!("the template's output exceeds {MAX_OUTPUT} bytes"))
            }
            _ => err(e),
        })?;
    let text = String::from_utf8(out.0)
        .map_err(|_| Error::Template("the template's output is not UTF-8".into()))?;
    Ok(match text.strip_prefix(bos) {
        Some(rest) if !bos.is_empty() => rest.to_string(),
        _ => text,
    })
}

/// A conversation under a model's own Go template (a Modelfile's TEMPLATE), run as Ollama
/// runs it ([`crate::gotmpl::ollama`]); `tools` in Ollama's shape for a template that reads
/// them. The tokenizer adds BOS, as Ollama's templates expect.
pub fn render_go(
    t: &crate::gotmpl::Template,
    messages: &[Message],
    tools: Option<&serde_json::Value>,
) -> Result<String> {
    // a Message serializes to Ollama's message fields (role, content, tool_calls, tool_name)
    let msgs = messages.iter().map(serde_json::to_value).collect::<serde_json::Result<Vec<_>>>();
    let msgs = msgs.map_err(|e| Error::Template(format!("a message: {e}")))?;
    crate::gotmpl::ollama::render(t, &msgs, tools)
}

/// How deep a printed value may nest (chat messages nest two or three levels).
const MAX_DEPTH: usize = 32;

/// Refuses a value nested deeper than [`MAX_DEPTH`], as a namespace that holds itself is.
fn shallow(v: &minijinja::Value, depth: usize) -> std::result::Result<(), minijinja::Error> {
    if depth > MAX_DEPTH {
        let what =
            format!("a value nests deeper than {MAX_DEPTH} levels (does a namespace hold itself?)");
        return Err(minijinja::Error::new(ErrorKind::InvalidOperation, what));
    }
    let map = match v.kind() {
        minijinja::value::ValueKind::Map => true,
        minijinja::value::ValueKind::Seq | minijinja::value::ValueKind::Iterable => false,
        _ => return Ok(()),
    };
    for k in v.try_iter()?.take(10_000) {
        let item = if map { v.get_item(&k)? } else { k };
        shallow(&item, depth + 1)?;
    }
    Ok(())
}

/// A writer that refuses output past [`MAX_OUTPUT`].
struct Capped(Vec<u8>);

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_OUTPUT {
            return Err(std::io::Error::other("template output too large"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// gemma's turn format for one user message (ref: llama-chat.cpp LLM_CHAT_TEMPLATE_GEMMA; the
/// template's leading `{{ bos_token }}` is left to the tokenizer's add_bos).
pub fn gemma(user: &str) -> String {
    gemma_turns(&[Message::new("user", user)])
}

/// gemma's turn format for a conversation (ref: llama-chat.cpp LLM_CHAT_TEMPLATE_GEMMA): a
/// system message is prepended to the next user turn, `assistant` turns are `model` turns,
/// contents are trimmed, and the model's turn is opened at the end.
pub fn gemma_turns(messages: &[Message]) -> String {
    let mut out = String::new();
    let mut system = String::new();
    for m in messages {
        let content = m.content.trim();
        match m.role.as_str() {
            "system" => {
                system.push_str(content);
                system.push_str("\n\n");
            }
            role => {
                let role = if role == "assistant" { "model" } else { role };
                out.push_str(&format!("<start_of_turn>{role}\n"));
                if role == "user" {
                    out.push_str(&std::mem::take(&mut system));
                }
                out.push_str(content);
                out.push_str("<end_of_turn>\n");
            }
        }
    }
    out.push_str("<start_of_turn>model\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}\
        <|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

    #[test]
    fn no_template_leaves_the_text() {
        assert_eq!(prompt(None, " hi ", "<bos>", "<eos>").unwrap(), " hi ");
    }

    #[test]
    fn gemma_templates_get_the_turn_format() {
        let t =
            "{{ bos_token }}{% for message in messages %}<start_of_turn>{{ message['role'] }}\n\
            {{ message['content'] | trim }}<end_of_turn>\n{% endfor %}";
        assert_eq!(
            prompt(Some(t), " Hi there ", "<bos>", "<eos>").unwrap(),
            "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n"
        );
    }

    #[test]
    fn other_templates_are_rendered() {
        assert_eq!(
            prompt(Some(CHATML), "Hi", "<s>", "</s>").unwrap(),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let with_bos = format!("{{{{ bos_token }}}}{CHATML}");
        assert!(prompt(Some(&with_bos), "Hi", "<s>", "</s>").unwrap().starts_with("<|im_start|>"));
        let py = "{{ messages[0]['content'].strip().upper() }}";
        assert_eq!(prompt(Some(py), "  hi ", "<s>", "</s>").unwrap(), "HI");
    }

    #[test]
    fn conversations_take_gemma_turns() {
        let msgs = [
            Message::new("system", "Be brief."),
            Message::new("user", " Hi "),
            Message::new("assistant", "Hello."),
            Message::new("user", "Why?"),
        ];
        assert_eq!(
            render(None, &msgs, "<bos>", "<eos>").unwrap(),
            "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n\
             <start_of_turn>user\nWhy?<end_of_turn>\n<start_of_turn>model\n"
        );
        let two = render(Some(CHATML), &msgs[1..3], "<s>", "</s>").unwrap();
        assert_eq!(two, "<|im_start|>user\n Hi <|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>assistant\n");
    }

    #[test]
    fn template_errors_name_the_key() {
        let raising = "{{ raise_exception('only user/assistant roles are supported') }}";
        let e = prompt(Some(raising), "Hi", "<s>", "</s>").unwrap_err().to_string();
        assert!(
            e.starts_with("tokenizer.chat_template: ") && e.contains("only user/assistant"),
            "{e}"
        );
        let broken = prompt(Some("{% for m in messages %}"), "Hi", "<s>", "</s>").unwrap_err();
        assert!(broken.to_string().starts_with("tokenizer.chat_template: "), "{broken}");
        assert!(!broken.to_string().contains('\n'));
    }

    /// A template that loops forever runs out of fuel; one that explodes hits the output cap;
    /// each is one error naming the key.
    #[test]
    fn runaway_templates_are_stopped() {
        let looping =
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
        let e = prompt(Some(looping), "Hi", "<s>", "</s>").unwrap_err().to_string();
        assert!(e.starts_with("tokenizer.chat_template: ") && e.contains("fuel"), "{e}");
        let exploding = "{% for i in range(1000) %}{{ 'x' * 1000000 }}{% endfor %}";
        let e = prompt(Some(exploding), "Hi", "<s>", "</s>").unwrap_err().to_string();
        assert!(e.starts_with("tokenizer.chat_template: ") && e.contains("exceeds"), "{e}");
        for cyclic in [
            "{% set ns = namespace(n=0) %}{% set ns.n = ns %}{{ ns }}",
            "{% set ns = namespace(n=0) %}{% set ns.n = ns %}{{ ns | string }}{{ ns | pprint }}",
        ] {
            let e = prompt(Some(cyclic), "Hi", "<s>", "</s>").unwrap_err().to_string();
            assert!(e.contains("nests deeper than"), "{e}");
        }
        let e = prompt(Some(exploding), "Hi", "<s>", "</s>").unwrap_err().to_string();
        assert!(e.starts_with("tokenizer.chat_template: ") && e.contains("exceeds"), "{e}");
    }
}
