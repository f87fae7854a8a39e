//! Durable dispatches on a real Slurm cluster (see `slurm.rs` for how it is brought up): a
//! detached dispatcher is killed with SIGKILL while its jobs run, or after a job finished but
//! before it was collected (the dispatcher held with SIGSTOP meanwhile); then a fresh call
//! resumes it (the jobs followed are the ones submitted before the crash: the same job ids, no
//! second sbatch) or cancels it (`scancel` through the recorded job ids). Each job appends to a
//! file per run, so a test sees what ran and how often; none may be left in `squeue`.

covalent_test_support::isolated_home!();
covalent_test_support::durable_helpers!();

#[allow(dead_code)] // the login-node helpers are `slurm.rs`'s
mod engine;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use covalent::prelude::*;
use covalent::store::DispatchRecord;
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
    job_body(dir, i, ms)
}

fn job_body(dir: String, i: u32, ms: u64) -> u32 {
    covalent_test_support::append_line(format!("{dir}/runs"), &i.to_string());
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
    let running = Instant::now();
    let launched = job_ids(&before);
    // Ready together with the same options: one job array, an element each.
    let arrays: std::collections::BTreeSet<&str> = launched
        .iter()
        .map(|j| j.split_once('_').expect("an array element's id").0)
        .collect();
    assert_eq!(arrays.len(), 1, "{launched:?}");
    let killed = Instant::now();
    kill_dispatcher(id);
    // Slurm jobs outlive their dispatcher; the record keeps their ids.
    for j in &launched {
        assert_eq!(job_state(j), "RUNNING", "job {j}");
    }
    let asked = Instant::now();
    let resumed = covalent::resume(id).unwrap();
    let started = asked.elapsed();
    let r = store()
        .wait(resumed, Some(Duration::from_secs(120)))
        .unwrap();
    let took = killed.elapsed();
    assert_eq!(r.status, Status::Completed, "{r}");
    assert_eq!(r.value::<u32>().unwrap(), Some(60));
    let since_running = running.elapsed();
    // The same jobs, followed to their end: no second submission.
    assert_eq!(job_ids(&r), launched);
    assert_eq!(runs(&dir), ["1", "2", "3"]);
    for j in &launched {
        assert!(is_final(&job_state(j)), "job {j} is {}", job_state(j));
    }
    for d in job_dirs_of(&r) {
        assert!(!d.exists(), "{} is left", d.display());
        // The array's own directory goes with its last task.
        let array_dir = d.parent().unwrap();
        assert!(!array_dir.exists(), "{} is left", array_dir.display());
    }
    eprintln!(
        "3 Slurm jobs of 4 s: kill -9 to the resumed result {:.2} s; `resume` returned in {:.0} ms; all three seen RUNNING to the result {:.2} s (the jobs' 4 s included); sbatch calls after the crash: 0 (job ids {launched:?} before and after)",
        took.as_secs_f64(),
        started.as_secs_f64() * 1e3,
        since_running.as_secs_f64()
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

/// Slurm commands whose `sbatch` submits, then takes 3 s to print the job id: a dispatcher
/// killed meanwhile knows only the job's name. Under the test binary's isolated directory, so
/// its detached dispatchers find the same one.
fn slow_sbatch_dir() -> String {
    let dir = covalent_test_support::isolated_dir()
        .unwrap()
        .join("slow-sbatch");
    if !dir.join("sbatch").exists() {
        std::fs::create_dir_all(&dir).unwrap();
        for cmd in ["squeue", "scancel", "sacct", "scontrol"] {
            let real = sh(&format!("command -v {cmd}"));
            let _ = std::os::unix::fs::symlink(real, dir.join(cmd));
        }
        let real = sh("command -v sbatch");
        let script = format!("#!/bin/sh\nid=$({real} \"$@\") || exit $?\nsleep 3\necho \"$id\"\n");
        let tmp = dir.join("sbatch.part");
        std::fs::write(&tmp, script).unwrap();
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::rename(tmp, dir.join("sbatch")).unwrap();
    }
    dir.display().to_string()
}

#[electron(executor = covalent_slurm::SlurmExecutor { slurm_path: Some(slow_sbatch_dir()), ..Default::default() })]
fn slowly_submitted(dir: String, ms: u64) -> u32 {
    job_body(dir, 9, ms)
}

#[lattice]
fn one_slow_submission(dir: String, ms: u64) -> u32 {
    slowly_submitted(dir, ms)
}

#[test]
fn a_crash_before_sbatch_answered_is_reconciled_by_the_job_name() {
    need_slurm!("a_crash_before_sbatch_answered_is_reconciled_by_the_job_name");
    let dir = tempdir();
    let id =
        covalent::dispatch_detached(one_slow_submission(dir.display().to_string(), 2_000)).unwrap();
    let r = wait_for(id, "the job submitted, its id not yet known", |r| {
        let h = r.nodes.iter().find_map(|n| n.job_handle.clone());
        h.is_some_and(|h| {
            h["job_id"].is_null()
                && !sh(&format!(
                    "squeue -h -n {} -o %i",
                    h["job_name"].as_str().unwrap()
                ))
                .is_empty()
        })
    });
    let handle = r.nodes.iter().find_map(|n| n.job_handle.clone()).unwrap();
    let name = handle["job_name"].as_str().unwrap().to_string();
    let submitted = sh(&format!("squeue -h -n {name} -o %i"));
    kill_dispatcher(id);
    let resumed = covalent::resume(id).unwrap();
    let r = store()
        .wait(resumed, Some(Duration::from_secs(120)))
        .unwrap();
    assert_eq!(r.status, Status::Completed, "{r}");
    assert_eq!(r.value::<u32>().unwrap(), Some(90));
    // Found by its name, followed, not submitted again.
    let followed = r.nodes.iter().find_map(|n| n.job_handle.clone()).unwrap();
    assert_eq!(followed["job_id"].as_str(), Some(submitted.as_str()));
    assert_eq!(runs(&dir), ["9"]);
}

#[test]
fn the_detached_example_runs_its_jobs_on_slurm_after_it_exited() {
    need_slurm!("the_detached_example_runs_its_jobs_on_slurm_after_it_exited");
    let out = covalent_test_support::run_example(
        "detached",
        &[("DETACHED_EXECUTOR", "slurm"), ("DETACHED_SECONDS", "2")],
    );
    let id: Uuid = out.lines().next().unwrap().trim().parse().unwrap();
    assert_eq!(store().origin(id).unwrap().status, Status::Running);
    let r = store().wait(id, Some(Duration::from_secs(180))).unwrap();
    assert_eq!(r.status, Status::Completed, "{r}");
    assert_eq!(r.value::<u64>().unwrap(), Some(14));
    let jobs: Vec<&str> = r
        .nodes
        .iter()
        .filter_map(|n| n.job_handle.as_ref()?["job_id"].as_str())
        .collect();
    assert_eq!(jobs.len(), 3, "three Slurm jobs: {r}");
}
