//! The ssh executor against a real OpenSSH server on 127.0.0.1 (started by
//! `scripts/sshd-up.sh`, with a dedicated user): the executor conformance suite of
//! `covalent-test-support` (a time limit and cancellation kill the remote process group), what
//! is particular to ssh (the login user, exact streams, the binary cache) and bad hosts, keys
//! and host keys. Without a server, each test prints why it is skipped; with
//! `COVALENT_REQUIRE_ENGINES=1` (as CI sets) that is a failure instead.

covalent_test_support::isolated_home!();

use std::collections::HashMap;
use std::path::Path;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use covalent::Config;
use covalent::executor::{ExecutorRef, JobHandle};
use covalent::prelude::*;
use covalent_ssh::SshExecutor;

/// The server's coordinates from `scripts/sshd-up.sh`'s env file, starting it if possible.
static SERVER: LazyLock<Result<HashMap<String, String>, String>> =
    LazyLock::new(covalent_test_support::sshd_env);

/// The server, or `None` after saying why the test is skipped (a failure when engines are
/// required).
fn server() -> Option<&'static HashMap<String, String>> {
    match &*SERVER {
        Ok(s) => Some(s),
        Err(e) => {
            covalent_test_support::skip("ssh tests", &format!("no SSH server: {e}"));
            None
        }
    }
}

fn executor(s: &HashMap<String, String>) -> SshExecutor {
    SshExecutor::new(&s["COVALENT_SSH_HOST"])
        .with_port(s["COVALENT_SSH_PORT"].parse().unwrap())
        .with_username(&s["COVALENT_SSH_USER"])
        .with_key_file(&s["COVALENT_SSH_KEY"])
        .with_known_hosts(&s["COVALENT_SSH_KNOWN_HOSTS"])
}

static SSH: LazyLock<ExecutorRef> =
    LazyLock::new(|| ExecutorRef::new(executor(server().expect("checked before use"))));

fn no_record() -> Config {
    Config::parse(
        "[sdk]\nrecord = false\nprogress = false\n",
        Path::new("t.toml"),
    )
    .unwrap()
}

#[electron(executor = &SSH, deps_bash = "test \"$(id -un)\" = covalent-ssh")]
fn whoami(greeting: String) -> String {
    println!("remote stdout line");
    eprintln!("remote stderr line");
    format!(
        "{greeting} from {}",
        std::env::var("USER").unwrap_or_else(|_| "?".into())
    )
}

#[electron]
fn local_len(s: String) -> usize {
    s.len()
}

#[lattice]
fn basic() -> (String, usize) {
    let w = whoami("hello".to_string());
    (w, local_len(w))
}

#[test]
fn tasks_run_on_the_host_with_their_streams() {
    let Some(s) = server() else { return };
    let r = covalent::dispatch_sync(basic().with_config(no_record())).unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    let (w, n) = r.value().unwrap();
    assert!(w.starts_with("hello from "), "{w}");
    assert_eq!(*n, w.len());
    let node = r.node(0).unwrap();
    assert_eq!(node.executor().as_deref(), Some("ssh"));
    assert_eq!(node.stdout(), "remote stdout line\n");
    assert_eq!(node.stderr(), "remote stderr line\n");
    let job = node.job_handle().unwrap().0;
    assert!(job["pid"].as_i64().unwrap() > 1);
    // The binary was shipped once, into the cache, by content hash.
    let cache = Path::new(&s["COVALENT_SSH_HOME"]).join(".cache/covalent");
    let bins: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().collect();
    assert!(
        bins.iter()
            .any(|b| b.file_name().to_string_lossy().starts_with(&format!(
                "covalent-worker-{}",
                covalent::executor::worker::binary_hash().unwrap()
            )))
    );
}

/// Live (not zombie) processes of a process group (the server is on this machine).
fn group_alive(pgid: i64) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read_to_string(e.path().join("stat"))
            .ok()
            .and_then(|s| {
                let rest = s.rsplit_once(')')?.1.to_string();
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some(f[2].parse::<i64>().ok()? == pgid && f[0] != "Z")
            })
            .unwrap_or(false)
    })
}

/// Nothing of the remote task's process group (the remote pid leads it) is alive.
fn group_stopped(job: &JobHandle) -> Result<(), String> {
    let pgid = job.0["pid"].as_i64().ok_or("no pid in the job handle")?;
    if group_alive(pgid) {
        Err(format!("remote process group {pgid} is alive"))
    } else {
        Ok(())
    }
}

/// The login user's home: tasks and this test share it (the server is on this machine).
fn ssh_home() -> String {
    server().expect("checked before use")["COVALENT_SSH_HOME"].clone()
}

covalent_test_support::executor_conformance! {
    executor: &SSH,
    name: "ssh",
    config: no_record(),
    engine: |_| SERVER.as_ref().map(|_| ()).map_err(|e| format!("no SSH server: {e}")),
    shared_dir: ssh_home(),
    shared_dir_in_task: ssh_home(),
    time_limit: "1s",
    stopped: group_stopped,
    leftovers: |_| Vec::new(),
    // Known gap: a time-out or cancel drops the run before it records the streams.
    keeps_streams_of_stopped_tasks: false,
}

#[electron]
fn plain() -> i64 {
    1
}

/// Dispatches `plain` on a given executor and returns its node error.
fn error_with(e: SshExecutor) -> String {
    #[lattice]
    fn one() -> i64 {
        plain()
    }
    let start = Instant::now();
    let r = covalent::dispatch_sync(one().with_executor(e).with_config(no_record())).unwrap();
    assert!(start.elapsed() < Duration::from_secs(60), "no hang");
    r.node(0).unwrap().error().unwrap_or_default()
}

#[test]
fn bad_hosts_keys_and_host_keys_fail_clearly_without_hanging() {
    let Some(s) = server() else { return };
    let dir = tempfile::tempdir().unwrap();

    // Unknown host key: an empty known_hosts with strict checking on.
    let empty = dir.path().join("known_hosts");
    std::fs::write(&empty, "").unwrap();
    let e = error_with(executor(s).with_known_hosts(&empty));
    assert!(
        e.contains("host key") && e.contains("strict host-key checking is on"),
        "{e}"
    );

    // A key the server does not accept.
    let key = dir.path().join("stranger");
    assert!(
        std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );
    let e = error_with(executor(s).with_key_file(&key));
    assert!(
        e.contains("refused the login") && e.contains("ssh_key_file"),
        "{e}"
    );

    // Nobody listens on that port.
    let mut gone = executor(s).with_port(1);
    gone.max_connection_attempts = 2;
    gone.retry_wait_time = 0.1;
    let e = error_with(gone);
    assert!(e.contains("cannot connect to") && e.contains(":1"), "{e}");
}

#[test]
fn a_remote_binary_of_another_build_is_refused() {
    let Some(s) = server() else { return };
    let home = Path::new(&s["COVALENT_SSH_HOME"]);
    let me = covalent::executor::worker::current_binary().unwrap();
    let name = format!("covalent-build-test-{}", covalent::Uuid::now_v7().simple());
    let same = home.join(format!("{name}-same"));
    let other = home.join(format!("{name}-other"));
    std::fs::copy(&me, &same).unwrap();
    std::fs::copy(&me, &other).unwrap();
    // The same program with one byte more: another build (its electrons' sources are equal).
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&other)
        .unwrap()
        .write_all(b"\n")
        .unwrap();
    for p in [&same, &other] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let with_binary = |p: &Path| {
        let mut e = executor(s);
        e.remote_binary = Some(p.display().to_string());
        e
    };
    let e = error_with(with_binary(&other));
    assert!(
        e.contains("is build") && e.contains("the very binary that dispatches"),
        "{e}"
    );
    assert_eq!(error_with(with_binary(&same)), "", "the same build runs");
    let mut reusing = with_binary(&other);
    reusing.reuse_workers = true;
    let e = error_with(reusing);
    assert!(
        e.contains("is build"),
        "persistent workers check it too: {e}"
    );
    let _ = std::fs::remove_file(&same);
    let _ = std::fs::remove_file(&other);
}

#[electron]
fn relative_home_task() -> String {
    std::env::current_dir().unwrap().display().to_string()
}

#[test]
fn cleanup_removes_the_task_directory_under_the_login_home() {
    let Some(s) = server() else { return };
    #[lattice]
    fn three() -> Vec<String> {
        vec![
            relative_home_task(),
            relative_home_task(),
            relative_home_task(),
        ]
    }
    let r = covalent::dispatch_sync(three().with_executor(executor(s)).with_config(no_record()))
        .unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    let home = Path::new(&s["COVALENT_SSH_HOME"]);
    for dir in r.value().unwrap() {
        assert!(dir.starts_with(home.to_str().unwrap()), "{dir}");
        assert!(!Path::new(dir).exists(), "{dir} is left");
    }
    let dispatch_dir = home
        .join("covalent-workdir")
        .join(r.dispatch_id().to_string());
    assert!(!dispatch_dir.exists(), "{} is left", dispatch_dir.display());
}

/// Set in the child process of `a_deep_home_does_not_break_the_shared_connection`.
const DEEP_CHILD: &str = "COVALENT_TEST_DEEP_HOME_CHILD";

#[test]
fn a_deep_home_does_not_break_the_shared_connection() {
    let Some(s) = server() else { return };
    // A home and a temporary directory of 100 characters each, as on many HPC file systems.
    let base = tempfile::tempdir().unwrap();
    let home = covalent_test_support::deep_dir(base.path(), "h", 100);
    let tmp = covalent_test_support::deep_dir(base.path(), "t", 100);
    let sshd_dir = Path::new(&s["COVALENT_SSH_KEY"]).parent().unwrap();
    covalent_test_support::run_ignored_test(
        "deep_home_child",
        &[
            (DEEP_CHILD, "1".as_ref()),
            ("HOME", home.as_ref()),
            ("TMPDIR", tmp.as_ref()),
            ("COVALENT_SSHD_DIR", sshd_dir.as_os_str()),
        ],
    );
}

#[test]
#[ignore = "run by a_deep_home_does_not_break_the_shared_connection with a deep HOME"]
fn deep_home_child() {
    if std::env::var_os(DEEP_CHILD).is_none() {
        return;
    }
    let s = server().expect("the parent checked the server");
    let home = std::env::var("HOME").unwrap();
    assert_eq!(home.len(), 100);
    let mut per_task = executor(s);
    // A fresh connection (not one the parent's tests made): its socket is made here.
    per_task.ssh.options.push("ServerAliveCountMax=4".into());
    let mut reusing = per_task.clone();
    reusing.reuse_workers = true;
    for e in [per_task, reusing] {
        assert_eq!(error_with(e), "");
    }
}

#[test]
fn tasks_ride_on_the_users_own_master_connection() {
    let Some(s) = server() else { return };
    // The user's master, opened by hand (as after a multi-factor login): `ssh -M -N -f`.
    let dir = tempfile::Builder::new()
        .prefix("cm")
        .tempdir_in("/tmp")
        .unwrap();
    let socket = dir.path().join("m");
    let status = std::process::Command::new("ssh")
        .args(["-M", "-N", "-f", "-o", "BatchMode=yes", "-S"])
        .arg(&socket)
        .args(["-i", &s["COVALENT_SSH_KEY"]])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            s["COVALENT_SSH_KNOWN_HOSTS"]
        ))
        .args(["-p", &s["COVALENT_SSH_PORT"], "-l", &s["COVALENT_SSH_USER"]])
        .arg(&s["COVALENT_SSH_HOST"])
        .status()
        .unwrap();
    assert!(status.success());
    // No key of its own: only the user's connection can get it in.
    let mut e = SshExecutor::new(&s["COVALENT_SSH_HOST"])
        .with_port(s["COVALENT_SSH_PORT"].parse().unwrap())
        .with_username(&s["COVALENT_SSH_USER"])
        .with_key_file("/nonexistent/key")
        .with_known_hosts(&s["COVALENT_SSH_KNOWN_HOSTS"]);
    e.ssh.control_path = Some(socket.display().to_string());
    let e2 = e.clone();
    assert_eq!(error_with(e), "", "the task ran through the user's master");
    let stop = std::process::Command::new("ssh")
        .args(["-O", "exit", "-S"])
        .arg(&socket)
        .arg(&s["COVALENT_SSH_HOST"])
        .output()
        .unwrap();
    assert!(stop.status.success(), "{stop:?}");
    // Without it, the login is the executor's own, and here it has no key that works.
    let err = error_with(e2);
    assert!(err.contains("refused the login"), "{err}");
    assert!(
        err.contains("no master connection was found at `control_path`"),
        "{err}"
    );
}
