//! A Go template's text split into text and actions, and an action into tokens; `{{-`/`-}}`
//! trim the whitespace beside them and `{{/* */}}` comments vanish (as Go's lexer does).

use super::err;
use crate::error::Result;
use serde_json::Value;

#[derive(Debug, Clone)]
pub enum Item {
    Text(String),
    /// An action's line and tokens.
    Action(usize, Vec<Tok>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Dot,
    /// `.A.B`
    Field(Vec<String>),
    /// `.A.B` straight after `)`: fields of the parenthesised value.
    Chain(Vec<String>),
    /// `$name.A.B` (`$` alone is the name "").
    Var(String, Vec<String>),
    Lit(Value),
    Ident(String),
    Open,
    Close,
    Bar,
    Comma,
    Decl,
    Assign,
}

impl Tok {
    pub fn text(&self) -> String {
        let fields = |f: &[String]| f.iter().map(|s| format!(".{s}")).collect::<String>();
        match self {
            Tok::Dot => ".".into(),
            Tok::Field(f) | Tok::Chain(f) => fields(f),
            Tok::Var(n, f) => format!("${n}{}", fields(f)),
            Tok::Lit(v) => v.to_string(),
            Tok::Ident(w) => w.clone(),
            Tok::Open => "(".into(),
            Tok::Close => ")".into(),
            Tok::Bar => "|".into(),
            Tok::Comma => ",".into(),
            Tok::Decl => ":=".into(),
            Tok::Assign => "=".into(),
        }
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// The template's text and actions.
pub fn items(src: &str) -> Result<Vec<Item>> {
    let mut out = vec![];
    let mut rest = src;
    let mut trim_next = false;
    let mut line = 1;
    while !rest.is_empty() {
        let Some(open) = rest.find("{{") else {
            push_text(&mut out, rest, trim_next, false);
            break;
        };
        line += rest[..open].matches('\n').count();
        let inner = &rest[open + 2..];
        let left = inner.starts_with('-') && inner[1..].starts_with(is_space);
        push_text(&mut out, &rest[..open], trim_next, left);
        let inner = if left { &inner[1..] } else { inner };
        let close = action_end(inner).ok_or_else(|| err(line, "unclosed action"))?;
        let body = &inner[..close];
        let right = body.ends_with('-') && body[..body.len() - 1].ends_with(is_space);
        let body = if right { &body[..body.len() - 1] } else { body };
        trim_next = right;
        line += inner[..close].matches('\n').count();
        rest = &inner[close + 2..];
        let t = body.trim();
        if t.starts_with("/*") {
            if !t.ends_with("*/") {
                return Err(err(line, "unclosed comment"));
            }
            continue;
        }
        out.push(Item::Action(line, tokens(line, body)?));
    }
    Ok(out)
}

fn push_text(out: &mut Vec<Item>, text: &str, trim_start: bool, trim_end: bool) {
    let text = if trim_start { text.trim_start_matches(is_space) } else { text };
    let text = if trim_end { text.trim_end_matches(is_space) } else { text };
    if !text.is_empty() {
        out.push(Item::Text(text.to_string()));
    }
}

/// Where the `}}` that ends an action is, past any quoted `}}`.
fn action_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        match b[i] {
            b'"' => i = skip_quoted(b, i, b'"')?,
            b'`' => i = skip_quoted(b, i, b'`')?,
            b'/' if b[i + 1] == b'*' => i = s[i + 2..].find("*/").map(|j| i + 2 + j + 1)?,
            b'}' if b[i + 1] == b'}' => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The index of the quote that closes the one at `i`.
fn skip_quoted(b: &[u8], mut i: usize, q: u8) -> Option<usize> {
    i += 1;
    while i < b.len() {
        if b[i] == b'\\' && q == b'"' {
            i += 2;
            continue;
        }
        if b[i] == q {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `.A.B` at the start of `s` (after the dot): the names and the bytes read.
fn chain(s: &str) -> (Vec<String>, usize) {
    let (mut names, mut at) = (vec![], 0);
    while s[at..].starts_with('.') {
        let name: String = s[at + 1..].chars().take_while(|&c| ident_char(c)).collect();
        if name.is_empty() {
            break;
        }
        at += 1 + name.len();
        names.push(name);
    }
    (names, at)
}

/// An action's tokens.
fn tokens(line: usize, s: &str) -> Result<Vec<Tok>> {
    let mut out = vec![];
    let mut i = 0;
    while i < s.len() {
        let c = s[i..].chars().next().unwrap_or(' ');
        if is_space(c) {
            i += 1;
            continue;
        }
        let (tok, len) = match c {
            '(' => (Tok::Open, 1),
            ')' => (Tok::Close, 1),
            '|' => (Tok::Bar, 1),
            ',' => (Tok::Comma, 1),
            ':' if s[i..].starts_with(":=") => (Tok::Decl, 2),
            '=' => (Tok::Assign, 1),
            '.' => match chain(&s[i..]) {
                (f, _) if f.is_empty() => (Tok::Dot, 1),
                (f, n) if out.last() == Some(&Tok::Close) && i > 0 && &s[i - 1..i] == ")" => {
                    (Tok::Chain(f), n)
                }
                (f, n) => (Tok::Field(f), n),
            },
            '$' => {
                let name: String = s[i + 1..].chars().take_while(|&c| ident_char(c)).collect();
                let (f, n) = chain(&s[i + 1 + name.len()..]);
                let len = 1 + name.len() + n;
                (Tok::Var(name, f), len)
            }
            '"' | '`' => {
                let q = c as u8;
                let end =
                    skip_quoted(s.as_bytes(), i, q).ok_or_else(|| err(line, "unclosed string"))?;
                let raw = &s[i..=end];
                let v = if q == b'`' {
                    raw[1..raw.len() - 1].to_string()
                } else {
                    serde_json::from_str::<String>(raw)
                        .map_err(|_| err(line, format!("cannot read the string {raw}")))?
                };
                (Tok::Lit(Value::String(v)), end + 1 - i)
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                let word: String = s[i..]
                    .chars()
                    .take_while(|&c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                    .collect();
                (Tok::Lit(number(line, &word)?), word.len())
            }
            c if ident_char(c) => {
                let word: String = s[i..].chars().take_while(|&c| ident_char(c)).collect();
                let tok = match word.as_str() {
                    "true" => Tok::Lit(Value::Bool(true)),
                    "false" => Tok::Lit(Value::Bool(false)),
                    "nil" => Tok::Lit(Value::Null),
                    _ => Tok::Ident(word.clone()),
                };
                (tok, word.len())
            }
            other => return Err(err(line, format!("unexpected '{other}'"))),
        };
        out.push(tok);
        i += len;
    }
    Ok(out)
}

fn number(line: usize, word: &str) -> Result<Value> {
    if let Ok(i) = word.parse::<i64>() {
        return Ok(Value::from(i));
    }
    word.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .ok_or_else(|| err(line, format!("cannot read the number {word}")))
}
