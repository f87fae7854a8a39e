use covalent::prelude::*;

#[electron]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[lattice]
fn workflow(x: i64) -> i64 {
    let one = add(x, 1) add(x, 2);
    add(one, 1)
}

#[electron]
#[lattice]
fn inner(x: i64) -> i64 {
    let two = add(x, 2) +;
    add(two, 1)
}

fn main() {
    let _ = workflow(1);
    let _ = inner::lattice(1);
}
