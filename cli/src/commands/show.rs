//! `covalent show`: a dispatch's report followed by a table of its nodes, sublattice children
//! indented under their node.

use std::io::Write;

use anyhow::Result;
use covalent::store::NodeRecord;

use crate::cli::ShowArgs;
use crate::context::Context;
use crate::format;
use crate::table::Table;

/// Longest error excerpt in the table.
const ERROR_WIDTH: usize = 60;

/// Runs `covalent show`.
pub fn run(ctx: &Context, args: &ShowArgs, out: &mut dyn Write) -> Result<()> {
    let (store, id) = ctx.dispatch(&args.id)?;
    let summary = store.summary(id)?;
    let limit = if args.limit == 0 {
        usize::MAX
    } else {
        args.limit
    };
    let (record, matching) = store.get_page(id, args.offset, limit, args.all)?;
    write!(
        out,
        "{}",
        record.report_with_counts(summary.done, summary.total)
    )?;
    writeln!(out)?;
    writeln!(out, "Nodes")?;
    writeln!(out, "-----")?;
    let mut t = Table::new(&[
        "ID", "NAME", "STATUS", "EXECUTOR", "ATTEMPTS", "STARTED", "RUNTIME", "JOB", "ERROR",
    ]);
    add_rows(&mut t, &record.nodes, "", args.all);
    if t.is_empty() && matching == 0 {
        writeln!(out, "(no tasks; `--all` lists internal nodes)")?;
    } else {
        write!(out, "{t}")?;
    }
    write_transfers(out, &record.nodes, "")?;
    let shown = record.nodes.len();
    let what = if args.all { "nodes" } else { "tasks" };
    let (first, next) = (args.offset + 1, args.offset + shown);
    if shown == 0 && matching > 0 {
        writeln!(
            out,
            "(none past {} of {matching} {what}; `--offset 0` for the first page)",
            args.offset
        )?;
    } else if next < matching {
        writeln!(
            out,
            "({what} {first}–{next} of {matching} shown; `--offset {next}` for the next page, `--limit 0` for all)"
        )?;
    } else if args.offset > 0 {
        writeln!(
            out,
            "({what} {first}–{next} of {matching} shown: the last page)"
        )?;
    }
    Ok(())
}

/// The file transfers of the nodes shown (`files = [...]`, `File` inputs and outputs), one
/// line each under its node, after the table.
fn write_transfers(out: &mut dyn Write, nodes: &[NodeRecord], prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        if !nodes.iter().any(has_transfers) {
            return Ok(());
        }
        writeln!(out)?;
        writeln!(out, "File transfers")?;
        writeln!(out, "--------------")?;
    }
    for n in nodes {
        if !n.transfers.is_empty() {
            writeln!(out, "{prefix}{} {}:", n.id, n.name)?;
            for t in &n.transfers {
                writeln!(out, "  #{} {}", t.attempt, t.line())?;
            }
        }
        if let Some(sub) = &n.sublattice {
            write_transfers(out, &sub.nodes, &format!("{prefix}{}/", n.id))?;
        }
    }
    Ok(())
}

fn has_transfers(n: &NodeRecord) -> bool {
    !n.transfers.is_empty()
        || n.sublattice
            .as_ref()
            .is_some_and(|s| s.nodes.iter().any(has_transfers))
}

/// A job handle in a word: `job:695` (Slurm), `pid:4711` (a local process),
/// `pid:4711@host` (ssh), `container:NAME`, else its JSON.
fn job_label(h: &serde_json::Value) -> String {
    // A pid of 0 is a handle recorded before the launch: no process yet.
    let text = |k: &str| {
        h.get(k).and_then(|v| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) if !(k == "pid" && n.as_u64() == Some(0)) => {
                Some(n.to_string())
            }
            _ => None,
        })
    };
    if let Some(id) = text("job_id") {
        return format!("job:{id}");
    }
    if let Some(name) = text("job_name") {
        return format!("job-name:{name}");
    }
    if let Some(c) = text("container") {
        return format!("container:{c}");
    }
    match (text("pid"), text("host")) {
        (Some(pid), Some(host)) => format!("pid:{pid}@{host}"),
        (Some(pid), None) => format!("pid:{pid}"),
        (None, Some(host)) => format!("starting@{host}"),
        (None, None) if h.get("pid").is_some() => "starting".into(),
        (None, None) => h.to_string().replace(' ', ""),
    }
}

/// Rows for `nodes`, whose ids are written under `prefix` (`3/` inside node 3's sublattice).
fn add_rows(t: &mut Table, nodes: &[NodeRecord], prefix: &str, all: bool) {
    let indent = "  ".repeat(prefix.matches('/').count());
    for n in nodes.iter().filter(|n| all || !n.internal) {
        t.row([
            format!("{indent}{prefix}{}", n.id),
            n.name.clone(),
            n.status.to_string(),
            n.executor.clone().unwrap_or_else(|| "-".into()),
            n.attempts.len().to_string(),
            format::local_time(n.start_time, "%H:%M:%S%.3f"),
            format::elapsed(n.start_time, n.end_time),
            n.job_handle
                .as_ref()
                .map(job_label)
                .unwrap_or_else(|| "-".into()),
            n.error
                .as_deref()
                .map(|e| match n.error_kind {
                    Some(k) => format::first_line(&format!("[{k}] {e}"), ERROR_WIDTH),
                    None => format::first_line(e, ERROR_WIDTH),
                })
                .unwrap_or_default(),
        ]);
        if let Some(sub) = &n.sublattice {
            add_rows(t, &sub.nodes, &format!("{prefix}{}/", n.id), all);
        }
    }
}
