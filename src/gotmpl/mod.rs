//! Go's `text/template`, as far as Ollama's prompt templates use it (a Modelfile's `TEMPLATE`):
//! text and `{{ }}` actions with `{{-`/`-}}` trimming and comments; pipelines of fields, variables,
//! literals, parenthesised pipelines and functions; `if`/`else if`/`else`, `range` (arrays,
//! maps, integers; `break`, `continue`), `with`; variables declared and assigned. Values are
//! JSON ([`exec`]).
//!
//! Written here rather than taken from the gtmpl crate (0.7.1), measured against Ollama's
//! templates: gtmpl prints an object as Rust's Debug text where Ollama's tools and tool-call
//! arguments print as JSON (their `String` methods), has no `break`/`continue`, and its `printf
//! "%q"` does not quote.

mod exec;
mod funcs;
mod lex;
pub mod ollama;

use crate::error::{Error, Result};
use lex::Tok;
use serde_json::Value;
use std::collections::BTreeSet;

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    root: Vec<Node>,
    fields: BTreeSet<String>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Print(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    Break,
    Continue,
}

/// `$a, $b := cmd | cmd`, or `$a = cmd`.
#[derive(Debug, Clone, Default)]
struct Pipe {
    decl: Vec<String>,
    assign: bool,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone)]
enum Arg {
    Dot,
    Field(Vec<String>),
    Var(String, Vec<String>),
    Lit(Value),
    Func(String),
    Sub(Box<Pipe>, Vec<String>),
}

/// How deep blocks and parentheses may nest: far beyond any prompt template; parsing and
/// running recurse, so a template nested without end must not reach the stack's end.
const MAX_DEPTH: usize = 100;

fn err(line: usize, what: impl std::fmt::Display) -> Error {
    Error::Template(format!("line {line}: {what}"))
}

impl Template {
    /// Parses `src`; an error names the line and what is wrong.
    pub fn parse(src: &str) -> Result<Template> {
        let items = lex::items(src)?;
        let mut p = Parser { items, i: 0, fields: BTreeSet::new(), depth: 0 };
        let (root, end) = p.list()?;
        if let Some((line, word)) = end {
            return Err(err(line, format!("unexpected {{{{{word}}}}}")));
        }
        Ok(Template { root, fields: p.fields })
    }

    /// Whether the template reads a field of this name anywhere (case-insensitive, as Ollama's
    /// `Vars` compares them).
    pub fn uses(&self, field: &str) -> bool {
        self.fields.contains(&field.to_ascii_lowercase())
    }

    /// The template executed over `data` (`$` and the first `.`).
    pub fn render(&self, data: &Value) -> Result<String> {
        exec::run(&self.root, data)
    }
}

struct Parser {
    items: Vec<lex::Item>,
    i: usize,
    fields: BTreeSet<String>,
    depth: usize,
}

/// Where a list stopped: `end`, or `else` with what follows it.
type Stop = Option<(usize, String)>;

impl Parser {
    /// Nodes up to an `{{end}}` or `{{else …}}` (returned, with its line) or the end of the text.
    fn list(&mut self) -> Result<(Vec<Node>, Stop)> {
        let mut out = vec![];
        while self.i < self.items.len() {
            let item = self.items[self.i].clone();
            self.i += 1;
            let (line, toks) = match item {
                lex::Item::Text(t) => {
                    out.push(Node::Text(t));
                    continue;
                }
                lex::Item::Action(line, toks) => (line, toks),
            };
            let word = match toks.first() {
                Some(Tok::Ident(w)) => w.as_str(),
                _ => "",
            };
            match word {
                "end" | "else" => return Ok((out, Some((line, Self::words(&toks))))),
                "if" | "with" | "range" => out.push(self.branch(word, line, &toks[1..])?),
                "break" => out.push(Node::Break),
                "continue" => out.push(Node::Continue),
                "define" | "template" | "block" => {
                    return Err(err(line, format!("{{{{{word}}}}} is not supported")))
                }
                _ => out.push(Node::Print(self.pipe(line, &toks)?)),
            }
        }
        Ok((out, None))
    }

    fn words(toks: &[Tok]) -> String {
        toks.iter().map(Tok::text).collect::<Vec<_>>().join(" ")
    }

    /// `if`/`with`/`range` and its body to the matching `end`; `{{else if …}}` is an `if` in the
    /// else branch that shares the `end`.
    fn branch(&mut self, kind: &str, line: usize, toks: &[Tok]) -> Result<Node> {
        self.deeper(line)?;
        let node = self.branch_body(kind, line, toks);
        self.depth -= 1;
        node
    }

    fn deeper(&mut self, line: usize) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(line, format!("blocks or parentheses nest deeper than {MAX_DEPTH}")));
        }
        Ok(())
    }

    fn branch_body(&mut self, kind: &str, line: usize, toks: &[Tok]) -> Result<Node> {
        let pipe = self.pipe(line, toks)?;
        if kind != "range" && pipe.decl.len() > 1 {
            return Err(err(line, "only range declares two variables"));
        }
        let (body, stop) = self.list()?;
        let (sline, words) = stop.ok_or_else(|| err(line, format!("{{{{{kind}}}}} has no end")))?;
        let els = if words == "end" {
            vec![]
        } else {
            let rest = &self.else_toks(sline)?;
            match rest.first() {
                None => {
                    let (els, stop) = self.list()?;
                    match stop {
                        Some((_, w)) if w == "end" => els,
                        _ => return Err(err(sline, format!("{{{{{kind}}}}}'s else has no end"))),
                    }
                }
                Some(Tok::Ident(k)) if k == "if" || k == "with" => {
                    vec![self.branch(k, sline, &rest[1..])?]
                }
                _ => return Err(err(sline, format!("unexpected {{{{{words}}}}}"))),
            }
        };
        Ok(match kind {
            "if" => Node::If(pipe, body, els),
            "with" => Node::With(pipe, body, els),
            _ => Node::Range(pipe, body, els),
        })
    }

    /// The tokens after `else` in the action that stopped a list.
    fn else_toks(&self, line: usize) -> Result<Vec<Tok>> {
        match &self.items[self.i - 1] {
            lex::Item::Action(_, toks) => Ok(toks[1..].to_vec()),
            lex::Item::Text(_) => Err(err(line, "else without an action")),
        }
    }

    /// A pipeline, with its declaration.
    fn pipe(&mut self, line: usize, toks: &[Tok]) -> Result<Pipe> {
        let mut p = Pipe::default();
        let mut rest = toks;
        let decl_at = rest.iter().position(|t| matches!(t, Tok::Decl | Tok::Assign));
        if let Some(at) = decl_at {
            let vars = &rest[..at];
            let names: Vec<String> = vars
                .iter()
                .filter(|t| !matches!(t, Tok::Comma))
                .map(|t| match t {
                    Tok::Var(n, f) if f.is_empty() => Ok(n.clone()),
                    other => Err(err(line, format!("cannot declare {}", other.text()))),
                })
                .collect::<Result<_>>()?;
            if names.is_empty() || names.len() > 2 {
                return Err(err(line, "a declaration names one or two variables"));
            }
            p.assign = matches!(rest[at], Tok::Assign);
            p.decl = names;
            rest = &rest[at + 1..];
        }
        for cmd in split_top(rest, |t| matches!(t, Tok::Bar)) {
            p.cmds.push(self.command(line, cmd)?);
        }
        if p.cmds.iter().any(Vec::is_empty) || p.cmds.is_empty() {
            return Err(err(line, "missing value"));
        }
        Ok(p)
    }

    fn command(&mut self, line: usize, toks: &[Tok]) -> Result<Vec<Arg>> {
        let mut args = vec![];
        let mut i = 0;
        while i < toks.len() {
            let arg = match &toks[i] {
                Tok::Dot => Arg::Dot,
                Tok::Field(f) => {
                    self.note(f);
                    Arg::Field(f.clone())
                }
                Tok::Var(n, f) => {
                    self.note(f);
                    Arg::Var(n.clone(), f.clone())
                }
                Tok::Lit(v) => Arg::Lit(v.clone()),
                Tok::Ident(name) => Arg::Func(name.clone()),
                Tok::Open => {
                    let close = matching(toks, i).ok_or_else(|| err(line, "unclosed ("))?;
                    self.deeper(line)?;
                    let sub = self.pipe(line, &toks[i + 1..close]);
                    self.depth -= 1;
                    let sub = sub?;
                    i = close;
                    let chain = match toks.get(i + 1) {
                        Some(Tok::Chain(f)) => {
                            i += 1;
                            self.note(f);
                            f.clone()
                        }
                        _ => vec![],
                    };
                    Arg::Sub(Box::new(sub), chain)
                }
                other => return Err(err(line, format!("unexpected {}", other.text()))),
            };
            args.push(arg);
            i += 1;
        }
        Ok(args)
    }

    fn note(&mut self, fields: &[String]) {
        self.fields.extend(fields.iter().map(|f| f.to_ascii_lowercase()));
    }
}

/// The `)` that closes the `(` at `open`.
fn matching(toks: &[Tok], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::Open => depth += 1,
            Tok::Close => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `toks` split where `at` holds outside parentheses.
fn split_top(toks: &[Tok], at: impl Fn(&Tok) -> bool) -> Vec<&[Tok]> {
    let (mut out, mut depth, mut start) = (vec![], 0i32, 0);
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Open => depth += 1,
            Tok::Close => depth -= 1,
            t if depth == 0 && at(t) => {
                out.push(&toks[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&toks[start..]);
    out
}

#[cfg(test)]
mod tests;
