//! The model's part of the report, under constraints that make an invented figure impossible:
//! prompts that fit the model (completion-style worked examples for a base model, the personas
//! in the turn format for a model with a chat template) and a grounding grammar in which every
//! number is one of the number strings of the findings given and every name one of the facts'.

use super::findings::{Finding, Kind};
use crate::constraint::Grammar;

/// The DataCollector-9000 persona (ref: original-system.md §1.3, paraphrased there).
pub const COLLECTOR_PERSONA: &str =
    "You are DataCollector-9000, a systems analyst scanning benchmark artifacts. \
Write a bullet-point data inventory that a second agent can reason over: directory coverage of \
reports/, csv_data/ and artifacts/; file counts per type and the data's time span; gaps or missing \
telemetry. Use only the figures given above.";

/// The InsightAgent persona (ref: original-system.md §1.3).
pub const INSIGHT_PERSONA: &str =
    "You are InsightAgent, a Chimera-optimised LLM operations specialist. \
Given the facts, the findings and the collector's inventory, write the executive summary of the \
report in one paragraph. Cite only figures that appear in the findings.";

/// Findings given to the model in the shared block (the rest are in the report, not the prompt).
pub const PROMPT_FINDINGS: usize = 8;

/// The block every agent prompt starts with, so that its K/V are computed once and reused.
pub fn shared_block(inventory_facts: &str, findings: &[Finding]) -> String {
    let mut s = String::from("Benchmark facts (computed from the artifacts):\n");
    s.push_str(inventory_facts);
    s.push_str("\nFindings (ranked, computed from the artifacts):\n");
    for f in findings.iter().take(PROMPT_FINDINGS) {
        s.push_str(&format!("{} ({}): {}\n", f.id, f.kind.label(), f.sentence));
    }
    s
}

/// How the prompts are put: completion style for a base model, turns for a chat model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// No chat template: worked examples the model continues.
    Completion,
    /// A chat template: the personas as the user's turn.
    Chat,
}

/// One prompt: the shared block first, then the part that differs.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub text: String,
    /// Whether the engine should apply the chat template.
    pub chat: bool,
}

fn prompt(style: Style, shared: &str, task: &str, completion_tail: &str) -> Prompt {
    match style {
        Style::Completion => {
            Prompt { text: format!("{shared}\n{task}\n\n{completion_tail}"), chat: false }
        }
        Style::Chat => Prompt { text: format!("{shared}\n{task}"), chat: true },
    }
}

/// Where a completion-style inventory starts (the model continues it; the report keeps it).
pub const INVENTORY_START: &str = "- Files:";
/// Where a completion-style summary starts.
pub const SUMMARY_START: &str = "The analysis of these artifacts found";

/// The collector's prompt: its persona, then the start of the inventory.
pub fn collector(style: Style, shared: &str) -> Prompt {
    prompt(style, shared, COLLECTOR_PERSONA, &format!("Data inventory:\n{INVENTORY_START}"))
}

/// The insight agent's prompt: its persona, the collector's inventory, then the summary.
pub fn insight(style: Style, shared: &str, inventory: &str) -> Prompt {
    let task = format!("{INSIGHT_PERSONA}\n\nCollector's inventory:\n{inventory}");
    prompt(style, shared, &task, &format!("Executive summary:\n{SUMMARY_START}"))
}

/// The text a prompt already started that the model's continuation completes.
pub fn started(style: Style, start: &str) -> &str {
    match style {
        Style::Completion => start,
        Style::Chat => "",
    }
}

/// Why a commentary contradicts the kind of its finding, if it does: a regression called faster,
/// a difference within noise called better or worse, a model that never completed said to have
/// completed, another kind's effect named. The check reads words, as the grammar reads numbers.
pub fn contradiction(kind: Kind, text: &str) -> Option<String> {
    let t = text.to_ascii_lowercase();
    // a word counts when no negation stands before it in its own clause
    let affirmed = |w: &str| {
        t.match_indices(w).any(|(at, _)| {
            let start = t[..at].rfind([',', '.', ';', ':']).map_or(0, |i| i + 1);
            let clause = format!(" {}", &t[start..at]);
            !["neither", " not ", " no ", "never", "none", "n't", "cannot", "without"]
                .iter()
                .any(|n| clause.contains(n))
        })
    };
    let say =
        |w: &str| Some(format!("the finding is a {} but the text says \"{w}\"", kind.label()));
    let first = |ws: &[&str]| ws.iter().find(|w| affirmed(w)).and_then(|w| say(w));
    let others: [(Kind, &str); 4] = [
        (Kind::ColdStart, "cold start"),
        (Kind::NeverCompleted, "never completed"),
        (Kind::Outlier, "outlier"),
        (Kind::Regression, "regress"),
    ];
    if let Some((_, w)) = others.iter().find(|(k, w)| *k != kind && t.contains(w)) {
        return say(w);
    }
    match kind {
        Kind::Regression => first(&[
            "faster",
            "improv",
            "better",
            "no significant",
            "within noise",
            "within run-to-run",
        ]),
        Kind::Improvement | Kind::SweepBest => {
            first(&["slower", "worse", "no significant", "within noise", "within run-to-run"])
        }
        Kind::NoChange | Kind::SweepNoise => {
            first(&["faster", "slower", "better", "worse", "improv"])
        }
        Kind::NeverCompleted => first(&["completed", "finished", "succeeded", "success"]),
        Kind::SweepLoser => first(&["fastest", "faster than", "best"]),
        _ => None,
    }
}

/// A worked example per kind of finding: a finding without figures and a commentary that holds
/// for every finding of that kind, so that a base model which copies the example still writes
/// something true.
fn example(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Regression => (
            "Regression: the latency of a suite rose from its older run to its newer run.",
            "The newer run is slower than the older one, so what changed between them should be found before the newer setup is adopted.",
        ),
        Kind::Improvement | Kind::SweepBest => (
            "Improvement: the throughput of the tuned setup is higher than the baseline's.",
            "The gain is larger than run-to-run noise, so the faster setup can be adopted.",
        ),
        Kind::NoChange | Kind::SweepNoise => (
            "No significant difference: the throughput of the tuned file against the baseline file.",
            "The difference is within run-to-run noise, so neither side is faster.",
        ),
        Kind::Unjudged => (
            "The throughput of one file against another cannot be judged: one value per side.",
            "With one run per side the spread is unknown, so more repetitions are needed before comparing.",
        ),
        Kind::SweepLoser => (
            "In a sweep, one setting is slower than every other setting.",
            "This setting is the slowest of the sweep by more than noise, so it should not be used.",
        ),
        Kind::Failures => (
            "The error \"connection refused\" occurs in several rows of a sweep.",
            "These rows carry no measurements, so the affected runs are missing from the statistics.",
        ),
        Kind::NeverCompleted => (
            "A model never completed: none of its prompts finished.",
            "None of its runs produced a measurement, so it cannot be compared with the others.",
        ),
        Kind::ColdStart => (
            "The first row of a file is a cold start: its load time is far above the file's typical load.",
            "The first request after the model was loaded waited for the load, so it should be reported apart from the warm requests.",
        ),
        Kind::Nulls => (
            "A file has missing values in a measurement column.",
            "Some records have no value, so statistics on this column rest on fewer records than the file holds.",
        ),
        Kind::Outlier => (
            "A row of a file is an outlier in its latency column.",
            "One value stands far from the rest of its column, so it should be checked before it moves the mean.",
        ),
        Kind::Noise => (
            "The throughput column of a file is noisy.",
            "The values spread widely, so small differences in this column are not meaningful.",
        ),
        Kind::EmptyFile | Kind::Unreadable => (
            "A file is empty or cannot be read.",
            "The file holds no usable data, so its exporter should be checked.",
        ),
        Kind::TimeSpan => (
            "The data spans several days by the stamps inside it.",
            "The stamps inside the files date the measurements; the file times of a copy do not.",
        ),
    }
}

/// The prompt for one sentence of commentary on a finding.
pub fn commentary(style: Style, shared: &str, f: &Finding) -> Prompt {
    match style {
        Style::Completion => {
            let (finding, comment) = example(f.kind);
            Prompt {
                text: format!(
                    "{shared}\nFinding: {finding}\nCommentary: {comment}\n\nFinding: {}\nCommentary:",
                    f.sentence
                ),
                chat: false,
            }
        }
        Style::Chat => Prompt {
            text: format!(
                "{shared}\n{INSIGHT_PERSONA}\nWrite one sentence of commentary on finding {}: {}",
                f.id, f.sentence
            ),
            chat: true,
        },
    }
}

/// The complete part of a reply that its token budget cut: up to its last sentence end, else its
/// last whole word (a cut may fall inside a number: "1" of "102.5").
pub fn complete_part(text: &str) -> &str {
    let t = text.trim_end();
    let mut ends = t.char_indices().rev().filter(|&(i, c)| {
        matches!(c, '.' | '!' | '?') && t[i + 1..].chars().next().is_none_or(char::is_whitespace)
    });
    match ends.next() {
        Some((i, _)) => &t[..=i],
        None => t.rsplit_once(char::is_whitespace).map_or("", |(head, _)| head.trim_end()),
    }
}

/// Characters a regular expression gives meaning to.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The grounding grammar: up to `lines` non-empty lines of text (after any leading blanks) in
/// which digits appear only as one of `numbers` (never glued to another number: a number is
/// followed by a character that cannot extend it) and a backticked name only as one of `names`.
/// Each line after the first starts with "- " when `bullets`. The output ends after its last line.
pub fn grounding_grammar(
    numbers: &[String],
    names: &[String],
    lines: usize,
    bullets: bool,
) -> Grammar {
    // free text: no digits, no backticks, no path characters; a line starts with a visible one
    let free = r"[^0-9`\n\r_/\\]";
    let visible = r"[^0-9`\n\r_/\\ \t]";
    // what may follow a number: not a digit, and '.' or ',' only before a non-digit
    let sep = r"([^0-9`\n\r_/\\.,]|[.,][^0-9`\n\r_/\\])";
    let mut nums: Vec<&String> = numbers.iter().collect();
    nums.sort();
    nums.dedup();
    let mut alts: Vec<String> = names.iter().map(|n| format!("`{}`", escape(n))).collect();
    alts.push(escape("tok/s"));
    let name = format!("({})", alts.join("|"));
    let line = if nums.is_empty() {
        format!("({visible}|{name})({free}|{name})*")
    } else {
        let num = format!("({})", nums.iter().map(|n| escape(n)).collect::<Vec<_>>().join("|"));
        // a number may also end the line, alone or before a final period
        format!("(({visible}|{name}|{num}{sep})({free}|{name}|{num}{sep})*({num}\\.?)?|{num}\\.?)")
    };
    let next = if bullets { format!("- {line}") } else { line.clone() };
    Grammar::Regex(format!("[ \\n]*{line}\\n({next}\\n){{0,{}}}", lines.saturating_sub(1)))
}

/// The backticked names of findings' sentences and evidence: files, columns, settings.
pub fn names_in(findings: &[Finding]) -> Vec<String> {
    let mut out = vec![];
    for f in findings {
        for text in [&f.sentence, &f.evidence] {
            for (i, part) in text.split('`').enumerate() {
                if i % 2 == 1 && !part.is_empty() && !out.iter().any(|n| n == part) {
                    out.push(part.to_string());
                }
            }
        }
        for file in &f.files {
            if !out.contains(file) {
                out.push(file.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_allows_only_given_numbers() {
        let Grammar::Regex(rx) =
            grounding_grammar(&["102.5".into(), "10".into()], &["a_b.csv".into()], 2, true)
        else {
            panic!("a regex")
        };
        let mut re = regex_lite(&rx);
        for ok in [
            "It ran at 102.5 tok/s.\n",
            "Up 10 % in `a_b.csv`.\n- Then 102.5.\n",
            "No figures.\n",
            "\n 10\n",
        ] {
            assert!(re(ok), "{ok:?} should match {rx}");
        }
        for bad in [
            "It ran at 205 tok/s.\n",
            "102.55\n",
            "10.5\n",
            "1025\n",
            "in `x.csv`\n",
            "a/b\n",
            "x\n- y\n- z\n",
            "\n",
            "  \n",
        ] {
            assert!(!re(bad), "{bad:?} should not match");
        }
    }

    /// A whole-string matcher for the grammar's regex, through llguidance's own regex engine.
    fn regex_lite(rx: &str) -> impl FnMut(&str) -> bool {
        let mut r = llguidance::derivre::Regex::new(rx).unwrap();
        move |s: &str| {
            let mut st = r.initial_state();
            for &byte in s.as_bytes() {
                st = r.transition(st, byte);
                if st.is_dead() {
                    return false;
                }
            }
            r.is_accepting(st)
        }
    }

    #[test]
    fn cut_replies_keep_their_complete_part() {
        assert_eq!(complete_part("It fell 11.2 %. This represents a 1"), "It fell 11.2 %.");
        assert_eq!(complete_part("It rose to 102.5 and then 10"), "It rose to 102.5 and then");
        assert_eq!(complete_part("One line.\n- two 3.5"), "One line.");
        assert_eq!(complete_part("word"), "");
    }

    #[test]
    fn contradictions_of_the_finding_are_caught() {
        assert!(contradiction(
            Kind::NeverCompleted,
            "All of its prompts completed, so it cannot be compared."
        )
        .is_some());
        assert!(contradiction(Kind::NeverCompleted, "None of its runs produced a measurement.")
            .is_none());
        assert!(
            contradiction(Kind::Failures, "This is a cold start and not a clean run.").is_some()
        );
        assert!(contradiction(Kind::Regression, "The newer run is faster.").is_some());
        assert!(contradiction(Kind::Regression, "The newer run is slower than the older one.")
            .is_none());
        assert!(contradiction(
            Kind::NoChange,
            "The difference is within run-to-run noise, so neither side is faster."
        )
        .is_none());
        assert!(contradiction(Kind::NoChange, "The tuned file is faster.").is_some());
        assert!(contradiction(
            Kind::NeverCompleted,
            "It never completed, so it cannot be compared."
        )
        .is_none());
    }

    #[test]
    fn names_come_from_backticks_and_files() {
        let f = Finding {
            id: "F1".into(),
            kind: super::super::findings::Kind::Failures,
            sentence: "The error occurs in `a.csv` and `b.json:results[]`.".into(),
            evidence: "`a.csv` row 3".into(),
            files: vec!["a.csv".into(), "b.json".into()],
            column: None,
            rows: vec![],
            comparison: None,
            numbers: vec![],
            score: 0.0,
        };
        assert_eq!(names_in(&[f]), vec!["a.csv", "b.json:results[]", "b.json"]);
    }
}
