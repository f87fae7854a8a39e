//! `covalent purge`: deletes ended dispatches (all, or those older than a duration), asking
//! first when a person is at the terminal; `--vacuum` gives the space back to the file system.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use covalent::Status;
use covalent::store::ListFilter;

use crate::cli::PurgeArgs;
use crate::context::Context;
use crate::format::plural;

/// Runs `covalent purge`.
pub fn run(ctx: &Context, args: &PurgeArgs, out: &mut dyn Write) -> Result<()> {
    let older_than = match (args.all, args.older_than) {
        (true, _) => None,
        (false, Some(d)) => Some(d),
        (false, None) => bail!(
            "say which dispatches to delete: `--older-than DURATION` (e.g. 7d, 12h) deletes ended \
             dispatches that started longer ago, `--all` deletes every ended one; running \
             dispatches are never deleted"
        ),
    };
    let Some(store) = ctx.existing_store()? else {
        writeln!(out, "deleted 0 dispatches (nothing has been recorded yet)")?;
        return Ok(());
    };
    let all = store.list(&ListFilter::default())?;
    // Started before the cutoff; `None` when the duration reaches back before 1970.
    let cutoff = match older_than {
        None => Some(DateTime::<Utc>::MAX_UTC),
        Some(d) => chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| Utc::now().checked_sub_signed(d))
            .filter(|c| *c > DateTime::UNIX_EPOCH),
    };
    let candidates = all
        .iter()
        .filter(|s| s.status != Status::Running && cutoff.is_some_and(|c| s.start_time < c))
        .count();
    let running = all.iter().filter(|s| s.status == Status::Running).count();
    let age = older_than
        .map(|d| format!(" older than {}", humantime::format_duration(round(d))))
        .unwrap_or_default();
    if candidates > 0 && !args.yes && std::io::stdin().is_terminal() {
        eprint!(
            "delete {} ended {}{age} from {}? [y/N] ",
            candidates,
            plural(candidates, "dispatch", "dispatches"),
            store.path().display()
        );
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim().to_lowercase().as_str(), "y" | "yes") {
            writeln!(out, "nothing deleted")?;
            return Ok(());
        }
    }
    let deleted = match cutoff {
        Some(_) => store.purge(older_than, args.all)?,
        None => 0,
    };
    let noun = plural(deleted, "dispatch", "dispatches");
    write!(out, "deleted {deleted} ended {noun}{age}")?;
    if running > 0 {
        let noun = plural(running, "dispatch", "dispatches");
        write!(out, "; kept {running} running {noun}")?;
    }
    writeln!(out)?;
    if args.vacuum {
        let (before, after) = store.vacuum()?;
        writeln!(
            out,
            "store on disk: {} before, {} after (database and write-ahead log)",
            bytes(before),
            bytes(after)
        )?;
    }
    Ok(())
}

/// A size for people: `1.2 MB`, `340 kB`, `12 B`.
fn bytes(n: u64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.0} kB", n as f64 / 1e3),
        n => format!("{n} B"),
    }
}

/// Whole seconds, so `7d` prints as `7days` and not with sub-second noise.
fn round(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}
