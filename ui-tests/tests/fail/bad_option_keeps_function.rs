use covalent::prelude::*;

#[electron(retires = 2)]
fn flaky(x: i64) -> i64 {
    x
}

#[lattice(fail_fats = true)]
fn workflow(x: i64) -> i64 {
    flaky(x)
}

fn main() {
    let _ = flaky::call(1);
    let _ = workflow(1);
}
