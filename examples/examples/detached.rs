//! A dispatch that outlives the program that starts it: `dispatch_detached` re-runs this
//! program as a dispatcher in a session of its own and returns the dispatch id at once, so the
//! terminal (or the SSH session to a login node) can go away while the workflow runs.
//!
//! Run with `cargo run --example detached`, then follow it from anywhere:
//!
//! ```text
//! covalent list
//! covalent result <id> --wait
//! ```
//!
//! With `DETACHED_EXECUTOR=slurm` the slow steps are Slurm jobs instead of local processes
//! (the `slurm` plugin is linked in). `DETACHED_SECONDS` sets how long each step takes
//! (default 5).

use std::time::Duration;

use covalent::prelude::*;
use covalent_slurm as _;

/// A slow step: sleeps, then squares its input.
#[electron(executor = "process")]
fn slow_square(x: u64, seconds: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(seconds));
    x * x
}

#[electron(executor = "slurm")]
fn slow_square_on_slurm(x: u64, seconds: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(seconds));
    x * x
}

#[electron]
fn total(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

/// Three slow steps side by side, then their sum.
#[lattice]
fn overnight(seconds: u64, on_slurm: bool) -> u64 {
    let squares: Vec<Node<u64>> = (1..=3)
        .map(|x| {
            if on_slurm {
                slow_square_on_slurm(x, seconds)
            } else {
                slow_square(x, seconds)
            }
        })
        .collect();
    total(squares)
}

fn main() -> anyhow::Result<()> {
    let seconds = std::env::var("DETACHED_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let on_slurm = std::env::var("DETACHED_EXECUTOR").is_ok_and(|e| e == "slurm");
    let id = covalent::dispatch_detached(overnight(seconds, on_slurm))?;
    println!("{id}");
    println!(
        "dispatch {id} runs in the background; this program exits now. Follow it with `covalent result {id} --wait`"
    );
    Ok(())
}
