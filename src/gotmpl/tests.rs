//! Known answers for the Go template subset: outputs Go's text/template gives for the same
//! templates and data (the constructs of Ollama's prompt templates).

use super::Template;
use serde_json::{json, Value};

fn render(src: &str, data: Value) -> String {
    Template::parse(src).unwrap().render(&data).unwrap()
}

fn error(src: &str, data: Value) -> String {
    match Template::parse(src) {
        Ok(t) => t.render(&data).unwrap_err().to_string(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_turn_template_over_messages() {
    // the shape of Ollama's gemma3 template: the last message opens the model's turn
    let src = "{{- $system := .System }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role \"user\" }}<start_of_turn>user
{{- if and (eq $i 1) $system }}
{{ $system }}
{{- end }}
{{ .Content }}<end_of_turn>
{{ else if eq .Role \"assistant\" }}<start_of_turn>model
{{ .Content }}<end_of_turn>
{{ end }}
{{- if $last }}<start_of_turn>model
{{ end }}
{{- end }}
";
    let msgs = json!([
        {"Role": "system", "Content": "Be terse."},
        {"Role": "user", "Content": "Hi"},
        {"Role": "assistant", "Content": "Hello"},
        {"Role": "user", "Content": "Bye"}
    ]);
    let out = render(src, json!({"System": "Be terse.", "Messages": msgs}));
    assert_eq!(
        out,
        "<start_of_turn>user\nBe terse.\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n\n"
    );
}

#[test]
fn trimming_comments_and_printing() {
    assert_eq!(render("a  {{- /* gone */ -}}  b {{- \" c \" -}} d", json!({})), "ab c d");
    assert_eq!(
        render(
            "{{.N}} {{.F}} {{.B}} {{.Z}} {{.S}}",
            json!({"N": 3, "F": 2.5, "B": true, "S": "x"})
        ),
        "3 2.5 true <no value> x"
    );
    // tools and arguments print as JSON, as Ollama's String methods write them (json.Marshal)
    let tools = json!([{"type": "function", "function": {"name": "f", "description": "a<b"}}]);
    assert_eq!(
        render("{{ range .Tools }}{{ . }}{{ end }}|{{ json .Tools }}", json!({"Tools": tools})),
        "{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":\"a\\u003cb\"}}|[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":\"a\\u003cb\"}}]"
    );
    assert_eq!(
        render(
            "{{ print 1 2 \"a\" 3 }}|{{ printf \"%s=%d %q%%\" \"k\" 4 \"v\" }}|{{ println \"x\" }}",
            json!({})
        ),
        "1 2a3|k=4 \"v\"%|x\n"
    );
}

#[test]
fn control_flow_and_variables() {
    let d = json!({"L": [1, 2, 3, 4], "M": {"b": 2, "a": 1}, "E": [], "S": "hello"});
    assert_eq!(render("{{ range .L }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ if gt . 3 }}{{ break }}{{ end }}{{ . }}{{ end }}", d.clone()), "13");
    assert_eq!(
        render("{{ range $k, $v := .M }}{{ $k }}={{ $v }};{{ end }}", d.clone()),
        "a=1;b=2;"
    );
    assert_eq!(render("{{ range .E }}x{{ else }}empty{{ end }}", d.clone()), "empty");
    assert_eq!(render("{{ range 3 }}{{ . }}{{ end }}", d.clone()), "012");
    assert_eq!(render("{{ $n := 0 }}{{ range .L }}{{ $n = . }}{{ end }}{{ $n }}", d.clone()), "4");
    assert_eq!(render("{{ with .S }}{{ . }}{{ else }}none{{ end }}{{ with .Z }}{{ . }}{{ else with .S }}[{{ . }}]{{ end }}", d.clone()), "hello[hello]");
    assert_eq!(
        render(
            "{{ index .L 1 }}{{ index .M \"b\" }}{{ slice .S 1 3 }}{{ len .M }}{{ (index .L 0) }}",
            d.clone()
        ),
        "22el21"
    );
    assert_eq!(render("{{ if or .Z .S }}y{{ end }}{{ if and .S .Z }}n{{ else }}y{{ end }}{{ if not .E }}y{{ end }}", d.clone()), "yyy");
    assert_eq!(render("{{ .S | len | printf \"%d\" }}", d.clone()), "5");
    assert_eq!(
        render(
            "{{ if lt 1 2 }}{{ if ge \"b\" \"a\" }}{{ if ne 1 2 }}ok{{ end }}{{ end }}{{ end }}",
            d
        ),
        "ok"
    );
}

#[test]
fn errors_name_what_is_wrong() {
    assert!(error("{{ frob .X }}", json!({})).contains("function \"frob\" not defined"));
    assert!(error("a {{ .X ", json!({})).contains("unclosed action"));
    assert!(error("{{ end }}", json!({})).contains("unexpected {{end}}"));
    assert!(error("x\n{{ if .X }}", json!({})).contains("line 2: {{if}} has no end"));
    assert!(
        error("{{ .S.Name }}", json!({"S": "x"})).contains("can't evaluate field Name in a string")
    );
    assert!(error("{{ index .L 5 }}", json!({"L": [1]})).contains("index out of range: 5"));
    assert!(error("{{ template \"x\" }}", json!({})).contains("not supported"));
    // nesting without end is an error, not a stack overflow
    let deep = "{{ if 1 }}".repeat(100_000);
    assert!(error(&deep, json!({})).contains("nest deeper than 100"));
    let parens = format!("{{{{ {}1{} }}}}", "(".repeat(100_000), ")".repeat(100_000));
    assert!(error(&parens, json!({})).contains("nest deeper than 100"));
    // a template that loops without end stops
    assert!(error("{{ range 100000000 }}{{ range 100000000 }}{{ end }}{{ end }}", json!({}))
        .contains("too long"));
}

#[test]
fn fields_it_reads_are_known() {
    let t = Template::parse(
        "{{ if .System }}{{ range $m := .Messages }}{{ $m.Content }}{{ end }}{{ end }}",
    )
    .unwrap();
    assert!(t.uses("messages") && t.uses("System") && t.uses("content"));
    assert!(!t.uses("response"));
}

fn conversation() -> Vec<Value> {
    let m = |r: &str, c: &str| json!({"role": r, "content": c});
    vec![m("system", "Sys"), m("user", "Hi"), m("assistant", "Hello"), m("user", "Bye")]
}

#[test]
fn older_templates_run_once_per_exchange() {
    // Ollama's template.Execute for a template without .Messages: one run per exchange, the
    // last cut where the answer goes; a template without .Response gets it appended
    let t = Template::parse(
        "{{ if .System }}S:{{ .System }}\n{{ end }}U:{{ .Prompt }}\nA:{{ .Response }}\n",
    )
    .unwrap();
    assert_eq!(
        super::ollama::render(&t, &conversation(), None).unwrap(),
        "S:Sys\nU:Hi\nA:Hello\nU:Bye\nA:"
    );
    let t = Template::parse("{{ .Prompt }}").unwrap();
    assert_eq!(super::ollama::render(&t, &conversation(), None).unwrap(), "HiHelloBye");
}

#[test]
fn tools_and_calls_reach_a_template_that_reads_them() {
    let src = "{{- if .Tools }}Tools:
{{- range .Tools }}
def {{ .Function.Name }}({{ range $name, $p := .Function.Parameters.Properties }}{{ $name }}: {{ $p.Type }}, {{ end }})
{{- end }}
{{ end }}
{{- range .Messages }}
{{- if eq .Role \"system\" }}{{ continue }}{{ end }}
{{- if .ToolCalls }}{{ range .ToolCalls }}call {{ .Function.Name }} {{ .Function.Arguments }}
{{ end }}{{ else }}{{ .Role }}: {{ .Content }}
{{ end }}
{{- end }}";
    let t = Template::parse(src).unwrap();
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"unit": {"type": "string"}, "city": {"type": "string"}}}}}]);
    let msgs = vec![
        json!({"role": "system", "content": "Sys"}),
        json!({"role": "user", "content": "Weather?"}),
        json!({"role": "user", "content": "In Paris."}),
        json!({"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}),
        json!({"role": "tool", "content": "22 C"}),
    ];
    assert_eq!(
        super::ollama::render(&t, &msgs, Some(&tools)).unwrap(),
        "Tools:\ndef get_weather(city: string, unit: string, )\nuser: Weather?\n\nIn Paris.\ncall get_weather {\"city\":\"Paris\"}\ntool: 22 C\n"
    );
}

#[test]
fn mangled_templates_are_errors_never_panics() {
    let seeds = [
        "{{- range $i, $_ := .Messages }}{{ if eq (len (slice $.Messages $i)) 1 }}{{ .Content }}{{ end }}{{ end }}",
        "{{ with .S }}{{ printf \"%q %d\" . 3 }}{{ else if .T }}x{{ end }}{{/* c */}}",
        "{{ range $k, $v := .M }}{{ index $.L 0 }}{{ json $v }}{{ break }}{{ end }}{{ $x := 1 }}{{ $x = 2 }}",
    ];
    let data = json!({"Messages": [{"Content": "é"}], "S": "ß", "M": {"a": [1]}, "L": [1]});
    let pieces =
        ["{{", "}}", "{{-", "-}}", "(", ")", "$", ".", "\"", "`", "end", "else", "|", "é", " "];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for _ in 0..20_000 {
        let mut s = seeds[next(seeds.len())].to_string();
        for _ in 0..1 + next(3) {
            let at = next(s.len() + 1);
            let at = (0..=at).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
            if next(2) == 0 {
                s.insert_str(at, pieces[next(pieces.len())]);
            } else {
                let end = (at + 1 + next(4)).min(s.len());
                let end = (end..=s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(s.len());
                s.replace_range(at..end, "");
            }
        }
        if let Ok(t) = Template::parse(&s) {
            let _ = t.render(&data);
        }
    }
}

/// The tool-call tag as Ollama's `parseTag` finds it: the first non-blank text in the
/// `{{ if .ToolCalls }}` block, before any `{`, not past a block that has none.
#[test]
fn tool_call_tags_as_ollama_finds_them() {
    let tag = |src: &str| super::ollama::tool_call_tag(&Template::parse(src).unwrap());
    let call = r#"{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}"#;
    assert_eq!(tag("{{ .Prompt }}"), None, "no block: chimera's own format");
    assert_eq!(tag("{{ if .ToolCalls }}{{ end }}").as_deref(), Some("{"));
    let wrapped = format!("{{{{ if .ToolCalls }}}}\n{{{{ range .ToolCalls }}}}<call>{call}</call>{{{{ end }}}}{{{{ end }}}}");
    assert_eq!(tag(&wrapped).as_deref(), Some("<call>"));
    let bare = format!(
        "{{{{ if .ToolCalls }}}}{{{{ range .ToolCalls }}}}\n{call}\n{{{{ end }}}}{{{{ end }}}}"
    );
    assert_eq!(tag(&bare).as_deref(), Some("{"));
    // text after an inner block that has none is not looked at
    let after = "{{ if .ToolCalls }}{{ range .ToolCalls }}{{ . }}{{ end }}]{{ end }}";
    assert_eq!(tag(after).as_deref(), Some("{"));
    let nested = "{{ range .Messages }}{{ if eq .Role \"assistant\" }}{{ if .ToolCalls }}Calls: [{{ end }}{{ end }}{{ end }}";
    assert_eq!(tag(nested).as_deref(), Some("Calls: ["));
    assert_eq!(tag("{{ if .ToolCalls }}A{{ if .X }}B{{ end }}{{ end }}").as_deref(), Some("A"));
}
