//! The built-in `process` executor: each task in a child process of this same program, with
//! its stdout and stderr captured per node, and a crash failing only its node.
//!
//! Run with `cargo run --example process_executor`.

use covalent::prelude::*;

/// Runs in a child process; what it prints is recorded on its node.
#[electron(executor = "process")]
fn square(x: i64) -> i64 {
    println!("squaring {x} in process {}", std::process::id());
    x * x
}

/// Crashes its process: the node fails with the signal, nothing else does.
#[electron(executor = "process")]
fn crash() -> i64 {
    eprintln!("about to abort");
    std::process::abort()
}

/// Back in this process.
#[electron]
fn total(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

#[lattice]
fn workflow(n: i64) -> (i64, i64) {
    let squares: Vec<Node<i64>> = (1..=n).map(square).collect();
    (total(squares), crash())
}

fn main() -> anyhow::Result<()> {
    let result = covalent::dispatch_sync(workflow(4))?;
    println!("{result}");
    for node in result.nodes().filter(|n| n.name() == "square") {
        print!("node {} stdout: {}", node.id(), node.stdout());
    }
    let crashed = result
        .nodes()
        .find(|n| n.name() == "crash")
        .and_then(|n| n.error())
        .unwrap_or_default();
    println!("the crash node failed with: {crashed}");
    let sum = result
        .nodes()
        .find(|n| n.name() == "total")
        .and_then(|n| n.output_as::<i64>());
    anyhow::ensure!(sum == Some(30), "total was {sum:?}");
    anyhow::ensure!(crashed.contains("SIGABRT"), "crash reported as {crashed:?}");
    Ok(())
}
