//! The command line: every subcommand and option of `covalent`, parsed with clap's derive API.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use covalent::Status;

/// Inspect and manage the dispatches that covalent workflows record.
///
/// Every dispatch of a `#[lattice]` is recorded in the store, `<data dir>/covalent.db`. The data
/// dir is `--home`, else `COVALENT_HOME`, else `[sdk] data_dir` in covalent.toml, else the
/// user's data directory + `covalent`. Dispatch ids may be shortened to any unique prefix.
#[derive(Debug, Parser)]
#[command(name = "covalent", version, propagate_version = true)]
pub struct Cli {
    /// Use the store in DIR (overrides COVALENT_HOME and `[sdk] data_dir`).
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List recorded dispatches, newest first.
    List(ListArgs),
    /// Print a dispatch's report and a table of its nodes.
    Show(ShowArgs),
    /// Print a dispatch's result as JSON (exit 1 unless it COMPLETED).
    Result(ResultArgs),
    /// Cancel a dispatch: ask the process running it, or, when that process is gone, stop the
    /// tasks it left running (scancel, remote kill, container stop) through their job handles.
    Cancel(CancelArgs),
    /// Resume an interrupted (or failed, or cancelled) dispatch in a detached dispatcher: take
    /// what completed, follow what still runs, run only what is gone. Prints the new id.
    Resume(ResumeArgs),
    /// Print the stdout and stderr recorded for a dispatch's tasks.
    Logs(LogsArgs),
    /// Delete ended dispatches from the store (running ones are never deleted).
    Purge(PurgeArgs),
    /// Show the effective configuration and where each value comes from.
    Config,
    /// List the executor plugins built into this binary, with their default options.
    Executors(ExecutorsArgs),
    /// Serve the web UI: watch, inspect and cancel dispatches in a browser.
    Ui(UiArgs),
}

/// `covalent list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only dispatches with this status: running, completed, failed, cancelled or interrupted.
    #[arg(long, value_name = "STATUS", value_parser = parse_status)]
    pub status: Option<Status>,
    /// Only dispatches whose lattice name contains TEXT or whose id starts with it.
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
    /// Show at most N dispatches.
    #[arg(long, value_name = "N", default_value_t = 20, allow_negative_numbers = true, value_parser = parse_count)]
    pub limit: usize,
    /// Skip the N newest matching dispatches.
    #[arg(long, value_name = "N", default_value_t = 0, allow_negative_numbers = true, value_parser = parse_count)]
    pub offset: usize,
    /// Show whole dispatch ids instead of the shortest unique prefix.
    #[arg(long)]
    pub full_ids: bool,
    /// Print the dispatches as a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `covalent show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Dispatch id, or a unique prefix of one.
    pub id: String,
    /// Also list internal nodes (parameters, collections, indexing).
    #[arg(long)]
    pub all: bool,
    /// List at most this many top-level nodes (0: every one). Only those are read: a page of
    /// a million-node dispatch shows at once.
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub limit: usize,
    /// Skip this many top-level nodes first (the next page: `--offset 200`).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub offset: usize,
}

/// `covalent result`.
#[derive(Debug, Args)]
pub struct ResultArgs {
    /// Dispatch id, or a unique prefix of one.
    pub id: String,
    /// Print the whole record (status, inputs, every node) as JSON, whatever the status.
    #[arg(long)]
    pub json: bool,
    /// Wait for a running dispatch to end first.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this long (e.g. 30s, 5m, 1h 30m).
    #[arg(long, value_name = "DURATION", requires = "wait", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
}

/// `covalent cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// Dispatch id, or a unique prefix of one.
    pub id: String,
    /// Cancel only this node (repeat for several); without it, the whole dispatch.
    #[arg(long = "node", value_name = "N")]
    pub nodes: Vec<usize>,
}

/// `covalent resume`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Dispatch id, or a unique prefix of one.
    pub id: String,
    /// Wait for the resumed dispatch to end and print its result (as `covalent result`).
    #[arg(long)]
    pub wait: bool,
}

/// `covalent logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Dispatch id, or a unique prefix of one.
    pub id: String,
    /// Only this node (and, for a sublattice, its children).
    #[arg(long, value_name = "N")]
    pub node: Option<usize>,
}

/// `covalent purge`.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Delete ended dispatches that started more than DURATION ago (e.g. 7d, 12h, 30m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "all")]
    pub older_than: Option<Duration>,
    /// Delete every ended dispatch.
    #[arg(long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Then give the freed space back to the file system (checkpoint and truncate the
    /// write-ahead log, rebuild the database file).
    #[arg(long)]
    pub vacuum: bool,
}

/// `covalent executors`.
#[derive(Debug, Args)]
pub struct ExecutorsArgs {
    /// Print the executors as a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `covalent ui`.
#[derive(Debug, Args)]
pub struct UiArgs {
    /// Listen on this address. Anything but a loopback address needs `--token`.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Listen on this port (0 picks a free one).
    #[arg(long, short = 'p', value_name = "PORT", default_value_t = 48008)]
    pub port: u16,
    /// Require this token on every request (header `Authorization: Bearer TOKEN`, or the
    /// cookie set by opening the printed `?token=` link). Also read from COVALENT_UI_TOKEN.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "COVALENT_UI_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Open the UI in the default browser once it is listening.
    #[arg(long)]
    pub open: bool,
}

/// A dispatch status (node-only ones, such as NOT_RUN, are refused: no dispatch has them).
fn parse_status(s: &str) -> Result<Status, String> {
    const DISPATCH: [Status; 5] = [
        Status::Running,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
        Status::Interrupted,
    ];
    let names = || {
        DISPATCH
            .iter()
            .map(|s| s.as_str().to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match s.parse::<Status>() {
        Ok(st) if DISPATCH.contains(&st) => Ok(st),
        Ok(st) => Err(format!(
            "{} is a node status, never a dispatch's; a dispatch is one of: {}",
            st.as_str(),
            names()
        )),
        Err(_) => Err(format!(
            "unknown status `{s}`; a dispatch is one of: {}",
            names()
        )),
    }
}

/// A count of dispatches: a whole number from 0.
fn parse_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<i128>() {
        Ok(n) if n < 0 => Err(format!("{n} is negative; give a whole number from 0")),
        Ok(n) => usize::try_from(n).map_err(|_| {
            format!(
                "{n} is more than this machine counts to ({}); give a smaller number",
                usize::MAX
            )
        }),
        Err(_) => Err(format!(
            "`{s}` is not a whole number; give one from 0, such as 20"
        )),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}; expected a duration such as 30s, 12h, 7d or 1h 30m"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_and_statuses_parse() {
        let cli = Cli::try_parse_from(["covalent", "purge", "--older-than", "7d"]).unwrap();
        let Command::Purge(p) = cli.command else {
            panic!("not purge")
        };
        assert_eq!(p.older_than, Some(Duration::from_secs(7 * 86400)));
        let cli = Cli::try_parse_from(["covalent", "list", "--status", "failed"]).unwrap();
        let Command::List(l) = cli.command else {
            panic!("not list")
        };
        assert_eq!(l.status, Some(Status::Failed));
        assert!(Cli::try_parse_from(["covalent", "result", "x", "--timeout", "5s"]).is_err());
    }

    #[test]
    fn ui_defaults_to_loopback_port_48008() {
        let cli = Cli::try_parse_from(["covalent", "ui"]).unwrap();
        let Command::Ui(u) = cli.command else {
            panic!("not ui")
        };
        assert_eq!(u.host, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(u.port, 48008);
        assert!(!u.open);
        let cli =
            Cli::try_parse_from(["covalent", "ui", "--host", "::", "-p", "0", "--open"]).unwrap();
        let Command::Ui(u) = cli.command else {
            panic!("not ui")
        };
        assert!(u.host.is_unspecified() && u.port == 0 && u.open);
        assert!(Cli::try_parse_from(["covalent", "ui", "--host", "nowhere"]).is_err());
    }
}
