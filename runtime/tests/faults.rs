//! The fault suite: faults produced for real, not mocked. Each case checks that no record is lost
//! or garbled (a COMPLETED node's stored value is the value that ran), that nothing runs twice
//! that was recorded as done, and that nothing is left running.
//!
//! - kill -9 of a dispatching process at many points (before its first node, mid-chain, while
//!   the store is written), then read-back and resume;
//! - many processes creating and writing one store at once;
//! - a store file truncated, or replaced by another file, under a process that reads it;
//! - a worker process killed mid-task (and retried), and a dispatcher killed under one (the
//!   worker and the task's own children end with it);
//! - awkward values through `local`, `process` and the store: the value read back equals the
//!   value produced, or the node failed with the serialization kind before any dependant ran.
//!
//! The dispatching processes are this test binary, re-run with `FAULTS_ROLE` set (the ignored
//! test `role` does what the variable says).

covalent_test_support::isolated_home!();

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use covalent::prelude::*;
use covalent::store::{ListFilter, Store};
use covalent::{ErrorKind, Status};
use serde::{Deserialize, Serialize};

// ---- the child processes --------------------------------------------------------------------

const CHAIN: u64 = 30;

fn config_for(home: &Path) -> covalent::Config {
    covalent::Config::parse(
        &format!(
            "[sdk]\nprogress = false\ndata_dir = {:?}\n",
            home.to_str().unwrap()
        ),
        Path::new("covalent.toml"),
    )
    .unwrap()
}

/// One chain step: appends its input to the run log (one `write` on an `O_APPEND` file, so
/// lines of concurrent processes never mix), sleeps, returns the next number.
#[electron]
fn step(x: u64) -> u64 {
    let log = std::env::var("FAULTS_LOG").expect("FAULTS_LOG");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
        .unwrap();
    f.write_all(format!("{x}\n").as_bytes()).unwrap();
    let ms = std::env::var("FAULTS_STEP_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    std::thread::sleep(Duration::from_millis(ms));
    x + 1
}

#[lattice]
fn chain() -> u64 {
    let mut v = step(0);
    for _ in 1..CHAIN {
        v = step(v);
    }
    v
}

#[electron]
fn square(x: u64) -> u64 {
    x * x
}

#[lattice]
fn small(x: u64) -> u64 {
    square(x)
}

/// A task in a child process that starts a grandchild, records both pids, then waits.
#[electron(executor = "process")]
fn long_elsewhere(dir: String) -> u32 {
    long_elsewhere_body(&dir)
}

#[lattice]
fn long_flow(dir: String) -> u32 {
    long_elsewhere(dir)
}

static REUSED: std::sync::LazyLock<covalent::executor::ExecutorRef> =
    std::sync::LazyLock::new(|| {
        covalent::executor::ExecutorRef::new(
            covalent::executor::ProcessExecutor::new().reusing_workers(),
        )
    });

/// [`long_elsewhere`] on a reusable worker (after a first task, so the worker is one that has
/// served before).
#[electron(executor = &REUSED)]
fn long_reused(dir: String, after: u32) -> u32 {
    long_elsewhere_body(&dir) + after
}

#[electron(executor = &REUSED)]
fn first_on_reused() -> u32 {
    0
}

fn long_elsewhere_body(dir: &str) -> u32 {
    let mut grandchild = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    std::fs::write(
        Path::new(dir).join("pids.tmp"),
        format!("{} {}", std::process::id(), grandchild.id()),
    )
    .unwrap();
    std::fs::rename(Path::new(dir).join("pids.tmp"), Path::new(dir).join("pids")).unwrap();
    let _ = grandchild.wait();
    1
}

#[lattice]
fn long_reused_flow(dir: String) -> u32 {
    long_reused(dir, first_on_reused())
}

/// What a child process does (`FAULTS_ROLE`): `chain` dispatches the chain (resuming
/// `FAULTS_REUSE` if set) and prints the dispatch id first; `writer` records `FAULTS_N` small
/// dispatches and checks each value.
#[test]
#[ignore = "run by the other tests as a child process"]
fn role() {
    let Ok(role) = std::env::var("FAULTS_ROLE") else {
        return;
    };
    let home = PathBuf::from(std::env::var("FAULTS_HOME").unwrap());
    let cfg = config_for(&home);
    match role.as_str() {
        "chain" => {
            let mut l = chain().with_config(cfg);
            if let Ok(prev) = std::env::var("FAULTS_REUSE") {
                l = l.reuse(prev.parse().unwrap());
            }
            let r = covalent::dispatch_sync(l).unwrap();
            println!("done {} {:?} {:?}", r.dispatch_id(), r.status(), r.value());
        }
        "writer" => {
            let n: u64 = std::env::var("FAULTS_N").unwrap().parse().unwrap();
            let cfg = std::sync::Arc::new(cfg);
            for i in 0..n {
                let r = covalent::dispatch_sync(small(i).with_config(cfg.clone())).unwrap();
                assert_eq!(r.value(), Some(&(i * i)));
                println!("recorded {} {i}", r.dispatch_id());
            }
        }
        "long" => {
            let dir = home.to_str().unwrap().to_string();
            let r = covalent::dispatch_sync(long_flow(dir).with_config(cfg)).unwrap();
            println!("done {:?}", r.status());
        }
        "long-reused" => {
            let dir = home.to_str().unwrap().to_string();
            let r = covalent::dispatch_sync(long_reused_flow(dir).with_config(cfg)).unwrap();
            println!("done {:?}", r.status());
        }
        other => panic!("unknown role {other}"),
    }
}

fn spawn_role(role: &str, home: &Path, envs: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["role", "--exact", "--ignored", "--nocapture", "--quiet"])
        .env("FAULTS_ROLE", role)
        .env("FAULTS_HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

fn kill9(child: &mut Child) {
    // SAFETY: a plain kill(2) of our own child, which we then reap.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
}

fn executions(log: &Path) -> Vec<u64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| l.parse().expect("whole lines in the run log"))
        .collect()
}

/// The chain's record is consistent: step nodes COMPLETED form a prefix whose values are
/// 1, 2, ... (each the value that ran: its input was logged), nothing after the prefix is
/// COMPLETED, and no node is left RUNNING. Returns the values the record says are done.
fn check_chain_record(store: &Store, id: covalent::Uuid, ran: &[u64]) -> Vec<u64> {
    let rec = store.get(id).unwrap();
    assert_ne!(
        rec.status,
        Status::Running,
        "a dead dispatcher's record says RUNNING"
    );
    let mut steps: Vec<_> = rec.nodes.iter().filter(|n| n.name == "step").collect();
    steps.sort_by_key(|n| n.id);
    // Killed before the writer's first batch, the dispatch has no graph yet (and so nothing
    // done); otherwise it has all of it.
    assert!(
        steps.is_empty() || steps.len() as u64 == CHAIN,
        "{} step nodes",
        steps.len()
    );
    let mut done = Vec::new();
    let mut prefix = true;
    for (k, n) in steps.iter().enumerate() {
        assert_ne!(n.status, Status::Running, "node {} left RUNNING", n.id);
        if n.status == Status::Completed {
            assert!(prefix, "node {} COMPLETED after an unfinished one", n.id);
            let v = n.output.as_ref().and_then(|o| o.as_u64());
            assert_eq!(v, Some(k as u64 + 1), "node {} stored {:?}", n.id, n.output);
            assert!(
                ran.contains(&(k as u64)),
                "node {} COMPLETED but never ran",
                n.id
            );
            done.push(k as u64);
            // An interrupted dispatch ends no earlier than the nodes it finished.
            if let (Some(end), Some(node_end)) = (rec.end_time, n.end_time) {
                assert!(
                    end >= node_end,
                    "dispatch ended {end}, node {} {node_end}",
                    n.id
                );
            }
        } else {
            prefix = false;
            // A node cut off by the kill ends with its dispatch: its runtime is what it ran.
            if let (Status::Interrupted, Some(start)) = (n.status, n.start_time) {
                let end = n
                    .end_time
                    .expect("an interrupted node that started has an end");
                assert!(end >= start, "node {} ends before it starts", n.id);
                assert_eq!(Some(end.max(start)), rec.end_time.map(|e| e.max(start)));
            }
        }
    }
    done
}

#[test]
fn kill_9_of_a_dispatcher_at_any_point_loses_nothing_and_resume_runs_nothing_twice() {
    // Kill points from "before the store exists" to "near the end", and a few that land on
    // the writer's 25 ms batches; each in its own home.
    let points_ms = [0u64, 3, 15, 40, 80, 120, 170, 230, 290];
    let mut interrupted = 0;
    for (round, &at) in points_ms.iter().enumerate() {
        let home = tempfile::tempdir().unwrap();
        let log = home.path().join("ran.log");
        let envs = [("FAULTS_LOG", log.to_str().unwrap().to_string())];
        let mut child = spawn_role("chain", home.path(), &envs);
        std::thread::sleep(Duration::from_millis(at));
        kill9(&mut child);
        let ran = executions(&log);

        let store_path = home.path().join("covalent.db");
        let first = if store_path.exists() {
            let store = Store::open(&store_path)
                .unwrap_or_else(|e| panic!("round {round}: the store does not open: {e}"));
            let list = store.list(&ListFilter::default()).unwrap();
            assert!(list.len() <= 1, "{list:?}");
            list.first().map(|d| {
                if d.status == Status::Interrupted {
                    interrupted += 1;
                }
                (d.id, check_chain_record(&store, d.id, &ran))
            })
        } else {
            None
        };

        // Resume (or start over when nothing was recorded yet).
        let mut envs = envs.to_vec();
        if let Some((id, _)) = &first {
            envs.push(("FAULTS_REUSE", id.to_string()));
        }
        let out = spawn_role("chain", home.path(), &envs)
            .wait_with_output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(&format!("Completed Some({CHAIN})")),
            "round {round}: resume failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let all = executions(&log);
        if let Some((_, done)) = &first {
            for x in done {
                let n = all.iter().filter(|&&y| y == *x).count();
                assert_eq!(
                    n, 1,
                    "round {round}: step {x} was recorded done, ran {n} times"
                );
            }
        }
        // Every step ran at least once, and at most twice (once more only if killed mid-run).
        for x in 0..CHAIN {
            let n = all.iter().filter(|&&y| y == x).count();
            assert!(
                (1..=2).contains(&n),
                "round {round}: step {x} ran {n} times"
            );
        }
    }
    assert!(
        interrupted >= 3,
        "only {interrupted} rounds caught the dispatch running"
    );
}

/// What a kill -9 can lose of a `dispatch_sync` dispatch, precisely: its row is written with
/// its first batch, a tick (25 ms) after it starts (a dispatch that ends sooner is written whole
/// by its caller, in one commit, before `dispatch_sync` returns; one whose task leaves the
/// process is written when its executor sets the first job handle, before the launch). So one killed in its first tick may be absent
/// from the store (its caller never saw its id); once it is there, a kill
/// leaves it INTERRUPTED with every step it recorded done, and nothing is lost after that.
#[test]
fn a_sync_dispatch_is_in_the_store_within_its_first_tick_and_survives_a_kill_from_then_on() {
    let home = tempfile::tempdir().unwrap();
    let log = home.path().join("ran.log");
    let envs = [
        ("FAULTS_LOG", log.to_str().unwrap().to_string()),
        ("FAULTS_STEP_MS", "200".to_string()),
    ];
    let mut child = spawn_role("chain", home.path(), &envs);
    let store_path = home.path().join("covalent.db");
    // It shows up while its first step (200 ms) still runs.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let id = loop {
        if store_path.exists()
            && let Ok(store) = Store::open(&store_path)
            && let Some(d) = store.list(&ListFilter::default()).unwrap().first()
        {
            break d.id;
        }
        assert!(std::time::Instant::now() < deadline, "never recorded");
        std::thread::sleep(Duration::from_millis(2));
    };
    let ran_when_seen = executions(&log);
    assert!(
        ran_when_seen.len() <= 1,
        "recorded only after {} steps ran",
        ran_when_seen.len()
    );
    // Let a few steps finish and be written, then kill it.
    std::thread::sleep(Duration::from_millis(700));
    kill9(&mut child);
    let ran = executions(&log);
    let store = Store::open(&store_path).unwrap();
    let record = store.get(id).unwrap();
    assert_eq!(record.status, Status::Interrupted, "{record}");
    let done = check_chain_record(&store, id, &ran);
    assert!(
        done.len() >= 2,
        "the steps done before the kill are recorded: {done:?} of {ran:?}"
    );
}

#[test]
fn kill_9_of_a_dispatcher_takes_its_process_tasks_and_their_children_with_it() {
    kill_9_of_a_dispatcher_running("long");
}

/// The same with reusable workers: the serving worker, its task's child and its directory go
/// with the dispatcher.
#[test]
fn kill_9_of_a_dispatcher_takes_its_reusable_workers_and_their_children_with_it() {
    kill_9_of_a_dispatcher_running("long-reused");
}

fn kill_9_of_a_dispatcher_running(role: &str) {
    let home = tempfile::tempdir().unwrap();
    let mut child = spawn_role(role, home.path(), &[]);
    let worker_dirs = || -> Vec<PathBuf> {
        let prefix = format!("covalent-worker-{}-", child.id());
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect()
    };
    let pids = home.path().join("pids");
    let t = Instant::now();
    let (worker, grandchild) = loop {
        if let Some((w, g)) = std::fs::read_to_string(&pids).ok().and_then(|s| {
            let (w, g) = s.split_once(' ')?;
            Some((w.parse::<i32>().ok()?, g.parse::<i32>().ok()?))
        }) {
            break (w, g);
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the task never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(alive(worker) && alive(grandchild));
    let dirs = worker_dirs();
    assert_eq!(dirs.is_empty(), role == "long", "worker dirs: {dirs:?}");
    kill9(&mut child);
    // The worker sees its dispatcher gone within its 50 ms check and takes its group along.
    let t = Instant::now();
    while (alive(worker) || alive(grandchild)) && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!alive(worker), "the worker outlived its dispatcher");
    assert!(
        !alive(grandchild),
        "the task's own child outlived its dispatcher"
    );
    let t = Instant::now();
    while dirs.iter().any(|d| d.exists()) && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!dirs.iter().any(|d| d.exists()), "left behind: {dirs:?}");
    // The record says what happened.
    let store = Store::open(&home.path().join("covalent.db")).unwrap();
    let d = store.list(&ListFilter::default()).unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].status, Status::Interrupted);
}

#[test]
fn many_processes_create_and_write_one_store_at_once() {
    let home = tempfile::tempdir().unwrap();
    let (procs, each) = (8, 12u64);
    let children: Vec<Child> = (0..procs)
        .map(|_| spawn_role("writer", home.path(), &[("FAULTS_N", each.to_string())]))
        .collect();
    let mut ids = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a writer failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((id, i)) = line
                .strip_prefix("recorded ")
                .and_then(|l| l.split_once(' '))
            {
                ids.push((
                    id.parse::<covalent::Uuid>().unwrap(),
                    i.parse::<u64>().unwrap(),
                ));
            }
        }
    }
    assert_eq!(ids.len() as u64, procs * each);
    let store = Store::open(&home.path().join("covalent.db")).unwrap();
    let list = store.list(&ListFilter::default()).unwrap();
    assert_eq!(list.len() as u64, procs * each);
    for (id, i) in ids {
        let rec = store.get(id).unwrap();
        assert_eq!(rec.status, Status::Completed);
        assert_eq!(rec.value::<u64>().unwrap(), Some(i * i), "{id}");
    }
}

/// The writer checkpoints every 256 commits while dispatches run; a process killed in the middle
/// of one (or of a commit) must leave a store that opens, passes SQLite's integrity check and
/// has every dispatch whose `dispatch_sync` had returned.
#[test]
fn a_writer_killed_at_any_point_of_its_checkpoints_leaves_every_returned_dispatch() {
    for (round, kill_after_ms) in [700u64, 1300, 2100].into_iter().enumerate() {
        let home = tempfile::tempdir().unwrap();
        let mut child = spawn_role("writer", home.path(), &[("FAULTS_N", "100000".into())]);
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        std::thread::sleep(Duration::from_millis(kill_after_ms));
        kill9(&mut child);
        let mut returned = Vec::new();
        let mut line = String::new();
        while std::io::BufRead::read_line(&mut stdout, &mut line).unwrap_or(0) > 0 {
            if let Some((id, i)) = line
                .trim()
                .strip_prefix("recorded ")
                .and_then(|l| l.split_once(' '))
            {
                returned.push((
                    id.parse::<covalent::Uuid>().unwrap(),
                    i.parse::<u64>().unwrap(),
                ));
            }
            line.clear();
        }
        assert!(
            returned.len() > 256,
            "round {round}: only {} dispatches before the kill: no checkpoint was crossed",
            returned.len()
        );
        let path = home.path().join("covalent.db");
        let check: String = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "round {round}");
        let store = Store::open(&path).unwrap();
        for (id, i) in &returned {
            let rec = store
                .get(*id)
                .unwrap_or_else(|e| panic!("round {round}: dispatch {i} lost: {e}"));
            assert_eq!(rec.status, Status::Completed, "round {round}");
            assert_eq!(rec.value::<u64>().unwrap(), Some(i * i));
        }
    }
}

#[test]
fn a_store_truncated_or_replaced_under_a_reader_gives_errors_not_garbage() {
    let home = tempfile::tempdir().unwrap();
    let out = spawn_role("writer", home.path(), &[("FAULTS_N", "20".into())])
        .wait_with_output()
        .unwrap();
    assert!(out.status.success());
    let path = home.path().join("covalent.db");
    let reader = Store::open(&path).unwrap();
    let before = reader.list(&ListFilter::default()).unwrap();
    assert_eq!(before.len(), 20);

    // Truncated under the open reader: every read is either the old, correct data or an error
    // that names the problem; never wrong values, never a panic.
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 3)
        .unwrap();
    for d in &before {
        match reader.get(d.id) {
            Ok(rec) => {
                let i = rec.inputs[0].1.as_u64().unwrap();
                assert_eq!(rec.value::<u64>().unwrap(), Some(i * i));
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("covalent.db") || msg.contains("malformed"),
                    "an unclear error: {msg}"
                );
            }
        }
    }
    // A new process opening the damaged file is refused with a message that says what to do.
    drop(reader);
    match Store::open(&path).and_then(|s| s.list(&ListFilter::default())) {
        Ok(list) => assert!(list.len() <= 20),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(path.to_str().unwrap()), "{msg}");
        }
    }

    // Replaced by a file of another application: refused with today's message.
    let foreign = home.path().join("other.db");
    {
        let c = rusqlite::Connection::open(&foreign).unwrap();
        c.execute_batch("CREATE TABLE notes (t TEXT); INSERT INTO notes VALUES ('mine');")
            .unwrap();
    }
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
    std::fs::rename(&foreign, &path).unwrap();
    let e = Store::open(&path).expect_err("a foreign file is refused");
    assert!(e.to_string().contains("another application"), "{e}");
    // ... and it is left as it was.
    let c = rusqlite::Connection::open(&path).unwrap();
    let t: String = c
        .query_row("SELECT t FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(t, "mine");
}

// ---- a worker killed mid-task -------------------------------------------------------------

/// Writes its pid, then waits (attempt 1) so the test can kill it; returns at once after.
#[electron(executor = "process", retries = 1)]
fn victim(marker: String) -> u32 {
    let first = !Path::new(&marker).exists();
    std::fs::write(&marker, std::process::id().to_string()).unwrap();
    if first {
        std::thread::sleep(Duration::from_secs(30));
    }
    5
}

#[lattice]
fn victim_flow(marker: String) -> u32 {
    victim(marker)
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| !r.trim_start().starts_with('Z'))
                .unwrap_or(false)
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_task_fails_its_attempt_as_lost_and_the_retry_succeeds() {
    let home = tempfile::tempdir().unwrap();
    let marker = home.path().join("pid");
    let d = covalent::dispatch(
        victim_flow(marker.to_str().unwrap().to_string()).with_config(config_for(home.path())),
    )
    .await
    .unwrap();
    let t = Instant::now();
    let pid = loop {
        if let Some(pid) = std::fs::read_to_string(&marker)
            .ok()
            .and_then(|s| s.parse::<i32>().ok())
        {
            break pid;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the worker never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // SAFETY: kill(2) of the worker the process executor started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let r = d.wait().await.unwrap();
    assert_eq!(r.status(), Status::Completed, "{:?}", r.error());
    assert_eq!(r.value(), Some(&5));
    let n = r.nodes().find(|n| n.name() == "victim").unwrap();
    let a = n.attempts();
    assert_eq!(a.len(), 2, "{a:?}");
    let lost = a[0].error.as_ref().unwrap();
    assert_eq!(lost.kind(), ErrorKind::WorkerLost, "{lost}");
    assert!(lost.message().contains("SIGKILL"), "{lost}");
    assert!(!alive(pid));
    // The store says the same.
    let rec = Store::open(&home.path().join("covalent.db"))
        .unwrap()
        .get(r.dispatch_id())
        .unwrap();
    let node = rec.nodes.iter().find(|n| n.name == "victim").unwrap();
    assert_eq!(node.attempts.len(), 2);
    assert_eq!(node.output.as_ref().and_then(|o| o.as_u64()), Some(5));
}

// ---- awkward values -------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Unit;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Shape {
    Dot,
    Circle { r: f64 },
    Pair(Box<Shape>, Option<Box<Shape>>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Awkward {
    neg_zero: f64,
    tiny: f64,
    sum: f64,
    single: f32,
    max: u64,
    min: i64,
    wide: i128,
    unit: Unit,
    shape: Shape,
    keys: BTreeMap<i32, bool>,
    text: String,
}

fn awkward() -> Awkward {
    Awkward {
        neg_zero: -0.0,
        tiny: f64::MIN_POSITIVE,
        sum: 0.1 + 0.2,
        single: 1.1,
        max: u64::MAX,
        min: i64::MIN,
        wide: i128::from(i64::MIN),
        unit: Unit,
        shape: Shape::Pair(
            Box::new(Shape::Circle { r: 1e-300 }),
            Some(Box::new(Shape::Dot)),
        ),
        keys: [(-1, true), (7, false)].into(),
        text: "ñ✓\u{0}\"\\".repeat(200_000),
    }
}

#[electron]
fn make_awkward() -> Awkward {
    awkward()
}

#[electron(executor = "process")]
fn echo_elsewhere(a: Awkward) -> Awkward {
    a
}

#[electron]
fn same_as_made(a: Awkward) -> bool {
    let want = awkward();
    a == want && a.neg_zero.is_sign_negative()
}

#[lattice]
fn awkward_flow() -> (Awkward, bool) {
    let a = make_awkward();
    let back = echo_elsewhere(a);
    (back, same_as_made(back))
}

#[test]
fn awkward_values_round_trip_through_process_and_store_exactly() {
    let home = tempfile::tempdir().unwrap();
    let r = covalent::dispatch_sync(awkward_flow().with_config(config_for(home.path()))).unwrap();
    assert_eq!(r.status(), Status::Completed, "{:?}", r.error());
    let (back, same) = r.value().unwrap().clone();
    assert!(same, "the value that came back from the worker differs");
    assert_eq!(back, awkward());
    let rec = Store::open(&home.path().join("covalent.db"))
        .unwrap()
        .get(r.dispatch_id())
        .unwrap();
    let (stored, same): (Awkward, bool) = rec.value().unwrap().unwrap();
    assert!(same);
    assert_eq!(stored, awkward());
    assert!(stored.neg_zero.is_sign_negative());
    for n in rec.nodes.iter().filter(|n| !n.internal) {
        assert_eq!(n.status, Status::Completed, "{}", n.name);
    }
}

static INNOCENT_RAN: AtomicU32 = AtomicU32::new(0);

#[electron]
fn grid() -> HashMap<(i32, i32), i32> {
    [((0, 1), 2)].into()
}

#[electron(executor = "process")]
fn grid_elsewhere() -> HashMap<(i32, i32), i32> {
    [((0, 1), 2)].into()
}

#[electron]
fn nan_weights() -> Vec<f64> {
    vec![1.0, f64::NAN]
}

#[electron(executor = "process")]
fn inf_elsewhere() -> Vec<f64> {
    vec![f64::INFINITY]
}

#[electron]
fn huge() -> u128 {
    u128::MAX
}

#[electron]
fn innocent_grid(g: HashMap<(i32, i32), i32>) -> usize {
    INNOCENT_RAN.fetch_add(1, Ordering::SeqCst);
    g.len()
}

#[electron]
fn innocent_floats(v: Vec<f64>) -> usize {
    INNOCENT_RAN.fetch_add(1, Ordering::SeqCst);
    v.len()
}

#[electron]
fn innocent_huge(v: u128) -> bool {
    INNOCENT_RAN.fetch_add(1, Ordering::SeqCst);
    v > 0
}

#[lattice]
fn unfaithful_flow() -> (usize, usize, usize, usize, bool) {
    (
        innocent_grid(grid()),
        innocent_grid(grid_elsewhere()),
        innocent_floats(nan_weights()),
        innocent_floats(inf_elsewhere()),
        innocent_huge(huge()),
    )
}

#[test]
fn values_json_would_change_fail_their_node_before_any_dependant_runs() {
    let home = tempfile::tempdir().unwrap();
    let before = INNOCENT_RAN.load(Ordering::SeqCst);
    let r =
        covalent::dispatch_sync(unfaithful_flow().with_config(config_for(home.path()))).unwrap();
    assert_eq!(r.status(), Status::Failed);
    let expect = [
        ("grid", "a map key is a tuple"),
        ("grid_elsewhere", "a map key is a tuple"),
        ("nan_weights", "at `[1]`: NaN has no JSON form"),
        ("inf_elsewhere", "at `[0]`: infinity has no JSON form"),
        ("huge", "does not fit in 64 bits"),
    ];
    let rec = Store::open(&home.path().join("covalent.db"))
        .unwrap()
        .get(r.dispatch_id())
        .unwrap();
    for (name, what) in expect {
        let n = r.nodes().find(|n| n.name() == name).unwrap();
        assert_eq!(n.status(), Status::Failed, "{name}");
        assert_eq!(n.error_kind(), Some(ErrorKind::Serialization), "{name}");
        let msg = n.error().unwrap();
        assert!(msg.contains(&format!("`{name}`")), "{msg}");
        assert!(msg.contains(what), "{name}: {msg}");
        let stored = rec.nodes.iter().find(|s| s.name == name).unwrap();
        assert_eq!(stored.status, Status::Failed, "{name}");
        assert!(stored.output.is_none(), "{name}: {:?}", stored.output);
        assert_eq!(stored.error_kind, Some(ErrorKind::Serialization));
    }
    for n in r.nodes().filter(|n| n.name().starts_with("innocent")) {
        assert_eq!(n.status(), Status::NotRun, "{}", n.name());
    }
    assert_eq!(
        INNOCENT_RAN.load(Ordering::SeqCst),
        before,
        "a dependant ran"
    );
}

#[electron]
fn local_nan() -> f64 {
    f64::NAN
}

#[electron]
fn is_nan(x: f64) -> bool {
    x.is_nan()
}

#[electron(executor = "process")]
fn is_nan_elsewhere(x: f64) -> bool {
    x.is_nan()
}

#[lattice]
fn nan_in_memory() -> bool {
    is_nan(local_nan())
}

#[lattice]
fn nan_to_a_worker() -> bool {
    is_nan_elsewhere(local_nan())
}

#[lattice]
fn nan_input(x: f64) -> bool {
    is_nan(x)
}

#[test]
fn unrecorded_values_stay_exact_in_process_and_never_reach_a_worker_changed() {
    let home = tempfile::tempdir().unwrap();
    let cfg = std::sync::Arc::new(config_for(home.path()));
    // In memory (recording off), a NaN is a NaN.
    let r =
        covalent::dispatch_sync(nan_in_memory().with_config(cfg.clone()).record(false)).unwrap();
    assert_eq!(r.value(), Some(&true));
    // It cannot travel to a worker as JSON: the consumer fails, saying why, and does not run.
    let r =
        covalent::dispatch_sync(nan_to_a_worker().with_config(cfg.clone()).record(false)).unwrap();
    let n = r.nodes().find(|n| n.name() == "is_nan_elsewhere").unwrap();
    assert_eq!(n.status(), Status::Failed);
    assert_eq!(n.error_kind(), Some(ErrorKind::Serialization));
    let msg = n.error().unwrap();
    assert!(
        msg.contains("`is_nan_elsewhere` cannot run outside this process") && msg.contains("NaN"),
        "{msg}"
    );
    // A recorded dispatch refuses a lattice input it could not store, and records nothing.
    let Err(e) = covalent::dispatch_sync(nan_input(f64::NAN).with_config(cfg.clone())) else {
        panic!("a NaN input of a recorded dispatch is refused");
    };
    let msg = e.to_string();
    assert!(msg.contains("input `x`") && msg.contains("NaN"), "{msg}");
    assert!(msg.contains(".record(false)"), "{msg}");
    if home.path().join("covalent.db").exists() {
        let list = Store::open(&home.path().join("covalent.db"))
            .unwrap()
            .list(&ListFilter::default())
            .unwrap();
        assert!(list.iter().all(|d| d.lattice != "nan_input"), "{list:?}");
    }
    // Unrecorded, it runs.
    let r = covalent::dispatch_sync(nan_input(f64::NAN).with_config(cfg).record(false)).unwrap();
    assert_eq!(r.value(), Some(&true));
}

/// A program that recorded its dispatches and ended leaves no write-ahead log behind: it is
/// moved into the database and truncated at exit (the stores a process keeps open are never
/// closed, so SQLite's own clean-up at the last close never ran, and logs of tens of megabytes
/// stayed). The dispatches are all there.
#[test]
fn a_program_that_ends_leaves_its_dispatches_in_the_database_and_no_log() {
    let home = tempfile::tempdir().unwrap();
    let child = spawn_role("writer", home.path(), &[("FAULTS_N", "300".to_string())]);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wal = home.path().join("covalent.db-wal");
    let left = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(left, 0, "{} bytes of log left at exit", left);
    let store = Store::open(&home.path().join("covalent.db")).unwrap();
    assert_eq!(store.list(&ListFilter::default()).unwrap().len(), 300);
}
