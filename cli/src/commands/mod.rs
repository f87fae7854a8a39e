//! The subcommands, one module each; this module routes a parsed command line to its command.

mod cancel;
mod config;
mod executors;
mod list;
mod logs;
mod purge;
mod result;
mod resume;
mod show;

use std::io::Write;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::context::Context;

/// Runs the command, writing its output to stdout.
pub fn run(cli: Cli) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let out: &mut dyn Write = &mut out;
    if let Command::Executors(args) = &cli.command {
        // Needs no configuration: the plugins are compiled in.
        return executors::run(args, out);
    }
    let ctx = Context::load(cli.home.is_some())?;
    if let Command::Ui(args) = &cli.command {
        // Serves until interrupted; owns the context from here on.
        return crate::ui::run(ctx, args);
    }
    match &cli.command {
        Command::List(args) => list::run(&ctx, args, out),
        Command::Show(args) => show::run(&ctx, args, out),
        Command::Result(args) => result::run(&ctx, args, out),
        Command::Cancel(args) => cancel::run(&ctx, args, out),
        Command::Resume(args) => resume::run(&ctx, args, out),
        Command::Logs(args) => logs::run(&ctx, args, out),
        Command::Purge(args) => purge::run(&ctx, args, out),
        Command::Config => config::run(&ctx, out),
        Command::Executors(args) => executors::run(args, out),
        Command::Ui(_) => unreachable!("handled above"),
    }?;
    out.flush()?;
    Ok(())
}
