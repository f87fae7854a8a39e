//! The `slurm` executor in allocation mode against the real single-node cluster (started by
//! `scripts/slurm-up.sh` when it is not up; skipped with a message otherwise, a failure under
//! `COVALENT_REQUIRE_ENGINES=1`): the executor conformance suite (results and streams, failures
//! and crashes, retries, a time limit and cancellation cancelling the task's worker step,
//! parallel tasks, hooks, large outputs), and what is particular to allocations: many tasks
//! on a few worker steps of one allocation, a crashed worker replaced, a time limit longer than
//! the allocation refused, the allocation released once idle.

covalent_test_support::isolated_home!();

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

/// [`allocating`] through the login node of `scripts/sshd-up.sh` (this machine's sshd, as the
/// test user), or `None` after saying why the test is skipped.
fn through_login_node(test: &str) -> Option<SlurmExecutor> {
    match engine::login_node_ssh() {
        Ok(ssh) => Some(SlurmExecutor {
            ssh: Some(ssh),
            ..allocating()
        }),
        Err(why) => {
            engine::skip(test, &why);
            None
        }
    }
}

#[electron]
fn big_on_the_cluster(n: u32) -> Vec<u32> {
    println!("making {n}");
    (0..n).collect()
}

#[electron]
fn where_am_i_anywhere(i: u32) -> (u32, String, String, u32) {
    println!("task {i} as {}", std::env::var("USER").unwrap_or_default());
    (
        i,
        std::env::var("SLURM_JOB_ID").unwrap_or_default(),
        std::env::var("SLURM_STEP_ID").unwrap_or_default(),
        std::process::id(),
    )
}

/// Runs here (the lattice's default executor is not this one's): gathers the tasks' values.
#[electron(executor = "local")]
fn gathered(v: Vec<(u32, String, String, u32)>) -> Vec<(u32, String, String, u32)> {
    v
}

#[lattice]
fn remote_mix(n: u32) -> (Vec<(u32, String, String, u32)>, Vec<u32>) {
    let tasks: Vec<Node<(u32, String, String, u32)>> = (0..8).map(where_am_i_anywhere).collect();
    (gathered(tasks), big_on_the_cluster(n))
}

/// Through a login node over SSH: the worker steps are started there and speak over the
/// shared connection; streams come back in the replies and a large output (1.3 MB of JSON) is
/// fetched from the allocation's directory there.
#[test]
fn an_allocation_through_a_login_node_serves_tasks_and_large_outputs() {
    let Some(exec) =
        through_login_node("an_allocation_through_a_login_node_serves_tasks_and_large_outputs")
    else {
        return;
    };
    let n = 200_000u32;
    let r = covalent::dispatch_sync(
        remote_mix(n)
            .with_executor(ExecutorRef::new(exec))
            .with_config(config()),
    )
    .unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    let (tasks, big) = r.value().unwrap();
    let jobs: std::collections::BTreeSet<&str> = tasks.iter().map(|t| t.1.as_str()).collect();
    assert_eq!(jobs.len(), 1, "one allocation: {jobs:?}");
    assert!(big.len() == n as usize && big.iter().enumerate().all(|(i, &x)| x as usize == i));
    for node in r.nodes().filter(|n| n.name() == "where_am_i_anywhere") {
        let i = node.output_as::<(u32, String, String, u32)>().unwrap().0;
        assert_eq!(node.stdout(), format!("task {i} as covalent-ssh\n"));
    }
    let big_node = r
        .nodes()
        .find(|n| n.name() == "big_on_the_cluster")
        .unwrap();
    assert_eq!(big_node.stdout(), format!("making {n}\n"));
}

/// The example: 500 tasks on one allocation, one `sbatch` and two `srun`s in all.
#[test]
fn the_allocation_example_runs() {
    need_slurm!("the_allocation_example_runs");
    let out = covalent_test_support::run_example("slurm_allocation", &[]);
    assert!(out.contains("500 tasks in allocation "), "{out}");
    // One sbatch, or none when an allocation of an earlier run is still there to take over.
    let calls = out
        .lines()
        .find_map(|l| l.strip_prefix("Slurm calls: "))
        .unwrap_or_else(|| panic!("no call counts in {out}"));
    let n: Vec<u64> = calls
        .split(", ")
        .map(|c| c.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(n[0] <= 1 && n[1] == 2, "{out}");
}

#[electron(executor = &ALLOC)]
fn nap_in_allocation(dir: String) -> u32 {
    let me = format!(
        "{}.{} {}",
        std::env::var("SLURM_JOB_ID").unwrap_or_default(),
        std::env::var("SLURM_STEP_ID").unwrap_or_default(),
        std::process::id()
    );
    std::fs::write(Path::new(&dir).join("step.tmp"), me).unwrap();
    std::fs::rename(
        Path::new(&dir).join("step.tmp"),
        Path::new(&dir).join("step"),
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(60));
    1
}

#[lattice]
fn napping(dir: String) -> u32 {
    nap_in_allocation(dir)
}

/// What a child process does (`ALLOC_ROLE`): `nap` dispatches a task that sleeps in an
/// allocation's worker step, after writing its step and pid to `ALLOC_DIR/step`.
#[test]
#[ignore = "run by the other tests as a child process"]
fn role() {
    let Ok(role) = std::env::var("ALLOC_ROLE") else {
        return;
    };
    let dir = std::env::var("ALLOC_DIR").unwrap();
    match role.as_str() {
        "nap" => {
            let r = covalent::dispatch_sync(napping(dir).with_config(config())).unwrap();
            println!("done {:?}", r.status());
        }
        other => panic!("unknown role {other}"),
    }
}

/// A dispatcher killed with `kill -9` while its task runs in an allocation leaves nothing
/// running: the worker step sees its requests' pipe close and ends with its task at once.
#[test]
fn kill_9_of_a_dispatcher_ends_its_worker_steps() {
    need_slurm!("kill_9_of_a_dispatcher_ends_its_worker_steps");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["role", "--exact", "--ignored", "--nocapture", "--quiet"])
        .env("ALLOC_ROLE", "nap")
        .env("ALLOC_DIR", dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let file = dir.path().join("step");
    let start = Instant::now();
    let (step, pid) = loop {
        if let Some((s, p)) = std::fs::read_to_string(&file).ok().and_then(|t| {
            t.split_once(' ')
                .map(|(s, p)| (s.to_string(), p.to_string()))
        }) {
            break (s, p);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the task never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let alloc = step.split('.').next().unwrap().to_string();
    let live = || sh(&format!("squeue -h -s -j {alloc} -o %i"));
    assert!(live().lines().any(|l| l == step), "{step} runs: {}", live());
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    // SAFETY: a plain kill(2) of our own child, which we then reap.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
    let start = Instant::now();
    while (live().lines().any(|l| l == step) || Path::new(&format!("/proc/{pid}")).exists())
        && start.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !live().lines().any(|l| l == step),
        "step {step} outlived its dispatcher: {}",
        live()
    );
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the task's process {pid} outlived its dispatcher"
    );
}

/// Its own allocation (other options), so that cancelling it touches no other test's.
static OTHER: LazyLock<ExecutorRef> = LazyLock::new(|| {
    let mut ex = allocating();
    ex.env
        .insert("COVALENT_TEST_ALLOCATION".into(), "other".into());
    ExecutorRef::new(ex)
});

#[electron(executor = &OTHER)]
fn in_other(i: u32) -> (u32, String) {
    (i, std::env::var("SLURM_JOB_ID").unwrap_or_default())
}

#[lattice]
fn some_in_other(n: u32) -> Vec<(u32, String)> {
    let tasks: Vec<Node<(u32, String)>> = (0..n).map(in_other).collect();
    tasks
}

/// An allocation cancelled from outside (an administrator's `scancel`, a lost node) is given
/// up: its idle workers are not handed tasks, and the next tasks run on a new allocation.
#[test]
fn an_allocation_cancelled_from_outside_is_replaced() {
    need_slurm!("an_allocation_cancelled_from_outside_is_replaced");
    let r = covalent::dispatch_sync(some_in_other(4).with_config(config())).unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    let first = r.value().unwrap()[0].1.clone();
    sh(&format!("scancel {first}"));
    let start = Instant::now();
    while sh(&format!("squeue -h -j {first} -o %T")) == "RUNNING" {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "scancel {first} did nothing"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let again = covalent::dispatch_sync(some_in_other(4).with_config(config())).unwrap();
    assert_eq!(again.status(), Status::Completed, "{again}");
    let second = &again.value().unwrap()[0].1;
    assert_ne!(second, &first, "a new allocation");
}
