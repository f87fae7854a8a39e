//! Inner attributes at the top of a body: they stay on the code the body becomes.

use covalent::prelude::*;

#[electron]
fn add(x: i64, y: i64) -> i64 {
    #![allow(unused_variables)]
    let unused = 1;
    x + y
}

#[electron]
#[lattice]
fn inner(x: i64) -> i64 {
    #![allow(unused_variables)]
    let unused = 1;
    add(x, 1)
}

#[lattice]
fn workflow(x: i64) -> i64 {
    #![allow(unused_variables)]
    let unused = 1;
    inner(add(x, 2))
}

#[covalent::main]
async fn main() {
    #![allow(unused_variables)]
    let unused = 1;
    let _ = add::call(1, 2);
    let _ = workflow(1);
}
