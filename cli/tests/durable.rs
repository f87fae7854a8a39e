//! `covalent resume` and `covalent cancel` on dispatches whose dispatcher was killed with
//! SIGKILL: this test binary starts detached dispatches of its own lattices (so it is the
//! recorded program the command re-runs), kills their dispatchers, then runs the real command.

covalent_test_support::isolated_home!();
covalent_test_support::durable_helpers!();

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use covalent::Uuid;
use covalent::prelude::*;
use covalent_test_support::{SIGKILL, signal};

/// Sleeps, then doubles.
#[electron(executor = "process")]
fn slow_double(x: u64, ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    x * 2
}

#[lattice]
fn doubled(x: u64, ms: u64) -> u64 {
    slow_double(x, ms)
}

/// The data dir of this binary's store (what `covalent` is pointed at).
fn home() -> PathBuf {
    store().path().parent().unwrap().to_path_buf()
}

fn covalent(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_covalent"))
        .args(args)
        .env("COVALENT_HOME", home())
        .env_remove("COVALENT_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A detached dispatch of `doubled(x, ms)` whose dispatcher is killed while its task runs.
fn interrupted(x: u64, ms: u64) -> Uuid {
    let id = covalent::dispatch_detached(doubled(x, ms)).unwrap();
    wait_for(id, "the task running", |r| {
        r.nodes.iter().any(|n| {
            // Launched: the handle recorded before the launch has pid 0.
            n.job_handle
                .as_ref()
                .and_then(|h| h["pid"].as_u64())
                .is_some_and(|p| p > 0)
        })
    });
    signal(store().origin(id).unwrap().pid, SIGKILL);
    wait_for(id, "INTERRUPTED", |r| r.status == Status::Interrupted);
    id
}

#[test]
fn resume_wait_prints_the_result_of_the_resumed_dispatch() {
    let id = interrupted(21, 2_000);
    let prefix = &id.to_string()[..30];
    let (code, out, err) = covalent(&["resume", prefix, "--wait"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("resuming dispatch {id} as ")),
        "{out}"
    );
    assert_eq!(out.lines().last(), Some("42"), "{out}");
    // The old dispatch says who took over; resuming it again is refused with that id.
    let new: Uuid = out
        .split(" as ")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(store().origin(id).unwrap().resumed_by, Some(new));
    let (code, _, err) = covalent(&["resume", &id.to_string()]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("already resumed as dispatch {new}")),
        "{err}"
    );
    // A completed dispatch has nothing to resume.
    let (code, _, err) = covalent(&["resume", &new.to_string()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("completed: there is nothing to resume"),
        "{err}"
    );
}

#[test]
fn resume_without_wait_prints_the_new_id_at_once() {
    let id = interrupted(5, 2_000);
    let (code, out, err) = covalent(&["resume", &id.to_string()]);
    assert_eq!(code, 0, "{out}\n{err}");
    let new: Uuid = out.lines().next().unwrap().trim().parse().unwrap();
    let r = store().wait(new, Some(Duration::from_secs(60))).unwrap();
    assert_eq!(r.value::<u64>().unwrap(), Some(10), "{r}");
}

#[test]
fn cancel_of_an_interrupted_dispatch_records_it_cancelled() {
    let id = interrupted(1, 30_000);
    // `show` names the attempt the crash left behind, by its job handle.
    let (code, out, _) = covalent(&["show", &id.to_string()]);
    assert_eq!(code, 0);
    let table = &out[out.find("\nNodes\n").expect("a node table")..];
    let row = table.lines().find(|l| l.contains("slow_double")).unwrap();
    assert!(row.contains("INTERRUPTED") && row.contains("pid:"), "{out}");
    let (code, out, err) = covalent(&["cancel", &id.to_string()]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("dispatch {id} is CANCELLED")),
        "{out}"
    );
    assert!(out.contains("slow_double, on process"), "{out}");
    assert_eq!(store().get(id).unwrap().status, Status::Cancelled);
    // It is over now.
    let (code, _, err) = covalent(&["cancel", &id.to_string()]);
    assert_eq!(code, 1);
    assert!(err.contains("already ended (CANCELLED)"), "{err}");
}
