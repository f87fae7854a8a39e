use covalent::prelude::*;

#[electron(retires = 2)]
fn flaky(x: i64) -> i64 {
    x
}

fn main() {}
