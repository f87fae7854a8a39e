use covalent::prelude::*;

#[electron]
fn describe(x: i64) -> String {
    format!("x = {x}")
}

#[lattice]
fn workflow(x: i64) -> i64 {
    describe(x)
}

fn main() {}
