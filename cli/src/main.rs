//! The `covalent` command: inspect and manage the dispatches recorded in a covalent store.
//!
//! This file owns the process: parsing the command line, running the command, and turning
//! every error into `error: <message>` on stderr with exit code 1.

mod cli;
mod commands;
mod context;
mod format;
mod table;
mod ui;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` are not errors; usage errors already read `error: ..`.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if let Some(home) = &cli.home {
        // SAFETY: nothing else runs yet (no thread has been started), so nothing reads the
        // environment concurrently. The runtime resolves the data dir from COVALENT_HOME.
        unsafe { std::env::set_var("COVALENT_HOME", home) };
    }
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether the reader of our output went away (`covalent list | head`): not worth a message.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
covalent_test_support::isolated_home!();
