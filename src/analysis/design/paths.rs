//! Factors encoded in file and folder names. The files of one family are aligned component by
//! component; where components differ, their tokens are aligned too, and each position that
//! varies becomes a factor: `ctx16k`/`ctx4k` → `ctx` = 16k/4k, `symmetric-on`/`-off` →
//! `symmetric` = on/off, `q4_k_m`/`q8_0` → `quant`, `turbo3`/`f16` → `kv`, stamps → `run` (the
//! session), `run1`/`run2` → a repetition (not a factor).

use crate::analysis::record::Level;
use crate::stamp;

/// A factor found in names: its name and each file's level (`None` where a file has none).
#[derive(Debug, Clone, PartialEq)]
pub struct PathFactor {
    pub name: String,
    pub levels: Vec<Level>,
    /// A stamp: the files are sessions of one benchmark.
    pub session: bool,
    /// A repetition counter (`run1`, `rep2`, `trial3`): repeats, not a factor.
    pub repeat: bool,
}

/// Quantization and cache-type words (ggml type names and common KV schemes).
fn quant_word(t: &str) -> bool {
    let t = t.to_ascii_lowercase();
    let exact = ["f16", "f32", "bf16", "fp16", "fp32", "fp8", "int8", "int4", "baseline"];
    exact.contains(&t.as_str())
        || (t.starts_with('q') || t.starts_with("iq"))
            && t.chars()
                .nth(if t.starts_with("iq") { 2 } else { 1 })
                .is_some_and(|c| c.is_ascii_digit())
        || t.starts_with("turbo")
        || t.starts_with("planar")
        || t.starts_with("tq") && t.len() <= 4
}

/// Splits a name into tokens on `__`, `_`, `/` and ` `, keeping ggml type names (`q4_k_m`,
/// `q8_0`, `iq4_xs`) and `key-value` pairs whole.
pub fn tokens(name: &str) -> Vec<String> {
    let stem = name
        .rsplit_once('.')
        .filter(|(_, e)| e.len() <= 6 && !e.chars().all(|c| c.is_ascii_digit()))
        .map_or(name, |(s, _)| s);
    let stem = stem.strip_suffix(".stderr").unwrap_or(stem);
    let fields = field_dots(stem);
    if fields.len() > 1 {
        // `<tag>.<build>`: each dotted field is tokenised on its own
        return fields.iter().flat_map(|f| tokens(&format!("{f}.x"))).collect();
    }
    if stem.contains("__") {
        // `model__toolbox__fa1`: the double underscore separates fields whose values hold `_`
        return stem.split("__").filter(|t| !t.is_empty()).map(String::from).collect();
    }
    let raw: Vec<&str> = stem.split(['_', ' ']).filter(|t| !t.is_empty()).collect();
    let mut out: Vec<String> = vec![];
    let mut i = 0;
    while i < raw.len() {
        // re-join ggml type names split by '_': q4 + k + m, q8 + 0, iq4 + xs
        let t = raw[i];
        let lower = t.to_ascii_lowercase();
        let is_q = (lower.starts_with('q') || lower.starts_with("iq"))
            && lower.len() <= 4
            && lower.chars().skip(1).any(|c| c.is_ascii_digit());
        if is_q {
            let mut j = i + 1;
            let mut joined = t.to_string();
            while j < raw.len()
                && raw[j].len() <= 2
                && j - i <= 2
                && raw[j].chars().all(|c| c.is_ascii_alphanumeric())
            {
                let n = raw[j].to_ascii_lowercase();
                if !(n == "0"
                    || n == "1"
                    || n == "k"
                    || n == "m"
                    || n == "s"
                    || n == "l"
                    || n == "xs"
                    || n == "xxs"
                    || n == "nl")
                {
                    break;
                }
                joined.push('_');
                joined.push_str(raw[j]);
                j += 1;
            }
            out.push(joined);
            i = j;
            continue;
        }
        out.push(t.to_string());
        i += 1;
    }
    out
}

/// A stem cut at the dots that separate fields (`gpt-oss-20b.default-hip`): a dot between an
/// alphanumeric character and a letter, so that versions and decimals (`llama3.1`, `t0.2`) stay.
fn field_dots(stem: &str) -> Vec<&str> {
    let b = stem.as_bytes();
    let mut out = vec![];
    let mut start = 0;
    for i in 1..b.len().saturating_sub(1) {
        if b[i] == b'.' && b[i - 1].is_ascii_alphanumeric() && b[i + 1].is_ascii_alphabetic() {
            out.push(&stem[start..i]);
            start = i + 1;
        }
    }
    out.push(&stem[start..]);
    out
}

/// Whether a file's name has dotted fields (`gpt-oss-20b.default-hip.jsonl`).
pub fn dotted(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    field_dots(stem).len() > 1
}

/// What a varying token position is, from its values.
fn name_for(
    values: &[&str],
    position: usize,
    depth_name: &str,
) -> (String, Vec<Level>, bool, bool) {
    let lv = |s: &str| Level::parse(s);
    // stamps: sessions
    if values.iter().all(|v| !stamp::in_name(v).is_empty()) {
        return (
            "run".into(),
            values.iter().map(|v| Level::Text(v.to_string())).collect(),
            true,
            false,
        );
    }
    if values.iter().all(|v| quant_word(v)) {
        let kv = values.iter().any(|v| {
            let l = v.to_ascii_lowercase();
            l.starts_with("turbo") || l.starts_with("planar") || l == "baseline"
        });
        return (
            if kv { "kv type" } else { "quant" }.into(),
            values.iter().map(|v| lv(v)).collect(),
            false,
            false,
        );
    }
    // a shared alphabetic prefix and a number: ctx16k, run3, t0.2, b512
    let prefix = |v: &str| v.chars().take_while(|c| c.is_ascii_alphabetic()).collect::<String>();
    let p0 = prefix(values[0]);
    if !p0.is_empty()
        && values.iter().all(|v| {
            prefix(v) == p0
                && v.len() > p0.len()
                && v[p0.len()..].starts_with(|c: char| c.is_ascii_digit())
        })
    {
        let rep = matches!(
            p0.to_ascii_lowercase().as_str(),
            "run" | "rep" | "r" | "trial" | "iter" | "repeat" | "seed" | "attempt"
        );
        let levels = values.iter().map(|v| size_level(&v[p0.len()..])).collect();
        return (p0.trim_end_matches(['-', '_']).to_ascii_lowercase(), levels, false, rep);
    }
    // key-value: symmetric-on / symmetric-off, fa1 handled above
    let kv = |v: &str| v.rsplit_once(['-', '=']).map(|(k, x)| (k.to_string(), x.to_string()));
    if let Some((k0, _)) = kv(values[0]) {
        if values.iter().all(|v| kv(v).is_some_and(|(k, _)| k == k0)) {
            let rep = matches!(
                k0.to_ascii_lowercase().as_str(),
                "run" | "rep" | "trial" | "iter" | "repeat" | "seed" | "attempt"
            );
            return (
                k0,
                values
                    .iter()
                    .map(|v| size_level(&kv(v).map(|x| x.1).unwrap_or_default()))
                    .collect(),
                false,
                rep,
            );
        }
    }
    let lower: Vec<String> = values.iter().map(|v| v.to_ascii_lowercase()).collect();
    if lower.iter().all(|v| {
        matches!(v.as_str(), "short" | "medium" | "long" | "xl" | "xs" | "small" | "large" | "tiny")
    }) {
        return ("prompt length".into(), values.iter().map(|v| lv(v)).collect(), false, false);
    }
    if values.iter().all(|v| modelish(v)) {
        return (
            "model".into(),
            values.iter().map(|v| Level::Text(v.to_string())).collect(),
            false,
            false,
        );
    }
    let name = if depth_name.is_empty() {
        format!("name part {}", position + 1)
    } else {
        depth_name.to_string()
    };
    (name, values.iter().map(|v| lv(v)).collect(), false, false)
}

/// Names of different lengths whose last differing token comes from a few words
/// (`gemma3_270m_baseline`, `gemma3_baseline`, `gemma3_tuned`): that token is one factor
/// (`variant` = baseline, tuned), the tokens before it another (the model when the shared prefix
/// names a model family).
fn last_token_split(toks: &[Vec<String>]) -> Option<Vec<PathFactor>> {
    let pre = (0..toks.iter().map(Vec::len).min()?)
        .take_while(|&i| toks.iter().all(|t| t[i] == toks[0][i]))
        .count();
    let rest: Vec<&[String]> = toks.iter().map(|t| &t[pre..]).collect();
    if rest.iter().any(|r| r.is_empty()) || !rest.iter().any(|r| r.len() >= 2) {
        return None;
    }
    let lasts: Vec<&str> = rest.iter().map(|r| r[r.len() - 1].as_str()).collect();
    let mut distinct = lasts.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 2 || distinct.len() >= toks.len() {
        return None;
    }
    let variant = lasts.iter().all(|l| {
        matches!(
            l.to_ascii_lowercase().as_str(),
            "baseline"
                | "tuned"
                | "optimized"
                | "optimised"
                | "default"
                | "custom"
                | "fixed"
                | "before"
                | "after"
        )
    });
    let (name, levels, _, _) = name_for(&lasts, 0, "");
    let mut out = vec![PathFactor {
        name: if variant { "variant".into() } else { name },
        levels,
        session: false,
        repeat: false,
    }];
    let mids: Vec<String> = rest
        .iter()
        .map(|r| if r.len() > 1 { r[..r.len() - 1].join("_") } else { "(none)".into() })
        .collect();
    if mids.iter().any(|m| *m != mids[0]) {
        let stem = toks[0][..pre].join("_");
        let model = !stem.is_empty() && modelish(&stem);
        let levels = mids
            .iter()
            .map(|m| match (model, m.as_str()) {
                (true, "(none)") => Level::Text(stem.clone()),
                (true, _) => Level::Text(format!("{stem}:{m}")),
                _ => Level::parse(m),
            })
            .collect();
        out.push(PathFactor {
            name: if model { "model".into() } else { "name part".into() },
            levels,
            session: false,
            repeat: false,
        });
    }
    Some(out)
}

/// Whether a name is a model's (a model family's name in it).
fn modelish(v: &str) -> bool {
    let l = v.to_ascii_lowercase();
    [
        "llama", "gemma", "qwen", "mistral", "phi", "deepseek", "gpt", "glm", "minimax", "mixtral",
        "granite", "olmo", "smol",
    ]
    .iter()
    .any(|m| l.contains(m))
}

/// `16k` → 16384, `4K` → 4096, `1m` → 1048576; other numbers as they are.
fn size_level(s: &str) -> Level {
    let t = s.trim_start_matches(['-', '_']);
    let (num, mul) = match t.to_ascii_lowercase().chars().last() {
        Some('k') => (&t[..t.len() - 1], 1024.0),
        Some('m') if t.len() > 1 => (&t[..t.len() - 1], 1048576.0),
        _ => (t, 1.0),
    };
    match num.parse::<f64>() {
        Ok(v) => Level::Num { value: v * mul, text: t.to_string() },
        Err(_) => Level::Text(t.to_string()),
    }
}

/// The factors that the names of `files` (relative paths of one family) encode.
pub fn factors(files: &[String]) -> Vec<PathFactor> {
    if files.len() < 2 {
        return vec![];
    }
    let comps: Vec<Vec<&str>> = files.iter().map(|f| f.split('/').collect()).collect();
    let depth = comps[0].len();
    if comps.iter().any(|c| c.len() != depth) {
        // different depths: the whole relative folder is one factor
        let dirs: Vec<&str> =
            files.iter().map(|f| f.rsplit_once('/').map_or("", |(d, _)| d)).collect();
        return vec![PathFactor {
            name: "folder".into(),
            levels: dirs.iter().map(|d| Level::Text(d.to_string())).collect(),
            session: false,
            repeat: false,
        }];
    }
    let mut out: Vec<PathFactor> = vec![];
    for d in 0..depth {
        let vals: Vec<&str> = comps.iter().map(|c| c[d]).collect();
        if vals.iter().all(|v| *v == vals[0]) {
            continue;
        }
        let parent = if d > 0 && comps.iter().all(|c| c[d - 1] == comps[0][d - 1]) {
            comps[0][d - 1]
        } else {
            ""
        };
        let toks: Vec<Vec<String>> = vals.iter().map(|v| tokens(v)).collect();
        let n = toks[0].len();
        let aligned = toks.iter().all(|t| t.len() == n);
        if !aligned || n == 1 {
            let whole: Vec<&str> = vals
                .iter()
                .map(|v| v.rsplit_once('.').filter(|_| d + 1 == depth).map_or(*v, |(s, _)| s))
                .collect();
            let (name, levels, session, repeat) = name_for(&whole, d, &singular(parent));
            // a whole name that varies in pieces the aligner could not line up: common prefix
            // and suffix stripped
            if !aligned {
                if let Some(two) = last_token_split(&toks) {
                    out.extend(two);
                    continue;
                }
                // names that differ in length: what differs after the common prefix; a model
                // family in the prefix (`gemma3_270m_…`) makes the factor the model
                let pre = &whole[0][..common_prefix(&whole)];
                let stem = pre.trim_end_matches(['_', '-', '.', ' ']);
                let mids = strip_common(&whole);
                if !stem.is_empty() && modelish(stem) {
                    let levels = mids
                        .iter()
                        .map(|m| {
                            Level::Text(if m == "(none)" {
                                stem.to_string()
                            } else {
                                format!("{stem}:{m}")
                            })
                        })
                        .collect();
                    out.push(PathFactor { name: "model".into(), levels, session, repeat });
                } else {
                    out.push(PathFactor {
                        name,
                        levels: mids.into_iter().map(|s| Level::parse(&s)).collect(),
                        session,
                        repeat,
                    });
                }
                continue;
            }
            out.push(PathFactor { name, levels, session, repeat });
            continue;
        }
        let from = out.len();
        for p in 0..n {
            let v: Vec<&str> = toks.iter().map(|t| t[p].as_str()).collect();
            if v.iter().all(|x| *x == v[0]) {
                continue;
            }
            let (name, levels, session, repeat) = name_for(&v, p, "");
            out.push(PathFactor { name, levels, session, repeat });
        }
        // beside a model, a part no vocabulary explains is what was done to it
        // (`<tag>.<build>.jsonl`: the build or configuration run on each model)
        if out[from..].iter().any(|f| f.name == "model") {
            for f in &mut out[from..] {
                if f.name.starts_with("name part") {
                    f.name = "variant".into();
                }
            }
        }
    }
    // names must be unique
    let mut seen: Vec<String> = vec![];
    for f in &mut out {
        let base = f.name.clone();
        let mut k = 2;
        while seen.contains(&f.name) {
            f.name = format!("{base} {k}");
            k += 1;
        }
        seen.push(f.name.clone());
    }
    out
}

fn singular(s: &str) -> String {
    let s = s.to_ascii_lowercase();
    match s.strip_suffix('s') {
        Some(t) if t.len() > 2 && !t.ends_with('s') => t.to_string(),
        _ => s,
    }
}

/// The parts of names that differ: the common prefix and suffix (at token boundaries) removed;
/// an empty remainder reads `(none)`.
fn strip_common(v: &[&str]) -> Vec<String> {
    let pre = common_prefix(v);
    let rev: Vec<String> = v.iter().map(|s| s.chars().rev().collect()).collect();
    let rr: Vec<&str> = rev.iter().map(String::as_str).collect();
    let suf = common_prefix(&rr);
    v.iter()
        .map(|s| {
            let end = s.len().saturating_sub(suf).max(pre);
            let mid = s[pre..end].trim_matches(['_', '-', '.', ' ']);
            if mid.is_empty() {
                "(none)".to_string()
            } else {
                mid.to_string()
            }
        })
        .collect()
}

/// Length of the common prefix, cut back to the last separator.
fn common_prefix(v: &[&str]) -> usize {
    let first = v[0].as_bytes();
    let mut n = first.len();
    for s in v {
        n = n.min(s.bytes().zip(first).take_while(|(a, b)| a == *b).count());
    }
    while n > 0 && !matches!(first[n - 1], b'_' | b'-' | b'.' | b' ') {
        n -= 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn names(f: &[PathFactor]) -> Vec<(&str, Vec<String>)> {
        f.iter()
            .map(|x| (x.name.as_str(), x.levels.iter().map(|l| l.text().to_string()).collect()))
            .collect()
    }

    #[test]
    fn ggml_types_stay_whole() {
        assert_eq!(tokens("gemma3_q4_k_m_ctx16k.json"), vec!["gemma3", "q4_k_m", "ctx16k"]);
        assert_eq!(tokens("q8_0_run1_output.txt"), vec!["q8_0", "run1", "output"]);
    }

    #[test]
    fn a_factorial_in_folder_names() {
        let files = strings(&[
            "r/q4_k_m/turbo3/symmetric-on/ctx16k/out.json",
            "r/q8_0/f16/symmetric-off/ctx4k/out.json",
            "r/q4_k_m/f16/symmetric-on/ctx4k/out.json",
        ]);
        let f = factors(&files);
        assert_eq!(
            names(&f),
            vec![
                ("quant", vec!["q4_k_m".into(), "q8_0".into(), "q4_k_m".into()]),
                ("kv type", vec!["turbo3".into(), "f16".into(), "f16".into()]),
                ("symmetric", vec!["on".into(), "off".into(), "on".into()]),
                ("ctx", vec!["16k".into(), "4k".into(), "4k".into()]),
            ]
        );
        assert_eq!(f[3].levels[0].num(), Some(16384.0));
    }

    #[test]
    fn a_build_after_the_model_tag() {
        assert_eq!(tokens("gpt-oss-20b.default-hip.jsonl"), vec!["gpt-oss-20b", "default-hip"]);
        assert_eq!(tokens("llama3.1_8b_t0.2.csv"), vec!["llama3.1", "8b", "t0.2"]);
        let files = strings(&[
            "w/gpt-oss-20b.default-hip.jsonl",
            "w/gpt-oss-20b.lhl-tune-tile.jsonl",
            "w/llama32-1b.default-hip.jsonl",
            "w/llama32-1b.lhl-tune-decode.jsonl",
        ]);
        assert_eq!(
            names(&factors(&files)),
            vec![
                (
                    "model",
                    vec![
                        "gpt-oss-20b".to_string(),
                        "gpt-oss-20b".into(),
                        "llama32-1b".into(),
                        "llama32-1b".into()
                    ]
                ),
                (
                    "variant",
                    vec![
                        "default-hip".to_string(),
                        "lhl-tune-tile".into(),
                        "default-hip".into(),
                        "lhl-tune-decode".into()
                    ]
                ),
            ]
        );
    }

    #[test]
    fn sessions_repeats_and_prefixes() {
        let files = strings(&["o/20251002-151204/runs.csv", "o/20251002-151446/runs.csv"]);
        let f = factors(&files);
        assert!(f[0].session && f[0].name == "run");
        let files = strings(&["m/short/baseline_run1_output.txt", "m/long/q8_0_run2_output.txt"]);
        let f = factors(&files);
        assert_eq!(f[0].name, "prompt length");
        assert_eq!(f[1].name, "kv type");
        assert!(f[2].repeat);
        let files = strings(&[
            "g/gemma3_baseline.csv",
            "g/gemma3_270m_baseline.csv",
            "g/gemma3_1b-it-qat_baseline.csv",
        ]);
        let f = factors(&files);
        assert_eq!(
            names(&f)[0],
            ("model", vec!["gemma3".to_string(), "gemma3:270m".into(), "gemma3:1b-it-qat".into()])
        );
        let files =
            strings(&["g/gemma3_baseline.csv", "g/gemma3_270m_baseline.csv", "g/gemma3_tuned.csv"]);
        let f = factors(&files);
        assert_eq!(
            names(&f),
            vec![
                ("variant", vec!["baseline".to_string(), "baseline".into(), "tuned".into()]),
                ("model", vec!["gemma3".into(), "gemma3:270m".into(), "gemma3".into()])
            ]
        );
    }
}
