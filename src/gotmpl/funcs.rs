//! The functions a template may call: Go's builtins that prompt templates use (`not`, `len`,
//! `index`, `slice`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `print`, `println`, `printf`; `and`
//! and `or` are in [`super::exec`], which evaluates them lazily) and Ollama's `json`.

use super::exec::{fail, print, truth};
use crate::error::Result;
use serde_json::Value;
use std::cmp::Ordering;

fn arity(name: &str, v: &[Value], n: std::ops::RangeInclusive<usize>) -> Result<()> {
    if n.contains(&v.len()) {
        return Ok(());
    }
    Err(fail(format!("wrong number of arguments for {name}: {}", v.len())))
}

pub fn call(name: &str, v: &[Value]) -> Result<Value> {
    match name {
        "not" => arity(name, v, 1..=1).map(|()| Value::Bool(!truth(&v[0]))),
        "len" => arity(name, v, 1..=1).and_then(|()| len(&v[0])),
        "index" => arity(name, v, 1..=usize::MAX).and_then(|()| index(v)),
        "slice" => arity(name, v, 1..=3).and_then(|()| slice(v)),
        "eq" => arity(name, v, 2..=usize::MAX)
            .map(|()| Value::Bool(v[1..].iter().any(|b| same(&v[0], b)))),
        "ne" => arity(name, v, 2..=2).map(|()| Value::Bool(!same(&v[0], &v[1]))),
        "lt" | "le" | "gt" | "ge" => {
            arity(name, v, 2..=2)?;
            let o = order(&v[0], &v[1])?;
            Ok(Value::Bool(match name {
                "lt" => o == Ordering::Less,
                "le" => o != Ordering::Greater,
                "gt" => o == Ordering::Greater,
                _ => o != Ordering::Less,
            }))
        }
        "print" => Ok(Value::String(sprint(v))),
        "println" => Ok(Value::String(v.iter().map(print).collect::<Vec<_>>().join(" ") + "\n")),
        "printf" => arity(name, v, 1..=usize::MAX).and_then(|()| printf(v)),
        "json" => arity(name, v, 1..=1).map(|()| Value::String(json(&v[0]))),
        other => Err(fail(format!("function \"{other}\" not defined"))),
    }
}

/// Go's `json.Marshal`: `<`, `>` and `&` escaped.
pub fn json(v: &Value) -> String {
    v.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

fn len(v: &Value) -> Result<Value> {
    Ok(Value::from(match v {
        Value::String(s) => s.len(),
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        other => return Err(fail(format!("len of {other}"))),
    }))
}

fn int(v: &Value) -> Result<usize> {
    v.as_u64().map(|n| n as usize).ok_or_else(|| fail(format!("cannot index with {v}")))
}

fn index(v: &[Value]) -> Result<Value> {
    let mut cur = v[0].clone();
    for k in &v[1..] {
        cur = match (&cur, k) {
            (Value::Array(a), _) => {
                let i = int(k)?;
                a.get(i).cloned().ok_or_else(|| fail(format!("index out of range: {i}")))?
            }
            (Value::Object(o), Value::String(s)) => o.get(s).cloned().unwrap_or(Value::Null),
            (Value::Null, _) => return Err(fail("index of untyped nil")),
            _ => return Err(fail(format!("can't index {cur} with {k}"))),
        };
    }
    Ok(cur)
}

fn slice(v: &[Value]) -> Result<Value> {
    let n = match &v[0] {
        Value::Array(a) => a.len(),
        Value::String(s) => s.len(),
        other => return Err(fail(format!("can't slice {other}"))),
    };
    let from = v.get(1).map(int).transpose()?.unwrap_or(0);
    let to = v.get(2).map(int).transpose()?.unwrap_or(n);
    if from > to || to > n {
        return Err(fail(format!("slice bounds out of range [{from}:{to}] of {n}")));
    }
    Ok(match &v[0] {
        Value::Array(a) => Value::Array(a[from..to].to_vec()),
        Value::String(s) => Value::String(
            s.get(from..to).ok_or_else(|| fail("slice inside a character"))?.to_string(),
        ),
        _ => Value::Null,
    })
}

/// Go's `eq`: numbers by value, everything else as it is.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn order(a: &Value, b: &Value) -> Result<Ordering> {
    let o = match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    };
    o.ok_or_else(|| fail(format!("incompatible types for comparison: {a} and {b}")))
}

/// Go's `fmt.Sprint`: a space between two operands when neither is a string.
fn sprint(v: &[Value]) -> String {
    let mut out = String::new();
    for (i, x) in v.iter().enumerate() {
        if i > 0 && !v[i - 1].is_string() && !x.is_string() {
            out.push(' ');
        }
        out.push_str(&print(x));
    }
    out
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%s %v %d %q %t %f %%`.
fn printf(v: &[Value]) -> Result<Value> {
    let fmt = v[0].as_str().ok_or_else(|| fail("printf's format must be a string"))?;
    let mut args = v[1..].iter();
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let verb = chars.next().ok_or_else(|| fail("printf: the format ends in %"))?;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let a = args.next().ok_or_else(|| fail(format!("printf: no argument for %{verb}")))?;
        match verb {
            's' | 'v' | 'd' | 't' => out.push_str(&print(a)),
            'q' => out.push_str(&Value::String(print(a)).to_string()),
            'f' => out.push_str(&format!("{:.6}", a.as_f64().unwrap_or(f64::NAN))),
            other => return Err(fail(format!("printf: %{other} is not supported"))),
        }
    }
    Ok(Value::String(out))
}
