//! The ssh executor over a pool of hosts: two OpenSSH servers on loopback ports (the one of
//! `scripts/sshd-up.sh` and a second one it starts on port 2223 with the same login key), and a
//! host that does not answer. Tasks spread over the live hosts; the dead one is left out and
//! its tasks go elsewhere.

covalent_test_support::isolated_home!();

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::time::Duration;

use covalent::Config;
use covalent::executor::ExecutorRef;
use covalent::prelude::*;
use covalent_ssh::SshExecutor;

const SECOND_PORT: &str = "2223";

/// The first server's coordinates (its env file) and a known-hosts file with both keys.
type Servers = (HashMap<String, String>, PathBuf);

static SERVERS: LazyLock<Result<Servers, String>> = LazyLock::new(|| {
    let first = covalent_test_support::sshd_env()?;
    let dir1 = Path::new(&first["COVALENT_SSH_KEY"])
        .parent()
        .unwrap()
        .to_path_buf();
    let dir2 = dir1.with_file_name("covalent-sshd-2");
    std::fs::create_dir_all(&dir2).map_err(|e| e.to_string())?;
    // The same client key, so one `ssh_key_file` logs in to both.
    for f in ["client_key", "client_key.pub"] {
        std::fs::copy(dir1.join(f), dir2.join(f)).map_err(|e| e.to_string())?;
    }
    let out = Command::new("bash")
        .arg(covalent_test_support::scripts().join("sshd-up.sh"))
        .env("COVALENT_SSHD_PORT", SECOND_PORT)
        .env("COVALENT_SSHD_DIR", &dir2)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "the second sshd did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let known = dir2.join("known_hosts_both");
    let both = format!(
        "{}{}",
        std::fs::read_to_string(dir1.join("known_hosts")).map_err(|e| e.to_string())?,
        std::fs::read_to_string(dir2.join("known_hosts")).map_err(|e| e.to_string())?
    );
    std::fs::write(&known, both).map_err(|e| e.to_string())?;
    Ok((first, known))
});

fn pool(hosts: &[&str]) -> Option<ExecutorRef> {
    let (s, known) = match &*SERVERS {
        Ok(x) => x,
        Err(e) => {
            covalent_test_support::skip("ssh pools", &format!("no SSH servers: {e}"));
            return None;
        }
    };
    let mut e = SshExecutor::default()
        .with_username(&s["COVALENT_SSH_USER"])
        .with_key_file(&s["COVALENT_SSH_KEY"])
        .with_known_hosts(known);
    e.hosts = hosts.iter().map(|h| h.to_string()).collect();
    e.slots_per_host = Some(2);
    e.ssh.connect_timeout = Duration::from_secs(2);
    e.max_connection_attempts = 1;
    Some(ExecutorRef::new(e))
}

fn no_record() -> Config {
    Config::parse(
        "[sdk]\nrecord = false\nprogress = false\n",
        Path::new("t.toml"),
    )
    .unwrap()
}

#[electron]
fn where_am_i(i: u32) -> u32 {
    std::thread::sleep(Duration::from_millis(300));
    i
}

#[lattice]
fn spread(n: u32) -> Vec<u32> {
    (0..n).map(where_am_i).collect::<Vec<_>>()
}

/// Tasks per host, from the job handles.
fn per_host(r: &covalent::LatticeResult<Vec<u32>>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for n in r.nodes().filter(|n| n.name() == "where_am_i") {
        let h = n.job_handle().expect("a handle").0["host"]
            .as_str()
            .unwrap()
            .to_string();
        *m.entry(h).or_insert(0) += 1;
    }
    m
}

#[test]
fn tasks_spread_over_the_live_hosts() {
    let Some(e) = pool(&["127.0.0.1:2222", &format!("127.0.0.1:{SECOND_PORT}")]) else {
        return;
    };
    let r = covalent::dispatch_sync(spread(12).with_executor(e).with_config(no_record())).unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    assert_eq!(r.value(), Some(&(0..12).collect::<Vec<_>>()));
    let hosts = per_host(&r);
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    // Two slots each, least loaded first: the twelve split about evenly.
    assert!(hosts.values().all(|&n| n >= 4), "{hosts:?}");
}

#[test]
fn a_host_that_cannot_be_reached_is_left_out() {
    // Port 1: nothing listens there.
    let Some(e) = pool(&["127.0.0.1:1", "127.0.0.1:2222"]) else {
        return;
    };
    let r = covalent::dispatch_sync(spread(6).with_executor(e).with_config(no_record())).unwrap();
    assert_eq!(r.status(), Status::Completed, "{r}");
    let hosts = per_host(&r);
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    assert!(
        hosts.keys().all(|h| h.ends_with("@127.0.0.1:2222")),
        "{hosts:?}"
    );
    assert_eq!(hosts.values().sum::<usize>(), 6);
}

#[test]
fn when_no_host_can_be_reached_the_task_says_what_each_said() {
    let Some(e) = pool(&["127.0.0.1:1", "127.0.0.1:3"]) else {
        return;
    };
    let r = covalent::dispatch_sync(spread(1).with_executor(e).with_config(no_record())).unwrap();
    let err = r.node(0).unwrap().error().unwrap_or_default();
    assert!(err.contains("no host of the pool can be reached"), "{err}");
    assert!(
        err.contains("127.0.0.1:1") && err.contains("127.0.0.1:3"),
        "{err}"
    );
}
