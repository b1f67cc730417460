//! From records to experiments. Files that are runs of one benchmark form a **family** (same
//! reader, same table, same measures), their names adding factors (`paths`); copies count once.
//! A family's valid records give one **experiment** per measure: the factors that vary (treatments,
//! workload blocks, sessions), what is held fixed, the observations with their cells. Models,
//! builds and machines are never pooled: when one of them varies beside other factors, each of
//! its levels is its own experiment.

pub mod known;
pub mod paths;
mod split;

use super::readers::Batch;
use super::record::{Level, MeasureDef, Record};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

pub use split::experiments;

/// Files that are runs of one benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct Family {
    pub id: usize,
    /// The files' common path with the varying parts as `*`.
    pub name: String,
    pub format: String,
    pub files: Vec<String>,
    #[serde(skip)]
    pub records: Vec<Record>,
    /// Factors read from the files' names.
    pub path_factors: Vec<String>,
    /// The path factor that marks sessions (stamped runs), if any.
    pub session: Option<String>,
}

/// A file whose data another file already holds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Duplicate {
    pub file: String,
    /// The file counted instead.
    pub of: String,
    /// `identical bytes`, `same records`, `derived summary`.
    pub relation: String,
}

/// One comparison the data supports: a measure, the factors that vary, what is held fixed.
#[derive(Debug, Clone, Serialize)]
pub struct Experiment {
    pub id: String,
    pub family: usize,
    pub measure: String,
    pub def: MeasureDef,
    /// Factors that vary, treatments first, then workload blocks, then sessions.
    pub factors: Vec<Factor>,
    /// Factors held at one level (name, level), the split ones first.
    pub held: Vec<(String, String)>,
    /// Factors split on (name, level): this experiment is one level of each.
    pub split: Vec<(String, String)>,
    /// Held factors that other experiments of the family vary: what sets this one apart.
    pub context: Vec<(String, String)>,
    #[serde(skip)]
    pub obs: Vec<Ob>,
    /// Records left out: failed, suspect, cold starts (for measures that include loading).
    pub left_out: LeftOut,
    /// What the design cannot separate, and levels merged (`num_gpu` 60, 999 = full offload).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LeftOut {
    pub failed: usize,
    pub suspect: usize,
    pub cold: usize,
}

/// A factor of an experiment and its levels (sorted: numbers by value, labels by text).
#[derive(Debug, Clone, Serialize)]
pub struct Factor {
    pub name: String,
    pub levels: Vec<Level>,
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A setting compared (quantization, num_ctx, backend).
    Treatment,
    /// The workload (prompt, test case): compared within, never as the question.
    Block,
    /// Separate runs of the benchmark (stamped files or folders).
    Session,
}

/// One observation: its value, its level index per factor, where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct Ob {
    pub y: f64,
    /// Summary observations (mean of n with sd) from files that keep only aggregates.
    pub sd: Option<f64>,
    pub n: Option<usize>,
    pub levels: Vec<usize>,
    pub file: String,
    pub locator: String,
    pub order: usize,
    pub time: Option<i64>,
}

impl Experiment {
    /// Treatment factor indices.
    pub fn treatments(&self) -> Vec<usize> {
        (0..self.factors.len()).filter(|&i| self.factors[i].role == Role::Treatment).collect()
    }

    /// A title: `tokens_s by quant (model = llama3.1:8b)`.
    pub fn title(&self) -> String {
        let by: Vec<&str> = self
            .factors
            .iter()
            .filter(|f| f.role != Role::Session)
            .map(|f| f.name.as_str())
            .collect();
        let mut t = if by.is_empty() {
            self.measure.clone()
        } else {
            format!("{} by {}", self.measure, by.join(" × "))
        };
        if !self.split.is_empty() {
            let s: Vec<String> = self.split.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            t.push_str(&format!(" ({})", s.join(", ")));
        }
        t
    }

    /// Observations per cell (each combination of all factors' levels).
    pub fn cells(&self) -> BTreeMap<Vec<usize>, Vec<usize>> {
        let mut m: BTreeMap<Vec<usize>, Vec<usize>> = BTreeMap::new();
        for (i, o) in self.obs.iter().enumerate() {
            m.entry(o.levels.clone()).or_default().push(i);
        }
        m
    }
}

/// What makes batches one benchmark: reader, table, columns.
type Key = (String, String, Vec<String>);

/// A canonical text of a batch's records, to recognise the same data written twice.
fn fingerprint(b: &Batch) -> Vec<String> {
    // counts repeat between unrelated runs of one prompt, zeros between failed ones
    let mut v: Vec<String> = b
        .records
        .iter()
        .flat_map(|r| {
            r.measures
                .iter()
                .filter(|(k, o)| {
                    o.value != 0.0
                        && super::readers::known_def(k)
                            .is_some_and(|d| d.quantity != super::record::Quantity::Count)
                })
                .map(|(_, o)| format!("{:.6e}", o.value))
        })
        .collect();
    v.sort();
    v
}

/// Groups the batches of all files into families, and finds the files whose records another
/// file already holds (the CSV kept over JSON over Markdown, the first path kept otherwise).
pub fn families(batches: Vec<(String, Batch)>) -> (Vec<Family>, Vec<Duplicate>) {
    let mut dups = vec![];
    let mut kept: Vec<(String, Batch)> = vec![];
    let mut prints: Vec<(Vec<String>, String)> = vec![];
    for (file, b) in batches {
        if b.derived {
            continue;
        }
        let fp = fingerprint(&b);
        if fp.len() >= 3 {
            if let Some((_, of)) = prints.iter().find(|(p, f)| *p == fp && *f != file) {
                if !dups.iter().any(|d: &Duplicate| d.file == file) {
                    dups.push(Duplicate {
                        file: file.clone(),
                        of: of.clone(),
                        relation: "same records".into(),
                    });
                }
                continue;
            }
            prints.push((fp, file.clone()));
        }
        kept.push((file, b));
    }
    // group by (format, table, measure set); a batch of failed runs without measures joins the
    // group whose paths are most like its own
    // one benchmark: the same reader, table and columns (factors and measures)
    let key = |b: &Batch| {
        let m: BTreeSet<&String> = b.records.iter().flat_map(|r| r.measures.keys()).collect();
        let mut cols: Vec<String> = m.into_iter().cloned().collect();
        if !cols.is_empty() {
            let f: BTreeSet<&String> = b.records.iter().flat_map(|r| r.factors.keys()).collect();
            cols.extend(f.into_iter().map(|k| format!("factor:{k}")));
        }
        (b.format.clone(), generic(&b.locator), cols)
    };
    let mut groups: Vec<(Key, Vec<(String, Batch)>)> = vec![];
    let mut orphans = vec![];
    for (file, b) in kept {
        let k = key(&b);
        if k.2.is_empty() {
            orphans.push((file, b));
            continue;
        }
        let ext = ext(&file);
        match groups.iter_mut().find(|(g, files)| {
            g.0 == k.0 && g.1 == k.1 && g.2 == k.2 && ext == self::ext(&files[0].0)
        }) {
            Some((_, v)) => v.push((file, b)),
            None => groups.push((k, vec![(file, b)])),
        }
    }
    for (file, b) in orphans {
        let best = groups
            .iter_mut()
            .map(|g| (path_likeness(&file, &g.1), g))
            .filter(|(s, _)| *s > 0)
            .max_by_key(|(s, _)| *s);
        match best {
            Some((_, g)) => g.1.push((file, b)),
            None => groups.push(((b.format.clone(), generic(&b.locator), vec![]), vec![(file, b)])),
        }
    }
    // files named `<tag>.<build>` are one scheme; a file beside them outside it (`quick-test`)
    // is a benchmark of its own
    let mut apart = vec![];
    for (k, members) in &mut groups {
        let dotted = members.iter().filter(|(f, _)| paths::dotted(f)).count();
        if dotted >= 2 && dotted < members.len() {
            let (keep, out): (Vec<_>, Vec<_>) =
                std::mem::take(members).into_iter().partition(|(f, _)| paths::dotted(f));
            *members = keep;
            apart.extend(out.into_iter().map(|m| (k.clone(), vec![m])));
        }
    }
    groups.extend(apart);
    let mut fams: Vec<Family> = groups
        .into_iter()
        .enumerate()
        .map(|(id, (k, members))| family(id, &k.0, members))
        .collect();
    derived(&mut fams, &mut dups);
    for (i, f) in fams.iter_mut().enumerate() {
        f.id = i;
    }
    // two benchmarks in one set of files (other columns): told apart by their first file
    let names: Vec<String> = fams.iter().map(|f| f.name.clone()).collect();
    for f in &mut fams {
        if names.iter().filter(|n| **n == f.name).count() > 1 {
            let first = f.files.first().and_then(|p| p.rsplit('/').next()).unwrap_or("");
            f.name = format!("{} ({} files from {first})", f.name, f.files.len());
        }
    }
    (fams, dups)
}

/// A factor name for matching across files (`Test Name` = `test_name`).
fn norm(k: &str) -> String {
    k.trim().to_ascii_lowercase().replace([' ', '-'], "_")
}

/// Removes families whose rows are the cell means of another family's runs (a `*_summary`
/// table beside its raw file), recording them as derived.
fn derived(fams: &mut Vec<Family>, dups: &mut Vec<Duplicate>) {
    let mut gone = vec![];
    // each family's factor names, once (hundreds of families are compared pairwise)
    let keys: Vec<BTreeSet<String>> = fams
        .iter()
        .map(|f| {
            let raw: BTreeSet<&String> = f.records.iter().flat_map(|r| r.factors.keys()).collect();
            raw.into_iter().map(|k| norm(k)).collect()
        })
        .collect();
    for i in 0..fams.len() {
        let f = &fams[i];
        if f.records.len() > 500 || f.records.is_empty() {
            continue;
        }
        let fk = &keys[i];
        for (j, g) in fams.iter().enumerate() {
            if i == j || gone.contains(&j) || g.records.len() < f.records.len() {
                continue;
            }
            // of two tables of equal length, the one named a summary is the derived one
            let summaryish = |fam: &Family| {
                fam.files.iter().any(|x| {
                    ["summary", "mean", "avg", "aggregate", "agg"]
                        .iter()
                        .any(|w| x.to_ascii_lowercase().contains(w))
                })
            };
            if g.records.len() == f.records.len() && (!summaryish(f) || summaryish(g)) {
                continue;
            }
            let common: Vec<&String> = fk.intersection(&keys[j]).collect();
            if common.len() < fk.len().clamp(1, 2) {
                continue;
            }
            let beside = summaryish(f)
                && f.files.iter().all(|x| {
                    let dir = x.rsplit_once('/').map_or("", |(d, _)| d);
                    g.files.iter().any(|y| y.rsplit_once('/').map_or("", |(d, _)| d) == dir)
                });
            let nothing_valid = !f
                .records
                .iter()
                .any(|r| r.validity.is_ok() && r.measures.values().any(|o| o.value != 0.0));
            if means_match(f, g, &common) || (beside && nothing_valid) {
                for file in &f.files {
                    // the raw file most like the summary's name
                    let of = g
                        .files
                        .iter()
                        .max_by_key(|x| {
                            x.bytes().zip(file.bytes()).take_while(|(a, b)| a == b).count()
                        })
                        .cloned()
                        .unwrap_or_default();
                    dups.push(Duplicate {
                        file: file.clone(),
                        of,
                        relation: "derived summary".into(),
                    });
                }
                gone.push(i);
                break;
            }
        }
    }
    let mut k = 0;
    fams.retain(|_| {
        k += 1;
        !gone.contains(&(k - 1))
    });
}

/// Whether most of `f`'s rows equal the means of `g`'s runs at the same levels of `common`.
fn means_match(f: &Family, g: &Family, common: &[&String]) -> bool {
    // each raw factor name normalised once, not once per record
    let mut named: BTreeMap<&str, String> = BTreeMap::new();
    for r in f.records.iter().chain(&g.records) {
        for k in r.factors.keys() {
            named.entry(k.as_str()).or_insert_with(|| norm(k));
        }
    }
    let key = |r: &Record| -> Vec<String> {
        common
            .iter()
            .map(|c| {
                r.factors
                    .iter()
                    .find(|(k, _)| named.get(k.as_str()) == Some(*c))
                    .map(|(_, v)| v.text().to_string())
                    .unwrap_or_default()
            })
            .collect()
    };
    let mut cells: BTreeMap<Vec<String>, Vec<&Record>> = BTreeMap::new();
    for r in g.records.iter().filter(|r| r.validity.is_ok()) {
        cells.entry(key(r)).or_default().push(r);
    }
    let mut hit = 0;
    let count = |k: &str| {
        super::readers::known_def(k).is_none_or(|d| d.quantity == super::record::Quantity::Count)
    };
    for r in &f.records {
        let Some(rs) = cells.get(&key(r)) else { continue };
        let means: Vec<f64> = {
            let names: BTreeSet<&String> = rs.iter().flat_map(|x| x.measures.keys()).collect();
            names
                .into_iter()
                .filter_map(|m| {
                    let v: Vec<f64> =
                        rs.iter().filter_map(|x| x.measures.get(m).map(|o| o.value)).collect();
                    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
                })
                .collect()
        };
        let own: Vec<f64> = r
            .measures
            .iter()
            .filter(|(k, o)| !count(k) && o.value != 0.0)
            .map(|(_, o)| o.value)
            .collect();
        let found = own
            .iter()
            .filter(|v| means.iter().any(|m| (m - *v).abs() <= 1e-3 * v.abs() + 0.006))
            .count();
        hit += usize::from(!own.is_empty() && found * 2 >= own.len());
    }
    hit * 5 >= f.records.len() * 4
}

fn ext(f: &str) -> String {
    f.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default()
}

/// How alike two paths are: equal components at equal depths (0 when depths differ).
fn path_likeness(file: &str, members: &[(String, Batch)]) -> usize {
    let a: Vec<&str> = file.split('/').collect();
    members
        .iter()
        .map(|(f, _)| {
            let b: Vec<&str> = f.split('/').collect();
            if a.len() != b.len() || ext(f) != ext(file) {
                return 0;
            }
            let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
            let ta = paths::tokens(a[a.len() - 1]);
            let tb = paths::tokens(b[b.len() - 1]);
            let tail = usize::from(ta.len() == tb.len() && ta.last() == tb.last());
            same + tail
        })
        .max()
        .unwrap_or(0)
}

/// A locator with its indices removed (`results[3]` → `results[]`).
fn generic(loc: &str) -> String {
    let mut s = String::new();
    let mut skip = false;
    for c in loc.chars() {
        match c {
            '[' => {
                skip = true;
                s.push('[');
            }
            ']' => {
                skip = false;
                s.push(']');
            }
            _ if skip => {}
            _ => s.push(c),
        }
    }
    s
}

/// Builds a family: its records numbered in file order, with the factors its names encode.
fn family(id: usize, format: &str, members: Vec<(String, Batch)>) -> Family {
    let mut files: Vec<String> = members.iter().map(|(f, _)| f.clone()).collect();
    files.dedup();
    let pf = paths::factors(&files);
    let mut records: Vec<Record> = vec![];
    let mut names = vec![];
    let mut session = None;
    for f in &pf {
        if !f.repeat {
            names.push(f.name.clone());
        }
        if f.session {
            session = Some(f.name.clone());
        }
    }
    for (file, b) in members {
        let fi = files.iter().position(|x| *x == file).unwrap_or(0);
        for mut r in b.records {
            for f in &pf {
                let lv = f.levels[fi].clone();
                if f.repeat {
                    r.rep = r.rep.or(lv.num().map(|x| x as usize));
                    continue;
                }
                let name = if r.factors.contains_key(&f.name) {
                    format!("{} (name)", f.name)
                } else {
                    f.name.clone()
                };
                if f.session {
                    if let Some(t) = crate::stamp::in_name(lv.text()).first() {
                        r.time = r.time.or(Some(t.time));
                    }
                }
                r.factors.insert(name, lv);
            }
            if r.time.is_none() {
                r.time =
                    file.split('/').flat_map(crate::stamp::in_name).map(|s| s.time).next_back();
            }
            records.push(r);
        }
    }
    Family {
        id,
        name: template(&files),
        format: format.to_string(),
        files,
        records,
        path_factors: names,
        session,
    }
}

/// The files' common path, each differing component written `*`.
fn template(files: &[String]) -> String {
    if files.len() == 1 {
        return files[0].clone();
    }
    let comps: Vec<Vec<&str>> = files.iter().map(|f| f.split('/').collect()).collect();
    if comps.iter().any(|c| c.len() != comps[0].len()) {
        return format!("{} and {} more", files[0], files.len() - 1);
    }
    let last = comps[0].len() - 1;
    (0..comps[0].len())
        .map(|d| {
            if comps.iter().all(|c| c[d] == comps[0][d]) {
                comps[0][d].to_string()
            } else if d == last && comps.iter().all(|c| ext(c[d]) == ext(comps[0][d])) {
                // the extension tells a folder's JSON runs from its Markdown tables
                match ext(comps[0][d]).as_str() {
                    "" => "*".to_string(),
                    e => format!("*.{e}"),
                }
            } else {
                "*".to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::record::Obs;

    fn batch(file: &str, vals: &[f64]) -> (String, Batch) {
        let records = vals
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let mut r = Record::new(file, format!("row {}", i + 1), i);
                r.measures.insert("tokens_s".into(), Obs::one(*v));
                r
            })
            .collect();
        (
            file.to_string(),
            Batch { format: "CSV".into(), locator: String::new(), records, derived: false },
        )
    }

    #[test]
    fn sessions_of_one_benchmark_and_copies() {
        let (f, d) = families(vec![
            batch("o/20251002-151204/runs.csv", &[1.0, 2.0, 3.0]),
            batch("o/20251002-151446/runs.csv", &[4.0, 5.0, 6.0]),
            batch("copy/runs.csv", &[4.0, 5.0, 6.0]),
        ]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].name, "o/*/runs.csv");
        assert_eq!(f[0].session.as_deref(), Some("run"));
        assert_eq!(f[0].records[3].factors["run"].text(), "20251002-151446");
        assert_eq!(
            d,
            vec![Duplicate {
                file: "copy/runs.csv".into(),
                of: "o/20251002-151446/runs.csv".into(),
                relation: "same records".into()
            }]
        );
    }
}
