//! Core benchmark: trivial electrons on the local executor, end to end (build + run).
//!
//! Workloads: a fan-out of N independent `inc(i)` electrons joined by one `total`, and a chain
//! of N electrons each adding 1 to the previous. For each: median wall time of several runs,
//! time per task, and heap per node (peak live bytes during build + run, counted by a global
//! allocator wrapper, divided by graph nodes and by tasks).
//!
//! Each runs with recording off and on (the store in a temporary directory), and the store's
//! size per node is printed.
//!
//! `cargo run --release -p covalent-bench -- [N] [REPEATS]` (defaults 100000, 7).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use covalent::prelude::*;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
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
            if new > l.size() {
                let now = LIVE.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[electron]
fn inc(x: u64) -> u64 {
    x + 1
}

#[electron]
fn total(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

#[lattice]
fn fan_out(n: u64) -> u64 {
    let xs: Vec<Node<u64>> = (0..n).map(inc).collect();
    total(xs)
}

#[lattice]
fn chain(n: u64) -> u64 {
    let mut x = inc(0);
    for _ in 1..n {
        x = inc(x);
    }
    x
}

struct Figures {
    median: Duration,
    tasks: usize,
    nodes: usize,
    peak_bytes: usize,
}

fn measure(
    name: &str,
    repeats: usize,
    make: impl Fn() -> covalent::Lattice<u64>,
    expect: u64,
) -> Figures {
    let mut times = Vec::new();
    let mut peak = 0;
    let (mut tasks, mut nodes) = (0, 0);
    // One warm-up run (threads, lazy statics).
    let _ = covalent::dispatch_sync(make()).expect("dispatch");
    for _ in 0..repeats {
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let t0 = Instant::now();
        let lattice = make();
        tasks = lattice.task_count();
        nodes = lattice.graph().len();
        let r = covalent::dispatch_sync(lattice).expect("dispatch");
        let dt = t0.elapsed();
        assert_eq!(r.value(), Some(&expect), "{name}: wrong result");
        peak = peak.max(PEAK.load(Ordering::Relaxed) - base);
        drop(r);
        times.push(dt);
    }
    times.sort();
    Figures {
        median: times[times.len() / 2],
        tasks,
        nodes,
        peak_bytes: peak,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let repeats: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    println!(
        "covalent core benchmark: local executor, trivial electrons, build + run, median of {repeats}"
    );
    let home = std::env::temp_dir().join(format!("covalent-bench-{}", std::process::id()));
    let config = |record: bool| {
        let text = format!(
            "[sdk]\ndata_dir = {:?}\nrecord = {record}\nprogress = false\n",
            home.display().to_string()
        );
        Arc::new(covalent::Config::parse(&text, Path::new("bench.toml")).expect("config"))
    };
    let (off, on) = (config(false), config(true));
    let fan = n * (n + 1) / 2;
    let rows = [
        (
            "fan-out N + join",
            "off",
            measure(
                "fan-out",
                repeats,
                || fan_out(n).with_config(off.clone()),
                fan,
            ),
        ),
        (
            "chain N",
            "off",
            measure("chain", repeats, || chain(n).with_config(off.clone()), n),
        ),
        (
            "fan-out N + join",
            "on",
            measure(
                "fan-out",
                repeats,
                || fan_out(n).with_config(on.clone()),
                fan,
            ),
        ),
        (
            "chain N",
            "on",
            measure("chain", repeats, || chain(n).with_config(on.clone()), n),
        ),
    ];
    println!(
        "{:<18} {:>6} {:>8} {:>8} {:>11} {:>11} {:>11} {:>11}",
        "workload", "record", "tasks", "nodes", "median", "per task", "bytes/node", "bytes/task"
    );
    for (name, record, f) in &rows {
        println!(
            "{:<18} {:>6} {:>8} {:>8} {:>9.2}ms {:>9.3}µs {:>11} {:>11}",
            name,
            record,
            f.tasks,
            f.nodes,
            f.median.as_secs_f64() * 1e3,
            f.median.as_secs_f64() * 1e6 / f.tasks as f64,
            f.peak_bytes / f.nodes,
            f.peak_bytes / f.tasks,
        );
    }
    for (i, name) in ["fan-out", "chain"].iter().enumerate() {
        let ratio = rows[i + 2].2.median.as_secs_f64() / rows[i].2.median.as_secs_f64();
        println!("{name}: recording on / off = {ratio:.2}x");
    }
    // Database size per recorded node: one more recorded fan-out into a fresh store.
    let fresh = home.join("size");
    let sized = Arc::new(
        covalent::Config::parse(
            &format!(
                "[sdk]\ndata_dir = {:?}\nprogress = false\n",
                fresh.display().to_string()
            ),
            Path::new("bench.toml"),
        )
        .expect("config"),
    );
    let lattice = fan_out(n).with_config(sized);
    let nodes = lattice.graph().len();
    covalent::dispatch_sync(lattice).expect("dispatch");
    let size: u64 = ["covalent.db", "covalent.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(fresh.join(f)).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "store size after one recorded fan-out: {:.1} MB, {} bytes per graph node",
        size as f64 / 1e6,
        size / nodes as u64
    );
    let _ = std::fs::remove_dir_all(&home);
}
