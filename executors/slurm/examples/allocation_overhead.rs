//! Allocation mode against Slurm doing the same work bare, side by side: N trivial tasks
//! (N = 50, 200, 1,000 by default, or the numbers given), each way from nothing, one after the
//! other for each N:
//!
//! - the `slurm` executor in allocation mode: one allocation of 2 tasks requested for the run
//!   (its start counted), 2 persistent worker steps serving the N tasks;
//! - bare: the same allocation by hand (`sbatch` of a waiting job, `squeue` every 100 ms until it
//!   runs), then N `srun --jobid=J --exact -n1 -c1` steps, two at a time, each running the same
//!   worker command (this binary in worker mode on the task's envelope), then `scancel`.
//!
//! ```sh
//! bash scripts/slurm-up.sh
//! cargo run --release -p covalent-slurm --example allocation_overhead -- 50 200 1000
//! ```
//!
//! Prints seconds and milliseconds per task for each, their ratio, and the Slurm commands each
//! ran.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use covalent::executor::ExecutorRef;
use covalent::executor::worker::{PROTOCOL, RESULT_ENV, TASK_ENV, TaskEnvelope};
use covalent::prelude::*;
use covalent_slurm::{AllocationOptions, SlurmExecutor, slurm_calls};

#[electron]
fn trivial(x: u64) -> u64 {
    x + 1
}

#[electron(executor = "local")]
fn count(xs: Vec<u64>) -> u64 {
    xs.len() as u64
}

#[lattice]
fn fan(n: u64) -> u64 {
    let xs: Vec<Node<u64>> = (0..n).map(trivial).collect();
    count(xs)
}

fn config() -> covalent::Config {
    covalent::Config::parse(
        "[sdk]\nrecord = false\nprogress = false\n",
        Path::new("overhead.toml"),
    )
    .expect("config")
}

/// Ours, from nothing: a new allocation (its options differ per run, so none is taken over).
fn ours(n: u64, run: usize) -> Duration {
    let mut ex = SlurmExecutor {
        poll_interval: Duration::from_millis(100),
        allocation: Some(AllocationOptions {
            workers_per_node: 2,
            time: "30:00".into(),
            idle_timeout: Duration::from_secs(1),
            ..Default::default()
        }),
        ..Default::default()
    };
    ex.env.insert("COVALENT_BENCH_RUN".into(), run.to_string());
    let t0 = Instant::now();
    let r = covalent::dispatch_sync(
        fan(n)
            .with_executor(ExecutorRef::new(ex))
            .with_config(config()),
    )
    .expect("dispatch");
    let took = t0.elapsed();
    assert_eq!(r.value(), Some(&n), "{r}");
    took
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .output()
        .expect("sh");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The worker command of one task (the bare steps run it), writing its result in `dir`.
fn worker_command(dir: &Path) -> String {
    let def = trivial::electron();
    let env = TaskEnvelope {
        protocol: PROTOCOL,
        covalent: "bench".into(),
        electron: def.path.into(),
        digest: def.digest.into(),
        inputs: vec![serde_json::json!(1)],
        dispatch_id: "bench".into(),
        node_id: 0,
        attempt: 1,
        deps_bash: vec![],
        hooks: vec![],
    };
    env.write(&dir.join("task.json")).expect("envelope");
    let bin = std::env::current_exe().expect("binary");
    format!(
        "{TASK_ENV}={d}/task.json {RESULT_ENV}={d}/result-$$.json {b}",
        d = dir.display(),
        b = bin.display()
    )
}

/// Bare, from nothing: an allocation by hand, N steps two at a time, `scancel`.
fn bare(n: u64, dir: &Path, cmd: &str) -> Duration {
    let t0 = Instant::now();
    let id = sh("sbatch --parsable -n 2 -c 1 -t 30 -o /dev/null --wrap 'sleep 1800'");
    assert!(!id.is_empty(), "sbatch gave no job id");
    while sh(&format!("squeue -h -j {id} -o %T")) != "RUNNING" {
        std::thread::sleep(Duration::from_millis(100));
    }
    let each = |k: u64| {
        for _ in 0..k {
            let status = Command::new("srun")
                .args([
                    &format!("--jobid={id}"),
                    "--exact",
                    "-n1",
                    "-c1",
                    "--quiet",
                    "sh",
                    "-c",
                    cmd,
                ])
                .stdin(Stdio::null())
                .status()
                .expect("srun");
            assert!(status.success(), "a bare step failed");
        }
    };
    std::thread::scope(|s| {
        s.spawn(|| each(n / 2));
        s.spawn(|| each(n - n / 2));
    });
    let took = t0.elapsed();
    sh(&format!("scancel {id}"));
    let results = std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("result-"))
        .count() as u64;
    assert_eq!(results, n, "every bare step wrote its result");
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        if e.file_name().to_string_lossy().starts_with("result-") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    took
}

fn main() {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("N must be a number"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![50, 200, 1_000]
    } else {
        sizes
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let cmd = worker_command(dir.path());
    ours(2, 0); // stages the binary
    println!("allocation mode vs bare srun steps, 2 workers / 2 concurrent steps, from nothing");
    println!(
        "{:>7} | {:>10} {:>9} {:>15} | {:>10} {:>9} {:>12} | {:>7}",
        "N", "ours s", "ms/task", "sbatch/srun", "bare s", "ms/task", "srun steps", "bare/ours"
    );
    for (run, &n) in sizes.iter().enumerate() {
        let before = slurm_calls();
        let a = ours(n, run + 1);
        let calls = slurm_calls();
        let b = bare(n, dir.path(), &cmd);
        println!(
            "{n:>7} | {:>10.3} {:>9.3} {:>15} | {:>10.3} {:>9.3} {:>12} | {:>6.1}x",
            a.as_secs_f64(),
            a.as_secs_f64() * 1e3 / n as f64,
            format!(
                "{}/{}",
                calls.sbatch - before.sbatch,
                calls.srun - before.srun
            ),
            b.as_secs_f64(),
            b.as_secs_f64() * 1e3 / n as f64,
            n,
            b.as_secs_f64() / a.as_secs_f64()
        );
    }
}
