use covalent::prelude::*;

#[electron(retries = 2, time_limit = "1m", retries = 3)]
fn flaky(x: i64) -> i64 {
    x
}

fn main() {}
