//! Module-relative paths in electrons: the function as written moves one module down (into
//! `NAME::call`), and the `self::` and `super::` paths of its signature, body and hooks follow.

use covalent::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    x: i64,
}

fn offset() -> i64 {
    1
}

mod shapes {
    use covalent::prelude::*;

    fn prepare() {}

    fn scale() -> i64 {
        2
    }

    #[electron(call_before = self::prepare)]
    pub fn shift(p: super::Point) -> super::Point {
        use super::offset;
        let by = self::scale() * offset();
        let check = |p: &super::Point| p.x >= 0;
        assert!(check(&p), "{:?}", self::scale());
        super::Point {
            x: p.x + by + super::offset(),
        }
    }

    #[electron]
    #[lattice]
    pub fn twice(p: super::Point) -> super::Point {
        self::shift(shift(p))
    }
}

#[lattice]
fn workflow(p: Point) -> Point {
    shapes::twice(shapes::shift(p))
}

fn main() {
    assert_eq!(shapes::shift::call(Point { x: 0 }), Point { x: 3 });
    let _ = workflow(Point { x: 0 });
}
