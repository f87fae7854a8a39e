//! `covalent result`: a dispatch's result value (or whole record) as JSON; exit 1 unless it
//! COMPLETED.

use std::io::Write;

use anyhow::{Result, bail};
use covalent::Status;
use covalent::store::DispatchRecord;

use crate::cli::ResultArgs;
use crate::context::Context;
use crate::format;

/// Runs `covalent result`.
pub fn run(ctx: &Context, args: &ResultArgs, out: &mut dyn Write) -> Result<()> {
    let (store, id) = ctx.dispatch(&args.id)?;
    let record = if args.wait {
        store.wait(id, args.timeout)?
    } else {
        store.get(id)?
    };
    if args.json {
        // The whole record, whatever the status: scripts read the error and nodes from it.
        writeln!(out, "{}", serde_json::to_string_pretty(&record)?)?;
        out.flush()?;
    }
    match (record.status, &record.output) {
        (Status::Completed, Some(value)) => {
            if !args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(value)?)?;
            }
            Ok(())
        }
        (Status::Completed, None) => {
            bail!(
                "dispatch {id} COMPLETED but its result was not recorded (it could not be serialized)"
            )
        }
        (status, _) if !status.is_terminal() => bail!("{}", not_ended(&record, args)),
        (status, _) => bail!(
            "dispatch {id} ended {status}, so it has no result: {}",
            record.error.as_deref().unwrap_or("no error was recorded")
        ),
    }
}

fn not_ended(record: &DispatchRecord, args: &ResultArgs) -> String {
    let progress = format!(
        "{} ({} of {} tasks done, running for {})",
        record.status,
        record.done_count(),
        record.task_count(),
        format::elapsed(record.start_time, record.end_time)
    );
    match args.timeout {
        Some(t) if args.wait => format!(
            "dispatch {} is still {progress} after waiting {}",
            record.id,
            format::duration(t)
        ),
        _ => format!(
            "dispatch {} has not ended: it is {progress}; use --wait to wait for it",
            record.id
        ),
    }
}
