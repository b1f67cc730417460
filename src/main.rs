//! The `chimera` binary: parse the command line, dispatch, map errors to exit codes.

mod cli;

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

fn main() -> ExitCode {
    let matches = cli::Cli::command().get_matches_from(cli::normalize_args(std::env::args_os()));
    let args = match cli::Cli::from_arg_matches(&matches) {
        Ok(a) => cli::with_given(a, &matches),
        Err(e) => e.exit(),
    };
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed pipe (`chimera run … | head`) is a normal way to stop reading.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("chimera: error: {msg}");
            ExitCode::from(2)
        }
    }
}
