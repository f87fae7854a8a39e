//! `covalent cancel`: asks the process running a dispatch to cancel it, or some of its nodes;
//! for a dispatch whose process is gone, stops the tasks it left running through their job
//! handles (the dispatch's own program does it, re-run in maintenance mode).

use std::io::Write;

use std::sync::Arc;

use anyhow::{Result, bail};
use covalent::store::Store;
use covalent::{Status, Uuid};

use crate::cli::CancelArgs;
use crate::context::Context;

/// Runs `covalent cancel`.
pub fn run(ctx: &Context, args: &CancelArgs, out: &mut dyn Write) -> Result<()> {
    let (store, id) = ctx.dispatch(&args.id)?;
    if !args.nodes.is_empty() {
        let record = store.get(id)?;
        if let Some(bad) = args.nodes.iter().find(|n| record.node(**n).is_none()) {
            let tasks: Vec<String> = record
                .nodes
                .iter()
                .filter(|n| !n.internal)
                .map(|n| format!("{} ({})", n.id, n.name))
                .collect();
            bail!(
                "dispatch {id} has no node {bad}; its tasks are: {}",
                tasks.join(", ")
            );
        }
    }
    let status = store.status(id)?;
    if status == Status::Interrupted && args.nodes.is_empty() {
        return cancel_left_running(&store, id, out);
    }
    let status = store.request_cancel(id, &args.nodes)?;
    if status.is_terminal() {
        if status == Status::Failed && args.nodes.is_empty() && store.has_left_running(id)? {
            return cancel_left_running(&store, id, out);
        }
        bail!("dispatch {id} already ended ({status}); nothing to cancel");
    }
    let what = match args.nodes.as_slice() {
        [] => format!("dispatch {id}"),
        [n] => format!("node {n} of dispatch {id}"),
        nodes => {
            let ids: Vec<String> = nodes.iter().map(usize::to_string).collect();
            format!("nodes {} of dispatch {id}", ids.join(", "))
        }
    };
    writeln!(
        out,
        "cancellation requested for {what} (it was {status}); the process running it acts on it within a moment"
    )?;
    Ok(())
}

/// Cancels what a dispatch whose dispatcher is gone left running, and says what it did.
fn cancel_left_running(store: &Arc<Store>, id: Uuid, out: &mut dyn Write) -> Result<()> {
    let report = covalent::cancel_left_running(store, id)?;
    for a in &report {
        let what = match a.outcome.as_str() {
            "cancelled" => "cancelled",
            _ => "had already ended",
        };
        writeln!(
            out,
            "node {} ({}, on {}): {what}",
            a.node, a.name, a.executor
        )?;
    }
    writeln!(
        out,
        "dispatch {id} is CANCELLED (its dispatcher had stopped; {} task{} it left running {})",
        report.len(),
        if report.len() == 1 { "" } else { "s" },
        if report.is_empty() {
            "— there were none"
        } else {
            "were dealt with"
        }
    )?;
    Ok(())
}
