//! The `files = [stage_in(from, to), stage_out(from, to)]` option of `#[electron]`: the
//! transfers as written ([`Transfer`]), resolved for one task ([`Planned`]: absolute URIs and
//! which side moves each file), and run where the task runs, before its hooks and after them.
//!
//! This module owns the option's meaning; the dispatcher's side of a transfer (a file of the
//! dispatching machine for a task on another host) is the executor API's (`executor/files.rs`).

use std::path::Path;
use std::time::Instant;

use super::planned::{By, Order, Planned};
use super::record::TransferRecord;
use super::scope::{self, Fetch};
use super::strategy;
use super::uri::Location;

/// One entry of an electron's `files = [...]` option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Before or after the task.
    pub order: Order,
    /// The source: a URI or path (before), a path in the task's directory (after).
    pub from: &'static str,
    /// The destination: a path in the task's directory (before), a URI or path (after).
    pub to: &'static str,
}

/// Before the task, where it runs: the file at `from` (a path of the dispatching machine, a
/// `file://`, `ssh://` / `user@host:path` or `http(s)://` URI) into `to`, a path relative to
/// the task's directory. Checked at compile time in `#[electron(files = [...])]`.
pub const fn stage_in(from: &'static str, to: &'static str) -> Transfer {
    Transfer {
        order: Order::Before,
        from,
        to,
    }
}

/// After the task, where it ran: `from`, a path relative to the task's directory, to `to` (a
/// path of the dispatching machine, a `file://` or `ssh://` / `user@host:path` URI).
pub const fn stage_out(from: &'static str, to: &'static str) -> Transfer {
    Transfer {
        order: Order::After,
        from,
        to,
    }
}

/// Resolves `files` for a task that runs `away` from the dispatcher or beside it; relative
/// local paths resolve against `cwd` (the dispatching program's directory).
pub fn plan(files: &[Transfer], away: bool, cwd: &Path) -> Result<Vec<Planned>, String> {
    files
        .iter()
        .map(|t| {
            let (outside, task_path) = match t.order {
                Order::Before => (t.from, t.to),
                Order::After => (t.to, t.from),
            };
            super::uri::check_task_path(task_path)?;
            let loc = Location::parse(outside)?.absolute(cwd);
            if t.order == Order::After && matches!(loc, Location::Http(_)) {
                return Err(format!(
                    "stage_out to {outside}: HTTP transfers are downloads; send results to a path or an ssh:// URI"
                ));
            }
            let by = if away && matches!(loc, Location::Local(_)) {
                By::Dispatcher
            } else {
                By::Task
            };
            Ok(match t.order {
                Order::Before => Planned {
                    order: t.order,
                    from: loc.uri(),
                    to: task_path.to_string(),
                    by,
                },
                Order::After => Planned {
                    order: t.order,
                    from: task_path.to_string(),
                    to: loc.uri(),
                    by,
                },
            })
        })
        .collect()
}

fn record(
    direction: &str,
    source: String,
    destination: String,
    strategy: &str,
    t0: Instant,
    moved: Result<&strategy::Moved, &str>,
) -> TransferRecord {
    TransferRecord {
        attempt: scope::with(|s| s.attempt).unwrap_or(0),
        direction: direction.into(),
        source,
        destination,
        strategy: match moved {
            Ok(m) => m.strategy.to_string(),
            Err(_) => strategy.to_string(),
        },
        via: "task".into(),
        bytes: moved.map(|m| m.bytes).unwrap_or(0),
        seconds: t0.elapsed().as_secs_f64(),
        blake3: moved.ok().map(|m| m.blake3.clone()),
        error: moved.err().map(str::to_string),
    }
}

fn note(rec: TransferRecord) {
    scope::with(|s| s.records.push(rec));
}

fn failed(msg: String) -> String {
    scope::with(|s| {
        if s.failed.is_none() {
            s.failed = Some(msg.clone());
        }
    });
    msg
}

/// Runs the planned transfers of `order` where the task runs (in its scope); `Err` is the
/// first failure, described with the transfer and what to fix.
pub(crate) fn run(order: Order) -> Result<(), String> {
    if let Some(e) = scope::with(|s| s.failed.clone()).flatten() {
        return Err(e);
    }
    let planned: Vec<Planned> = scope::with(|s| {
        s.planned
            .iter()
            .filter(|p| p.order == order)
            .cloned()
            .collect()
    })
    .unwrap_or_default();
    let dir = scope::task_dir();
    for p in planned {
        match (p.order, p.by) {
            (Order::Before, By::Task) => {
                let loc = Location::parse(&p.from)?;
                let dest = dir.join(&p.to);
                let t0 = Instant::now();
                let got = strategy::fetch(&loc, &dest, None);
                let dest_uri = format!("file://{}", dest.display());
                note(record(
                    "in",
                    p.from.clone(),
                    dest_uri,
                    scope::strategy_of(&loc),
                    t0,
                    got.as_ref().map_err(String::as_str),
                ));
                got.map_err(|e| failed(format!("stage_in {} -> {}: {e}", p.from, p.to)))?;
            }
            (Order::Before, By::Dispatcher) => {
                // The dispatcher put it there (and recorded it): checked against what it sent.
                let at = dir.join(&p.to);
                let sent =
                    scope::with(|s| s.staged.iter().find(|x| x.rel == p.to).cloned()).flatten();
                let ok = match (&sent, strategy::hash_file(&at)) {
                    (Some(st), Ok((n, h))) => n == st.size && h == st.blake3,
                    (None, Ok(_)) => true,
                    (_, Err(_)) => false,
                };
                if !ok {
                    return Err(failed(format!(
                        "stage_in {} -> {}: the copy the dispatcher staged at {} is missing or does not match what was sent (garbled on its way?)",
                        p.from,
                        p.to,
                        at.display()
                    )));
                }
            }
            (Order::After, By::Task) => {
                let loc = Location::parse(&p.to)?;
                let src = dir.join(&p.from);
                let t0 = Instant::now();
                let got = if src.is_file() {
                    strategy::deliver(&src, &loc)
                } else {
                    Err(format!(
                        "the task left no file {} in its directory ({})",
                        p.from,
                        dir.display()
                    ))
                };
                note(record(
                    "out",
                    format!("file://{}", src.display()),
                    p.to.clone(),
                    scope::strategy_of(&loc),
                    t0,
                    got.as_ref().map_err(String::as_str),
                ));
                got.map_err(|e| failed(format!("stage_out {} -> {}: {e}", p.from, p.to)))?;
            }
            (Order::After, By::Dispatcher) => {
                let src = dir.join(&p.from);
                let (size, blake3) = strategy::hash_file(&src).map_err(|e| {
                    failed(format!(
                        "stage_out {} -> {}: the task left no readable file {} in its directory ({}): {e}",
                        p.from,
                        p.to,
                        p.from,
                        dir.display()
                    ))
                })?;
                let to = match Location::parse(&p.to)? {
                    Location::Local(path) => path.display().to_string(),
                    other => other.uri(),
                };
                scope::with(|s| {
                    if !s.fetch.iter().any(|f| f.rel == p.from && f.to == to) {
                        s.fetch.push(Fetch {
                            rel: p.from.clone(),
                            to,
                            blake3,
                            size,
                            why: "stage_out".into(),
                        })
                    }
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_name_absolute_sources_and_the_side_that_moves_them() {
        let files = [
            stage_in("data/in.csv", "in.csv"),
            stage_in("https://example.org/x.csv", "x.csv"),
            stage_out("out.csv", "results/out.csv"),
            stage_out("big.bin", "me@cluster:/scratch/big.bin"),
        ];
        let cwd = Path::new("/home/me/project");
        let away = plan(&files, true, cwd).unwrap();
        assert_eq!(away[0].from, "file:///home/me/project/data/in.csv");
        assert_eq!(
            away.iter().map(|p| p.by).collect::<Vec<_>>(),
            [By::Dispatcher, By::Task, By::Dispatcher, By::Task]
        );
        assert_eq!(away[2].to, "file:///home/me/project/results/out.csv");
        let here = plan(&files, false, cwd).unwrap();
        assert!(here.iter().all(|p| p.by == By::Task));
        let e = plan(&[stage_out("x", "https://example.org/up")], false, cwd).unwrap_err();
        assert!(e.contains("downloads"), "{e}");
        let e = plan(&[stage_in("a", "../a")], false, cwd).unwrap_err();
        assert!(e.contains(".."), "{e}");
    }
}
