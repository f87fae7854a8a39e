//! The `process` executor and the worker protocol, with this test binary as the worker (so the
//! test harness itself is shown to work as a worker).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use covalent::executor::worker::{
    PROTOCOL, RESULT_ENV, ResultEnvelope, TASK_ENV, TaskEnvelope, WorkerErrorKind,
};
use covalent::prelude::*;

fn no_record() -> covalent::Config {
    covalent::Config::parse(
        "[sdk]\nrecord = false\nprogress = false\n",
        Path::new("t.toml"),
    )
    .unwrap()
}

#[electron(executor = "process")]
fn shout(word: String) -> String {
    println!("saying {word}");
    eprintln!("warning about {word}");
    word.to_uppercase()
}

#[electron(executor = "process")]
fn pid() -> u32 {
    std::process::id()
}

#[electron]
fn join(a: String, b: u32) -> String {
    format!("{a}/{b}")
}

#[lattice]
fn basic() -> (String, String) {
    let s = shout("hello".to_string());
    (s, join(shout("x".to_string()), pid()))
}

#[test]
fn tasks_run_in_child_processes_with_their_streams_captured() {
    let r = covalent::dispatch_sync(basic().with_config(no_record())).unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    let (s, joined) = r.value().unwrap();
    assert_eq!(s, "HELLO");
    let child_pid: u32 = joined.split('/').nth(1).unwrap().parse().unwrap();
    assert_ne!(child_pid, std::process::id(), "ran in another process");
    let node = r.nodes().find(|n| n.name() == "shout").unwrap();
    assert_eq!(node.executor().as_deref(), Some("process"));
    assert!(
        node.stdout().contains("saying"),
        "stdout: {:?}",
        node.stdout()
    );
    assert!(
        node.stderr().contains("warning about"),
        "stderr: {:?}",
        node.stderr()
    );
    assert!(node.job_handle().is_some());
}

#[electron(executor = "process")]
fn fails() -> Result<i64, String> {
    Err("no luck".to_string())
}

#[electron(executor = "process")]
fn panics() -> i64 {
    panic!("worker panic")
}

#[electron(executor = "process")]
fn aborts() -> i64 {
    eprintln!("about to abort");
    std::process::abort()
}

#[electron(executor = "process")]
fn exits() -> i64 {
    std::process::exit(3)
}

#[electron(executor = "process")]
fn segfaults() -> i64 {
    // SAFETY: not safe at all: the point is a real segmentation fault in the worker.
    unsafe { libc::raise(libc::SIGSEGV) };
    0
}

#[lattice]
fn failures() -> (i64, i64, i64, i64, i64) {
    (fails(), panics(), aborts(), exits(), segfaults())
}

#[test]
fn failures_and_crashes_fail_their_node_with_the_reason() {
    let r = covalent::dispatch_sync(failures().with_config(no_record())).unwrap();
    assert_eq!(r.status(), Status::Failed);
    let err = |name: &str| {
        r.nodes()
            .find(|n| n.name() == name)
            .unwrap()
            .error()
            .unwrap()
    };
    assert_eq!(err("fails"), "no luck");
    assert!(
        err("panics").contains("panicked: worker panic"),
        "{}",
        err("panics")
    );
    assert!(
        err("aborts").contains("killed by signal 6 (SIGABRT)"),
        "{}",
        err("aborts")
    );
    assert!(
        err("aborts").contains("about to abort"),
        "stderr is shown: {}",
        err("aborts")
    );
    assert!(
        err("exits").contains("exited with code 3"),
        "{}",
        err("exits")
    );
    assert!(
        err("segfaults").contains("signal 11 (SIGSEGV)"),
        "{}",
        err("segfaults")
    );
}

/// Live (not zombie) processes whose pid or process group is `id`.
fn live(id: i64, by_group: bool) -> Vec<i64> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i64>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (state, pgrp) = (fields[0], fields[2].parse::<i64>().unwrap_or(0));
        let hit = if by_group { pgrp == id } else { pid == id };
        if hit && state != "Z" && state != "X" {
            out.push(pid);
        }
    }
    out
}

fn alive(pid: i64) -> bool {
    !live(pid, false).is_empty()
}

fn pid_of(node: &covalent::NodeResult<'_>) -> i64 {
    node.job_handle().unwrap().0["pid"].as_i64().unwrap()
}

#[electron(executor = "process", time_limit = "300ms")]
fn too_slow() -> i64 {
    std::thread::sleep(Duration::from_secs(30));
    1
}

#[lattice]
fn timed() -> i64 {
    too_slow()
}

#[test]
fn a_time_limit_kills_the_child() {
    let start = Instant::now();
    let r = covalent::dispatch_sync(timed().with_config(no_record())).unwrap();
    assert!(start.elapsed() < Duration::from_secs(20));
    let node = r.node(0).unwrap();
    assert_eq!(node.status(), Status::Failed);
    assert!(node.error().unwrap().contains("timed out after 300ms"));
    std::thread::sleep(Duration::from_millis(100));
    assert!(!alive(pid_of(&node)), "the worker was killed");
}

#[electron(executor = "process")]
fn sleeps_with_a_child() -> i64 {
    // A grandchild in the same process group must go too.
    let _ = std::process::Command::new("sleep").arg("30").spawn();
    std::thread::sleep(Duration::from_secs(30));
    1
}

#[lattice]
fn cancellable() -> i64 {
    sleeps_with_a_child()
}

#[covalent::test]
async fn cancelling_kills_the_process_group() {
    let d = covalent::dispatch(cancellable().with_config(no_record()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    d.cancel();
    let r = d.wait().await.unwrap();
    assert_eq!(r.status(), Status::Cancelled);
    let node = r.node(0).unwrap();
    assert_eq!(node.status(), Status::Cancelled);
    let pgid = pid_of(&node);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        live(pgid, true),
        Vec::<i64>::new(),
        "no process of the task's group is left"
    );
}

fn marker(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("covalent-test-{}-{name}", std::process::id()))
}

#[electron(executor = "process", retries = 1)]
fn crashes_once(flag: String) -> i64 {
    let flag = PathBuf::from(flag);
    if !flag.exists() {
        std::fs::write(&flag, "crashed").unwrap();
        std::process::abort();
    }
    7
}

#[lattice]
fn retried(flag: String) -> i64 {
    crashes_once(flag)
}

#[test]
fn a_worker_crash_is_retried() {
    let flag = marker("crash-once");
    let _ = std::fs::remove_file(&flag);
    let r = covalent::dispatch_sync(retried(flag.display().to_string()).with_config(no_record()))
        .unwrap();
    let _ = std::fs::remove_file(&flag);
    assert_eq!(r.value(), Some(&7), "{r}");
    let attempts = r.node(0).unwrap().attempts();
    assert_eq!(attempts.len(), 2);
    assert!(
        attempts[0]
            .error
            .as_ref()
            .unwrap()
            .message()
            .contains("SIGABRT")
    );
    assert_eq!(
        attempts[0].error.as_ref().unwrap().kind(),
        covalent::ErrorKind::WorkerLost
    );
}

/// Waits until the other task has started too: only finishes if both run at once.
#[electron(executor = "process")]
fn rendezvous(me: String, other: String) -> bool {
    std::fs::write(&me, "here").unwrap();
    let start = Instant::now();
    while !Path::new(&other).exists() {
        if start.elapsed() > Duration::from_secs(20) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

#[lattice]
fn pair(a: String, b: String) -> (bool, bool) {
    (rendezvous(a.clone(), b.clone()), rendezvous(b, a))
}

#[test]
fn two_tasks_run_in_parallel() {
    let (a, b) = (marker("left"), marker("right"));
    let r = covalent::dispatch_sync(
        pair(a.display().to_string(), b.display().to_string()).with_config(no_record()),
    )
    .unwrap();
    let _ = (std::fs::remove_file(&a), std::fs::remove_file(&b));
    assert_eq!(r.value(), Some(&(true, true)));
}

fn touch_before() -> Result<(), String> {
    // Runs in the worker: name the file after the dispatching (parent) process.
    let path = std::env::temp_dir().join(format!(
        "covalent-test-{}-hook-before",
        std::os::unix::process::parent_id()
    ));
    std::fs::write(path, std::process::id().to_string()).map_err(|e| e.to_string())
}

#[electron(executor = "process", deps_bash = "test -n \"$HOME\"", call_before = touch_before)]
fn hooked() -> u32 {
    std::process::id()
}

#[electron(executor = "process", deps_bash = "echo cannot install >&2; false")]
fn broken() -> u32 {
    0
}

#[lattice]
fn hooks() -> (u32, u32) {
    (hooked(), broken())
}

#[test]
fn hooks_run_in_the_worker() {
    let r = covalent::dispatch_sync(hooks().with_config(no_record())).unwrap();
    let worker_pid = r
        .nodes()
        .find(|n| n.name() == "hooked")
        .unwrap()
        .output_as::<u32>();
    let hook_pid: u32 = std::fs::read_to_string(marker("hook-before"))
        .unwrap()
        .parse()
        .unwrap();
    let _ = std::fs::remove_file(marker("hook-before"));
    assert_eq!(
        worker_pid,
        Some(hook_pid),
        "call_before ran in the worker process"
    );
    let e = r
        .nodes()
        .find(|n| n.name() == "broken")
        .unwrap()
        .error()
        .unwrap();
    assert!(
        e.contains("deps_bash") && e.contains("cannot install"),
        "{e}"
    );
}

/// Runs this test binary as a worker on a hand-made envelope.
fn run_worker(env: &TaskEnvelope) -> ResultEnvelope {
    let dir = tempfile::tempdir().unwrap();
    let (task, result) = (dir.path().join("t.json"), dir.path().join("r.json"));
    env.write(&task).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .env(TASK_ENV, &task)
        .env(RESULT_ENV, &result)
        .status()
        .unwrap();
    assert!(status.success());
    ResultEnvelope::read(&result).unwrap()
}

fn envelope_for_shout() -> TaskEnvelope {
    let def = shout::electron();
    TaskEnvelope {
        protocol: PROTOCOL,
        covalent: "test".into(),
        electron: def.path.into(),
        digest: def.digest.into(),
        inputs: vec![serde_json::json!("abc")],
        dispatch_id: "d".into(),
        node_id: 0,
        attempt: 1,
        deps_bash: vec![],
        hooks: vec![],
    }
}

#[test]
fn the_test_harness_is_a_worker_and_checks_the_build() {
    let ok = run_worker(&envelope_for_shout());
    assert_eq!(ok.output, Some(serde_json::json!("ABC")));

    let other_build = TaskEnvelope {
        digest: "0123456789abcdef".into(),
        ..envelope_for_shout()
    };
    let r = run_worker(&other_build);
    assert_eq!(r.error_kind, Some(WorkerErrorKind::Build));
    assert!(
        r.error
            .unwrap()
            .contains("differs between the dispatching program and this worker binary")
    );

    let future = TaskEnvelope {
        protocol: PROTOCOL + 1,
        ..envelope_for_shout()
    };
    let r = run_worker(&future);
    assert_eq!(r.error_kind, Some(WorkerErrorKind::Protocol));
    assert!(r.error.unwrap().contains("protocol"));

    let unknown = TaskEnvelope {
        electron: "no::such::electron".into(),
        ..envelope_for_shout()
    };
    let r = run_worker(&unknown);
    assert_eq!(r.error_kind, Some(WorkerErrorKind::Build));
    assert!(
        r.error
            .unwrap()
            .contains("no electron `no::such::electron`")
    );

    let bad_input = TaskEnvelope {
        inputs: vec![serde_json::json!(42)],
        ..envelope_for_shout()
    };
    let r = run_worker(&bad_input);
    assert_eq!(r.error_kind, Some(WorkerErrorKind::Input));
}
