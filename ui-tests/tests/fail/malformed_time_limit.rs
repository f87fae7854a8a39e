use covalent::prelude::*;

#[electron(time_limit = "30 sekonds")]
fn slow(x: i64) -> i64 {
    x
}

fn main() {}
