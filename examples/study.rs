//! Prints a folder's study (experiments, findings) without a model: a development aid.
fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let t = std::time::Instant::now();
    let s = match chimera::analysis::study(std::path::Path::new(&dir), &Default::default()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    eprintln!(
        "{} files, {} records ({} valid), {} families, {} experiments, {} findings in {:.2} s",
        s.files.len(),
        s.records,
        s.valid,
        s.families.len(),
        s.experiments.len(),
        s.findings.len(),
        t.elapsed().as_secs_f64()
    );
    if std::env::args().any(|a| a == "--exp") {
        for (e, a) in s.experiments.iter().zip(&s.analyses) {
            println!(
                "{} [{}] {} n={} cells={} reps={:?} held={:?} notes={:?}",
                e.id,
                a.design,
                e.title(),
                a.n,
                a.cells,
                a.reps,
                e.held.iter().take(4).collect::<Vec<_>>(),
                e.notes
            );
        }
    }
    if std::env::args().any(|a| a == "--files") {
        for f in &s.files {
            println!("{} [{}] {:?} {} {}", f.path, f.kind, f.formats, f.records, f.status);
        }
    }
    if let Some(i) = std::env::args().position(|a| a == "--report") {
        let out = std::env::args().nth(i + 1).unwrap_or_else(|| "/tmp/report.md".into());
        let md = chimera::analysis::report::markdown(&s, &Default::default(), &[]);
        std::fs::write(&out, md).unwrap_or_else(|e| eprintln!("{e}"));
        return;
    }
    for f in &s.findings {
        println!("{} ({}, {:.0}) {}", f.id, f.kind.label(), f.score, f.sentence);
        if std::env::args().any(|a| a == "-v") {
            for e in &f.evidence {
                println!("    - {e}");
            }
        }
    }
}
