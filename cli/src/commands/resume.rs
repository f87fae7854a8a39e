//! `covalent resume`: resumes a dispatch whose dispatcher stopped (or that failed or was
//! cancelled) in a detached dispatcher of the program that ran it, and prints the new id (or,
//! with `--wait`, waits for it and prints its result).

use std::io::Write;

use anyhow::{Result, bail};
use covalent::Status;

use crate::cli::ResumeArgs;
use crate::context::Context;

/// Runs `covalent resume`.
pub fn run(ctx: &Context, args: &ResumeArgs, out: &mut dyn Write) -> Result<()> {
    let (store, id) = ctx.dispatch(&args.id)?;
    let new = covalent::resume_in(&store, id)?;
    if !args.wait {
        writeln!(
            out,
            "{new}\nresuming dispatch {id} as {new} in a detached dispatcher; follow it with `covalent show {new}` or `covalent result {new} --wait`"
        )?;
        return Ok(());
    }
    writeln!(out, "resuming dispatch {id} as {new}")?;
    out.flush()?;
    store.wait_status(new, None)?;
    let record = store.get_without_nodes(new)?;
    match (record.status, &record.output, &record.output_file) {
        (Status::Completed, Some(value), _) => {
            writeln!(out, "{}", serde_json::to_string_pretty(value)?)?;
            Ok(())
        }
        (Status::Completed, None, Some(file)) => {
            writeln!(out, "{file}; `covalent result {new}` prints it")?;
            Ok(())
        }
        (status, ..) => bail!(
            "dispatch {new} ended {status}: {}",
            record.error.as_deref().unwrap_or("no error was recorded")
        ),
    }
}
