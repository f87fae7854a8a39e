//! The ssh executor with persistent workers (`reuse_workers = true`) against the stock-limits
//! OpenSSH server of `scripts/sshd-up.sh`: the executor conformance suite (results, streams,
//! failures and crashes, retries, a time limit and cancellation stopping the worker, parallel
//! tasks, hooks, large outputs), and what is particular to reuse: a few workers serve many
//! tasks, and a worker killed mid-task fails only that task, as a lost worker.

covalent_test_support::isolated_home!();

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

use covalent::Config;
use covalent::executor::{ExecutorRef, JobHandle};
use covalent::prelude::*;
use covalent_ssh::SshExecutor;

static SERVER: LazyLock<Result<HashMap<String, String>, String>> =
    LazyLock::new(covalent_test_support::sshd_env);

fn executor(s: &HashMap<String, String>) -> SshExecutor {
    let mut e = SshExecutor::new(&s["COVALENT_SSH_HOST"])
        .with_port(s["COVALENT_SSH_PORT"].parse().unwrap())
        .with_username(&s["COVALENT_SSH_USER"])
        .with_key_file(&s["COVALENT_SSH_KEY"])
        .with_known_hosts(&s["COVALENT_SSH_KNOWN_HOSTS"]);
    e.reuse_workers = true;
    e
}

static REUSE: LazyLock<ExecutorRef> =
    LazyLock::new(|| ExecutorRef::new(executor(SERVER.as_ref().expect("checked before use"))));

/// Workers of their own (another environment), which the crash tests do not replace.
static MANY: LazyLock<ExecutorRef> = LazyLock::new(|| {
    let mut e = executor(SERVER.as_ref().expect("checked before use"));
    e.env.insert("COVALENT_TEST_POOL".into(), "many".into());
    ExecutorRef::new(e)
});

fn no_record() -> Config {
    Config::parse(
        "[sdk]\nrecord = false\nprogress = false\n",
        Path::new("t.toml"),
    )
    .unwrap()
}

fn ssh_home() -> String {
    SERVER.as_ref().expect("checked before use")["COVALENT_SSH_HOME"].clone()
}

/// The worker a handle names is gone (the server is on this machine).
fn worker_stopped(job: &JobHandle) -> Result<(), String> {
    let pid = job.0["worker"]
        .as_i64()
        .ok_or("no worker in the job handle")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie_or_gone = stat
            .rsplit_once(')')
            .is_none_or(|(_, rest)| rest.split_whitespace().next() == Some("Z"));
        if zombie_or_gone {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("worker {pid} is alive"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

covalent_test_support::executor_conformance! {
    executor: &REUSE,
    name: "ssh",
    config: no_record(),
    engine: |_| SERVER.as_ref().map(|_| ()).map_err(|e| format!("no SSH server: {e}")),
    shared_dir: ssh_home(),
    shared_dir_in_task: ssh_home(),
    time_limit: "1s",
    stopped: worker_stopped,
    leftovers: |_| Vec::new(),
    // A time-out or cancel drops the run before it reads the worker's scratch streams.
    keeps_streams_of_stopped_tasks: false,
}

#[electron(executor = &MANY)]
fn echo_pid(i: u32) -> (u32, u32) {
    (i, std::process::id())
}

#[lattice]
fn many(n: u32) -> Vec<(u32, u32)> {
    (0..n).map(echo_pid).collect::<Vec<_>>()
}

#[test]
fn a_few_workers_serve_many_tasks() {
    if let Err(e) = &*SERVER {
        covalent_test_support::skip("ssh reuse", &format!("no SSH server: {e}"));
        return;
    }
    let r = covalent::dispatch_sync(many(200).with_config(no_record())).unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    let v = r.value().unwrap();
    assert_eq!(
        v.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        (0..200).collect::<Vec<_>>()
    );
    let pids: BTreeSet<u32> = v.iter().map(|(_, p)| *p).collect();
    // At most `max_sessions` − 2 = 6 workers at once for the host, each serving many tasks
    // (the other tests of this binary share the connection: a worker of theirs waiting for a
    // place makes an idle one of this pool go, and the pool starts another later; so a few
    // more than 6 over the whole run, never one per task).
    assert!(pids.len() <= 10, "{} workers: {pids:?}", pids.len());
    let per_worker = 200 / pids.len();
    assert!(per_worker >= 20, "{} workers for 200 tasks", pids.len());
    let failed: Vec<String> = r.nodes().filter_map(|n| n.error()).collect();
    assert_eq!(failed, Vec::<String>::new());
}

#[electron(executor = &REUSE)]
fn doomed(marker: String) -> u32 {
    std::fs::write(&marker, std::process::id().to_string()).unwrap();
    std::thread::sleep(Duration::from_secs(30));
    0
}

#[electron(executor = &REUSE)]
fn fine(x: u32) -> u32 {
    x + 1
}

#[lattice]
fn one_doomed(marker: String) -> (u32, u32) {
    (doomed(marker), fine(1))
}

#[test]
fn a_worker_killed_mid_task_fails_only_that_task() {
    if let Err(e) = &*SERVER {
        covalent_test_support::skip("ssh reuse", &format!("no SSH server: {e}"));
        return;
    }
    let marker = format!(
        "{}/doomed-{}",
        ssh_home(),
        covalent::Uuid::now_v7().simple()
    );
    let m = marker.clone();
    let killer = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(pid) = std::fs::read_to_string(&m)
                && let Ok(pid) = pid.trim().parse::<u32>()
            {
                covalent_test_support::signal(pid, covalent_test_support::SIGKILL);
                return pid;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the task never started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let r = covalent::dispatch_sync(one_doomed(marker.clone()).with_config(no_record())).unwrap();
    let killed = killer.join().unwrap();
    let _ = std::fs::remove_file(&marker);
    let doomed = r.nodes().find(|n| n.name() == "doomed").unwrap();
    assert_eq!(doomed.status(), Status::Failed);
    assert_eq!(
        doomed.error_kind(),
        Some(covalent::ErrorKind::WorkerLost),
        "{:?}",
        doomed.error()
    );
    let e = doomed.error().unwrap();
    assert!(e.contains(&format!("pid {killed}")), "{e}");
    assert!(e.contains("killed by signal 9"), "{e}");
    let fine = r.nodes().find(|n| n.name() == "fine").unwrap();
    assert_eq!(fine.output_as::<u32>(), Some(2));
}

/// The same host and options, a remote process per task.
static PER_TASK: LazyLock<ExecutorRef> = LazyLock::new(|| {
    let mut e = executor(SERVER.as_ref().expect("checked before use"));
    e.reuse_workers = false;
    e.env.insert("COVALENT_TEST_POOL".into(), "crowded".into());
    ExecutorRef::new(e)
});

/// Workers of their own that stay idle after their dispatch.
static CROWD: LazyLock<ExecutorRef> = LazyLock::new(|| {
    let mut e = executor(SERVER.as_ref().expect("checked before use"));
    e.env.insert("COVALENT_TEST_POOL".into(), "crowd".into());
    ExecutorRef::new(e)
});

#[electron(executor = &CROWD)]
fn crowd(i: u32) -> u32 {
    std::thread::sleep(Duration::from_millis(100));
    i
}

#[lattice]
fn crowds(n: u32) -> Vec<u32> {
    (0..n).map(crowd).collect::<Vec<_>>()
}

#[electron(executor = &PER_TASK)]
fn after_the_crowd(i: u32) -> u32 {
    i * 2
}

#[lattice]
fn afters(n: u32) -> Vec<u32> {
    (0..n).map(after_the_crowd).collect::<Vec<_>>()
}

#[test]
fn idle_workers_make_room_for_other_sessions_of_their_connection() {
    if let Err(e) = &*SERVER {
        covalent_test_support::skip("ssh reuse", &format!("no SSH server: {e}"));
        return;
    }
    // Enough tasks at once to start every worker the connection has room for; they stay idle.
    let r = covalent::dispatch_sync(crowds(24).with_config(no_record())).unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    // Tasks that each need a long-lived session of the same connection still get one.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(covalent::dispatch_sync(afters(3).with_config(no_record())));
    });
    let r = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the tasks waited for sessions the idle workers held")
        .unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    assert_eq!(r.value(), Some(&vec![0, 2, 4]));
}
