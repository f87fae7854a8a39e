//! The `process` executor with reusable workers (`reuse_workers = true`), this test binary
//! serving as the worker: the executor conformance suite (results and streams, failures and
//! crashes, retries, a time limit and cancellation killing the task's process group, parallel
//! tasks, hooks, large outputs), and what is particular to reuse: one process serves task
//! after task with each task's own streams, state left by a task is there for the next (the
//! documented trade-off), and a worker that crashed or was stopped is replaced.

covalent_test_support::isolated_home!();

use std::path::Path;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};

use covalent::executor::{ExecutorRef, ProcessExecutor};
use covalent::prelude::*;

fn no_record() -> covalent::Config {
    covalent::Config::parse(
        "[sdk]\nrecord = false\nprogress = false\n",
        Path::new("t.toml"),
    )
    .unwrap()
}

static REUSE: LazyLock<ExecutorRef> =
    LazyLock::new(|| ExecutorRef::new(ProcessExecutor::new().reusing_workers()));

/// One worker at most: tasks follow each other in the same process unless it is replaced.
static ONE: LazyLock<ExecutorRef> = LazyLock::new(|| {
    let mut one = ProcessExecutor::new().reusing_workers();
    one.max_concurrency = Some(1);
    one.env.insert("COVALENT_TEST_POOL".into(), "one".into());
    ExecutorRef::new(one)
});

use covalent_test_support::live_in_group;

fn group_stopped(job: &covalent::executor::JobHandle) -> Result<(), String> {
    let pgid = job.0["pid"].as_i64().ok_or("no pid in the job handle")?;
    match live_in_group(pgid) {
        live if live.is_empty() => Ok(()),
        live => Err(format!("processes {live:?} of group {pgid} are alive")),
    }
}

covalent_test_support::executor_conformance! {
    executor: &REUSE,
    name: "process",
    config: no_record(),
    engine: |_| Ok(()),
    shared_dir: std::env::temp_dir(),
    shared_dir_in_task: std::env::temp_dir(),
    time_limit: "1s",
    stopped: group_stopped,
    leftovers: |_| Vec::new(),
    // A time-out or cancel drops the run before it reads the streams.
    keeps_streams_of_stopped_tasks: false,
}

/// Counts the tasks this process has run (a static: it survives between tasks of a worker).
static SERVED: AtomicU32 = AtomicU32::new(0);

#[electron(executor = &ONE)]
fn whoami(tag: u32) -> (u32, u32, u32) {
    println!("task {tag} says hello");
    eprintln!("task {tag} warns");
    (
        std::process::id(),
        SERVED.fetch_add(1, Ordering::SeqCst) + 1,
        tag,
    )
}

#[electron(executor = &ONE)]
fn crash_now() -> u32 {
    eprintln!("about to abort");
    std::process::abort()
}

#[lattice]
fn three() -> Vec<(u32, u32, u32)> {
    vec![whoami(1), whoami(2), whoami(3)]
}

#[lattice]
fn crash() -> u32 {
    crash_now()
}

#[test]
fn one_worker_serves_task_after_task_with_each_tasks_own_streams() {
    let r = covalent::dispatch_sync(three().with_config(no_record())).unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    let v = r.value().unwrap();
    let pids: std::collections::BTreeSet<u32> = v.iter().map(|t| t.0).collect();
    assert_eq!(pids.len(), 1, "one process served all three: {v:?}");
    assert_ne!(v[0].0, std::process::id());
    let mut counts: Vec<u32> = v.iter().map(|t| t.1).collect();
    counts.sort();
    assert_eq!(
        counts.windows(2).filter(|w| w[1] == w[0] + 1).count(),
        2,
        "the static counted up across tasks (state survives between tasks): {v:?}"
    );
    for n in r.nodes().filter(|n| n.name() == "whoami") {
        let tag = n.output_as::<(u32, u32, u32)>().unwrap().2;
        assert_eq!(n.stdout(), format!("task {tag} says hello\n"));
        assert_eq!(n.stderr(), format!("task {tag} warns\n"));
    }

    // The next dispatch takes the same worker.
    let again = covalent::dispatch_sync(three().with_config(no_record())).unwrap();
    assert_eq!(again.value().unwrap()[0].0, v[0].0, "the worker was kept");

    // One killed from outside while idle is not handed a task: the next gets a new worker.
    covalent_test_support::signal(v[0].0, covalent_test_support::SIGKILL);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let fresh = covalent::dispatch_sync(three().with_config(no_record())).unwrap();
    assert_eq!(fresh.status(), Status::Completed, "{fresh}");
    let replaced = fresh.value().unwrap()[0].0;
    assert_ne!(replaced, v[0].0, "a new worker");
    let v: Vec<(u32, u32, u32)> = fresh.value().unwrap().clone();

    // A crash fails only its task, as a lost worker, with the end of its stderr; the next
    // task gets a new worker.
    let c = covalent::dispatch_sync(crash().with_config(no_record())).unwrap();
    let n = c.nodes().find(|n| n.name() == "crash_now").unwrap();
    let e = n.node_error().unwrap();
    assert_eq!(e.kind(), covalent::ErrorKind::WorkerLost, "{e:?}");
    assert!(
        e.message().contains("SIGABRT") && e.message().contains("about to abort"),
        "{}",
        e.message()
    );
    assert!(
        live_in_group(i64::from(v[0].0)).is_empty(),
        "the crashed worker is gone"
    );
    let after = covalent::dispatch_sync(three().with_config(no_record())).unwrap();
    let pid = after.value().unwrap()[0].0;
    assert_ne!(pid, v[0].0, "a new worker");
    assert_eq!(
        after.value().unwrap().iter().map(|t| t.1).min(),
        Some(1),
        "a fresh process: its static starts over"
    );
}

/// A serving worker started without a stream file (as a Slurm step is) sends each task's
/// stdout and stderr back inside its reply, and its own stderr stays its own between tasks.
#[test]
fn a_worker_without_stream_files_sends_the_streams_in_its_replies() {
    use covalent::executor::worker::{
        PROTOCOL, SERVE_ENV, ServeHello, ServeReply, ServeRequest, TaskEnvelope,
    };
    use std::io::{BufRead, Write};
    let def = whoami::electron();
    let request = |tag: u32| ServeRequest {
        task: TaskEnvelope {
            protocol: PROTOCOL,
            covalent: "test".into(),
            electron: def.path.into(),
            digest: def.digest.into(),
            inputs: vec![serde_json::json!(tag)],
            dispatch_id: "d".into(),
            node_id: 0,
            attempt: 1,
            deps_bash: vec![],
            hooks: vec![],
            build: None,
            files: Default::default(),
            assigned: None,
        },
        dir: std::env::temp_dir(),
    };
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env(SERVE_ENV, "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut to = child.stdin.take().unwrap();
    let mut from = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut hello = String::new();
    from.read_line(&mut hello).unwrap();
    let hello: ServeHello = serde_json::from_str(&hello).unwrap();
    assert_eq!((hello.protocol, hello.pid), (PROTOCOL, child.id()));
    assert_eq!(hello.slurm_job, None);
    for tag in [7, 8] {
        writeln!(to, "{}", serde_json::to_string(&request(tag)).unwrap()).unwrap();
        let mut line = String::new();
        from.read_line(&mut line).unwrap();
        let reply: ServeReply = serde_json::from_str(&line).unwrap();
        let (pid, _, got) =
            serde_json::from_value::<(u32, u32, u32)>(reply.result.output.unwrap()).unwrap();
        assert_eq!((pid, got), (child.id(), tag));
        assert_eq!(
            reply.streams,
            Some((
                format!("task {tag} says hello\n"),
                format!("task {tag} warns\n")
            ))
        );
    }
    drop(to);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("warns"),
        "the tasks' stderr went into the replies, not the worker's own"
    );
}
