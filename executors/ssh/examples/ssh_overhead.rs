//! Per-task overhead of the out-of-process executors against the bare engine doing the same
//! work: the `process` executor vs starting this binary as a worker directly, and the `ssh`
//! executor (a remote process per task, and persistent workers) vs `ssh host BIN` on a shared
//! connection, the three interleaved run by run; then 1,000 trivial tasks in one dispatch on
//! persistent workers. Prints medians; no assertions.
//!
//! `cargo run --release -p covalent-ssh --example ssh_overhead [RUNS]` (the ssh part needs the
//! server of `scripts/sshd-up.sh`; it is skipped without one).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use covalent::Config;
use covalent::executor::ExecutorRef;
use covalent::executor::worker::{PROTOCOL, RESULT_ENV, TASK_ENV, TaskEnvelope, current_binary};
use covalent::prelude::*;
use covalent_ssh::SshExecutor;

#[electron]
fn inc(x: u64) -> u64 {
    x + 1
}

#[lattice]
fn one(x: u64) -> u64 {
    inc(x)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn envelope() -> TaskEnvelope {
    let def = inc::electron();
    TaskEnvelope {
        protocol: PROTOCOL,
        covalent: "bench".into(),
        electron: def.path.into(),
        digest: def.digest.into(),
        inputs: vec![serde_json::json!(41)],
        dispatch_id: "bench".into(),
        node_id: 0,
        attempt: 1,
        deps_bash: vec![],
        hooks: vec![],
        build: None,
        files: Default::default(),
        assigned: None,
    }
}

static SERVER: LazyLock<Option<HashMap<String, String>>> = LazyLock::new(|| {
    let dir = std::env::var("COVALENT_SSHD_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("covalent-sshd"));
    let text = std::fs::read_to_string(dir.join("env")).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
});

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(30);
    let cfg = Arc::new(
        Config::parse(
            "[sdk]\nrecord = false\nprogress = false\n",
            Path::new("o.toml"),
        )
        .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let (task, result) = (dir.path().join("t.json"), dir.path().join("r.json"));
    envelope().write(&task).unwrap();
    let bin = current_binary().unwrap();

    let bare = time(runs, || {
        let ok = Command::new(&bin)
            .env(TASK_ENV, &task)
            .env(RESULT_ENV, &result)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok);
    });
    let executor = ExecutorRef::new(covalent::executor::ProcessExecutor::new());
    let ours = time(runs, || {
        let r = covalent::dispatch_sync(one(41).with_config(cfg.clone()).with_executor(&executor))
            .unwrap();
        assert_eq!(r.value(), Some(&42));
    });
    println!("per-task overhead, median of {runs} (one trivial electron, end to end)");
    println!(
        "process executor: {:.2} ms vs the binary started directly {:.2} ms = {:.2}x",
        ours.as_secs_f64() * 1e3,
        bare.as_secs_f64() * 1e3,
        ours.as_secs_f64() / bare.as_secs_f64()
    );

    let Some(s) = SERVER.as_ref() else {
        println!("ssh: skipped (no server: run `bash scripts/sshd-up.sh`)");
        return;
    };
    let ssh = SshExecutor::new(&s["COVALENT_SSH_HOST"])
        .with_port(s["COVALENT_SSH_PORT"].parse().unwrap())
        .with_username(&s["COVALENT_SSH_USER"])
        .with_key_file(&s["COVALENT_SSH_KEY"])
        .with_known_hosts(&s["COVALENT_SSH_KNOWN_HOSTS"]);
    let mut reusing = ssh.clone();
    reusing.reuse_workers = true;
    let remote = ExecutorRef::new(ssh);
    let persistent = ExecutorRef::new(reusing);
    // The bare engine: the same worker run with `ssh host BIN` on a shared connection.
    let hash = covalent::executor::worker::binary_hash().unwrap();
    let remote_bin = format!(".cache/covalent/covalent-worker-{hash}");
    let ctl = std::env::temp_dir().join(format!("ovh-{}", std::process::id()));
    std::fs::create_dir_all(&ctl).unwrap();
    let env_json = envelope().to_json();
    let bare = || {
        let out = Command::new("ssh")
            .args(["-o", "BatchMode=yes", "-o", "ControlMaster=auto", "-o", "ControlPersist=30"])
            .arg("-o")
            .arg(format!("ControlPath={}/%C", ctl.display()))
            .arg("-i")
            .arg(&s["COVALENT_SSH_KEY"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", s["COVALENT_SSH_KNOWN_HOSTS"]))
            .args(["-p", &s["COVALENT_SSH_PORT"], "-l", &s["COVALENT_SSH_USER"]])
            .arg(&s["COVALENT_SSH_HOST"])
            .arg(format!(
                "cat > /tmp/ovh-task.json && {TASK_ENV}=/tmp/ovh-task.json {RESULT_ENV}=/tmp/ovh-result.json {remote_bin} && cat /tmp/ovh-result.json"
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(env_json.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("42"));
    };
    let on = |e: &ExecutorRef| {
        let r = covalent::dispatch_sync(one(41).with_config(cfg.clone()).with_executor(e)).unwrap();
        assert_eq!(r.value(), Some(&42), "{r}");
    };
    // Warm up each (the binary shipped, the connections and a worker up), then interleave.
    on(&remote);
    on(&persistent);
    bare();
    let (mut per_task, mut workers, mut bares) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        on(&remote);
        per_task.push(t.elapsed());
        let t = Instant::now();
        bare();
        bares.push(t.elapsed());
        let t = Instant::now();
        on(&persistent);
        workers.push(t.elapsed());
    }
    let (ours, bare_t, reuse) = (median(per_task), median(bares), median(workers));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "ssh executor, a process per task: {:.2} ms vs `ssh host BIN` on a shared connection {:.2} ms = {:.2}x",
        ms(ours),
        ms(bare_t),
        ours.as_secs_f64() / bare_t.as_secs_f64()
    );
    println!(
        "ssh executor, persistent workers: {:.2} ms = {:.2}x of `ssh host BIN`",
        ms(reuse),
        reuse.as_secs_f64() / bare_t.as_secs_f64()
    );
    #[lattice]
    fn many(n: u64) -> u64 {
        let xs: Vec<Node<u64>> = (0..n).map(inc).collect();
        count(xs)
    }
    // 1,000 tasks in one dispatch each way, against the server's stock limits: failures,
    // logins (from the server's log, on this machine) and files left in the work directory.
    let log = Path::new(&s["COVALENT_SSH_KEY"])
        .parent()
        .unwrap()
        .join("sshd.log");
    let logins = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("Accepted publickey")
            .count()
    };
    let workdir = Path::new(&s["COVALENT_SSH_HOME"]).join("covalent-workdir");
    let files_left = |id: &covalent::Uuid| {
        fn count(p: &Path) -> usize {
            std::fs::read_dir(p).map_or(0, |d| {
                d.flatten()
                    .map(|e| {
                        if e.path().is_dir() {
                            1 + count(&e.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
        }
        let d = workdir.join(id.to_string());
        if d.exists() { 1 + count(&d) } else { 0 }
    };
    for (what, e) in [
        ("persistent workers", &persistent),
        ("a process per task", &remote),
    ] {
        let before = logins();
        let t = Instant::now();
        let r =
            covalent::dispatch_sync(many(1000).with_config(cfg.clone()).with_executor(e)).unwrap();
        let took = t.elapsed();
        let failed = r.nodes().filter(|n| n.error().is_some()).count();
        assert_eq!(r.value(), Some(&1000), "{r}");
        println!(
            "1,000 trivial tasks, {what}, one dispatch: {:.3} s ({:.3} ms per task), {failed} failed, {} logins, {} remote files left",
            took.as_secs_f64(),
            took.as_secs_f64() * 1e3 / 1000.0,
            logins() - before,
            files_left(&r.dispatch_id())
        );
    }
}

#[electron(executor = "local")]
fn count(xs: Vec<u64>) -> u64 {
    xs.len() as u64
}
