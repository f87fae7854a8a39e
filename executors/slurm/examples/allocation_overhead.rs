//! The slurm executor's three modes against Slurm doing the same work bare, side by side: N
//! trivial tasks (N = 50, 200, 1,000 by default, or the numbers given), each way from nothing,
//! one after the other for each N:
//!
//! - `alloc`: the `slurm` executor in allocation mode: one allocation of 2 tasks requested for
//!   the run (its start counted), 2 persistent worker steps serving the N tasks;
//! - `srun` (bare): the same allocation by hand (`sbatch` of a waiting job, `squeue` every
//!   100 ms until it runs), then N `srun --jobid=J --exact -n1 -c1` steps, two at a time, each
//!   running the same worker command (this binary in worker mode on the task's envelope), then
//!   `scancel`;
//! - `array`: the executor in job-per-task mode, its default: the tasks go out as job arrays;
//! - `bare array`: the same worker command as one `sbatch --array` by hand (split at 1,001
//!   elements, Slurm's default MaxArraySize), `squeue -r` every 100 ms until every element ended;
//! - `jobs`: job-per-task mode with `array = false`: one `sbatch` per task.
//!
//! Every one of ours polls every 100 ms (`poll_interval`), as the bare ones do. Above 1,000
//! tasks only `alloc` and `srun` run: N job records (arrays' elements included) stay in the
//! controller for MinJobAge (300 s here) and the cluster's MaxJobCount is 10,000, so the job
//! modes would wait for the controller's purge (or be refused), which is what `max_jobs` keeps a
//! real workflow from running into.
//!
//! ```sh
//! bash scripts/slurm-up.sh
//! cargo run --release -p covalent-slurm --example allocation_overhead -- 50 200 1000 10000
//! ```
//!
//! Prints seconds and milliseconds per task for each, the ratios to the bare way, and the
//! Slurm commands each of ours ran (`sbatch`/`srun`/`squeue`, and squeues per 100 ms interval).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use covalent::executor::ExecutorRef;
use covalent::executor::worker::{PROTOCOL, RESULT_ENV, TASK_ENV, TaskEnvelope};
use covalent::prelude::*;
use covalent_slurm::{AllocationOptions, SlurmCalls, SlurmExecutor, slurm_calls};

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

/// Ours in allocation mode, from nothing: a new allocation (its options differ per run, so
/// none is taken over).
fn ours_alloc(n: u64, run: usize) -> Duration {
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
    ours(n, ex)
}

/// Ours in job-per-task mode, as arrays or one job each.
fn ours_jobs(n: u64, array: bool) -> Duration {
    let ex = SlurmExecutor {
        poll_interval: Duration::from_millis(100),
        array,
        ..Default::default()
    };
    ours(n, ex)
}

fn ours(n: u64, ex: SlurmExecutor) -> Duration {
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
        build: None,
        files: Default::default(),
        assigned: None,
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
    // Each step its own result file (a pid can come back over thousands of steps).
    let each = |from: u64, k: u64| {
        for i in from..from + k {
            let step = cmd.replace("$$", &format!("step-{i}"));
            let status = Command::new("srun")
                .args([
                    &format!("--jobid={id}"),
                    "--exact",
                    "-n1",
                    "-c1",
                    "--quiet",
                    "sh",
                    "-c",
                    &step,
                ])
                .stdin(Stdio::null())
                .status()
                .expect("srun");
            assert!(status.success(), "a bare step failed");
        }
    };
    std::thread::scope(|s| {
        s.spawn(|| each(0, n / 2));
        s.spawn(|| each(n / 2, n - n / 2));
    });
    let took = t0.elapsed();
    sh(&format!("scancel {id}"));
    collect_results(dir, n);
    took
}

/// Bare, from nothing: the worker command as job arrays by hand (1,001 elements at most
/// each), `squeue -r` every 100 ms until every element has ended.
fn bare_array(n: u64, dir: &Path, cmd: &str) -> Duration {
    let t0 = Instant::now();
    let mut ids = Vec::new();
    let mut start = 0;
    while start < n {
        let count = (n - start).min(1001);
        // Each element's own result file.
        let cmd = cmd.replace("$$", "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}");
        let id = sh(&format!(
            "sbatch --parsable --array=0-{} -n1 -c1 -t 30 -o /dev/null --wrap {}",
            count - 1,
            covalent_remote::shell_quote(&cmd)
        ));
        assert!(!id.is_empty(), "sbatch gave no job id");
        ids.push(id);
        start += count;
    }
    let list = ids.join(",");
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let states = sh(&format!("squeue -h -r -t all -j {list} -o %T"));
        let running = states.lines().any(|s| {
            !matches!(
                s.trim(),
                "COMPLETED" | "FAILED" | "CANCELLED" | "TIMEOUT" | "OUT_OF_MEMORY"
            )
        });
        if !running && states.lines().count() as u64 >= n {
            break;
        }
    }
    let took = t0.elapsed();
    collect_results(dir, n);
    took
}

fn collect_results(dir: &Path, n: u64) {
    let results = std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("result-"))
        .count() as u64;
    assert_eq!(results, n, "every bare task wrote its result");
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        if e.file_name().to_string_lossy().starts_with("result-") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// What one of ours took and asked of Slurm.
fn row(
    mode: &str,
    n: u64,
    took: Duration,
    calls: (SlurmCalls, SlurmCalls),
    bare: Option<Duration>,
) {
    let (before, after) = calls;
    let intervals = (took.as_secs_f64() / 0.1).max(1.0);
    let squeue = after.squeue - before.squeue;
    println!(
        "{n:>6} | {mode:<5} | {:>9.3} {:>9.3} | {:>7} {:>6} {:>7} {:>8.2} | {}",
        took.as_secs_f64(),
        took.as_secs_f64() * 1e3 / n as f64,
        after.sbatch - before.sbatch,
        after.srun - before.srun,
        squeue,
        squeue as f64 / intervals,
        match bare {
            Some(b) => format!(
                "{:>9.3} {:>9.3} {:>6.1}x",
                b.as_secs_f64(),
                b.as_secs_f64() * 1e3 / n as f64,
                b.as_secs_f64() / took.as_secs_f64()
            ),
            None => "-".into(),
        }
    );
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
    ours_alloc(2, 0); // stages the binary
    println!("slurm executor modes vs bare Slurm, 2 CPUs, each from nothing, polling every 100 ms");
    println!(
        "{:>6} | {:<5} | {:>9} {:>9} | {:>7} {:>6} {:>7} {:>8} | {:>9} {:>9} {:>7}",
        "N",
        "mode",
        "ours s",
        "ms/task",
        "sbatch",
        "srun",
        "squeue",
        "sq/100ms",
        "bare s",
        "ms/task",
        "bare/us"
    );
    for (run, &n) in sizes.iter().enumerate() {
        let before = slurm_calls();
        let a = ours_alloc(n, run + 1);
        let calls = (before, slurm_calls());
        let b = bare(n, dir.path(), &cmd);
        row("alloc", n, a, calls, Some(b));
        if n > 1_000 {
            println!(
                "{n:>6} | array, jobs: not run above 1,000 tasks (MaxJobCount 10,000 within MinJobAge 300 s)"
            );
            continue;
        }
        let before = slurm_calls();
        let a = ours_jobs(n, true);
        let calls = (before, slurm_calls());
        let b = bare_array(n, dir.path(), &cmd);
        row("array", n, a, calls, Some(b));
        let before = slurm_calls();
        let a = ours_jobs(n, false);
        row("jobs", n, a, (before, slurm_calls()), None);
    }
}
