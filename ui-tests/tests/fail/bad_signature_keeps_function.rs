use covalent::prelude::*;

#[electron]
fn shout(text: &str) -> String {
    text.to_uppercase()
}

#[electron]
#[lattice]
fn inner(text: &str) -> usize {
    text.len()
}

fn main() {
    let _ = shout("hello");
    let _ = inner("hello");
}
