//! The side-by-side workloads (W1–W5) and the scaling runs, in process, on the local executor.
//!
//! Every run is timed end to end: building the lattice, dispatching it and waiting until the
//! final value is in hand. Each workload gets one discarded warm-up run, then timed
//! repetitions (a fixed count, cut short once a time budget is spent but never below three);
//! the figure is the median. Every run's value is checked.
//!
//! Memory is measured in one extra run between the warm-up and the timed ones: the peak of live
//! heap bytes above the settled level before it (a counting global allocator), divided by graph
//! nodes and by tasks; the process's peak RSS is reported beside it.
//!
//! Each selected workload runs with recording off and with recording on (a store in a fresh
//! temporary directory, removed at the end).
//!
//! `cargo run --release -p covalent-bench --bin workloads -- [--only w1,w2,w3,w4,w5,scaling]
//! [--record off|on|both] [--quick] [--reps-factor K] [--json PATH]`
//!
//! The table goes to stderr, the JSON document to stdout (or to `--json PATH`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use covalent::prelude::*;
use serde::Serialize;

#[path = "../peak_rss.rs"]
mod peak_rss;
use peak_rss::peak_rss;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the wrapper only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new >= l.size() {
                grew(new - l.size());
            } else {
                LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---- electrons ----

#[electron]
fn add(x: u64, y: u64) -> u64 {
    x + y
}

#[electron]
fn multiply(x: u64, y: u64) -> u64 {
    x * y
}

#[electron]
fn inc(x: u64) -> u64 {
    x + 1
}

#[electron]
fn total(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

/// W4: blocks its worker thread for half a second.
#[electron]
fn sleeper(_i: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(500));
    1
}

/// W5, first layer: the cell's own index.
#[electron]
fn seed(j: u64) -> u64 {
    j
}

/// W5, later layers: everything from the previous layer, plus the cell's index.
#[electron]
fn cell(j: u64, prev: Vec<u64>) -> u64 {
    prev.iter().sum::<u64>() + j
}

// ---- lattices ----

#[lattice]
fn w1_seed(x: u64, y: u64) -> u64 {
    let r1 = add(x, y);
    multiply(y, r1)
}

#[lattice]
fn w2_chain(n: u64) -> u64 {
    let mut x = inc(0);
    for _ in 1..n {
        x = inc(x);
    }
    x
}

#[lattice]
fn w3_fan_out(n: u64) -> u64 {
    let xs: Vec<Node<u64>> = (0..n).map(inc).collect();
    total(xs)
}

#[lattice]
fn w4_sleep(n: u64) -> u64 {
    let xs: Vec<Node<u64>> = (0..n).map(sleeper).collect();
    total(xs)
}

#[lattice]
fn w5_grid(layers: u64, width: u64) -> u64 {
    let mut layer: Vec<Node<u64>> = (0..width).map(seed).collect();
    for _ in 1..layers {
        layer = (0..width).map(|j| cell(j, layer.clone())).collect();
    }
    total(layer)
}

// ---- measurement ----

#[derive(Parser)]
#[command(about = "W1–W5 and the scaling runs on the local executor, as JSON")]
struct Args {
    /// Comma-separated: w1, w2, w3, w4, w5, process, scaling, floor (default: all). `process`:
    /// the W3 fan-out on the `process` executor, a child per task and reusable workers. `floor`: 10,000
    /// sequential recorded W1 dispatches interleaved with bare SQLite commits of the same row
    /// (recording on only).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Recording: off, on or both.
    #[arg(long, default_value = "both")]
    record: String,
    /// Fewer repetitions and no 1M-node scaling run (a smoke test).
    #[arg(long)]
    quick: bool,
    /// Multiply every repetition count and time budget (e.g. for a profiler to see more runs).
    #[arg(long, default_value_t = 1)]
    reps_factor: usize,
    /// Write the JSON document here instead of stdout.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Serialize)]
struct Row {
    /// `W1`, `W2`, ... or `scale-fan-out` / `scale-chain`.
    workload: String,
    /// The size parameter (N), where the workload has one.
    size: u64,
    record: bool,
    /// Tasks as the peers count them (electrons, including joins).
    tasks: usize,
    /// Graph nodes (tasks plus internal parameter and collection nodes).
    nodes: usize,
    warmup: usize,
    reps: usize,
    median_s: f64,
    min_s: f64,
    max_s: f64,
    per_task_us: f64,
    /// Peak live heap above the settled level before the memory run.
    peak_heap_bytes: usize,
    bytes_per_node: f64,
    bytes_per_task: f64,
    /// The process's peak resident set so far (`VmHWM`).
    process_peak_rss_bytes: u64,
    value: u64,
    checked: bool,
    /// The mean (the sequential-dispatch row only, whose target is per dispatch over all).
    #[serde(skip_serializing_if = "Option::is_none")]
    mean_s: Option<f64>,
}

#[derive(Serialize)]
struct Doc {
    engine: &'static str,
    version: &'static str,
    executor: &'static str,
    profile: &'static str,
    cores: usize,
    rows: Vec<Row>,
}

struct Spec {
    workload: &'static str,
    size: u64,
    reps: usize,
    budget: Duration,
    expect: u64,
    make: Box<dyn Fn() -> covalent::Lattice<u64>>,
}

fn measure(spec: &Spec, config: &Arc<covalent::Config>, record: bool) -> anyhow::Result<Row> {
    // `settle`: wait for the previous run's state to be freed first, so the heap's base level is
    // right (memory runs only; timed runs go back to back, as the peers' do).
    let floor = LIVE.load(Ordering::Relaxed);
    let run = |settle: bool| -> anyhow::Result<(Duration, usize, usize, usize, u64)> {
        let base = if settle {
            settled_heap(floor)
        } else {
            LIVE.load(Ordering::Relaxed)
        };
        PEAK.store(base, Ordering::Relaxed);
        let t0 = Instant::now();
        let lattice = (spec.make)().with_config(config.clone());
        let (tasks, nodes) = (lattice.task_count(), lattice.graph().len());
        let result = covalent::dispatch_sync(lattice)?;
        let dt = t0.elapsed();
        let value = *result
            .value()
            .with_context(|| format!("{}: no value ({:?})", spec.workload, result.error()))?;
        let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
        drop(result);
        if value != spec.expect {
            bail!(
                "{} N={}: value {value}, expected {}",
                spec.workload,
                spec.size,
                spec.expect
            );
        }
        Ok((dt, tasks, nodes, peak, value))
    };
    run(false)?; // warm-up
    let (_, tasks, nodes, peak, value) = run(true)?; // memory
    let started = Instant::now();
    let mut times = Vec::with_capacity(spec.reps);
    while times.len() < spec.reps && (times.len() < 3 || started.elapsed() < spec.budget) {
        times.push(run(false)?.0.as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = if times.len() % 2 == 1 {
        times[times.len() / 2]
    } else {
        (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2.0
    };
    Ok(Row {
        workload: spec.workload.to_string(),
        size: spec.size,
        record,
        tasks,
        nodes,
        warmup: 1,
        reps: times.len(),
        median_s: median,
        min_s: times[0],
        max_s: times[times.len() - 1],
        per_task_us: median * 1e6 / tasks as f64,
        peak_heap_bytes: peak,
        bytes_per_node: peak as f64 / nodes as f64,
        bytes_per_task: peak as f64 / tasks as f64,
        process_peak_rss_bytes: peak_rss(),
        value,
        checked: true,
        mean_s: None,
    })
}

/// Recorded W1 beside the bare SQLite commit it ends with, interleaved: `reps` sequential
/// recorded W1 dispatches from this process (one after the other, each waited for), and
/// between each two of them one transaction inserting a copy of the last W1 row into the same
/// store file through a plain rusqlite connection with the store's own settings (WAL,
/// `synchronous = NORMAL`). The second is the floor of what recording a small dispatch can
/// cost here: one commit of the same bytes, nothing of ours around it.
fn commit_floor(config: &Arc<covalent::Config>, reps: usize) -> anyhow::Result<Vec<Row>> {
    let w1 = || w1_seed(3, 4).with_config(config.clone());
    covalent::dispatch_sync(w1())?; // the store exists, with a W1 row to copy
    let conn = rusqlite::Connection::open(config.store_path())?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
    let cols: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('dispatches') ORDER BY cid")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let row: Vec<rusqlite::types::Value> = conn.query_row(
        "SELECT * FROM dispatches ORDER BY created_at DESC LIMIT 1",
        [],
        |r| (0..cols.len()).map(|i| r.get(i)).collect(),
    )?;
    let bytes: usize = row
        .iter()
        .map(|v| match v {
            rusqlite::types::Value::Text(t) => t.len(),
            rusqlite::types::Value::Blob(b) => b.len(),
            rusqlite::types::Value::Null => 0,
            _ => 8,
        })
        .sum();
    eprintln!("(commit-floor: a copy of the last W1 row, {bytes} bytes of values)");
    let id_col = cols
        .iter()
        .position(|c| c == "id")
        .context("no id column")?;
    let insert = format!(
        "INSERT INTO dispatches ({}) VALUES ({})",
        cols.join(", "),
        (1..=cols.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (mut ours, mut bare) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
    let mut row = row;
    for i in 0..reps {
        let t0 = Instant::now();
        let result = covalent::dispatch_sync(w1())?;
        ours.push(t0.elapsed().as_secs_f64());
        if result.value() != Some(&28) {
            bail!("W1: value {:?}, expected 28", result.value());
        }
        row[id_col] = rusqlite::types::Value::Text(format!("floor-{i:026}"));
        let t0 = Instant::now();
        conn.execute_batch("BEGIN")?;
        conn.prepare_cached(&insert)?
            .execute(rusqlite::params_from_iter(row.iter()))?;
        conn.execute_batch("COMMIT")?;
        bare.push(t0.elapsed().as_secs_f64());
    }
    let row_of = |workload: &str, tasks: usize, mut times: Vec<f64>| {
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        Row {
            workload: workload.to_string(),
            size: reps as u64,
            record: true,
            tasks,
            nodes: if tasks == 0 { 0 } else { 5 },
            warmup: 1,
            reps: times.len(),
            median_s: median,
            min_s: times[0],
            max_s: times[times.len() - 1],
            per_task_us: median * 1e6 / tasks.max(1) as f64,
            peak_heap_bytes: 0,
            bytes_per_node: 0.0,
            bytes_per_task: 0.0,
            process_peak_rss_bytes: peak_rss(),
            value: if tasks == 0 { 0 } else { 28 },
            checked: tasks > 0,
            mean_s: None,
        }
    };
    let mean = ours.iter().sum::<f64>() / ours.len() as f64;
    let mut rows = vec![row_of("W1-seq", 2, ours), row_of("commit-floor", 0, bare)];
    rows[0].mean_s = Some(mean);
    Ok(rows)
}

/// Live heap bytes once the previous run's state is freed: a worker thread may still be
/// dropping it after the result was dropped. Waits until the level is back within 64 KiB of
/// `floor` (the level before the workload's first run), or has not moved for 200 ms, or 10 s
/// have passed.
fn settled_heap(floor: usize) -> usize {
    let start = Instant::now();
    let (mut last, mut still) = (LIVE.load(Ordering::Relaxed), Instant::now());
    loop {
        if last <= floor + 64 * 1024
            || still.elapsed() >= Duration::from_millis(200)
            || start.elapsed() >= Duration::from_secs(10)
        {
            return last;
        }
        std::thread::sleep(Duration::from_millis(2));
        let now = LIVE.load(Ordering::Relaxed);
        if now != last {
            (last, still) = (now, Instant::now());
        }
    }
}

fn specs(only: &[String], quick: bool) -> Vec<Spec> {
    let want = |w: &str| only.is_empty() || only.iter().any(|o| o.eq_ignore_ascii_case(w));
    let q = |full: usize, small: usize| if quick { small } else { full };
    let secs = |s: u64| Duration::from_secs(if quick { s.min(2) } else { s });
    let mut out = Vec::new();
    if want("w1") {
        out.push(Spec {
            workload: "W1",
            size: 2,
            reps: q(2001, 51),
            budget: secs(10),
            expect: 28,
            make: Box::new(|| w1_seed(3, 4)),
        });
    }
    if want("w2") {
        for (n, reps) in [(100, q(501, 21)), (10_000, q(101, 5))] {
            out.push(Spec {
                workload: "W2",
                size: n,
                reps,
                budget: secs(10),
                expect: n,
                make: Box::new(move || w2_chain(n)),
            });
        }
    }
    if want("w3") {
        for (n, reps) in [(100, q(501, 21)), (1_000, q(201, 11)), (100_000, q(21, 3))] {
            out.push(Spec {
                workload: "W3",
                size: n,
                reps,
                budget: secs(10),
                expect: n * (n + 1) / 2,
                make: Box::new(move || w3_fan_out(n)),
            });
        }
    }
    if want("w4") {
        out.push(Spec {
            workload: "W4",
            size: 8,
            reps: q(11, 3),
            budget: secs(30),
            expect: 8,
            make: Box::new(|| w4_sleep(8)),
        });
    }
    if want("w5") {
        out.push(Spec {
            workload: "W5",
            size: 10,
            reps: q(501, 21),
            budget: secs(10),
            expect: w5_expected(10, 10),
            make: Box::new(|| w5_grid(10, 10)),
        });
    }
    if want("process") {
        // The fan-out on the `process` executor: a child process per task, and reusable
        // workers (task after task over a pipe).
        for (workload, reuse, n, reps) in [
            ("process", false, 200, q(5, 3)),
            ("process-reuse", true, 200, q(21, 3)),
            ("process-reuse", true, 2_000, q(11, 3)),
        ] {
            out.push(Spec {
                workload,
                size: n,
                reps,
                budget: secs(20),
                expect: n * (n + 1) / 2,
                make: Box::new(move || {
                    let mut p = covalent::executor::ProcessExecutor::new();
                    p.reuse_workers = reuse;
                    w3_fan_out(n).with_executor(covalent::executor::ExecutorRef::new(p))
                }),
            });
        }
    }
    if want("scaling") {
        let sizes: &[(u64, usize)] = if quick {
            &[(1_000, 11), (10_000, 5), (100_000, 3)]
        } else {
            &[(1_000, 201), (10_000, 51), (100_000, 15), (1_000_000, 5)]
        };
        for &(n, reps) in sizes {
            out.push(Spec {
                workload: "scale-fan-out",
                size: n,
                reps,
                budget: secs(30),
                expect: n * (n + 1) / 2,
                make: Box::new(move || w3_fan_out(n)),
            });
            out.push(Spec {
                workload: "scale-chain",
                size: n,
                reps,
                budget: secs(30),
                expect: n,
                make: Box::new(move || w2_chain(n)),
            });
        }
    }
    out
}

/// The value of `w5_grid`: the first layer sums to `0 + 1 + ... + (width - 1)`; every later
/// cell adds its index to the previous layer's sum.
fn w5_expected(layers: u64, width: u64) -> u64 {
    let indices = width * (width - 1) / 2;
    let mut sum = indices;
    for _ in 1..layers {
        sum = width * sum + indices;
    }
    sum
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let records: &[bool] = match args.record.as_str() {
        "off" => &[false],
        "on" => &[true],
        "both" => &[false, true],
        other => bail!("--record must be off, on or both, not {other:?}"),
    };
    let home = std::env::temp_dir().join(format!("covalent-workloads-{}", std::process::id()));
    let config = |record: bool| -> anyhow::Result<Arc<covalent::Config>> {
        let text = format!(
            "[sdk]\ndata_dir = {:?}\nrecord = {record}\nprogress = false\n",
            home.display().to_string()
        );
        Ok(Arc::new(covalent::Config::parse(
            &text,
            Path::new("bench.toml"),
        )?))
    };
    let mut specs = specs(&args.only, args.quick);
    for s in &mut specs {
        s.reps *= args.reps_factor.max(1);
        s.budget *= args.reps_factor.max(1) as u32;
    }
    let mut rows = Vec::new();
    eprintln!(
        "{:<14} {:>8} {:>6} {:>8} {:>8} {:>5} {:>11} {:>11} {:>10} {:>10}",
        "workload",
        "N",
        "record",
        "tasks",
        "nodes",
        "reps",
        "median",
        "per task",
        "B/node",
        "B/task"
    );
    let result = (|| -> anyhow::Result<()> {
        let mut push = |row: Row| {
            eprintln!(
                "{:<14} {:>8} {:>6} {:>8} {:>8} {:>5} {:>9.3}ms {:>9.3}µs {:>10.0} {:>10.0}",
                row.workload,
                row.size,
                if row.record { "on" } else { "off" },
                row.tasks,
                row.nodes,
                row.reps,
                row.median_s * 1e3,
                row.per_task_us,
                row.bytes_per_node,
                row.bytes_per_task,
            );
            rows.push(row);
        };
        for spec in &specs {
            for &record in records {
                push(measure(spec, &config(record)?, record)?);
            }
        }
        let want_floor =
            args.only.is_empty() || args.only.iter().any(|o| o.eq_ignore_ascii_case("floor"));
        if want_floor && records.contains(&true) {
            let reps = if args.quick { 200 } else { 10_000 } * args.reps_factor.max(1);
            commit_floor(&config(true)?, reps)?
                .into_iter()
                .for_each(&mut push);
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&home);
    result?;
    let doc = Doc {
        engine: "covalent-rs",
        version: env!("CARGO_PKG_VERSION"),
        executor: "local",
        profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        rows,
    };
    let text = serde_json::to_string_pretty(&doc)?;
    match &args.json {
        Some(path) => std::fs::write(path, text + "\n")
            .with_context(|| format!("writing {}", path.display()))?,
        None => println!("{text}"),
    }
    Ok(())
}
