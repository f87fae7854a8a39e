//! How often the slurm executor asks `squeue`, on the real single-node cluster (see `slurm.rs`
//! for how it is brought up): one squeue at a time for every job of a place, whatever their
//! number, at most one per `poll_interval`, and fewer while nothing changes. A binary of its
//! own: it counts the Slurm commands of the whole process.

covalent_test_support::isolated_home!();

#[allow(dead_code)] // the login-node helpers are `slurm.rs`'s
mod engine;

use std::path::Path;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use covalent::executor::ExecutorRef;
use covalent::prelude::*;
use covalent_slurm::{SlurmExecutor, slurm_calls};

static POLLED: LazyLock<ExecutorRef> = LazyLock::new(|| {
    ExecutorRef::new(SlurmExecutor {
        poll_interval: Duration::from_millis(100),
        max_poll_interval: Duration::from_secs(1),
        ..Default::default()
    })
});

#[electron(executor = &POLLED)]
fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[lattice]
fn naps(n: u64, long: u64) -> Vec<u64> {
    let mut v: Vec<Node<u64>> = (0..n).map(|_| nap(200)).collect();
    v.push(nap(long));
    v
}

#[test]
fn many_jobs_share_one_squeue_that_backs_off_while_nothing_changes() {
    if let Err(why) = engine::slurm() {
        engine::skip(
            "many_jobs_share_one_squeue_that_backs_off_while_nothing_changes",
            &why,
        );
        return;
    }
    let config = covalent::Config::parse(
        "[sdk]\nrecord = false\nprogress = false\n",
        Path::new("polling-test.toml"),
    )
    .unwrap();
    let before = slurm_calls();
    let t0 = Instant::now();
    let r = covalent::dispatch_sync(naps(30, 20_000).with_config(config)).unwrap();
    let took = t0.elapsed();
    let after = slurm_calls();
    assert_eq!(r.status(), Status::Completed, "{r}");
    let squeue = after.squeue - before.squeue;
    let intervals = took.as_secs_f64() / 0.1;
    eprintln!(
        "31 jobs in {:.1} s: {} sbatch, {squeue} squeue ({intervals:.0} poll intervals)",
        took.as_secs_f64(),
        after.sbatch - before.sbatch
    );
    // The 31 tasks, ready together: one array.
    assert_eq!(after.sbatch - before.sbatch, 1);
    // Never more than one squeue per interval for all 31 jobs ...
    assert!(
        squeue as f64 <= intervals + 1.0,
        "{squeue} squeue in {took:?}"
    );
    // ... and far fewer while the long one runs alone and nothing changes.
    assert!(
        (squeue as f64) < intervals * 0.6,
        "{squeue} squeue in {took:?}: no back-off"
    );
}
