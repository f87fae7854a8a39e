//! Helpers shared by the workspace's tests (a dev-dependency only), and the executor
//! conformance suite.
//!
//! Tests that need an engine (sshd, Slurm, podman) start it through `scripts/` when the machine
//! allows it; when it cannot be had they are skipped with a message on stderr, or fail when
//! `COVALENT_REQUIRE_ENGINES` is set (as CI sets it), so a missing engine never passes silently.
//!
//! # The executor conformance suite
//!
//! [`executor_conformance!`] runs the same scenarios against any out-of-process executor (one
//! that runs each task in a worker re-running the test binary, as `process`, `ssh`, `slurm` and
//! `container` do). Invoked once in a test file, it expands there to the suite's electrons,
//! lattices and `#[test]` functions, in a module `conformance` (`cargo test conformance` runs
//! them). The electrons must live in the test binary, since that binary is the worker. Every
//! scenario checks the failure's `covalent::ErrorKind` where there is one,
//! and at its end that the executor left nothing of the dispatch behind:
//!
//! | test | checks |
//! |---|---|
//! | `tasks_run_elsewhere_with_their_streams_captured` | values come back to a downstream node; tasks ran in another process; the node records the executor's name, a job handle, its stdout and stderr |
//! | `failures_and_crashes_fail_their_node_with_the_kind_and_reason` | `Err` is `User` with its message; a panic is `Panic`; a worker that aborts, exits 3 or segfaults is `WorkerLost`, saying SIGABRT / "exited with code 3" / SIGSEGV, with its stderr |
//! | `a_time_limit_stops_the_task` | past `time_limit` the node fails `TimedOut` ("timed out after ..."), the executor stops the task (the `stopped` probe, grandchild included) |
//! | `cancel_stops_the_running_task` | cancelling while the task runs ends the dispatch and node `Cancelled`, and the executor stops the task |
//! | `a_worker_crash_is_retried` | with `retries = 1`, a worker that aborts once (a marker file in the shared directory) succeeds on attempt 2; attempt 1 is `WorkerLost` (SIGABRT) |
//! | `two_tasks_run_in_parallel` | two independent tasks run at once (a rendezvous through the shared directory), with distinct job handles |
//! | `hooks_run_where_the_task_runs` | `deps_bash` and `call_before` run in the task's own process; a failing `deps_bash` or `call_before` fails the node as `Hook` with the command's stderr or the hook's error |
//!
//! The time-limit and cancel scenarios also check that what the task printed before it was
//! stopped is on its node, or, for an executor that says it loses those streams, that it is
//! not (so the flag has to change when the executor is fixed).
//!
//! ## Running it against your executor
//!
//! A plugin author adds `covalent-test-support` (or a copy of this macro) as a dev-dependency
//! and writes, in one integration-test file:
//!
//! ```ignore
//! covalent_test_support::executor_conformance! {
//!     // anything `#[electron(executor = ...)]` accepts: a name, an `ExecutorRef`, a value;
//!     // evaluated once per test binary, so every scenario shares the instance
//!     executor: MyExecutor::for_tests(),
//!     // the short name nodes record
//!     name: "mine",
//!     // the covalent::Config to dispatch with (record = false keeps the store out of it)
//!     config: test_config(),
//!     // fn(&str) -> Result<(), String>: Err(why) skips the test (given its name), or fails
//!     // it under COVALENT_REQUIRE_ENGINES=1
//!     engine: |_| my_engine_is_up(),
//!     // a directory this process and the tasks both read and write, as each sees it
//!     shared_dir: std::env::temp_dir(),
//!     shared_dir_in_task: std::env::temp_dir(),
//!     // a string literal: the time limit of the time-out scenario, long enough for a task
//!     // to start (a few seconds for a batch system)
//!     time_limit: "2s",
//!     // fn(&JobHandle) -> Result<(), String>: Ok once nothing of that task runs any more
//!     // (polled for up to 5 s after a time-out or cancel)
//!     stopped: |job| my_job_is_gone(job),
//!     // fn(&covalent::Uuid) -> Vec<String>: whatever of that dispatch is left (jobs,
//!     // containers); `|_| Vec::new()` when nothing can be left
//!     leftovers: |_| Vec::new(),
//!     // whether the stdout of a task stopped by a time-out or cancel is kept on its node
//!     keeps_streams_of_stopped_tasks: true,
//! }
//! ```
//!
//! The expressions are evaluated in the calling file's scope, so they may name its items. The
//! workspace's own invocations are in `runtime/tests/process.rs` and the `ssh`, `slurm` and
//! `container` executors' tests.

#![deny(unsafe_code)]

mod conformance;
mod isolation;

pub use isolation::{ISOLATED_ENV, isolate_home, isolated_dir};

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support lives in the workspace")
        .to_path_buf()
}

/// Whether a missing engine fails the test instead of skipping it (`COVALENT_REQUIRE_ENGINES`
/// set to anything but empty or `0`).
pub fn required() -> bool {
    std::env::var("COVALENT_REQUIRE_ENGINES").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Skips (or, when engines are required, fails) the calling test: `why` says what is missing.
pub fn skip(test: &str, why: &str) {
    if required() {
        panic!("{test}: {why} (COVALENT_REQUIRE_ENGINES is set, so this is a failure)");
    }
    // Straight to the process's stderr: the test harness captures `eprintln!` of passing tests.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {test}: {why} (set COVALENT_REQUIRE_ENGINES=1 to make this a failure)"
    );
}

/// A directory of exactly `len` characters under `base` (made), for a test of deep homes and
/// temporary directories, as on many HPC file systems.
pub fn deep_dir(base: &std::path::Path, tag: &str, len: usize) -> String {
    let prefix = base.join(tag).display().to_string();
    let p = format!("{prefix}/{}", "d".repeat(len - prefix.len() - 1));
    assert_eq!(
        p.len(),
        len,
        "{base:?} is too deep for a {len}-character path"
    );
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// Runs the ignored test `test` of the running test binary in a child process with `envs`
/// set, and fails the calling test (with the child's output) unless it passed.
pub fn run_ignored_test(test: &str, envs: &[(&str, &std::ffi::OsStr)]) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--ignored", "--nocapture"])
        .stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

/// Whether this process runs as root (engines are only started then).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The workspace's `scripts/` directory.
pub fn scripts() -> PathBuf {
    workspace_root().join("scripts")
}

/// Runs `bash scripts/NAME ARGS...`; its last stdout line on success, else why it failed.
pub fn run_script(name: &str, args: &[&std::ffi::OsStr]) -> Result<String, String> {
    let out = Command::new("bash")
        .arg(scripts().join(name))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run scripts/{name}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/{name} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .to_string())
}

/// Starts (if needed) the test sshd of `scripts/sshd-up.sh` and returns its env file's
/// variables (`COVALENT_SSH_HOST`, `_PORT`, `_USER`, `_KEY`, `_KNOWN_HOSTS`, `_CONFIG`).
pub fn sshd_env() -> Result<std::collections::HashMap<String, String>, String> {
    let ready = run_script("sshd-up.sh", &[])?;
    let env_file = ready
        .split_whitespace()
        .find_map(|w| w.strip_prefix("env="))
        .ok_or_else(|| format!("sshd-up.sh did not name its env file: {ready:?}"))?;
    let text = std::fs::read_to_string(env_file).map_err(|e| format!("{env_file}: {e}"))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// `cargo run --example NAME` of the examples crate, from the workspace root, with `envs` set
/// and no `COVALENT_CONFIG` inherited; its stdout. Fails the test, with both streams, if the
/// example fails.
pub fn run_example(name: &str, envs: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(workspace_root())
        .args([
            "run",
            "--quiet",
            "-p",
            "covalent-examples",
            "--example",
            name,
        ])
        .env_remove("COVALENT_CONFIG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Median and mean of timings, in milliseconds (for the overhead examples; sorts `xs`).
pub fn median_mean_ms(xs: &mut [std::time::Duration]) -> (f64, f64) {
    xs.sort();
    let median = xs[xs.len() / 2].as_secs_f64() * 1e3;
    let mean = xs.iter().map(std::time::Duration::as_secs_f64).sum::<f64>() / xs.len() as f64 * 1e3;
    (median, mean)
}

/// Polls `check` every 50 ms for up to 5 s (stopping a job or a container is not instant) and
/// fails the calling test with `what` and the last answer if it never says `Ok`.
pub fn settle(what: &str, check: impl Fn() -> Result<(), String>) {
    let start = std::time::Instant::now();
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if start.elapsed() > std::time::Duration::from_secs(5) => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}

/// A file name no other test, run or process uses (`what` ends it).
pub fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("covalent-conformance-{}-{nanos}-{what}", std::process::id())
}

/// The signals [`signal`] sends in the fault tests.
pub use libc::{SIGKILL, SIGSTOP};

/// Sends signal `sig` to process `pid` (a dispatcher a test started, to produce a crash).
#[allow(unsafe_code)]
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) has no memory effects on this process.
    let r = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(
        r,
        0,
        "kill -{sig} {pid}: {}",
        std::io::Error::last_os_error()
    );
}

/// Whether process `pid` exists and has not ended (a zombie has ended).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

/// Helpers for tests of durable dispatches, defined in the calling file (which depends on
/// `covalent`; this crate does not): `store()` (the process-wide store), `wait_for(id, what,
/// predicate)` (polls the dispatch's record until the predicate holds, 60 s at most, failing
/// with the record) and `kill_dispatcher(id)` (SIGKILL of the dispatch's process, then waits
/// until the store reads it INTERRUPTED).
#[macro_export]
macro_rules! durable_helpers {
    () => {
        fn store() -> ::std::sync::Arc<::covalent::store::Store> {
            ::covalent::store::Store::open_default().unwrap()
        }

        fn wait_for(
            id: ::covalent::Uuid,
            what: &str,
            f: impl Fn(&::covalent::store::DispatchRecord) -> bool,
        ) -> ::covalent::store::DispatchRecord {
            let deadline = ::std::time::Instant::now() + ::std::time::Duration::from_secs(60);
            loop {
                let r = store().get(id).unwrap();
                if f(&r) {
                    return r;
                }
                assert!(
                    ::std::time::Instant::now() < deadline,
                    "timed out waiting for {what}: {r}"
                );
                ::std::thread::sleep(::std::time::Duration::from_millis(20));
            }
        }

        #[allow(dead_code)]
        fn kill_dispatcher(id: ::covalent::Uuid) {
            $crate::signal(store().origin(id).unwrap().pid, $crate::SIGKILL);
            wait_for(id, "INTERRUPTED", |r| {
                r.status == ::covalent::Status::Interrupted
            });
        }
    };
}

/// Appends `line` and a newline to the file at `path` in one `write` on an `O_APPEND` file, so
/// the lines of concurrent tasks (threads, processes, jobs) never interleave: how the fault and
/// durability tests count what ran.
pub fn append_line(path: impl AsRef<std::path::Path>, line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path.as_ref())
        .unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()));
    f.write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// Live (not zombie) processes of process group `pgid`, from `/proc`.
pub fn live_in_group(pgid: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
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
        if pgrp == pgid && state != "Z" && state != "X" {
            out.push(pid);
        }
    }
    out
}

/// A file server for tests on 127.0.0.1 (a port of its own), on a thread for the rest of the
/// test binary's life; its base URL (`http://127.0.0.1:PORT`). `GET /f/NAME` answers the
/// bytes given for `NAME` (with their length); `GET /cut/NAME` announces them all and sends
/// half, then closes (a transfer cut short); anything else is a 404.
pub fn http_server(files: Vec<(String, Vec<u8>)>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let files = std::sync::Arc::new(files);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let files = files.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&conn);
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    return;
                }
                // The rest of the head.
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
                let mut conn = &conn;
                let find = |name: &str| files.iter().find(|(n, _)| n == name).map(|f| &f.1);
                let (whole, cut) = match (path.strip_prefix("/f/"), path.strip_prefix("/cut/")) {
                    (Some(n), _) => (find(n), false),
                    (_, Some(n)) => (find(n), true),
                    _ => (None, false),
                };
                match whole {
                    Some(body) => {
                        let _ = write!(
                            conn,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let send = if cut { &body[..body.len() / 2] } else { body };
                        let _ = conn.write_all(send);
                    }
                    None => {
                        let _ = conn.write_all(
                            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                    }
                }
                let _ = conn.flush();
            });
        }
    });
    base
}
