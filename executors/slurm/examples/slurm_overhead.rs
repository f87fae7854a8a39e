//! Per-task cost of the `slurm` executor, against Slurm doing the same work bare.
//!
//! One trivial electron per dispatch, N times in a row, interleaved with the same worker
//! command (this binary, in worker mode, on the same task envelope) submitted by hand:
//!
//! - `sbatch --wait`: Slurm's own blocking submit (it checks on the job after 2 s, then less
//!   and less often);
//! - `sbatch` + `squeue` every `poll_interval`: what a careful script would do.
//!
//! Run on a machine with a Slurm cluster (`bash scripts/slurm-up.sh`):
//!
//! ```sh
//! cargo run --release -p covalent-slurm --example slurm_overhead -- 10
//! ```
//!
//! Prints the median and mean wall time per task of each, and the ratios.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use covalent::executor::worker::{PROTOCOL, RESULT_ENV, TASK_ENV, TaskEnvelope};
use covalent::prelude::*;
use covalent_test_support::median_mean_ms;

#[electron(executor = "slurm")]
fn trivial(x: i64) -> i64 {
    x + 1
}

#[lattice]
fn one(x: i64) -> i64 {
    trivial(x)
}

const POLL: &str = "250ms";

fn config() -> covalent::Config {
    let text = format!(
        "[sdk]\nrecord = false\nprogress = false\n\n[executors.slurm]\npoll_interval = \"{POLL}\"\n"
    );
    covalent::Config::parse(&text, Path::new("overhead.toml")).expect("config")
}

fn executor_run(i: i64) -> Duration {
    let t0 = Instant::now();
    let r = covalent::dispatch_sync(one(i).with_config(config())).expect("dispatch");
    let took = t0.elapsed();
    assert_eq!(r.value(), Some(&(i + 1)), "{r}");
    took
}

/// The worker command of one task, for the bare runs.
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
        build: None,
        files: Default::default(),
        assigned: None,
    };
    env.write(&dir.join("task.json")).expect("envelope");
    let bin = std::env::current_exe().expect("binary");
    format!(
        "env {TASK_ENV}={d}/task.json {RESULT_ENV}={d}/result.json {b}",
        d = dir.display(),
        b = bin.display()
    )
}

fn sbatch(args: &[&str]) -> String {
    let out = Command::new("sbatch")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("sbatch");
    assert!(
        out.status.success(),
        "sbatch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn bare_wait(dir: &Path, cmd: &str) -> Duration {
    let _ = std::fs::remove_file(dir.join("result.json"));
    let t0 = Instant::now();
    sbatch(&[
        "--wait",
        "--quiet",
        "-o",
        "/dev/null",
        "-e",
        "/dev/null",
        "--wrap",
        cmd,
    ]);
    let took = t0.elapsed();
    assert!(
        dir.join("result.json").exists(),
        "the bare job wrote no result"
    );
    took
}

fn bare_poll(dir: &Path, cmd: &str, every: Duration) -> Duration {
    let _ = std::fs::remove_file(dir.join("result.json"));
    let t0 = Instant::now();
    let id = sbatch(&[
        "--parsable",
        "-o",
        "/dev/null",
        "-e",
        "/dev/null",
        "--wrap",
        cmd,
    ]);
    loop {
        std::thread::sleep(every);
        let out = Command::new("squeue")
            .args(["-h", "-t", "all", "-j", &id, "-o", "%T"])
            .output()
            .expect("squeue");
        let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if matches!(
            state.as_str(),
            "COMPLETED" | "FAILED" | "CANCELLED" | "TIMEOUT"
        ) {
            break;
        }
    }
    let took = t0.elapsed();
    assert!(
        dir.join("result.json").exists(),
        "the bare job wrote no result"
    );
    took
}

fn main() {
    covalent_slurm::link(); // nothing else here names the crate: this registers `slurm`
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().expect("tempdir");
    let cmd = worker_command(dir.path());
    let every = humantime::parse_duration(POLL).expect("poll interval");
    executor_run(0); // stages the binary
    let (mut ex, mut wait, mut poll) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        ex.push(executor_run(i as i64));
        wait.push(bare_wait(dir.path(), &cmd));
        poll.push(bare_poll(dir.path(), &cmd, every));
    }
    let (ex_med, ex_mean) = median_mean_ms(&mut ex);
    let (w_med, w_mean) = median_mean_ms(&mut wait);
    let (p_med, p_mean) = median_mean_ms(&mut poll);
    println!("slurm executor overhead, {n} trivial tasks one after another (ms per task)");
    println!("  covalent slurm executor (poll {POLL}):  median {ex_med:7.1}  mean {ex_mean:7.1}");
    println!("  bare sbatch --wait:                     median {w_med:7.1}  mean {w_mean:7.1}");
    println!("  bare sbatch + squeue every {POLL}:     median {p_med:7.1}  mean {p_mean:7.1}");
    println!(
        "  ratio executor / sbatch --wait: {:.2}x (median), {:.2}x (mean)",
        ex_med / w_med,
        ex_mean / w_mean
    );
    println!(
        "  ratio executor / sbatch + squeue: {:.2}x (median), {:.2}x (mean)",
        ex_med / p_med,
        ex_mean / p_mean
    );
}
