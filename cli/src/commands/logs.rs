//! `covalent logs`: the stdout and stderr recorded for each task node of a dispatch.

use std::io::Write;

use anyhow::{Result, bail};
use covalent::store::NodeRecord;

use crate::cli::LogsArgs;
use crate::context::Context;

/// Runs `covalent logs`.
pub fn run(ctx: &Context, args: &LogsArgs, out: &mut dyn Write) -> Result<()> {
    let (store, id) = ctx.dispatch(&args.id)?;
    let record = store.get(id)?;
    let nodes: Vec<&NodeRecord> = match args.node {
        Some(n) => match record.node(n) {
            Some(node) => vec![node],
            None => bail!("dispatch {id} has no node {n}"),
        },
        None => record.nodes.iter().filter(|n| !n.internal).collect(),
    };
    if nodes.is_empty() {
        writeln!(out, "dispatch {id} has no tasks")?;
        return Ok(());
    }
    let mut silent = 0;
    for node in nodes {
        silent += write_node(out, node, "")?;
    }
    if silent > 0 {
        writeln!(
            out,
            "\nnote: a stream shows nothing recorded when the task wrote nothing, or when its executor does \
             not capture streams: in-process electrons (the `local` executor) share the process's stdout and stderr."
        )?;
    }
    Ok(())
}

/// Writes both streams of `node` (and of its sublattice's tasks); returns how many were empty.
fn write_node(out: &mut dyn Write, node: &NodeRecord, prefix: &str) -> Result<usize> {
    let mut silent = 0;
    for (stream, text) in [("stdout", &node.stdout), ("stderr", &node.stderr)] {
        writeln!(
            out,
            "== node {prefix}{} ({}) {stream} ==",
            node.id, node.name
        )?;
        if text.is_empty() {
            writeln!(out, "(nothing recorded)")?;
            silent += 1;
        } else {
            write!(out, "{text}")?;
            if !text.ends_with('\n') {
                writeln!(out)?;
            }
        }
    }
    if let Some(sub) = &node.sublattice {
        let prefix = format!("{prefix}{}/", node.id);
        for child in sub.nodes.iter().filter(|n| !n.internal) {
            silent += write_node(out, child, &prefix)?;
        }
    }
    Ok(silent)
}
