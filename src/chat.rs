//! Chat prompts from a GGUF's `tokenizer.chat_template`, as llama.cpp applies them: gemma's turn
//! format where the template is gemma's, otherwise the Jinja template itself (minijinja).

use crate::error::{Error, Result};
use minijinja::{context, Environment, ErrorKind};

/// The prompt text for one user message under `template` (None: the text as it is).
///
/// A template that contains `<start_of_turn>` gets gemma's turn format, which is what llama.cpp
/// does by default (ref: llama-chat.cpp llm_chat_detect_template → LLM_CHAT_TEMPLATE_GEMMA), so
/// chimera's prompts match llama.cpp's token for token. Any other template is rendered with
/// `messages = [{role: "user", content}]`, `add_generation_prompt = true`, `bos_token` and
/// `eos_token`, and `raise_exception`. A leading `bos_token` is dropped because the tokenizer
/// adds BOS itself (llama.cpp warns about the double BOS otherwise).
pub fn prompt(template: Option<&str>, user: &str, bos: &str, eos: &str) -> Result<String> {
    let Some(template) = template else {
        return Ok(user.to_string());
    };
    if template.contains("<start_of_turn>") {
        return Ok(gemma(user));
    }
    let err = |e: minijinja::Error| {
        let mut what = e.to_string();
        if let Some(detail) = e.detail() {
            what = format!("{what}: {detail}");
        }
        Error::Template(what.replace('\n', " "))
    };
    let mut env = Environment::new();
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> std::result::Result<String, _> {
        Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
    });
    env.add_template("chat", template).map_err(err)?;
    let text = env
        .get_template("chat")
        .map_err(err)?
        .render(context! {
            messages => vec![context! { role => "user", content => user }],
            add_generation_prompt => true,
            bos_token => bos,
            eos_token => eos,
        })
        .map_err(err)?;
    Ok(match text.strip_prefix(bos) {
        Some(rest) if !bos.is_empty() => rest.to_string(),
        _ => text,
    })
}

/// gemma's turn format for one user message (ref: llama-chat.cpp LLM_CHAT_TEMPLATE_GEMMA; the
/// template's leading `{{ bos_token }}` is left to the tokenizer's add_bos).
pub fn gemma(user: &str) -> String {
    format!("<start_of_turn>user\n{}<end_of_turn>\n<start_of_turn>model\n", user.trim())
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
}
