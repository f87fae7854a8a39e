//! One executor instance shared by two electrons (Covalent's "one executor per resource"):
//! `task_1` samples five numbers in 10..30, `task_2` squares them, and the result shows both
//! nodes ran on the same instance.
//!
//! Run with `cargo run --example same_executor`.

use std::sync::LazyLock;

use covalent::executor::{ExecutorRef, LocalExecutor};
use covalent::prelude::*;

/// The shared instance.
static SHARED: LazyLock<ExecutorRef> = LazyLock::new(|| ExecutorRef::new(LocalExecutor::default()));

/// Five pseudo-random numbers in 10..30 (an xorshift generator seeded from the clock).
#[electron(executor = &SHARED)]
fn task_1() -> Vec<u64> {
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(88172645463325252)
        | 1;
    (0..5)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            10 + x % 20
        })
        .collect()
}

/// Squares each number.
#[electron(executor = &SHARED)]
fn task_2(numbers: Vec<u64>) -> Vec<u64> {
    numbers.iter().map(|n| n * n).collect()
}

#[lattice]
fn workflow() -> Vec<u64> {
    task_2(task_1())
}

fn main() -> anyhow::Result<()> {
    let result = covalent::dispatch_sync(workflow())?;
    println!("{result}");
    let squares = result.value().cloned().unwrap_or_default();
    let samples: Vec<u64> = result
        .node(0)
        .and_then(|n| n.output_as::<Vec<u64>>())
        .unwrap_or_default();
    anyhow::ensure!(samples.len() == 5 && samples.iter().all(|n| (10..30).contains(n)));
    anyhow::ensure!(squares == samples.iter().map(|n| n * n).collect::<Vec<_>>());
    let instances: Vec<(String, Option<u64>)> = result
        .nodes()
        .filter(|n| !n.is_internal())
        .map(|n| (n.name().to_string(), n.executor_instance()))
        .collect();
    for (name, inst) in &instances {
        println!("{name} ran on executor instance {inst:?}");
    }
    anyhow::ensure!(
        instances
            .iter()
            .all(|(_, i)| *i == Some(SHARED.instance_id())),
        "both tasks must run on the shared instance"
    );
    println!(
        "both nodes ran on the same executor instance (#{})",
        SHARED.instance_id()
    );
    Ok(())
}
