//! The `slurm` executor in allocation mode against the real single-node cluster (started by
//! `scripts/slurm-up.sh` when it is not up; skipped with a message otherwise, a failure under
//! `COVALENT_REQUIRE_ENGINES=1`): the executor conformance suite (results and streams, failures
//! and crashes, retries, a time limit and cancellation cancelling the task's worker step,
//! parallel tasks, hooks, large outputs), and what is particular to allocations: many tasks
//! on a few worker steps of one allocation, a crashed worker replaced, a time limit longer than
//! the allocation refused, the allocation released once idle.

covalent_test_support::isolated_home!();

#[allow(dead_code)] // its SSH half serves the other test files
mod engine;

use std::path::Path;
use std::process::Command;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use covalent::executor::{ExecutorRef, JobHandle};
use covalent::prelude::*;
use covalent_slurm::{AllocationOptions, SlurmExecutor};

fn config() -> covalent::Config {
    covalent::Config::parse(
        "[sdk]\nrecord = false\nprogress = false\n",
        Path::new("allocation-test.toml"),
    )
    .unwrap()
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Two workers (the cluster's two CPUs) in one allocation, released after 2 s idle.
fn allocating() -> SlurmExecutor {
    SlurmExecutor {
        poll_interval: Duration::from_millis(100),
        allocation: Some(AllocationOptions {
            workers_per_node: 2,
            time: "10:00".into(),
            idle_timeout: Duration::from_secs(2),
            ..Default::default()
        }),
        ..Default::default()
    }
}

static ALLOC: LazyLock<ExecutorRef> = LazyLock::new(|| ExecutorRef::new(allocating()));

/// The steps of the allocation a handle names that are still there.
fn live_steps(job: &JobHandle) -> Vec<String> {
    let Some(alloc) = job.0["allocation"].as_str() else {
        return Vec::new();
    };
    sh(&format!("squeue -h -s -j {alloc} -o %i"))
        .lines()
        .filter(|s| !s.ends_with(".batch") && !s.ends_with(".extern"))
        .map(str::to_string)
        .collect()
}

/// The task's worker step was cancelled (what a time-out or cancellation must do).
fn step_gone(job: &JobHandle) -> Result<(), String> {
    let step = job.0["step"].as_str().ok_or("no step in the job handle")?;
    let live = live_steps(job);
    if live.iter().any(|s| s == step) {
        Err(format!("step {step} is still there: {live:?}"))
    } else {
        Ok(())
    }
}

covalent_test_support::executor_conformance! {
    executor: &ALLOC,
    name: "slurm",
    config: config(),
    engine: |_| engine::slurm(),
    shared_dir: std::env::temp_dir(),
    shared_dir_in_task: std::env::temp_dir(),
    time_limit: "3s",
    stopped: step_gone,
    leftovers: |_| Vec::new(),
    // A time-out or cancel cancels the step before its reply (and streams) comes back.
    keeps_streams_of_stopped_tasks: false,
}

macro_rules! need_slurm {
    ($test:literal) => {
        if let Err(why) = engine::slurm() {
            engine::skip($test, &why);
            return;
        }
    };
}

#[electron(executor = &ALLOC)]
fn where_am_i(i: u32) -> (u32, String, String, u32) {
    println!(
        "task {i} on {}",
        std::env::var("SLURMD_NODENAME").unwrap_or_default()
    );
    (
        i,
        std::env::var("SLURM_JOB_ID").unwrap_or_default(),
        std::env::var("SLURM_STEP_ID").unwrap_or_default(),
        std::process::id(),
    )
}

#[lattice]
fn many(n: u32) -> Vec<(u32, String, String, u32)> {
    let tasks: Vec<Node<(u32, String, String, u32)>> = (0..n).map(where_am_i).collect();
    tasks
}

#[electron(executor = &ALLOC)]
fn abort_here() -> u32 {
    std::process::abort()
}

#[lattice]
fn crash_then_many(n: u32) -> Vec<(u32, String, String, u32)> {
    let _crashed = abort_here();
    let tasks: Vec<Node<(u32, String, String, u32)>> = (0..n).map(where_am_i).collect();
    tasks
}

#[electron(executor = &ALLOC, time_limit = "30m")]
fn too_long() -> u32 {
    1
}

#[lattice]
fn longer_than_the_allocation() -> u32 {
    too_long()
}

/// Many tasks run on the few worker steps of one allocation (two workers here), each with
/// its own stdout; a crashed worker fails only its task and is replaced; a time limit longer
/// than the allocation is refused saying what to change; once idle, the allocation is released.
#[test]
fn many_tasks_share_the_workers_of_one_allocation() {
    need_slurm!("many_tasks_share_the_workers_of_one_allocation");
    let r = covalent::dispatch_sync(many(40).with_config(config())).unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    let v = r.value().unwrap();
    let jobs: std::collections::BTreeSet<&str> = v.iter().map(|t| t.1.as_str()).collect();
    assert_eq!(jobs.len(), 1, "one allocation: {jobs:?}");
    let steps: std::collections::BTreeSet<&str> = v.iter().map(|t| t.2.as_str()).collect();
    assert!(
        !steps.is_empty() && steps.len() <= 2,
        "40 tasks on at most two worker steps: {steps:?}"
    );
    for n in r.nodes().filter(|n| n.name() == "where_am_i") {
        let i = n.output_as::<(u32, String, String, u32)>().unwrap().0;
        assert!(
            n.stdout().starts_with(&format!("task {i} on ")),
            "{:?}",
            n.stdout()
        );
        let h = n.job_handle().unwrap();
        assert_eq!(h.0["allocation"].as_str(), jobs.first().copied());
        assert!(h.0["step"].as_str().unwrap().contains('.'));
    }

    let c = covalent::dispatch_sync(crash_then_many(6).with_config(config())).unwrap();
    let crashed = c.nodes().find(|n| n.name() == "abort_here").unwrap();
    let e = crashed.node_error().expect("the crash fails its node");
    assert_eq!(e.kind(), covalent::ErrorKind::WorkerLost, "{}", e.message());
    let fine: Vec<_> = c
        .nodes()
        .filter(|n| n.name() == "where_am_i")
        .map(|n| n.status())
        .collect();
    assert_eq!(fine, vec![Status::Completed; 6], "{c}");

    let t = covalent::dispatch_sync(longer_than_the_allocation().with_config(config())).unwrap();
    let e = t.nodes().find(|n| n.name() == "too_long").unwrap();
    let msg = e.node_error().unwrap().message().to_string();
    assert!(msg.contains("raise allocation.time"), "{msg}");

    // Released once idle (2 s here; looked at every second at least).
    let alloc = jobs.first().unwrap().to_string();
    let start = Instant::now();
    loop {
        let state = sh(&format!("squeue -h -t all -j {alloc} -o %T"));
        if state.is_empty() || state == "CANCELLED" || state == "COMPLETED" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "allocation {alloc} still {state} after 30 s idle"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
