use covalent::prelude::*;

struct Matrix {
    cells: Vec<f64>,
}

#[electron]
fn trace(m: Matrix) -> f64 {
    m.cells.iter().sum()
}

fn main() {}
