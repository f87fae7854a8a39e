//! `covalent cancel`: asks the process running a dispatch to cancel it, or some of its nodes.

use std::io::Write;

use anyhow::{Result, bail};

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
    let status = store.request_cancel(id, &args.nodes)?;
    if status.is_terminal() {
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
