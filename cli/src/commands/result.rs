//! `covalent result`: a dispatch's result value (or whole record) as JSON; exit 1 unless it
//! COMPLETED.

use std::io::Write;

use anyhow::{Context as _, Result, bail};
use covalent::Status;
use covalent::store::DispatchSummary;

use crate::cli::ResultArgs;
use crate::context::Context;
use crate::format;

/// Runs `covalent result`.
pub fn run(ctx: &Context, args: &ResultArgs, out: &mut dyn Write) -> Result<()> {
    let (store, id) = ctx.dispatch(&args.id)?;
    if args.wait {
        store.wait_status(id, args.timeout)?;
    }
    // The value alone is read from the dispatch's row (and its value file), whatever the size
    // of its graph; `--json` asks for the nodes too.
    let record = if args.json {
        store.get(id)?
    } else {
        store.get_without_nodes(id)?
    };
    if args.json {
        // The whole record, whatever the status: scripts read the error and nodes from it.
        writeln!(out, "{}", serde_json::to_string_pretty(&record)?)?;
        out.flush()?;
    }
    match (record.status, &record.output, &record.output_file) {
        (Status::Completed, Some(value), _) => {
            if !args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(value)?)?;
            }
            Ok(())
        }
        (Status::Completed, None, Some(file)) => {
            if !args.json {
                // Streamed as stored (compact JSON), never held in memory.
                let mut f = std::fs::File::open(&file.path).with_context(|| {
                    format!(
                        "cannot open the file holding the result, {}",
                        file.path.display()
                    )
                })?;
                std::io::copy(&mut f, out)?;
                writeln!(out)?;
            }
            Ok(())
        }
        (Status::Completed, None, None) => {
            bail!(
                "dispatch {id} COMPLETED but its result was not recorded (it could not be serialized)"
            )
        }
        (status, ..) if !status.is_terminal() => {
            let summary = store.summary(id)?;
            bail!("{}", not_ended(&summary, args))
        }
        (status, ..) => bail!(
            "dispatch {id} ended {status}, so it has no result: {}",
            record.error.as_deref().unwrap_or("no error was recorded")
        ),
    }
}

fn not_ended(record: &DispatchSummary, args: &ResultArgs) -> String {
    let progress = format!(
        "{} ({} of {} tasks done, running for {})",
        record.status,
        record.done,
        record.total,
        format::elapsed(Some(record.start_time), record.end_time)
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
