use covalent::prelude::*;

struct Counter;

impl Counter {
    #[electron]
    fn bump(&self, x: i64) -> i64 {
        x + 1
    }
}

fn main() {}
