//! The store at scale: large values and large graphs, written and read back.
//!
//! - `value`: a lattice whose one electron returns N bytes (`Vec<u8>`, about 3.6 N bytes of
//!   JSON), dispatched with recording off and on: wall time and the process's peak RSS.
//! - `read`: what reading that recorded dispatch back costs in a fresh process, as the
//!   commands do: its result alone (`covalent result`: the row, then the value file streamed to
//!   a sink), its first page of 200 tasks (`covalent show`) and its whole record with every
//!   node (`covalent show --limit 0`, `result --json`, the UI's dispatch page).
//! - `nodes`: a recorded fan-out of N trivial tasks (2N + 1 nodes), then the same two reads.
//!
//! Every case runs in a child process of its own (this binary again, `--case ...`), so each
//! peak RSS is that case's alone. Stores live in a temporary directory, removed at the end.
//!
//! `cargo run --release -p covalent-bench --bin store_scale -- [--quick] [--json PATH]`
//!
//! The table goes to stderr, the JSON document to stdout (or to `--json PATH`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use covalent::prelude::*;
use serde::{Deserialize, Serialize};

#[path = "../peak_rss.rs"]
mod peak_rss;
use peak_rss::peak_rss;

#[electron]
fn payload(n: u64) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[lattice]
fn one_payload(n: u64) -> Vec<u8> {
    payload(n)
}

#[electron]
fn tick(i: u64) -> u64 {
    i + 1
}

#[electron]
fn sum_all(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

#[lattice]
fn wide(n: u64) -> u64 {
    let xs: Vec<Node<u64>> = (0..n).map(tick).collect();
    sum_all(xs)
}

#[derive(Parser)]
#[command(about = "Large values and large graphs in the store, written and read back")]
struct Args {
    /// Smaller sizes (1 MB value, 100,000 tasks), for a quick look.
    #[arg(long)]
    quick: bool,
    /// Write the JSON document here instead of stdout.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Internal: run one case in this process (`value BYTES on|off`, `nodes N`,
    /// `read-result ID`, `read-page ID`, `read-record ID`), the store in `--home`.
    #[arg(long, num_args = 1.., value_delimiter = ' ')]
    case: Option<Vec<String>>,
    #[arg(long)]
    home: Option<PathBuf>,
}

#[derive(Serialize, Deserialize, Clone)]
struct Row {
    case: String,
    size: u64,
    record: bool,
    seconds: f64,
    peak_rss_bytes: u64,
    /// The dispatch a write case recorded (for the read cases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dispatch: Option<String>,
    /// Bytes on disk after a write case: store (database and log) and value files.
    #[serde(default)]
    store_bytes: u64,
    #[serde(default)]
    value_file_bytes: u64,
}

fn config(home: &Path, record: bool) -> anyhow::Result<Arc<covalent::Config>> {
    let text = format!(
        "[sdk]\ndata_dir = {:?}\nrecord = {record}\nprogress = false\n",
        home.display().to_string()
    );
    Ok(Arc::new(covalent::Config::parse(
        &text,
        Path::new("bench.toml"),
    )?))
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return std::fs::metadata(p).map_or(0, |m| m.len());
    };
    rd.filter_map(Result::ok)
        .map(|e| dir_bytes(&e.path()))
        .sum()
}

/// One case, in this process.
fn run_case(case: &[String], home: &Path) -> anyhow::Result<Row> {
    let arg = |i: usize| case.get(i).cloned().unwrap_or_default();
    let store = || covalent::store::Store::open(&home.join("covalent.db"));
    let t0 = Instant::now();
    let mut row = Row {
        case: arg(0),
        size: 0,
        record: true,
        seconds: 0.0,
        peak_rss_bytes: 0,
        dispatch: None,
        store_bytes: 0,
        value_file_bytes: 0,
    };
    match arg(0).as_str() {
        "value" => {
            let n: u64 = arg(1).parse()?;
            row.size = n;
            row.record = arg(2) == "on";
            let r = covalent::dispatch_sync(one_payload(n).with_config(config(home, row.record)?))?;
            row.seconds = t0.elapsed().as_secs_f64();
            let v = r.value().context("no value")?;
            if v.len() as u64 != n {
                bail!("value of {} bytes, expected {n}", v.len());
            }
            row.dispatch = Some(r.dispatch_id().to_string());
        }
        "nodes" => {
            let n: u64 = arg(1).parse()?;
            row.size = n;
            let r = covalent::dispatch_sync(wide(n).with_config(config(home, true)?))?;
            row.seconds = t0.elapsed().as_secs_f64();
            if *r.value().context("no value")? != n * (n + 1) / 2 {
                bail!("wrong sum");
            }
            row.dispatch = Some(r.dispatch_id().to_string());
        }
        "read-result" => {
            let id = arg(1).parse()?;
            let rec = store()?.get_without_nodes(id)?;
            let mut sink = std::io::sink();
            match (&rec.output, &rec.output_file) {
                (Some(v), _) => serde_json::to_writer(&mut sink, v)?,
                (None, Some(f)) => {
                    std::io::copy(&mut std::fs::File::open(&f.path)?, &mut sink)?;
                }
                _ => bail!("dispatch {id} has no result"),
            }
            row.seconds = t0.elapsed().as_secs_f64();
        }
        "read-page" => {
            let id = arg(1).parse()?;
            let store = store()?;
            let summary = store.summary(id)?;
            let (page, matching) = store.get_page(id, 0, 200, false)?;
            let mut sink = std::io::sink();
            write!(
                sink,
                "{}",
                page.report_with_counts(summary.done, summary.total)
            )?;
            row.seconds = t0.elapsed().as_secs_f64();
            row.size = matching as u64;
        }
        "read-record" => {
            let id = arg(1).parse()?;
            let rec = store()?.get(id)?;
            let mut sink = std::io::sink();
            serde_json::to_writer(&mut sink, &rec)?;
            row.seconds = t0.elapsed().as_secs_f64();
            row.size = rec.nodes.len() as u64;
        }
        other => bail!("unknown case {other:?}"),
    }
    row.peak_rss_bytes = peak_rss();
    if row.dispatch.is_some() && row.record {
        row.store_bytes = ["covalent.db", "covalent.db-wal"]
            .iter()
            .map(|f| std::fs::metadata(home.join(f)).map_or(0, |m| m.len()))
            .sum();
        row.value_file_bytes = dir_bytes(
            &home
                .join("results")
                .join(row.dispatch.as_deref().unwrap_or_default())
                .join("values"),
        );
    }
    Ok(row)
}

/// Runs one case in a child process.
fn child(case: &str, home: &Path) -> anyhow::Result<Row> {
    let out = Command::new(std::env::current_exe()?)
        .arg("--home")
        .arg(home)
        .arg("--case")
        .arg(case)
        .output()?;
    if !out.status.success() {
        bail!(
            "case {case} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(case) = &args.case {
        let home = args.home.context("--case needs --home")?;
        let row = run_case(case, &home)?;
        println!("{}", serde_json::to_string(&row)?);
        return Ok(());
    }
    let tmp = std::env::temp_dir().join(format!("covalent-store-scale-{}", std::process::id()));
    let result = run_all(&args, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn run_all(args: &Args, tmp: &Path) -> anyhow::Result<()> {
    let (values, tasks): (&[u64], u64) = if args.quick {
        (&[1_000_000], 100_000)
    } else {
        (&[1_000_000, 100_000_000], 1_000_000)
    };
    let mut rows = Vec::new();
    eprintln!(
        "{:<12} {:>11} {:>6} {:>9} {:>10} {:>10} {:>11}",
        "case", "size", "record", "seconds", "peak RSS", "store", "value files"
    );
    let show = |r: Row, rows: &mut Vec<Row>| {
        eprintln!(
            "{:<12} {:>11} {:>6} {:>9.3} {:>8.1}MB {:>8.1}MB {:>9.1}MB",
            r.case,
            r.size,
            if r.record { "on" } else { "off" },
            r.seconds,
            r.peak_rss_bytes as f64 / 1e6,
            r.store_bytes as f64 / 1e6,
            r.value_file_bytes as f64 / 1e6
        );
        rows.push(r);
    };
    for (i, &n) in values.iter().enumerate() {
        let home = tmp.join(format!("value{i}"));
        show(child(&format!("value {n} off"), &home)?, &mut rows);
        let on = child(&format!("value {n} on"), &home)?;
        let id = on.dispatch.clone().unwrap_or_default();
        show(on, &mut rows);
        for read in ["read-result", "read-page", "read-record"] {
            let mut r = child(&format!("{read} {id}"), &home)?;
            r.size = n;
            show(r, &mut rows);
        }
    }
    let home = tmp.join("nodes");
    let wide = child(&format!("nodes {tasks}"), &home)?;
    let id = wide.dispatch.clone().unwrap_or_default();
    show(wide, &mut rows);
    for read in ["read-result", "read-page", "read-record"] {
        let mut r = child(&format!("{read} {id}"), &home)?;
        r.case = format!("{read} (nodes)");
        show(r, &mut rows);
    }
    let doc = serde_json::json!({
        "engine": "covalent-rs",
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "rows": rows,
    });
    let text = serde_json::to_string_pretty(&doc)?;
    match &args.json {
        Some(p) => std::fs::write(p, text + "\n")?,
        None => {
            let mut out = std::io::stdout();
            writeln!(out, "{text}")?;
        }
    }
    Ok(())
}
