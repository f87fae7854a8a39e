use covalent::prelude::*;

#[electron]
fn add(x: i64, y: i64) -> i64 {
    let sum = x + ;
    sum + y
}

#[lattice]
fn workflow(x: i64) -> i64 {
    add(x, 1)
}

fn main() {
    let _ = add::call(1, 2);
}
