use covalent::prelude::*;

#[electron]
fn shout(text: &str) -> String {
    text.to_uppercase()
}

fn main() {}
