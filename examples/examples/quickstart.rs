//! The seed workflow: `add(x, y)` then `multiply(y, r1)` with (3, 4), printed as a
//! Covalent-style report.
//!
//! Run with `cargo run --example quickstart`.

use covalent::prelude::*;

/// Adds two numbers.
#[electron]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// Multiplies two numbers.
#[electron(retries = 2, time_limit = "30s")]
fn multiply(x: i64, y: i64) -> i64 {
    x * y
}

/// The workflow: nothing runs while it is built; `r1` is a `Node<i64>`.
#[lattice]
fn workflow(x: i64, y: i64) -> i64 {
    let r1 = add(x, y);
    multiply(y, r1)
}

#[covalent::main]
async fn main() -> anyhow::Result<()> {
    let dispatch = covalent::dispatch(workflow(3, 4)).await?;
    println!("dispatched {}", dispatch.id());
    let result = dispatch.wait().await?;
    println!("{result}");
    anyhow::ensure!(
        result.value() == Some(&28),
        "expected 28, got {:?}",
        result.value()
    );
    Ok(())
}
