//! A slow chain of steps, to watch, cancel, kill and resume from other processes.
//!
//! ```sh
//! cargo run --example sleepy_workflow -- --steps 20 --sleep-ms 500
//! covalent list                       # in another terminal: RUNNING, n/20 tasks
//! covalent cancel <id>                # cancels it
//! # or kill the program (Ctrl-C): `covalent show <id>` says INTERRUPTED, and
//! cargo run --example sleepy_workflow -- --steps 20 --sleep-ms 500 --resume <id>
//! # runs only the steps that had not finished
//! ```
//!
//! Options: `--steps N` (default 10), `--sleep-ms MS` (default 200), `--resume ID`,
//! `--repeat R` (R dispatches one after another). It prints `dispatch_id: ...` as soon as each
//! dispatch starts, then the report, then `ran: K` (steps executed by this process).

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use covalent::prelude::*;

static RAN: AtomicUsize = AtomicUsize::new(0);

/// One step: sleeps, then adds one.
#[electron]
fn step(x: u64, sleep_ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(sleep_ms));
    RAN.fetch_add(1, Ordering::SeqCst);
    x + 1
}

#[lattice]
fn sleepy(steps: u64, sleep_ms: u64) -> u64 {
    let mut x = step(0, sleep_ms);
    for _ in 1..steps {
        x = step(x, sleep_ms);
    }
    x
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[covalent::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let steps: u64 = arg(&args, "--steps")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10);
    let sleep_ms: u64 = arg(&args, "--sleep-ms")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200);
    let repeat: usize = arg(&args, "--repeat")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1);
    // A full id or a unique prefix of one, as everywhere else.
    let resume: Option<covalent::Uuid> = match arg(&args, "--resume") {
        Some(id) => Some(covalent::store::Store::open_default()?.resolve(&id)?),
        None => None,
    };
    for _ in 0..repeat {
        let mut lattice = sleepy(steps, sleep_ms);
        if let Some(prev) = resume {
            lattice = lattice.reuse(prev);
        }
        let d = covalent::dispatch(lattice).await?;
        println!("dispatch_id: {}", d.id());
        std::io::stdout().flush()?;
        let r = d.wait().await?;
        println!("{r}");
        anyhow::ensure!(
            r.status() != Status::Completed || r.value() == Some(&steps),
            "wrong result {:?}",
            r.value()
        );
    }
    println!("ran: {}", RAN.load(Ordering::SeqCst));
    Ok(())
}
