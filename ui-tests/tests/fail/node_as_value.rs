use covalent::prelude::*;

#[electron]
fn is_positive(x: i64) -> bool {
    x > 0
}

#[electron]
fn negate(x: i64) -> i64 {
    -x
}

#[lattice]
fn workflow(x: i64) -> i64 {
    let positive = is_positive(x);
    if positive { negate(x) } else { negate(-x) }
}

fn main() {}
