//! Electrons as Slurm jobs: a fan-out of `square` jobs summed on the local executor.
//!
//! Needs a Slurm cluster to submit to: run this on a login node, or set
//! `[executors.slurm] ssh = { hostname = "login.example.org", username = "me" }` in
//! `covalent.toml` to submit through one. To try it on one machine (as root, Debian):
//!
//! ```sh
//! bash scripts/slurm-up.sh                 # a single-node cluster, partition `debug`
//! cargo run --example slurm_executor       # prints the report and each node's job id
//! bash scripts/slurm-down.sh               # when done
//! ```
//!
//! `[executors.slurm]` in `covalent.toml` sets the executor's options (`partition`,
//! `cpus_per_task`, `mem`, `prerun`, `poll_interval`, ...); without a file, the defaults
//! submit on this host.

use covalent::prelude::*;
// The plugin registers itself when the crate is linked: naming it once is enough.
use covalent_slurm as _;

/// Runs as its own Slurm job; its time limit becomes `#SBATCH --time=1`.
#[electron(executor = "slurm", time_limit = "1m")]
fn square(x: i64) -> i64 {
    println!(
        "squaring {x} in Slurm job {} on {}",
        std::env::var("SLURM_JOB_ID").unwrap_or_else(|_| "?".into()),
        std::env::var("SLURMD_NODENAME").unwrap_or_else(|_| "?".into())
    );
    x * x
}

/// Runs in this process.
#[electron]
fn total(values: Vec<i64>) -> i64 {
    values.iter().sum()
}

#[lattice]
fn sum_of_squares(n: i64) -> i64 {
    let squares: Vec<Node<i64>> = (1..=n).map(square).collect();
    total(squares)
}

#[covalent::main]
async fn main() -> anyhow::Result<()> {
    let result = covalent::dispatch(sum_of_squares(4)).await?.wait().await?;
    println!("{result}");
    for node in result.nodes().filter(|n| n.name() == "square") {
        let job = node
            .job_handle()
            .and_then(|h| {
                h.0.get("job_id")
                    .and_then(|j| j.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        println!("{}: Slurm job {job}: {}", node.name(), node.stdout().trim());
    }
    anyhow::ensure!(
        result.value() == Some(&30),
        "the workflow failed: {}",
        result.error().unwrap_or("no value")
    );
    println!("sum of squares of 1..=4 = 30, computed by 4 Slurm jobs");
    Ok(())
}
