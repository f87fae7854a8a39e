use covalent::prelude::*;

#[electron]
fn greet(name: String) -> String {
    format!("hello {name}")
}

#[electron]
fn double(x: i64) -> i64 {
    x * 2
}

#[lattice]
fn workflow(name: String) -> i64 {
    let greeting = greet(name);
    double(greeting)
}

fn main() {}
