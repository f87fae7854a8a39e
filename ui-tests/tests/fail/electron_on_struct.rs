use covalent::prelude::*;

#[electron]
struct Point {
    x: f64,
    y: f64,
}

fn main() {}
