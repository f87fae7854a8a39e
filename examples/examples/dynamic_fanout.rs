//! A sublattice whose fan-out width comes from an upstream electron's output: `count_files`
//! decides how many `measure` tasks run, which is only known at run time.
//!
//! Run with `cargo run --example dynamic_fanout`.

use covalent::prelude::*;

/// Stands in for "how many inputs are there?": decided at run time.
#[electron]
fn count_inputs(seed: u64) -> u64 {
    3 + seed % 4
}

/// One unit of work.
#[electron]
fn measure(i: u64) -> f64 {
    (i as f64).sqrt()
}

/// Sums the measurements.
#[electron]
fn total(xs: Vec<f64>) -> f64 {
    xs.iter().sum()
}

/// The sublattice: built when `n` is known, with one `measure` per input.
#[electron]
#[lattice]
fn measure_all(n: u64) -> f64 {
    let parts: Vec<Node<f64>> = (0..n).map(measure).collect();
    total(parts)
}

#[lattice]
fn pipeline(seed: u64) -> f64 {
    let n = count_inputs(seed);
    measure_all(n)
}

fn main() -> anyhow::Result<()> {
    let result = covalent::dispatch_sync(pipeline(10))?;
    println!("{result}");
    let sub = result
        .nodes()
        .find(|n| n.is_sublattice())
        .and_then(|n| n.sublattice())
        .ok_or_else(|| anyhow::anyhow!("the sublattice was not recorded"))?;
    println!(
        "the sublattice `{}` ran {} tasks, decided at run time",
        sub.lattice_name(),
        sub.task_count()
    );
    let expected: f64 = (0..5u64).map(|i| (i as f64).sqrt()).sum();
    anyhow::ensure!(
        result.value() == Some(&expected),
        "got {:?}",
        result.value()
    );
    Ok(())
}
