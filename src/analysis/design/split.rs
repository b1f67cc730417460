//! One family's records → its experiments: per measure, the valid records; factors with one level
//! held, ids and continuous columns dropped, aliased factors merged, `num_gpu` levels at or
//! above the model's layer count merged into full offload, roles assigned, and a model, build or
//! machine that varies beside other factors split into one experiment per level.

use super::known;
use super::{Experiment, Factor, Family, LeftOut, Ob, Role};
use crate::analysis::readers::{columns, known_def};
use crate::analysis::record::{Level, MeasureDef, Record};
use std::collections::{BTreeMap, BTreeSet};

/// Factors never pooled over: when one varies beside other factors, each level is analysed
/// apart. In order of preference.
const SPLIT: &[&str] = &[
    "model",
    "model_name",
    "model_id",
    "model_type",
    "model_filename",
    "gpu_info",
    "gpu_name",
    "gpu",
    "cpu_info",
    "host",
    "build_commit",
    "build_number",
    "build",
    "version",
];

fn is_split(name: &str) -> bool {
    SPLIT.contains(&name) || name.starts_with("model")
}

/// A record is a cold start (its measures that include loading are left out) when the set says.
pub type Cold = BTreeSet<(String, usize)>;

/// The experiments of a family, numbered from `next`.
pub fn experiments(fam: &Family, cold: &Cold, next: &mut usize) -> Vec<super::Experiment> {
    let all: Vec<&Record> = fam.records.iter().filter(|r| r.validity.is_ok()).collect();
    let varying: BTreeSet<String> =
        levels_of(&all).into_iter().filter(|(_, l)| l.len() >= 2).map(|(k, _)| k).collect();
    let mut measures: BTreeMap<String, usize> = BTreeMap::new();
    for r in fam.records.iter().filter(|r| r.validity.is_ok()) {
        for k in r.measures.keys() {
            *measures.entry(k.clone()).or_default() += 1;
        }
    }
    let mut out = vec![];
    for (m, n) in measures {
        let Some(def) = known_def(&m) else { continue };
        // counts (tokens, characters) describe the work, they do not measure performance
        if n < 2 || def.spread || def.quantity == crate::analysis::record::Quantity::Count {
            continue;
        }
        let pool: Vec<&Record> =
            fam.records.iter().filter(|r| r.measures.contains_key(&m)).collect();
        let mut left = LeftOut::default();
        let mut usable = vec![];
        for r in pool {
            match &r.validity {
                crate::analysis::record::Validity::Failed(_) => left.failed += 1,
                crate::analysis::record::Validity::Suspect(_) => left.suspect += 1,
                _ if def.includes_load && cold.contains(&(r.file.clone(), r.order)) => {
                    left.cold += 1
                }
                _ => usable.push(r),
            }
        }
        if usable.len() < 2 {
            continue;
        }
        build(fam, &m, &def, &usable, vec![], &left, &mut out);
    }
    for e in &mut out {
        *next += 1;
        e.id = format!("E{next}");
        // what sets this experiment apart from its siblings in the family
        let mut ctx: Vec<(String, String)> = e
            .held
            .iter()
            .filter(|(k, _)| {
                varying.contains(k)
                    && !known::is_num_gpu(k)
                    && !e.split.iter().any(|(s, _)| s == k)
                    // beside the model split on, its type and build say nothing new
                    && (!is_split(k) || e.split.is_empty())
            })
            .cloned()
            .collect();
        // settings first, then the rest; two at most
        ctx.sort_by_key(|(k, _)| columns::factor(k).is_none());
        ctx.truncate(2);
        e.context = ctx;
    }
    out
}

/// Levels of each factor over `recs` (`(none)` where a record lacks it), sorted.
fn levels_of(recs: &[&Record]) -> BTreeMap<String, Vec<Level>> {
    let names: BTreeSet<&String> = recs.iter().flat_map(|r| r.factors.keys()).collect();
    let mut out = BTreeMap::new();
    for n in names {
        let mut lv: Vec<Level> = vec![];
        for r in recs {
            let l = r.factors.get(n).cloned().unwrap_or_else(|| Level::Text("(none)".into()));
            if !lv.contains(&l) {
                lv.push(l);
            }
        }
        lv.sort_by(|a, b| {
            a.cmp_key().partial_cmp(&b.cmp_key()).unwrap_or(std::cmp::Ordering::Equal)
        });
        out.insert(n.clone(), lv);
    }
    out
}

/// Factor names that label a configuration rather than set one.
fn is_label(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "config"
            | "config_name"
            | "configuration"
            | "variant"
            | "label"
            | "name"
            | "scenario"
            | "run_name"
            | "setup"
    )
}

/// Whether `a`'s level determines `b`'s over the records.
fn determines(recs: &[&Record], a: &[&str], b: &str) -> bool {
    let mut m: BTreeMap<Vec<String>, String> = BTreeMap::new();
    for r in recs {
        let k: Vec<String> = a.iter().map(|f| level(r, f).text().to_string()).collect();
        let v = level(r, b).text().to_string();
        if m.insert(k, v.clone()).is_some_and(|p| p != v) {
            return false;
        }
    }
    true
}

/// Drops factors that only label something else: a name for the combination of other settings
/// (`config_name` = `g999_c1024_t0.2`), and a name-derived factor that changes only with the
/// session.
fn labels(
    recs: &[&Record],
    lv: &mut BTreeMap<String, Vec<Level>>,
    session: Option<&str>,
    notes: &mut Vec<String>,
) {
    let names: Vec<String> = lv.keys().cloned().collect();
    // a setting that exists for one level of another factor only (`opset` of the onnx backend)
    for x in &names {
        let present: Vec<&&Record> = recs.iter().filter(|r| r.factors.contains_key(x)).collect();
        if present.len() == recs.len() {
            continue;
        }
        let host = names.iter().find(|y| {
            *y != x && lv.get(*y).is_some_and(|l| l.len() >= 2) && {
                let first = present.first().map(|r| level(r, y));
                present.iter().all(|r| Some(level(r, y)) == first)
                    && first.is_some_and(|l| l.text() != "(none)")
            }
        });
        if let Some(y) = host {
            let l = present.first().map(|r| level(r, y).text().to_string()).unwrap_or_default();
            notes.push(format!("`{x}` applies only to `{y}` {l}; it is not compared"));
            lv.remove(x);
        }
    }
    let names: Vec<String> = lv.keys().cloned().collect();
    for x in &names {
        if columns::factor(x) == Some(false) && !is_label(x) {
            continue;
        }
        let others: Vec<&str> = names
            .iter()
            .filter(|o| *o != x && columns::factor(o) != Some(true) && Some(o.as_str()) != session)
            .map(String::as_str)
            .collect();
        if others.len() >= 2
            && others.iter().all(|o| determines(recs, &[x.as_str()], o))
            && determines(recs, &others, x)
        {
            // settings that were crossed are compared one by one; configurations picked by hand
            // (a few combinations out of many) are compared as configurations
            let product: usize = others.iter().map(|o| lv.get(*o).map_or(1, Vec::len)).product();
            let combos = lv.get(x).map_or(0, Vec::len);
            if combos * 2 < product {
                notes.push(format!(
                    "the settings {} were not crossed ({combos} of {product} combinations ran): the configurations `{x}` are compared instead",
                    others.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ")
                ));
                for o in &others {
                    lv.remove(*o);
                }
                return;
            }
            notes.push(format!(
                "`{x}` names the combination of {}; the settings stand for it",
                others.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ")
            ));
            lv.remove(x);
            continue;
        }
        let generic = is_generic(x);
        if let Some(sess) = session.filter(|s| lv.contains_key(*s) && *s != x) {
            if generic && determines(recs, &[sess], x) {
                notes.push(format!(
                    "`{x}` changes only from one session to another; the session stands for it"
                ));
                lv.remove(x);
            }
        }
    }
}

/// What a compared setting determines is part of it: a build commit (the tuned variant was
/// built at another commit), the same GPU named differently by two drivers (`… (RADV GFX1151)`),
/// a batch size calibrated per toolbox. Each is dropped with a note, so the setting is compared
/// instead of the experiment being split on it.
fn nested_settings(
    recs: &[&Record],
    lv: &mut BTreeMap<String, Vec<Level>>,
    notes: &mut Vec<String>,
) {
    let names: Vec<String> = lv.keys().cloned().collect();
    for y in names {
        let Some(ly) = lv.get(&y) else { continue };
        let build = is_build(&y);
        // settings present for one level only (`opset` of onnx) and file-name parts are left to
        // `labels` and the session roles
        let partial = ly.iter().any(|l| l.text() == "(none)");
        if is_split(&y) && !build && !same_gpu(&y, ly)
            || columns::factor(&y) == Some(true)
            || partial
            || is_generic(&y)
        {
            continue;
        }
        // alone, or within each of the campaigns a folder name tells apart
        let generic: Vec<&String> = lv.keys().filter(|g| is_generic(g)).collect();
        let by = lv.iter().find(|(x, lx)| {
            **x != y
                && !is_split(x)
                && !is_generic(x)
                && columns::factor(x) != Some(true)
                // a build may be finer than the setting across campaigns (two builds of one
                // toolbox); anything else must be coarser than what determines it
                && (build || lx.len() > ly.len())
                && !crate::analysis::methods::scaling::is_scale(x)
                && (determines(recs, &[x.as_str()], &y)
                    || generic.iter().any(|g| {
                        !determines(recs, &[g.as_str()], &y)
                            && determines(recs, &[x.as_str(), g.as_str()], &y)
                    }))
        });
        if let Some((x, _)) = by {
            let texts: Vec<&str> = ly.iter().map(Level::text).collect();
            notes.push(format!(
                "`{y}` ({}) changes with `{x}`: it is part of what `{x}` compares",
                texts.join(", ")
            ));
            lv.remove(&y);
        }
    }
}

/// A GPU column whose levels name one device (`Radeon 8060S` and `Radeon 8060S (RADV GFX1151)`).
fn same_gpu(name: &str, levels: &[Level]) -> bool {
    let device = |l: &Level| l.text().split(" (").next().unwrap_or("").trim().to_string();
    matches!(name, "gpu_info" | "gpu_name" | "gpu")
        && levels.iter().all(|l| device(l) == device(&levels[0]))
}

fn is_build(name: &str) -> bool {
    matches!(name, "build_commit" | "build_number" | "build" | "version")
}

/// A factor named after an unexplained part of the files' names.
fn is_generic(name: &str) -> bool {
    name.starts_with("name part") || name == "folder" || name.ends_with("(name)")
}

fn level(r: &Record, f: &str) -> Level {
    r.factors.get(f).cloned().unwrap_or_else(|| Level::Text("(none)".into()))
}

/// Whether the levels of `a` and `b` determine each other over the records.
fn aliased(recs: &[&Record], a: &str, b: &str) -> bool {
    let mut ab: BTreeMap<String, String> = BTreeMap::new();
    let mut ba: BTreeMap<String, String> = BTreeMap::new();
    for r in recs {
        let (x, y) = (level(r, a).text().to_string(), level(r, b).text().to_string());
        if ab.insert(x.clone(), y.clone()).is_some_and(|p| p != y)
            || ba.insert(y, x.clone()).is_some_and(|p| p != x)
        {
            return false;
        }
    }
    true
}

/// Which of two aliased factors to keep: a treatment name over a model-like one (`tag` over
/// `model`: the quantization is what differs), a known name over a name part, shorter levels.
fn keep_first(a: &str, b: &str, lv: &BTreeMap<String, Vec<Level>>, session: Option<&str>) -> bool {
    let score = |n: &str| {
        let mut s = 0i64;
        // a setting that changed with the session is reported as the setting, with the confound
        if Some(n) == session {
            s -= 100;
        }
        if columns::factor(n).is_some() {
            s += 10;
        }
        if is_split(n) {
            s -= 5;
        }
        // a build commit that changes with a named setting (a toolbox, a variant) is its build,
        // and one GPU under several drivers' names is that setting's driver
        if is_build(n) || same_gpu(n, &lv[n]) {
            s -= 20;
        }
        if is_generic(n) {
            s -= 8;
        }
        let avg = lv[n].iter().map(|l| l.text().len()).sum::<usize>() / lv[n].len().max(1);
        s - (avg as i64).min(40) / 4
    };
    score(a) >= score(b)
}

#[allow(clippy::too_many_arguments)]
fn build(
    fam: &Family,
    measure: &str,
    def: &MeasureDef,
    recs: &[&Record],
    split: Vec<(String, String)>,
    left: &LeftOut,
    out: &mut Vec<Experiment>,
) {
    let mut lv = levels_of(recs);
    let mut notes = vec![];
    let mut held: Vec<(String, String)> = split.clone();
    // one level: held fixed; ids and continuous values: not factors
    let n = recs.len();
    lv.retain(|name, l| {
        if l.len() == 1 {
            held.push((name.clone(), l[0].text().to_string()));
            return false;
        }
        let numeric = l.iter().all(|x| x.num().is_some());
        let id_like = l.len() == n && n > 4 && !(numeric && l.len() <= 12);
        let continuous = numeric && l.len() > 24 && l.len() * 2 > n;
        !(id_like || continuous)
    });
    // aliased factors: keep one
    let names: Vec<String> = lv.keys().cloned().collect();
    let mut dropped: BTreeSet<String> = BTreeSet::new();
    for i in 0..names.len() {
        for j in i + 1..names.len() {
            let (a, b) = (&names[i], &names[j]);
            if dropped.contains(a) || dropped.contains(b) || !aliased(recs, a, b) {
                continue;
            }
            let (k, d) =
                if keep_first(a, b, &lv, fam.session.as_deref()) { (a, b) } else { (b, a) };
            dropped.insert(d.clone());
            if fam.session.as_deref() == Some(d.as_str()) {
                notes.push(format!("each `{k}` level ran in its own session (`{d}`): the comparison cannot tell the setting from the session"));
            } else {
                notes.push(format!(
                    "`{k}` and `{d}` change together (the same runs); `{k}` stands for both"
                ));
            }
        }
    }
    lv.retain(|k, _| !dropped.contains(k));
    nested_settings(recs, &mut lv, &mut notes);
    labels(recs, &mut lv, fam.session.as_deref(), &mut notes);
    // num_gpu at or above the layer count is full offload
    let model = held
        .iter()
        .chain(split.iter())
        .find(|(k, _)| is_split(k) && k.starts_with("model"))
        .map(|(_, v)| v.clone());
    let clamp: Option<(String, usize)> = lv
        .keys()
        .find(|k| known::is_num_gpu(k))
        .and_then(|k| Some((k.clone(), known::blocks(model.as_deref()?)?)));
    let mut recode: BTreeMap<String, BTreeMap<String, Level>> = BTreeMap::new();
    if let Some((f, blocks)) = &clamp {
        let full: Vec<&Level> = lv[f]
            .iter()
            .filter(|l| l.num().and_then(|v| known::offload_level(v, *blocks)).is_some())
            .collect();
        if full.len() >= 2 {
            let label = known::offload_level(f64::MAX, *blocks).unwrap_or_default();
            let texts: Vec<&str> = full.iter().map(|l| l.text()).collect();
            notes.push(format!(
                "`{f}` {} are all full offload for {} ({} blocks + the head): one level, `{label}`",
                texts.join(", "),
                model.clone().unwrap_or_default(),
                blocks
            ));
            let m: BTreeMap<String, Level> =
                full.iter().map(|l| (l.text().to_string(), Level::Text(label.clone()))).collect();
            recode.insert(f.clone(), m);
            let mut new: Vec<Level> = lv[f].iter().filter(|l| !full.contains(l)).cloned().collect();
            new.push(Level::Text(label));
            if new.len() == 1 {
                held.push((f.clone(), new[0].text().to_string()));
                lv.remove(f);
            } else {
                lv.insert(f.clone(), new);
            }
        }
    }
    let role = |name: &str| {
        if fam.session.as_deref() == Some(name) || is_generic(name) {
            // a file-name part no vocabulary explains tells files apart: sessions, not settings
            Role::Session
        } else if columns::factor(name) == Some(true) || name == "prompt length" {
            Role::Block
        } else {
            Role::Treatment
        }
    };
    let treatments: Vec<&String> = lv.keys().filter(|k| role(k) == Role::Treatment).collect();
    // never pooled: a model, machine or build beside other settings
    if treatments.len() >= 2 {
        let by = SPLIT
            .iter()
            .find(|s| treatments.iter().any(|t| t == s))
            .map(|s| s.to_string())
            .or_else(|| treatments.iter().find(|t| is_split(t)).map(|t| t.to_string()));
        if let Some(f) = by {
            for l in &lv[&f] {
                let sub: Vec<&Record> =
                    recs.iter().copied().filter(|r| level(r, &f) == *l).collect();
                if sub.len() >= 2 {
                    let mut s = split.clone();
                    s.push((f.clone(), l.text().to_string()));
                    build(fam, measure, def, &sub, s, left, out);
                }
            }
            // and the levels of `f` against each other where a few settings ran on several
            let others: Vec<&String> = treatments.iter().copied().filter(|t| **t != f).collect();
            let key = |r: &Record| {
                others.iter().map(|o| level(r, o).text().to_string()).collect::<Vec<_>>()
            };
            let mut shared: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
            for r in recs {
                shared.entry(key(r)).or_default().insert(level(r, &f).text().to_string());
            }
            shared.retain(|_, v| v.len() >= 2);
            if (1..=3).contains(&shared.len()) {
                for combo in shared.keys() {
                    let sub: Vec<&Record> =
                        recs.iter().copied().filter(|r| key(r) == *combo).collect();
                    let mut s = split.clone();
                    s.extend(others.iter().map(|o| o.to_string()).zip(combo.iter().cloned()));
                    build(fam, measure, def, &sub, s, left, out);
                }
            }
            return;
        }
    }
    let mut factors: Vec<Factor> =
        lv.into_iter().map(|(name, levels)| Factor { role: role(&name), name, levels }).collect();
    factors.sort_by_key(|f| match f.role {
        Role::Treatment => 0,
        Role::Block => 1,
        Role::Session => 2,
    });
    let obs = recs
        .iter()
        .map(|r| {
            let o = r.measures[measure];
            let levels = factors
                .iter()
                .map(|f| {
                    let mut l = level(r, &f.name);
                    if let Some(m) = recode.get(&f.name) {
                        if let Some(x) = m.get(l.text()) {
                            l = x.clone();
                        }
                    }
                    f.levels.iter().position(|x| *x == l).unwrap_or(0)
                })
                .collect();
            Ob {
                y: o.value,
                sd: o.sd,
                n: o.n,
                levels,
                file: r.file.clone(),
                locator: r.locator.clone(),
                order: r.order,
                time: r.time,
            }
        })
        .collect();
    held.sort();
    held.dedup();
    let held =
        split.iter().cloned().chain(held.into_iter().filter(|h| !split.contains(h))).collect();
    out.push(Experiment {
        id: String::new(),
        family: fam.id,
        measure: measure.to_string(),
        def: def.clone(),
        factors,
        held,
        split,
        context: vec![],
        obs,
        left_out: left.clone(),
        notes,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::record::Obs;

    fn rec(file: &str, i: usize, f: &[(&str, &str)], y: f64) -> Record {
        let mut r = Record::new(file, format!("row {}", i + 1), i);
        for (k, v) in f {
            r.factors.insert(k.to_string(), Level::parse(v));
        }
        r.measures.insert("tokens_s".into(), Obs::one(y));
        r
    }

    fn fam(records: Vec<Record>) -> Family {
        Family {
            id: 0,
            name: "x.csv".into(),
            format: "CSV".into(),
            files: vec!["x.csv".into()],
            records,
            path_factors: vec![],
            session: None,
        }
    }

    #[test]
    fn aliases_merge_and_prompts_are_blocks() {
        let mut rs = vec![];
        for (q, base) in [("q4_0", 76.0), ("q8_0", 46.0)] {
            for p in 1..=3 {
                rs.push(rec(
                    "x.csv",
                    rs.len(),
                    &[
                        ("model", &format!("llama3.1:8b-instruct-{q}")),
                        ("tag", q),
                        ("prompt_index", &p.to_string()),
                    ],
                    base + p as f64,
                ));
            }
        }
        let e = experiments(&fam(rs), &Cold::new(), &mut 0);
        assert_eq!(e.len(), 1);
        let names: Vec<(&str, Role)> =
            e[0].factors.iter().map(|f| (f.name.as_str(), f.role)).collect();
        assert_eq!(names, vec![("tag", Role::Treatment), ("prompt_index", Role::Block)]);
        assert!(e[0].notes[0].contains("`tag` and `model`"));
    }

    #[test]
    fn builds_and_driver_names_belong_to_the_toolbox() {
        let mut rs = vec![];
        for (t, commit, gpu) in [
            ("rocm", "aaa111", "Radeon 8060S"),
            ("vulkan", "bbb222", "Radeon 8060S (RADV GFX1151)"),
            ("vulkan-perf", "ccc333", "Radeon 8060S (RADV STRIX_HALO)"),
        ] {
            for d in ["0", "8192", "16384"] {
                rs.push(rec(
                    "x.csv",
                    rs.len(),
                    &[("toolbox", t), ("build_commit", commit), ("gpu_info", gpu), ("n_depth", d)],
                    100.0,
                ));
            }
        }
        let e = experiments(&fam(rs), &Cold::new(), &mut 0);
        let sp: Vec<_> = e
            .iter()
            .map(|x| {
                (
                    x.split.clone(),
                    x.factors.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
                    x.notes.clone(),
                )
            })
            .collect();
        assert_eq!(e.len(), 1, "not split on the build or the driver's name: {sp:?}");
        let names: Vec<&str> = e[0].factors.iter().map(|f| f.name.as_str()).collect();
        assert!(names.contains(&"toolbox") && names.contains(&"n_depth"), "{names:?}");
        assert!(e[0].notes.iter().any(|n| n.contains("`gpu_info`")), "{:?}", e[0].notes);
        // different GPUs are different machines: still split
        let mut rs = vec![];
        for (t, gpu) in [("rocm", "Radeon 8060S"), ("cuda", "RTX 4090")] {
            for d in ["0", "8192"] {
                rs.push(rec(
                    "x.csv",
                    rs.len(),
                    &[("toolbox", t), ("gpu_info", gpu), ("n_depth", d)],
                    1.0,
                ));
            }
        }
        let e = experiments(&fam(rs), &Cold::new(), &mut 0);
        assert!(
            e.iter().all(|x| x.factors.iter().all(|f| f.name != "toolbox")),
            "{:?}",
            e[0].factors
        );
    }

    #[test]
    fn num_gpu_clamps_and_models_split() {
        let mut rs = vec![];
        for m in ["llama3.1:8b", "gemma3:270m"] {
            for g in ["40", "999"] {
                for c in ["1024", "2048"] {
                    rs.push(rec(
                        "x.csv",
                        rs.len(),
                        &[("model", m), ("num_gpu", g), ("num_ctx", c)],
                        77.0,
                    ));
                }
            }
        }
        let e = experiments(&fam(rs), &Cold::new(), &mut 0);
        assert_eq!(e.len(), 2, "one experiment per model");
        assert_eq!(e[0].split, vec![("model".to_string(), "gemma3:270m".to_string())]);
        assert!(
            e[0].factors.iter().all(|f| f.name != "num_gpu"),
            "40 and 999 are both full offload"
        );
        assert!(e[0].held.iter().any(|(k, v)| k == "num_gpu" && v.starts_with("all")));
    }
}
