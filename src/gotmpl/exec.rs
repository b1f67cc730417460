//! Executing a template over JSON values with Go's rules: truth, variable scope, `range` over
//! arrays, maps (sorted keys) and integers, the builtin functions Ollama's templates call (and
//! Ollama's `json`), and printing (an object or array prints as JSON, as Ollama's tools and
//! tool-call arguments do through their `String` methods).

use super::{Arg, Node, Pipe};
use crate::error::{Error, Result};
use serde_json::Value;

/// Steps a render may take: far beyond a prompt over a long conversation; it stops a template
/// that loops over a huge integer.
const FUEL: u64 = 5_000_000;
/// The most text a render may produce (a prompt far longer than any context).
const MAX_OUTPUT: usize = 64 << 20;

pub(super) fn fail(what: impl std::fmt::Display) -> Error {
    Error::Template(what.to_string())
}

enum Flow {
    Next,
    Break,
    Continue,
}

struct Exec<'a> {
    out: String,
    vars: Vec<(String, Value)>,
    fuel: u64,
    root: &'a Value,
}

pub fn run(nodes: &[Node], data: &Value) -> Result<String> {
    let mut x = Exec { out: String::new(), vars: vec![], fuel: FUEL, root: data };
    x.list(nodes, data)?;
    Ok(x.out)
}

/// Go's truth: false, 0, "", nil and empty collections are false.
pub fn truth(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A value as `{{ }}` prints it.
pub fn print(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
            _ => n.to_string(),
        },
        Value::Bool(b) => b.to_string(),
        _ => super::funcs::json(v),
    }
}

fn field(mut v: Value, chain: &[String]) -> Result<Value> {
    for name in chain {
        v = match v {
            // Ollama's Go structs answer to both names: `.ToolCalls` reads `tool_calls`
            Value::Object(mut o) => {
                o.remove(name).or_else(|| o.remove(&snake(name))).unwrap_or(Value::Null)
            }
            Value::Null => Value::Null,
            other => return Err(fail(format!("can't evaluate field {name} in {}", kind(&other)))),
        };
    }
    Ok(v)
}

/// A Go field name as its JSON key: `ToolCalls` → `tool_calls`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

impl Exec<'_> {
    fn list(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow> {
        for n in nodes {
            self.fuel =
                self.fuel.checked_sub(1).ok_or_else(|| fail("the template runs too long"))?;
            if self.out.len() > MAX_OUTPUT {
                return Err(fail(format!("the template's output exceeds {MAX_OUTPUT} bytes")));
            }
            let flow = match n {
                Node::Text(t) => {
                    self.out.push_str(t);
                    Flow::Next
                }
                Node::Print(p) => {
                    let v = self.pipe(p, dot)?;
                    if p.decl.is_empty() {
                        self.out.push_str(&print(&v));
                    }
                    Flow::Next
                }
                Node::If(p, body, els) | Node::With(p, body, els) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    let flow = match (truth(&v), matches!(n, Node::With(..))) {
                        (true, true) => self.list(body, &v)?,
                        (true, false) => self.list(body, dot)?,
                        (false, _) => self.list(els, dot)?,
                    };
                    self.vars.truncate(mark);
                    flow
                }
                Node::Range(p, body, els) => self.range(p, body, els, dot)?,
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
            };
            if !matches!(flow, Flow::Next) {
                return Ok(flow);
            }
        }
        Ok(Flow::Next)
    }

    fn range(&mut self, p: &Pipe, body: &[Node], els: &[Node], dot: &Value) -> Result<Flow> {
        let mark = self.vars.len();
        let over = self.value(p, dot)?;
        let n = match &over {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            Value::Number(n) if n.as_u64().is_some() => n.as_u64().unwrap_or(0) as usize,
            Value::Null => 0,
            other => return Err(fail(format!("range can't iterate over {}", kind(other)))),
        };
        let mut keys: Vec<&String> =
            over.as_object().map(|o| o.keys().collect()).unwrap_or_default();
        keys.sort();
        if n == 0 {
            let flow = self.list(els, dot)?;
            self.vars.truncate(mark);
            return Ok(flow);
        }
        for i in 0..n {
            self.fuel =
                self.fuel.checked_sub(1).ok_or_else(|| fail("the template runs too long"))?;
            let (k, v) = match &over {
                Value::Array(a) => (Value::from(i), a[i].clone()),
                Value::Object(o) => (Value::from(keys[i].as_str()), o[keys[i].as_str()].clone()),
                _ => (Value::from(i), Value::from(i)),
            };
            match p.decl.as_slice() {
                [e] => self.vars.push((e.clone(), v.clone())),
                [kn, e] => {
                    self.vars.push((kn.clone(), k));
                    self.vars.push((e.clone(), v.clone()));
                }
                _ => {}
            }
            let flow = self.list(body, &v)?;
            self.vars.truncate(mark);
            if matches!(flow, Flow::Break) {
                break;
            }
        }
        Ok(Flow::Next)
    }

    /// A pipeline's value, with its declaration or assignment done.
    fn pipe(&mut self, p: &Pipe, dot: &Value) -> Result<Value> {
        let v = self.value(p, dot)?;
        if let [name] = p.decl.as_slice() {
            if p.assign {
                let slot = self.vars.iter_mut().rev().find(|(n, _)| n == name);
                let slot = slot.ok_or_else(|| fail(format!("undefined variable ${name}")))?;
                slot.1 = v.clone();
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    /// A pipeline's value: each command's result is the last argument of the next.
    fn value(&mut self, p: &Pipe, dot: &Value) -> Result<Value> {
        let mut piped = None;
        for cmd in &p.cmds {
            piped = Some(self.command(cmd, dot, piped)?);
        }
        Ok(piped.unwrap_or(Value::Null))
    }

    fn command(&mut self, cmd: &[Arg], dot: &Value, piped: Option<Value>) -> Result<Value> {
        match cmd {
            [Arg::Func(name), rest @ ..] => self.call(name, rest, dot, piped),
            [one] if piped.is_none() => self.arg(one, dot),
            _ => Err(fail("can't give an argument to a value that is not a function")),
        }
    }

    fn arg(&mut self, a: &Arg, dot: &Value) -> Result<Value> {
        match a {
            Arg::Dot => Ok(dot.clone()),
            Arg::Field(f) => field(dot.clone(), f),
            Arg::Var(name, f) if name.is_empty() => field(self.root.clone(), f),
            Arg::Var(name, f) => {
                let v = self.vars.iter().rev().find(|(n, _)| n == name);
                let v = v.ok_or_else(|| fail(format!("undefined variable ${name}")))?.1.clone();
                field(v, f)
            }
            Arg::Lit(v) => Ok(v.clone()),
            Arg::Func(name) => self.call(name, &[], dot, None),
            Arg::Sub(p, f) => {
                let v = self.value(p, dot)?;
                field(v, f)
            }
        }
    }

    fn call(
        &mut self,
        name: &str,
        args: &[Arg],
        dot: &Value,
        piped: Option<Value>,
    ) -> Result<Value> {
        // and/or stop at the first argument that decides them, as Go's do
        if name == "and" || name == "or" {
            let want = name == "or";
            let mut last = Value::Null;
            for a in args {
                last = self.arg(a, dot)?;
                if truth(&last) == want {
                    return Ok(last);
                }
            }
            return Ok(piped.unwrap_or(last));
        }
        let mut vals = args.iter().map(|a| self.arg(a, dot)).collect::<Result<Vec<_>>>()?;
        vals.extend(piped);
        super::funcs::call(name, &vals)
    }
}
