//! The seed workflow: two electrons and a lattice, built but not dispatched.

use covalent::prelude::*;

#[electron]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[electron(executor = "process", retries = 2, time_limit = "30s")]
fn multiply(x: i64, y: i64) -> i64 {
    x * y
}

#[lattice]
fn workflow(x: i64, y: i64) -> i64 {
    let r1 = add(x, y);
    multiply(y, r1)
}

fn main() {
    assert_eq!(add::call(3, 4), 7);
    let _ = workflow(3, 4);
}
