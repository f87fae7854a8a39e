//! Durable dispatches on a real Slurm cluster (see `slurm.rs` for how it is brought up): a
//! detached dispatcher is killed with SIGKILL while its jobs run, or after a job finished but
//! before it was collected (the dispatcher held with SIGSTOP meanwhile); then a fresh call
//! resumes it (the jobs followed are the ones submitted before the crash: the same job ids, no
//! second sbatch) or cancels it (`scancel` through the recorded job ids). Each job appends to a
//! file per run, so a test sees what ran and how often; none may be left in `squeue`.

covalent_test_support::isolated_home!();

#[allow(dead_code)] // the login-node helpers are `slurm.rs`'s
mod engine;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use covalent::prelude::*;
use covalent::store::{DispatchRecord, Store};
use covalent::{Node, Uuid};
use covalent_slurm as _; // links the plugin: `executor = "slurm"`
use covalent_test_support::{SIGKILL, SIGSTOP, alive, signal};

macro_rules! need_slurm {
    ($test:literal) => {
        if let Err(why) = engine::slurm() {
            engine::skip($test, &why);
            return;
        }
    };
}

/// Appends `i` to `<dir>/runs`, sleeps, returns `i * 10`: one Slurm job.
#[electron(executor = "slurm")]
fn job(dir: String, i: u32, ms: u64) -> u32 {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(format!("{dir}/runs"))
        .unwrap();
    // One write with O_APPEND: lines of concurrent tasks never interleave.
    f.write_all(format!("{i}\n").as_bytes()).unwrap();
    drop(f);
    std::thread::sleep(Duration::from_millis(ms));
    i * 10
}

#[electron]
fn total(xs: Vec<u32>) -> u32 {
    xs.iter().sum()
}

/// `n` jobs side by side, then their sum.
#[lattice]
fn fan_out(dir: String, n: u32, ms: u64) -> u32 {
    let jobs: Vec<Node<u32>> = (1..=n).map(|i| job(dir.clone(), i, ms)).collect();
    total(jobs)
}

fn store() -> std::sync::Arc<Store> {
    Store::open_default().unwrap()
}

fn wait_for(id: Uuid, what: &str, f: impl Fn(&DispatchRecord) -> bool) -> DispatchRecord {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = store().get(id).unwrap();
        if f(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {r}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn job_ids(r: &DispatchRecord) -> Vec<String> {
    let mut ids: Vec<String> = r
        .nodes
        .iter()
        .filter(|n| n.name == "job")
        .filter_map(|n| {
            n.job_handle.as_ref()?["job_id"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    ids.sort();
    ids
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn job_state(id: &str) -> String {
    sh(&format!("squeue -h -t all -j {id} -o %T"))
}

fn is_final(state: &str) -> bool {
    matches!(
        state,
        "" | "COMPLETED" | "FAILED" | "CANCELLED" | "TIMEOUT" | "OUT_OF_MEMORY" | "NODE_FAIL"
    )
}

fn runs(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_to_string(dir.join("runs"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn tempdir() -> PathBuf {
    // Where the jobs (on this single-node cluster) can write.
    let d = std::env::temp_dir().join(format!(
        "covalent-slurm-durable-{}",
        Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn kill_dispatcher(id: Uuid) {
    signal(store().origin(id).unwrap().pid, SIGKILL);
    wait_for(id, "INTERRUPTED", |r| r.status == Status::Interrupted);
}

fn job_dirs_of(r: &DispatchRecord) -> Vec<PathBuf> {
    r.nodes
        .iter()
        .filter_map(|n| n.job_handle.as_ref()?["dir"].as_str().map(PathBuf::from))
        .collect()
}

#[test]
fn a_resume_follows_the_jobs_a_killed_dispatcher_left_running() {
    need_slurm!("a_resume_follows_the_jobs_a_killed_dispatcher_left_running");
    let dir = tempdir();
    let id = covalent::dispatch_detached(fan_out(dir.display().to_string(), 3, 4_000)).unwrap();
    let before = wait_for(id, "three jobs running", |r| {
        let ids = job_ids(r);
        ids.len() == 3 && ids.iter().all(|j| job_state(j) == "RUNNING")
    });
    let launched = job_ids(&before);
    let killed = Instant::now();
    kill_dispatcher(id);
    // Slurm jobs outlive their dispatcher; the record keeps their ids.
    for j in &launched {
        assert_eq!(job_state(j), "RUNNING", "job {j}");
    }
    let resumed = covalent::resume(id).unwrap();
    let r = store()
        .wait(resumed, Some(Duration::from_secs(120)))
        .unwrap();
    let took = killed.elapsed();
    assert_eq!(r.status, Status::Completed, "{r}");
    assert_eq!(r.value::<u32>().unwrap(), Some(60));
    // The same jobs, followed to their end: no second submission.
    assert_eq!(job_ids(&r), launched);
    assert_eq!(runs(&dir), ["1", "2", "3"]);
    for j in &launched {
        assert!(is_final(&job_state(j)), "job {j} is {}", job_state(j));
    }
    for d in job_dirs_of(&r) {
        assert!(!d.exists(), "{} is left", d.display());
    }
    eprintln!(
        "kill -9 to the resumed dispatch's result, 3 Slurm jobs: {:.2} s, sbatch calls after the crash: 0 (job ids {launched:?} before and after)",
        took.as_secs_f64()
    );
}

#[test]
fn a_job_that_finished_while_no_dispatcher_watched_is_collected_not_resubmitted() {
    need_slurm!("a_job_that_finished_while_no_dispatcher_watched_is_collected_not_resubmitted");
    let dir = tempdir();
    let id = covalent::dispatch_detached(fan_out(dir.display().to_string(), 1, 500)).unwrap();
    let before = wait_for(id, "the job submitted", |r| job_ids(r).len() == 1);
    let launched = job_ids(&before);
    let dispatcher = store().origin(id).unwrap().pid;
    signal(dispatcher, SIGSTOP);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !is_final(&job_state(&launched[0])) {
        assert!(Instant::now() < deadline, "the job did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(job_state(&launched[0]), "COMPLETED");
    signal(dispatcher, SIGKILL);
    wait_for(id, "INTERRUPTED", |r| r.status == Status::Interrupted);
    assert!(!alive(dispatcher));

    let resumed = covalent::resume(id).unwrap();
    let r = store()
        .wait(resumed, Some(Duration::from_secs(120)))
        .unwrap();
    assert_eq!(r.status, Status::Completed, "{r}");
    assert_eq!(r.value::<u32>().unwrap(), Some(10));
    assert_eq!(job_ids(&r), launched, "the finished job was collected");
    assert_eq!(runs(&dir), ["1"], "and not run again");
    for d in job_dirs_of(&r) {
        assert!(!d.exists(), "{} is left", d.display());
    }
}

#[test]
fn cancel_stops_the_jobs_of_a_dead_dispatcher_through_their_ids() {
    need_slurm!("cancel_stops_the_jobs_of_a_dead_dispatcher_through_their_ids");
    let dir = tempdir();
    let id = covalent::dispatch_detached(fan_out(dir.display().to_string(), 2, 60_000)).unwrap();
    let before = wait_for(id, "two jobs running", |r| {
        let ids = job_ids(r);
        ids.len() == 2 && ids.iter().all(|j| job_state(j) == "RUNNING")
    });
    let launched = job_ids(&before);
    kill_dispatcher(id);
    // What `covalent cancel ID` calls: the program that ran the dispatch (this test binary)
    // is re-run in maintenance mode and scancels the recorded job ids.
    let report = covalent::cancel_left_running(&store(), id).unwrap();
    assert_eq!(report.len(), 2, "{report:?}");
    assert!(
        report.iter().all(|a| a.outcome == "cancelled"),
        "{report:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    for j in &launched {
        while !is_final(&job_state(j)) {
            assert!(Instant::now() < deadline, "job {j} still {}", job_state(j));
            std::thread::sleep(Duration::from_millis(100));
        }
        let state = job_state(j);
        assert!(
            state == "CANCELLED" || state.is_empty(),
            "job {j} is {state}"
        );
    }
    let r = store().get(id).unwrap();
    assert_eq!(r.status, Status::Cancelled, "{r}");
    for n in r.nodes.iter().filter(|n| n.name == "job") {
        assert_eq!(n.status, Status::Cancelled);
    }
    for d in job_dirs_of(&r) {
        assert!(!d.exists(), "{} is left", d.display());
    }
    assert_eq!(
        runs(&dir).len(),
        2,
        "each job ran once, until it was cancelled"
    );
}
