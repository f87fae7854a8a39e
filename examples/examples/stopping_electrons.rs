//! Stopping long electrons: a thread cannot be killed, so an in-process sync electron polls
//! `covalent::cancelled()` to stop at its time limit (or when cancelled); one that does not is
//! given up on time anyway and its thread is reported; `executor = "process"` kills for real.
//!
//! Run with `cargo run --example stopping_electrons`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use covalent::prelude::*;

static ANNEAL_STEPS: AtomicU64 = AtomicU64::new(0);
static ANNEAL_RETURNED: AtomicBool = AtomicBool::new(false);

/// A long search that checks now and then whether it should stop.
#[electron(time_limit = "300ms")]
fn anneal(steps: u64) -> f64 {
    let mut best = f64::MAX;
    for i in 0..steps {
        if covalent::cancelled() {
            ANNEAL_STEPS.store(i, Ordering::Relaxed);
            break;
        }
        best = best.min(((i as f64) * 0.37).sin());
        if i % 1024 == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    ANNEAL_RETURNED.store(true, Ordering::Release);
    best
}

/// The same search without the check: it keeps its thread busy after its node has ended.
#[electron(time_limit = "100ms")]
fn stubborn() -> u64 {
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed() < Duration::from_secs(2) {
        n = n.wrapping_add(1);
    }
    n
}

/// In a child process, the time limit kills the whole process group.
#[electron(executor = "process", time_limit = "200ms")]
fn stubborn_elsewhere() -> u64 {
    loop {
        std::hint::spin_loop();
    }
}

#[lattice]
fn searches() -> (f64, u64, u64) {
    (anneal(u64::MAX), stubborn(), stubborn_elsewhere())
}

fn main() -> anyhow::Result<()> {
    let t = Instant::now();
    let result = covalent::dispatch_sync(searches())?;
    println!(
        "dispatch {} ended {} after {} ms",
        result.dispatch_id(),
        result.status(),
        t.elapsed().as_millis()
    );
    for node in result.nodes().filter(|n| !n.is_internal()) {
        println!(
            "{}: {} ({})",
            node.name(),
            node.status(),
            node.error().unwrap_or_default()
        );
    }
    println!(
        "anneal saw covalent::cancelled() after {} steps and returned: {}",
        ANNEAL_STEPS.load(Ordering::Relaxed),
        ANNEAL_RETURNED.load(Ordering::Acquire)
    );
    Ok(())
}
