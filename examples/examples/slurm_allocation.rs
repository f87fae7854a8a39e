//! Many small tasks on Slurm without one batch job each: the `slurm` executor in allocation
//! mode holds one allocation and runs 500 trivial tasks on two persistent worker steps in it,
//! then prints how fast that went and what it asked of Slurm (one `sbatch`, two `srun`s).
//!
//! Needs a Slurm cluster (run it on a login node, or add `ssh = { hostname = "..." }` to the
//! executor to submit through one). On one machine, as root (Debian):
//!
//! ```sh
//! bash scripts/slurm-up.sh                 # a single-node cluster, partition `debug`
//! cargo run --release --example slurm_allocation          # 500 tasks; `-- N` for N
//! ```
//!
//! Allocation mode suits many short tasks (seconds or less): the queue wait, the job start and
//! the accounting are paid once per allocation, not per task. Tasks that each need their own
//! resources or run for hours are better as one job each (the default mode).

use std::time::{Duration, Instant};

use covalent::executor::ExecutorRef;
use covalent::prelude::*;
use covalent_slurm::{AllocationOptions, SlurmExecutor, slurm_calls};

#[electron]
fn cube(x: u64) -> u64 {
    x * x * x
}

#[electron(executor = "local")]
fn total(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

#[lattice]
fn cubes(n: u64) -> u64 {
    let xs: Vec<Node<u64>> = (1..=n).map(cube).collect();
    total(xs)
}

fn main() -> anyhow::Result<()> {
    // `cargo run --release --example slurm_allocation -- N` for another number of tasks.
    let n: u64 = match std::env::args().nth(1) {
        Some(a) => a
            .parse()
            .map_err(|e| anyhow::anyhow!("N must be a number ({a}): {e}"))?,
        None => 500,
    };
    let slurm = SlurmExecutor {
        poll_interval: Duration::from_millis(100),
        allocation: Some(AllocationOptions {
            workers_per_node: 2,
            time: "15:00".into(),
            idle_timeout: Duration::from_secs(10),
            ..Default::default()
        }),
        ..Default::default()
    };
    let before = slurm_calls();
    let start = Instant::now();
    let r = covalent::dispatch_sync(cubes(n).with_executor(ExecutorRef::new(slurm)))?;
    let took = start.elapsed();
    anyhow::ensure!(
        r.value() == Some(&(n * (n + 1) / 2).pow(2)),
        "the workflow failed: {}",
        r.error().unwrap_or("no value")
    );
    let calls = slurm_calls();
    let allocation = r
        .nodes()
        .find_map(|n| {
            n.job_handle()?
                .0
                .get("allocation")?
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default();
    println!(
        "{n} tasks in allocation {allocation}: {:.2} s including the allocation's start, {:.0} tasks/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    println!(
        "Slurm calls: {} sbatch, {} srun, {} squeue",
        calls.sbatch - before.sbatch,
        calls.srun - before.srun,
        calls.squeue - before.squeue
    );
    Ok(())
}
