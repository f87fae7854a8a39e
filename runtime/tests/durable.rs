//! Durable dispatches on the `process` executor, with faults produced for real: a detached
//! dispatcher is killed with SIGKILL while its tasks run, or after a task finished but before
//! the dispatcher collected it (the dispatcher stopped with SIGSTOP meanwhile); then a fresh
//! call resumes or cancels it. Each electron appends to a file per run, so a test sees what ran
//! and how often.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use covalent::Uuid;
use covalent::prelude::*;
use covalent::store::DispatchRecord;

covalent_test_support::isolated_home!();
covalent_test_support::durable_helpers!();

/// Appends `i` to `<dir>/runs`, sleeps `ms`, returns `i * 10`.
#[electron(executor = "process")]
fn step(dir: String, i: u32, ms: u64) -> u32 {
    covalent_test_support::append_line(format!("{dir}/runs"), &i.to_string());
    std::thread::sleep(Duration::from_millis(ms));
    i * 10
}

#[electron]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

#[lattice]
fn fast_and_slow(dir: String, slow_ms: u64) -> u32 {
    let a = step(dir.clone(), 1, 0);
    let b = step(dir, 2, slow_ms);
    add(a, b)
}

#[lattice]
fn one_step(dir: String, ms: u64) -> u32 {
    step(dir, 7, ms)
}

fn record(id: Uuid) -> DispatchRecord {
    store().get(id).unwrap()
}

fn runs(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("runs"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Whether node `n`'s task process is there (its handle has a pid: the one recorded before
/// the launch has 0).
fn launched(r: &DispatchRecord, n: usize) -> bool {
    r.nodes[n]
        .job_handle
        .as_ref()
        .and_then(|h| h["pid"].as_u64())
        .is_some_and(|p| p > 0)
}

/// The pid of a node's job handle.
fn handle_pid(r: &DispatchRecord, node: usize) -> u32 {
    r.nodes[node].job_handle.as_ref().unwrap()["pid"]
        .as_u64()
        .unwrap() as u32
}

use covalent_test_support::{SIGSTOP, alive, signal};

fn step_nodes(r: &DispatchRecord) -> Vec<usize> {
    r.nodes
        .iter()
        .filter(|n| n.name == "step")
        .map(|n| n.id)
        .collect()
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("covalent-durable-{}", Uuid::now_v7().simple()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_killed_dispatcher_takes_its_tasks_along_and_a_resume_reruns_only_those() {
    let dir = tempdir();
    let id = covalent::dispatch_detached(fast_and_slow(dir.display().to_string(), 3_000)).unwrap();
    let r = wait_for(id, "the fast step done and the slow one running", |r| {
        let steps = step_nodes(r);
        steps
            .iter()
            .any(|&n| r.nodes[n].status == Status::Completed)
            && steps
                .iter()
                .any(|&n| r.nodes[n].status == Status::Running && launched(r, n))
    });
    let slow = *step_nodes(&r)
        .iter()
        .find(|&&n| r.nodes[n].status == Status::Running)
        .unwrap();
    let worker = handle_pid(&r, slow);
    assert!(alive(worker));
    kill_dispatcher(id);
    // The task's process went with its dispatcher: nothing runs unseen.
    let deadline = Instant::now() + Duration::from_secs(2);
    while alive(worker) {
        assert!(
            Instant::now() < deadline,
            "worker {worker} outlived its dispatcher"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let interrupted = record(id);
    assert_eq!(interrupted.nodes[slow].status, Status::Interrupted);
    assert!(interrupted.nodes[slow].job_handle.is_some());

    let resumed = covalent::resume(id).unwrap();
    assert_ne!(resumed, id);
    let r = store()
        .wait(resumed, Some(Duration::from_secs(60)))
        .unwrap();
    assert_eq!(r.status, Status::Completed, "{r}");
    assert_eq!(r.value::<u32>().unwrap(), Some(30));
    // The fast step was taken from the first dispatch, the slow one ran again (its process
    // died with the dispatcher, leaving no result).
    let mut ran = runs(&dir);
    ran.sort();
    assert_eq!(ran, ["1", "2", "2"]);
    let statuses: Vec<Status> = step_nodes(&r).iter().map(|&n| r.nodes[n].status).collect();
    assert!(statuses.contains(&Status::Reused), "{statuses:?}");
    // The dead attempt's directory went with the resume's look at it.
    let old_dir = covalent::Config::global()
        .unwrap()
        .results_dir()
        .join(id.to_string())
        .join("process");
    assert!(!old_dir.exists(), "{} is left", old_dir.display());
    // A second resume of the same dispatch is refused: its attempts are followed already.
    let again = covalent::resume(id).unwrap_err().to_string();
    assert!(
        again.contains(&format!("already resumed as dispatch {resumed}")),
        "{again}"
    );
}

#[test]
fn a_task_that_finished_while_no_dispatcher_watched_is_collected_not_rerun() {
    let dir = tempdir();
    let id = covalent::dispatch_detached(one_step(dir.display().to_string(), 300)).unwrap();
    let r = wait_for(id, "the step running", |r| {
        step_nodes(r).iter().any(|&n| launched(r, n))
    });
    let node = step_nodes(&r)[0];
    let worker = handle_pid(&r, node);
    let task_dir = PathBuf::from(
        r.nodes[node].job_handle.as_ref().unwrap()["dir"]
            .as_str()
            .unwrap(),
    );
    // Stop the dispatcher, let the task finish, then kill the dispatcher before it ever ran
    // again: the result is on disk and nobody collected it.
    let dispatcher = store().origin(id).unwrap().pid;
    signal(dispatcher, SIGSTOP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(worker) {
        assert!(Instant::now() < deadline, "the task did not finish");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(task_dir.join("result.json").is_file());
    kill_dispatcher(id);
    assert_eq!(record(id).nodes[node].status, Status::Interrupted);

    let resumed = covalent::resume(id).unwrap();
    let r = store()
        .wait(resumed, Some(Duration::from_secs(60)))
        .unwrap();
    assert_eq!(r.status, Status::Completed, "{r}");
    assert_eq!(r.value::<u32>().unwrap(), Some(70));
    assert_eq!(runs(&dir), ["7"], "the finished task is not run again");
    // The new node followed the old attempt: same handle.
    let node = step_nodes(&r)[0];
    assert_eq!(handle_pid(&r, node), worker);
    assert!(
        !task_dir.exists(),
        "the collected task's directory is removed"
    );
}

#[test]
fn cancelling_a_dispatch_whose_dispatcher_died_records_it_cancelled() {
    let dir = tempdir();
    let id = covalent::dispatch_detached(one_step(dir.display().to_string(), 5_000)).unwrap();
    let r = wait_for(id, "the step running", |r| {
        step_nodes(r).iter().any(|&n| launched(r, n))
    });
    let worker = handle_pid(&r, step_nodes(&r)[0]);
    kill_dispatcher(id);
    let report = covalent::cancel_left_running(&store(), id).unwrap();
    assert_eq!(report.len(), 1, "{report:?}");
    // The task's process dies with its dispatcher within 50 ms; the cancel kills it if it
    // comes first. Either way nothing runs afterwards.
    assert!(
        ["ended", "cancelled"].contains(&report[0].outcome.as_str()),
        "{report:?}"
    );
    assert_eq!(report[0].executor, "process");
    assert!(!alive(worker));
    let r = record(id);
    assert_eq!(r.status, Status::Cancelled, "{r}");
    assert_eq!(r.nodes[step_nodes(&r)[0]].status, Status::Cancelled);
    // Cancelled is final: no resume adopts anything, and a second cancel has nothing to do.
    let again = covalent::cancel_left_running(&store(), id).unwrap();
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn a_detached_dispatch_runs_to_its_end_and_refuses_what_cannot_travel() {
    let dir = tempdir();
    let id = covalent::dispatch_detached(fast_and_slow(dir.display().to_string(), 10)).unwrap();
    let r = store().wait(id, Some(Duration::from_secs(60))).unwrap();
    assert_eq!(r.status, Status::Completed, "{r}");
    assert_eq!(r.value::<u32>().unwrap(), Some(30));
    let origin = store().origin(id).unwrap();
    assert_ne!(
        origin.pid,
        std::process::id(),
        "it ran in a process of its own"
    );
    assert_eq!(
        origin.lattice_path.as_deref(),
        Some("durable::fast_and_slow")
    );
    let log = covalent::Config::global()
        .unwrap()
        .results_dir()
        .join(id.to_string())
        .join("dispatcher.log");
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.contains("ended COMPLETED"), "{log}");

    let err = covalent::dispatch_detached(one_step("x".into(), 1).fail_fast(true))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`fail_fast`"), "{err}");
    let err = covalent::dispatch_detached(one_step("x".into(), 1).record(false))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not to be recorded"), "{err}");
}
