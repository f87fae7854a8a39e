use covalent::prelude::*;

#[electron]
fn classify(x: i64) -> i64 {
    x.signum()
}

#[electron]
fn negate(x: i64) -> i64 {
    -x
}

#[lattice]
fn workflow(x: i64) -> i64 {
    match classify(x) {
        -1 => negate(x),
        _ => negate(-x),
    }
}

fn main() {}
