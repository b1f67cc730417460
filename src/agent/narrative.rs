//! The model's part of the report, under constraints that make an invented figure impossible.
//! A model with a chat template gets the personas in the turn format and writes under a grounding
//! grammar in which every number is one of the findings' and every name one of the study's. A
//! base model continues text; free, its summary is noise, so it writes only what it continues
//! well: one action per leading finding after worked examples, whose verb and name it chooses
//! from the few the finding allows (the grammar's slots) and whose rest carries no figure.

use crate::analysis::findings::{Finding, Kind};
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
pub fn shared_block(inventory_facts: &str, findings: &[&Finding]) -> String {
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

/// Why a commentary contradicts the kind of its finding, if it does: an effect said to be
/// within noise, no effect called faster or slower, a failure called a success, another kind's
/// event named. The check reads words, as the grammar reads numbers.
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
    let others: [(Kind, &str); 3] =
        [(Kind::ColdStarts, "cold start"), (Kind::Outage, "outage"), (Kind::Drift, "drift")];
    if let Some((_, w)) = others.iter().find(|(k, w)| *k != kind && t.contains(w)) {
        return say(w);
    }
    match kind {
        Kind::Effect => {
            first(&["no significant", "within noise", "within run-to-run", "no effect"])
        }
        Kind::NoEffect => first(&["faster", "slower", "better", "worse", "improv", "significant"]),
        Kind::Outage | Kind::Failures => {
            first(&["succeeded", "completed successfully", "valid run"])
        }
        _ => None,
    }
}

/// The actions a finding allows: an opening (verb and one of the finding's names) and an ending
/// that holds for every finding of its kind. A base model chooses among them: its words cannot
/// be wrong, only more or less apt.
pub fn action_options(f: &Finding) -> Vec<(String, String)> {
    let n = |role: &str| f.name(role).map(String::from);
    let pairs: Vec<(&str, Option<String>)> = match f.kind {
        Kind::Effect => vec![("Prefer", n("best")), ("Avoid", n("worst"))],
        Kind::NoEffect => vec![("Stop tuning", n("factor")), ("Set by other needs", n("factor"))],
        Kind::Untested => {
            vec![("Re-run with repeats", n("factor")), ("Randomise the run order of", n("factor"))]
        }
        Kind::Interaction => vec![("Tune together", n("factor"))],
        Kind::Scaling => vec![("Plan capacity by", n("factor")), ("Watch", n("measure"))],
        Kind::Drift => {
            vec![("Pin the environment before comparing", n("measure")), ("Re-run", n("measure"))]
        }
        Kind::Outage => vec![("Exclude", n("file")), ("Re-run", n("file"))],
        Kind::Failures => vec![("Re-run", n("file")), ("Fix the setup behind", n("file"))],
        Kind::ColdStarts => {
            vec![("Warm up before timing", n("measure")), ("Report apart", n("measure"))]
        }
        Kind::Claims => vec![("Correct", n("file")), ("Re-check", n("file"))],
        Kind::Duplicates => vec![],
    };
    pairs.into_iter().filter_map(|(v, name)| name.map(|x| (v.to_string(), x))).collect()
}

/// Endings true of any finding of a kind.
fn endings(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Effect => &[
            " for this measure; the difference is beyond run-to-run noise",
            " for this measure",
            "",
        ],
        Kind::NoEffect => {
            &[" for speed; its levels differ by less than the noise", " for speed", ""]
        }
        Kind::Untested => &[" before drawing a conclusion", ""],
        Kind::Interaction => &[", since the effect of one depends on the other", ""],
        Kind::Scaling => &["; the measure changes with it", ""],
        Kind::Drift => &[" before comparing sessions", ""],
        Kind::Outage => &[" from every comparison", " once the server answers", ""],
        Kind::Failures => &[" after fixing the cause", ""],
        Kind::ColdStarts => &[", and report cold requests on their own", ""],
        Kind::Claims => &[" where the runs disagree with it", ""],
        Kind::Duplicates => &[""],
    }
}

/// Worked examples a base model continues, one per kind of finding, each ending as its kind's
/// actions end.
const ACTION_EXAMPLES: &str = "Each finding below is followed by one action that follows from it.

Finding: In `bench.csv`, `threads` 8 gives the highest `tg t/s`: 50.2 tok/s against 31.0 tok/s for 2 (+61.9 %; p < 0.0001).
Action: Prefer `8` for this measure; the difference is beyond run-to-run noise.

Finding: In `sweep.csv`, `temperature` does not change `tokens_s` beyond noise: its levels span 0.4 % (p = 0.61).
Action: Stop tuning `temperature` for speed; its levels differ by less than the noise.

Finding: `run_2.json` holds an outage recorded as success: 5 runs report success while their text reads \"connection refused\".
Action: Exclude `run_2.json` from every comparison.

Finding: Cold starts are a pattern, not 12 events: 12 of 36 runs load the model.
Action: Warm up before timing `ttft`, and report cold requests on their own.

Finding: `notes.md` states 20 checkable figures: the runs reproduce 12, contradict 3, and cannot back 5.
Action: Correct `notes.md` where the runs disagree with it.
";

/// The prompt for a base model's action on a finding: the worked examples (shared by every
/// call, so their K/V are reused), then the finding.
pub fn action(f: &Finding) -> Prompt {
    Prompt { text: format!("{ACTION_EXAMPLES}\nFinding: {}\nAction:", f.sentence), chat: false }
}

/// The grammar of an action on a finding: one opening, one ending, a period.
pub fn action_grammar(f: &Finding) -> Grammar {
    let opens: Vec<String> =
        action_options(f).iter().map(|(v, n)| format!("{} `{}`", escape(v), escape(n))).collect();
    let ends: Vec<String> = endings(f.kind).iter().map(|e| escape(e)).collect();
    Grammar::Regex(format!(" ?({})({})\\.\\n", opens.join("|"), ends.join("|")))
}

/// Why an action's words contradict its verb: preferring what it calls slower, avoiding what it
/// calls faster.
pub fn action_contradiction(text: &str) -> Option<String> {
    let t = text.to_ascii_lowercase();
    let bad = if t.starts_with("prefer") {
        ["slower", "worse"].iter().find(|w| t.contains(**w))
    } else if t.starts_with("avoid") {
        ["faster", "better"].iter().find(|w| t.contains(**w))
    } else {
        None
    };
    bad.map(|w| format!("the action's verb and the word \"{w}\" disagree"))
}

/// The prompt for one sentence of commentary on a finding (a chat model).
pub fn commentary(shared: &str, f: &Finding) -> Prompt {
    Prompt {
        text: format!(
            "{shared}\n{INSIGHT_PERSONA}\nWrite one sentence of commentary on finding {}: {}",
            f.id, f.sentence
        ),
        chat: true,
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
pub fn names_in(findings: &[&Finding]) -> Vec<String> {
    let mut out = vec![];
    for f in findings {
        let evidence = f.evidence.join(" ");
        for text in [&f.sentence, &evidence] {
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
        assert!(contradiction(Kind::Effect, "The difference is within noise.").is_some());
        assert!(contradiction(Kind::Effect, "The gain is larger than run-to-run noise.").is_none());
        assert!(contradiction(Kind::NoEffect, "The tuned file is faster.").is_some());
        assert!(contradiction(Kind::NoEffect, "Neither level is faster than the other.").is_none());
        assert!(contradiction(Kind::Failures, "This is a cold start.").is_some());
        assert!(action_contradiction("Prefer `q4_0`, the slower one.").is_some());
        assert!(action_contradiction("Prefer `q4_0` for speed.").is_none());
    }

    #[test]
    fn actions_choose_among_the_findings_names() {
        let f: Finding = serde_json::from_value(serde_json::json!({
            "id": "F1", "kind": "effect", "sentence": "x", "evidence": [], "experiments": [], "files": [],
            "headline": true, "names": [["best", "q4_0"], ["worst", "q8_0"], ["factor", "tag"]], "score": 0.0, "numbers": []
        }))
        .unwrap();
        let opts = action_options(&f);
        assert_eq!(
            opts,
            vec![("Prefer".to_string(), "q4_0".to_string()), ("Avoid".into(), "q8_0".into())]
        );
        let Grammar::Regex(rx) = action_grammar(&f) else { panic!("a regex") };
        let mut re = regex_lite(&rx);
        for ok in [
            " Prefer `q4_0` for this measure; the difference is beyond run-to-run noise.\n",
            "Avoid `q8_0`.\n",
        ] {
            assert!(re(ok), "{ok:?} should match {rx}");
        }
        for bad in
            ["Prefer `q8_0`.\n", "Avoid `q4_0` by 64 %.\n", "Use `q4_0`.\n", "Prefer `q4_0` now.\n"]
        {
            assert!(!re(bad), "{bad:?} should not match");
        }
    }

    #[test]
    fn names_come_from_backticks_and_files() {
        let f: Finding = serde_json::from_value(serde_json::json!({
            "id": "F1", "kind": "failures", "sentence": "The error occurs in `a.csv` and `b.json:results[]`.",
            "evidence": ["`a.csv` row 3"], "experiments": [], "files": ["a.csv", "b.json"], "headline": true,
            "names": [], "score": 0.0, "numbers": []
        }))
        .unwrap();
        assert_eq!(names_in(&[&f]), vec!["a.csv", "b.json:results[]", "b.json"]);
    }
}
