//! `#[lattice]` options, `#[covalent::main]`, dispatch handles and results.

use covalent::prelude::*;

#[electron]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[lattice(executor = "local", name = "named flow", fail_fast = true)]
fn flow(x: i64, mut ys: Vec<i64>) -> i64 {
    ys.push(x);
    let parts: Vec<Node<i64>> = ys.into_iter().map(|y| add(x, y)).collect();
    let mut acc = add(0, 0);
    for p in parts {
        acc = add(acc, p);
    }
    acc
}

#[covalent::main]
async fn main() -> Result<(), covalent::Error> {
    let lattice = flow(1, vec![2, 3]).fail_fast(false);
    assert_eq!(lattice.name(), "named flow");
    let d: Dispatch<i64> = covalent::dispatch(lattice).await?;
    let id: covalent::Uuid = d.id();
    assert!(!id.is_nil());
    let r: LatticeResult<i64> = d.wait().await?;
    assert_eq!(r.status(), Status::Completed);
    assert_eq!(r.value(), Some(&(3 + 4 + 2)));
    assert_eq!(r.lattice_name(), "named flow");
    Ok(())
}
