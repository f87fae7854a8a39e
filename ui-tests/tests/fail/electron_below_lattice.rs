use covalent::prelude::*;

#[electron]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[lattice]
#[electron]
fn inner(x: i64) -> i64 {
    add(x, 1)
}

fn main() {}
