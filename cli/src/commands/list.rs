//! `covalent list`: recorded dispatches as a table (or JSON), newest first, with a count per
//! status.

use std::io::Write;

use anyhow::Result;
use covalent::store::{DispatchSummary, ListFilter};
use covalent::{Status, Uuid};

use crate::cli::ListArgs;
use crate::context::Context;
use crate::format;
use crate::table::Table;

/// Runs `covalent list`.
pub fn run(ctx: &Context, args: &ListArgs, out: &mut dyn Write) -> Result<()> {
    let filter = ListFilter {
        status: args.status,
        search: args.search.clone(),
        limit: Some(args.limit),
        offset: args.offset,
    };
    let Some(store) = ctx.existing_store()? else {
        if args.json {
            writeln!(out, "[]")?;
        } else {
            writeln!(
                out,
                "no dispatches recorded in {} yet",
                ctx.config.data_dir().display()
            )?;
        }
        return Ok(());
    };
    let rows = store.list(&filter)?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(());
    }
    let mut counts = store.counts()?;
    counts.sort_by_key(|(s, _)| *s as u8);
    let total: usize = counts.iter().map(|(_, n)| n).sum();

    let width = if args.full_ids {
        36
    } else {
        let all: Vec<Uuid> = store
            .list(&ListFilter::default())?
            .iter()
            .map(|s| s.id)
            .collect();
        let shown: Vec<Uuid> = rows.iter().map(|s| s.id).collect();
        format::id_width(&shown, &all)
    };
    if !rows.is_empty() {
        write!(out, "{}", table(&rows, width))?;
    }
    writeln!(out, "{}", footer(&rows, args, total, &counts))?;
    Ok(())
}

fn table(rows: &[DispatchSummary], id_width: usize) -> Table {
    let mut t = Table::new(&["ID", "LATTICE", "STATUS", "TASKS", "STARTED", "RUNTIME"]);
    for s in rows {
        t.row([
            format::short_id(s.id, id_width),
            s.lattice.clone(),
            s.status.to_string(),
            format!("{}/{}", s.done, s.total),
            format::local_time(Some(s.start_time), format::DATE_TIME),
            format::duration(s.runtime()),
        ]);
    }
    t
}

/// `2 of 5 dispatches shown; 3 COMPLETED, 1 FAILED, 1 RUNNING`.
fn footer(
    rows: &[DispatchSummary],
    args: &ListArgs,
    total: usize,
    counts: &[(Status, usize)],
) -> String {
    if total == 0 {
        return "no dispatches recorded yet".into();
    }
    let per_status: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let noun = format::plural(total, "dispatch", "dispatches");
    let mut line = if rows.is_empty() {
        format!("no dispatch matches; {total} {noun} in the store")
    } else {
        format!("{} of {total} {noun} shown", rows.len())
    };
    line.push_str(&format!(": {}", per_status.join(", ")));
    if rows.len() == args.limit && args.offset + rows.len() < total {
        line.push_str(" (more with --offset / --limit)");
    }
    line
}
