//! Arguments and tails: values, nodes, `Vec`s of nodes (nested), tuples mixing nodes and values,
//! ordering, operators, indexing, sublattices.

use covalent::prelude::*;

#[electron]
fn num(x: i64) -> i64 {
    x
}

#[electron]
fn sum(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

#[electron]
fn sum2(xs: Vec<Vec<i64>>) -> i64 {
    xs.iter().flatten().sum()
}

#[electron]
fn join(t: (i64, String, f64)) -> String {
    format!("{}{}{}", t.0, t.1, t.2)
}

#[electron]
fn pair(x: i64) -> (i64, i64) {
    (x, -x)
}

#[electron]
fn list(n: i64) -> Vec<i64> {
    (0..n).collect()
}

#[electron]
fn side_effect() {}

#[electron]
#[lattice]
fn sub(n: i64) -> i64 {
    sum((0..n).map(num).collect::<Vec<_>>())
}

#[lattice]
fn args() -> (i64, i64, String, i64, i64) {
    let row = vec![num(1), num(2)];
    let by_ref = sum(&row);
    let by_vec = sum(row);
    let arr = sum([num(3), num(4)]);
    let nested = sum2(vec![vec![num(1)], vec![num(2), num(3)]]);
    let joined = join((num(1), "x".to_string(), 0.5));
    let ordered = wait(num(0), (side_effect(), by_ref));
    let ordered = ordered.wait_for([arr]);
    let arith = (by_vec + arr) * 2 - nested / 2 + 1 - ordered;
    let (a, b) = pair(5).split();
    let third = list(5).get(3usize);
    let dynamic = sub(num(4));
    (arith + a + b + pair(1).field::<0>(), third, joined, dynamic, 10 - num(4))
}

#[lattice]
fn tail_value() -> String {
    "v".to_string()
}

#[lattice]
fn tail_node() -> i64 {
    num(1)
}

#[lattice]
fn tail_vec() -> Vec<i64> {
    vec![num(1), num(2)]
}

#[lattice]
fn tail_tuple() -> (i64, String) {
    (num(1), "s".to_string())
}

#[lattice]
fn tail_unit() {
    side_effect();
}

fn main() {
    // (3 + 7) * 2 - 6 / 2 + 1 - 0 = 18; + 5 - 5 + 1 = 19
    let r = covalent::dispatch_sync(args()).unwrap();
    assert_eq!(r.value(), Some(&(19, 3, "1x0.5".to_string(), 6, 6)));
    assert_eq!(covalent::dispatch_sync(tail_value()).unwrap().into_value(), Some("v".into()));
    assert_eq!(covalent::dispatch_sync(tail_node()).unwrap().into_value(), Some(1));
    assert_eq!(covalent::dispatch_sync(tail_vec()).unwrap().into_value(), Some(vec![1, 2]));
    assert_eq!(
        covalent::dispatch_sync(tail_tuple()).unwrap().into_value(),
        Some((1, "s".to_string()))
    );
    assert_eq!(covalent::dispatch_sync(tail_unit()).unwrap().into_value(), Some(()));
    assert_eq!(covalent::dispatch_sync(sub::lattice(3)).unwrap().into_value(), Some(3));
}
