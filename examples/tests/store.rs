//! The store across processes: results read by another process while and after a program
//! runs, cancel requests, a killed program's dispatch INTERRUPTED and resumed, and several
//! programs writing at once.

covalent_test_support::isolated_home!();

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use covalent::Status;
use covalent::store::Store;

/// Builds an example once and returns its binary.
fn example(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let ok = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args(["build", "--quiet", "--example", name])
        .status()
        .expect("cargo runs")
        .success();
    assert!(ok, "building example {name}");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join("debug").join("examples").join(name)
}

fn spawn(home: &Path, args: &[&str]) -> Child {
    Command::new(example("sleepy_workflow"))
        .args(args)
        .env("COVALENT_HOME", home)
        .env_remove("COVALENT_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("example starts")
}

/// Reads the child's stdout until its first `dispatch_id:` line.
fn first_id(child: &mut Child) -> (covalent::Uuid, BufReader<std::process::ChildStdout>) {
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "no dispatch id printed"
        );
        if let Some(id) = line.trim().strip_prefix("dispatch_id: ") {
            return (id.parse().unwrap(), out);
        }
    }
}

fn rest(mut out: BufReader<std::process::ChildStdout>) -> String {
    let mut s = String::new();
    std::io::Read::read_to_string(&mut out, &mut s).unwrap();
    s
}

fn completed_steps(store: &Store, id: covalent::Uuid) -> usize {
    store
        .get(id)
        .unwrap()
        .nodes
        .iter()
        .filter(|n| n.name == "step" && n.status == Status::Completed)
        .count()
}

#[test]
fn another_process_sees_progress_and_waits_for_the_result() {
    let home = tempfile::tempdir().unwrap();
    let mut child = spawn(home.path(), &["--steps", "5", "--sleep-ms", "60"]);
    let (id, out) = first_id(&mut child);
    let store = Store::open(&home.path().join("covalent.db")).unwrap();
    assert_eq!(store.status(id).unwrap(), Status::Running);
    let rec = store.wait(id, Some(Duration::from_secs(60))).unwrap();
    assert_eq!(rec.status, Status::Completed, "{rec}");
    assert_eq!(rec.value::<u64>().unwrap(), Some(5));
    assert_eq!(rec.done_count(), 5);
    assert!(child.wait().unwrap().success());
    assert!(rest(out).contains("ran: 5"));
}

#[test]
fn a_cancel_request_from_another_process_stops_the_dispatch() {
    let home = tempfile::tempdir().unwrap();
    let mut child = spawn(home.path(), &["--steps", "50", "--sleep-ms", "100"]);
    let (id, out) = first_id(&mut child);
    let store = Store::open(&home.path().join("covalent.db")).unwrap();
    assert_eq!(store.request_cancel(id, &[]).unwrap(), Status::Running);
    assert!(child.wait().unwrap().success());
    let report = rest(out);
    assert!(report.contains("status: CANCELLED"), "{report}");
    let rec = store.get(id).unwrap();
    assert_eq!(rec.status, Status::Cancelled);
    assert!(completed_steps(&store, id) < 50);
}

#[test]
fn a_killed_program_leaves_an_interrupted_dispatch_that_resumes() {
    let home = tempfile::tempdir().unwrap();
    let mut child = spawn(home.path(), &["--steps", "8", "--sleep-ms", "150"]);
    let (id, _out) = first_id(&mut child);
    let store = Store::open(&home.path().join("covalent.db")).unwrap();
    let start = Instant::now();
    while completed_steps(&store, id) < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no progress recorded"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let rec = store.get(id).unwrap();
    assert_eq!(rec.status, Status::Interrupted, "{rec}");
    let done = completed_steps(&store, id);
    assert!((3..8).contains(&done), "{done} steps recorded");

    let mut again = spawn(
        home.path(),
        &[
            "--steps",
            "8",
            "--sleep-ms",
            "150",
            "--resume",
            &id.to_string(),
        ],
    );
    let (new_id, out) = first_id(&mut again);
    assert!(again.wait().unwrap().success());
    let report = rest(out);
    assert!(report.contains("status: COMPLETED"), "{report}");
    assert!(report.contains(&format!("ran: {}", 8 - done)), "{report}");
    let resumed = store.get(new_id).unwrap();
    assert_eq!(resumed.value::<u64>().unwrap(), Some(8));
    let reused = resumed
        .nodes
        .iter()
        .filter(|n| n.status == Status::Reused)
        .count();
    assert_eq!(reused, done);
}

#[test]
fn several_processes_dispatching_at_once_lose_nothing() {
    let home = tempfile::tempdir().unwrap();
    let (procs, each) = (4, 15);
    let children: Vec<Child> = (0..procs)
        .map(|_| {
            spawn(
                home.path(),
                &[
                    "--steps",
                    "3",
                    "--sleep-ms",
                    "0",
                    "--repeat",
                    &each.to_string(),
                ],
            )
        })
        .collect();
    let mut ids = Vec::new();
    for mut c in children {
        let out = rest(BufReader::new(c.stdout.take().unwrap()));
        let status = c.wait().unwrap();
        assert!(status.success(), "{out}");
        ids.extend(
            out.lines()
                .filter_map(|l| l.strip_prefix("dispatch_id: "))
                .map(|s| s.parse::<covalent::Uuid>().unwrap()),
        );
    }
    // Each id appears twice: when the dispatch starts, and in its report.
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), procs * each);
    let store = Store::open(&home.path().join("covalent.db")).unwrap();
    let listed = store
        .list(&covalent::store::ListFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(listed.len(), procs * each);
    for id in ids {
        let rec = store.get(id).unwrap();
        assert_eq!(rec.status, Status::Completed);
        assert_eq!(rec.value::<u64>().unwrap(), Some(3));
        assert_eq!(rec.done_count(), 3, "{rec}");
        assert!(
            rec.nodes
                .iter()
                .filter(|n| !n.internal)
                .all(|n| n.end_time.is_some())
        );
    }
}
