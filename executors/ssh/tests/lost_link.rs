//! An SSH link that goes down for good while a task runs, produced for real: the executor
//! reaches the loopback sshd through a TCP relay in this test, and the relay is cut (every
//! connection closed, the port refusing new ones). The node must fail as `lost_contact`, say
//! where the task may still run and how to find it, and keep its job handle; the remote worker
//! keeps running; once the host is reachable again a resume (`.reuse(id)`) follows that same
//! remote process to its result instead of starting another, and leaves no work directory.

covalent_test_support::isolated_home!();

use std::collections::HashMap;
use std::io::Read;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use covalent::executor::ExecutorRef;
use covalent::prelude::*;
use covalent::{Config, ErrorKind};
use covalent_ssh::SshExecutor;
use covalent_test_support::alive;

static SERVER: LazyLock<Result<HashMap<String, String>, String>> =
    LazyLock::new(covalent_test_support::sshd_env);

/// The relay's port (set by the test before the executor is first used).
static RELAY_PORT: AtomicU16 = AtomicU16::new(0);

/// The ssh executor, through the relay; the host key is checked under the server's own name.
static SSH: LazyLock<ExecutorRef> = LazyLock::new(|| {
    let s = SERVER.as_ref().expect("checked before use");
    let mut e = SshExecutor::new("127.0.0.1")
        .with_port(RELAY_PORT.load(Ordering::SeqCst))
        .with_username(&s["COVALENT_SSH_USER"])
        .with_key_file(&s["COVALENT_SSH_KEY"])
        .with_known_hosts(&s["COVALENT_SSH_KNOWN_HOSTS"])
        .with_ssh_option(format!(
            "HostKeyAlias=[127.0.0.1]:{}",
            s["COVALENT_SSH_PORT"]
        ));
    e.ssh.connect_timeout = Duration::from_secs(2);
    e.max_connection_attempts = 2;
    e.retry_wait_time = 0.2;
    e.poll_freq = 0.2;
    ExecutorRef::new(e)
});

/// Appends a line to `<dir>/runs` (on the host), sleeps, returns `ms`.
#[electron(executor = &SSH)]
fn remote_nap(dir: String, ms: u64) -> u64 {
    covalent_test_support::append_line(format!("{dir}/runs"), "ran");
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[lattice]
fn nap(dir: String, ms: u64) -> u64 {
    remote_nap(dir, ms)
}

/// A TCP relay to the sshd, which can be cut.
struct Relay {
    port: u16,
    cut: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(port: u16, target: u16) -> Relay {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c, s) = (cut.clone(), streams.clone());
        std::thread::spawn(move || {
            for incoming in listener.incoming() {
                if c.load(Ordering::SeqCst) {
                    return; // dropping the listener: the port refuses from now on
                }
                let Ok(client) = incoming else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let mut all = s.lock().unwrap();
                all.push(client.try_clone().unwrap());
                all.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Relay { port, cut, streams }
    }

    /// The link goes down for good: every connection closes, new ones are refused.
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wakes the accept loop
        for s in self.streams.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        // Wait until the port refuses.
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok_and(|mut s| {
            let mut b = [0u8; 1];
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            !matches!(s.read(&mut b), Ok(0))
        }) {
            assert!(Instant::now() < deadline, "the relay did not close");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn config() -> Config {
    Config::parse("[sdk]\nprogress = false\n", Path::new("t.toml")).unwrap()
}

/// The login user's home, where relative work directories are.
fn remote_home(user: &str) -> PathBuf {
    let out = std::process::Command::new("getent")
        .args(["passwd", user])
        .output()
        .unwrap();
    PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(':')
            .nth(5)
            .unwrap(),
    )
}

#[covalent::test]
async fn a_link_lost_for_good_leaves_the_task_findable_and_a_resume_follows_it() {
    let s = match &*SERVER {
        Ok(s) => s,
        Err(e) => {
            covalent_test_support::skip("lost_link", &format!("no SSH server: {e}"));
            return;
        }
    };
    let sshd_port: u16 = s["COVALENT_SSH_PORT"].parse().unwrap();
    let relay = Relay::start(0, sshd_port);
    RELAY_PORT.store(relay.port, Ordering::SeqCst);
    // A directory the remote user (on this same machine) can write to.
    let dir = std::env::temp_dir().join(format!(
        "covalent-lost-link-{}",
        covalent::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let input = dir.display().to_string();

    let d = covalent::dispatch(nap(input.clone(), 3_000).with_config(config()))
        .await
        .unwrap();
    let id = d.id();
    let store = covalent::store::Store::open_default().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let pid = loop {
        let r = store.get(id).unwrap();
        let pid = r
            .nodes
            .iter()
            .find(|n| n.name == "remote_nap")
            .and_then(|n| n.job_handle.as_ref()?["pid"].as_u64());
        if let Some(pid) = pid {
            break pid as u32;
        }
        assert!(Instant::now() < deadline, "the task never started: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    relay.cut();
    let r = d.wait().await.unwrap();
    assert_eq!(r.status(), Status::Failed, "{r}");
    let node = r.nodes().find(|n| n.name() == "remote_nap").unwrap();
    assert_eq!(node.error_kind(), Some(ErrorKind::LostContact), "{r}");
    let msg = node.error().unwrap_or_default();
    assert!(
        msg.contains("may still be running") && msg.contains(&format!("covalent resume {id}")),
        "{msg}"
    );
    assert_eq!(
        node.attempts().len(),
        1,
        "not retried beside the running task"
    );
    // The remote worker runs on, unseen by the dispatcher but recorded.
    assert!(alive(pid), "the remote worker was killed by the lost link");
    let recorded = store.get(id).unwrap();
    let handle = recorded
        .nodes
        .iter()
        .find(|n| n.name == "remote_nap")
        .and_then(|n| n.job_handle.clone())
        .unwrap();
    assert_eq!(handle["pid"].as_u64(), Some(pid as u64));

    // The host is reachable again (same address): a resume follows the same process.
    drop(relay);
    let _back = Relay::start(RELAY_PORT.load(Ordering::SeqCst), sshd_port);
    let resumed = covalent::dispatch(nap(input, 3_000).with_config(config()).reuse(id))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(resumed.status(), Status::Completed, "{resumed}");
    assert_eq!(resumed.value(), Some(&3_000));
    let node = resumed.nodes().find(|n| n.name() == "remote_nap").unwrap();
    assert_eq!(
        node.job_handle().unwrap().0["pid"].as_u64(),
        Some(pid as u64)
    );
    let runs = std::fs::read_to_string(dir.join("runs")).unwrap();
    assert_eq!(runs.lines().count(), 1, "the task ran once");
    let workdir = remote_home(&s["COVALENT_SSH_USER"]).join(handle["workdir"].as_str().unwrap());
    assert!(!workdir.exists(), "{} is left", workdir.display());
}
