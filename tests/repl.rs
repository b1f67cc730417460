//! `chimera run MODEL` on a pseudo-terminal: the interactive chat, its commands, the KV cache
//! kept between turns, Ctrl-C and Ctrl-D.

use crate::util::*;
use rexpect::session::{spawn_command, PtySession};
use std::process::Command;

/// The number after `prompt eval count:` in the next `--verbose` block.
fn prompt_eval_count(p: &mut PtySession) -> usize {
    let (_, m) = p.exp_regex(r"prompt eval count: +\d+").expect("a timings block");
    m.rsplit(' ').next().unwrap().parse().unwrap()
}

fn say(p: &mut PtySession, line: &str) -> usize {
    p.send_line(line).unwrap();
    let n = prompt_eval_count(p);
    p.exp_string(">>> ").unwrap();
    n
}

#[test]
fn chat_on_a_terminal_keeps_the_conversation() {
    let d = tempdir();
    let model = real_model();
    let mut c = Command::new(env!("CARGO_BIN_EXE_chimera"));
    c.args([
        "run",
        model.to_str().unwrap(),
        "--num-predict",
        "12",
        "--temperature",
        "0",
        "--verbose",
    ])
    .env("CHIMERA_HOME", d.path());
    let mut p = spawn_command(c, Some(60_000)).unwrap();
    p.exp_string(">>> ").unwrap();
    p.send_line("/?").unwrap();
    p.exp_string("/set parameter NAME VALUE").unwrap();
    p.exp_string(">>> ").unwrap();
    p.send_line("/show info").unwrap();
    p.exp_string("embedding length    640").unwrap();
    p.exp_string("quantization        Q4_K - Medium").unwrap();
    p.exp_string(">>> ").unwrap();

    // turn two evaluates only itself: less than turn one's prompt and its own together
    let first = say(&mut p, "The capital of France is");
    let second = say(&mut p, "And the capital of Italy is");
    p.send_line("/clear").unwrap();
    p.exp_string("Cleared session context").unwrap();
    p.exp_string(">>> ").unwrap();
    let alone = say(&mut p, "And the capital of Italy is");
    assert!(second < first + alone, "turn two evaluated {second}: {first} + {alone} is the whole");

    p.send_line("/set parameter temperature hot").unwrap();
    p.exp_string("error: temperature").unwrap();
    p.exp_string(">>> ").unwrap();
    p.send_line("/set parameter num_predict 100000").unwrap();
    p.exp_string("Set parameter 'num_predict' to '100000'").unwrap();
    p.exp_string(">>> ").unwrap();
    p.send_line("/set system You are terse.").unwrap();
    p.exp_string("Set system message.").unwrap();
    p.send_line("/show system").unwrap();
    p.exp_string("You are terse.").unwrap();
    p.exp_string(">>> ").unwrap();

    // Ctrl-C stops a long answer and the chat goes on; at the prompt it says how to leave
    // the answer, not the echoed line: before the answer starts, rustyline may still hold the
    // terminal raw, where Ctrl-C is a byte read as input, not SIGINT
    p.send_line("Once upon a time").unwrap();
    p.exp_string("Once upon a time").unwrap();
    p.exp_regex(r"\n[\s\S]*?[A-Za-z]{3}").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("prompt eval count").unwrap();
    p.exp_string(">>> ").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("Use Ctrl + d or /bye to exit.").unwrap();
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
    let history = std::fs::read_to_string(d.path().join("history")).unwrap();
    assert!(history.contains("The capital of France is"), "{history}");
}

/// `/bye` exits with status 0; an unknown command is an error line and the chat goes on.
#[test]
fn bye_exits_and_unknown_commands_are_named() {
    let d = tempdir();
    let p = d.path().join("tiny.gguf");
    tiny_model(&p, chimera::gguf::TensorType::Q8_0, |_| {});
    let mut c = Command::new(env!("CARGO_BIN_EXE_chimera"));
    c.args(["run", p.to_str().unwrap(), "--num-predict", "3"]).env("CHIMERA_HOME", d.path());
    let mut s = spawn_command(c, Some(30_000)).unwrap();
    s.exp_string(">>> ").unwrap();
    s.send_line("/frobnicate").unwrap();
    s.exp_string("error: unknown command '/frobnicate'").unwrap();
    s.exp_string(">>> ").unwrap();
    s.send_line("ab").unwrap();
    s.exp_string(">>> ").unwrap();
    s.send_line("/bye").unwrap();
    s.exp_eof().unwrap();
    let status = s.process().wait().unwrap();
    assert!(matches!(status, rexpect::process::WaitStatus::Exited(_, 0)), "{status:?}");
}
