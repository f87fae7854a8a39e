use covalent::prelude::*;

#[electron]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[lattice]
async fn workflow(x: i64) -> i64 {
    add(x, 1)
}

fn main() {}
