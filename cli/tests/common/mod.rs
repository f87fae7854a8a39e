//! Workflows shared by the CLI and UI tests (each test binary records its own dispatches of
//! them into a temporary store).
#![allow(dead_code)] // each test binary uses its own subset

use std::time::Duration;

use covalent::prelude::*;

#[electron]
pub fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[electron]
pub fn multiply(x: i64, y: i64) -> i64 {
    x * y
}

#[lattice]
pub fn workflow(x: i64, y: i64) -> i64 {
    let r1 = add(x, y);
    multiply(y, r1)
}

#[electron]
pub fn fails(x: i64) -> Result<i64, String> {
    Err(format!("bad input {x}"))
}

/// Two tasks: one completes, one fails.
#[lattice]
pub fn broken(x: i64) -> (i64, i64) {
    (add(x, 1), fails(x))
}

#[electron]
pub fn square(x: i64) -> i64 {
    x * x
}

#[electron]
pub fn total(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

#[electron]
#[lattice]
pub fn fan(n: i64) -> i64 {
    let squares: Vec<Node<i64>> = (0..n).map(square).collect();
    total(squares)
}

#[lattice]
pub fn fanned(n: i64) -> i64 {
    fan(add(n, 0))
}

#[electron]
pub async fn nap(secs: u64) -> u64 {
    tokio::time::sleep(Duration::from_secs(secs)).await;
    secs
}

#[lattice]
pub fn sleepy(secs: u64) -> u64 {
    nap(secs)
}
